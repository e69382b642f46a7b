"""The contact sheet of an explanation (``.png``): every sampled frame as decoded, its heatmap over it, its time stamp
and a bar for its share of the relevance; the label, method, view and top-k above; the colour bar beside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..results import Explanation
from .heatmap_overlay import colour_scale, font, overlaid_frames, turbo

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
BAR = (52, 101, 164)
BAR_EDGE = (200, 200, 200)

COLUMNS = 8  # frames per row
THUMBNAIL = 180  # longest side of a frame on the sheet, in pixels
PAD = 12
CAPTION = 18  # the line under a frame: frame number, time, share
BAR_HEIGHT = 10
COLOUR_BAR = (14, 240)  # width, longest height
SCALE_WIDTH = 80  # the colour bar with its ticks and their labels


def contact_sheet(explanation: Explanation) -> Image.Image:
    """The sheet as a Pillow image."""
    times_uniform, top = colour_scale(explanation)
    frames, height, width = explanation.heatmaps.shape
    scale = THUMBNAIL / max(height, width)
    thumb = (max(1, round(width * scale)), max(1, round(height * scale)))  # (width, height)
    columns = min(COLUMNS, frames)
    rows = -(-frames // columns)
    cell_height = thumb[1] + CAPTION + BAR_HEIGHT + PAD
    big, small = font(16), font(12)
    header = _header(explanation)
    header_height = PAD + 20 + 18 * (len(header) - 1) + PAD
    grid_width = PAD + columns * (thumb[0] + PAD)
    text_width = PAD + max(int(small.getlength(line)) for line in header[1:]) + PAD
    sheet_width = max(grid_width + SCALE_WIDTH, text_width, PAD + int(big.getlength(header[0])) + PAD)
    sheet = Image.new("RGB", (sheet_width, header_height + rows * cell_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    draw.text((PAD, PAD), header[0], fill=INK, font=big)
    for i, line in enumerate(header[1:]):
        draw.text((PAD, PAD + 22 + 18 * i), line, fill=INK if i == 1 else MUTED, font=small)

    most = float(explanation.frame_importance.max()) or 1.0
    for k, picture in enumerate(overlaid_frames(explanation)):
        row, column = divmod(k, columns)
        x, y = PAD + column * (thumb[0] + PAD), header_height + row * cell_height
        sheet.paste(picture.resize(thumb, Image.BILINEAR), (x, y))
        share = float(explanation.frame_importance[k])
        stamp = f"#{explanation.frame_indices[k]}  {explanation.timestamps[k]:.2f}s"
        draw.text((x, y + thumb[1] + 2), stamp, fill=INK, font=small)
        percent = f"{share:.0%}"
        draw.text((x + thumb[0] - small.getlength(percent), y + thumb[1] + 2), percent, fill=MUTED, font=small)
        bar_top = y + thumb[1] + CAPTION
        draw.rectangle((x, bar_top, x + thumb[0], bar_top + BAR_HEIGHT), outline=BAR_EDGE)
        draw.rectangle((x, bar_top, x + max(1, round(thumb[0] * share / most)), bar_top + BAR_HEIGHT), fill=BAR)

    _colour_bar(draw, sheet, (grid_width + 4, header_height), min(COLOUR_BAR[1], rows * cell_height - PAD), top)
    return sheet


def _header(explanation: Explanation) -> list[str]:
    """The title, then lines of small print: the method and model, the top-k, what the bars mean."""
    name = Path(explanation.path).name or "the clip"
    model = explanation.model
    peak = int(np.argmax(explanation.frame_importance))
    tops = "   ".join(f"{i}. {p.label} {p.probability:.1%}" for i, p in enumerate(explanation.predictions, 1))
    return [
        f"{name}: where the model looked for '{explanation.label}' ({explanation.probability:.1%})",
        f"{explanation.method} · {model.name} ({explanation.attention_type}, {model.dtype} on {model.device}) · "
        f"{explanation.view}",
        f"top-k of this view: {tops}",
        f"bars: each frame's share of the relevance (most: frame #{explanation.frame_indices[peak]}, "
        f"{explanation.frame_importance[peak]:.0%}); colours: x uniform",
    ]


def _colour_bar(draw: ImageDraw.ImageDraw, sheet: Image.Image, at: tuple[int, int], height: int, top: float) -> None:
    """The scale from 0 (bottom) to ``top`` x uniform, with five ticks."""
    x, y = at
    ramp = turbo(np.linspace(1, 0, height))[:, None, :].repeat(COLOUR_BAR[0], axis=1)  # (height, width, 3)
    sheet.paste(Image.fromarray(ramp), (x, y))
    small = font(12)
    for value in np.linspace(0, top, 5):
        tick = y + round((1 - value / top) * (height - 1))
        draw.line((x + COLOUR_BAR[0], tick, x + COLOUR_BAR[0] + 4, tick), fill=INK)
        draw.text((x + COLOUR_BAR[0] + 7, tick - 7), f"{value:.1f}x", fill=INK, font=small)
