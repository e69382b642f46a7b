"""The ``.html`` page of ``tsf timeline`` in a real headless Chromium (Debian's package), driven over the DevTools
protocol pipe (tests/_cdp.py): it loads, its segments render as text, a click on one moves the video there, the label
under the video follows playback, a video the browser cannot play gets a note; a screenshot of each.

Skipped where no chromium is installed, except in CI (``CI`` or ``TSF_REQUIRE_BROWSER`` set, as .ci/run sets the
latter), where a missing browser fails. Screenshots go to $TSF_SCREENSHOTS if set, else to the test's tmp folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests._cdp import Chromium, find_chromium
from tests._serve import serve
from tests._timelines import scripted_windows, timeline_of_windows
from tests._videos import make_video
from tsf_cli.io.subtitles import cue_text, render_vtt
from tsf_cli.io.timelines import write_timeline

DURATION = 10.0
EVIL = "<script>window.__pwned=1</script>"
EVIL2 = '</script><img src=x onerror="window.__pwned=2">'
SCRIPT = [("walking", 0, 2.5), (EVIL, 2.5, 4.5), (None, 4.5, 6), ("running & jumping", 6, 8), (EVIL2, 8, 10)]


def timeline(video: Path):
    windows = scripted_windows(DURATION, 1.0, 0.5, script=SCRIPT, seed=3)
    return timeline_of_windows(
        str(video), windows, duration=DURATION, window=1.0, hop=0.5, min_probability=0.45, smooth=3
    )


@pytest.fixture(scope="module")
def browser():
    if not find_chromium():
        if os.environ.get("CI") or os.environ.get("TSF_REQUIRE_BROWSER"):
            pytest.fail("no chromium in CI: .ci/run installs it (apt-get install chromium)", pytrace=False)
        pytest.skip("no chromium (apt-get install chromium)")
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    fast_vp9 = {"deadline": "realtime", "cpu-used": "8"}
    webm = make_video(folder / "my clip #1 é.webm", frames=240, fps=24, size=(320, 180), gop=24, options=fast_vp9)
    avi = make_video(folder / "old.avi", frames=240, fps=24, size=(160, 120))  # MPEG-4 part 2: Chromium can't
    return {"webm": webm, "avi": avi}


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("TSF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_page(made, root: Path) -> Path:
    page = root / "report" / "timeline.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    write_timeline(made, page)
    return page


def segment_texts(page) -> list[str]:
    return page.eval("Array.from(document.querySelectorAll('#segments .seg'), b => b.textContent)")


@pytest.mark.parametrize("how", ["file", "http"])
def test_the_page_renders_seeks_on_a_click_and_follows_playback(browser, media, tmp_path, shots, how):
    root = tmp_path / "site"
    (root / "media").mkdir(parents=True)
    video = shutil.copy(media["webm"], root / "media" / media["webm"].name)
    made = timeline(Path(video))
    html_path = write_page(made, root)
    assert made.segments[1].label == EVIL and any(s.uncertain for s in made.segments)

    page = browser.new_page(1100, 760)
    with serve(root) as base:  # a server that answers ranges: without them a browser cannot seek a video
        page.goto(html_path.as_uri() if how == "file" else base + "report/timeline.html")
        # One block per segment, labels as text, and no injected script ran.
        assert segment_texts(page) == [s.text for s in made.segments]
        assert page.eval("document.querySelectorAll('#segment-table tbody tr').length") == len(made.segments)
        cell = "document.querySelector('#segment-table tbody tr:nth-child(2) td:nth-child(4)').textContent"
        assert page.eval(cell) == EVIL
        assert page.eval("typeof window.__pwned") == "undefined"
        assert page.eval("document.querySelectorAll('script').length") == 2 and page.eval("document.images.length") == 0
        # Block widths in proportion to time (within a pixel).
        widths = page.eval(
            "Array.from(document.querySelectorAll('#segments .seg'), b => b.getBoundingClientRect().width)"
        )
        bar = page.eval("document.getElementById('segments').getBoundingClientRect().width")
        for width, segment in zip(widths, made.segments, strict=True):
            assert abs(width - bar * (segment.end - segment.start) / made.duration) <= 1.0
        # The video plays here (VP9 in WebM): no note.
        page.wait_for("document.getElementById('video').readyState >= 1")
        assert page.eval("document.getElementById('video-note').hidden") is True
        assert page.eval("document.getElementById('video').duration") == pytest.approx(DURATION, abs=0.1)

        # A real click on the 4th block moves the video there, and the label under it follows.
        target = 3
        start = made.segments[target].start
        page.click(f'#segments .seg[data-index="{target}"]')
        page.wait_for(f"Math.abs(document.getElementById('video').currentTime - {start}) < 0.05")
        page.wait_for(f"document.body.dataset.activeSegment === '{target}'")
        assert page.eval("document.getElementById('now-label').textContent").startswith(made.segments[target].text)
        assert page.eval("document.getElementById('video').paused") is True  # a click seeks; it does not play
        page.click('#segment-table tbody tr[data-index="1"]')  # a row of the table seeks too
        page.wait_for(f"Math.abs(document.getElementById('video').currentTime - {made.segments[1].start}) < 0.05")

        # Playing from just before the end of the 4th segment, the label moves on to the 5th by itself.
        near_end = made.segments[target].end - 0.3
        page.eval(f"(() => {{ const v = document.getElementById('video'); v.currentTime = {near_end}; v.play(); }})()")
        page.wait_for(f"document.body.dataset.activeSegment === '{target + 1}'", timeout=5)
        page.eval("document.getElementById('video').pause()")

        page.click(f'#segments .seg[data-index="{target}"]')
        page.wait_for(f"Math.abs(document.getElementById('video').currentTime - {start}) < 0.05")
        page.wait_for("document.getElementById('video').readyState >= 2")
        assert page.screenshot(shots / f"timeline-{how}.png")[:8] == b"\x89PNG\r\n\x1a\n"

        # Nothing but the page and its video was asked for (data: URLs are the icons of Chromium's own controls).
        urls = [u for u in page.requested_urls() if not u.startswith("data:")]
        prefix = "file://" if how == "file" else base
        assert urls and all(u.startswith(prefix) for u in urls), urls
        assert {u.rsplit("/", 1)[-1] for u in urls} <= {"timeline.html", "my%20clip%20%231%20%C3%A9.webm"}


def test_a_video_the_browser_cannot_play_gets_a_note_and_the_timeline_still_works(browser, media, tmp_path, shots):
    root = tmp_path / "site"
    (root / "media").mkdir(parents=True)
    made = timeline(Path(shutil.copy(media["avi"], root / "media" / "old.avi")))
    page = browser.new_page(1100, 560)
    page.goto(write_page(made, root).as_uri())
    page.wait_for("!document.getElementById('video-note').hidden")
    note = page.eval("document.getElementById('video-note').textContent")
    assert "cannot play" in note and "old.avi" in note
    assert page.eval("getComputedStyle(document.getElementById('video')).display") == "none"
    page.click('#segments .seg[data-index="3"]')
    page.wait_for("document.body.dataset.activeSegment === '3'")
    assert page.eval("window.tsfTimeline.state.cursor") == pytest.approx(made.segments[3].start)
    assert page.eval("document.getElementById('now-label').textContent").startswith(made.segments[3].text)
    page.screenshot(shots / "timeline-unplayable.png")


def test_a_missing_video_gets_a_note(browser, tmp_path):
    made = timeline(tmp_path / "gone.webm")  # never written
    page = browser.new_page(900, 500)
    page.goto(write_page(made, tmp_path).as_uri())
    page.wait_for("!document.getElementById('video-note').hidden")
    assert "gone.webm" in page.eval("document.getElementById('video-note').textContent")
    assert len(segment_texts(page)) == len(made.segments)


def test_chromium_reads_the_vtt_cues_as_written(browser, media, tmp_path):
    """Chromium's own WebVTT parser as a third reader: every cue, its times and its decoded text."""
    made = timeline(Path(media["webm"]))
    shutil.copy(media["webm"], tmp_path / "v.webm")
    (tmp_path / "cues.vtt").write_text(render_vtt(made), encoding="utf-8")
    (tmp_path / "track.html").write_text(
        '<!DOCTYPE html><meta charset="utf-8"><video id="v" src="v.webm" preload="auto">'
        '<track id="t" kind="subtitles" src="cues.vtt" default></video>',
        encoding="utf-8",
    )
    page = browser.new_page(400, 300)
    with serve(tmp_path) as base:  # a track needs a same-origin URL: file:// is opaque
        page.goto(base + "track.html")
        page.wait_for("document.getElementById('t').readyState === 2")
        cues = page.eval(
            "Array.from(document.getElementById('v').textTracks[0].cues,"
            " c => [c.startTime, c.endTime, c.getCueAsHTML().textContent])"
        )
    assert len(cues) == len(made.segments)
    for (start, end, text), segment in zip(cues, made.segments, strict=True):
        assert start == pytest.approx(segment.start, abs=5e-4) and end == pytest.approx(segment.end, abs=5e-4)
        assert text == cue_text(segment)
