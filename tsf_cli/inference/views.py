"""Path -> the model's views of one video, as uint8: decode the planned frames, resize and crop them.

``load_views`` is the one way every command turns a file into model input (classify, batch, embed, eval, training).
It is a plain function of picklable arguments, so it runs the same in this process or in a worker; its uint8 views
are what crosses the process boundary, a quarter of the bytes of the float pixel values they become on the model's
device (``Predictor.pixel_values``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..io.objects import is_uri, open_object
from ..media.decode import SampledVideo, sample_video
from ..media.limits import DecodeLimits
from ..media.preprocess import PreprocessConfig, crop_views
from ..media.sampling import SAMPLINGS
from ..results import ClipFrames


@dataclass(frozen=True)
class ViewOptions:
    """How one video becomes model input: which frames, and how many temporal clips and spatial crops. The field
    names are those of the command-line flags (``--frames``, ``--sampling``, ``--stride``, ...)."""

    frames: int
    sampling: str = "uniform"
    stride: int = 1  # frame step of stride sampling
    target_fps: float | None = None  # stride sampling counts frames at this rate (None: the video's own frames)
    clips: int = 1
    crops: int = 1
    start: float | None = None  # stride sampling: first window at this second (None: windows centred)
    stream: int | None = None

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1, got {self.stride}")
        if self.clips < 1:
            raise ValueError(f"clips must be at least 1, got {self.clips}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops}")
        if self.start is not None and self.start < 0:
            raise ValueError(f"start must be a time in seconds >= 0, got {self.start}")
        if self.sampling != "stride" and (self.stride != 1 or self.start is not None):
            raise ValueError(f"stride and start go with --sampling stride, not {self.sampling}")

    @property
    def views(self) -> int:
        return self.clips * self.crops


@dataclass(frozen=True)
class Augment:
    """Training-time changes that keep a clip's label: which frames, and which square of the picture."""

    min_crop_scale: float = 0.5  # smallest crop, as a fraction of the area of the picture's central square
    temporal_jitter: bool = True  # a random frame in each of the clip's equal segments, not the evenly spaced ones
    flip: bool = False  # mirror left-right half of the time: only where direction is not part of the label


@dataclass(frozen=True, eq=False)  # an ndarray field has no single truth value, so no == (and no hash)
class VideoViews:
    """Everything the model needs from one video: its views, and the frames they came from."""

    path: str
    pixels: np.ndarray  # (clips * crops, frames, height, width, 3) uint8, resized and cropped, not normalised
    clips: tuple[ClipFrames, ...]
    crops: int
    warnings: tuple[str, ...] = ()  # what the views cannot show (media.decode.SampledVideo.warnings)


def load_views(
    path: str,
    options: ViewOptions,
    preprocess_config: PreprocessConfig,
    limits: DecodeLimits = DecodeLimits(),
    augment: Augment | None = None,
    seed: int | None = None,
) -> VideoViews:
    """Decode one video and cut its views. With ``augment`` and a ``seed``, one randomly changed view for training
    (the seed draws the frames, the crop and the flip); otherwise the views inference takes."""
    if augment is not None and seed is not None:
        return _augmented(path, options, preprocess_config, limits, augment, np.random.default_rng(seed))
    sampled = decode_clips(path, options, limits)
    pixels = crop_views([clip.frames for clip in sampled.clips], preprocess_config, crops=options.crops)
    return VideoViews(path, pixels, _provenance(sampled.clips), options.crops, sampled.warnings)


def decode_clips(path: str, options: ViewOptions, limits: DecodeLimits = DecodeLimits()) -> SampledVideo:
    """The decoded clips whose views inference takes: what ``load_views`` cuts them from (and ``tsf explain``
    draws on). A path in an object store (``s3://...``) is read in ranged requests, not downloaded first."""
    if is_uri(path):
        with open_object(path) as file:
            return _sample(file, options, limits)
    return _sample(path, options, limits)


def _sample(source, options: ViewOptions, limits: DecodeLimits) -> SampledVideo:
    return sample_video(
        source,
        options.frames,
        options.sampling,
        clips=options.clips,
        frame_sample_rate=options.stride,
        target_fps=options.target_fps,
        start=options.start,
        stream=options.stream,
        limits=limits,
    )


def _augmented(path, options, preprocess_config, limits, augment, rng: np.random.Generator) -> VideoViews:
    sampled = sample_video(
        path,
        options.frames,
        options.sampling,
        frame_sample_rate=options.stride,
        target_fps=options.target_fps,
        seed=int(rng.integers(2**31)) if augment.temporal_jitter else None,
        stream=options.stream,
        limits=limits,
    )
    (clip,) = sampled.clips
    frames = clip.frames  # (T, H, W, 3) uint8
    height, width = frames.shape[1:3]
    side = round(min(height, width) * math.sqrt(rng.uniform(augment.min_crop_scale, 1.0)))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    frames = frames[:, top : top + side, left : left + side]  # (T, side, side, 3), resized by crop_views
    if augment.flip and rng.random() < 0.5:
        frames = frames[:, :, ::-1]
    pixels = crop_views([np.ascontiguousarray(frames)], preprocess_config)
    return VideoViews(path, pixels, _provenance([clip]), 1, sampled.warnings)


def _provenance(clips) -> tuple[ClipFrames, ...]:
    return tuple(ClipFrames(tuple(c.indices), tuple(c.timestamps), c.padded) for c in clips)
