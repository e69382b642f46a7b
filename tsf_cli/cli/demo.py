"""``tsf demo``: the whole pipeline offline, on a generated clip whose truth is known."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from ..errors import VideoError
from ..results import VideoFailure
from . import display
from .options import JsonOpt


def demo(
    motion: Annotated[
        str | None,
        typer.Option(help="The motion to generate: " + ", ".join(api.MOTIONS) + ". \\[default: a random one]"),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of the generated clip. \\[default: a random one]")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Keep the clip here (.mp4, .mkv, .mov, .avi, .webm).")
    ] = None,
    as_json: JsonOpt = False,
):
    """Offline: generate a synthetic motion clip and classify it with the small model bundled in tsf."""
    run = api.run_demo(motion, seed=seed, output=output)
    clip = run.clip
    article = "an" if clip.spec.shape[0] in "aeiou" else "a"
    where = str(run.kept) if run.kept is not None else "a clip, not kept (-o FILE keeps it)"
    description = (
        f"Generated {where}: {article} {clip.spec.shape} {clip.motion.replace('_', ' ')}, "
        f"{clip.spec.num_frames} frames {clip.spec.width}x{clip.spec.height} ({clip.codec}), seed {run.seed}"
    )
    display.stderr.print(description, markup=False, soft_wrap=True)
    if isinstance(run.result, VideoFailure):
        display.error(run.result.message)
        raise typer.Exit(VideoError.exit_code)
    if as_json:
        api.write_json_document([run.result], sys.stdout, demo=run.to_dict())
        return
    title = str(run.kept) if run.kept is not None else f"the generated clip ({clip.motion}, seed {run.seed})"
    display.stdout.print(display.prediction_table(run.result, title=title))
    predicted = run.result.predictions[0].label
    verdict = "[green]right[/]" if predicted == clip.motion else "[red]wrong[/]"
    display.stdout.print(f"truth: {clip.motion}, prediction: {predicted} ({verdict})")
