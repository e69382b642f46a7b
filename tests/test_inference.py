"""The inference core: views averaged into one record, uint8 views normalised on the model's device, and the
resumable runs of the Python API (``tsf_cli.batch``, ``tsf_cli.embed_files``) without the command line."""

from __future__ import annotations

import json
import pickle
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

import tsf_cli
from tests._videos import make_text, make_video
from tsf_cli.inference.predictor import Predictor
from tsf_cli.inference.runner import run
from tsf_cli.inference.views import load_views
from tsf_cli.media.decode import sample_clips
from tsf_cli.media.preprocess import preprocess


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder / "a.mp4", frames=40, size=(96, 48))  # wide: three crops see different parts
    make_video(folder / "b.webm", frames=20, size=(48, 64))
    make_video(folder / "c.mkv", frames=12, size=(40, 40), gop=4)
    make_text(folder / "d.txt")
    return folder


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor(str(checkpoint), device="cpu", dtype="fp32")


def test_a_record_holds_the_mean_of_its_views(predictor, videos):
    views = predictor.view_options(clips=2, crops=3)
    path = str(videos / "a.mp4")
    per_view = predictor.probabilities(load_views(path, views, predictor.preprocess_config).pixels)  # (6, labels)
    mean = per_view.mean(0)
    # the views disagree, so a record that took any one of them instead of their mean would show
    assert np.abs(per_view - mean).max(1).min() > 1e-3
    (record,) = run(predictor, [path], views, top_k=5)
    assert [p.index for p in record.predictions] == np.argsort(-mean).tolist()
    assert [p.probability for p in record.predictions] == pytest.approx(np.sort(mean)[::-1].tolist())


def test_an_embedding_is_the_mean_of_its_views(predictor, videos):
    views = predictor.view_options(crops=3)
    path = str(videos / "a.mp4")
    per_view = predictor.embeddings(load_views(path, views, predictor.preprocess_config).pixels, "mean")  # (3, 32)
    assert np.abs(per_view - per_view.mean(0)).max(1).min() > 1e-3
    (record,) = run(predictor, [path], views, pool="mean")
    np.testing.assert_allclose(record.vector, per_view.mean(0), atol=1e-6)


def test_views_cross_processes_as_uint8_and_become_the_reference_floats_on_the_device(predictor, videos):
    views = predictor.view_options(crops=3)
    path = str(videos / "a.mp4")
    loaded = load_views(path, views, predictor.preprocess_config)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (3, 4, 32, 32, 3)
    clips = sample_clips(path, 4, "uniform")
    reference = preprocess([c.frames for c in clips], predictor.preprocess_config, crops=3)  # what floats were
    assert torch.equal(predictor.pixel_values(loaded.pixels), reference)
    assert len(pickle.dumps(loaded)) < 0.3 * len(pickle.dumps(reference.numpy()))


class _StopAfter:
    """An observer that interrupts a run, as Ctrl-C would, once ``count`` records are written."""

    def __init__(self, count: int):
        self.count, self.records = count, []

    def loading(self, model):
        return nullcontext()

    def started(self, total, todo):
        self.total, self.todo = total, todo

    def finished(self, record):
        self.records.append(record)
        if len(self.records) == self.count:
            raise KeyboardInterrupt


def test_a_resumable_batch_from_python(checkpoint, videos, tmp_path):
    out = tmp_path / "labels.jsonl"
    with pytest.raises(KeyboardInterrupt):
        tsf_cli.batch(videos, out, model=str(checkpoint), workers=0, observer=_StopAfter(2))
    assert len(out.read_text().splitlines()) == 2
    summary = tsf_cli.batch([videos], out, model=str(checkpoint), workers=0, resume=True)
    assert (summary.total, summary.skipped, summary.ok + summary.failed) == (4, 2, 2)
    assert summary.failed + summary.failed_before == 1  # d.txt, in whichever run reached it
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in records) == sorted(str(p) for p in videos.iterdir())
    assert {r["path"]: r["status"] for r in records}[str(videos / "d.txt")] == "error"


def test_a_resumable_embedding_run_from_python(checkpoint, videos, tmp_path):
    out = tmp_path / "vectors.npz"
    observer = _StopAfter(1)
    with pytest.raises(KeyboardInterrupt):
        tsf_cli.embed_files([videos], out, model=str(checkpoint), workers=0, observer=observer)
    assert not out.exists() and (tmp_path / "vectors.npz.partial.jsonl").exists()
    summary = tsf_cli.embed_files([videos], out, model=str(checkpoint), workers=0, resume=True)
    assert (summary.total, summary.skipped, summary.failed + summary.failed_before) == (4, 1, 1)
    with np.load(out) as saved:
        assert saved["embeddings"].shape == (3, 32)
        assert sorted(saved["paths"].tolist()) == sorted(str(videos / n) for n in ("a.mp4", "b.webm", "c.mkv"))
    assert not (tmp_path / "vectors.npz.partial.jsonl").exists()
