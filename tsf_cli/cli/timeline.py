"""``tsf timeline``: labels along whole videos, as a table and a strip in the terminal, JSON, subtitles, a plot or a
page to watch them on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from ..errors import UsageError, VideoError
from ..results import VideoFailure
from . import display
from .options import (
    CropsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    FramesOpt,
    HopOpt,
    MaxMemoryOpt,
    MinProbabilityOpt,
    ModelOpt,
    RevisionOpt,
    Runtime,
    RuntimeOpt,
    SamplingOpt,
    SmoothOpt,
    StrictOpt,
    StrideOpt,
    VideosArg,
    WindowOpt,
    check_videos_exist,
    value,
)
from .timeline_view import timeline_view

STEM = "{stem}"


def timeline(
    videos: VideosArg,
    model: ModelOpt = None,
    window: WindowOpt = None,
    hop: HopOpt = None,
    min_probability: MinProbabilityOpt = api.DEFAULT_MIN_PROBABILITY,
    smooth: SmoothOpt = api.DEFAULT_SMOOTH,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels to keep per window.")] = 5,
    output: Annotated[
        list[Path] | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write this file, its suffix picking the format: .json .csv .srt .vtt .png .svg .html; "
            "repeat for several. With several videos, {stem} in the name becomes each video's name.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of tables.")] = False,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    crops: CropsOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Windows per model batch.")] = 8,
    timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds to wait for a video's next frame (a stalled server's) before it fails."),
    ] = 300,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
    runtime: RuntimeOpt = Runtime.torch,
    strict: StrictOpt = False,
):
    """Labels along each video: windows classified one by one, merged into segments.

    A window whose top label is below --min-probability votes "uncertain"; each window then takes the majority
    vote of the --smooth windows around it; runs of equal votes are segments, split halfway between window centres.
    """
    check_videos_exist(videos)
    outputs = {video: _outputs_of(video, output or [], several=len(videos) > 1) for video in videos}
    api.check_timeline_outputs([path for paths in outputs.values() for path in paths])  # before any decoding
    name = model or api.DEFAULT_MODEL
    with display.Loading().loading(name):
        predictor = api.load_model(name, revision=revision, device=device, dtype=value(dtype), runtime=value(runtime))
    results = []
    for video in videos:
        try:
            with display.WindowProgress(video) as progress:
                result = api.timeline(
                    video,
                    model=predictor,
                    window=window,
                    hop=hop,
                    min_probability=min_probability,
                    smooth=smooth,
                    top_k=top_k,
                    output=outputs[video],
                    frames=frames,
                    sampling=value(sampling),
                    stride=stride,
                    crops=crops,
                    batch_size=batch_size,
                    timeout=timeout,
                    max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
                    strict=strict,
                    observer=progress,
                )
        except VideoError as exc:  # one bad video does not stop the others; JSON gives its record, as classify's
            display.error(str(exc))
            results.append(VideoFailure(video, type(exc).__name__, str(exc)))
            continue
        results.append(result)
        display.record_warnings([result])
        if not as_json:
            display.stdout.print(timeline_view(result, display.stdout))
        for path in outputs[video]:
            display.stderr.print(f"Wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        api.write_json_document(results, sys.stdout)
    if any(isinstance(result, VideoFailure) for result in results):
        raise typer.Exit(VideoError.exit_code)


def _outputs_of(video: str, outputs: list[Path], *, several: bool) -> list[Path]:
    """The files to write for ``video``: each output, with {stem} standing for the video's name."""
    if several and any(STEM not in str(path) for path in outputs):
        raise UsageError(f"with several videos, each --output needs {STEM} in its name (e.g. -o 'out/{STEM}.srt')")
    return [Path(str(path).replace(STEM, Path(video).stem)) for path in outputs]
