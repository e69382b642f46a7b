"""``tsf timeline`` and ``tsf batch --timeline`` from the command line (CliRunner), and ``tsf_cli.timeline`` from
Python: what they print and write, and every output refused before any work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

import tsf_cli
from tests._cli import invoke
from tests._videos import make_text, make_video
from tsf_cli import api
from tsf_cli.results import Timeline


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "a.mp4", frames=120, fps=12, size=(64, 48))  # 10 s
    make_video(folder / "b.webm", frames=60, fps=10, size=(48, 64))  # 6 s
    make_text(folder / "notes.txt")
    return folder


def test_a_table_and_a_strip_in_the_terminal_and_every_file_asked_for(checkpoint, videos, tmp_path):
    outputs = [tmp_path / f"a.{suffix}" for suffix in ("json", "csv", "srt", "vtt", "png", "svg", "html")]
    args = [f"-o{path}" for path in outputs]
    result = invoke("timeline", videos / "a.mp4", "--model", checkpoint, "--window", "2", *args)
    assert result.exit_code == 0, result.output
    assert "a.mp4: " in result.stdout and "segments" in result.stdout and "confidence" in result.stdout
    assert "windows of 2 s every 1 s" in result.stdout  # the hop: half the window
    assert all(path.stat().st_size > 0 for path in outputs)
    for path in outputs:
        assert f"Wrote {path}" in result.stderr
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (1200, 450)
    (record,) = json.loads((tmp_path / "a.json").read_text())["results"]
    assert record["path"] == str(videos / "a.mp4") and len(record["windows"]) == 9


def test_json_on_stdout_holds_windows_and_segments_as_asked(checkpoint, videos):
    result = invoke(
        "timeline", videos / "a.mp4", videos / "b.webm", "--model", checkpoint, "--dtype", "fp32", "--json",
        "--window", "3", "--hop", "1.5", "--min-probability", "0.1", "--smooth", "1", "-k", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)["results"]
    assert first["path"] == str(videos / "a.mp4") and second["path"] == str(videos / "b.webm")
    assert first["settings"] == {"window": 3.0, "hop": 1.5, "min_probability": 0.1, "smooth": 1, "top_k": 2, "crops": 1}
    assert first["duration"] == pytest.approx(10.0) and second["duration"] == pytest.approx(6.0)
    starts = [w["start"] for w in first["windows"]]
    assert starts == [0, 1.5, 3, 4.5, 6, 7] and all(len(w["predictions"]) == 2 for w in first["windows"])
    assert all(len(w["indices"]) == 4 for w in first["windows"])  # the tiny model's 4 frames
    assert first["segments"][0]["start"] == 0 and first["segments"][-1]["end"] == pytest.approx(10.0)
    assert first["model"]["name"] == str(checkpoint) and first["model"]["dtype"] == "fp32"


def test_several_videos_write_a_file_each_through_stem(checkpoint, videos, tmp_path):
    result = invoke(
        "timeline", videos / "a.mp4", videos / "b.webm", "--model", checkpoint, "-o", tmp_path / "{stem}.srt"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.srt", "b.srt"]

    result = invoke("timeline", videos / "a.mp4", videos / "b.webm", "--model", checkpoint, "-o", tmp_path / "t.srt")
    assert result.exit_code == 2 and "needs {stem} in its name" in result.stderr


@pytest.mark.parametrize(
    "output, message",
    [
        ("t.txt", "cannot write a timeline as '.txt' files; use one of .json, .csv, .srt, .vtt, .png, .svg, .html"),
        ("missing/t.srt", "no such folder"),
    ],
)
def test_an_output_that_cannot_be_written_stops_the_run_before_the_model_loads(
    checkpoint, videos, tmp_path, monkeypatch, output, message
):
    loaded = []
    monkeypatch.setattr(api, "load_model", lambda *a, **k: loaded.append(a))
    result = invoke("timeline", videos / "a.mp4", "--model", checkpoint, "-o", tmp_path / output)
    assert result.exit_code == 6 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert loaded == [] and list(tmp_path.iterdir()) == []


def test_two_videos_of_one_name_cannot_share_a_file(checkpoint, videos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.mp4").write_bytes((videos / "a.mp4").read_bytes())
    result = invoke("timeline", videos / "a.mp4", other / "a.mp4", "--model", checkpoint, "-o", tmp_path / "{stem}.vtt")
    assert result.exit_code == 6 and "given twice" in result.stderr


def test_a_plot_without_matplotlib_names_the_extra_in_one_line_before_any_work(
    checkpoint, videos, tmp_path, monkeypatch
):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke(
        "timeline", videos / "a.mp4", "--model", checkpoint, "-o", tmp_path / "t.json", "-o", tmp_path / "t.png"
    )
    assert result.exit_code == 1  # as every missing extra
    assert result.stderr.strip() == 'Error: writing .png or .svg needs matplotlib: pip install "tsf-cli[plot]"'
    assert list(tmp_path.iterdir()) == []


def test_a_bad_video_is_one_error_line_and_the_others_are_done(checkpoint, videos):
    result = invoke("timeline", videos / "notes.txt", videos / "b.webm", "--model", checkpoint)
    assert result.exit_code == 3
    assert f"Error: {videos / 'notes.txt'}: " in result.stderr
    assert "b.webm: " in result.stdout
    as_json = invoke("timeline", videos / "notes.txt", videos / "b.webm", "--model", checkpoint, "--json")
    assert as_json.exit_code == 3
    failure, good = json.loads(as_json.stdout)["results"]  # every video has its record, as with classify --json
    assert failure["path"] == str(videos / "notes.txt") and failure["status"] == "error"
    assert good["path"] == str(videos / "b.webm") and good["segments"]


def test_windows_further_apart_than_they_are_long_are_warned_about(checkpoint, videos):
    result = invoke("timeline", videos / "a.mp4", "--model", checkpoint, "--window", "1", "--hop", "4")
    assert result.exit_code == 0, result.output
    assert "Warning: a hop of 4 s is longer than the 1 s window: the windows see 25% of the video" in result.stderr


def test_the_python_api_returns_the_timeline_and_writes_its_files(checkpoint, videos, tmp_path):
    timeline = tsf_cli.timeline(videos / "b.webm", model=str(checkpoint), window=2.0, output=[tmp_path / "b.vtt"])
    assert isinstance(timeline, Timeline) and timeline.path == str(videos / "b.webm")
    assert [(w.start, w.end) for w in timeline.windows] == [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
    assert (tmp_path / "b.vtt").read_text().startswith("WEBVTT")
    with pytest.raises(tsf_cli.VideoError, match="notes.txt"):
        tsf_cli.timeline(videos / "notes.txt", model=str(checkpoint))


# ---------------------------------------------------------------------------------------------------------------------
# tsf batch --timeline


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_records_one_timeline_per_file_and_a_bad_file_is_a_failure_record(checkpoint, videos, tmp_path):
    out = tmp_path / "t.jsonl"
    result = invoke("batch", videos, "-o", out, "--timeline", "--window", "2", "--model", checkpoint, "--workers", "1")
    assert result.exit_code == 8, result.output  # notes.txt failed
    by_path = {r["path"]: r for r in records(out)}
    assert set(by_path) == {str(videos / n) for n in ("a.mp4", "b.webm", "notes.txt")}
    assert by_path[str(videos / "notes.txt")]["status"] == "error"
    good = by_path[str(videos / "a.mp4")]
    assert good["status"] == "ok" and good["segments"] and "windows" not in good  # segments only, unless --windows
    assert good["settings"]["window"] == 2.0 and good["duration"] == pytest.approx(10.0)
    assert "3 input(s): 2 ok, 1 failed" in result.stderr

    with_windows = tmp_path / "w.jsonl"
    result = invoke("batch", videos / "b.webm", "-o", with_windows, "--timeline", "--windows", "--model", checkpoint)
    assert result.exit_code == 0, result.output
    (record,) = records(with_windows)
    # no preset: 4 frames over 4 x 32 / 30 s, every half of that; a last window ends at the video's end
    assert record["settings"]["window"] == pytest.approx(4 * 32 / 30)
    assert [(w["start"], w["end"]) for w in record["windows"]] == [(0, 4.266667), (1.733333, 6.0)]


def test_batch_timelines_resume_and_refuse_to_mix_with_other_records(checkpoint, videos, tmp_path):
    out = tmp_path / "t.jsonl"
    result = invoke("batch", videos / "a.mp4", "-o", out, "--timeline", "--model", checkpoint, "--workers", "0")
    assert result.exit_code == 0, result.output
    resumed = invoke(
        "batch", videos / "a.mp4", videos / "b.webm", "-o", out, "--timeline", "--model", checkpoint, "--resume"
    )
    assert resumed.exit_code == 0, resumed.output
    assert "2 input(s): 1 ok, 0 failed, 1 already recorded" in resumed.stderr
    assert [r["path"] for r in records(out)] == [str(videos / "a.mp4"), str(videos / "b.webm")]

    new = tmp_path / "c.mp4"
    new.write_bytes((videos / "a.mp4").read_bytes())
    labels = invoke("batch", new, "-o", out, "--model", checkpoint, "--resume", "--workers", "0")
    assert labels.exit_code == 6 and "holds results of timelines of model" in labels.stderr
    assert len(records(out)) == 2  # nothing written

    other_window = invoke(
        "batch", new, "-o", out, "--timeline", "--window", "5", "--model", checkpoint, "--resume", "--workers", "0"
    )
    assert other_window.exit_code == 6 and "(window 5.0, hop 2.5, " in other_window.stderr


def test_batch_timeline_options_that_do_not_go_together(checkpoint, videos, tmp_path):
    csv_out = invoke("batch", videos, "-o", tmp_path / "t.csv", "--timeline", "--model", checkpoint)
    assert csv_out.exit_code == 6 and "only .jsonl keeps" in csv_out.stderr and not (tmp_path / "t.csv").exists()
    for alone in (["--windows"], ["--smooth", "1"], ["--min-probability", "0.2"], ["--hop", "2"]):
        result = invoke("batch", videos, "-o", tmp_path / "t.jsonl", *alone, "--model", checkpoint)
        assert result.exit_code == 2 and "go with --timeline" in result.stderr, alone
    clips = invoke("batch", videos, "-o", tmp_path / "t.jsonl", "--timeline", "--clips", "2", "--model", checkpoint)
    assert clips.exit_code == 2 and "each window is one clip" in clips.stderr


def test_batch_timelines_stream_to_standard_output_as_jsonl(checkpoint, videos):
    result = invoke("batch", videos / "b.webm", "-o", "-", "--timeline", "--model", checkpoint, "--workers", "0")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["path"] == str(videos / "b.webm") and record["segments"] and "windows" not in record
    as_csv = invoke("batch", videos, "-o", "-", "--format", "csv", "--timeline", "--model", checkpoint)
    assert as_csv.exit_code == 6 and "only .jsonl keeps" in as_csv.stderr
