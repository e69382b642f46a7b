"""Tiny random TimeSformers, checkpoints and Hugging Face cache folders for tests (``from tests._models import ...``).

Everything here is small enough to run in milliseconds on a CPU, and nothing touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from tsf_cli.model import TimesformerConfig, TimesformerForVideoClassification, TimesformerModel

# 4 frames of 32x32 pixels in 8x8 patches: 16 patches a frame, 1 + 64 tokens of width 32 in 4 heads
TINY = {
    "image_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "num_labels": 5,
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a made-up hub commit
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def tiny_config(**overrides) -> TimesformerConfig:
    return TimesformerConfig(**{**TINY, **overrides})


def randomize_(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Give every parameter random values, biases, norms and embeddings included (the usual initialisation leaves
    biases and time embeddings at zero and norms at one, which would hide mistakes in their handling)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * scale
            is_norm_scale = "layernorm" in name and name.endswith("weight")
            parameter.copy_(noise + 1.0 if is_norm_scale else noise)
    return model


def tiny_model(cls=TimesformerForVideoClassification, seed: int = 0, **overrides):
    """A tiny model of ``cls`` with random weights, in eval mode."""
    return randomize_(cls(tiny_config(**overrides)), seed).eval()


def tiny_base_model(seed: int = 0, **overrides) -> TimesformerModel:
    return tiny_model(TimesformerModel, seed, **overrides)


def pixel_values(batch: int = 2, frames: int = 4, height: int = 32, width: int | None = None, seed: int = 0):
    """A random (batch, frames, 3, height, width) video batch."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, height, width or height, generator=generator)


# The preprocessing of a tiny classifier that tsf can run end to end: frames resized to 32 on the short side, a 32x32
# centre crop, the TimeSformer checkpoints' normalisation.
PROCESSOR = {
    "size": {"shortest_edge": 32},
    "crop_size": {"height": 32, "width": 32},
    "image_mean": [0.45, 0.45, 0.45],
    "image_std": [0.225, 0.225, 0.225],
    "image_processor_type": "VideoMAEImageProcessor",
}


def save_tiny_checkpoint(folder: Path, cls=TimesformerForVideoClassification, seed: int = 0, **overrides):
    """Write a tiny random checkpoint (config.json + model.safetensors) into ``folder``; returns the model."""
    model = tiny_model(cls, seed, **overrides)
    model.save_pretrained(folder)
    return model


def save_tiny_classifier(folder: Path, seed: int = 0, **overrides) -> Path:
    """A tiny checkpoint with its preprocessor_config.json: a model folder that ``tsf classify --model`` takes."""
    save_tiny_checkpoint(folder, seed=seed, **overrides)
    (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR))
    return folder


def make_hub_cache(
    cache_dir: Path,
    repo_id: str,
    files: dict[str, bytes | Path],
    commit: str = COMMIT,
    refs: tuple[str, ...] = ("main",),
) -> Path:
    """Lay ``files`` out as huggingface_hub caches a download of ``repo_id`` at ``commit``:

        models--org--name/blobs/<sha256>              the contents
        models--org--name/snapshots/<commit>/<file>   symlinks to the blobs
        models--org--name/refs/<ref>                  the commit each ref (branch or tag) points to

    Returns the snapshot folder. Call again with another commit to cache a second revision of the same repository.
    """
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def checkpoint_files(folder: Path) -> dict[str, Path]:
    """The files of a saved checkpoint folder, to hand to ``make_hub_cache``."""
    return {path.name: path for path in sorted(folder.iterdir()) if path.is_file()}
