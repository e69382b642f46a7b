"""What ``tsf timeline`` shows: a Rich table of the segments, then a one-line strip of the whole video coloured by
label (one cell per 1/width of the video, width being the console's), a time axis and a legend.

Each cell shows the segment that covers most of its span (ties: the earlier one), so a segment shorter than a cell
may not show in the strip; the table lists every one. Without colour (NO_COLOR, a dumb terminal, output to a file)
the cells carry letters instead, A for the first label and so on, ``·`` for uncertain, and the legend says which is
which. Labels are only ever Rich ``Text``, never markup, so ``[bold]`` in a label prints as written.
"""

from __future__ import annotations

import os

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .. import api
from ..results import UNCERTAIN, Timeline

BLOCK = "█"
UNCERTAIN_BLOCK = "░"
UNCERTAIN_KEY = "·"
_KEYS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def clock(t: float, *, decimals: int = 1) -> str:
    hours, rest = divmod(max(0.0, t), 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{seconds:0{3 + decimals if decimals else 2}.{decimals}f}"
    return f"{int(hours)}:{int(minutes):02d}:{text}" if hours >= 1 else f"{int(minutes)}:{text}"


def _one_line(label: str) -> str:
    return " ".join(label.split()) or "(blank label)"


def cell_segments(timeline: Timeline, width: int) -> list[int]:
    """For each of ``width`` cells, the index of the segment that covers most of its span."""
    segments = timeline.segments
    duration = timeline.duration or 1.0
    cells = []
    k = 0
    for cell in range(width):
        low, high = cell * duration / width, (cell + 1) * duration / width
        while k < len(segments) - 1 and segments[k].end <= low:
            k += 1
        best, best_overlap = k, -1.0
        j = k
        while j < len(segments) and segments[j].start < high:
            overlap = min(high, segments[j].end) - max(low, segments[j].start)
            if overlap > best_overlap + 1e-12:
                best, best_overlap = j, overlap
            j += 1
        cells.append(best)
    return cells


def strip(timeline: Timeline, width: int, *, color: bool = True) -> Text:
    colors = api.label_colors(timeline.labels)
    keys = {label: _KEYS[i % len(_KEYS)] for i, label in enumerate(timeline.labels)}
    line = Text(no_wrap=True, overflow="crop")
    for k in cell_segments(timeline, width):
        label = timeline.segments[k].label
        if color:
            line.append(UNCERTAIN_BLOCK if label is None else BLOCK, style=_color(colors, label))
        else:
            line.append(UNCERTAIN_KEY if label is None else keys[label])
    return line


def _color(colors: dict[str, str], label: str | None) -> str:
    return api.UNCERTAIN_COLOR if label is None else colors[label]


def axis(timeline: Timeline, width: int) -> Text:
    """Times at 0, 1/4, 1/2, 3/4 and the end (fewer when narrow), each under its place in the strip."""
    line = [" "] * width
    marks = [0.0, 0.25, 0.5, 0.75, 1.0] if width >= 48 else [0.0, 0.5, 1.0] if width >= 20 else [0.0, 1.0]
    for fraction in marks:
        label = clock(fraction * timeline.duration, decimals=0)
        place = round(fraction * (width - 1))
        start = 0 if fraction == 0 else width - len(label) if fraction == 1 else place - len(label) // 2
        start = max(0, min(start, width - len(label)))
        if all(c == " " for c in line[max(0, start - 1) : start + len(label) + 1]):
            line[start : start + len(label)] = label
    return Text("".join(line), style="dim", no_wrap=True, overflow="crop")


def legend(timeline: Timeline, *, color: bool = True) -> Text:
    """Each label with its share of the video, and uncertain last if any segment is."""
    colors = api.label_colors(timeline.labels)
    keys = {label: _KEYS[i % len(_KEYS)] for i, label in enumerate(timeline.labels)}
    share: dict[str | None, float] = {}
    for s in timeline.segments:
        share[s.label] = share.get(s.label, 0.0) + s.end - s.start
    entries: list[str | None] = [*timeline.labels, *([None] if None in share else [])]
    text = Text()
    for n, label in enumerate(entries):
        if n:
            text.append("  ")
        if color:
            text.append(UNCERTAIN_BLOCK if label is None else BLOCK, style=_color(colors, label))
        else:
            text.append(UNCERTAIN_KEY if label is None else keys[label])
        name = UNCERTAIN if label is None else _one_line(label)
        text.append(f" {name} ", style="dim italic" if label is None else "")
        text.append(f"{share[label] / timeline.duration if timeline.duration else 0:.0%}", style="dim")
    return text


def segment_table(timeline: Timeline) -> Table:
    colors = api.label_colors(timeline.labels)
    caption = (
        f"{timeline.model.name} · {timeline.model.dtype} on {timeline.model.device} · "
        f"windows of {timeline.window:g} s every {timeline.hop:g} s · majority of {timeline.smooth}"
    )
    table = Table(
        title=Text(f"{os.path.basename(timeline.path)}: {len(timeline.segments)} segments"),
        caption=Text(caption),
        title_justify="left",
        caption_justify="left",
    )
    for column, justify in (("#", "right"), ("start", "right"), ("end", "right"), ("length", "right")):
        table.add_column(column, justify=justify, style="dim" if column == "#" else None)
    table.add_column("label", overflow="fold", ratio=1)
    table.add_column("confidence", justify="right")
    for number, s in enumerate(timeline.segments, 1):
        if s.uncertain:
            # Text.assemble, not Text + Text: '+' gives the whole result the first part's style
            label = Text.assemble((UNCERTAIN_BLOCK + " ", api.UNCERTAIN_COLOR), (UNCERTAIN, "dim italic"))
            confidence = Text(f"<{timeline.min_probability:.0%}", style="dim")
        else:
            label = Text.assemble((BLOCK + " ", colors[s.label]), _one_line(s.label))
            confidence = Text(f"{s.confidence:.0%}")
        table.add_row(str(number), clock(s.start), clock(s.end), clock(s.end - s.start), label, confidence)
    return table


def timeline_view(timeline: Timeline, console: Console) -> Group:
    """The table, the strip, its axis and the legend, as wide as ``console``."""
    width = console.width
    color = console.color_system is not None and not console.no_color
    return Group(
        segment_table(timeline),
        Text(),
        strip(timeline, width, color=color),
        axis(timeline, width),
        legend(timeline, color=color),
    )
