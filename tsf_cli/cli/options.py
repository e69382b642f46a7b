"""The options several commands share, declared once. Each flag's name is the keyword argument of the API function
the command calls (``--top-k`` is ``top_k``); tests/test_layout.py holds every command to that."""

from __future__ import annotations

import os
import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from ..errors import VideoError


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


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


def value(choice: Enum | None):
    """An option's plain value for the API (Typer hands over the Enum member)."""
    return choice.value if isinstance(choice, Enum) else choice


_SIZE = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?\s*")
_UNITS = {None: 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """Bytes from ``2G``, ``2GiB``, ``2gb``, ``1.5G``, ``512M`` or ``2147483648``: K, M, G and T are binary
    (a G is 2**30 bytes), as memory is counted."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size; give bytes or a number with K, M, G or T (2G, 512M)")
    size = int(float(match.group(1)) * _UNITS[match.group(2) and match.group(2).lower()])
    if size <= 0:
        raise typer.BadParameter("must be more than 0 bytes")
    return size


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Preset name (see `tsf models`), hub id, or local folder. \\[default: base-k400]"
    ),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) to load.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DTypeOpt = Annotated[DType, typer.Option(help="Compute precision; auto: bf16 where the hardware runs it natively.")]
FramesOpt = Annotated[int | None, typer.Option(min=1, help="Frames per clip. \\[default: the model's]")]
SamplingOpt = Annotated[Sampling | None, typer.Option(help="How frames are chosen. \\[default: the model's]")]
StrideOpt = Annotated[int | None, typer.Option(min=1, help="Frame step for --sampling stride.")]
ClipsOpt = Annotated[int | None, typer.Option(min=1, help="Temporal clips per video (averaged).")]
StartOpt = Annotated[
    float | None, typer.Option(min=0, help="--sampling stride: start the clip at this second (default: centred).")
]
CropsOpt = Annotated[int | None, typer.Option(min=1, max=3, help="Spatial crops per clip: 1 or 3.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Videos per model batch.")]
WorkersOpt = Annotated[int | None, typer.Option(min=0, help="Decoding processes (0: decode in this process).")]
TimeoutOpt = Annotated[float, typer.Option(min=1, help="Seconds one video may take to decode before it fails.")]
RuntimeOpt = Annotated[Runtime, typer.Option(help="torch, or onnx: the model through ONNX Runtime (tsf-cli\\[onnx]).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")]
MaxMemoryOpt = Annotated[
    int | None,
    typer.Option(
        parser=parse_size,
        metavar="SIZE",
        help="Memory one video may take to decode (2G, 512M); 8K at 16 frames needs about 2.1G. \\[default: 2G]",
    ),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail the videos whose results would carry warnings (padded, still, damaged).")
]

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file; its extension picks the format.")]
EngineOpt = Annotated[
    Engine, typer.Option(help="local: this machine; ray: Ray Data, on this machine or a cluster (tsf-cli\\[ray]).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="--engine ray: the cluster's address, auto or host:port. \\[default: a Ray started for the run]"),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
FollowLinksOpt = Annotated[
    bool, typer.Option("--follow-links", help="With -r, descend into links to folders too (each real folder once).")
]
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

# tsf timeline, and tsf batch --timeline
WindowOpt = Annotated[
    float | None,
    typer.Option(
        help="Seconds per window. \\[default: the clip the model was trained on: 8.5 s for the Kinetics presets, "
        "4 s for Something-Something, 2 s for demo]"
    ),
]
HopOpt = Annotated[
    float | None, typer.Option(help="Seconds from one window's start to the next. \\[default: half the window]")
]
MinProbabilityOpt = Annotated[
    float | None,
    typer.Option(
        min=0,
        max=1,
        show_default=False,
        help="A window whose top label is less probable than this votes 'uncertain'. \\[default: 0.5]",
    ),
]
SmoothOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        show_default=False,
        help="Each window takes the majority vote of this many windows around it (odd; 1: none). \\[default: 1]",
    ),
]

# str, not Path: a Path would turn https://host/v.mp4 into https:/host/v.mp4
VideosArg = Annotated[list[str], typer.Argument(help="Video files, or http(s) URLs.", show_default=False)]


def check_videos_exist(videos: list[str]) -> None:
    """A local video that is not there fails before the model loads; URLs and objects in a store fail when read.
    lexists: a broken or looping link, a FIFO are named by the decoder's own refusal, not as missing files."""
    for video in videos:
        if not (api.is_url(video) or api.is_uri(video)) and not os.path.lexists(video):
            raise VideoError(video, "no such file")
