"""The explanation math (tsf_cli.inference.rollout) against dense matrices built the obvious way, for the three
attention types and both methods, on a frame count and a (non-square) size other than the model's config; the attention
probe of the model; the maps computed in pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests._models import randomize_, tiny_config
from tsf_cli.inference import rollout as ro
from tsf_cli.model import TimesformerForVideoClassification

ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")
# The config says 4 frames of 32x32 in 8-pixel patches; the views here are 3 frames of 16x24: a 2x3 patch grid.
T, GRID_H, GRID_W = 3, 2, 3
N = GRID_H * GRID_W
HEADS = tiny_config().num_attention_heads


def tiny(attention_type: str, seed: int = 0) -> TimesformerForVideoClassification:
    """Three layers with weights large enough for peaked maps, so that a wrong index shows."""
    model = TimesformerForVideoClassification(tiny_config(attention_type=attention_type, num_hidden_layers=3))
    return randomize_(model, seed, scale=0.5).eval()


def view(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, T, 3, 8 * GRID_H, 8 * GRID_W, generator=torch.Generator().manual_seed(seed))


def plain_core(layer, kind, q, k, v):
    return (q * q.shape[-1] ** -0.5 @ k.transpose(-1, -2)).softmax(-1) @ v


def every_map(model, pixel_values, grad: bool):
    """Every attention map, computed the plain way through a probe that keeps them all, with autograd's gradient of
    the top-1 logit if ``grad``: [(kind, maps (B', S*H, L, L))] in forward order, and the top-1."""
    maps = []

    def keep(layer, kind, q, k, v):
        probs = (q * q.shape[-1] ** -0.5 @ k.transpose(-1, -2)).softmax(-1)
        if grad:
            probs.retain_grad()
        maps.append((kind, probs))
        return probs @ v

    with torch.set_grad_enabled(grad):
        logits = model.forward_head(model.timesformer(pixel_values, attention_probe=keep).last_hidden_state)[0]
        label = int(logits.argmax())
        if grad:
            logits[label].backward()
    return maps, label


def token(t: int, p: int) -> int:
    """Patch p of frame t in the reference layout: the class token first, then patch-major, frame index fastest."""
    return 1 + p * T + t


def dense_steps(attention_type: str, maps, method: str) -> list[torch.Tensor]:
    """Each attention step as a dense (tokens x tokens) matrix in forward order: 0.5·mean_h(A) + 0.5·I (rollout) or
    mean_h relu(∂y/∂A ⊙ A) (grad-rollout)."""
    steps = []
    for kind, probs in maps:
        a = probs.detach()
        w = (probs.grad * a).clamp(min=0) if method == "grad-rollout" else a
        if kind == "time":  # (1, (1 + N) * H, T, T)
            w = w.view(1 + N, HEADS, T, T).mean(1)  # (1 + N, T, T)
        elif kind == "space":  # (T, H, 1 + N, 1 + N)
            w = w.mean(1)
        else:  # joint (1, H, L, L)
            w = w[0].mean(0)
        if method == "rollout":
            w = 0.5 * w + 0.5 * torch.eye(w.shape[-1])
        if attention_type == "space_only":  # tokens: frame t's class token at t * (1 + N), its patches after it
            steps.append(torch.block_diag(*w))
            continue
        if kind == "joint":
            steps.append(w)
            continue
        m = torch.zeros(1 + N * T, 1 + N * T)
        if kind == "time":  # the class token is left as it is (its column's update is thrown away)
            m[0, 0] = 1.0 if method == "rollout" else 0.0
            for p in range(N):
                for t in range(T):
                    for u in range(T):
                        m[token(t, p), token(u, p)] = w[1 + p, t, u]
        else:  # space: the one class token moves by the mean of its per-frame updates
            for t in range(T):
                share = 1 / T if method == "rollout" else 1.0  # the gradient carries the 1/T of grad-rollout
                m[0, 0] += share * w[t, 0, 0]
                for j in range(N):
                    m[0, token(t, j)] = share * w[t, 0, 1 + j]
                for p in range(N):
                    m[token(t, p), 0] = w[t, 1 + p, 0]
                    for j in range(N):
                        m[token(t, p), token(t, j)] = w[t, 1 + p, 1 + j]
        steps.append(m)
    return steps


def read_out(attention_type: str) -> torch.Tensor:
    """What the head reads: the class token (space_only: the mean of the frames' class tokens)."""
    if attention_type == "space_only":
        row = torch.zeros(T * (1 + N))
        row[:: 1 + N] = 1 / T
        return row
    row = torch.zeros(1 + N * T)
    row[0] = 1
    return row


def patches_of(attention_type: str, row: torch.Tensor) -> np.ndarray:
    if attention_type == "space_only":
        return row.view(T, 1 + N)[:, 1:].reshape(T, GRID_H, GRID_W).numpy()
    return row[1:].view(N, T).T.reshape(T, GRID_H, GRID_W).numpy()


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_rollout_is_the_product_of_the_dense_steps(attention_type):
    model = tiny(attention_type)
    maps, label = every_map(model, view(), grad=False)
    product = torch.eye(len(read_out(attention_type)))
    for step in dense_steps(attention_type, maps, "rollout"):
        product = step @ product  # R_l = M_l·R_(l-1), in forward order
    expected = patches_of(attention_type, read_out(attention_type) @ product)
    got = ro.rollout(model, view())
    assert got.patches.shape == (T, GRID_H, GRID_W) and got.label_index == label
    np.testing.assert_allclose(got.patches, expected, rtol=1e-5, atol=1e-7)
    # every step is row-stochastic, so the relevance is conserved: what the patches lack stayed on the class token
    assert got.patches.sum() + got.cls == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_grad_rollout_is_chefer_s_rule_on_the_dense_steps(attention_type):
    model = tiny(attention_type)
    maps, label = every_map(model, view(), grad=True)
    relevance = torch.eye(len(read_out(attention_type)))
    for step in dense_steps(attention_type, maps, "grad-rollout"):
        relevance = relevance + step @ relevance  # Chefer et al. 2021: R <- R + Ā·R
    expected = patches_of(attention_type, read_out(attention_type) @ relevance)
    got = ro.grad_rollout(model, view())
    assert got.label_index == label
    assert expected.max() > 10 * np.abs(expected).min()  # not a flat map, which would hide a wrong index
    np.testing.assert_allclose(got.patches, expected, rtol=1e-4, atol=1e-7)


def test_grad_rollout_explains_the_label_asked_for():
    model = tiny("divided_space_time", seed=3)
    maps, top = every_map(model, view(), grad=False)
    other = (top + 1) % model.config.num_labels
    assert ro.grad_rollout(model, view(), label=other).label_index == other
    assert not np.allclose(ro.grad_rollout(model, view(), label=other).patches, ro.grad_rollout(model, view()).patches)
    # rollout is the same for every label
    np.testing.assert_array_equal(ro.rollout(model, view(), label=other).patches, ro.rollout(model, view()).patches)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_a_probe_computing_the_plain_core_changes_nothing(attention_type):
    model = tiny(attention_type)
    with torch.no_grad():
        expected = model(view()).logits
        tokens = model.timesformer(view(), attention_probe=plain_core).last_hidden_state
    torch.testing.assert_close(model.forward_head(tokens), expected, rtol=1e-4, atol=1e-5)


def test_the_probe_sees_the_maps_the_model_makes():
    model = tiny("divided_space_time")
    maps, _ = every_map(model, view(), grad=False)
    assert [kind for kind, _ in maps] == ["time", "space"] * 3
    with torch.no_grad():
        attentions = model(view(), output_attentions=True).attentions  # each layer's spatial maps
    for (_, probed), reference in zip(maps[1::2], attentions, strict=True):
        torch.testing.assert_close(probed, reference)
    with pytest.raises(ValueError, match="exclude each other"):
        model.timesformer(view(), output_attentions=True, attention_probe=plain_core)


def test_the_gradient_of_the_probed_attention_is_exact():
    """The backward pass written out by hand (with Ā handed over on the side) is the gradient of the attention."""
    heads, sequences, length, head_dim = 2, 3, 5, 4
    shape = (2, sequences * heads, length, head_dim)
    q, k, v = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3))
    steps = {}
    torch.autograd.gradcheck(
        lambda q, k, v: ro._WeightedAttention.apply(q, k, v, heads, "joint", steps.__setitem__), (q, k, v)
    )
    assert steps["joint"].shape == (length, length)


@pytest.mark.parametrize("method", ro.METHODS)
@pytest.mark.parametrize("attention_type", ["joint_space_time", "divided_space_time"])
def test_maps_computed_in_pieces_give_the_same_answer(method, attention_type, monkeypatch):
    """A few query rows at a time (as joint attention at hr must go), or a few sequences: the same relevances."""
    model = tiny(attention_type)
    whole = ro.relevance(model, view(), method).patches
    rows = 3
    monkeypatch.setattr(ro, "PIECE_BYTES", HEADS * (1 + N * T) * 4 * rows)
    assert len(list(ro._pieces(torch.Size((1, 1, HEADS, 1 + N * T, 8))))) == -(-(1 + N * T) // rows)
    np.testing.assert_allclose(ro.relevance(model, view(), method).patches, whole, rtol=1e-5, atol=1e-8)


def test_one_view_at_a_time_and_known_methods_only():
    model = tiny("divided_space_time")
    with pytest.raises(ValueError, match="one view at a time"):
        ro.relevance(model, torch.cat((view(), view())), "rollout")
    with pytest.raises(ValueError, match="rollout, grad-rollout"):
        ro.relevance(model, view(), "saliency")


@pytest.mark.parametrize("method", ro.METHODS)
def test_bf16_models_give_the_maps_of_fp32_within_its_rounding(method):
    """bf16 is what --dtype auto picks on GPUs and on CPUs with native bf16; the maps are reduced in fp32 whatever
    the model's precision."""
    model = tiny("divided_space_time")
    full = ro.relevance(model, view(), method)
    half = ro.relevance(model.to(torch.bfloat16), view().to(torch.bfloat16), method)
    assert half.patches.dtype == np.float64 and half.label_index == full.label_index
    # bf16 keeps 8 bits of mantissa: the tiny model's peaked maps move by up to 5% of their top (grad-rollout)
    np.testing.assert_allclose(half.patches, full.patches, atol=0.1 * full.patches.max())
    assert np.corrcoef(half.patches.ravel(), full.patches.ravel())[0, 1] > 0.995
