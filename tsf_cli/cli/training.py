"""``tsf train`` and ``tsf eval``: fine-tune a model on labelled videos, and measure one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from . import display
from .options import (
    BatchOpt,
    ClipsOpt,
    CropsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    FramesOpt,
    JsonOpt,
    MaxMemoryOpt,
    ModelOpt,
    RevisionOpt,
    Runtime,
    RuntimeOpt,
    SamplingOpt,
    StrictOpt,
    StrideOpt,
    value,
)

DataArg = Annotated[Path, typer.Argument(help="One subfolder of videos per class, or a CSV of path,label.")]


def train(
    data_dir: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the trained model (HF layout).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Base model: preset, hub id or folder.")] = "base-k400",
    val_dir: Annotated[Path | None, typer.Option(help="Held-out set (default: --val-split of DATA_DIR).")] = None,
    val_split: Annotated[float, typer.Option(min=0, max=0.9, help="Fraction of each class held out.")] = 0.1,
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Take only the architecture and preprocessing from --model.")
    ] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 8,
    grad_accum: Annotated[int, typer.Option(min=1, help="Batches per optimizer step.")] = 1,
    lr: Annotated[float, typer.Option(min=0, help="Peak learning rate (AdamW).")] = 5e-5,
    weight_decay: Annotated[float, typer.Option(min=0)] = 0.05,
    warmup: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of steps warming up before cosine decay.")
    ] = 0.1,
    min_crop_scale: Annotated[
        float, typer.Option(min=0.05, max=1, help="Smallest random crop, as a fraction of the central square's area.")
    ] = 0.5,
    flip: Annotated[
        bool, typer.Option("--flip", help="Random horizontal flips (not when direction is the label).")
    ] = False,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 2,
    max_memory: MaxMemoryOpt = None,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUTPUT's last epoch checkpoint.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start a new run in an OUTPUT that holds one.")
    ] = False,
    seed: int = 0,
    revision: RevisionOpt = None,
):
    """Fine-tune a model on your own labelled videos; a checkpoint every epoch, --resume to continue."""
    with display.TrainDisplay() as progress:
        result = api.train(
            data_dir,
            model=model,
            output=output,
            val_dir=val_dir,
            val_split=val_split,
            from_scratch=from_scratch,
            epochs=epochs,
            batch_size=batch_size,
            grad_accum=grad_accum,
            lr=lr,
            weight_decay=weight_decay,
            warmup=warmup,
            min_crop_scale=min_crop_scale,
            flip=flip,
            workers=workers,
            max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
            device=device,
            resume=resume,
            overwrite=overwrite,
            seed=seed,
            revision=revision,
            progress=progress,
        )
    accuracy = result.val_accuracy
    held_out = f", held-out top-1 {accuracy:.1%} on {result.val_size} videos" if accuracy is not None else ""
    summary = f"{len(result.labels)} labels, {result.train_size} training videos{held_out} -> {result.output_dir}"
    display.stderr.print(summary, soft_wrap=True)
    display.stderr.print(f"use it: tsf classify VIDEO --model {result.output_dir}", soft_wrap=True)


def evaluate(
    data_dir: DataArg,
    model: ModelOpt = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the confusion matrix as CSV.")] = None,
    as_json: JsonOpt = False,
    batch_size: BatchOpt = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 2,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    runtime: RuntimeOpt = Runtime.torch,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    revision: RevisionOpt = None,
    max_memory: MaxMemoryOpt = None,
    strict: StrictOpt = False,
):
    """Top-1 / top-5 accuracy, per-class accuracy and the confusion matrix of a model on a labelled set."""
    with display.RunProgress() as progress:
        result = api.evaluate(
            data_dir,
            model=model or api.DEFAULT_MODEL,
            revision=revision,
            device=device,
            dtype=value(dtype),
            runtime=value(runtime),
            batch_size=batch_size,
            workers=workers,
            frames=frames,
            sampling=value(sampling),
            stride=stride,
            clips=clips,
            crops=crops,
            csv=csv,
            max_memory=max_memory or api.DEFAULT_MAX_MEMORY,
            strict=strict,
            observer=progress,
        )
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for table in display.evaluation_tables(result):
        display.stdout.print(table)
