"""The TimeSformer as an ONNX graph: one standalone file that ONNX Runtime, or any other ONNX runtime, runs without tsf.

``export_onnx`` traces the model with PyTorch's exporter (``torch.onnx.export(dynamo=True)``, which needs the onnx and
onnxscript packages) at opset 20, with a free batch axis and the frame count and frame size fixed: the time and
position embeddings are resized for them while tracing, so there is one graph per (frames, height, width). The input
is ``pixel_values`` (batch, frames, 3, height, width), normalised as the checkpoint's preprocessor_config.json says;
the outputs are those asked for, among

- ``logits`` (batch, labels): the classifier;
- ``cls_embedding``, ``mean_embedding`` (batch, hidden): the vectors ``tsf embed --pool cls|mean`` returns;

so one graph can serve classification and both embeddings. The file carries key/value metadata (``metadata_props``,
``tsf.*`` keys): labels, config, frames, size, dtype, versions, and whatever the caller adds.

Nothing is written until the graph has been run through ONNX Runtime on random inputs, at two batch sizes that are not
the traced one, and compared with the model's own inference path (fast kernels and all, as ``--runtime torch`` runs
it): a graph further than the tolerance from the model raises an ExportError and leaves the file untouched.

Each divided block's two temporal projections are traced as one linear layer, the fold that the fast inference path
computes (the file is 6% smaller and about 4% faster in ONNX Runtime); everything else is the network's standard
operators (``kernels.fast_kernels(False)``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import ExportError, MissingDependencyError
from ..io.atomic import atomic_file, reporting
from .kernels import fast_kernels
from .onnx_format import EMBEDDING_OUTPUTS, INPUT, OPSET, OUTPUTS, GraphInfo
from .timesformer import Block, TimesformerForVideoClassification

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}  # as onnx_format.GRAPH_DTYPES
# The largest |graph - model| difference accepted, for outputs up to 1 in size (relative beyond): fp32 graphs land
# within a few 1e-6 of the model; fp16 ones within a few 1e-3, as fp16 rounds.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
TRACE_BATCH = 2  # traced with a batch of 1, the exporter silently fixes the graph's batch at 1
CHECK_BATCHES = (1, 3)  # neither is the traced batch, so a graph that passes takes any batch


@dataclass(frozen=True)
class ExportResult:
    """An exported graph: where, what it takes and gives, and how far it is from the model it came from."""

    path: str
    outputs: tuple[str, ...]
    frames: int
    height: int
    width: int
    dtype: str
    opset: int
    size_bytes: int
    seconds: float  # tracing, writing and checking
    differences: dict[str, float] = field(default_factory=dict)  # output -> max |graph - model| over the checks
    tolerance: float = 0.0

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "outputs": list(self.outputs),
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "dtype": self.dtype,
            "opset": self.opset,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 2),
            "max_abs_difference": self.differences,
            "tolerance": self.tolerance,
        }


class _Outputs(nn.Module):
    """The classifier with a tuple of named outputs, computed as ``Predictor`` computes them."""

    def __init__(self, model: TimesformerForVideoClassification, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tokens = self.model.forward_features(pixel_values)  # (B, 1 + N*T, D)
        pools = {output: pool for pool, output in EMBEDDING_OUTPUTS.items()}
        return tuple(
            self.model.forward_head(tokens) if name == "logits" else self.model.forward_head(tokens, pools[name], True)
            for name in self.outputs
        )


def require_exporter() -> None:
    """Fail with one line naming the extra when PyTorch's ONNX exporter, or ONNX Runtime that checks its work, is
    missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingDependencyError("exporting to ONNX", "onnx, onnxscript and onnxruntime", "onnx") from None


def export_onnx(
    model: TimesformerForVideoClassification,
    path: str | os.PathLike,
    *,
    frames: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    outputs: tuple[str, ...] = OUTPUTS,
    opset: int = OPSET,
    preprocessor: dict | None = None,
    source: str | None = None,
    revision: str | None = None,
    cache_key: str | None = None,
) -> ExportResult:
    """Write ``model`` (in fp32 or fp16, on the CPU) to ``path`` as one ONNX file, checked against the model first.

    ``frames`` and ``image_size`` (one side, or (height, width)) default to the config's; other values work where the
    patches tile the frame. ``preprocessor`` (the preprocessor_config.json), ``source``, ``revision`` and
    ``cache_key`` go into the metadata with what is known here (see ``onnx_format``). Raises ExportError when the
    graph does not reproduce the model within ``TOLERANCE``; ``path`` is then left as it was.
    """
    require_exporter()
    import onnx

    config = model.config
    dtype = {v: k for k, v in DTYPES.items()}.get(model.dtype)
    if dtype is None:
        raise ValueError(f"export takes fp32 or fp16 weights, not {model.dtype}")
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown or not outputs:
        raise ValueError(f"outputs must be some of {', '.join(OUTPUTS)}, got {list(outputs)}")
    frames = frames or config.num_frames
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size or (config.image_size,) * 2
    model.timesformer.embeddings.patch_grid(height, width)  # a size the patches cannot tile fails now, not mid-trace
    shape = (frames, config.num_channels, height, width)

    began = time.perf_counter()
    proto = _trace(model.eval(), shape, outputs, opset)
    info = GraphInfo(
        frames=frames,
        height=height,
        width=width,
        dtype=dtype,
        outputs=tuple(outputs),
        config=config.to_dict(),
        preprocessor=preprocessor,
        source=source,
        revision=revision,
        opset=opset,
        tsf_version=__version__,
        torch_version=version("torch"),
        cache_key=cache_key,
    )
    _set_metadata(proto, info.to_metadata())
    proto.doc_string = (
        f"TimeSformer exported by tsf {__version__}: {INPUT} (batch, {frames}, {config.num_channels}, {height}, "
        f"{width}) {dtype}, normalised as tsf.preprocessor_config says -> {', '.join(outputs)}"
    )
    path = Path(path)
    with reporting(path), atomic_file(path) as file:
        onnx.save_model(proto, file)
        del proto  # the serialised copy is on disk; the check needs the memory
        file.flush()
        differences, tolerance = _check(file.name, model, shape, outputs, dtype)
    return ExportResult(
        path=str(path),
        outputs=tuple(outputs),
        frames=frames,
        height=height,
        width=width,
        dtype=dtype,
        opset=opset,
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - began,
        differences=differences,
        tolerance=tolerance,
    )


def _trace(model: TimesformerForVideoClassification, shape: tuple[int, ...], outputs, opset: int):
    """The ONNX ModelProto of ``model`` on (batch, *shape) pixel values, the batch axis free."""
    example = torch.randn(TRACE_BATCH, *shape, dtype=model.dtype)
    with torch.no_grad(), fast_kernels(False), _folded_temporal_projections(model), _quiet(), _reported():
        program = torch.onnx.export(
            _Outputs(model, outputs).eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT],
            output_names=list(outputs),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            external_data=False,
            optimize=True,
        )
    proto = program.model_proto
    if not proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param:
        raise ExportError("the exporter fixed the graph's batch size; it would take one batch size only")
    return proto


@contextlib.contextmanager
def _folded_temporal_projections(model: nn.Module) -> Iterator[None]:
    """While tracing, each divided block's ``temporal_attention.output.dense`` followed by ``temporal_dense`` as one
    linear layer: the fold of ``Block.folded_temporal_projection``, made a plain layer (the tracers never take the fast
    path that uses it), so that the graph holds one weight and one GEMM instead of two. The model is whole again
    afterwards."""
    blocks = [m for m in model.modules() if isinstance(m, Block) and m.divided]
    kept = [(block.temporal_attention.output.dense, block.temporal_dense) for block in blocks]
    try:
        for block in blocks:
            weight, bias = block.folded_temporal_projection()
            folded = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
            folded.weight, folded.bias = nn.Parameter(weight, requires_grad=False), nn.Parameter(bias, False)
            block.temporal_attention.output.dense = folded
            block.temporal_dense = nn.Identity()
        yield
    finally:
        for block, (dense, projection) in zip(blocks, kept, strict=True):
            block.temporal_attention.output.dense = dense
            block.temporal_dense = projection


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """The exporter's own failures as one ExportError line (its traceback with --debug)."""
    try:
        yield
    except torch.onnx.errors.OnnxExporterError as exc:
        text = str(exc).strip()
        raise ExportError(
            f"PyTorch's ONNX exporter failed: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter reports its progress on stdout, and its passes log warnings about every weight split they leave
    alone: none of it is for tsf's users (stdout is data), and --debug shows the traceback of a real failure."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _set_metadata(proto, metadata: dict[str, str]) -> None:
    """``metadata`` into the graph's metadata_props, replacing keys already there."""
    kept = {entry.key: entry.value for entry in proto.metadata_props}
    kept.update(metadata)
    del proto.metadata_props[:]
    for key, value in kept.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _check(path: str, model, shape: tuple[int, ...], outputs, dtype: str) -> tuple[dict[str, float], float]:
    """Run the graph at ``path`` and the model on the same random inputs; the largest difference of each output, and
    the tolerance. Raises ExportError beyond it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    differences = dict.fromkeys(outputs, 0.0)
    scale = 1.0
    for batch in CHECK_BATCHES:
        pixels = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch)).to(model.dtype)
        with torch.inference_mode():
            expected = [t.float().numpy() for t in _Outputs(model, outputs)(pixels)]
        got = session.run(list(outputs), {INPUT: pixels.numpy()})
        for name, want, have in zip(outputs, expected, got, strict=True):
            differences[name] = max(differences[name], float(np.abs(have.astype(np.float32) - want).max()))
            scale = max(scale, float(np.abs(want).max()))
    tolerance = TOLERANCE[dtype] * scale
    beyond = {name: f"{d:.2g}" for name, d in differences.items() if not d <= tolerance}  # NaN counts as beyond
    if beyond:
        raise ExportError(
            f"the exported graph does not reproduce the model: max abs difference {beyond} > {tolerance:.2g} "
            "(nothing was written)"
        )
    return differences, tolerance
