"""Results that cannot be trusted say so: a clip longer than the video, a still image, frames that never change.
The warnings reach every output (JSON, JSONL, CSV, embedding files) and stderr; ``--strict`` makes them failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests._cli import invoke
from tests._videos import make_video
from tsf_cli.demo.synthetic import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "short.mp4", frames=24, size=(64, 48))
    make_video(folder / "still.mp4", frames=1, size=(64, 48))
    frozen = np.full((30, 48, 64, 3), 90, dtype=np.uint8)
    write_video(folder / "frozen.avi", frozen, fps=10, codec="mjpeg")
    return folder


def classify(checkpoint, path, *options):
    result = invoke("classify", path, "--model", checkpoint, "--json", *options)
    return result, json.loads(result.stdout)["results"][0] if result.stdout else None


def test_a_clip_longer_than_the_video_says_so(checkpoint, videos):
    result, record = classify(checkpoint, videos / "short.mp4", "--frames", "100")
    assert result.exit_code == 0
    (warning,) = record["warnings"]
    assert warning == "the clip runs past the video's end (24 frames): 76 of its 100 frames repeat the last one"
    assert f"Warning: {videos / 'short.mp4'}: {warning}" in result.stderr
    _, plain = classify(checkpoint, videos / "short.mp4")
    assert plain["warnings"] == []


def test_a_still_image_and_a_frozen_video_say_nothing_moves(checkpoint, videos):
    _, still = classify(checkpoint, videos / "still.mp4")
    assert still["warnings"] == ["a single frame (a still image): there is no motion to classify"]
    _, frozen = classify(checkpoint, videos / "frozen.avi")
    assert frozen["warnings"] == ["all 4 sampled frames are the same picture: nothing moves"]


def test_strict_turns_warnings_into_failures(checkpoint, videos, tmp_path):
    result, _ = classify(checkpoint, videos / "still.mp4", "--strict")
    assert result.exit_code == 3 and "still image" in result.stderr
    out = tmp_path / "out.csv"
    batch = invoke("batch", videos, "-o", out, "--model", checkpoint, "--workers", "0", "--strict")
    assert batch.exit_code == 8
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open(newline=""))}
    assert (rows["still.mp4"]["status"], rows["still.mp4"]["error"]) == ("error", "Warning")
    assert rows["frozen.avi"]["status"] == "error" and rows["short.mp4"]["status"] == "ok"


def test_warnings_reach_batch_and_embedding_files(checkpoint, videos, tmp_path):
    out = tmp_path / "out.csv"
    result = invoke("batch", videos, "-o", out, "--model", checkpoint, "--workers", "0", "--frames", "30")
    assert result.exit_code == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open(newline=""))}
    assert "repeat the last one" in rows["short.mp4"]["warnings"]
    assert "still image" in rows["still.mp4"]["warnings"]
    (line,) = [line for line in result.stderr.splitlines() if "still image" in line]  # one line, never wrapped
    assert line == f"Warning: {videos / 'still.mp4'}: a single frame (a still image): there is no motion to classify"
    vectors = tmp_path / "v.npz"
    assert invoke("embed", videos / "still.mp4", "-o", vectors, "--model", checkpoint, "--workers", "0").exit_code == 0
    with np.load(vectors) as saved:
        (video,) = json.loads(str(saved["metadata"]))["videos"]
    assert video["warnings"] == ["a single frame (a still image): there is no motion to classify"]
