"""The options several commands share, declared once. Each flag's name is the keyword argument of the API function
the command calls (``--top-k`` is ``top_k``); tests/test_layout.py holds every command to that."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


# The choices are spelled out rather than read from the API, which would import torch for `tsf --help`;
# tests/test_layout.py checks that they are the API's (SAMPLINGS, DTYPES, POOLS, RUNTIMES).
class Sampling(str, Enum):
    uniform = "uniform"
    stride = "stride"
    segments = "segments"


class DType(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Pool(str, Enum):
    cls = "cls"
    mean = "mean"


class RecordFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


def value(choice: Enum | None):
    """An option's plain value for the API (Typer hands over the Enum member)."""
    return choice.value if isinstance(choice, Enum) else choice


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Preset name (see `tsf models`), hub id, or local folder. [default: base-k400]"),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) to load.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DTypeOpt = Annotated[DType, typer.Option(help="Compute precision; auto: bf16 where the hardware runs it natively.")]
FramesOpt = Annotated[int | None, typer.Option(min=1, help="Frames per clip. [default: the model's]")]
SamplingOpt = Annotated[Sampling | None, typer.Option(help="How frames are chosen. [default: the model's]")]
StrideOpt = Annotated[int | None, typer.Option(min=1, help="Frame step for --sampling stride.")]
ClipsOpt = Annotated[int | None, typer.Option(min=1, help="Temporal clips per video (averaged).")]
StartOpt = Annotated[
    float | None, typer.Option(min=0, help="--sampling stride: start the clip at this second (default: centred).")
]
CropsOpt = Annotated[int | None, typer.Option(min=1, max=3, help="Spatial crops per clip: 1 or 3.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Videos per model batch.")]
WorkersOpt = Annotated[int | None, typer.Option(min=0, help="Decoding processes (0: decode in this process).")]
TimeoutOpt = Annotated[float, typer.Option(min=1, help="Seconds one video may take to decode before it fails.")]
RuntimeOpt = Annotated[Runtime, typer.Option(help="torch, or onnx: the model through ONNX Runtime (tsf-cli[onnx]).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail the videos whose results would carry warnings (padded, still, damaged).")
]

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file; its extension picks the format.")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run: skip what OUTPUT already records.")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUTPUT.")]
RetryOpt = Annotated[
    bool, typer.Option("--retry-failed", help="With --resume, process again the inputs recorded as failed.")
]
SourcesArg = Annotated[
    list[str], typer.Argument(help="Folders, globs, .txt lists of paths, or files.", show_default=False)
]
