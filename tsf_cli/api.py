"""The Python API: everything the ``tsf`` command does, as functions that return typed results (``tsf_cli.results``).

Keyword arguments carry the names of the command-line flags they stand for (``--top-k`` is ``top_k``, ``--stride``
is ``stride``), and ``model`` takes a preset name, a folder, a hub id, or a ``Predictor`` already loaded (to load a
model once and use it for several calls). Long runs report to an ``observer`` (see ``Observer``: a progress display,
or nothing).

    import tsf_cli

    results = tsf_cli.classify(["a.mp4", "b.mp4"], model="base-k400", top_k=5)
    summary = tsf_cli.batch(["videos/"], "labels.jsonl", resume=True)
    summary = tsf_cli.embed_files(["videos/"], "vectors.npz", pool="mean", resume=True)
    summary = tsf_cli.batch(["s3://bucket/videos/"], "s3://bucket/labels/", engine="ray", ray_address="auto")
    timeline = tsf_cli.timeline("match.mp4", output=["match.srt", "match.html"])  # Timeline(.segments, .windows)
    explanation = tsf_cli.explain("a.mp4", model="demo", method="grad-rollout", output=["a.png"])

torch and PyAV are imported when a function first needs them, so ``import tsf_cli.api`` stays fast.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .demo.synthetic import MOTIONS
from .errors import OutputError, UsageError, VideoError
from .inference.segments import DEFAULT_MIN_PROBABILITY, DEFAULT_SMOOTH
from .io.inputs import is_url
from .io.objects import is_uri
from .io.palette import UNCERTAIN_COLOR, label_colors
from .io.records import write_json_document
from .io.timelines import TIMELINE_FORMATS, check_timeline_outputs
from .media.limits import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT_S
from .media.sampling import SAMPLINGS
from .model.onnx_format import EMBEDDING_OUTPUTS, GRAPH_DTYPES, OPSET, config_frames, config_labels
from .presets import DEFAULT_MODEL, Preset, all_presets, get_preset
from .results import POOLS, BatchSummary, Explanation, Timeline, VideoEmbedding, VideoFailure, VideoResult

if TYPE_CHECKING:
    from .inference.predictor import BasePredictor, Predictor
    from .inference.runner import Observer
    from .media.probe import VideoInfo
    from .model.export import ExportResult

# Loaded on first use; each is the implementation itself, with its own signature and docstring.
_LAZY = {
    "Predictor": "tsf_cli.inference.predictor",
    "DTYPES": "tsf_cli.inference.predictor",
    "OnnxPredictor": "tsf_cli.inference.onnx_predictor",
    "Observer": "tsf_cli.inference.runner",
    "RUNTIMES": "tsf_cli.inference.runner",
    "ViewOptions": "tsf_cli.inference.views",
    "METHODS": "tsf_cli.inference.rollout",
    "train": "tsf_cli.training.loop",
    "TrainProgress": "tsf_cli.training.loop",
    "TrainResult": "tsf_cli.training.loop",
    "evaluate": "tsf_cli.training.evaluate",
    "EvalResult": "tsf_cli.training.evaluate",
    "run_demo": "tsf_cli.demo.run",
    "DemoRun": "tsf_cli.demo.run",
    "TimelineOptions": "tsf_cli.inference.timeline",
}

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MIN_PROBABILITY",
    "DEFAULT_MODEL",
    "DEFAULT_SMOOTH",
    "GRAPH_DTYPES",
    "MOTIONS",
    "OPSET",
    "POOLS",
    "SAMPLINGS",
    "TIMELINE_FORMATS",
    "UNCERTAIN_COLOR",
    "batch",
    "check_timeline_outputs",
    "classify",
    "default_workers",
    "embed",
    "is_uri",
    "is_url",
    "embed_files",
    "explain",
    "label_colors",
    "export",
    "list_inputs",
    "list_models",
    "load_model",
    "probe",
    "timeline",
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
    model: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "torch",
) -> BasePredictor:
    """Resolve and load a model for inference (a preset name, a folder in the Hugging Face layout, or a hub id; with
    ``runtime="onnx"`` also an .onnx file from ``export``), run by PyTorch (``runtime="torch"``) or ONNX Runtime."""
    from .inference.runner import as_predictor

    return as_predictor(model, runtime=runtime, revision=revision, device=device, dtype=dtype)


def classify(
    videos: Sequence[str | os.PathLike],
    *,
    model: str | BasePredictor = DEFAULT_MODEL,
    top_k: int = 5,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "torch",
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
    ``max_memory`` bytes fails before it is decoded. ``runtime`` "onnx" runs the model through ONNX Runtime
    (``tsf-cli[onnx]``) on a graph exported from the checkpoint on first use and cached; the records are the same,
    within 1e-4.
    """
    predictor, views = _prepare(
        model, observer, revision, device, dtype, runtime, frames, sampling, stride, clips, crops, start
    )
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
    model: str | BasePredictor = DEFAULT_MODEL,
    pool: str = "cls",
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "torch",
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
    predictor, views = _prepare(
        model, observer, revision, device, dtype, runtime, frames, sampling, stride, clips, crops, start
    )
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
    model: str | BasePredictor = DEFAULT_MODEL,
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
    runtime: str = "torch",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    strict: bool = False,
    format: str | None = None,
    timeline: bool = False,
    windows: bool = False,
    window: float | None = None,
    hop: float | None = None,
    min_probability: float | None = None,
    smooth: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    observer: Observer | None = None,
) -> BatchSummary:
    """Classify every file that ``sources`` name (folders, globs, .txt lists of paths, files, URLs; or the same in
    an object store: ``s3://bucket/videos/``) into ``output`` (.jsonl or .csv, a local file or an object; ``-`` for
    standard output, in ``format`` "jsonl" or "csv"), one record per input, each written as its video finishes.

    ``resume`` continues an interrupted run: inputs the file already records are skipped (``retry_failed`` redoes
    recorded failures); ``overwrite`` starts the file again; without either an existing file is refused. The model
    loads before ``output`` is touched, so a wrong model never leaves or empties a file. ``workers``: decoding
    processes (None: cores - 1, at most 8; 0 decodes in this process, without crash isolation). ``recursive``
    descends into sub-folders, ``follow_links`` into links to folders too (each real folder once).

    With ``timeline`` each record is a video's ``Timeline`` (see ``timeline``: ``window``, ``hop``,
    ``min_probability``, ``smooth``; None: its defaults) holding its segments, and its windows too with
    ``windows``; ``batch_size`` then counts windows, and ``timeout`` bounds the wait for a video's next window, so a
    long video is not cut short. Only .jsonl holds timelines: a video has any number of segments.

    ``engine="ray"`` runs on Ray Data (``pip install "tsf-cli[ray]"``): on a Ray instance started for the run, or
    on the cluster at ``ray_address`` (``auto``, ``host:port``), with the same records, timelines included. Its
    ``output`` may also be a folder (a path ending in ``/``), which gets labels as Parquet files, one per block.
    """
    _check_flags(resume, overwrite, retry_failed)
    _check_engine(engine, ray_address, runtime, device)
    if timeline:
        _check_timeline_batch(output, format, clips, start)
    elif windows or any(choice is not None for choice in (window, hop, min_probability, smooth)):
        raise UsageError("--windows, --window, --hop, --min-probability and --smooth go with --timeline")
    output = _checked_output(output, engine, resume, retry_failed, stdout_ok=True)
    _check_record_output(output, format, resume)
    paths = list_inputs(sources, recursive=recursive, exclude=[output], follow_links=follow_links)
    predictor, views = _prepare(
        model,
        observer,
        revision,
        _driver_device(engine, device),
        dtype,
        runtime,
        frames,
        sampling,
        stride,
        clips,
        crops,
        start,
    )
    workers = default_workers() if workers is None else workers
    if timeline:
        from .inference.timeline import run_timelines, timeline_options

        options = timeline_options(
            predictor,
            views,
            window=window,
            hop=hop,
            min_probability=DEFAULT_MIN_PROBABILITY if min_probability is None else min_probability,
            smooth=DEFAULT_SMOOTH if smooth is None else smooth,
            top_k=top_k,
        )
        if engine == "ray":
            from .inference.ray_timeline import TimelineWork, session_timelines
            from .inference.runner import Observer

            work = TimelineWork(options, views, predictor.preprocess_config, batch_size, timeout, max_memory)
            job = _ray_job(model, predictor, revision, device, dtype, work, ray_address)
            timelines = functools.partial(session_timelines, **job, observer=observer or Observer())
        else:

            def timelines(todo: list[str]):
                return run_timelines(
                    predictor, todo, options, views, batch_size=batch_size, workers=workers, timeout=timeout,
                    max_memory=max_memory, observer=observer,
                )  # fmt: skip

        def records(todo: list[str]):
            from .inference.runner import warned_failure

            for record in timelines(todo):
                if isinstance(record, VideoFailure):
                    yield record
                elif strict and record.warnings:
                    yield warned_failure(record.path, record.warnings)
                else:
                    yield record if windows else replace(record, windows=None)

    elif engine == "ray":
        work = _ray_work(
            predictor, views, top_k=top_k, batch_size=batch_size, timeout=timeout, strict=strict, max_memory=max_memory
        )
        job = _ray_job(model, predictor, revision, device, dtype, work, ray_address)
        if _is_folder(output):
            return _ray_record_folder(paths, output, job, resume, overwrite, observer)
        records = _ray_records(job)
    else:
        options = {"top_k": top_k, "batch_size": batch_size, "workers": workers, "timeout": timeout}
        options |= {"strict": strict, "max_memory": max_memory}
        records = functools.partial(_local_records, predictor, views, options)
    sink = _record_sink(
        output, top_k=top_k, resume=resume, overwrite=overwrite, retry_failed=retry_failed, format=format
    )
    with sink:
        return _record_all(paths, sink, records, str(output), observer)


def _check_timeline_batch(output, format: str | None, clips: int | None, start: float | None) -> None:
    from .io.objects import is_uri, split_query
    from .io.records import STDOUT

    if clips is not None or start is not None:
        raise UsageError("--clips and --start do not go with --timeline: each window is one clip")
    name = split_query(str(output))[0] if is_uri(output) else str(output)
    jsonl = format in (None, "jsonl") if name == STDOUT else Path(name).suffix.lower() == ".jsonl"
    if not jsonl:
        raise OutputError(
            f"{output}: a timeline record holds any number of segments, which only .jsonl keeps; "
            "write .jsonl (or one file per video with tsf timeline -o)"
        )


def timeline(
    video: str | os.PathLike,
    *,
    model: str | BasePredictor = DEFAULT_MODEL,
    window: float | None = None,
    hop: float | None = None,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
    smooth: int = DEFAULT_SMOOTH,
    top_k: int = 5,
    output: Sequence[str | os.PathLike] = (),
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    crops: int | None = None,
    batch_size: int = 8,
    timeout: float | None = 300,
    max_memory: int = DEFAULT_MAX_MEMORY,
    runtime: str = "torch",
    strict: bool = False,
    observer: Observer | None = None,
) -> Timeline:
    """Labels along a video: windows of ``window`` seconds every ``hop`` seconds, each classified as one clip, and
    the segments the segment rule makes of them (see ``tsf_cli.inference.segments``).

    ``window`` defaults to the clip the model was trained on (8.5 s for the Kinetics presets, 4 s for the
    Something-Something ones, 2 s for demo) and ``hop`` to half the window. A window votes "uncertain" when its
    top label's probability is below ``min_probability``; each window then takes the majority of the ``smooth``
    windows around it. ``output`` files are written too, each in the format its suffix names (.json .csv .srt .vtt
    .png .svg .html), and are checked before any decoding. Decoding is one pass over the video, and what it holds
    does not grow with the video's length (``max_memory`` bounds it, as for ``classify``; ``timeout``, None for no
    limit, bounds the wait for each frame, a stalled server's included, so a long video is not cut short). Errors
    are raised: a VideoError for a file that cannot be read, or with ``strict`` one whose timeline would carry
    warnings (damage the file or its decoding showed), and then no output is written.
    """
    from .inference.timeline import timeline_of, timeline_options
    from .io.timelines import check_timeline_outputs, write_timeline
    from .media.limits import DecodeLimits

    check_timeline_outputs(output)
    predictor, views = _prepare(
        model, observer, revision, device, dtype, runtime, frames, sampling, stride, None, crops, None
    )
    options = timeline_options(
        predictor, views, window=window, hop=hop, min_probability=min_probability, smooth=smooth, top_k=top_k
    )
    limits = DecodeLimits(timeout_s=timeout, max_memory=max_memory)
    result = timeline_of(predictor, str(video), options, views, batch_size=batch_size, observer=observer, limits=limits)
    if strict and result.warnings:
        raise VideoError(str(video), f"{'; '.join(result.warnings)} (--strict)")
    for path in output:
        write_timeline(result, path)
    return result


def embed_files(
    sources: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model: str | BasePredictor = DEFAULT_MODEL,
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
    runtime: str = "torch",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    strict: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    observer: Observer | None = None,
) -> BatchSummary:
    """One embedding per file that ``sources`` name, into ``output``: .npy (+ .json sidecar), .npz, .safetensors,
    .parquet or .jsonl, chosen by the suffix and written atomically at the end.

    Until then finished vectors go to ``<output>.partial.jsonl``, which ``resume`` continues; ``retry_failed`` and
    ``overwrite`` work as for ``batch``. Failed inputs are listed in the file's metadata. ``engine`` and
    ``ray_address`` work as for ``batch``; with Ray, ``output`` may also be a folder of Parquet records (a path
    ending in ``/``) whose ``embedding`` column holds the vectors.
    """
    from .inference.runner import check_options
    from .io.embeddings import get_embedding_writer, open_embedding_journal

    _check_flags(resume, overwrite, retry_failed)
    _check_engine(engine, ray_address, runtime, device)
    check_options(1, pool, batch_size)
    output = _checked_output(output, engine, resume, retry_failed, stdout_ok=False)
    if not _is_folder(output):
        if isinstance(output, str):
            raise OutputError(
                f"{output}: embedding files are written here, not to an object store: write a local "
                "file, or a folder of Parquet records (ending in /) with --engine ray"
            )
        get_embedding_writer(output)  # an unsupported format fails before any video is decoded
    side_files = [output, *(f"{output}{suffix}" for suffix in (".json", ".partial.jsonl"))]
    paths = list_inputs(sources, recursive=recursive, exclude=side_files, follow_links=follow_links)
    predictor, views = _prepare(
        model,
        observer,
        revision,
        _driver_device(engine, device),
        dtype,
        runtime,
        frames,
        sampling,
        stride,
        clips,
        crops,
        start,
    )
    if engine == "ray":
        work = _ray_work(
            predictor, views, pool=pool, batch_size=batch_size, timeout=timeout, strict=strict, max_memory=max_memory
        )
        job = _ray_job(model, predictor, revision, device, dtype, work, ray_address)
        if _is_folder(output):
            return _ray_record_folder(paths, output, job, resume, overwrite, observer)
        records = _ray_records(job)
    else:
        workers = default_workers() if workers is None else workers
        options = {"pool": pool, "batch_size": batch_size, "workers": workers, "timeout": timeout}
        options |= {"strict": strict, "max_memory": max_memory}
        records = functools.partial(_local_records, predictor, views, options)
    with open_embedding_journal(output, resume=resume, overwrite=overwrite, retry_failed=retry_failed) as journal:
        return _record_all(paths, journal, records, str(output), observer)


ENGINES = ("local", "ray")


def _check_engine(engine: str, ray_address: str | None, runtime: str, device: str) -> None:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    if ray_address is not None and engine != "ray":
        raise UsageError("--ray-address goes with --engine ray")
    if engine == "ray" and runtime != "torch":
        raise UsageError(f"--runtime {runtime} runs on the local engine: Ray's model actors run the torch runtime")
    if engine == "ray":
        from .inference.ray_runner import check_actor_device
        from .inference.ray_session import require_ray

        require_ray()  # before any work: a missing extra is found in a second, not after the model loaded
        check_actor_device(device)


def _checked_output(output, engine: str, resume: bool, retry_failed: bool, *, stdout_ok: bool):
    """``output`` as the run writes it: a Path for a local file, a str for ``-``, an object store's URI and a folder
    (which keeps its final slash); checked before any work, the model's loading included."""
    from .io.atomic import check_writable
    from .io.objects import is_uri, split_query
    from .io.records import STDOUT

    if stdout_ok and str(output) == STDOUT:
        return STDOUT
    folder = _is_folder(output)
    if folder and engine != "ray":
        raise OutputError(f"{output}: a folder gets Parquet records from --engine ray; write a file here")
    if folder and retry_failed:
        raise UsageError(
            "--retry-failed would record a video twice in a folder of Parquet files, which are never "
            "rewritten: use another folder"
        )
    if not is_uri(output):
        check_writable(output, folder=folder)
    if folder and is_uri(output):  # the slash goes before the query, which configures the store
        base, query = split_query(str(output))
        return base.rstrip("/") + "/" + query
    if folder:  # absolute: Ray's writers run in other processes, with other working directories
        return os.path.join(os.path.abspath(output), "")
    return str(output) if is_uri(output) else Path(output)


def _check_record_output(output, format: str | None, resume: bool) -> None:
    from .io.records import check_record_output

    if not _is_folder(output):
        check_record_output(output, format, resume)
    elif format is not None:
        raise UsageError(f"{output}: a folder gets Parquet records; --format picks a file's format")


def _is_folder(output) -> bool:
    from .io.record_tables import is_record_folder

    return output != "-" and is_record_folder(output)


def _driver_device(engine: str, device: str) -> str:
    # With Ray the model runs in actors; this process loads it only to check it and learn its views, on its CPU.
    return "cpu" if engine == "ray" else device


def _record_sink(output, **options):
    from .io.objects import is_uri

    if isinstance(output, str) and is_uri(output):
        from .io.object_records import ObjectRecordSink

        options.pop("format")
        return ObjectRecordSink(output, **options)
    from .io.records import open_record_sink

    return open_record_sink(output, **options)


def _record_all(paths, sink, records, output: str, observer) -> BatchSummary:
    from .inference.runner import record_all

    return record_all(paths, sink, records, output=output, observer=observer)


def _local_records(predictor, views, options, todo: list[str]):
    from .inference.runner import run

    return run(predictor, todo, views, **options)


def _ray_work(predictor, views, **options):
    from .inference.ray_runner import Work
    from .inference.runner import check_options

    check_options(options.get("top_k", 1), options.get("pool"), options["batch_size"])
    return Work(views, predictor.preprocess_config, **options)


def _ray_job(model, predictor, revision, device, dtype, work, address) -> dict:
    """What a Ray run needs besides its paths. Its model actors load the model by its name, where they run: this
    process's copy (which checked it) never travels."""
    name = model if isinstance(model, str) else predictor.info.name
    if get_preset(name) is None and os.path.isdir(name):  # as resolve_model reads it; actors run elsewhere
        name = os.path.abspath(name)
    return {"model": name, "revision": revision, "device": device, "dtype": dtype, "work": work, "address": address}


def _ray_records(job: dict):
    from .inference.ray_runner import session_records

    return functools.partial(session_records, **job)


def _ray_record_folder(paths, output, job: dict, resume, overwrite, observer) -> BatchSummary:
    from .inference.ray_runner import record_folder
    from .inference.runner import Observer

    return record_folder(paths, str(output), **job, resume=resume, overwrite=overwrite, observer=observer or Observer())


def explain(
    video: str | os.PathLike,
    *,
    output: Sequence[str | os.PathLike] = (),
    model: str | Predictor = DEFAULT_MODEL,
    label: str | None = None,
    method: str = "rollout",
    top_k: int = 5,
    runtime: str = "torch",
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
    observer: Observer | None = None,
) -> Explanation:
    """Where and when the model looked for ``label`` (default: the top-1) in one video: heatmaps over the sampled
    frames as decoded, and each frame's share of the relevance (see ``tsf_cli.results.Explanation``).

    ``method``: ``rollout`` (attention rollout, the same map for every label) or ``grad-rollout`` (attention weighted
    by its gradient for the label). The view explained is the one ``tsf classify`` starts from: the centre crop of
    the first temporal clip, with the same frames and preprocessing. ``output`` files (.npz, .png, .gif, .mp4, by
    suffix) are checked before any work and written atomically; an existing file is replaced. ``video`` may be an
    http(s) URL or an object in a store, as for ``classify``, and ``max_memory`` bounds its decoding likewise. Needs
    the torch ``runtime``: the ONNX graph has no attention maps to read, nor gradients.
    """
    from .inference.explain import explain_video
    from .inference.rollout import METHODS
    from .inference.runner import Observer
    from .io.explanations import check_explanation_output, write_explanation
    from .media.limits import DecodeLimits

    if runtime != "torch":
        raise UsageError(
            f"explain needs the torch runtime, not {runtime!r}: it reads the attention maps and their gradients, "
            "which an ONNX graph does not give"
        )
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    if top_k < 1:
        raise UsageError(f"top-k must be at least 1, got {top_k}")
    for path in output:
        check_explanation_output(path)
    if not (is_url(str(video)) or is_uri(video)) and not Path(video).is_file():
        raise VideoError(video, "no such file" if not Path(video).exists() else "not a file")
    observer = observer or Observer()
    predictor, views = _prepare(
        model, observer, revision, device, dtype, runtime, frames, sampling, stride, clips, crops, start
    )
    observer.started(1, 1)
    limits = DecodeLimits(max_memory=max_memory)
    explanation = explain_video(predictor, str(video), views, method=method, label=label, top_k=top_k, limits=limits)
    observer.finished(explanation)
    for path in output:
        write_explanation(path, explanation)
    return explanation


def export(
    output: str | os.PathLike,
    *,
    model: str = DEFAULT_MODEL,
    revision: str | None = None,
    frames: int | None = None,
    image_size: int | None = None,
    dtype: str = "fp32",
    opset: int = OPSET,
    features: bool = False,
    pool: str = "cls",
) -> ExportResult:
    """Export ``model`` to ``output``, one standalone ONNX file: the classifier (output ``logits``), or with
    ``features`` the embedding ``tsf embed --pool`` gives (output ``cls_embedding`` or ``mean_embedding``). Labels,
    preprocessing, frames, size, dtype and versions go into its metadata (``tsf_cli.model.onnx_format``).

    The batch axis is free; ``frames`` and ``image_size`` are fixed, by default the views the model is run with (its
    preset's frame count, its preprocessing's crop). ``dtype`` fp16 is for GPUs (on a CPU, ONNX Runtime runs it slower
    than fp32). The graph is compared with the PyTorch model on random inputs before it is written: beyond the
    tolerance an ExportError says by how much and nothing is written; the result holds the differences.
    """
    from .inference.graphs import export_checkpoint, resolve_checkpoint
    from .inference.predictor import preset_views, read_json_object, read_preprocess_config
    from .io.atomic import check_writable
    from .model.hub import resolve_model

    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if dtype not in GRAPH_DTYPES:
        raise ValueError(f"an ONNX graph is {' or '.join(GRAPH_DTYPES)}, not {dtype!r}")
    if Path(output).suffix.lower() != ".onnx":
        raise OutputError(f"{output}: an exported graph is written as a .onnx file")
    check_writable(output)
    source, preset = resolve_model(model)
    if revision is None and preset is not None:
        revision = preset.revision
    files = resolve_checkpoint(source, revision=revision)
    config = read_json_object(files.config, "config")
    if not features and not config_labels(config):
        raise UsageError(f"{model} has no classification head: export its embeddings with --features")
    preprocess = read_preprocess_config(files.preprocessor)
    crop = preprocess.crop_size if preprocess.do_center_crop else None
    return export_checkpoint(
        files,
        output,
        frames=frames or preset_views(preset, config_frames(config)).frames,
        image_size=image_size or crop,
        dtype=dtype,
        outputs=(EMBEDDING_OUTPUTS[pool],) if features else ("logits",),
        opset=opset,
    )


def _prepare(model, observer, revision, device, dtype, runtime, frames, sampling, stride, clips, crops, start):
    """The predictor (loaded unless given), ready for the views the user's choices make of its defaults."""
    from .inference.runner import Observer, as_predictor

    observer = observer or Observer()
    predictor = as_predictor(model, observer, runtime=runtime, revision=revision, device=device, dtype=dtype)
    views = predictor.view_options(
        frames=frames, sampling=sampling, stride=stride, clips=clips, crops=crops, start=start
    )
    with observer.loading(predictor.info.name):
        predictor.ready(views)  # the onnx runtime's first run exports its graph here
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
    """One decoding process per usable core, leaving one for the model, at least one and at most eight."""
    from .media.limits import usable_cores

    return max(1, min(8, usable_cores() - 1))


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
