"""The timeline's inference: where windows go and which frames each takes, one streaming pass of decoding whose
views equal those of a full decode and which holds only the open windows' frames, and the same timelines in this
process as from worker processes."""

from __future__ import annotations

import time
import weakref

import av
import numpy as np
import pytest

from tests._videos import drop_leading_packets, make_text, make_video
from tsf_cli.errors import VideoError
from tsf_cli.inference import timeline as timeline_module
from tsf_cli.inference.predictor import Predictor
from tsf_cli.inference.timeline import (
    TimelineOptions,
    WindowViews,
    run_timelines,
    timeline_of,
    timeline_options,
    window_views,
)
from tsf_cli.inference.views import ViewOptions
from tsf_cli.inference.windows import WindowPlan, default_window, plan_windows
from tsf_cli.media import decode
from tsf_cli.media.decode import FrameTimes, stream_frames
from tsf_cli.media.limits import DecodeLimits
from tsf_cli.media.preprocess import crop_views
from tsf_cli.media.sampling import plan_clips, plan_window
from tsf_cli.presets import get_preset
from tsf_cli.results import Timeline, VideoFailure


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor(str(checkpoint), device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """20 s at 12 fps, a keyframe every 24 frames, B-frames: windows of 2 s every 1 s need most of its frames."""
    return make_video(tmp_path_factory.mktemp("v") / "v.mp4", frames=240, fps=12, size=(48, 36), gop=24, bframes=2)


def full_decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def views_of_a_full_decode(path, plan: WindowPlan, predictor, crops=1) -> list[np.ndarray]:
    frames = np.stack(full_decode(path))
    return [crop_views([frames[indices]], predictor.preprocess_config, crops=crops) for indices in plan.indices]


# ---------------------------------------------------------------------------------------------------------------------
# Which frames a window takes


def test_a_stride_window_as_long_as_the_trained_clip_takes_exactly_the_trained_clip():
    for fps in (30, 25, 24, 60):
        times = np.arange(2000) / fps
        for start in (0.0, 1.0, 3.7, 10.25):
            window = plan_window(times, start, start + 8 * 32 / 30, 8, "stride", 30)
            (clip, padded), *_ = plan_clips(len(times), times, 8, "stride", 1, 32, 30, start=start, seed=None)
            assert padded == 0 and window.tolist() == clip.tolist(), (fps, start)


def test_a_uniform_window_over_the_whole_video_takes_what_classify_takes():
    times = np.arange(53) / 24
    (clip, _), *_ = plan_clips(len(times), times, 8, "uniform", 1, 1, None, start=None, seed=None)
    assert plan_window(times, 0, 53 / 24, 8, "uniform").tolist() == clip.tolist()


def test_a_window_takes_only_frames_shown_inside_it():
    times = np.arange(240) / 12
    for sampling in ("uniform", "segments"):
        indices = plan_window(times, 5.0, 7.0, 8, sampling)
        assert times[indices].min() >= 5.0 and times[indices].max() < 7.0
    few = plan_window(times, 5.0, 5.5, 8, "uniform")  # 6 frames for 8 places: repeats spread over the window
    assert sorted(set(few.tolist())) == list(range(60, 66)) and few.tolist() == sorted(few.tolist())


def test_default_windows_are_the_clips_each_model_was_trained_on():
    def views_of(name):
        preset = get_preset(name)
        return ViewOptions(preset.frames, preset.sampling, preset.frame_sample_rate or 1, preset.target_fps)

    assert default_window(get_preset("base-k400"), views_of("base-k400")) == pytest.approx(8 * 32 / 30)
    assert default_window(get_preset("hr-k400"), views_of("hr-k400")) == pytest.approx(16 * 16 / 30)
    assert default_window(get_preset("base-ssv2"), views_of("base-ssv2")) == 4.0
    assert default_window(get_preset("demo"), views_of("demo")) == 2.0
    assert default_window(None, ViewOptions(8)) == pytest.approx(8 * 32 / 30)  # no preset: the Kinetics span
    # the user's own stride is the window the model sees
    assert default_window(get_preset("base-k400"), ViewOptions(8, "stride", 16, 30)) == pytest.approx(8 * 16 / 30)


def test_the_hop_is_half_the_window_and_a_hop_longer_than_the_window_is_warned_about(predictor):
    views = predictor.default_views
    options = timeline_options(predictor, views, window=3.0, hop=None, min_probability=0.5, smooth=3, top_k=2)
    assert (options.window, options.hop) == (3.0, 1.5)
    with pytest.warns(UserWarning, match="windows see 50% of the video"):
        timeline_options(predictor, views, window=2.0, hop=4.0, min_probability=0.5, smooth=3, top_k=2)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(window=0), "window must be a positive number"),
        (dict(hop=float("nan")), "hop must be a positive number"),
        (dict(smooth=2), "smooth must be an odd number"),
        (dict(min_probability=2), "min probability must be between 0 and 1"),
        (dict(top_k=0), "top-k must be at least 1"),
    ],
)
def test_timeline_options_refuse_values_out_of_range(bad, message):
    with pytest.raises(ValueError, match=message):
        TimelineOptions(**{"window": 2.0, "hop": 1.0, **bad})


# ---------------------------------------------------------------------------------------------------------------------
# One pass of decoding


def test_stream_frames_gives_each_wanted_frame_once_in_order_as_a_full_decode_has_it(video):
    reference = full_decode(video)
    wanted = {5, 6, 7, 100, 101, 150, 239, 30}
    items = list(stream_frames(video, lambda times: [*wanted, 5, 6], held=1))
    assert isinstance(items[0], FrameTimes) and len(items[0].times) == 240
    frames = items[1:]
    assert [i for i, _ in frames] == sorted(wanted)
    for index, frame in frames:
        assert np.array_equal(frame, reference[index])


def test_a_stream_s_timeout_bounds_each_step_not_the_video_s_length(video):
    """A long video is not cut short: the consumer's time between frames does not count, each frame's wait does;
    without ``deadline_per_step`` (classify's decoding) the timeout bounds the whole call."""
    limits = DecodeLimits(timeout_s=1.0)
    every_20th = lambda times: range(0, 240, 20)  # noqa: E731
    for _ in stream_frames(video, every_20th, held=1, limits=limits, deadline_per_step=True):
        time.sleep(0.2)  # 12 frames: 2.4 s in all, more than the timeout
    with pytest.raises(VideoError, match=r"gave up after 1 s"):
        for _ in stream_frames(video, every_20th, held=1, limits=limits):
            time.sleep(0.2)

    def slow_plan(times):  # a step that takes longer than the timeout
        time.sleep(1.5)
        return [200]

    with pytest.raises(VideoError, match=r"gave up after 1 s"):
        list(stream_frames(video, slow_plan, held=1, limits=limits, deadline_per_step=True))


def test_reading_the_index_is_many_steps_not_one_wait(video, monkeypatch):
    """Reading the index reads every packet (over http, the whole file): each packet renews a stream's deadline."""
    real_check = decode.check_deadline

    def slow_check(*args):  # 5 ms a packet: the 240 packets take longer than the timeout, none of them alone
        time.sleep(0.005)
        real_check(*args)

    monkeypatch.setattr(decode, "check_deadline", slow_check)
    limits = DecodeLimits(timeout_s=0.5)
    streamed = list(stream_frames(video, lambda times: [239], held=1, limits=limits, deadline_per_step=True))
    assert [index for index, _ in streamed[1:]] == [239]
    with pytest.raises(VideoError, match=r"gave up after 0.5 s"):
        list(stream_frames(video, lambda times: [239], held=1, limits=limits))


def test_the_views_of_each_window_equal_those_of_a_full_decode(video, predictor):
    options = TimelineOptions(window=2.0, hop=1.0)
    views = predictor.view_options(crops=3)
    items = list(window_views(str(video), options, views, predictor.preprocess_config))
    plan, windows = items[0], items[1:]
    assert isinstance(plan, WindowPlan) and [w.number for w in windows] == list(range(len(plan)))
    for got, expected in zip(windows, views_of_a_full_decode(video, plan, predictor, crops=3), strict=True):
        assert got.pixels.shape == (3, 4, 32, 32, 3) and np.array_equal(got.pixels, expected)


def test_frames_no_open_window_takes_are_let_go(video, predictor, monkeypatch):
    """What the stream holds is bounded by the open windows, not the video: every frame's views are watched."""
    alive = []
    real_crop_views = timeline_module.crop_views

    def watched(*args, **kwargs):
        views = real_crop_views(*args, **kwargs)
        alive.append(weakref.ref(views))
        return views

    monkeypatch.setattr(timeline_module, "crop_views", watched)
    options = TimelineOptions(window=2.0, hop=1.0)
    views = predictor.default_views  # 4 frames a window
    most = 0
    for item in window_views(str(video), options, views, predictor.preprocess_config):
        if isinstance(item, WindowViews):
            most = max(most, sum(ref() is not None for ref in alive))
            del item  # the consumer lets go of the window, as the runner does once it is in a batch
    assert len(alive) > 60  # the video's frames went through...
    assert most <= 3 * views.frames  # ...but never more than two overlapping windows' worth at once (and one more)


def test_a_seek_that_lands_elsewhere_restarts_the_windows_from_a_full_decode(video, predictor, monkeypatch):
    seeks = []
    real_seek = decode._SeekingDecoder._seek

    def second_seek_lies(self, key):
        seeks.append(key)
        if len(seeks) == 2:
            raise decode._Untrusted
        return real_seek(self, key)

    monkeypatch.setattr(decode._SeekingDecoder, "_seek", second_seek_lies)
    options = TimelineOptions(window=1.0, hop=6.0)  # far apart: the decoder seeks between windows
    items = list(window_views(str(video), options, predictor.default_views, predictor.preprocess_config))
    plans = [i for i, item in enumerate(items) if isinstance(item, WindowPlan)]
    assert len(seeks) == 2 and len(plans) == 2  # the first plan's windows are void; the second plan starts again
    plan, windows = items[plans[1]], items[plans[1] + 1 :]
    for got, expected in zip(windows, views_of_a_full_decode(video, plan, predictor), strict=True):
        assert np.array_equal(got.pixels, expected)


def test_a_video_the_decoder_counts_otherwise_than_its_packets_is_planned_on_the_decoder_s_count(tmp_path, predictor):
    whole = make_video(tmp_path / "whole.mkv", frames=120, fps=12, size=(48, 36), gop=12, bframes=0)
    cut = drop_leading_packets(whole, tmp_path / "cut.mkv", count=5)  # the decoder drops 7 frames of the first GOP
    options = TimelineOptions(window=2.0, hop=1.0)
    items = list(window_views(str(cut), options, predictor.default_views, predictor.preprocess_config))
    plan = [item for item in items if isinstance(item, WindowPlan)][-1]
    assert plan.duration == pytest.approx(108 / 12, abs=0.01)
    windows = items[items.index(plan) + 1 :]
    for got, expected in zip(windows, views_of_a_full_decode(cut, plan, predictor), strict=True):
        assert np.array_equal(got.pixels, expected)


def test_a_frame_decoded_again_is_reported_damaged_once(tmp_path, monkeypatch):
    """When decoding starts over (the decoder gave other frames than the packets promised), the frames decoded again
    are judged again: each is named once."""
    whole = make_video(tmp_path / "whole.mkv", frames=120, fps=12, size=(48, 36), gop=12, bframes=0)
    cut = drop_leading_packets(whole, tmp_path / "cut.mkv", count=5)
    monkeypatch.setattr(decode, "_tainted", lambda tainted, frames: True)  # every frame looks concealed
    report = decode.DecodeReport()
    items = list(stream_frames(cut, lambda times: [30, 60], held=1, report=report))
    assert sum(isinstance(item, FrameTimes) for item in items) > 1  # it did start over
    assert report.warnings()[-1].startswith("frame(s) 30, 60 may show damage")


# ---------------------------------------------------------------------------------------------------------------------
# Classifying windows


def test_a_window_s_labels_are_the_mean_of_its_crops(video, predictor):
    views = predictor.view_options(crops=3)
    options = TimelineOptions(window=4.0, hop=4.0, top_k=5)
    timeline = timeline_of(predictor, str(video), options, views, batch_size=3)
    assert isinstance(timeline, Timeline) and len(timeline.windows) == 5 and timeline.crops == 3
    plan = plan_windows(np.arange(240) / 12, 4.0, 4.0, views)
    for window, pixels in zip(timeline.windows, views_of_a_full_decode(video, plan, predictor, crops=3), strict=True):
        per_crop = predictor.probabilities(pixels)  # (3, labels)
        assert np.abs(per_crop - per_crop.mean(0)).max() > 1e-4  # the crops disagree, so taking one would show
        mean = per_crop.mean(0)
        assert [p.index for p in window.predictions] == np.argsort(-mean, kind="stable").tolist()[:5]
        assert [p.probability for p in window.predictions] == pytest.approx(np.sort(mean)[::-1][:5].tolist())
    assert timeline.segments[0].start == 0 and timeline.segments[-1].end == pytest.approx(20.0)


def test_worker_processes_give_the_same_timelines_and_a_bad_file_is_its_own_failure(video, predictor, tmp_path):
    bad = make_text(tmp_path / "notes.mp4")
    other = make_video(tmp_path / "other.webm", frames=60, fps=10, size=(40, 40))
    options = TimelineOptions(window=2.0, hop=1.0, top_k=3)
    views = predictor.default_views
    paths = [str(video), str(bad), str(other)]
    here = {r.path: r for r in run_timelines(predictor, paths, options, views, batch_size=5, workers=0)}
    pooled = {r.path: r for r in run_timelines(predictor, paths, options, views, batch_size=5, workers=2, timeout=60)}
    assert isinstance(here[str(bad)], VideoFailure) and isinstance(pooled[str(bad)], VideoFailure)
    assert here[str(bad)].error == pooled[str(bad)].error == "VideoError"
    for path in (str(video), str(other)):
        assert isinstance(pooled[path], Timeline) and pooled[path].path == path
        # other batches (the pool interleaves videos): the same labels, probabilities within float rounding
        assert_alike(pooled[path], here[path])
        assert_alike(here[path], timeline_of(predictor, path, options, views, batch_size=2))


def assert_alike(a: Timeline, b: Timeline) -> None:
    assert [(s.label, s.start, s.end) for s in a.segments] == [(s.label, s.start, s.end) for s in b.segments]
    assert [s.confidence for s in a.segments] == pytest.approx([s.confidence for s in b.segments], abs=1e-6)
    for x, y in zip(a.windows, b.windows, strict=True):
        assert (x.start, x.end, x.frames, x.label) == (y.start, y.end, y.frames, y.label)
        assert [p.label for p in x.predictions] == [p.label for p in y.predictions]
        assert [p.probability for p in x.predictions] == pytest.approx([p.probability for p in y.predictions], abs=1e-6)
