"""``.html``: one self-contained page, the video above its timeline (the page itself is ``timeline_page.html``).

- Self-contained: inline CSS and JavaScript, no font, script, style or image from anywhere. The only outside reference
  is the video, by a URL relative to the page's folder, so the page and the video move together.
- The timeline travels as JSON in ``<script type="application/json" id="tsf-data">``, with every ``<``, ``>`` and ``&``
  written as ``\\u003c`` ``\\u003e`` ``\\u0026``, so that no label can close the element or open a comment. Labels reach
  the page only as text: ``html.escape`` in the static table, ``textContent`` in the bar.
- A click on a segment (in the bar or the table) sets ``video.currentTime`` to its start, and leaves playing or paused
  as it was. The label under the video and the playhead follow playback.
- A video the browser cannot play (or find) gets a note; the timeline keeps working, a click moving a cursor instead.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..results import UNCERTAIN, Timeline
from .palette import UNCERTAIN_COLOR, color_of, label_colors, text_color_on


def video_url(video: str | os.PathLike, page: str | os.PathLike) -> str:
    """The video's URL relative to the page's folder, each part percent-encoded (spaces, #, ?, %, non-ASCII); the
    absolute file: URI where no relative path exists (another drive on Windows)."""
    video = os.path.abspath(video)
    try:
        relative = os.path.relpath(video, os.path.dirname(os.path.abspath(page)))
    except ValueError:
        return Path(video).as_uri()
    # A POSIX name that is not UTF-8 arrives with lone surrogates (os.fsdecode): its own bytes are quoted.
    return "/".join(
        quote(part.encode("utf-8", "surrogateescape"), safe="") for part in Path(relative).as_posix().split("/")
    )


def displayable(text: str) -> str:
    """Text that can be written as UTF-8: undecodable file-name bytes become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def script_json(value) -> str:
    """JSON that is safe inside a <script> element: no ``<`` (so no ``</script`` and no ``<!--``), ``>`` or ``&``."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _clock(t: float) -> str:
    hours, rest = divmod(max(0.0, t), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{seconds:04.1f}" if hours >= 1 else f"{int(minutes)}:{seconds:04.1f}"


def page_data(timeline: Timeline, page: str | os.PathLike) -> dict:
    """What the page's script reads."""
    colors = label_colors(timeline.labels)
    return {
        "video": video_url(timeline.path, page),
        "name": displayable(os.path.basename(timeline.path)),
        "uncertain_text": UNCERTAIN,
        "duration": timeline.duration,
        "labels": [
            {"label": label, "color": colors[label], "text_color": text_color_on(colors[label])}
            for label in timeline.labels
        ],
        "uncertain_color": UNCERTAIN_COLOR,
        "segments": [
            {
                "label": s.label,
                "start": s.start,
                "end": s.end,
                "confidence": s.confidence,
                "color": color_of(colors, s.label),
                "text_color": text_color_on(color_of(colors, s.label)),
            }
            for s in timeline.segments
        ],
    }


def render_page(timeline: Timeline, page: str | os.PathLike) -> str:
    """The page that will be written at ``page`` (the video's URL is relative to it)."""
    data = page_data(timeline, page)
    colors = label_colors(timeline.labels)
    rows = []
    for number, s in enumerate(timeline.segments):
        confidence = "" if s.uncertain else f"{s.confidence:.0%}"
        uncertain = ' class="uncertain"' if s.uncertain else ""
        rows.append(
            f'<tr data-index="{number}" tabindex="0"{uncertain}>'
            f"<td>{number + 1}</td><td>{_clock(s.start)}</td><td>{_clock(s.end)}</td>"
            f'<td><span class="swatch" style="background:{color_of(colors, s.label)}"></span>{html.escape(s.text)}</td>'
            f"<td>{confidence}</td></tr>"
        )
    windows = f"{len(timeline.windows)} windows" if timeline.windows is not None else "windows"
    settings = (
        f"{len(timeline.segments)} segments · {windows} of {timeline.window:g} s every {timeline.hop:g} s · "
        f"majority of {timeline.smooth} windows · uncertain below {timeline.min_probability:g} · {timeline.model.name}"
    )
    replacements = {
        "%%TITLE%%": html.escape(f"tsf timeline: {data['name']}"),
        "%%NAME%%": html.escape(data["name"]),
        "%%SETTINGS%%": html.escape(settings),
        "%%SRC%%": html.escape(data["video"], quote=True),
        "%%ROWS%%": "\n".join(rows),
        "%%DATA%%": script_json(data),
    }
    template = resources.files(__package__).joinpath("timeline_page.html").read_text(encoding="utf-8")
    # One pass: a label or file name that reads like a placeholder stays text.
    return re.sub("|".join(map(re.escape, replacements)), lambda m: replacements[m.group(0)], template)
