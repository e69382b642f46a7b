"""The bundled demo model really knows its motions: clips it has never seen (new seeds, sizes outside its training
range, codecs and containers it never trained on) go through ``tsf classify --model demo`` and come out right at
least 95% of the time; ``tsf demo`` runs offline end to end."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from tests._cli import invoke
from tsf_cli.demo.recipe import DEMO_CONFIG, DEMO_PREPROCESSOR
from tsf_cli.demo.synthetic import MOTIONS, write_clip

DEMO = Path(str(resources.files("tsf_cli").joinpath("demo", "weights")))
# (suffix, codec): training saw h264 in mp4 and mkv, mpeg4 and mjpeg in avi; vp9 in webm and mpeg4 in mkv are new.
FORMATS = [(".webm", "libvpx-vp9"), (".mkv", "mpeg4"), (".avi", "mjpeg"), (".mp4", "libx264"), (".mkv", "libx264")]
# (width, height): smaller, larger, wider and taller than the near-square 80-176 pixel frames it trained on, and
# one inside that range.
SIZES = [(64, 48), (200, 150), (256, 144), (96, 160), (120, 120)]
CLIPS = 80  # 10 per motion, so one mistake costs 1.25 points and the bar allows four


def test_the_demo_folder_is_a_small_complete_checkpoint():
    files = {p.name: p.stat().st_size for p in DEMO.iterdir()}
    assert set(files) == {"config.json", "model.safetensors", "preprocessor_config.json"}
    assert files["model.safetensors"] < 8 * 2**20
    config = json.loads((DEMO / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(MOTIONS)
    assert {key: config[key] for key in DEMO_CONFIG} == DEMO_CONFIG  # built by the recipe in tsf_cli.demo.recipe
    preprocessor = json.loads((DEMO / "preprocessor_config.json").read_text())
    assert {key: preprocessor[key] for key in DEMO_PREPROCESSOR} == DEMO_PREPROCESSOR


def test_models_lists_the_demo_as_bundled_and_available_offline():
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    demo = next(m for m in json.loads(result.stdout) if m["name"] == "demo")
    assert demo["available_offline"] and demo["source"] == str(DEMO) and demo["license"] == "Apache-2.0"


@pytest.fixture(scope="module")
def fresh_clips(tmp_path_factory) -> list[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("fresh")
    clips = []
    for i in range(CLIPS):
        suffix, codec = FORMATS[i % len(FORMATS)]
        width, height = SIZES[(i // len(FORMATS)) % len(SIZES)]
        motion = MOTIONS[i % len(MOTIONS)]
        path = folder / f"{i:02d}_{motion}{suffix}"
        write_clip(path, motion, seed=[20_240_601, i], width=width, height=height, codec=codec)
        clips.append((path, motion))
    return clips


def test_the_demo_model_classifies_fresh_clips_through_the_cli(fresh_clips):
    paths = [path for path, _ in fresh_clips]
    result = invoke("classify", *paths, "--model", "demo", "--dtype", "fp32", "--json", "-k", "1")
    assert result.exit_code == 0, result.output
    predicted = {r["path"]: r["predictions"][0]["label"] for r in json.loads(result.stdout)["results"]}
    wrong = [(path.name, predicted[str(path)]) for path, motion in fresh_clips if predicted[str(path)] != motion]
    accuracy = 1 - len(wrong) / len(fresh_clips)
    assert accuracy >= 0.95, f"top-1 {accuracy:.3f}; wrong: {wrong}"


def test_eval_tables_read_at_80_columns(fresh_clips, tmp_path, monkeypatch):
    for path, motion in fresh_clips[:16]:  # two of each motion, in class folders
        (tmp_path / motion).mkdir(exist_ok=True)
        (tmp_path / motion / path.name).symlink_to(path)
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke("eval", tmp_path, "--model", "demo", "--dtype", "fp32", "--workers", "0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for number, motion in enumerate(sorted(MOTIONS), 1):  # whole label names, numbered columns
        assert any(f"{number} {motion} " in line for line in lines), motion


def test_models_reads_at_80_columns_with_every_hub_id_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke("models")
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    hub_ids = [m["source"] for m in json.loads(invoke("models", "--json").stdout) if m["name"] != "demo"]
    assert all(any(hub_id in line for line in lines) for hub_id in hub_ids)
    assert lines[0].split() == ["name", "/", "source", "frames", "labels", "licence", "cached"]


def test_tsf_demo_generates_a_clip_and_classifies_it_offline(tmp_path):
    clip = tmp_path / "kept [bold] [red].webm"  # brackets are not markup
    result = invoke("demo", "--motion", "moving_up", "--seed", "3", "--output", clip)
    assert result.exit_code == 0, result.output
    assert clip.is_file() and f"Generated {clip}: " in result.stderr  # for people: the kept clip, what it shows
    assert "moving up" in result.stderr and "seed 3" in result.stderr
    assert re.search(r"truth: moving_up, prediction: \w+ \((right|wrong)\)", result.stdout)

    anything = invoke("demo")  # what the README's set-up runs: a random motion and seed, nothing kept
    assert anything.exit_code == 0, anything.output
    assert "truth: " in anything.stdout and "probability" in anything.stdout
    assert "Generated a clip, not kept (-o FILE keeps it): " in anything.stderr
    assert anything.stdout.splitlines()[0].startswith("the generated clip (")  # no title naming a deleted file

    kept = tmp_path / "fade.avi"
    as_json = invoke("demo", "--motion", "fading_in", "--seed", "4", "--json", "-o", kept)
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    (record,) = document["results"]
    assert record["path"] == str(kept) and record["model"]["name"] == "demo" and len(record["predictions"]) == 3
    correct = record["predictions"][0]["label"] == "fading_in"
    assert document["demo"] == {"truth": "fading_in", "seed": 4, "clip": str(kept), "correct": correct}
    unkept = json.loads(invoke("demo", "--motion", "growing", "--seed", "5", "--json").stdout)["demo"]
    assert unkept["clip"] is None and unkept["truth"] == "growing"


def test_tsf_demo_rejects_an_unknown_motion():
    result = invoke("demo", "--motion", "spinning")
    assert result.exit_code == 2
    assert "unknown motion 'spinning'" in result.stderr


def test_tsf_demo_refuses_an_output_it_cannot_or_should_not_write(tmp_path):
    kept = tmp_path / "mine.mp4"
    kept.write_bytes(b"precious")
    result = invoke("demo", "--output", kept)
    assert result.exit_code == 6 and f"{kept} already exists" in result.stderr
    assert kept.read_bytes() == b"precious"

    missing = tmp_path / "no" / "such" / "folder.mp4"
    result = invoke("demo", "--output", missing)
    assert result.exit_code == 6 and f"{missing}: no such folder" in result.stderr
    assert not missing.parent.exists()

    under_a_file = kept / "clip.mp4"
    result = invoke("demo", "--output", under_a_file)
    assert result.exit_code == 6 and len(result.stderr.strip().splitlines()) == 1

    result = invoke("demo", "--output", tmp_path)  # a folder
    assert result.exit_code == 6 and f"{tmp_path} already exists" in result.stderr

    result = invoke("demo", "--output", tmp_path / "clip.xyz")
    assert result.exit_code == 2 and "cannot write a .xyz clip" in result.stderr
    assert list(tmp_path.iterdir()) == [kept]

    result = invoke("demo", "--seed", "-1")
    assert result.exit_code == 2 and "--seed" in result.stderr


def test_tsf_demo_never_writes_over_a_file_made_while_it_ran(tmp_path, monkeypatch):
    from tsf_cli.demo import run

    target = tmp_path / "clip.mp4"
    real_write_clip = run.write_clip

    def someone_else_writes_first(*args, **kwargs):
        target.write_bytes(b"someone else's")
        return real_write_clip(*args, **kwargs)

    monkeypatch.setattr(run, "write_clip", someone_else_writes_first)
    result = invoke("demo", "-o", target)
    assert result.exit_code == 6 and f"{target} already exists" in result.stderr
    assert target.read_bytes() == b"someone else's"
