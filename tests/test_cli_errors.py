"""What a user sees when something is wrong: one ``Error:`` line on stderr, the documented exit code, no library
noise, and no work done (or lost) before a mistake in the command line or an unwritable output is found."""

from __future__ import annotations

import json
import pickle
import socket
import time
from pathlib import Path

import pytest
import torch

from tests._cli import invoke, one_error_line
from tests._videos import make_video


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=24, size=(64, 48))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_hub_fails_at_once_in_one_line_with_the_way_out(video, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    result = invoke("classify", video)
    assert time.monotonic() - started < 10  # huggingface_hub alone retries for about 25 s
    assert result.exit_code == 4
    line = one_error_line(result)
    assert "the hub cannot be reached" in line and "Connection refused" in line
    assert "--model demo" in line and "HF_HUB_OFFLINE=1" in line and "local folder" in line


def test_an_unreachable_hub_still_finds_a_cached_model(checkpoint, video, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from tests._models import checkpoint_files, make_hub_cache

    make_hub_cache(tmp_path / "hub", "someone/tiny", checkpoint_files(checkpoint))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    result = invoke("classify", video, "--model", "someone/tiny", "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "--bogus"], "Error: No such option: --bogus (see 'tsf classify --help')"),
        (["classify"], "Error: Missing argument 'videos'. (see 'tsf classify --help')"),
        (["batch", "x", "-o", "y.jsonl", "--workers", "-1"], "Error: Invalid value for '--workers'"),
        (["nosuchcommand"], "Error: No such command 'nosuchcommand'."),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert one_error_line(result).startswith(message)


def test_an_unknown_device_is_a_bad_value_exit_2_and_a_missing_one_exit_7(checkpoint, video, monkeypatch):
    result = invoke("classify", video, "--model", checkpoint, "--device", "tpu")
    assert result.exit_code == 2 and "unknown device 'tpu'" in one_error_line(result)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert invoke("classify", video, "--model", checkpoint, "--device", "cuda").exit_code == 7


def test_what_the_system_refuses_is_one_line_not_a_traceback(checkpoint, video, tmp_path):
    """Python's Path.is_dir() raises for what it does not expect (a folder it may not enter, a name too long); as
    root no permission is refused, so a name longer than the file system takes (ENAMETOOLONG) stands in."""
    too_long = "a" * 5000
    for args in (
        ["batch", too_long, "-o", tmp_path / "out.jsonl", "--model", checkpoint],
        ["batch", video, "-o", tmp_path / too_long / "out.jsonl", "--model", checkpoint],
    ):
        result = invoke(*args)
        assert not isinstance(result.exception, OSError), result.exception
        assert result.exit_code == 1 and "File name too long" in one_error_line(result)


def test_what_an_output_cannot_be_is_refused_before_the_model_loads(video, tmp_path):
    missing_model = tmp_path / "no-model-here"  # loading it first would fail otherwise, with exit 4
    for args, message in (
        (["-o", "-", "--resume"], "--resume needs an output file to read back, not -"),
        (["-o", tmp_path / "out.jsonl", "--format", "csv"], "--format csv disagrees with the file's suffix"),
        (["-o", f"{tmp_path}/out/", "--format", "csv", "--engine", "ray"], "a folder gets Parquet records"),
    ):
        result = invoke("batch", video, "--model", missing_model, *args)
        assert result.exit_code == 2 and message in one_error_line(result), result.output


def test_a_gpu_index_with_ray_is_refused_before_the_model_loads(video, tmp_path):
    pytest.importorskip("ray")
    args = ["batch", video, "-o", tmp_path / "o.jsonl", "--engine", "ray", "--device", "cuda:1"]
    result = invoke(*args, "--model", tmp_path / "no-model-here")  # loading it first would be exit 4
    assert result.exit_code == 2 and "each model actor gets a GPU" in one_error_line(result)


@pytest.mark.parametrize("timeout", ["1e10", "inf"])
def test_a_timeout_too_long_to_wait_for_is_no_limit(checkpoint, video, tmp_path, timeout):
    """Past 24.8 days the system's waits overflow (OverflowError was a traceback): such a timeout is no limit."""
    for workers in ("0", "1"):
        out = tmp_path / f"{workers}.jsonl"
        result = invoke("batch", video, "-o", out, "--model", checkpoint, "--timeout", timeout, "--workers", workers)
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["status"] == "ok"
    assert invoke("timeline", video, "--model", checkpoint, "--timeout", timeout).exit_code == 0


def test_tsf_alone_prints_the_help():
    result = invoke()
    assert result.exit_code == 0 and "Commands" in result.stdout and result.stderr == ""


def test_debug_and_quiet_work_after_the_command_too(checkpoint, video, tmp_path):
    result = invoke("classify", video, "--model", "not-a-model", "--debug")
    assert "Traceback (most recent call last)" in result.stderr and "ModelNotFoundError" in result.stderr
    assert result.exit_code == 4  # the documented code still, not a crash's 1
    out = tmp_path / "out.jsonl"
    quiet = invoke("batch", video, "-o", out, "--model", checkpoint, "--workers", "0", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and out.exists()
    loud = invoke("batch", video, "-o", out, "--model", checkpoint, "--workers", "0", "--overwrite")
    assert "1 input(s): 1 ok" in loud.stderr
    failing = invoke("-q", "classify", tmp_path / "missing.mp4", "--model", checkpoint)
    assert failing.exit_code == 3 and one_error_line(failing)  # --quiet never hides errors


# ------------------------------------------------------------------------------------------ outputs checked first


TRAIN = ["--from-scratch", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--val-split", "0"]


def test_train_into_a_place_it_cannot_write_fails_before_any_work(dataset, base, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("train", dataset / "data", "-o", blocker / "model", "--model", base, *TRAIN)
    assert result.exit_code == 6
    assert one_error_line(result) == f"Error: {blocker / 'model'}: cannot write: {blocker} is a file, not a folder"


def test_train_into_a_run_folder_needs_resume_or_overwrite(dataset, base, tmp_path):
    out = tmp_path / "model"
    assert invoke("train", dataset / "data", "-o", out, "--model", base, *TRAIN).exit_code == 0
    before = (out / "training_state.pt").read_bytes()
    again = invoke("train", dataset / "data", "-o", out, "--model", base, *TRAIN)
    assert again.exit_code == 6
    assert "--resume to continue it, --overwrite to start again" in one_error_line(again)
    assert (out / "training_state.pt").read_bytes() == before
    both = invoke("train", dataset / "data", "-o", out, "--model", base, *TRAIN, "--resume", "--overwrite")
    assert both.exit_code == 2 and "exclude each other" in one_error_line(both)
    fresh = invoke("train", dataset / "data", "-o", out, "--model", base, *TRAIN, "--overwrite", "--seed", "3")
    assert fresh.exit_code == 0, fresh.output
    assert (out / "training_state.pt").read_bytes() != before


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "content, cause",
    [
        (b"", "empty file"),
        (b"\x00garbage" * 50, "corrupt, truncated or unsafe PyTorch file"),
        (pickle.dumps(_Payload()), "corrupt, truncated or unsafe PyTorch file"),
        (None, "not a tsf training state (no epoch, history"),
    ],
)
def test_a_damaged_or_hostile_training_state_is_one_line_and_exit_5(dataset, base, tmp_path, content, cause, capfd):
    out = tmp_path / "model"
    out.mkdir()
    if content is None:
        torch.save({"model": {}, "optimizer": {}}, out / "training_state.pt")
    else:
        (out / "training_state.pt").write_bytes(content)
    result = invoke("train", dataset / "data", "-o", out, "--model", base, *TRAIN, "--resume")
    assert result.exit_code == 5
    assert cause in one_error_line(result)
    assert "this must never run" not in result.output + capfd.readouterr().out


def test_eval_checks_that_it_can_write_its_csv_before_evaluating(dataset, base, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = invoke("eval", dataset / "val", "--model", base, "--csv", blocker / "sub" / "c.csv", "--workers", "0")
    assert result.exit_code == 6 and "no such folder" in one_error_line(result)
    (tmp_path / "c.csv").mkdir()  # found only after evaluating every video before: --model base has no weights
    folder = invoke("eval", dataset / "val", "--model", base, "--csv", tmp_path / "c.csv", "--workers", "0")
    assert folder.exit_code == 6 and "it is a folder, not a file" in one_error_line(folder)


def test_the_ray_engine_without_ray_is_one_line_naming_the_extra(checkpoint, video, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    output = tmp_path / "labels.jsonl"
    result = invoke("batch", video, "-o", output, "--engine", "ray", "-m", checkpoint, "--device", "cpu")
    assert result.exit_code == 1
    assert one_error_line(result) == ('Error: --engine ray needs Ray (ray[data]>=2.51,<3): pip install "tsf-cli[ray]"')


def test_a_ray_address_without_the_ray_engine_is_a_usage_error(video, tmp_path):
    result = invoke("batch", video, "-o", tmp_path / "labels.jsonl", "--ray-address", "auto")
    assert result.exit_code == 2
    assert one_error_line(result) == "Error: --ray-address goes with --engine ray"


def test_a_folder_output_needs_the_ray_engine(video, tmp_path):
    result = invoke("batch", video, "-o", f"{tmp_path}/labels/")
    assert result.exit_code == 6
    assert "a folder gets Parquet records from --engine ray" in one_error_line(result)
