"""The files of ``tsf timeline -o OUT``, one format per suffix: ``.json`` ``.csv`` ``.srt`` ``.vtt`` ``.png``
``.svg`` ``.html``.

``check_timeline_outputs`` finds before a run what can be known then (an unknown suffix, a path given twice, a folder
that is not there, the plot extra not installed), so that no video is decoded for files that cannot be written;
``write_timeline`` writes one file whole, through ``atomic_file``, so that no reader sees half of one.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import OutputError
from ..results import Timeline
from .atomic import atomic_file, check_writable, reporting
from .page import render_page
from .records import ENCODING_ERRORS, write_json_document
from .subtitles import render_srt, render_vtt


def render_json(timeline: Timeline) -> str:
    """The document of ``tsf timeline --json`` for this one video."""
    text = io.StringIO()
    write_json_document([timeline], text)
    return text.getvalue()


def render_csv(timeline: Timeline) -> str:
    """One row per window: its span, how many frames it took, the segment rule's decision there (``label`` empty
    when uncertain) and its top-k, ``label_1, prob_1, ...``. Probabilities are Python's repr of the float, which
    reads back to the same value."""
    if timeline.windows is None:
        raise OutputError(f"{timeline.path}: this timeline kept no windows, and a .csv holds one row per window")
    top_k = max((len(w.predictions) for w in timeline.windows), default=0)
    ranked = [f"{name}_{rank}" for rank in range(1, top_k + 1) for name in ("label", "prob")]
    out = io.StringIO()
    writer = csv.writer(out)  # QUOTE_MINIMAL: commas, quotes and line breaks inside labels are quoted
    writer.writerow(["window", "start", "end", "frames", "label", "probability", "uncertain", *ranked])
    for number, w in enumerate(timeline.windows):
        cells = [p for prediction in w.predictions for p in (prediction.label, prediction.probability)]
        cells += [""] * (2 * top_k - len(cells))
        label = "" if w.label is None else w.label
        writer.writerow([number, round(w.start, 6), round(w.end, 6), len(w.frames.indices), label, w.probability,
                         int(w.label is None), *cells])  # fmt: skip
    return out.getvalue()


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", ENCODING_ERRORS)


def _plot(timeline: Timeline, path: Path) -> bytes:
    from .plot import render_plot  # matplotlib loads only for a plot

    return render_plot(timeline, path.suffix.lower().lstrip("."))


# suffix -> (timeline, the file's path) -> the file's bytes
TIMELINE_FORMATS: dict[str, Callable[[Timeline, Path], bytes]] = {
    ".json": lambda timeline, path: _encoded(render_json(timeline)),
    ".csv": lambda timeline, path: _encoded(render_csv(timeline)),
    ".srt": lambda timeline, path: _encoded(render_srt(timeline)),
    ".vtt": lambda timeline, path: _encoded(render_vtt(timeline)),
    ".png": _plot,
    ".svg": _plot,
    ".html": lambda timeline, path: _encoded(render_page(timeline, path)),  # the video's URL is relative to it
}
PLOT_SUFFIXES = (".png", ".svg")


def check_timeline_outputs(paths: Sequence[str | os.PathLike]) -> None:
    """Raise OutputError, in one line, for an output that a run could not write."""
    seen = set()
    for path in map(Path, paths):
        _format_of(path)
        if os.path.abspath(path) in seen:
            raise OutputError(f"{path}: given twice as an output")
        seen.add(os.path.abspath(path))
        check_writable(path)
    if any(Path(p).suffix.lower() in PLOT_SUFFIXES for p in paths):
        from .plot import require_matplotlib

        require_matplotlib()


def write_timeline(timeline: Timeline, path: str | os.PathLike) -> None:
    """Write ``timeline`` to ``path`` in the format its suffix names, whole or not at all."""
    path = Path(path)
    data = _format_of(path)(timeline, path)
    with reporting(path), atomic_file(path) as file:
        file.write(data)


def _format_of(path: Path) -> Callable[[Timeline, Path], bytes]:
    render = TIMELINE_FORMATS.get(path.suffix.lower())
    if render is None:
        given = f"'{path.suffix}' files" if path.suffix else "a file without an extension"
        raise OutputError(f"{path}: cannot write a timeline as {given}; use one of {', '.join(TIMELINE_FORMATS)}")
    return render
