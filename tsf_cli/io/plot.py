"""``.png`` and ``.svg``: the top labels' probabilities over time, one line each, with the segments as coloured
bands (uncertain ones grey and hatched) and ``min_probability`` as a dashed line.

Always 12 x 4.5 inches at 100 dpi: a PNG is exactly 1200 x 450 pixels (no tight bounding box, which would change
it), an SVG 864 x 324 pt. matplotlib is an optional extra (``pip install 'tsf-cli[plot]'``), driven through
``Figure`` and its canvases, never pyplot, so no display and no global backend are involved. The files are the same
bytes for the same timeline: no dates, no software versions, a fixed SVG id salt.
"""

from __future__ import annotations

import io
import os
import warnings

from ..errors import MissingDependencyError
from ..results import UNCERTAIN, Timeline
from .palette import UNCERTAIN_COLOR, color_of, label_colors

FIGSIZE_IN = (12.0, 4.5)
DPI = 100
SIZE_PX = (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))  # (1200, 450)
TOP_LABELS = 5
EXTRA = "plot"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError("writing .png or .svg", "matplotlib", EXTRA) from None


def tick_step(duration: float, most: int = 10) -> float:
    """A round step in seconds that gives at most ``most`` intervals (the HTML page's axis uses the same steps)."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if duration / step <= most:
            return step
    return 14400


def _clock(seconds: float, _position=None) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plain_text(text: str) -> str:
    """A label as matplotlib shows it as typed: one line, ``$`` not read as mathtext, and a leading ``_`` (which
    hides a legend entry) kept behind a zero-width space."""
    text = " ".join(text.split()).replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def top_labels(timeline: Timeline, n: int = TOP_LABELS) -> list[str]:
    """The ``n`` labels with the most probability over all windows (0 where not in a window's top-k); ties by name."""
    mass: dict[str, float] = {}
    for window in timeline.windows or ():
        for p in window.predictions:
            mass[p.label] = mass.get(p.label, 0.0) + p.probability
    return sorted(mass, key=lambda label: (-mass[label], label))[:n]


def render_plot(timeline: Timeline, image_format: str) -> bytes:
    """The plot as ``png`` or ``svg`` bytes."""
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    shown = top_labels(timeline)
    colors = label_colors([*timeline.labels, *shown])
    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    axes = figure.add_axes((0.06, 0.22, 0.92, 0.69))  # fixed: the file's size never depends on the labels
    for s in timeline.segments:
        axes.axvspan(
            s.start, s.end, color=color_of(colors, s.label), alpha=0.18, lw=0, hatch="//" if s.uncertain else None
        )
    windows = timeline.windows or ()
    centres = [(w.start + w.end) / 2 for w in windows]
    probabilities = [{p.label: p.probability for p in w.predictions} for w in windows]
    for label in shown:
        values = [p.get(label, 0.0) for p in probabilities]
        axes.plot(centres, values, color=colors[label], lw=1.6, marker=".", ms=4, label=plain_text(label))
    if timeline.min_probability > 0:
        axes.axhline(
            timeline.min_probability,
            color="#444444",
            lw=1,
            ls="--",
            label=f"min probability {timeline.min_probability:g}",
        )
    axes.set_xlim(0, timeline.duration or 1)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("probability")
    axes.xaxis.set_major_locator(MultipleLocator(tick_step(timeline.duration)))
    axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    title = f"{plain_text(os.path.basename(timeline.path))}: top {len(shown)} labels per window; bands: segments"
    axes.set_title(title, fontsize=10, loc="left")
    handles, names = axes.get_legend_handles_labels()
    for label in timeline.labels:  # the bands' colours of labels that are not among the lines
        if label not in shown:
            handles.append(Patch(color=colors[label], alpha=0.4))
            names.append(plain_text(label))
    if any(s.uncertain for s in timeline.segments):
        handles.append(Patch(facecolor=UNCERTAIN_COLOR, alpha=0.4, hatch="//"))
        names.append(UNCERTAIN)
    names = [n if len(n) <= 30 else n[:29] + "…" for n in names]
    # As many columns as fit 1200 px at about 7 px a character: up to three rows of legend fit under the axes.
    columns = max(1, min(len(names), 8, SIZE_PX[0] // (7 * max(map(len, names), default=1) + 50)))
    figure.legend(handles, names, loc="lower center", ncol=columns, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0))
    out = io.BytesIO()
    with warnings.catch_warnings():  # a label in a script DejaVu Sans lacks (emoji, CJK) draws boxes, not warnings
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        if image_format == "svg":
            import matplotlib

            with matplotlib.rc_context({"svg.hashsalt": "tsf", "svg.fonttype": "path"}):
                figure.savefig(out, format="svg", metadata={"Date": None})
        else:
            figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
