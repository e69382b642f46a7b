"""``.srt`` and ``.vtt``: one cue per segment of a timeline, so that any video player shows the labels as the video
plays. The text of a cue is ``label NN%`` (the segment's confidence), or ``(uncertain)``.

WebVTT escapes ``&``, ``<`` and ``>`` as entities (``>`` too, so ``-->`` never appears in a cue). SubRip has no
escapes, and FFmpeg-based players (mpv, ffplay) read ``<b>``, ``<i>`` and ``<font>`` as styling, drop any other
``<tag>``, and take a line that starts like a timing line for a new cue: a zero-width space goes after every ``<``,
and before text that holds ``-->``. The label looks the same on screen; a reader that wants it exactly removes U+200B.
``{...}`` in a label is an ASS override to FFmpeg, lost in both formats: no escape exists.
"""

from __future__ import annotations

import io

from ..results import Segment, Timeline

ZWSP = "\u200b"  # zero-width space: invisible, but no longer markup


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))  # each boundary rounded once: a cue's end is the next cue's start
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def srt_time(seconds: float) -> str:
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    return _clock(seconds, ".")


def one_line(label: str) -> str:
    """Any run of whitespace (newline, tab, CR, U+2028...) as one space: a blank line would end the cue."""
    return " ".join(label.split()) or "(blank label)"


def cue_text(segment: Segment) -> str:
    """The words of one cue, before a format's escaping."""
    if segment.uncertain:
        return f"({segment.text})"
    return f"{one_line(segment.label)} {segment.confidence:.0%}"


def srt_escape(text: str) -> str:
    text = text.replace("<", "<" + ZWSP)
    return ZWSP + text if "-->" in text else text


def vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_srt(timeline: Timeline) -> str:
    out = io.StringIO()
    for number, s in enumerate(timeline.segments, 1):
        out.write(f"{number}\n{srt_time(s.start)} --> {srt_time(s.end)}\n{srt_escape(cue_text(s))}\n\n")
    return out.getvalue()


def render_vtt(timeline: Timeline) -> str:
    out = io.StringIO()
    out.write("WEBVTT\n\n")
    for number, s in enumerate(timeline.segments, 1):
        out.write(f"{number}\n{vtt_time(s.start)} --> {vtt_time(s.end)}\n{vtt_escape(cue_text(s))}\n\n")
    return out.getvalue()
