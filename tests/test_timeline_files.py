"""The files of ``tsf timeline -o``, read back by other programs' readers: srt, webvtt-py and FFmpeg (through PyAV)
for the subtitles, csv and json, Pillow for the plot; the HTML page statically (tests/test_browser.py runs it)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys

import pytest
import srt
import webvtt
from PIL import Image

from tests._timelines import scripted_timeline, timeline_of_windows
from tsf_cli.errors import MissingDependencyError, OutputError
from tsf_cli.io.page import render_page, script_json, video_url
from tsf_cli.io.plot import SIZE_PX
from tsf_cli.io.subtitles import ZWSP, cue_text, render_srt, render_vtt, srt_time, vtt_time
from tsf_cli.io.timelines import check_timeline_outputs, render_csv, write_timeline

NASTY = [
    "a <b> & c", "x --> y", "line one\nline two", "tab\tand\r\nCR", "<script>alert(1)</script>", "émoji 🎬",
    "[bold]not markup[/bold]", "$x^2$", "_hidden", "   ", "1", "00:00:01,000 --> 00:00:02,000", "C:\\new {x}",
]  # fmt: skip


def nasty_timeline(folder=None):
    """One segment per nasty label (one confident window each, no smoothing), then an uncertain one."""
    windows = [(2.0 * i, 2.0 * i + 2.0, [(label, 0.9), ("other", 0.1)]) for i, label in enumerate(NASTY)]
    windows.append((2.0 * len(NASTY), 2.0 * len(NASTY) + 2.0, [("z", 0.2)]))
    path = str(folder / "v.mp4") if folder else "v.mp4"
    return timeline_of_windows(path, windows, duration=2.0 * len(windows), window=2.0, hop=2.0, smooth=1)


def write_all(timeline, paths):
    check_timeline_outputs(paths)
    for path in paths:
        write_timeline(timeline, path)


def test_times_are_written_to_the_millisecond_with_hours_unbounded():
    assert srt_time(0) == "00:00:00,000" and vtt_time(0) == "00:00:00.000"
    assert srt_time(3723.4567) == "01:02:03,457" and vtt_time(3723.4567) == "01:02:03.457"
    assert srt_time(59.9996) == "00:01:00,000"  # rounding carries
    assert vtt_time(100 * 3600 + 0.5) == "100:00:00.500"


def test_the_srt_parses_and_gives_every_label_back():
    timeline = nasty_timeline()
    subtitles = list(srt.parse(render_srt(timeline)))
    assert len(subtitles) == len(timeline.segments)
    for subtitle, segment in zip(subtitles, timeline.segments, strict=True):
        assert subtitle.start.total_seconds() == pytest.approx(segment.start, abs=5e-4)
        assert subtitle.end.total_seconds() == pytest.approx(segment.end, abs=5e-4)
        assert subtitle.content.replace(ZWSP, "") == cue_text(segment) and "\n" not in subtitle.content
    assert subtitles[0].content == "a <\u200bb> & c 90%"
    assert subtitles[2].content == "line one line two 90%"
    assert subtitles[9].content == "(blank label) 90%"
    assert subtitles[-1].content == "(uncertain)"
    assert all(a.end == b.start for a, b in zip(subtitles, subtitles[1:], strict=False))  # cues touch, never overlap


def test_the_vtt_parses_with_webvtt_py_and_decodes_to_the_labels(tmp_path):
    timeline = nasty_timeline()
    text = render_vtt(timeline)
    assert text.startswith("WEBVTT\n\n")
    body = text.split("\n\n", 1)[1]
    assert "<" not in body and body.count("-->") == len(timeline.segments)  # '-->' only in timing lines
    (tmp_path / "a.vtt").write_text(text, encoding="utf-8")
    for captions in (webvtt.from_string(text).captions, webvtt.read(str(tmp_path / "a.vtt")).captions):
        assert len(captions) == len(timeline.segments)
        for caption, segment in zip(captions, timeline.segments, strict=True):
            assert caption.start_in_seconds == pytest.approx(segment.start, abs=1e-3)
            assert html.unescape(caption.text) == cue_text(segment)  # webvtt-py gives the text undecoded


def ffmpeg_cues(path) -> list[str]:
    """The cue texts as FFmpeg's subtitle decoders hand them to players (ASS dialogue)."""
    import av

    texts = []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.subtitles[0]):
            for subtitle in packet.decode():
                text = subtitle.dialogue
                texts.append(text.decode() if isinstance(text, bytes) else text)
    return texts


def test_ffmpeg_reads_every_cue_as_written(tmp_path):
    """What mpv and ffplay show: no cue lost or split, no label taken as markup. Braces are ASS overrides to FFmpeg,
    lost in both formats (SubRip has no escape, its WebVTT reader is lossy): the one known difference."""
    timeline = nasty_timeline()
    expected = [cue_text(s) for s in timeline.segments]
    (tmp_path / "n.srt").write_text(render_srt(timeline), encoding="utf-8")
    (tmp_path / "n.vtt").write_text(render_vtt(timeline), encoding="utf-8")
    from_srt = [text.replace(ZWSP, "") for text in ffmpeg_cues(tmp_path / "n.srt")]
    from_vtt = [text.replace("\\\u2060", "\\") for text in ffmpeg_cues(tmp_path / "n.vtt")]  # ASS escapes a backslash
    assert len(from_srt) == len(from_vtt) == len(expected)
    for got in (from_srt, from_vtt):
        assert [(e, g) for e, g in zip(expected, got, strict=True) if e != g and "{" not in e] == []


def test_the_csv_has_one_row_per_window_with_the_decision_and_the_top_k():
    timeline = scripted_timeline(duration=20, window=2, hop=1)
    rows = list(csv.DictReader(io.StringIO(render_csv(timeline))))
    assert len(rows) == len(timeline.windows)
    for row, window in zip(rows, timeline.windows, strict=True):
        assert (float(row["start"]), float(row["end"])) == (window.start, window.end)
        assert row["label"] == (window.label or "") and row["uncertain"] == str(int(window.label is None))
        assert float(row["probability"]) == window.probability  # repr: the same float back
        assert (row["label_1"], float(row["prob_1"])) == (
            window.predictions[0].label,
            window.predictions[0].probability,
        )
    assert rows[0]["label"] == "walking" and rows[0]["prob_5"] and int(rows[0]["frames"]) == 16
    assert any(row["uncertain"] == "1" for row in rows)
    nasty = list(csv.DictReader(io.StringIO(render_csv(nasty_timeline()))))
    assert nasty[2]["label_1"] == "line one\nline two"  # quoted, so it comes back whole


def test_the_json_file_is_the_json_document_of_one_video(tmp_path):
    timeline = scripted_timeline(tmp_path / "clip.mp4", duration=20, window=2, hop=1)
    write_all(timeline, [tmp_path / "t.json"])
    document = json.loads((tmp_path / "t.json").read_text())
    (record,) = document["results"]
    assert record == json.loads(json.dumps(timeline.to_dict()))
    assert record["settings"] == {"window": 2, "hop": 1, "min_probability": 0.4, "smooth": 3, "top_k": 5, "crops": 1}
    assert set(record["windows"][0]) == {
        "start", "end", "indices", "timestamps", "predictions", "label", "uncertain", "probability",
    }  # fmt: skip
    assert record["segments"][0]["start"] == 0 and record["segments"][-1]["end"] == 20
    assert any(s["label"] is None and s["uncertain"] for s in record["segments"])
    assert record["labels"] == ["walking", "running", 'jumping <high> & "far"']


def test_the_png_is_the_documented_size_and_the_svg_is_svg(tmp_path):
    write_all(scripted_timeline(), [tmp_path / "t.png", tmp_path / "t.svg"])
    with Image.open(tmp_path / "t.png") as image:
        assert image.format == "PNG" and image.size == SIZE_PX == (1200, 450)
    svg = (tmp_path / "t.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and 'width="864pt"' in svg and 'height="324pt"' in svg


def test_the_plot_draws_labels_that_would_be_markup_and_is_the_same_bytes_every_time(tmp_path):
    write_all(nasty_timeline(), [tmp_path / "n.png"])  # '$x^2$', '_hidden', line breaks: no exception
    with Image.open(tmp_path / "n.png") as image:
        assert image.size == (1200, 450)
    timeline = scripted_timeline()
    write_all(timeline, [tmp_path / "a.svg", tmp_path / "a.png"])
    write_all(timeline, [tmp_path / "b.svg", tmp_path / "b.png"])
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_without_matplotlib_a_plot_is_one_line_naming_the_extra_before_anything_is_written(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError) as error:
        check_timeline_outputs([tmp_path / "t.json", tmp_path / "t.png"])
    assert "\n" not in str(error.value) and 'pip install "tsf-cli[plot]"' in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written_are_refused_before_the_run(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write a timeline as '\.txt' files; use one of \.json, \.csv"):
        check_timeline_outputs([tmp_path / "t.txt"])
    with pytest.raises(OutputError, match="a file without an extension"):
        check_timeline_outputs([tmp_path / "t"])
    with pytest.raises(OutputError, match="given twice"):
        check_timeline_outputs([tmp_path / "t.json", tmp_path / "." / "t.json"])
    with pytest.raises(OutputError, match="no such folder"):
        check_timeline_outputs([tmp_path / "missing" / "t.srt"])
    assert list(tmp_path.iterdir()) == []


def test_several_files_at_once_leave_no_temporary_file(tmp_path):
    outputs = [tmp_path / f"t.{suffix}" for suffix in ("json", "csv", "srt", "vtt", "png", "svg", "html")]
    write_all(scripted_timeline(), outputs)
    assert all(p.stat().st_size > 0 for p in outputs)
    assert sorted(tmp_path.iterdir()) == sorted(outputs)


def test_a_write_that_fails_leaves_what_was_there_and_says_so_in_one_line(tmp_path, monkeypatch):
    from tsf_cli.io import atomic

    kept = tmp_path / "t.srt"
    kept.write_text("earlier run")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OutputError, match=r"t\.srt: cannot write: No space left on device"):
        write_timeline(scripted_timeline(), kept)
    assert kept.read_text() == "earlier run" and list(tmp_path.iterdir()) == [kept]


# ---------------------------------------------------------------------------------------------------------------------
# The HTML page, without a browser


def test_the_video_s_url_is_relative_to_the_page_and_percent_encoded(tmp_path):
    assert video_url(tmp_path / "v.mp4", tmp_path / "t.html") == "v.mp4"
    assert (
        video_url(tmp_path / "media" / "my clip #1?.mp4", tmp_path / "out" / "t.html")
        == "../media/my%20clip%20%231%3F.mp4"
    )
    assert video_url(tmp_path / "é.mp4", tmp_path / "t.html") == "%C3%A9.mp4"
    assert video_url(tmp_path / "a\udcff.mp4", tmp_path / "t.html") == "a%FF.mp4"  # a name that is not UTF-8


def test_the_page_is_self_contained_and_labels_stay_text(tmp_path):
    page = render_page(nasty_timeline(tmp_path), tmp_path / "t.html")
    # nothing fetched from anywhere: no http(s) URL, no @import, no url(), no outside script or stylesheet
    assert not re.search(r"https?://|@import|url\(|<script[^>]+src=|<link[^>]+stylesheet", page)
    assert '<link rel="icon" href="data:,">' in page and 'src="v.mp4"' in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # no label opened another
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    data = page.split('id="tsf-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["segments"][4]["label"] == "<script>alert(1)</script>"


def test_a_label_that_reads_like_a_placeholder_of_the_page_stays_as_written(tmp_path):
    timeline = timeline_of_windows(
        str(tmp_path / "%%ROWS%%.mp4"), [(0, 2, [("%%DATA%%", 0.9)])], duration=2, window=2, hop=2
    )
    page = render_page(timeline, tmp_path / "t.html")
    assert page.count('id="tsf-data"') == 1 and "<h1>%%ROWS%%.mp4</h1>" in page
    assert "%%DATA%%</td>" in page  # the table cell, as written


def test_the_data_of_the_page_never_closes_its_script_element():
    text = script_json({"a": "</script><!-- & -->", "b": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & -->", "b": "\u2028"}
