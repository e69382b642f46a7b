"""The Python API: everything the ``tsf`` command does, as functions that return typed results (``tsf_cli.results``).

Keyword arguments carry the names of the command-line flags they stand for (``--top-k`` is ``top_k``, ``--stride``
is ``stride``), and ``model`` takes a preset name, a folder, a hub id, or a ``Predictor`` already loaded (to load a
model once and use it for several calls). Long runs report to an ``observer`` (see ``Observer``: a progress display,
or nothing).

    import tsf_cli

    results = tsf_cli.classify(["a.mp4", "b.mp4"], model="base-k400", top_k=5)
    summary = tsf_cli.batch(["videos/"], "labels.jsonl", resume=True)
    summary = tsf_cli.embed_files(["videos/"], "vectors.npz", pool="mean", resume=True)

torch and PyAV are imported when a function first needs them, so ``import tsf_cli.api`` stays fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .demo.synthetic import MOTIONS
from .errors import UsageError
from .io.inputs import is_url
from .io.records import write_json_document
from .media.limits import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT_S
from .media.sampling import SAMPLINGS
from .presets import DEFAULT_MODEL, Preset, all_presets
from .results import BatchSummary, VideoEmbedding, VideoFailure, VideoResult

if TYPE_CHECKING:
    from .inference.predictor import Predictor
    from .inference.runner import Observer
    from .media.probe import VideoInfo

# Loaded on first use; each is the implementation itself, with its own signature and docstring.
_LAZY = {
    "Predictor": "tsf_cli.inference.predictor",
    "DTYPES": "tsf_cli.inference.predictor",
    "Observer": "tsf_cli.inference.runner",
    "ViewOptions": "tsf_cli.inference.views",
    "POOLS": "tsf_cli.model.timesformer",
    "train": "tsf_cli.training.loop",
    "TrainProgress": "tsf_cli.training.loop",
    "TrainResult": "tsf_cli.training.loop",
    "evaluate": "tsf_cli.training.evaluate",
    "EvalResult": "tsf_cli.training.evaluate",
    "run_demo": "tsf_cli.demo.run",
    "DemoRun": "tsf_cli.demo.run",
}

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MODEL",
    "MOTIONS",
    "SAMPLINGS",
    "batch",
    "classify",
    "default_workers",
    "embed",
    "is_url",
    "embed_files",
    "list_inputs",
    "list_models",
    "load_model",
    "probe",
    "write_json_document",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tsf_cli.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_model(
    model: str = DEFAULT_MODEL, *, revision: str | None = None, device: str = "auto", dtype: str = "auto"
) -> Predictor:
    """Resolve and load a model for inference (a preset name, a folder in the Hugging Face layout, or a hub id)."""
    from .inference.predictor import Predictor

    return Predictor(model, revision=revision, device=device, dtype=dtype)


def classify(
    videos: Sequence[str | os.PathLike],
    *,
    model: str | Predictor = DEFAULT_MODEL,
    top_k: int = 5,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    batch_size: int = 4,
    workers: int = 0,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_memory: int = DEFAULT_MAX_MEMORY,
    strict: bool = False,
    observer: Observer | None = None,
) -> list[VideoResult | VideoFailure]:
    """Top-k labels of each video, in the order given; a video that fails gets a VideoFailure, not an exception.

    ``frames``, ``sampling``, ``stride``, ``clips``, ``crops`` and ``start`` override the model's own views (None:
    the preset's, or the checkpoint's frame count sampled uniformly). A result carries ``warnings`` where its label
    cannot be trusted (a clip longer than the video, a still image, a damaged file); ``strict`` makes those videos
    failures instead. ``videos`` are files or http(s) URLs; a video whose decoding would hold more than
    ``max_memory`` bytes fails before it is decoded.
    """
    predictor, views = _prepare(model, observer, revision, device, dtype, frames, sampling, stride, clips, crops, start)
    options = {
        "top_k": top_k,
        "batch_size": batch_size,
        "workers": workers,
        "timeout": timeout,
        "strict": strict,
        "max_memory": max_memory,
    }
    return _in_order(videos, predictor, views, options)


def embed(
    videos: Sequence[str | os.PathLike],
    *,
    model: str | Predictor = DEFAULT_MODEL,
    pool: str = "cls",
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    batch_size: int = 4,
    workers: int = 0,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_memory: int = DEFAULT_MAX_MEMORY,
    strict: bool = False,
    observer: Observer | None = None,
) -> list[VideoEmbedding | VideoFailure]:
    """One vector per video, in the order given: the final-norm class token (``pool="cls"``) or the mean of the
    final-norm patch tokens (``"mean"``), averaged over the views."""
    predictor, views = _prepare(model, observer, revision, device, dtype, frames, sampling, stride, clips, crops, start)
    options = {
        "pool": pool,
        "batch_size": batch_size,
        "workers": workers,
        "timeout": timeout,
        "strict": strict,
        "max_memory": max_memory,
    }
    return _in_order(videos, predictor, views, options)


def batch(
    sources: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model: str | Predictor = DEFAULT_MODEL,
    recursive: bool = False,
    follow_links: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    top_k: int = 5,
    batch_size: int = 4,
    workers: int | None = None,
    timeout: float | None = 300,
    max_memory: int = DEFAULT_MAX_MEMORY,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    strict: bool = False,
    format: str | None = None,
    observer: Observer | None = None,
) -> BatchSummary:
    """Classify every file that ``sources`` name (folders, globs, .txt lists of paths, files) into ``output``
    (.jsonl or .csv; ``-`` for standard output, in ``format`` "jsonl" or "csv"), one record per input, each written
    as its video finishes.

    ``resume`` continues an interrupted run: inputs the file already records are skipped (``retry_failed`` redoes
    recorded failures); ``overwrite`` starts the file again; without either an existing file is refused. The model
    loads before ``output`` is touched, so a wrong model never leaves or empties a file. ``workers``: decoding
    processes (None: cores - 1, at most 8; 0 decodes in this process, without crash isolation). ``recursive``
    descends into sub-folders, ``follow_links`` into links to folders too (each real folder once).
    """
    from .inference.runner import record_all
    from .io.atomic import check_writable
    from .io.records import STDOUT, open_record_sink

    _check_flags(resume, overwrite, retry_failed)
    if str(output) != STDOUT:
        output = Path(output)
        check_writable(output)  # before any work, the model's loading included
    paths = list_inputs(sources, recursive=recursive, exclude=[output], follow_links=follow_links)
    predictor, views = _prepare(model, observer, revision, device, dtype, frames, sampling, stride, clips, crops, start)
    workers = default_workers() if workers is None else workers
    options = {
        "top_k": top_k,
        "batch_size": batch_size,
        "workers": workers,
        "timeout": timeout,
        "strict": strict,
        "max_memory": max_memory,
    }
    sink = open_record_sink(
        output, top_k=top_k, resume=resume, overwrite=overwrite, retry_failed=retry_failed, format=format
    )
    with sink:
        return record_all(predictor, paths, sink, views, output=str(output), observer=observer, **options)


def embed_files(
    sources: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model: str | Predictor = DEFAULT_MODEL,
    pool: str = "cls",
    recursive: bool = False,
    follow_links: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    batch_size: int = 4,
    workers: int | None = None,
    timeout: float | None = 300,
    max_memory: int = DEFAULT_MAX_MEMORY,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    strict: bool = False,
    observer: Observer | None = None,
) -> BatchSummary:
    """One embedding per file that ``sources`` name, into ``output``: .npy (+ .json sidecar), .npz, .safetensors,
    .parquet or .jsonl, chosen by the suffix and written atomically at the end.

    Until then finished vectors go to ``<output>.partial.jsonl``, which ``resume`` continues; ``retry_failed`` and
    ``overwrite`` work as for ``batch``. Failed inputs are listed in the file's metadata.
    """
    from .inference.runner import record_all
    from .io.atomic import check_writable
    from .io.embeddings import get_embedding_writer, open_embedding_journal

    _check_flags(resume, overwrite, retry_failed)
    output = Path(output)
    get_embedding_writer(output)  # an unsupported format fails before any video is decoded
    check_writable(output)
    side_files = [output, output.with_name(output.name + ".json"), output.with_name(output.name + ".partial.jsonl")]
    paths = list_inputs(sources, recursive=recursive, exclude=side_files, follow_links=follow_links)
    predictor, views = _prepare(model, observer, revision, device, dtype, frames, sampling, stride, clips, crops, start)
    workers = default_workers() if workers is None else workers
    options = {
        "pool": pool,
        "batch_size": batch_size,
        "workers": workers,
        "timeout": timeout,
        "strict": strict,
        "max_memory": max_memory,
    }
    with open_embedding_journal(output, resume=resume, overwrite=overwrite, retry_failed=retry_failed) as journal:
        return record_all(predictor, paths, journal, views, output=str(output), observer=observer, **options)


def _prepare(model, observer, revision, device, dtype, frames, sampling, stride, clips, crops, start):
    """The predictor (loaded unless given) and the views the user's choices make of its defaults."""
    from .inference.runner import as_predictor

    predictor = as_predictor(model, observer, revision=revision, device=device, dtype=dtype)
    views = predictor.view_options(
        frames=frames, sampling=sampling, stride=stride, clips=clips, crops=crops, start=start
    )
    return predictor, views


def _in_order(videos, predictor, views, options) -> list:
    """One record per video, in the order given (the runner yields them as they finish)."""
    from .inference.runner import run

    paths = [str(v) for v in videos]
    records = {r.path: r for r in run(predictor, paths, views, **options)}
    return [records[p] for p in paths]


def _check_flags(resume: bool, overwrite: bool, retry_failed: bool) -> None:
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if retry_failed and not resume:
        raise UsageError("--retry-failed goes with --resume")


def list_inputs(
    sources: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
    follow_links: bool = False,
) -> list[str]:
    """The inputs that ``sources`` name, as absolute paths, each once, in the order the sources give them: a folder
    (every non-hidden entry, sorted: FIFOs, broken links and the like too, which then fail with their cause), a .txt
    list (one path a line), a glob, or a file. ``recursive`` descends into sub-folders, ``follow_links`` into links to
    folders too. ``exclude`` keeps tsf's own output files out."""
    from .io.inputs import list_inputs as list_source

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    excluded = [str(p) for p in exclude]
    found: dict[str, None] = {}
    for source in sources:
        listed = list_source(str(source), recursive=recursive, exclude=excluded, follow_links=follow_links)
        found.update(dict.fromkeys(listed))
    return list(found)


def default_workers() -> int:
    """One decoding process per core, leaving one for the model, at least one and at most eight."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def list_models() -> list[tuple[Preset, bool]]:
    """Every preset, and whether its weights are here already (bundled, or in the hub cache) so it runs offline."""
    from .model.hub import CONFIG_NAME, is_cached

    rows = []
    for preset in all_presets().values():
        if preset.bundled is not None:
            available = (preset.bundled_path / CONFIG_NAME).is_file()
        else:
            available = is_cached(preset.hub_id, preset.revision)
        rows.append((preset, available))
    return rows


def probe(path: str | os.PathLike) -> VideoInfo:
    """Streams, codec, size, duration, fps and frame count of a video, as measured from its packets."""
    from .media.probe import probe as probe_file

    return probe_file(path)
