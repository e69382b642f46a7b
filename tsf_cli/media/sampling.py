"""Which frames a clip takes: pure functions of a video's frame count and timestamps, apart from decoding (as
torchcodec keeps its samplers apart from its decoder), so that every plan can be tested without a video.

A plan is, for each clip, the frame indices (in presentation order, clamped to the video) and how many of them ran
past the video's end (``padded``): a video shorter than a clip repeats its last frame.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLINGS = ("uniform", "stride", "segments")


def sample_frame_indices(clip_len: int, frame_sample_rate: int, seg_len: int, *, rng=None) -> np.ndarray:
    """The frame sampler from the transformers docs for TimeSformer and VideoMAE: a random window of
    ``clip_len * frame_sample_rate`` frames ending inside the video, ``clip_len`` frames spread evenly over it.

    Draws the same window as the docs' function from the same random state: ``np.random``'s global state when
    ``rng`` is None, else ``rng`` (a ``np.random.Generator`` or ``RandomState``). Where the docs' function fails
    (a video no longer than the window) this one starts the window at frame 0 and repeats the last frame.
    """
    indices = _window(clip_len, frame_sample_rate, _window_start(clip_len, frame_sample_rate, seg_len, rng))
    return np.minimum(indices, seg_len - 1)


def _window_start(clip_len: int, frame_sample_rate: int, seg_len: int, rng) -> int:
    converted_len = int(clip_len * frame_sample_rate)
    if seg_len <= converted_len:
        return 0
    if rng is None:
        end_idx = np.random.randint(converted_len, seg_len)
    elif isinstance(rng, np.random.Generator):
        end_idx = rng.integers(converted_len, seg_len)
    else:
        end_idx = rng.randint(converted_len, seg_len)
    return int(end_idx) - converted_len


def _window(clip_len: int, frame_sample_rate: int, start_idx: int) -> np.ndarray:
    """The docs' spacing: ``clip_len`` points from the window's start to its end, the last pulled inside it."""
    return _spaced(clip_len, int(clip_len * frame_sample_rate), start_idx)


def _spaced(length: int, span: int, first: int) -> np.ndarray:
    """``length`` points spread over the ``span`` frames from ``first`` as the docs' sampler spreads them."""
    end = first + span
    return np.clip(np.linspace(first, end, num=length), first, end - 1).astype(np.int64)


def plan_clips(
    num_frames: int,
    times: np.ndarray,
    length: int,
    sampling: str,
    clips: int,
    frame_sample_rate: int,
    target_fps: float | None,
    start: float | None,
    seed: int | None,
) -> list[tuple[np.ndarray, int]]:
    """For each clip, the frame indices (clamped to the video) and how many of them ran past its end."""
    if sampling == "stride":
        return _plan_stride(num_frames, times, length, clips, frame_sample_rate, target_fps, start, seed)
    if num_frames < length:
        # Every frame once, then the last one repeated (and counted as padding) to fill the clip.
        short = np.minimum(np.arange(length), num_frames - 1)
        return [(short, length - num_frames)] * clips
    if seed is not None:
        # Training-time sampling (TSN): a random frame inside each of `length` equal segments, fresh per clip.
        rng = np.random.default_rng(seed)
        tick = num_frames / length
        return [(np.floor(tick * (np.arange(length) + rng.random(length))).astype(np.int64), 0) for _ in range(clips)]
    if sampling == "uniform":
        # One evenly spaced grid of clips * length points from the first frame to the last; clip k takes every
        # clips-th point, so several clips interleave and each still spans the whole video.
        grid = np.floor(np.linspace(0, num_frames - 1, clips * length) + 0.5).astype(np.int64)
        return [(grid[k::clips], 0) for k in range(clips)]
    # segments: length equal segments; clip k takes the point (k + 0.5) / clips of the way through each.
    tick = num_frames / length
    return [(np.floor(tick * (np.arange(length) + (k + 0.5) / clips)).astype(np.int64), 0) for k in range(clips)]


def plan_window(
    times: np.ndarray, start: float, end: float, length: int, sampling: str, fps: float | None = None
) -> np.ndarray:
    """The ``length`` frame indices one clip takes from the window [start, end) seconds of a video whose frame i shows
    from ``times[i]`` (ascending, from 0), as ``plan_clips`` would take them from a video that were only this window:

      - ``uniform``: evenly spaced from the frame showing at ``start`` to the last one before ``end``;
      - ``segments``: the middle frame of each of ``length`` equal parts of those frames;
      - ``stride``: spaced as ``sample_frame_indices`` spaces them over the window, counted in frames at ``fps``: a
        window of ``length * stride / fps`` seconds gets exactly the stride.

    A window holding fewer frames than ``length`` repeats frames, spread over it.
    """
    eps = 1e-6
    first = _showing(times, start + eps)
    last = max(first, _showing(times, end - eps))
    if sampling == "uniform":
        return np.floor(np.linspace(first, last, length) + 0.5).astype(np.int64)
    if sampling == "segments":
        tick = (last - first + 1) / length
        return first + np.floor(tick * (np.arange(length) + 0.5)).astype(np.int64)
    if sampling != "stride":
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if fps is None or fps <= 0:
        raise ValueError(f"stride sampling of a window counts frames at a frame rate; got {fps}")
    virtual = _spaced(length, max(1, round((end - start) * fps)), int(math.ceil(start * fps - eps)))
    return np.maximum(np.searchsorted(times, virtual / fps + eps, side="right") - 1, 0)


def _showing(times: np.ndarray, t: float) -> int:
    """The frame on screen at ``t`` seconds: the last one starting at or before it."""
    return max(int(np.searchsorted(times, t, side="right")) - 1, 0)


def _plan_stride(num_frames, times, length, clips, rate, target_fps, start, seed) -> list[tuple[np.ndarray, int]]:
    # Work on a timeline of "virtual" frames at target_fps (or the video's own frames): virtual frame j is whatever
    # frame shows at j / target_fps, so a variable frame rate video is sampled by time, as it plays.
    eps = 1e-6
    if target_fps is None:
        virtual = num_frames
    else:
        virtual = int(math.floor(float(times[-1]) * target_fps + eps)) + 1
    span = int(length * rate)
    if start is not None:
        if target_fps is None:
            first = int(np.searchsorted(times, start - eps, side="left"))
        else:
            first = int(math.ceil(start * target_fps - eps))
        starts = [first + k * span for k in range(clips)]  # back to back from the given start
    elif seed is not None:
        rng = np.random.RandomState(seed)  # the docs' recipe draws from RandomState, so one seed gives its window
        starts = [_window_start(length, rate, virtual, rng) for _ in range(clips)]
    else:
        slack = max(virtual - span, 0)
        starts = [slack * (2 * k + 1) // (2 * clips) for k in range(clips)]  # centred in clips equal parts
    planned = []
    for first in starts:
        points = _window(length, rate, first)
        padded = int((points > virtual - 1).sum())
        points = np.minimum(points, virtual - 1)
        if target_fps is not None:
            points = np.searchsorted(times, points / target_fps + eps, side="right") - 1
        planned.append((points.astype(np.int64), padded))
    return planned


def check_sampling(num_frames, sampling, clips, frame_sample_rate, target_fps, start) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if num_frames < 1 or clips < 1 or frame_sample_rate < 1:
        raise ValueError("num_frames, clips and frame_sample_rate must be at least 1")
    if target_fps is not None and target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    if start is not None and start < 0:
        raise ValueError(f"start must be at least 0 seconds, got {start}")
    if sampling != "stride" and (frame_sample_rate != 1 or target_fps is not None or start is not None):
        raise ValueError(f"frame_sample_rate, target_fps and start apply to stride sampling, not {sampling}")
