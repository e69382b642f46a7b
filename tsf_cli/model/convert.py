"""Checkpoints of the original facebookresearch/TimeSformer (PySlowFast ``.pyth`` files) in the Hugging Face layout."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelNotFoundError
from .loading import listing, match_state_dict, torch_load
from .timesformer import TimesformerConfig, TimesformerForVideoClassification

_ORIGINAL_TOP = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj.weight": "timesformer.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "timesformer.embeddings.patch_embeddings.projection.bias",
    "norm.weight": "timesformer.layernorm.weight",
    "norm.bias": "timesformer.layernorm.bias",
    "head.weight": "classifier.weight",
    "head.bias": "classifier.bias",
}
# ... and inside block N (the suffix, .weight or .bias, is kept)
_ORIGINAL_BLOCK = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.attention.qkv",
    "attn.proj": "attention.output.dense",
    "temporal_norm1": "temporal_layernorm",
    "temporal_attn.qkv": "temporal_attention.attention.qkv",
    "temporal_attn.proj": "temporal_attention.output.dense",
    "temporal_fc": "temporal_dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")


def convert_original_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename an original TimeSformer state dict (``model.blocks.N.temporal_attn.qkv.weight``, ...) to the Hugging
    Face layout (``timesformer.encoder.layer.N.temporal_attention.attention.qkv.weight``, ...)."""
    converted, unknown = {}, []
    for key, tensor in state.items():
        name = key.removeprefix("module.").removeprefix("model.")
        block = _BLOCK_KEY.match(name)
        if name in _ORIGINAL_TOP:
            converted[_ORIGINAL_TOP[name]] = tensor
        elif block and block.group(2) in _ORIGINAL_BLOCK:
            index, layer, kind = block.groups()
            converted[f"timesformer.encoder.layer.{index}.{_ORIGINAL_BLOCK[layer]}.{kind}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: not an original TimeSformer checkpoint; unknown tensors: {listing(unknown)}")
    return converted


def convert_original_checkpoint(
    path: str | os.PathLike,
    *,
    num_attention_heads: int | None = None,
    id2label: dict[int, str] | None = None,
) -> TimesformerForVideoClassification:
    """An original facebookresearch/TimeSformer checkpoint (a PySlowFast ``.pyth`` with the tensors under
    ``model_state``) as a TimesformerForVideoClassification; ``.save_pretrained(folder)`` then writes it in the
    Hugging Face layout.

    Sizes, frame count, attention type and label count are read off the tensors. The head count is not in them:
    it defaults to one head per 64 channels, as in every published TimeSformer. ``id2label`` names the classes.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file")
    checkpoint = torch_load(path)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no model_state dict of tensors in it")
    state = convert_original_state_dict(state, str(path))
    head = state.get("classifier.weight")
    labels = {"id2label": id2label} if id2label is not None else {"num_labels": 0 if head is None else head.shape[0]}
    try:
        config = TimesformerConfig(**_original_config(state, num_attention_heads), **labels)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the architecture off the tensors ({exc})") from exc
    model = TimesformerForVideoClassification(config)
    match_state_dict(model, state, path)
    model.load_state_dict(state)
    return model.eval()


def _original_config(state: dict[str, torch.Tensor], num_attention_heads: int | None) -> dict[str, Any]:
    hidden = state["timesformer.embeddings.cls_token"].shape[-1]
    patch = state["timesformer.embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = round((state["timesformer.embeddings.position_embeddings"].shape[1] - 1) ** 0.5)
    layers = 1 + max(int(key.split(".")[3]) for key in state if key.startswith("timesformer.encoder.layer."))
    time = state.get("timesformer.embeddings.time_embeddings")
    if time is None:
        attention_type = "space_only"
    elif "timesformer.encoder.layer.0.temporal_dense.weight" in state:
        attention_type = "divided_space_time"
    else:
        attention_type = "joint_space_time"
    return {
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": state["timesformer.embeddings.patch_embeddings.projection.weight"].shape[1],
        "num_frames": time.shape[1] if time is not None else 8,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": num_attention_heads or max(hidden // 64, 1),
        "intermediate_size": state["timesformer.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "qkv_bias": "timesformer.encoder.layer.0.attention.attention.qkv.bias" in state,
        "attention_type": attention_type,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
    }
