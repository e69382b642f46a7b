"""``tsf export``: a model as one standalone ONNX file, checked against PyTorch before it is written."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import api
from . import display
from .options import ModelOpt, Pool, RevisionOpt


class GraphDType(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    frames: Annotated[int | None, typer.Option(min=1, help="Frames the graph takes. \\[default: the model's]")] = None,
    image_size: Annotated[
        int | None, typer.Option(min=1, help="Frame height and width the graph takes. \\[default: the model's crop]")
    ] = None,
    dtype: Annotated[
        GraphDType, typer.Option(help="fp32, or fp16 for GPU runtimes (on a CPU slower than fp32).")
    ] = GraphDType.fp32,
    opset: Annotated[int, typer.Option(min=18, max=23, help="ONNX opset.")] = api.OPSET,
    features: Annotated[
        bool, typer.Option("--features", help="Output the embedding (see --pool) instead of the logits.")
    ] = False,
    pool: Annotated[
        Pool, typer.Option(help="With --features: cls, the final-norm CLS token; mean, the mean of the patch tokens.")
    ] = Pool.cls,
    as_json: Annotated[bool, typer.Option("--json", help="Also the result as JSON on stdout.")] = False,
):
    """Write the model as one ONNX file with a free batch axis, its labels and preprocessing in the metadata.

    The graph is run on random inputs and compared with the PyTorch model before it is written; beyond the tolerance
    nothing is written and the exit code is 1.
    """
    name = model or api.DEFAULT_MODEL
    with display.stderr.status(f"Exporting {name} (tracing, then checking the graph against PyTorch)..."):
        result = api.export(
            output,
            model=name,
            revision=revision,
            frames=frames,
            image_size=image_size,
            dtype=dtype.value,
            opset=opset,
            features=features,
            pool=pool.value,
        )
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    display.stderr.print(display.export_summary(result), soft_wrap=True, markup=False)
