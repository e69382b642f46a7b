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

from ..media.limits import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT_S, DecodeLimits
from ..media.preprocess import PreprocessConfig
from ..model.timesformer import POOLS
from ..results import BatchSummary, Prediction, VideoEmbedding, VideoFailure, VideoResult
from .views import VideoViews, ViewOptions, load_views

if TYPE_CHECKING:
    import torch

    from .predictor import Predictor

Record = VideoResult | VideoEmbedding | VideoFailure


class Observer:
    """What a run tells its caller as it goes. Each method does nothing here; a progress display overrides them."""

    def loading(self, model: str) -> AbstractContextManager:
        """Entered while ``model`` loads."""
        return nullcontext()

    def started(self, total: int, todo: int) -> None:
        """``total`` inputs, of which ``todo`` are processed now (the rest were recorded by an earlier run)."""

    def finished(self, record: Record) -> None:
        """One input's record, as soon as it is known."""


def as_predictor(model: str | Predictor, observer: Observer | None = None, **load) -> Predictor:
    """``model`` itself if it is a loaded Predictor, else a Predictor loaded with ``load`` (revision, device, dtype),
    the observer told while it loads."""
    from .predictor import Predictor

    if isinstance(model, Predictor):
        return model
    with (observer or Observer()).loading(model):
        return Predictor(model, **load)


def run(
    predictor: Predictor,
    paths: Iterable[str],
    views: ViewOptions | None = None,
    *,
    top_k: int = 5,
    pool: str | None = None,
    batch_size: int = 4,
    workers: int = 0,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_memory: int = DEFAULT_MAX_MEMORY,
    strict: bool = False,
) -> Iterator[Record]:
    """Classify (or, with ``pool``, embed) each path, yielding one record per path as soon as it is known.

    Views of up to ``batch_size`` videos run through the model together. With ``workers`` > 0 decoding runs in
    that many processes, overlapped with the model, and a decoder that crashes or takes more than ``timeout``
    seconds (None: no limit) fails only its own file. A video whose decoding would hold more than ``max_memory`` bytes
    (``DecodeLimits.max_memory``) fails before it is decoded. Records come in the order videos finish, not the order
    given.
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
    for loaded in load_all(paths, views, predictor.preprocess_config, workers, timeout, max_memory):
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


def _run_batch(predictor: Predictor, batch: list[VideoViews], top_k: int, pool: str | None) -> Iterator[Record]:
    pixels = np.concatenate([v.pixels for v in batch])  # (sum of views, T, h, w, 3) uint8
    if pool is None:
        outputs = predictor.probabilities(pixels)
    else:
        outputs = predictor.embeddings(pixels, pool)
    start = 0
    for views in batch:
        end = start + len(views.pixels)
        if pool is None:
            yield _result(predictor, views, outputs[start:end], top_k)
        else:
            vector = outputs[start:end].mean(0).numpy()
            yield VideoEmbedding(views.path, vector, pool, views.clips, predictor.info, views.warnings)
        start = end


def _result(predictor: Predictor, views: VideoViews, probabilities: torch.Tensor, top_k: int) -> VideoResult:
    mean = probabilities.mean(0)  # average over the clips x crops views, as the original test protocol does
    top = mean.topk(min(top_k, mean.numel()))
    predictions = tuple(
        Prediction(predictor.labels[i], int(i), float(p))
        for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    )
    return VideoResult(views.path, predictions, views.clips, views.crops, predictor.info, views.warnings)


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
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> Iterator[VideoViews | VideoFailure]:
    """Each path's views, or its failure: the same outcome in this process as in a worker, where anything that
    goes wrong with one file (a decoder error, an exception from PyAV itself) becomes that file's record."""
    if workers <= 0:
        limits = DecodeLimits(timeout_s=timeout, max_memory=max_memory)
        for path in paths:
            try:
                yield load_views(str(path), views, preprocess_config, limits)
            except Exception as exc:  # noqa: BLE001 - one file's failure is that file's record, as in the workers
                yield _failure(str(path), type(exc).__name__, str(exc) or repr(exc))
        return
    from .pool import TaskFailure, WorkerPool

    limits = DecodeLimits(timeout_s=None, max_memory=max_memory)  # the pool enforces the timeout
    tasks = ((str(path), views, preprocess_config, limits) for path in paths)
    with WorkerPool(_load_task, workers, timeout) as pool:
        for task, outcome in pool.imap_unordered(tasks):
            if isinstance(outcome, TaskFailure):
                yield _failure(task[0], outcome.error, outcome.message)
            else:
                yield outcome


def record_all(
    predictor: Predictor,
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
