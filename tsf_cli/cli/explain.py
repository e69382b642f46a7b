"""``tsf explain``: where and when the model looked for a label, as pictures and arrays."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from . import display
from .options import (
    ClipsOpt,
    CropsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    FramesOpt,
    MaxMemoryOpt,
    ModelOpt,
    RevisionOpt,
    Runtime,
    RuntimeOpt,
    SamplingOpt,
    StartOpt,
    StrideOpt,
    value,
)


# Spelled out rather than read from the API, which would import torch for `tsf --help`; tests/test_layout.py checks
# that they are the API's METHODS.
class Method(str, Enum):
    rollout = "rollout"
    grad_rollout = "grad-rollout"


def explain(
    video: Annotated[str, typer.Argument(help="Video file or http(s) URL.", show_default=False)],
    output: Annotated[
        list[Path],
        typer.Option(
            "--output",
            "-o",
            help="Output file, by suffix: .png (contact sheet), .gif or .mp4 (the clip with the heatmaps), .npz "
            "(arrays). Repeat for several; an existing file is replaced.",
            show_default=False,
        ),
    ],
    model: ModelOpt = None,
    label: Annotated[str | None, typer.Option(help="The label to explain (default: the top-1).")] = None,
    method: Annotated[
        Method,
        typer.Option(help="rollout: attention rollout, one map for every label; grad-rollout: weighted by the label."),
    ] = Method.rollout,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels listed on the contact sheet.")] = 5,
    runtime: RuntimeOpt = Runtime.torch,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
):
    """Heatmaps of where, and bars of when, the model looked for the top-1 label (or --label) of a video.

    The view explained is the one tsf classify uses (its first clip's centre crop, where it averages several).

    The maps show what the prediction drew on, not whether it is right; see the README.
    """
    with display.Explaining(video, value(method)) as observer:
        explanation = api.explain(
            video,
            output=output,
            model=model or api.DEFAULT_MODEL,
            label=label,
            method=value(method),
            top_k=top_k,
            runtime=value(runtime),
            revision=revision,
            device=device,
            dtype=value(dtype),
            frames=frames,
            sampling=value(sampling),
            stride=stride,
            clips=clips,
            crops=crops,
            start=start,
            max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
            observer=observer,
        )
    display.record_warnings([explanation])
    for path in output:
        display.stderr.print(f"wrote {path}", markup=False, highlight=False)
    display.stdout.print(display.explanation_line(explanation), markup=False)
