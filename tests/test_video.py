"""media/decode.py: the frames sample_clips returns are the ones a full decode gives at those positions, whatever the
container, codec, keyframe spacing or frame timing; every bad input is one VideoError naming the file and cause."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from tests._videos import (
    VideoSpec,
    add_data_stream,
    corrupt_file,
    drop_leading_packets,
    encoder_available,
    make_audio,
    make_empty,
    make_streams,
    make_text,
    make_video,
    read_index,
    truncate_file,
)
from tsf_cli.errors import VideoError
from tsf_cli.media import decode as video
from tsf_cli.media.decode import sample_clips
from tsf_cli.media.limits import DecodeLimits
from tsf_cli.media.probe import probe
from tsf_cli.media.sampling import sample_frame_indices

VFR_TIMES = [0.0, 0.04, 0.05, 0.13, 0.2, 0.21, 0.4, 0.45, 0.5, 0.62, 0.7, 0.71, 0.9, 1.0, 1.04, 1.3, 1.31, 1.5]

# name -> (file name, VideoSpec fields). Short and long keyframe intervals, B-frames, open GOPs (x265), no
# timestamps (raw h264), MPEG-TS (seeks by dts), variable frame rate, 10-bit, odd sizes, intra-only codecs.
FORMATS = {
    "mp4-h264-gop5-bframes": ("v.mp4", dict(frames=72, gop=5, bframes=3)),
    "mp4-h264-gop50": ("v.mp4", dict(frames=72, gop=50, bframes=2)),
    "mp4-h264-nobframes": ("v.mp4", dict(frames=40, gop=8, bframes=0)),
    "mkv-h264-gop6": ("v.mkv", dict(frames=60, gop=6, bframes=3)),
    "mov-h264-gop7": ("v.mov", dict(frames=50, gop=7)),
    "ts-h264-gop6": ("v.ts", dict(frames=60, gop=6, bframes=2)),
    "raw-h264": ("v.h264", dict(frames=40, gop=6)),
    "ts-mpeg2-bframes": ("v.ts", dict(frames=48, gop=6, bframes=2, codec="mpeg2video")),
    "webm-vp9-gop6": ("v.webm", dict(frames=48, gop=6)),
    "avi-mpeg4-gop6": ("v.avi", dict(frames=48, gop=6, codec="mpeg4")),
    "avi-mjpeg-odd": ("v.avi", dict(frames=30, codec="mjpeg", size=(33, 17))),
    "mp4-h264-odd-444": ("v.mp4", dict(frames=30, gop=4, size=(33, 17), pix_fmt="yuv444p")),
    "mp4-h264-10bit": ("v.mp4", dict(frames=40, gop=6, pix_fmt="yuv420p10le")),
    "mkv-hevc-open-gop": ("v.mkv", dict(frames=60, gop=8, bframes=3, codec="libx265")),
    "mp4-hevc-10bit": ("v.mp4", dict(frames=40, gop=8, codec="libx265", pix_fmt="yuv420p10le")),
    "mkv-av1": ("v.mkv", dict(frames=40, gop=8, codec="libsvtav1", size=(64, 64))),
    "mov-prores": ("v.mov", dict(frames=24, codec="prores_ks")),
    "mp4-vfr": ("v.mp4", dict(frames=len(VFR_TIMES), gop=4, timestamps=VFR_TIMES)),
    "mkv-vfr": ("v.mkv", dict(frames=len(VFR_TIMES), gop=5, timestamps=VFR_TIMES)),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Make each named video once per module: ``videos(name)`` -> path."""
    root = tmp_path_factory.mktemp("videos")
    made = {}

    def get(name: str):
        if name not in made:
            file_name, spec = FORMATS[name]
            codec = spec.get("codec")
            if codec is not None and not encoder_available(codec):
                pytest.skip(f"this PyAV build has no {codec} encoder")
            made[name] = make_video(root / f"{name}-{file_name}", **spec)
        return made[name]

    return get


def full_decode(path, stream: int = 0) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams[stream])]


def assert_same_as_full_decode(path, clips, reference=None):
    reference = full_decode(path) if reference is None else reference
    for clip in clips:
        assert clip.frames.dtype == np.uint8 and clip.frames.shape[0] == len(clip.indices)
        for index, frame in zip(clip.indices, clip.frames, strict=True):
            assert np.array_equal(frame, reference[index]), f"frame {index} differs from the full decode"


# ---------------------------------------------------------------------------------------------------------------------
# Exactness


@pytest.mark.parametrize("name", list(FORMATS))
def test_frames_equal_a_full_decode(videos, name):
    path = videos(name)
    reference = full_decode(path)
    assert [read_index(f) for f in reference] == list(range(len(reference)))  # the helper's own promise
    for sampling, frames, clips, extra in [
        ("uniform", 8, 1, {}),
        ("uniform", 5, 3, {}),
        ("segments", 6, 2, {}),
        ("stride", 4, 2, {"frame_sample_rate": 3}),
        ("stride", 3, 1, {"frame_sample_rate": 2, "seed": 1}),
    ]:
        result = sample_clips(path, frames, sampling, clips=clips, **extra)
        assert len(result) == clips
        assert_same_as_full_decode(path, result, reference)


@pytest.mark.parametrize("name", list(FORMATS))
def test_sound_videos_carry_no_warning(videos, name):
    # the damage rules (sizes, durations, rates, edit lists, decoder errors) stay quiet on every format sound files use
    assert video.sample_video(videos(name), 8, clips=2).warnings == ()


def test_every_frame_in_reverse_order_of_wanting_is_still_exact(videos):
    # Many seeks, overlapping groups, frames wanted again by a later clip.
    path = videos("mkv-hevc-open-gop")
    result = sample_clips(path, 20, "segments", clips=3)
    assert_same_as_full_decode(path, result)


def test_timestamps_are_the_frames_own(videos):
    cfr = sample_clips(videos("mp4-h264-gop5-bframes"), 72)[0]
    assert cfr.indices == tuple(range(72))
    assert np.allclose(cfr.timestamps, np.arange(72) / 24)
    vfr = sample_clips(videos("mkv-vfr"), len(VFR_TIMES))[0]
    assert np.allclose(vfr.timestamps, VFR_TIMES, atol=1e-3)


def test_seeking_decodes_only_the_groups_it_needs(videos, monkeypatch):
    decoded = []
    real = video._SeekingDecoder._decode
    monkeypatch.setattr(video._SeekingDecoder, "_decode", lambda self, c, p: decoded.append(p) or real(self, c, p))
    short_gop = videos("mp4-h264-gop5-bframes")  # 72 frames, a keyframe every 5
    assert sample_clips(short_gop, 3, "uniform")[0].indices == (0, 36, 71)
    assert 0 < len(decoded) < 30
    short = len(decoded)
    decoded.clear()
    long_gop = videos("mp4-h264-gop50")  # keyframes at 0 and 50: frame 36 needs the 36 frames before it
    sample_clips(long_gop, 3, "uniform")
    assert len(decoded) >= 37 and len(decoded) > short


def test_a_seek_that_lands_elsewhere_falls_back_to_a_full_decode(videos, monkeypatch):
    path = videos("mp4-h264-gop5-bframes")

    def untrusted(self, key):
        raise video._Untrusted

    monkeypatch.setattr(video._SeekingDecoder, "_seek", untrusted)
    assert_same_as_full_decode(path, sample_clips(path, 6, "segments"))


def test_a_stream_starting_mid_gop_is_counted_as_the_decoder_counts_it(tmp_path):
    # 43 packets, but the decoder drops the 7 that reference the missing keyframe: frame 0 is the first it shows.
    whole = make_video(tmp_path / "whole.mkv", frames=48, gop=12, bframes=0)
    cut = drop_leading_packets(whole, tmp_path / "cut.mkv", count=5)
    reference = full_decode(cut)
    assert len(reference) == 36 and read_index(reference[0]) == 12
    clip = sample_clips(cut, 4)[0]
    assert clip.indices == (0, 12, 23, 35)
    assert clip.timestamps == pytest.approx((0, 12 / 24, 23 / 24, 35 / 24), abs=1e-3)  # the decoder's, from its first
    assert_same_as_full_decode(cut, [clip], reference)


# ---------------------------------------------------------------------------------------------------------------------
# Choosing frames


def hf_docs_sample_frame_indices(clip_len, frame_sample_rate, seg_len):
    """Verbatim from the transformers TimeSformer / VideoMAE docs."""
    converted_len = int(clip_len * frame_sample_rate)
    end_idx = np.random.randint(converted_len, seg_len)
    start_idx = end_idx - converted_len
    indices = np.linspace(start_idx, end_idx, num=clip_len)
    indices = np.clip(indices, start_idx, end_idx - 1).astype(np.int64)
    return indices


@pytest.mark.parametrize("clip_len,rate,seg_len", [(8, 32, 300), (16, 4, 100), (8, 1, 9), (96, 4, 1000)])
def test_sample_frame_indices_is_the_documented_recipe(clip_len, rate, seg_len):
    for seed in range(5):
        np.random.seed(seed)
        expected = hf_docs_sample_frame_indices(clip_len, rate, seg_len)
        np.random.seed(seed)
        assert np.array_equal(sample_frame_indices(clip_len, rate, seg_len), expected)
        assert np.array_equal(sample_frame_indices(clip_len, rate, seg_len, rng=np.random.RandomState(seed)), expected)
    generator = sample_frame_indices(clip_len, rate, seg_len, rng=np.random.default_rng(0))
    assert generator.shape == (clip_len,) and generator.max() < seg_len


def test_sample_frame_indices_on_a_video_shorter_than_the_window():
    # The docs' function raises here; ours starts at 0 and repeats the last frame.
    assert sample_frame_indices(4, 4, 10).tolist() == [0, 5, 9, 9]


def test_stride_with_a_seed_takes_the_documented_window(videos):
    path = videos("mp4-h264-gop5-bframes")  # 72 frames
    np.random.seed(3)
    expected = hf_docs_sample_frame_indices(8, 4, 72)
    clip = sample_clips(path, 8, "stride", frame_sample_rate=4, seed=3)[0]
    assert clip.indices == tuple(expected.tolist())
    assert [read_index(f) for f in clip.frames] == list(clip.indices)


def test_stride_centred_and_from_a_start(videos):
    path = videos("mp4-h264-gop5-bframes")  # 72 frames at 24 fps
    centred = sample_clips(path, 4, "stride", frame_sample_rate=8)[0]
    assert centred.indices == (20, 30, 41, 51)  # the window 20..52 in the middle, spaced as the docs space it
    from_start = sample_clips(path, 4, "stride", frame_sample_rate=2, start=1.0, clips=2)
    assert [c.indices for c in from_start] == [(24, 26, 29, 31), (32, 34, 37, 39)]


def test_stride_counts_frames_at_the_target_fps(videos):
    path = videos("mp4-h264-gop5-bframes")  # 24 fps
    half = sample_clips(path, 4, "stride", frame_sample_rate=1, target_fps=12, start=0.0)[0]
    assert half.indices == (0, 2, 4, 6)  # every frame at 12 fps is every other frame at 24
    double = sample_clips(path, 4, "stride", frame_sample_rate=1, target_fps=48, start=0.0)[0]
    assert double.indices == (0, 0, 1, 1)


def test_stride_on_a_variable_frame_rate_video_samples_by_time(videos):
    path = videos("mkv-vfr")
    clip = sample_clips(path, 6, "stride", frame_sample_rate=1, target_fps=5, start=0.0)[0]
    # Times 0, 0.2, ..., 1.0: the frame showing at each of them.
    shown = [max(i for i, t in enumerate(VFR_TIMES) if t <= k / 5 + 1e-6) for k in range(6)]
    assert list(clip.indices) == shown


def test_uniform_and_segments_positions(videos):
    path = videos("mp4-h264-gop5-bframes")  # 72 frames
    assert sample_clips(path, 4)[0].indices == (0, 24, 47, 71)
    interleaved = sample_clips(path, 2, clips=2)
    assert [c.indices for c in interleaved] == [(0, 47), (24, 71)]
    assert sample_clips(path, 4, "segments")[0].indices == (9, 27, 45, 63)
    assert [c.indices for c in sample_clips(path, 2, "segments", clips=2)] == [(9, 45), (27, 63)]


def test_a_seed_jitters_uniform_and_segments_within_segments(videos):
    path = videos("mp4-h264-gop5-bframes")
    first = sample_clips(path, 4, "segments", seed=1)[0].indices
    assert first == sample_clips(path, 4, "segments", seed=1)[0].indices
    assert all(18 * k <= i < 18 * (k + 1) for k, i in enumerate(first))


def test_a_short_video_repeats_its_last_frame_and_says_so(videos):
    path = videos("avi-mjpeg-odd")  # 30 frames
    clip = sample_clips(path, 32)[0]
    assert clip.indices == (*range(30), 29, 29) and clip.padded == 2
    assert np.array_equal(clip.frames[-1], clip.frames[29])
    stride = sample_clips(path, 8, "stride", frame_sample_rate=8)[0]
    assert stride.indices[-1] == 29 and stride.padded == 4
    assert sample_clips(path, 8)[0].padded == 0


def test_wrong_arguments_are_value_errors(videos):
    path = videos("avi-mjpeg-odd")
    with pytest.raises(ValueError, match="sampling"):
        sample_clips(path, 8, "random")
    with pytest.raises(ValueError, match="stride"):
        sample_clips(path, 8, "uniform", target_fps=30)
    with pytest.raises(ValueError):
        sample_clips(path, 0)


# ---------------------------------------------------------------------------------------------------------------------
# Streams and rotation


def test_the_best_video_stream_by_default_or_the_one_named(tmp_path):
    path = make_streams(
        tmp_path / "two.mkv",
        [VideoSpec(frames=12, size=(32, 24)), VideoSpec(frames=12, size=(64, 48), first_index=100)],
        audio=True,
    )
    info = probe(path)
    assert [s.type for s in info.streams] == ["video", "video", "audio"]
    default = sample_clips(path, 3)[0]
    assert default.frames.shape[1:3] == (48, 64) and info.video_stream == 1  # the largest picture, as ffmpeg picks
    small = sample_clips(path, 3, stream=0)[0]
    assert small.frames.shape[1:3] == (24, 32)
    assert [read_index(f) for f in small.frames] == [0, 6, 11]
    with pytest.raises(VideoError, match="stream 2 is audio, not video"):
        sample_clips(path, 3, stream=2)
    with pytest.raises(VideoError, match="no stream 7"):
        sample_clips(path, 3, stream=7)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_rotation_is_applied(tmp_path, suffix):
    path = make_video(tmp_path / f"rot{suffix}", frames=10, size=(64, 48), rotation=90)
    clip = sample_clips(path, 2)[0]
    assert clip.frames.shape == (2, 64, 48, 3)
    reference = full_decode(path)
    assert np.array_equal(clip.frames[0], np.rot90(reference[0]))  # 90 degrees counter-clockwise, as displayed
    assert probe(path).streams[0].rotation == 90


def test_streams_without_a_decoder_are_listed_and_left_alone(tmp_path):
    path = add_data_stream(make_video(tmp_path / "drone.ts", frames=24, gop=6, audio=True))
    info = probe(path)
    assert [(s.type, s.codec) for s in info.streams] == [("video", "h264"), ("audio", "aac"), ("data", "klv")]
    assert_same_as_full_decode(path, sample_clips(path, 5))


def test_cover_art_is_not_a_video_unless_asked_for(tmp_path):
    song = make_audio(tmp_path / "song.mp3", cover_art=True)
    expect_error(song, "no video stream (streams: 0: audio, 1: cover art)")
    assert probe(song).video_stream is None
    picture = sample_clips(song, 2, stream=1)[0]
    assert picture.indices == (0, 0) and picture.padded == 1


def test_probe_measures_what_headers_leave_out(videos, tmp_path):
    info = probe(videos("mkv-h264-gop6"))  # Matroska headers carry no frame count
    stream = info.streams[0]
    assert (stream.num_frames, stream.keyframes, stream.variable_fps) == (60, 10, False)
    assert stream.fps == pytest.approx(24, rel=1e-3)  # Matroska counts time in 1 ms ticks
    assert stream.duration_s == pytest.approx(2.5, abs=0.05)
    assert info.video_stream == 0 and info.duration_s == pytest.approx(2.5, abs=0.05)
    vfr = probe(videos("mp4-vfr")).streams[0]
    assert vfr.variable_fps and vfr.num_frames == len(VFR_TIMES)
    header_only = probe(videos("mkv-h264-gop6"), count_frames=False).streams[0]
    assert header_only.num_frames is None and header_only.width == 64
    audio = probe(make_audio(tmp_path / "a.wav"))
    assert audio.video_stream is None and audio.streams[0].sample_rate == 48000


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: one VideoError naming the file and the cause


def expect_error(path, cause: str, **kwargs):
    with pytest.raises(VideoError) as caught:
        sample_clips(path, 8, **kwargs)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value) and cause in caught.value.cause, caught.value.cause
    return caught.value


def test_missing_empty_directory_text_and_noise(tmp_path):
    expect_error(tmp_path / "nope.mp4", "no such file")
    expect_error(make_empty(tmp_path / "empty.mp4"), "empty file (0 bytes)")
    expect_error(tmp_path, "a directory")
    expect_error(make_text(tmp_path / "notes.mp4"), "not a video FFmpeg can read (Invalid data")
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    expect_error(noise, "not a video FFmpeg can read")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    expect_error(fifo, "not a regular file")


@pytest.mark.parametrize("name", ["a.wav", "a.m4a", "a.mp3"])
def test_audio_only_is_an_error_not_an_empty_result(tmp_path, name):
    expect_error(make_audio(tmp_path / name), "no video stream (streams: 0: audio)")


@pytest.mark.parametrize(
    "suffix,muxer_options,cause",
    [
        (".mp4", None, "truncated: its MP4 (mdat box) header says"),  # the index (moov) is at the end, and gone
        (".mp4", {"movflags": "faststart"}, "truncated or corrupt: 38 of the 96 frames its header lists"),
        (".mkv", None, "truncated or corrupt: frames end at"),
        (".avi", None, "truncated or corrupt: "),
    ],
)
def test_truncated(tmp_path, suffix, muxer_options, cause):
    # 4 s: Matroska's check allows a last frame of up to a second that the packets do not account for.
    codec = "mjpeg" if suffix == ".avi" else None
    whole = make_video(tmp_path / f"whole{suffix}", frames=96, gop=6, codec=codec, muxer_options=muxer_options)
    expect_error(truncate_file(whole, tmp_path / f"cut{suffix}", keep=0.5), cause)


def test_corrupt_frames_are_reported_with_the_decoder_cause(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", frames=60, gop=10)
    error = expect_error(corrupt_file(whole, tmp_path / "bad.mp4", start=0.3, length=0.4), "could not be decoded")
    assert "Invalid data" in error.cause


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi", ".ts"])
def test_random_damage_gives_clips_or_a_video_error_never_anything_else(tmp_path, suffix):
    whole = make_video(tmp_path / f"whole{suffix}", frames=48, gop=8)
    rng = np.random.default_rng(0)
    for seed in range(6):
        damaged = corrupt_file(whole, tmp_path / f"bad{suffix}", start=rng.random(), length=0.02, seed=seed)
        try:
            clips = sample_clips(damaged, 6, clips=2)
        except VideoError as error:
            assert error.path == str(damaged) and error.cause
            continue
        assert all(clip.frames.shape == (6, 48, 64, 3) for clip in clips)


def test_corrupt_header(tmp_path):
    whole = make_video(tmp_path / "whole.mkv", frames=30)
    expect_error(corrupt_file(whole, tmp_path / "bad.mkv", start=0.0, length=0.05), "not a video FFmpeg can read")


@pytest.mark.parametrize(
    "limits,cause",
    [
        (DecodeLimits(max_pixels=64 * 48 - 1), "over the limit of 3071 pixels (DecodeLimits.max_pixels)"),
        (DecodeLimits(max_frames=20), "more than 20 frames (DecodeLimits.max_frames)"),
        (DecodeLimits(max_seconds=1.0), "longer than 1 s (DecodeLimits.max_seconds)"),
        (DecodeLimits(timeout_s=0.0), "DecodeLimits.timeout_s"),
    ],
)
def test_limits(videos, limits, cause):
    expect_error(videos("mp4-h264-gop5-bframes"), cause, limits=limits)


def test_start_past_the_end(videos):
    expect_error(videos("mp4-h264-gop5-bframes"), "past the last frame", sampling="stride", start=60.0)


def test_probe_errors_name_the_file(tmp_path):
    with pytest.raises(VideoError, match="empty file"):
        probe(make_empty(tmp_path / "e.mp4"))
