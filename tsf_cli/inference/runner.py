"""Many videos -> records: decoding (in this process or in worker processes), batches across videos, failures.

``run`` is the one road from paths to records that every command takes (classify, batch, embed, eval): whatever
goes wrong with one file becomes that file's ``VideoFailure``, never an exception, and views of several videos go
through the model together. ``record_all`` adds what a long run needs on top: a sink that already holds earlier
records (``--resume``), and an ``Observer`` told about progress.

One ``timeout`` per video, enforced once: by the worker pool when decoding runs in workers (it stops a decoder stuck
anywhere, in FFmpeg's C code too), else by the decoder's own deadline, checked between packets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import numpy as np

from ..media.limits import DEFAULT_TIMEOUT_S, DecodeLimits
from ..media.preprocess import PreprocessConfig
from ..results import POOLS, BatchSummary, Prediction, VideoEmbedding, VideoFailure, VideoResult
from .views import VideoViews, ViewOptions, load_views

if TYPE_CHECKING:
    from .predictor import BasePredictor

Record = VideoResult | VideoEmbedding | VideoFailure
RUNTIMES = ("torch", "onnx")  # what runs the model: PyTorch, or ONNX Runtime on a graph exported from it


class Observer:
    """What a run tells its caller as it goes. Each method does nothing here; a progress display overrides them."""

    def loading(self, model: str) -> AbstractContextManager:
        """Entered while ``model`` loads."""
        return nullcontext()

    def started(self, total: int, todo: int) -> None:
        """``total`` inputs, of which ``todo`` are processed now (the rest were recorded by an earlier run)."""

    def finished(self, record: Record) -> None:
        """One input's record, as soon as it is known."""


def as_predictor(
    model: str | BasePredictor, observer: Observer | None = None, *, runtime: str = "torch", **load
) -> BasePredictor:
    """``model`` itself if it is a loaded predictor (whatever its runtime), else the ``runtime``'s predictor loaded
    with ``load`` (revision, device, dtype), the observer told while it loads."""
    from .predictor import BasePredictor

    if isinstance(model, BasePredictor):
        return model
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    with (observer or Observer()).loading(model):
        if runtime == "onnx":
            from .onnx_predictor import OnnxPredictor

            return OnnxPredictor(model, **load)
        from .predictor import Predictor

        return Predictor(model, **load)


def run(
    predictor: BasePredictor,
    paths: Iterable[str],
    views: ViewOptions | None = None,
    *,
    top_k: int = 5,
    pool: str | None = None,
    batch_size: int = 4,
    workers: int = 0,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    strict: bool = False,
) -> Iterator[Record]:
    """Classify (or, with ``pool``, embed) each path, yielding one record per path as soon as it is known.

    Views of up to ``batch_size`` videos run through the model together. With ``workers`` > 0 decoding runs in
    that many processes, overlapped with the model, and a decoder that crashes or takes more than ``timeout``
    seconds (None: no limit) fails only its own file. Records come in the order videos finish, not the order given.
    A video whose views come with warnings (``VideoViews.warnings``) is a failure with ``strict``, a record that
    carries them without.
    """
    if pool is not None and pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")
    views = views or predictor.default_views
    batch: list[VideoViews] = []
    for loaded in load_all(paths, views, predictor.preprocess_config, workers, timeout):
        if isinstance(loaded, VideoFailure):
            yield loaded
            continue
        if strict and loaded.warnings:
            yield VideoFailure(loaded.path, "Warning", f"{loaded.path}: {'; '.join(loaded.warnings)} (--strict)")
            continue
        batch.append(loaded)
        if len(batch) >= batch_size:
            yield from _run_batch(predictor, batch, top_k, pool)
            batch = []
    if batch:
        yield from _run_batch(predictor, batch, top_k, pool)


def _run_batch(predictor: BasePredictor, batch: list[VideoViews], top_k: int, pool: str | None) -> Iterator[Record]:
    pixels = np.concatenate([v.pixels for v in batch])  # (sum of views, T, h, w, 3) uint8
    if pool is None:
        outputs = predictor.probabilities(pixels)  # (sum of views, labels)
    else:
        outputs = predictor.embeddings(pixels, pool)  # (sum of views, hidden)
    start = 0
    for views in batch:
        end = start + len(views.pixels)
        mean = outputs[start:end].mean(0)  # over the clips x crops views, as the original test protocol does
        if pool is None:
            predictions = top_predictions(predictor.labels, mean, top_k)
            yield VideoResult(views.path, predictions, views.clips, views.crops, predictor.info, views.warnings)
        else:
            yield VideoEmbedding(views.path, mean, pool, views.clips, predictor.info, views.warnings)
        start = end


def top_predictions(labels: list[str], probabilities: np.ndarray, top_k: int) -> tuple[Prediction, ...]:
    """The ``top_k`` most probable labels of one (labels,) probability vector, most probable first (of equal ones,
    the lower index)."""
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return tuple(Prediction(labels[i], int(i), float(probabilities[i])) for i in order)


def _load_task(task: tuple[str, ViewOptions, PreprocessConfig, DecodeLimits]) -> VideoViews:
    return load_views(*task)


def _failure(path: str, error: str, message: str) -> VideoFailure:
    return VideoFailure(path, error, message if path in message else f"{path}: {message}")


def load_all(
    paths: Iterable[str],
    views: ViewOptions,
    preprocess_config: PreprocessConfig,
    workers: int,
    timeout: float | None,
) -> Iterator[VideoViews | VideoFailure]:
    """Each path's views, or its failure: the same outcome in this process as in a worker, where anything that
    goes wrong with one file (a decoder error, an exception from PyAV itself) becomes that file's record."""
    if workers <= 0:
        limits = DecodeLimits(timeout_s=timeout)
        for path in paths:
            try:
                yield load_views(str(path), views, preprocess_config, limits)
            except Exception as exc:  # noqa: BLE001 - one file's failure is that file's record, as in the workers
                yield _failure(str(path), type(exc).__name__, str(exc) or repr(exc))
        return
    from .pool import TaskFailure, WorkerPool

    unlimited = DecodeLimits(timeout_s=None)  # the pool enforces the timeout
    tasks = ((str(path), views, preprocess_config, unlimited) for path in paths)
    with WorkerPool(_load_task, workers, timeout) as pool:
        for task, outcome in pool.imap_unordered(tasks):
            if isinstance(outcome, TaskFailure):
                yield _failure(task[0], outcome.error, outcome.message)
            else:
                yield outcome


def record_all(
    predictor: BasePredictor,
    paths: list[str],
    sink,
    views: ViewOptions | None = None,
    *,
    output: str,
    observer: Observer | None = None,
    **options,
) -> BatchSummary:
    """Run every path the ``sink`` does not hold yet (``sink.done``) and write each record to it as it finishes; the
    summary names ``output``. ``options`` go to ``run``."""
    observer = observer or Observer()
    todo = [p for p in paths if p not in sink.done]
    failed_before = len(sink.failed.intersection(paths))
    failed = 0
    observer.started(len(paths), len(todo))
    if todo:
        for record in run(predictor, todo, views, **options):
            sink.write(record)
            failed += isinstance(record, VideoFailure)
            observer.finished(record)
    return BatchSummary(output, len(paths), len(paths) - len(todo), failed, failed_before)
