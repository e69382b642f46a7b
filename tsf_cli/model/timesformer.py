"""TimeSformer (Bertasius et al., 2021: "Is Space-Time Attention All You Need for Video Understanding?") in PyTorch.

The whole network in one file: config, embeddings, attention, block, encoder, the two heads. Parameter names are
those of Hugging Face transformers' ``modeling_timesformer.py``, so its checkpoints load with no key remapping, and the
outputs match it number for number wherever it is right. Two places where it is not, and we follow the original
facebookresearch/TimeSformer instead:

- ``attention_type="space_only"`` averages the tokens over the frames before the final norm, so the classifier gives
  one row of logits per video (transformers gives one per frame);
- the frame count and resolution come from the input, not the config (transformers reshapes inside its layers with
  the config's values). Time and position embeddings are resized with nearest interpolation, as in the original.

Token layout. The reference keeps a video as (B, 1 + N*T, D): one class token, then the N patches of each of the T
frames with the frame index fastest. Divided space-time attention alternates between attending over frames and over
patches, which in that layout costs a permute copy (and a concatenation of the class token) twice per layer. Here
the encoder keeps a divided-attention video as (B, T, 1 + N, D) with the class token repeated in column 0 of every
frame: spatial attention reads each frame as a contiguous sequence, temporal attention reads the columns through a
strided view, and no layer copies tokens around. Outputs are given in the reference layout.

Speed. Inference (``torch.inference_mode()`` or ``torch.no_grad()``) takes shortcuts that are exact algebra:
``temporal_attention.output.dense`` and ``temporal_dense`` are folded into one linear map, and on a CPU the linears run
through oneDNN's fused kernel (bias and activation inside the GEMM). ``kernels.fast_kernels(False)`` turns both off,
for exporters and compilers. Attention goes through ``F.scaled_dot_product_attention`` unless maps are asked for or,
in bf16/fp16 on a CPU, the plain path is faster. Cast the model once with ``.to(device, dtype)`` (fp32, bf16 or fp16);
pixel values are cast to the weights' dtype.

Attention probes. ``TimesformerModel.forward(attention_probe=...)`` hands every attention core, softmax(q kᵀ/√d)·v, to
a caller that computes it itself (``AttentionProbe``), so that it can reduce the maps as they are made instead of
keeping them all (``tsf_cli.inference.rollout`` explains predictions that way). Without a probe nothing changes: the
same code runs, one ``is None`` test aside.

Nothing here does I/O: ``from_pretrained`` / ``save_pretrained`` come from ``loading``'s mixins, which know the
classes only through ``config_class`` and ``base_model_prefix``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..results import POOLS
from .kernels import ACTIVATIONS, fast_paths_apply, fused_attention_is_faster, linear
from .loading import PretrainedConfigMixin, PretrainedModelMixin

ATTENTION_TYPES = ("divided_space_time", "space_only", "joint_space_time")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# ``probe(layer, kind, q, k, v) -> context`` stands in for one attention core, softmax(q kᵀ / sqrt(head_dim))·v, and
# must return what the core would (attention dropout is not applied). q, k, v and the context are (B', S*H, L, hd):
# S sequences of length L, H heads each, map m being head m % H of sequence m // H. ``kind`` says which attention:
#   "time"  (divided): B' = B videos, S = 1 + N patch positions (s = 0 the class token's column, whose update the
#           block throws away), L = T frames
#   "space" (divided and space_only): B' = B*T frames, video-major, S = 1, L = 1 + N (token 0 the class token)
#   "joint" (joint_space_time): B' = B, S = 1, L = 1 + N*T in the reference layout (frame index fastest)
AttentionProbe = Callable[[int, str, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TimesformerConfig(PretrainedConfigMixin):
    """The hyper-parameters of a TimeSformer, read from and written to a Hugging Face ``config.json``.

    Keys this class does not know are kept in ``extra`` and written back, so a config survives a round trip.
    ``name_or_path`` and ``commit_hash`` say where a loaded model came from; they are never written.
    """

    model_type = "timesformer"
    display_name = "TimeSformer"

    def __init__(
        self,
        image_size: int = 224,  # frame height and width the position embeddings were trained at
        patch_size: int = 16,  # side of the square patches, in pixels
        num_channels: int = 3,
        num_frames: int = 8,  # frames the time embeddings were trained at
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,  # width of the MLP's hidden layer
        hidden_act: str = "gelu",  # one of ACTIVATIONS
        hidden_dropout_prob: float = 0.0,  # dropout on the embeddings and after every projection
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,  # std of the truncated normal that initialises weights
        layer_norm_eps: float = 1e-6,
        qkv_bias: bool = True,
        attention_type: str = "divided_space_time",  # one of ATTENTION_TYPES
        drop_path_rate: float = 0,  # stochastic depth of the last layer, rising linearly from 0 at the first; an
        # int 0 by default, as transformers (5.x) accepts no float 0.0 here
        id2label: dict[int, str] | None = None,  # class index -> name; defaults to LABEL_0.. for num_labels
        label2id: dict[str, int] | None = None,  # defaults to the inverse of id2label
        num_labels: int | None = None,  # used only when id2label is not given; 2 as in transformers
        problem_type: str | None = None,  # the loss: one of PROBLEM_TYPES, None to infer it from the labels
        architectures: list[str] | None = None,
        **extra: Any,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.attention_type = attention_type
        self.drop_path_rate = drop_path_rate
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
        # config.json stores the keys as strings; in memory they are class indices
        self.id2label = {int(k): v for k, v in id2label.items()}
        self.label2id = dict(label2id) if label2id is not None else {v: k for k, v in self.id2label.items()}
        self.problem_type = problem_type
        self.architectures = architectures
        # metadata a loaded config carries and never writes; old transformers wrote the name as "_name_or_path"
        for key in ("_name_or_path", "_commit_hash", "name_or_path", "commit_hash"):
            extra.pop(key, None)
        self.extra = extra
        self.name_or_path: str | None = None
        self.commit_hash: str | None = None
        self.validate()

    # The parameters written to config.json, in the order of the signature above.
    FIELDS = (
        "image_size",
        "patch_size",
        "num_channels",
        "num_frames",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "initializer_range",
        "layer_norm_eps",
        "qkv_bias",
        "attention_type",
        "drop_path_rate",
    )

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if value != self.num_labels:
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    def validate(self) -> None:
        """Raise a ValueError naming the first field whose value cannot build a model."""
        for name in (
            "image_size",
            "patch_size",
            "num_channels",
            "num_frames",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.patch_size > self.image_size:
            raise ValueError(f"patch_size ({self.patch_size}) must not exceed image_size ({self.image_size})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {', '.join(ATTENTION_TYPES)}, got {self.attention_type!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        if isinstance(self.layer_norm_eps, bool) or not isinstance(self.layer_norm_eps, (int, float)):
            raise ValueError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range < 0:
            raise ValueError(f"initializer_range must be a non-negative number, got {self.initializer_range!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"qkv_bias must be true or false, got {self.qkv_bias!r}")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"id2label must map the class indices 0..{len(self.id2label) - 1}, got {self.id2label!r}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config.json content, as transformers writes it (string id2label keys, model_type, unknown keys)."""
        data = dict(self.extra)
        data.update({name: getattr(self, name) for name in self.FIELDS})
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        data["label2id"] = dict(self.label2id)
        data["model_type"] = self.model_type
        if self.architectures is not None:
            data["architectures"] = list(self.architectures)
        if self.problem_type is not None:
            data["problem_type"] = self.problem_type
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimesformerConfig:
        """Build a config from config.json content; the caller checks ``model_type``."""
        data = dict(data)
        data.pop("model_type", None)
        return cls(**data)

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"TimesformerConfig({args}, num_labels={self.num_labels})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimesformerConfig) and self.to_dict() == other.to_dict()


@dataclass(eq=False)
class ModelOutput:
    """Attribute access plus tuple-like indexing over the fields that are set, like transformers' ModelOutput."""

    def to_tuple(self) -> tuple:
        return tuple(value for value in (getattr(self, f.name) for f in fields(self)) if value is not None)

    def __getitem__(self, key):
        return getattr(self, key) if isinstance(key, str) else self.to_tuple()[key]


@dataclass(eq=False)
class BaseModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor  # (B, 1 + N*T, D) after the final norm; (B, 1 + N, D) for space_only
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings, then each layer's output, before the norm
    attentions: tuple[torch.Tensor, ...] | None = None  # each layer's (spatial) attention maps


@dataclass(eq=False)
class VideoClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


# torch.export (and the ONNX exporter on top of it) must see through the outputs to the tensors inside.
torch.export.register_dataclass(BaseModelOutput)
torch.export.register_dataclass(VideoClassifierOutput)


# ------------------------------------------------------------------------------------------------------------ helpers


def _namespace(**modules: nn.Module) -> nn.ModuleDict:
    """transformers nests several layers one level deeper than they need (``attention.qkv``, ``output.dense``);
    these namespaces reproduce its state-dict keys with no class per level and no remapping on load."""
    return nn.ModuleDict(modules)


def _bind(probe: Callable | None, kind: str) -> Callable | None:
    """A layer's probe bound to one of its attentions: ``core(q, k, v)`` for ``Attention.context``."""
    return None if probe is None else functools.partial(probe, kind)


def drop_path(x: torch.Tensor, p: float, training: bool, mask_shape: tuple[int, ...]) -> torch.Tensor:
    """Stochastic depth: zero whole residual updates with probability ``p``, one draw per element of ``mask_shape``
    (broadcast over the rest), and scale the survivors by 1 / (1 - p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = torch.rand(mask_shape, dtype=x.dtype, device=x.device).add_(keep).floor_()
    return x.div(keep) * mask


# ------------------------------------------------------------------------------------------------------------ modules


class Embeddings(nn.Module):
    """Frames -> patch tokens plus position (space) and time embeddings, and the class token."""

    def __init__(self, config: TimesformerConfig):
        super().__init__()
        d, p = config.hidden_size, config.patch_size
        self.attention_type = config.attention_type
        self.image_size = config.image_size
        self.patch_size = p
        self.grid = config.image_size // p  # patches per side at the trained resolution
        self.patch_embeddings = _namespace(projection=nn.Conv2d(config.num_channels, d, kernel_size=p, stride=p))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + self.grid**2, d))
        if config.attention_type != "space_only":
            self.time_embeddings = nn.Parameter(torch.zeros(1, config.num_frames, d))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """Patches per column and per row for a frame size, or a ValueError if the patches cannot tile it."""
        for name, size in (("height", height), ("width", width)):
            # the trained size is always accepted and floored as the convolution does; any other size must tile
            if size != self.image_size and (size < self.patch_size or size % self.patch_size):
                raise ValueError(
                    f"frame {name} {size} does not fit the model: use {self.image_size} or a positive multiple of "
                    f"the patch size {self.patch_size}"
                )
        return height // self.patch_size, width // self.patch_size

    def position_embeddings_for(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, D): the trained grid resized to h x w patches by nearest interpolation, as the original."""
        if (h, w) == (self.grid, self.grid):
            return self.position_embeddings
        cls_pos, patch_pos = self.position_embeddings[:, :1], self.position_embeddings[:, 1:]
        patch_pos = patch_pos.transpose(1, 2).reshape(1, -1, self.grid, self.grid)  # (1, D, g, g)
        patch_pos = F.interpolate(patch_pos, size=(h, w), mode="nearest")  # (1, D, h, w)
        return torch.cat((cls_pos, patch_pos.flatten(2).transpose(1, 2)), dim=1)  # (1, 1 + h*w, D)

    def time_embeddings_for(self, t: int) -> torch.Tensor:
        """(1, t, D): the trained frames resized to t by nearest interpolation, as the original."""
        if t == self.time_embeddings.shape[1]:
            return self.time_embeddings
        time = F.interpolate(self.time_embeddings.transpose(1, 2), size=t, mode="nearest")  # (1, D, t)
        return time.transpose(1, 2)  # (1, t, D)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> divided: (B, T, 1 + N, D); joint: (B, 1 + N*T, D); space_only: (B*T, 1 + N, D)."""
        if pixel_values.ndim != 5:
            raise ValueError(
                f"pixel_values must be (batch, frames, channels, height, width), got shape {tuple(pixel_values.shape)}"
            )
        projection = self.patch_embeddings.projection
        b, t, c, height, width = pixel_values.shape
        if c != projection.in_channels:
            raise ValueError(f"pixel_values has {c} channels, the model takes {projection.in_channels}")
        h, w = self.patch_grid(height, width)
        pixels = pixel_values.to(projection.weight.dtype).reshape(b * t, c, height, width)
        patches = projection(pixels).flatten(2).transpose(1, 2)  # (B*T, N, D)
        pos = self.position_embeddings_for(h, w)
        cls = self.cls_token + pos[:, :1]  # (1, 1, D)
        patches = self.dropout(patches + pos[:, 1:])  # (B*T, N, D)
        n, d = patches.shape[1:]
        if self.attention_type == "space_only":
            return torch.cat((self.dropout(cls.expand(b * t, 1, d)), patches), dim=1)  # (B*T, 1 + N, D)
        cls = self.dropout(cls.expand(b, 1, d))  # (B, 1, D)
        patches = self.dropout(patches.view(b, t, n, d) + self.time_embeddings_for(t).unsqueeze(2))  # (B, T, N, D)
        if self.attention_type == "joint_space_time":
            return torch.cat((cls, patches.transpose(1, 2).reshape(b, n * t, d)), dim=1)  # (B, 1 + N*T, D)
        return torch.cat((cls.unsqueeze(1).expand(b, t, 1, d), patches), dim=2)  # (B, T, 1 + N, D)


class Attention(nn.Module):
    """Multi-head self-attention with one qkv projection (``attention.qkv``) and an output one (``output.dense``)."""

    def __init__(self, config: TimesformerConfig):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.attention_dropout = config.attention_probs_dropout_prob
        self.attention = _namespace(qkv=nn.Linear(d, 3 * d, bias=config.qkv_bias))
        self.output = _namespace(dense=nn.Linear(d, d))
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)

    def context(
        self, x: torch.Tensor, need_weights: bool = False, core: Callable | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend along dim 1 of x (B, L, S, D): S independent sequences of length L per row -> (B, L, S, D), the
        heads' outputs before the output projection, and the (B, S*H, L, L) maps if asked for. ``core(q, k, v)``, if
        given, computes the attention itself (an ``AttentionProbe`` bound to its layer and kind)."""
        b, length, s, d = x.shape
        h = self.num_heads
        qkv = self.attention.qkv
        # q, k and v come from three GEMMs on slices of the fused weight, each output contiguous: (B, L, S*H, hd)
        # is then a view, and so is its transpose to (B, S*H, L, hd) for any S. One GEMM would interleave q, k, v
        # per token, which the heads of S > 1 sequences cannot be viewed out of without a copy.
        weights = qkv.weight.chunk(3)
        biases = qkv.bias.chunk(3) if qkv.bias is not None else (None,) * 3
        q, k, v = (
            linear(x, w, bias).view(b, length, s * h, d // h).transpose(1, 2)  # (B, S*H, L, hd)
            for w, bias in zip(weights, biases, strict=True)
        )
        dropout = self.attention_dropout if self.training else 0.0
        probs = None
        if core is not None:
            out = core(q, k, v)  # (B, S*H, L, hd)
        elif need_weights or not fused_attention_is_faster(x):
            probs = (q * (d // h) ** -0.5 @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, S*H, L, L)
            out = F.dropout(probs, dropout, self.training) @ v  # (B, S*H, L, hd)
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, S*H, L, hd)
        context = out.transpose(1, 2).reshape(b, length, s, d)  # a view when the kernel wrote (B, L, S*H, hd)
        return context, probs if need_weights else None

    def project(self, context: torch.Tensor) -> torch.Tensor:
        return self.output_dropout(linear(context, self.output.dense.weight, self.output.dense.bias))


class Block(nn.Module):
    """One encoder layer: (temporal attention, then) spatial or joint attention, then the MLP; pre-norm residuals."""

    def __init__(self, config: TimesformerConfig, drop_path_rate: float):
        super().__init__()
        d = config.hidden_size
        self.divided = config.attention_type == "divided_space_time"
        self.attention_type = config.attention_type
        self.drop_path_rate = drop_path_rate
        # registered in transformers' order, so that state dicts and saved files list the tensors as its do
        self.attention = Attention(config)
        self.intermediate = _namespace(dense=nn.Linear(d, config.intermediate_size))
        self.output = _namespace(dense=nn.Linear(config.intermediate_size, d))
        self.layernorm_before = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.hidden_act = config.hidden_act
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if self.divided:
            self.temporal_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
            self.temporal_attention = Attention(config)
            self.temporal_dense = nn.Linear(d, d)
            self._folded: tuple[torch.Tensor, torch.Tensor] | None = None
            self._folded_key: tuple | None = None

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        fc1, fc2 = self.intermediate.dense, self.output.dense
        x = self.dropout(linear(x, fc1.weight, fc1.bias, self.hidden_act))
        return self.dropout(linear(x, fc2.weight, fc2.bias))

    def folded_temporal_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """temporal_dense(temporal_attention.output.dense(c)) has nothing in between at inference, so it is one
        linear map: (W2 W1, W2 b1 + b2). Computed in at least fp32 and rounded once; recomputed whenever one of the
        four tensors is replaced or modified in place (``.to()``, ``load_state_dict``, an optimiser step)."""
        dense, fc = self.temporal_attention.output.dense, self.temporal_dense
        params = (dense.weight, dense.bias, fc.weight, fc.bias)
        # inference tensors carry no version counter, but they cannot be changed outside inference mode either
        key = tuple((p.data_ptr(), p.dtype, p.device, 0 if p.is_inference() else p._version) for p in params)
        if key != self._folded_key:
            with torch.no_grad():
                precision = torch.promote_types(fc.weight.dtype, torch.float32)
                w1, b1, w2, b2 = (p.to(precision) for p in params)
                self._folded = ((w2 @ w1).to(fc.weight.dtype), torch.addmv(b2, w2, b1).to(fc.weight.dtype))
            self._folded_key = key
        return self._folded

    def forward(
        self, x: torch.Tensor, need_weights: bool = False, probe: Callable | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``probe(kind, q, k, v)``, if given, computes this layer's attention cores (an ``AttentionProbe`` bound to
        the layer)."""
        if self.divided:
            return self._divided(x, need_weights, probe)
        return self._joint(x, need_weights, probe)

    def _joint(self, x: torch.Tensor, need_weights: bool, probe: Callable | None = None):
        """x (B', L, D): every token attends to every other (joint: L = 1 + N*T; space_only: one frame per row)."""
        rows = (x.shape[0], 1, 1)
        core = _bind(probe, "joint" if self.attention_type == "joint_space_time" else "space")
        normed = self.layernorm_before(x).unsqueeze(2)  # (B', L, 1, D)
        context, probs = self.attention.context(normed, need_weights, core)  # (B', L, 1, D)
        x = x + drop_path(self.attention.project(context.squeeze(2)), self.drop_path_rate, self.training, rows)
        x = x + drop_path(self.mlp(self.layernorm_after(x)), self.drop_path_rate, self.training, rows)
        return x, probs

    def _divided(self, x: torch.Tensor, need_weights: bool, probe: Callable | None = None):
        """x (B, T, 1 + N, D), the class token repeated in column 0 of each frame.

        Stochastic depth draws one mask per row of the reference's reshaped batch: per (video, patch) for the temporal
        update, per (video, frame) for the spatial one, per video for the MLP.
        """
        b, t, s, d = x.shape
        p, training = self.drop_path_rate, self.training

        # Temporal: every patch attends to itself across the frames. The class-token column rides along (it would
        # cost a copy to leave out) and its update is thrown away: the class token takes no part in it.
        core = _bind(probe, "time")
        context, _ = self.temporal_attention.context(self.temporal_layernorm(x), core=core)  # (B, T, 1 + N, D)
        if fast_paths_apply() and not training:
            update = linear(context, *self.folded_temporal_projection())
        else:
            update = self.temporal_attention.project(context)
            update = self.temporal_dense(drop_path(update, p, training, (b, 1, s, 1)))
        update[:, :, 0] = 0
        x = x + update

        # Spatial: within each frame, the class token and the frame's patches attend to each other.
        normed = self.layernorm_before(x).view(b * t, s, 1, d)
        context, probs = self.attention.context(normed, need_weights, _bind(probe, "space"))  # (B*T, 1 + N, 1, D)
        update = drop_path(self.attention.project(context).view(b, t, s, d), p, training, (b, t, 1, 1))
        # the one class token moves by its per-frame updates averaged over the frames
        update[:, :, 0] = update[:, :, 0].mean(dim=1, keepdim=True)
        x = x + update

        x = x + drop_path(self.mlp(self.layernorm_after(x)), p, training, (b, 1, 1, 1))
        return x, probs


class TimesformerPreTrainedModel(PretrainedModelMixin, nn.Module):
    """Weight initialisation, and the checkpoint I/O (``from_pretrained`` / ``save_pretrained``) shared by the two
    models."""

    config_class = TimesformerConfig
    base_model_prefix = "timesformer"  # where the classification model keeps the encoder

    def __init__(self, config: TimesformerConfig):
        super().__init__()
        config.validate()
        self.config = config

    def _init_weights(self, module: nn.Module) -> None:
        """transformers' initialisation, so that a fresh model matches one of its own in distribution."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, Embeddings):
            nn.init.trunc_normal_(module.cls_token, std=std)
            nn.init.trunc_normal_(module.position_embeddings, std=std)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class TimesformerModel(TimesformerPreTrainedModel):
    """The encoder: video -> tokens after the final norm."""

    def __init__(self, config: TimesformerConfig):
        super().__init__(config)
        self.attention_type = config.attention_type
        self.embeddings = Embeddings(config)
        last = max(config.num_hidden_layers - 1, 1)
        rates = [config.drop_path_rate * i / last for i in range(config.num_hidden_layers)]
        self.encoder = _namespace(layer=nn.ModuleList(Block(config, rate) for rate in rates))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.apply(self._init_weights)

    def reference_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder tokens -> the reference's layout: (B, 1 + N*T, D), frame index fastest ((B*T, 1 + N, D) for
        space_only, which is already there)."""
        if self.attention_type != "divided_space_time":
            return x
        b, t, s, d = x.shape
        patches = x[:, :, 1:].transpose(1, 2).reshape(b, (s - 1) * t, d)  # (B, N*T, D)
        return torch.cat((x[:, 0, :1], patches), dim=1)  # (B, 1 + N*T, D)

    def final_norm(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """The last layer's tokens in the reference layout -> last_hidden_state: the final norm, after averaging each
        token over the frames for space_only (as the original does, so that the head sees one video, not T frames)."""
        if self.attention_type == "space_only":
            x = x.view(batch, -1, *x.shape[1:]).mean(dim=1)  # (B, 1 + N, D)
        return self.layernorm(x)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_probe: AttentionProbe | None = None,
    ) -> BaseModelOutput | tuple:
        """pixel_values (B, T, C, H, W) -> last_hidden_state (B, 1 + N*T, D), plus the hidden states / attention
        maps if asked for. Frames and resolution may differ from the config (see ``Embeddings.patch_grid``).
        ``attention_probe`` computes every attention core of every layer (see ``AttentionProbe``)."""
        if attention_probe is not None and output_attentions:
            raise ValueError("output_attentions and attention_probe exclude each other: the probe computes the maps")
        b = pixel_values.shape[0]
        hidden_states = [] if output_hidden_states else None
        attentions = [] if output_attentions else None
        x = self.embeddings(pixel_values)
        for index, layer in enumerate(self.encoder.layer):
            if hidden_states is not None:
                hidden_states.append(self.reference_layout(x))
            probe = None if attention_probe is None else functools.partial(attention_probe, index)
            x, probs = layer(x, need_weights=bool(output_attentions), probe=probe)
            if attentions is not None:
                attentions.append(probs)
        x = self.reference_layout(x)
        if hidden_states is not None:
            hidden_states.append(x)
        output = BaseModelOutput(
            last_hidden_state=self.final_norm(x, b),
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )
        return output if return_dict is None or return_dict else output.to_tuple()


class TimesformerForVideoClassification(TimesformerPreTrainedModel):
    """The encoder plus a linear classifier on the class token."""

    def __init__(self, config: TimesformerConfig):
        super().__init__(config)
        self.timesformer = TimesformerModel(config)
        num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, num_labels) if num_labels > 0 else nn.Identity()
        self.classifier.apply(self._init_weights)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, T, C, H, W) -> the encoder's tokens after the final norm, (B, 1 + N*T, D) ((B, 1 + N, D)
        for space_only)."""
        return self.timesformer(pixel_values).last_hidden_state

    def forward_head(self, features: torch.Tensor, pool: str = "cls", pre_logits: bool = False) -> torch.Tensor:
        """Tokens from ``forward_features`` -> logits (B, num_labels), or with ``pre_logits`` the pooled vector
        (B, D) the head would read: the class token (``pool="cls"``) or the mean of the patch tokens (``"mean"``,
        summed in fp32 whatever the model's precision: a bf16 sum of a thousand tokens would lose digits)."""
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        pooled = features[:, 0] if pool == "cls" else features[:, 1:].float().mean(dim=1)  # (B, D)
        return pooled if pre_logits else self.classifier(pooled.to(features.dtype))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> VideoClassifierOutput | tuple:
        """pixel_values (B, T, C, H, W) -> logits (B, num_labels); with labels, the loss as transformers computes it:
        mean squared error for one label, cross-entropy for integer labels, binary cross-entropy for float ones."""
        encoded = self.timesformer(pixel_values, output_attentions, output_hidden_states)
        logits = self.forward_head(encoded.last_hidden_state)
        loss = self.loss(logits, labels) if labels is not None else None
        output = VideoClassifierOutput(loss, logits, encoded.hidden_states, encoded.attentions)
        return output if return_dict is None or return_dict else output.to_tuple()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        problem = self.config.problem_type
        if problem is None:
            if self.config.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        if problem == "regression":
            if self.config.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if problem == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


__all__ = [
    "TimesformerConfig",
    "TimesformerModel",
    "TimesformerForVideoClassification",
    "TimesformerPreTrainedModel",
    "BaseModelOutput",
    "VideoClassifierOutput",
    "ACTIVATIONS",
    "ATTENTION_TYPES",
    "AttentionProbe",
]
