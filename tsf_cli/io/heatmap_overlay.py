"""Heatmaps drawn over frames, shared by every picture of an explanation (contact sheet, GIF, MP4).

One colour scale for all the frames of an explanation, in "x uniform": a heatmap value times the frame's pixel count,
its ratio to a map spread evenly over the frame. 1 means "as much as anywhere else", so the colour bar reads in the
same unit as the test of the demo model (mass on the moving shape over the shape's share of the frame). The colour's
opacity grows with the value, so the frame shows through where the model did not look.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFont

from ..results import Explanation

OPACITY = 0.75  # of the colour at the top of the scale
LOWEST_TOP = 2.0  # the scale reaches at least 2x uniform, so a flat map stays faint instead of filling the frame

# Turbo, by its degree-5 polynomial approximation (one row per channel, coefficients of x^0..x^5), from "Polynomial
# approximation in GLSL for the Turbo colormap" (https://gist.github.com/mikhailov-work/0d177465a8151eb6ede1768d51d476c7):
#   Copyright 2019 Google LLC. SPDX-License-Identifier: Apache-2.0
#   Colormap design: Anton Mikhailov; GLSL approximation: Ruofei Du
# (the notice as that file carries it; tsf is Apache-2.0 too). See
# https://ai.googleblog.com/2019/08/turbo-improved-rainbow-colormap-for.html for the colour map.
TURBO = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)


def turbo(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB (..., 3) on the Turbo colour map."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0, 1)[..., None]  # (..., 1)
    rgb = (x ** np.arange(6)) @ TURBO.T  # (..., 6) @ (6, 3)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def colour_scale(explanation: Explanation) -> tuple[np.ndarray, float]:
    """The heatmaps in "x uniform" (T, H, W), and the top of the shared scale: their 99.5th percentile, at least
    LOWEST_TOP (a percentile, so that a few hot pixels do not wash out the rest)."""
    height, width = explanation.heatmaps.shape[1:]
    times_uniform = explanation.heatmaps.astype(np.float64) * (height * width)
    return times_uniform, max(float(np.percentile(times_uniform, 99.5)), LOWEST_TOP)


def overlay(frame: np.ndarray, times_uniform: np.ndarray, top: float) -> np.ndarray:
    """One frame (H, W, 3) uint8 with its heatmap (H, W), in "x uniform", over it."""
    level = np.clip(times_uniform / top, 0, 1)
    alpha = OPACITY * level[..., None]
    return (frame * (1 - alpha) + turbo(level) * alpha + 0.5).astype(np.uint8)


def overlaid_frames(explanation: Explanation) -> list[Image.Image]:
    """Each sampled frame with its heatmap, at the decoded size."""
    times_uniform, top = colour_scale(explanation)
    return [Image.fromarray(overlay(f, h, top)) for f, h in zip(explanation.frames, times_uniform, strict=True)]


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's own font at ``size`` pixels (Pillow 10.1 and later), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 takes no size
        return ImageFont.load_default()
