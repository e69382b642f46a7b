"""Tiny labelled sets and bases for training tests (``from tests._training import ...``): clips of one colour each,
a label one frame shows, so that a few steps of a tiny model learn it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tsf_cli.demo.synthetic import write_video

# A tiny divided space-time TimeSformer at 32x32: 4 frames of 4x4 patches of width 32.
TINY_CONFIG = {
    "model_type": "timesformer",
    "image_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}
TINY_PREPROCESSOR = {
    "size": {"shortest_edge": 32},
    "crop_size": {"height": 32, "width": 32},
    "image_mean": [0.45, 0.45, 0.45],
    "image_std": [0.225, 0.225, 0.225],
}
COLOURS = {"red": (220, 40, 40), "blue": (40, 40, 220), "green": (40, 200, 40)}


def write_coloured(path: Path, colour: tuple[int, int, int], seed: int, frames: int = 10) -> Path:
    """A noisy clip of one colour: a label one frame shows, so that a few steps of a tiny model learn it."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (frames, 40, 48, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, pixels, fps=10)
    return path


def make_dataset(root: Path) -> Path:
    """data/<colour>/*.mp4 for three colours, four clips each, and val/ with two more of each."""
    for i, (label, colour) in enumerate(COLOURS.items()):
        for j in range(4):
            write_coloured(root / "data" / label / f"{j}.mp4", colour, seed=10 * i + j)
        for j in range(2):
            write_coloured(root / "val" / label / f"{j}.avi", colour, seed=100 + 10 * i + j)
    return root


def make_base(folder: Path) -> Path:
    """A base with only config.json and preprocessor_config.json: the architecture to train from scratch."""
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "preprocessor_config.json").write_text(json.dumps(TINY_PREPROCESSOR))
    return folder
