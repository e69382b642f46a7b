"""The pointwise activations and the fast inference paths of the TimeSformer, with the one switch that turns the fast
paths off.

At inference (no gradients) the model takes shortcuts that are exact algebra but opaque to tracers:

- on a CPU its linear layers run through oneDNN's fused kernel, ``torch.ops.mkldnn._linear_pointwise`` (the kernel
  torch.compile emits for linear layers on a CPU), which applies the bias and a following activation inside the GEMM
  instead of in passes of their own;
- each divided block folds ``temporal_attention.output.dense`` and ``temporal_dense`` into one linear map, cached
  against the identity of the four tensors it was computed from.

Tracers can do neither: the oneDNN op has no ONNX form and no autograd formula, and the fold's cache reads tensor
identities that a tracer replaces. Inside ``fast_kernels(False)`` the model runs only standard operators
(``F.linear``, ``F.scaled_dot_product_attention`` and friends), which every exporter and compiler understands; the
results equal the fast path's within rounding. The fast paths stay the default; anything that needs gradients never
takes them, and neither do the tracers PyTorch announces (``torch.export``, the ONNX exporter built on it,
``torch.compile``, TorchScript tracing), so those work with the switch left alone.

    from tsf_cli.model.kernels import fast_kernels

    with fast_kernels(False):
        torch.onnx.export(model, (pixel_values,), "model.onnx")

(``benchmarks/bench_model.py --no-fast-kernels`` measures what the fast paths are worth on a machine.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# The names transformers uses in config.json (its ACT2FN), plus "selu", which it lacks.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "selu": F.selu,
    "silu": F.silu,
    "swish": F.silu,
}

_enabled = True


@contextmanager
def fast_kernels(enabled: bool) -> Iterator[None]:
    """Within the block, take the fast inference paths (``True``, the default outside any block) or run standard
    operators only (``False``: for ``torch.onnx.export``, ``torch.export.export``, ``torch.compile`` and debugging).
    The previous setting comes back when the block ends. One setting for the whole process, not per thread."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def fast_paths_apply() -> bool:
    """Whether the fast inference paths may run now: switched on, no gradient wanted, and no tracer at work."""
    return _enabled and not torch.is_grad_enabled() and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


# oneDNN's fused linear is registered wherever PyTorch is built with oneDNN (the official CPU wheels are). Besides
# fusing the bias and activation, its fp32 GEMM outruns MKL's on some CPUs (AMD's).
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
# our activation names -> the (attr, algorithm) oneDNN fuses them as; the other activations run after the GEMM
_ONEDNN_ACTIVATIONS = {
    None: ("none", ""),
    "gelu": ("gelu", "none"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", ""),
    "silu": ("swish", ""),
    "swish": ("swish", ""),
}


@functools.cache
def _onednn_dtypes() -> tuple[torch.dtype, ...]:
    if _ONEDNN_LINEAR is None:
        return ()
    bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # oneDNN's bf16 needs AVX-512 BF16 or AMX
    return (torch.float32, torch.bfloat16) if bf16 is not None and bf16() else (torch.float32,)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None):
    """activation(x @ weight.T + bias): through oneDNN's fused kernel on a CPU where the fast paths apply, else
    F.linear followed by the activation."""
    if fast_paths_apply() and x.device.type == "cpu" and x.dtype in _onednn_dtypes():
        fused = activation if activation in _ONEDNN_ACTIVATIONS else None
        y = _ONEDNN_LINEAR(x, weight, bias, _ONEDNN_ACTIVATIONS[fused][0], [], _ONEDNN_ACTIVATIONS[fused][1])
    else:
        fused, y = None, F.linear(x, weight, bias)
    return y if activation == fused else ACTIVATIONS[activation](y)


def fused_attention_is_faster(x: torch.Tensor) -> bool:
    """Whether F.scaled_dot_product_attention beats two batched matmuls and a softmax for ``x``'s device and dtype.

    It does on CUDA, and in fp32 on a CPU. In bf16 and fp16 on a CPU its fused kernel runs as many small GEMM calls,
    which for TimeSformer's short sequences (8 frames; 197 tokens) lose to the plain path (bench_model.py measures
    both). Either way the result is attention; this only picks the faster road.
    """
    return x.device.type != "cpu" or x.dtype == torch.float32
