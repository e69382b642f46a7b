"""Which input patches a TimeSformer's prediction rests on, read from its attention: attention rollout and its
gradient-weighted form, folded one attention step at a time.

The methods, with their published defaults (heads averaged, nothing discarded):

- ``rollout`` (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers"): every attention step is the
  row-stochastic mixing matrix Â = ½·A + ½·I (the residual connection carries as much as the attention; A is the mean
  of the heads' maps), and what a token rests on is the product of all the steps. The explanation is the class
  token's row of that product. Not class-specific: every label gets the same map.
- ``grad-rollout`` (Chefer, Gur & Wolf, 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
  Encoder-Decoder Transformers", their rule for self-attention): every map is weighted by the gradient of the
  explained logit y, Ā = mean_heads(relu(∂y/∂A ⊙ A)), and the relevance starts at R = I and grows R ← R + Ā·R step by
  step. Ā is neither renormalised nor given an identity, as in the paper. Class-specific.

How the tokens mix. Rows of a step M are its output tokens, columns its input tokens; the MLP and the norms act on one
token at a time and mix nothing. Tokens are the class token c and the patches (t, p), frame t of T, patch p of N. The
class token's row r of the product is carried from the last layer down, ``r ← r·M`` for each step M:

- divided_space_time: a layer is a temporal step then a spatial one, M_layer = M_space·M_time, so
  r ← (r·M_space)·M_time. Both enter every layer: time moves relevance across frames at one patch position (where
  "when" comes from), space moves it within a frame and between c and the patches.
    time: one T x T map G_p per patch position p. The class token takes no part (its column attends too, but the block
      throws that update away): M_time[(t, p), (t', p)] = Ĝ_p[t, t'], M_time[c, c] = 1.
    space: one (1 + N)² map S_t per frame over (c, the frame's patches), index 0 the class token. The block moves c by
      its per-frame updates averaged over the frames, so c's row is the mean of its T per-frame rows:
      M_space[(t, p), c] = Ŝ_t[p, 0], M_space[(t, p), (t, j)] = Ŝ_t[p, j], M_space[c, ·] = mean_t of Ŝ_t[0, ·].
      Folded per frame: u_t = [r_c / T, r_(t, ·)], v_t = u_t·Ŝ_t, then r_c ← Σ_t v_t[0] and r_(t, ·) ← v_t[1:].
- joint_space_time: one (1 + N·T)² map per layer over all the tokens in the reference layout.
- space_only: the frames never meet; frame t has its own class token c_t and map S_t. The head reads the frames' mean
  of the c_t, so r starts at (1/T)·Σ_t e_(c_t) and each frame folds on its own.
- grad-rollout has the same structure with Ā and r ← r + r·Ā. Ā_time has a zero row for c, and the divided class
  token's spatial row is Σ_t Ā_t[0, ·] with no 1/T: ∂y/∂A_t already carries it (the gradient flows through the mean).

The heatmap of frame t is r_(t, ·) on the patch grid. What stays on the class token (the relevance of the constant
class embedding) belongs to no frame and is left out.

Memory (the hr presets: T = 16, N = 784, 12 layers of 12 heads, D = 768, fp32). No layer's maps ever exist whole: a
probe (``tsf_cli.model.timesformer.AttentionProbe``) computes each attention core itself, a piece at a time
(``PIECE_BYTES``; one frame of all heads in hr's spatial step is 28 MiB).

- rollout averages each piece over the heads at once, and a layer keeps its steps only, T·(1+N)² + N·T² floats (38 MiB
  at hr), folded from the last layer down when the forward pass is done. (A fold in forward order would need the
  whole (1 + N·T)² product: 600 MiB at hr, and products costlier than the forward pass.)
- grad-rollout runs the forward pass without autograd and keeps each layer's input (37 MiB at hr). Then, from the
  last layer down, it recomputes one layer at a time with autograd and lets ∂y flow back through it (layer-wise
  checkpointing). The attention cores are an autograd function whose backward pass rebuilds the maps piece by piece,
  forms ∂y/∂A = ∂y/∂ctx·vᵀ (as ctx = A·v), hands mean_h relu(∂y/∂A ⊙ A) over and returns ∂q, ∂k, ∂v: autograd never
  holds a map, and the layers come back in the order the fold needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..model.timesformer import TimesformerForVideoClassification

METHODS = ("rollout", "grad-rollout")
RESIDUAL = 0.5  # rollout: Â = (1 - RESIDUAL)·A + RESIDUAL·I, as Abnar & Zuidema
# Attention is computed in pieces (whole sequences of all heads, or blocks of query rows where one sequence is longer)
# so that about this many bytes of maps exist at once: joint attention over 16 x 784 tokens needs row blocks.
PIECE_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)  # ndarray fields have no single truth value, so no ==
class TokenRelevance:
    """The class token's row of the rolled-out product over the input patches, and the explained view's logits."""

    patches: np.ndarray  # (T, grid_h, grid_w) float64, >= 0
    cls: float  # what stayed on the input class token(s): part of no frame
    logits: np.ndarray  # (num_labels,) float32
    label_index: int  # the label explained


def relevance(
    model: TimesformerForVideoClassification, pixel_values: torch.Tensor, method: str, label: int | None = None
) -> TokenRelevance:
    """The patch relevances of one view, pixel_values (1, T, C, H, W), for ``label`` (None: the view's top-1)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if pixel_values.shape[0] != 1:
        raise ValueError(f"explanations take one view at a time, got a batch of {pixel_values.shape[0]}")
    return (rollout if method == "rollout" else grad_rollout)(model, pixel_values, label)


# ----------------------------------------------------------------------------------------- the class token's row


@dataclass
class _Row:
    """The class token's row of the product so far, over the input tokens of the layer reached."""

    cls: torch.Tensor  # () for the one class token of divided and joint models; (T,) for space_only's per-frame ones
    patches: torch.Tensor  # (T, N)

    def __add__(self, other: _Row) -> _Row:
        return _Row(self.cls + other.cls, self.patches + other.patches)


def _first_row(attention_type: str, frames: int, patches: int, device: torch.device) -> _Row:
    """The head's read-out over the last layer's tokens: the class token (space_only: the mean of the frames')."""
    zeros = torch.zeros(frames, patches, device=device)
    if attention_type == "space_only":
        return _Row(torch.full((frames,), 1 / frames, device=device), zeros)
    return _Row(torch.ones((), device=device), zeros)


def _fold_space(r: _Row, maps: torch.Tensor, shared_cls: float | None) -> _Row:
    """r·M for a per-frame step, maps (T, 1 + N, 1 + N). ``shared_cls``: the weight of each frame's copy of the one
    class token (divided); None where every frame has its own (space_only)."""
    frames = maps.shape[0]
    cls = r.cls if shared_cls is None else r.cls.expand(frames) * shared_cls  # (T,)
    u = torch.cat((cls[:, None], r.patches), dim=1)  # (T, 1 + N)
    v = torch.bmm(u[:, None], maps)[:, 0]  # (T, 1 + N)
    return _Row(v[:, 0] if shared_cls is None else v[:, 0].sum(), v[:, 1:])


def _fold_time(r: _Row, maps: torch.Tensor, cls_self: float) -> _Row:
    """r·M for the divided temporal step, maps (N, T, T), one per patch position. The class token takes no part: its
    row is cls_self·e_c (1 in a rollout step, 0 in Chefer's Ā)."""
    return _Row(r.cls * cls_self, torch.einsum("tp,ptu->up", r.patches, maps))


def _fold_joint(r: _Row, maps: torch.Tensor) -> _Row:
    """r·M for joint attention, maps (1 + N*T, 1 + N*T) in the reference layout (patch-major, frame index fastest)."""
    frames, patches = r.patches.shape
    v = torch.cat((r.cls[None], r.patches.T.reshape(-1))) @ maps  # (1 + N*T,)
    return _Row(v[0], v[1:].view(patches, frames).T)


def _rollout_layer(r: _Row, steps: dict[str, torch.Tensor], attention_type: str) -> _Row:
    """r·M_layer for the row-stochastic steps of one layer."""
    if attention_type == "joint_space_time":
        return _fold_joint(r, steps["joint"])
    divided = attention_type == "divided_space_time"
    r = _fold_space(r, steps["space"], 1 / r.patches.shape[0] if divided else None)
    return _fold_time(r, steps["time"], 1.0) if divided else r


def _gradient_layer(r: _Row, weighted: dict[str, torch.Tensor], attention_type: str) -> _Row:
    """r ← r + r·Ā for each step of one layer, spatial first (Chefer's R ← R + Ā·R, for the class token's row)."""
    if attention_type == "joint_space_time":
        return r + _fold_joint(r, weighted["joint"])
    divided = attention_type == "divided_space_time"
    r = r + _fold_space(r, weighted["space"], 1.0 if divided else None)
    return r + _fold_time(r, weighted["time"], 0.0) if divided else r


# --------------------------------------------------------------------------------------------- attention in pieces


def _pieces(shape: torch.Size) -> Iterator[tuple[int, slice, slice]]:
    """(b, sequences, query rows) indices that cover a (B', S, H, L, hd) attention in pieces of about PIECE_BYTES."""
    batch, sequences, heads, length = shape[:4]
    rows = max(1, PIECE_BYTES // (heads * length * 4))  # query rows of all heads per piece, at 4 bytes an entry
    for b in range(batch):
        if rows >= length:  # whole sequences
            step = rows // length
            for s in range(0, sequences, step):
                yield b, slice(s, s + step), slice(None)
        else:  # blocks of query rows of one sequence
            for s in range(sequences):
                for r in range(0, length, rows):
                    yield b, slice(s, s + 1), slice(r, r + rows)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B', S*H, L, hd) -> (B', S, H, L, hd), a view: splitting a dimension needs no copy."""
    batch, sequences_heads, length, head_dim = x.shape
    return x.view(batch, sequences_heads // heads, heads, length, head_dim)


def _one_step(kind: str, maps: torch.Tensor) -> torch.Tensor:
    """(B', S, L, L) maps of one video -> its step: time (N, T, T) without the class token's column, space
    (T, 1 + N, 1 + N) for divided and space_only alike, joint (L, L)."""
    if kind == "time":
        return maps[0, 1:]
    if kind == "space":
        return maps[:, 0]
    return maps[0, 0]


class _RolloutProbe:
    """An attention probe that computes each core in pieces, averages each piece's maps over the heads at once, and
    keeps each layer's steps Â = (1 - RESIDUAL)·A + RESIDUAL·I."""

    def __init__(self, heads: int):
        self.heads = heads
        self.layers: list[dict[str, torch.Tensor]] = []  # per layer: kind -> step

    def __call__(self, layer: int, kind: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q5, k5, v5 = (_split_heads(x, self.heads) for x in (q, k, v))  # (B', S, H, L, hd)
        batch, sequences, _, length, head_dim = q5.shape
        out = torch.empty(q5.shape, dtype=q.dtype, device=q.device)
        mean = torch.empty(batch, sequences, length, length, dtype=torch.float32, device=q.device)
        for b, s, rows in _pieces(q5.shape):
            probs = (q5[b, s, :, rows] * head_dim**-0.5 @ k5[b, s].transpose(-1, -2)).softmax(-1)  # (s, H, rows, L)
            out[b, s, :, rows] = probs @ v5[b, s]
            mean[b, s, rows] = probs.float().mean(1)
        step = _one_step(kind, mean) * (1 - RESIDUAL)
        step.diagonal(dim1=-2, dim2=-1).add_(RESIDUAL)
        if layer == len(self.layers):
            self.layers.append({})
        self.layers[layer][kind] = step
        return out.view(q.shape)  # (B', S*H, L, hd)


class _WeightedAttention(torch.autograd.Function):
    """softmax(q kᵀ/√d)·v, whose backward pass also hands ``sink(kind, step)`` the step mean_h relu(∂y/∂A ⊙ A),
    computed piece by piece (so autograd keeps q, k and v, never a map)."""

    @staticmethod
    def forward(ctx, q, k, v, heads: int, kind: str, sink: Callable):
        ctx.save_for_backward(q, k, v)
        ctx.heads, ctx.kind, ctx.sink = heads, kind, sink
        return F.scaled_dot_product_attention(q, k, v)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        q5, k5, v5, g5 = (_split_heads(x, ctx.heads) for x in (q, k, v, grad_out))  # (B', S, H, L, hd)
        batch, sequences, _, length, head_dim = q5.shape
        scale = head_dim**-0.5
        dq, dk, dv = (torch.zeros(q5.shape, dtype=q.dtype, device=q.device) for _ in range(3))
        weighted = torch.empty(batch, sequences, length, length, dtype=torch.float32, device=q.device)
        for b, s, rows in _pieces(q5.shape):
            qc, kc, vc, gc = q5[b, s, :, rows], k5[b, s], v5[b, s], g5[b, s, :, rows]
            a = (qc * scale @ kc.transpose(-1, -2)).softmax(-1)  # (s, H, rows, L)
            da = gc @ vc.transpose(-1, -2)  # ∂y/∂A, as ctx = A·v
            weighted[b, s, rows] = (da * a).float().clamp_min_(0).mean(1)
            dv[b, s] += a.transpose(-1, -2) @ gc
            ds = a * (da - (da * a).sum(-1, keepdim=True))  # back through the softmax
            dq[b, s, :, rows] = ds @ kc * scale
            dk[b, s] += ds.transpose(-1, -2) @ qc * scale
        ctx.sink(ctx.kind, _one_step(ctx.kind, weighted))
        return dq.view(q.shape), dk.view(k.shape), dv.view(v.shape), None, None, None


class _GradientProbe:
    """A block's attention probe (``probe(kind, q, k, v)``) whose backward pass leaves each step's Ā in ``weighted``."""

    def __init__(self, heads: int):
        self.heads = heads
        self.weighted: dict[str, torch.Tensor] = {}

    def __call__(self, kind: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return _WeightedAttention.apply(q, k, v, self.heads, kind, self.weighted.__setitem__)


# ---------------------------------------------------------------------------------------------------- the methods


def _grid(model: TimesformerForVideoClassification, pixel_values: torch.Tensor) -> tuple[int, int, int]:
    frames, _, height, width = pixel_values.shape[1:]
    return (frames, *model.timesformer.embeddings.patch_grid(height, width))


def _result(r: _Row, grid: tuple[int, int, int], logits: torch.Tensor, label: int) -> TokenRelevance:
    return TokenRelevance(
        patches=r.patches.double().view(grid).cpu().numpy(),
        cls=float(r.cls.sum()),
        logits=logits.detach().float().cpu().numpy(),
        label_index=label,
    )


def rollout(
    model: TimesformerForVideoClassification, pixel_values: torch.Tensor, label: int | None = None
) -> TokenRelevance:
    """Attention rollout of one view. Not class-specific: ``label`` (default: the top-1) is only recorded."""
    grid = _grid(model, pixel_values)
    probe = _RolloutProbe(model.config.num_attention_heads)
    with torch.inference_mode():
        tokens = model.timesformer(pixel_values, attention_probe=probe).last_hidden_state
        logits = model.forward_head(tokens)[0]
    r = _first_row(model.config.attention_type, grid[0], grid[1] * grid[2], pixel_values.device)
    while probe.layers:  # from the last layer down, each layer's steps dropped once folded
        r = _rollout_layer(r, probe.layers.pop(), model.config.attention_type)
    return _result(r, grid, logits, int(logits.argmax()) if label is None else label)


def grad_rollout(
    model: TimesformerForVideoClassification, pixel_values: torch.Tensor, label: int | None = None
) -> TokenRelevance:
    """Gradient-weighted rollout (Chefer et al., 2021) of one view for ``label`` (default: the top-1), one layer's
    graph at a time (see the module notes)."""
    encoder = model.timesformer
    layers = encoder.encoder.layer
    grid = _grid(model, pixel_values)
    inputs = []
    with torch.no_grad():
        x = encoder.embeddings(pixel_values)
        for layer in layers:
            inputs.append(x)
            x, _ = layer(x)
    last = x.requires_grad_()
    with torch.enable_grad():
        logits = model.forward_head(encoder.final_norm(encoder.reference_layout(last), 1))[0]
        label = int(logits.argmax()) if label is None else label
        (grad,) = torch.autograd.grad(logits[label], last)  # ∂y/∂(the last layer's output)
    r = _first_row(model.config.attention_type, grid[0], grid[1] * grid[2], pixel_values.device)
    probe = _GradientProbe(model.config.num_attention_heads)
    for layer in reversed(layers):
        x = inputs.pop().requires_grad_()
        with torch.enable_grad():
            out, _ = layer(x, probe=probe)
            # ∂y/∂(the layer's input), and the layer's Ā in probe.weighted; no gradient for the weights is formed
            (grad,) = torch.autograd.grad(out, x, grad)
        r = _gradient_layer(r, probe.weighted, model.config.attention_type)
        probe.weighted.clear()
    return _result(r, grid, logits, label)
