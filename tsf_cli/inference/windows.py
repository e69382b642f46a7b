"""Where the windows of a timeline go, and which frames each one's clip takes: pure functions of a video's frame
times, so every plan can be tested without a video.

Windows of ``window`` seconds start at 0, hop, 2 hop, ... while they fit; where the hop leaves the end of the video
unseen (and windows overlap or touch), one more window ends at the video's end. A video shorter than one window is one
window over the whole of it. Each window's clip is one clip of the model's frames, sampled inside the window the way
``ViewOptions.sampling`` says (``media.sampling.plan_window``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..media.sampling import plan_window
from ..presets import Preset
from .views import ViewOptions

# Where no preset says how long the model's training clips were: the span of the Kinetics recipe that TimeSformer
# fine-tunes usually start from, 32 frames at 30 fps per frame of the clip (8.5 s for 8 frames).
_KINETICS_SECONDS_PER_FRAME = 32 / 30
# Stride sampling counts frames at the model's target fps, and at this rate where it names none (as the Kinetics
# presets count), so that a window's length and its frames' spacing agree whatever the video's own rate.
STRIDE_FPS = 30.0


def default_window(preset: Preset | None, views: ViewOptions) -> float:
    """The clip the model sees, in seconds: with stride sampling its span (frames x stride / fps: the clip the
    Kinetics checkpoints were trained on), else the preset's training clips (``Preset.trained_clip_seconds``), else
    ``frames`` x 32 / 30 s."""
    if views.sampling == "stride":
        return views.frames * views.stride / (views.target_fps or STRIDE_FPS)
    trained = preset.trained_clip_seconds if preset is not None else None
    return trained if trained is not None else views.frames * _KINETICS_SECONDS_PER_FRAME


def place_windows(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """(start, end) of each window over a video of ``duration`` seconds, in order (see the module)."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive seconds, got {window:g} and {hop:g}")
    if duration <= window:
        return [(0.0, duration)]
    spans = []
    k = 0
    while k * hop + window <= duration + 1e-9:
        spans.append((k * hop, k * hop + window))
        k += 1
    if spans[-1][1] < duration - 1e-9 and hop <= window:
        spans.append((duration - window, duration))
    return spans


def duration_of(times: np.ndarray) -> float:
    """To the end of the last frame: its start plus the mean frame interval (0 for a single frame)."""
    last = float(times[-1])
    return last + (last / (len(times) - 1) if len(times) > 1 else 0.0)


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Every window of one video: its span, and the frames its clip takes with their times."""

    duration: float  # seconds, to the end of the last frame
    starts: np.ndarray  # (W,) seconds
    ends: np.ndarray  # (W,)
    indices: np.ndarray  # (W, T) int64 frame indices of each window's clip, in presentation order
    timestamps: np.ndarray  # (W, T) float64 seconds of those frames

    def __len__(self) -> int:
        return len(self.starts)

    def wanted(self) -> np.ndarray:
        """Every frame some window takes, each once, ascending: what one pass over the video decodes."""
        return np.unique(self.indices)

    def still_needed(self) -> np.ndarray:
        """(W,) the lowest frame index that window k or a later one takes: frames below it can go once k is due."""
        return np.minimum.accumulate(self.indices.min(axis=1)[::-1])[::-1]


def plan_windows(times: np.ndarray, window: float, hop: float, views: ViewOptions) -> WindowPlan:
    """The windows of a video whose frame i shows from ``times[i]`` seconds, each with ``views.frames`` frames."""
    duration = duration_of(times)
    spans = place_windows(duration, window, hop)
    indices = np.stack(
        [
            plan_window(times, start, end, views.frames, views.sampling, views.target_fps or STRIDE_FPS)
            for start, end in spans
        ]
    )
    starts, ends = (np.array(column, dtype=np.float64) for column in zip(*spans, strict=True))
    return WindowPlan(duration, starts, ends, indices, times[indices])
