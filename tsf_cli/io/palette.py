"""One colour per label, the same in the terminal strip, the plot and the HTML page.

Labels take the palette in the order they first appear in the segments (then any other label a plot draws); it is
matplotlib's tab10 without its grey, then tab20's light shades, and then it repeats. Uncertain is always grey, so no
label is ever grey.
"""

from __future__ import annotations

from collections.abc import Iterable

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
UNCERTAIN_COLOR = "#9e9e9e"


def label_colors(labels: Iterable[str]) -> dict[str, str]:
    """Each label's colour (#rrggbb), in the order given."""
    colors: dict[str, str] = {}
    for label in labels:
        if label not in colors:
            colors[label] = PALETTE[len(colors) % len(PALETTE)]
    return colors


def color_of(colors: dict[str, str], label: str | None) -> str:
    return UNCERTAIN_COLOR if label is None else colors[label]


def text_color_on(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (#rrggbb), by WCAG relative luminance."""
    red, green, blue = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#000000" if luminance > 0.179 else "#ffffff"
