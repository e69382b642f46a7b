"""The API's own logic: which files a batch sees, how model names resolve, devices and precisions."""

from __future__ import annotations

import os

import pytest
import torch

from tsf_cli.errors import DeviceError, ModelNotFoundError, TsfError, UsageError
from tsf_cli.inference.predictor import Predictor, resolve_device, resolve_dtype
from tsf_cli.inference.views import ViewOptions
from tsf_cli.io.inputs import list_inputs
from tsf_cli.model.hub import resolve_model


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_lists_every_visible_file_sorted_and_skips_hidden_and_excluded(tmp_path):
    for name in ["b.mp4", "a.mkv", "notes.txt", ".DS_Store", "sub/c.mp4", ".hidden/d.mp4", "out.jsonl"]:
        _touch(tmp_path / name)
    flat = list_inputs(str(tmp_path), exclude=[str(tmp_path / "out.jsonl")])
    assert flat == [os.path.join(str(tmp_path), n) for n in ["a.mkv", "b.mp4", "notes.txt"]]
    deep = list_inputs(str(tmp_path), recursive=True, exclude=[str(tmp_path / "out.jsonl")])
    assert deep == [os.path.join(str(tmp_path), n) for n in ["a.mkv", "b.mp4", "notes.txt", "sub/c.mp4"]]


def test_list_file_and_glob_and_single_file(tmp_path):
    a, b = _touch(tmp_path / "a.mp4"), _touch(tmp_path / "b.webm")
    listing = _touch(tmp_path / "list.txt", f"# my videos\n{b}\n\n  {a}  \n{a}\n")
    assert list_inputs(str(listing)) == [str(a), str(b)]  # sorted, blank and comment lines skipped, no duplicates
    assert list_inputs(str(tmp_path / "*.mp4")) == [str(a)]
    assert list_inputs(str(b)) == [str(b)]


def test_paths_are_absolute_and_list_entries_relative_to_the_list(tmp_path, monkeypatch):
    video = _touch(tmp_path / "videos" / "clip.mp4")
    listing = _touch(tmp_path / "videos" / "todo.txt", "clip.mp4\n")
    monkeypatch.chdir(tmp_path)
    assert list_inputs("videos/todo.txt") == [str(video)]
    assert list_inputs("videos", exclude=["videos/todo.txt"]) == [str(video)]  # the same key, however it is named
    assert list_inputs(str(listing.parent)) == list_inputs("./videos/../videos") == [str(video), str(listing)]


def test_a_file_name_with_glob_characters_is_that_file_and_an_empty_glob_is_an_error(tmp_path):
    odd = _touch(tmp_path / "show [x264].mkv")
    assert list_inputs(str(odd)) == [str(odd)]
    with pytest.raises(TsfError, match=r"\*.webm: the pattern matches no file"):
        list_inputs(str(tmp_path / "*.webm"))


def test_choosing_another_sampling_drops_the_presets_stride():
    from types import SimpleNamespace

    preset_like = SimpleNamespace(
        default_views=ViewOptions(frames=8, sampling="stride", stride=32, target_fps=30, crops=3)
    )
    uniform = Predictor.view_options(preset_like, sampling="uniform")
    assert uniform == ViewOptions(frames=8, sampling="uniform", crops=3)
    assert Predictor.view_options(preset_like, stride=4).stride == 4
    with pytest.raises(ValueError, match="stride and start go with --sampling stride, not segments"):
        Predictor.view_options(preset_like, sampling="segments", stride=4)


def test_missing_source_is_one_clear_error(tmp_path):
    with pytest.raises(TsfError, match="nope: no such file, folder or matching glob"):
        list_inputs(str(tmp_path / "nope"))


def test_model_names_resolve_to_presets_folders_or_hub_ids(tmp_path):
    source, preset = resolve_model(str(tmp_path))
    assert (source, preset) == (str(tmp_path), None)
    assert resolve_model("someone/their-timesformer") == ("someone/their-timesformer", None)
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'no-such-model': not a preset \("):
        resolve_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="model folder './missing/dir' does not exist"):
        resolve_model("./missing/dir")


def test_a_bundled_model_missing_from_the_install_says_how_to_rebuild_it(monkeypatch):
    from dataclasses import replace

    from tsf_cli.model import hub
    from tsf_cli.presets import get_preset

    gone = replace(get_preset("demo"), bundled="no-such-folder")
    monkeypatch.setattr(hub, "get_preset", lambda name: gone)
    with pytest.raises(ModelNotFoundError, match=r"bundled model 'demo' is missing .* --build-demo .*no-such-folder"):
        resolve_model("demo")


def test_cuda_asked_for_without_cuda_is_a_device_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device cuda was asked for but .*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):  # a bad value, not a missing device
        resolve_device("gpu0")


def test_explicit_dtypes_and_auto_on_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("fp16", cpu) == torch.float16
    monkeypatch.setattr("tsf_cli.inference.predictor._cpu_has_fast_bf16", lambda: False)
    assert resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr("tsf_cli.inference.predictor._cpu_has_fast_bf16", lambda: True)
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of auto, fp32, bf16, fp16"):
        resolve_dtype("fp64", cpu)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": 0}, "frames must be at least 1"),
        ({"frames": 8, "sampling": "random"}, "sampling must be one of uniform, stride, segments"),
        ({"frames": 8, "crops": 2}, "crops must be 1 or 3"),
        ({"frames": 8, "clips": 0}, "clips must be at least 1"),
    ],
)
def test_view_options_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ViewOptions(**kwargs)
