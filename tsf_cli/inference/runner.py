"""Many videos -> records: decoding (in this process or in worker processes), batches across videos, failures.

``run`` is the one road from paths to records that every command takes (classify, batch, embed, eval): whatever
goes wrong with one file becomes that file's ``VideoFailure``, never an exception, and views of several videos go
through the model together (``predict``, which the Ray engine's model actors share: ``ray_runner.py``).
``record_all`` adds what a long run needs on top: a sink that already holds earlier records (``--resume``), and an
``Observer`` told about progress.

One ``timeout`` per video, enforced once: by the worker pool when decoding runs in workers (it stops a decoder stuck
anywhere, in FFmpeg's C code too), else by the decoder's own deadline, checked between packets. ``outcomes`` is that
choice, shared by every kind of work: a function of one input, run here or in the pool, with the same outcomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from ..media.limits import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT_S, DecodeLimits
from ..media.preprocess import PreprocessConfig
from ..results import POOLS, BatchSummary, Prediction, Timeline, VideoEmbedding, VideoFailure, VideoResult
from .pool import Partial, TaskFailure, WorkerPool
from .views import VideoViews, ViewOptions, load_views

if TYPE_CHECKING:
    from .predictor import BasePredictor

Record = VideoResult | VideoEmbedding | Timeline | VideoFailure
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

    def windows(self, path: str, done: int, total: int) -> None:
        """A timeline of ``path`` has ``done`` of its ``total`` windows classified."""


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
    check_options(top_k, pool, batch_size)
    views = views or predictor.default_views
    loaded = load_all(paths, views, predictor.preprocess_config, workers, timeout, max_memory)
    yield from predict(predictor, loaded, top_k=top_k, pool=pool, batch_size=batch_size, strict=strict)


def check_options(top_k: int, pool: str | None, batch_size: int) -> None:
    """ValueError for options no engine can run with."""
    if pool is not None and pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")


def predict(
    predictor: BasePredictor,
    loaded: Iterable[VideoViews | VideoFailure],
    *,
    top_k: int = 5,
    pool: str | None = None,
    batch_size: int = 4,
    strict: bool = False,
) -> Iterator[Record]:
    """The records of videos already loaded (their views, or their failures), views of up to ``batch_size`` videos
    through the model at once: the model's half of ``run``, which another engine (Ray's model actors) shares."""
    batch: list[VideoViews] = []
    for item in loaded:
        if isinstance(item, VideoFailure):
            yield item
            continue
        if strict and item.warnings:
            yield warned_failure(item.path, item.warnings)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            yield from _run_batch(predictor, batch, top_k, pool)
            batch = []
    if batch:
        yield from _run_batch(predictor, batch, top_k, pool)


def warned_failure(path: str, warnings: Sequence[str]) -> VideoFailure:
    """The failure ``strict`` makes of a video whose result would carry ``warnings``."""
    return VideoFailure(path, "Warning", f"{path}: {'; '.join(warnings)} (--strict)")


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


def failure(path: str, outcome: TaskFailure) -> VideoFailure:
    """A path's record of a task that failed."""
    message = outcome.message
    return VideoFailure(path, outcome.error, message if path in message else f"{path}: {message}")


def outcomes(
    fn: Callable[[Any], Any], tasks: Iterable[Any], workers: int, timeout: float | None
) -> Iterator[tuple[Any, Any]]:
    """``(task, outcome)`` of every task as ``WorkerPool.imap_unordered`` gives them, from ``workers`` processes, or
    from this one (in order) when ``workers`` is 0: anything that goes wrong with one task (a decoder error, an
    exception from PyAV itself) becomes its TaskFailure here too, and a generator's items come as ``Partial``.

    Here ``timeout`` only bounds the time between a generator's items, and only after the fact (nothing here can
    stop a decoder that does not return); a plain task bounds its time itself (``DecodeLimits``)."""
    if workers > 0:
        with WorkerPool(fn, workers, timeout) as pool:
            yield from pool.imap_unordered(tasks)
        return
    for task in tasks:
        yield from _here(fn, task, timeout)


def _here(fn: Callable[[Any], Any], task, timeout: float | None) -> Iterator[tuple[Any, Any]]:
    try:
        result = fn(task)
        if isinstance(result, Generator):
            items = result
            while True:
                began = time.monotonic()
                try:
                    item = next(items)
                except StopIteration as stop:
                    result = stop.value
                    break
                if timeout is not None and time.monotonic() - began > timeout:
                    items.close()
                    yield task, TaskFailure("Timeout", f"no result after {timeout:g} s")
                    return
                yield task, Partial(item)
    except Exception as exc:  # noqa: BLE001 - one task's failure is that task's record, as in the workers
        yield task, TaskFailure(type(exc).__name__, str(exc) or repr(exc))
        return
    yield task, result


def load_all(
    paths: Iterable[str],
    views: ViewOptions,
    preprocess_config: PreprocessConfig,
    workers: int,
    timeout: float | None,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> Iterator[VideoViews | VideoFailure]:
    """Each path's views, or its failure: the same outcome in this process as in a worker."""
    # in worker processes the pool enforces the timeout, here the decoder's deadline does
    limits = DecodeLimits(timeout_s=None if workers > 0 else timeout, max_memory=max_memory)
    tasks = ((str(path), views, preprocess_config, limits) for path in paths)
    for task, outcome in outcomes(_load_task, tasks, workers, timeout):
        yield failure(task[0], outcome) if isinstance(outcome, TaskFailure) else outcome


def record_all(
    paths: list[str],
    sink,
    records: Callable[[list[str]], Iterable[Record]],
    *,
    output: str,
    observer: Observer | None = None,
) -> BatchSummary:
    """Run every path the ``sink`` does not hold yet (``sink.done``) through ``records`` (paths -> one record each,
    ``run`` for instance) and write each record to it as it finishes; the summary names ``output``."""
    observer = observer or Observer()
    todo = [p for p in paths if p not in sink.done]
    failed_before = len(sink.failed.intersection(paths))
    failed = 0
    observer.started(len(paths), len(todo))
    if todo:
        for record in records(todo):
            sink.write(record)
            failed += isinstance(record, VideoFailure)
            observer.finished(record)
    return BatchSummary(output, len(paths), len(paths) - len(todo), failed, failed_before)
