"""What ``tsf timeline`` shows in a terminal: the table, then a one-line strip of the whole video, its axis and a
legend, at any width, with and without colour."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from tests._timelines import scripted_timeline, timeline_of_windows
from tsf_cli import api
from tsf_cli.cli.timeline_view import cell_segments, strip, timeline_view
from tsf_cli.results import Segment


def console(width: int, color: bool = True) -> Console:
    return Console(
        file=io.StringIO(),
        width=width,
        record=True,
        force_terminal=color,
        color_system="truecolor" if color else None,
        legacy_windows=False,
    )


def lines_of(timeline, width, color=True) -> list[str]:
    out = console(width, color)
    out.print(timeline_view(timeline, out))
    return out.export_text(styles=False).splitlines()


def test_the_strip_is_one_line_as_wide_as_the_console():
    lines = lines_of(scripted_timeline(), 80)
    assert all(len(line) <= 80 for line in lines)
    line = next(line for line in lines if line and set(line) <= {"█", "░"})
    assert len(line) == 80
    # 30 s over 80 cells: walking until 6.5 s is cells 0-16; the uncertain stretch shows as ░
    assert line.startswith("█" * 17) and line[17] == "█" and "░" in line
    axis = lines[lines.index(line) + 1]
    assert axis.startswith("0:00") and axis.rstrip().endswith("0:30") and len(axis) == 80
    legend = "\n".join(lines[lines.index(line) + 2 :])
    for name in ("walking", "running", "uncertain"):
        assert name in legend


def test_the_strip_takes_the_label_colours():
    timeline = scripted_timeline()
    colors = api.label_colors(timeline.labels)
    styles = {str(span.style) for span in strip(timeline, 80).spans}
    assert {colors[label] for label in timeline.labels} | {api.UNCERTAIN_COLOR} == styles


def test_without_colour_the_strip_uses_letters_and_the_legend_gives_the_key():
    lines = lines_of(scripted_timeline(), 80, color=False)
    line = next(line for line in lines if line and set(line) <= set("ABC·"))
    assert len(line) == 80 and line[0] == "A" and "·" in line and "B" in line
    assert any("A walking" in line for line in lines) and any("· uncertain" in line for line in lines)


def test_a_cell_shows_the_segment_covering_most_of_it():
    timeline = timeline_of_windows("v", [(0, 1, [("a", 1.0)])], duration=10, window=1, hop=1)
    segments = (Segment("a", 0, 2.4, 1), Segment("b", 2.4, 2.6, 1), Segment("a", 2.6, 10, 1))
    timeline = dataclasses.replace(timeline, segments=segments)
    assert cell_segments(timeline, 10) == [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]  # b (0.2 s) is shorter than a cell
    assert cell_segments(timeline, 50)[12] == 1


def test_labels_print_as_written_not_as_markup():
    timeline = timeline_of_windows("v", [(0, 2, [("[bold red]x[/]", 0.9)])], duration=2, window=2, hop=2)
    assert any("[bold red]x[/]" in line for line in lines_of(timeline, 80))


def test_every_width_gets_a_full_strip_and_no_line_too_long():
    timeline = scripted_timeline()
    for width in (20, 40, 80, 200):
        lines = lines_of(timeline, width)
        assert all(len(line) <= width for line in lines)
        assert any(len(line) == width and set(line) <= {"█", "░"} for line in lines)
