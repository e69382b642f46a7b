"""The tsf command, called in-process with Typer's CliRunner: exit codes, stdout (data) and stderr (people)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer

from tests._cli import invoke
from tests._models import COMMIT, checkpoint_files, make_hub_cache
from tests._videos import corrupt_file, make_audio, make_empty, make_text, make_video
from tsf_cli import api
from tsf_cli.cli import app
from tsf_cli.inference import runner

GOOD = ["a.mp4", "b.webm", "c.mkv"]
BAD = {
    "corrupt.mp4": "VideoError",
    "empty.mp4": "VideoError",
    "sound.m4a": "VideoError",
    "readme.txt": "VideoError",
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "a.mp4", frames=40, size=(64, 48))
    make_video(folder / "b.webm", frames=20, size=(48, 64))
    make_video(folder / "c.mkv", frames=12, size=(40, 40), gop=4)
    big = make_video(folder.parent / "source.mp4", frames=60, size=(64, 48))
    corrupt_file(big, folder / "corrupt.mp4", start=0.0, length=1.0)
    make_empty(folder / "empty.mp4")
    make_audio(folder / "sound.m4a")
    make_text(folder / "readme.txt")
    return folder


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_classify_prints_a_table_per_video(checkpoint, videos):
    result = invoke("classify", videos / "a.mp4", videos / "b.webm", "--model", checkpoint, "-k", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("probability") == 2
    assert str(videos / "a.mp4") in result.stdout and str(videos / "b.webm") in result.stdout
    assert "LABEL_" in result.stdout and "on cpu" in result.stdout
    assert result.stderr.strip() in ("", f"Loading {checkpoint}...")


def test_classify_json_holds_model_frames_and_probabilities(checkpoint, videos):
    result = invoke("classify", videos / "a.mp4", "--model", checkpoint, "--json", "-k", "2", "--dtype", "fp32")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (video,) = document["results"]
    assert video["path"] == str(videos / "a.mp4") and video["status"] == "ok"
    assert video["model"] == {
        "name": str(checkpoint),
        "source": str(checkpoint),
        "revision": None,
        "dtype": "fp32",
        "device": "cpu",
        "runtime": "torch",
    }
    assert video["clips"][0]["indices"] == [0, 13, 26, 39]  # 4 frames spread over 40: the tiny config's frames
    assert video["clips"][0]["timestamps"][-1] == pytest.approx(39 / 24, abs=1e-6)
    probabilities = [p["probability"] for p in video["predictions"]]
    assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)


def test_classify_json_matches_the_python_api(checkpoint, videos):
    cli = invoke("classify", videos / "c.mkv", "--model", checkpoint, "--json", "--dtype", "fp32", "--crops", "3")
    (from_api,) = api.classify([videos / "c.mkv"], model=str(checkpoint), dtype="fp32", crops=3)
    assert json.loads(cli.stdout)["results"][0]["predictions"] == [p.to_dict() for p in from_api.predictions]


def test_classify_several_views_average_their_probabilities(checkpoint, videos):
    result = invoke(
        "classify",
        videos / "a.mp4",
        "--model",
        checkpoint,
        "--json",
        "--clips",
        "2",
        "--crops",
        "3",
        "--dtype",
        "fp32",
        "-k",
        "5",
    )
    video = json.loads(result.stdout)["results"][0]
    assert len(video["clips"]) == 2 and video["crops"] == 3
    assert sum(p["probability"] for p in video["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_classify_a_bad_video_is_one_error_line_and_exit_3(checkpoint, videos):
    result = invoke("classify", videos / "readme.txt", "--model", checkpoint)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {videos / 'readme.txt'}: ")


def test_names_with_brackets_are_printed_as_they_are(checkpoint, videos, tmp_path):
    odd = tmp_path / "clip [x264] [bold].mp4"
    os.link(videos / "a.mp4", odd)
    result = invoke("classify", odd, "--model", checkpoint)
    assert result.exit_code == 0, result.output
    assert "clip [x264] [bold].mp4" in result.stdout
    text = tmp_path / "[red]notes[bold].txt"
    text.write_text("not a video")
    result = invoke("classify", text, "--model", checkpoint)
    assert result.exit_code == 3 and "[red]notes[bold].txt" in result.stderr


def test_a_wrong_model_leaves_no_output_file(videos, tmp_path):
    result = invoke("batch", videos, "-o", tmp_path / "out.csv", "--model", "no-such-model")
    assert result.exit_code == 4
    assert not (tmp_path / "out.csv").exists()


def test_classify_missing_path(checkpoint, tmp_path):
    result = invoke("classify", tmp_path / "nope.mp4", "--model", checkpoint)
    assert result.exit_code == 3
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope.mp4'}: no such file"


def test_unknown_model_is_exit_4(videos):
    result = invoke("classify", videos / "a.mp4", "--model", "not-a-model")
    assert result.exit_code == 4
    assert result.stderr.strip().splitlines()[-1].startswith("Error: unknown model 'not-a-model': not a preset (")


def test_default_model_offline_and_not_cached_says_how_to_use_a_folder(videos):
    result = invoke("classify", videos / "a.mp4")
    assert result.exit_code == 4
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: facebook/timesformer-base-finetuned-k400")
    assert "not cached" in last and "local folder" in last
    assert "Traceback" not in result.output


def test_hub_id_from_the_offline_cache_reports_its_commit(checkpoint, videos, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    make_hub_cache(cache, "someone/tiny-timesformer", checkpoint_files(checkpoint))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    result = invoke("classify", videos / "a.mp4", "--model", "someone/tiny-timesformer", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["model"]["revision"] == COMMIT


def test_cuda_without_cuda_is_exit_7(checkpoint, videos, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = invoke("classify", videos / "a.mp4", "--model", checkpoint, "--device", "cuda")
    assert result.exit_code == 7
    assert "--device cuda was asked for but" in result.stderr


def test_debug_shows_the_traceback(videos):
    result = invoke("--debug", "classify", videos / "a.mp4", "--model", "not-a-model")
    assert result.exit_code == 4  # the documented code, with the traceback before the error line
    assert "Traceback (most recent call last)" in result.stderr and "ModelNotFoundError" in result.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_batch_records_every_input_and_exits_8_when_some_failed(checkpoint, videos, tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    result = invoke("batch", videos, "-o", out, "--model", checkpoint, "--workers", "2", "-k", "2")
    assert result.exit_code == 8, result.output
    if suffix == ".jsonl":
        rows = {r["path"]: r for r in records(out)}
    else:
        rows = {r["path"]: r for r in csv.DictReader(out.open(newline=""))}
    assert set(rows) == {str(videos / name) for name in GOOD + list(BAD)}
    for name in GOOD:
        assert rows[str(videos / name)]["status"] == "ok"
    for name, error in BAD.items():
        row = rows[str(videos / name)]
        assert (row["status"], row["error"]) == ("error", error)
        assert row["message"].startswith(str(videos / name))
    assert "7 input(s): 3 ok, 4 failed" in result.stderr
    assert result.stdout == ""


def test_batch_of_good_videos_exits_0(checkpoint, videos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{videos / name}\n" for name in GOOD))
    result = invoke("batch", listing, "-o", tmp_path / "out.jsonl", "--model", checkpoint, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in records(tmp_path / "out.jsonl")] == ["ok"] * 3


def test_batch_refuses_to_clobber_and_checks_flags(checkpoint, videos, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"path": "x", "status": "ok"}\n')
    result = invoke("batch", videos, "-o", out, "--model", checkpoint)
    assert result.exit_code == 6
    assert "already exists: use --resume" in result.stderr
    assert out.read_text() == '{"path": "x", "status": "ok"}\n'
    result = invoke("batch", videos, "-o", out, "--resume", "--overwrite")
    assert result.exit_code == 2 and "--resume and --overwrite exclude each other" in result.stderr


def test_batch_interrupted_then_resumed_loses_and_duplicates_nothing(checkpoint, videos, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    real_run = runner.run

    def run_then_interrupt(*args, **kwargs):
        for count, record in enumerate(real_run(*args, **kwargs)):
            if count == 3:
                raise KeyboardInterrupt
            yield record

    monkeypatch.setattr(runner, "run", run_then_interrupt)
    result = invoke("batch", videos, "-o", out, "--model", checkpoint, "--workers", "0")
    assert result.exit_code == 130
    assert "--resume" in result.stderr
    first = records(out)
    assert len(first) == 3
    # A kill in the middle of a write leaves a torn last line: resume must drop it, not choke on it.
    with out.open("a") as f:
        f.write('{"path": "torn')
    monkeypatch.setattr(runner, "run", real_run)
    result = invoke("batch", videos, "-o", out, "--model", checkpoint, "--workers", "0", "--resume")
    assert result.exit_code == 8, result.output
    paths = [r["path"] for r in records(out)]
    assert sorted(paths) == sorted(str(videos / n) for n in GOOD + list(BAD))
    assert len(paths) == len(set(paths))
    assert [r["path"] for r in records(out)[:3]] == [r["path"] for r in first]


def test_batch_killed_for_real_then_resumed(checkpoint, videos, tmp_path):
    out = tmp_path / "out.jsonl"
    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        os.link(videos / GOOD[i % 3], many / f"{i:02d}{Path(GOOD[i % 3]).suffix}")
    command = [
        sys.executable,
        "-m",
        "tsf_cli",
        "batch",
        str(many),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--workers",
        "0",
        "--batch-size",
        "1",
    ]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_with = out.read_text().count("\n")
    result = invoke("batch", many, "-o", out, "--model", checkpoint, "--workers", "0", "--resume")
    assert result.exit_code == 0, result.output
    paths = [r["path"] for r in records(out)]
    assert len(paths) == 40 == len(set(paths))
    assert killed_with >= 2


def test_embed_writes_every_format(checkpoint, videos, tmp_path):
    outputs = {}
    for suffix in (".npy", ".npz", ".safetensors", ".parquet", ".jsonl"):
        out = tmp_path / f"emb{suffix}"
        result = invoke(
            "embed",
            videos / "a.mp4",
            videos / "b.webm",
            "-o",
            out,
            "--model",
            checkpoint,
            "--dtype",
            "fp32",
            "--workers",
            "0",
        )
        assert result.exit_code == 0, result.output
        outputs[suffix] = out
    matrix = np.load(outputs[".npy"])
    assert matrix.shape == (2, 32) and matrix.dtype == np.float32
    sidecar = json.loads((tmp_path / "emb.npy.json").read_text())
    assert [v["path"] for v in sidecar["videos"]] == [str(videos / "a.mp4"), str(videos / "b.webm")]
    with np.load(outputs[".npz"], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["embeddings"], matrix)
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(outputs[".safetensors"])["embeddings"], matrix)
    import pyarrow.parquet as pq

    table = pq.read_table(outputs[".parquet"])
    assert table.column("path").to_pylist() == [str(videos / "a.mp4"), str(videos / "b.webm")]
    np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist(), dtype=np.float32), matrix)
    lines = records(outputs[".jsonl"])
    np.testing.assert_array_equal(np.array([r["vector"] for r in lines], dtype=np.float32), matrix)
    (from_api,) = api.embed([videos / "a.mp4"], model=str(checkpoint), dtype="fp32")
    np.testing.assert_allclose(from_api.vector, matrix[0], atol=1e-6)


def test_embed_mean_pool_differs_from_cls_and_folder_failures_are_listed(checkpoint, videos, tmp_path):
    cls_out, mean_out = tmp_path / "cls.npz", tmp_path / "mean.npz"
    assert invoke("embed", videos, "-o", cls_out, "--model", checkpoint, "--workers", "0").exit_code == 8
    result = invoke("embed", videos, "-o", mean_out, "--model", checkpoint, "--pool", "mean", "--workers", "0")
    assert result.exit_code == 8
    with np.load(cls_out) as a, np.load(mean_out) as b:
        assert a["embeddings"].shape == b["embeddings"].shape == (3, 32)
        assert not np.allclose(a["embeddings"], b["embeddings"])
        metadata = json.loads(str(b["metadata"]))
    assert {f["path"] for f in metadata["failures"]} == {str(videos / name) for name in BAD}
    assert not (tmp_path / "mean.npz.partial.jsonl").exists()


def test_embed_unknown_format_fails_before_any_work(checkpoint, videos, tmp_path):
    result = invoke("embed", videos / "a.mp4", "-o", tmp_path / "emb.h5", "--model", checkpoint)
    assert result.exit_code == 6
    assert ".npy" in result.stderr and not (tmp_path / "emb.h5").exists()


def test_models_lists_presets_with_licence(monkeypatch):
    result = invoke("models", "--json")
    assert result.exit_code == 0
    presets = {p["name"]: p for p in json.loads(result.stdout)}
    base = presets["base-k400"]
    assert base["source"] == "facebook/timesformer-base-finetuned-k400" and base["default"] is True
    assert (base["frames"], base["image_size"], base["num_labels"]) == (8, 224, 400)
    assert base["license"] == "cc-by-nc-4.0" and base["available_offline"] is False
    table = invoke("models")
    assert "base-k400" in table.stdout and "cc-by-nc-4.0" in table.stdout


def test_info_reports_measured_streams(videos):
    result = invoke("info", videos / "b.webm", "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    (stream,) = found["streams"]
    assert (stream["codec"], stream["width"], stream["height"], stream["num_frames"]) == ("vp9", 48, 64, 20)
    assert "h264" in invoke("info", videos / "a.mp4").stdout


def test_info_of_a_bad_file_is_one_line(videos):
    result = invoke("info", videos / "readme.txt")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1


def test_help_is_fast_because_it_imports_no_torch():
    code = "import sys; from tsf_cli.cli import app; print('torch' in sys.modules, 'av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert invoke("--help").exit_code == 0


def test_every_help_text_shows_its_bracketed_notes():
    """Help texts are Rich markup: an unescaped [default: ...] or [onnx] is taken for a tag and vanishes."""
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            unescaped = re.findall(r"(?<!\\)\[[^\]]*\]", getattr(param, "help", None) or "")
            assert not unescaped, f"tsf {name} {param.opts[0]}: {unescaped}"


def test_batch_to_standard_output_for_pipelines(checkpoint, videos):
    result = invoke("batch", videos / "a.mp4", videos / "empty.mp4", "-o", "-", "--model", checkpoint, "--workers", "0")
    assert result.exit_code == 8
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(r["path"]).name, r["status"]) for r in lines] == [("empty.mp4", "error"), ("a.mp4", "ok")]
    assert "-> standard output" in result.stderr
    as_csv = invoke("batch", videos / "a.mp4", "-o", "-", "--format", "csv", "--model", checkpoint, "--workers", "0")
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert as_csv.exit_code == 0 and [r["status"] for r in rows] == ["ok"] and rows[0]["label_5"]
    resumed = invoke("batch", videos / "a.mp4", "-o", "-", "--resume", "--model", checkpoint)
    assert resumed.exit_code == 2 and "--resume needs an output file" in resumed.stderr


def test_batch_of_an_empty_folder_says_so(checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("batch", tmp_path / "empty", "-o", tmp_path / "out.jsonl", "--model", checkpoint)
    assert result.exit_code == 0
    assert f"Warning: nothing to do: {tmp_path / 'empty'} holds no files" in result.stderr


def test_embed_resume_adds_new_inputs_to_a_finished_file(checkpoint, videos, tmp_path):
    out = tmp_path / "vectors.parquet"
    first = invoke("embed", videos / "a.mp4", "-o", out, "--model", checkpoint, "--workers", "0", "--dtype", "fp32")
    assert first.exit_code == 0, first.output
    more = [videos / "a.mp4", videos / "b.webm", videos / "c.mkv"]
    result = invoke("embed", *more, "-o", out, "--model", checkpoint, "--workers", "0", "--dtype", "fp32", "--resume")
    assert result.exit_code == 0, result.output
    assert "3 input(s): 2 ok, 0 failed, 1 already recorded" in result.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(out).column("path").to_pylist() == [str(p) for p in more]


def test_the_rate_is_over_the_whole_run_not_the_last_burst():
    from types import SimpleNamespace

    from tsf_cli.cli.display import VideosPerSecond

    burst = SimpleNamespace(completed=4, elapsed=2.0, speed=4900.0)  # a batch of four finished at once
    assert VideosPerSecond().render(burst).plain == "2.00 videos/s"
    assert VideosPerSecond().render(SimpleNamespace(completed=0, elapsed=0.5, speed=None)).plain == "- videos/s"
