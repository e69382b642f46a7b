"""``tsf classify``, ``tsf batch``, ``tsf embed``: videos in, labels or vectors out."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import api
from ..errors import EXIT_SOME_FAILED, VideoError
from ..results import VideoFailure
from . import display
from .options import (
    BatchOpt,
    ClipsOpt,
    CropsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    Engine,
    EngineOpt,
    FollowLinksOpt,
    FramesOpt,
    HopOpt,
    MaxMemoryOpt,
    MinProbabilityOpt,
    ModelOpt,
    OverwriteOpt,
    Pool,
    RayAddressOpt,
    RecordFormat,
    RecursiveOpt,
    ResumeOpt,
    RetryOpt,
    RevisionOpt,
    Runtime,
    RuntimeOpt,
    SamplingOpt,
    SmoothOpt,
    SourcesArg,
    StartOpt,
    StrictOpt,
    StrideOpt,
    TimeoutOpt,
    VideosArg,
    WindowOpt,
    WorkersOpt,
    check_videos_exist,
    value,
)

TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels to show per video.")]
RESUME_HINT = "Finished records are kept: run the same command with --resume to continue."


def classify(
    videos: VideosArg,
    model: ModelOpt = None,
    top_k: TopKOpt = 5,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    runtime: RuntimeOpt = Runtime.torch,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
    strict: StrictOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of tables.")] = False,
):
    """Top-k labels of each video (a file or an http(s) URL), as a table (or JSON with --json)."""
    check_videos_exist(videos)
    records = api.classify(
        videos,
        model=model or api.DEFAULT_MODEL,
        top_k=top_k,
        revision=revision,
        device=device,
        dtype=value(dtype),
        runtime=value(runtime),
        frames=frames,
        sampling=value(sampling),
        stride=stride,
        clips=clips,
        crops=crops,
        start=start,
        max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
        strict=strict,
        observer=display.Loading(),
    )
    display.record_warnings(records)
    if as_json:
        api.write_json_document(records, sys.stdout)
    else:
        for record in records:
            if not isinstance(record, VideoFailure):
                display.stdout.print(display.prediction_table(record))
    failures = [r for r in records if isinstance(r, VideoFailure)]
    for failure in failures:
        display.error(failure.message)
    if failures:
        raise typer.Exit(VideoError.exit_code)


def batch(
    sources: SourcesArg,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file, .jsonl or .csv (s3://... too); - for standard output (see --format); with --engine ray "
            "also a folder/ of Parquet files.",
        ),
    ],
    recursive: RecursiveOpt = False,
    follow_links: FollowLinksOpt = False,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 4,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = 300,
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels to keep per video.")] = 5,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    runtime: RuntimeOpt = Runtime.torch,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
    strict: StrictOpt = False,
    format: Annotated[
        RecordFormat | None, typer.Option(help="The records' format on standard output (-o -). \\[default: jsonl]")
    ] = None,
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Record each video's timeline (its segments) instead of its labels.")
    ] = False,
    windows: Annotated[
        bool, typer.Option("--windows", help="With --timeline, keep every window in the record.")
    ] = False,
    window: WindowOpt = None,
    hop: HopOpt = None,
    min_probability: MinProbabilityOpt = None,
    smooth: SmoothOpt = None,
    engine: EngineOpt = Engine.local,
    ray_address: RayAddressOpt = None,
):
    """Classify every file of folders, globs or lists into OUTPUT (.jsonl or .csv), one record per input.

    Records are written as each video finishes, so an interrupted run leaves a valid file that --resume continues.
    With --timeline each record is a video's timeline, as tsf timeline makes it (.jsonl only; --batch-size then
    counts windows, and --timeout is the longest wait for a video's next window). Exit code 8 when any input failed.
    """
    with display.RunProgress(RESUME_HINT) as progress:
        summary = api.batch(
            sources,
            output,
            model=model or api.DEFAULT_MODEL,
            recursive=recursive,
            follow_links=follow_links,
            resume=resume,
            overwrite=overwrite,
            retry_failed=retry_failed,
            top_k=top_k,
            batch_size=batch_size,
            workers=workers,
            timeout=timeout,
            revision=revision,
            device=device,
            dtype=value(dtype),
            runtime=value(runtime),
            frames=frames,
            sampling=value(sampling),
            stride=stride,
            clips=clips,
            crops=crops,
            start=start,
            max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
            strict=strict,
            format=value(format),
            timeline=timeline,
            windows=windows,
            window=window,
            hop=hop,
            min_probability=min_probability,
            smooth=smooth,
            engine=value(engine),
            ray_address=ray_address,
            observer=progress,
        )
    _finish(summary, sources)


def embed(
    sources: SourcesArg,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file; its extension picks the format. With --engine ray also a folder/ of Parquet files.",
        ),
    ],
    pool: Annotated[
        Pool, typer.Option(help="cls: the final-norm CLS token; mean: the mean of the patch tokens.")
    ] = Pool.cls,
    recursive: RecursiveOpt = False,
    follow_links: FollowLinksOpt = False,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 4,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = 300,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    runtime: RuntimeOpt = Runtime.torch,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
    strict: StrictOpt = False,
    engine: EngineOpt = Engine.local,
    ray_address: RayAddressOpt = None,
):
    """One embedding per video into OUTPUT: .npy (+ .json sidecar), .npz, .safetensors, .parquet or .jsonl.

    The file is written atomically at the end; until then results go to OUTPUT.partial.jsonl, which --resume
    continues. Exit code 8 when any input failed.
    """
    with display.RunProgress(RESUME_HINT) as progress:
        summary = api.embed_files(
            sources,
            output,
            model=model or api.DEFAULT_MODEL,
            pool=value(pool),
            recursive=recursive,
            follow_links=follow_links,
            resume=resume,
            overwrite=overwrite,
            retry_failed=retry_failed,
            batch_size=batch_size,
            workers=workers,
            timeout=timeout,
            revision=revision,
            device=device,
            dtype=value(dtype),
            runtime=value(runtime),
            frames=frames,
            sampling=value(sampling),
            stride=stride,
            clips=clips,
            crops=crops,
            start=start,
            max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
            strict=strict,
            engine=value(engine),
            ray_address=ray_address,
            observer=progress,
        )
    _finish(summary, sources)


def _finish(summary, sources: list[str]) -> None:
    if not summary.total:
        display.warn(f"nothing to do: {', '.join(sources)} holds no files (hidden ones do not count)")
    display.stderr.print(display.summary_line(summary), soft_wrap=True, markup=False)
    if summary.failed or summary.failed_before:
        raise typer.Exit(EXIT_SOME_FAILED)
