"""Frames to the model's pixel_values, exactly as the checkpoint's preprocessor_config.json asks.

The checkpoints were published with transformers' ``VideoMAEImageProcessor``; its PIL path is the reference, and
``preprocess`` reproduces it pixel for pixel: resize (shortest edge, with its truncating size arithmetic) with
Pillow's filter, centre crop (zero padding where the image is smaller), rescale by ``rescale_factor`` in float64
then float32, and normalise with the checkpoint's own ``image_mean`` / ``image_std`` in float32.

It is faster than the reference because it crops before any float conversion and turns rescale plus normalise
into a 256-entry table per channel (the output depends on one uint8 value only), which gives bit-identical floats.
The two halves are apart: ``crop_views`` gives uint8 views (what crosses process boundaries, a quarter of the bytes
of floats), ``normalize`` looks them up in the table on the model's device.

Resizing uses Pillow (the exact path, the default). ``backend="torch"`` uses torch's uint8 antialiasing kernel
instead: faster and multi-threaded, but its 16-bit filter weights (Pillow's are 22-bit) put a small share of values
one 1/255 step from Pillow's; tests/test_preprocess.py bounds that share and its effect on a TimeSformer's logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError

if TYPE_CHECKING:
    import torch

# Pillow's filter codes, as preprocessor_config.json stores them in "resample".
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_TORCH_MODES = {2: "bilinear", 3: "bicubic"}  # the filters torch's antialiasing kernels implement
BACKENDS = ("pil", "torch")


@dataclass(frozen=True)
class PreprocessConfig:
    """A preprocessor_config.json, read with VideoMAEImageProcessor's meaning and its defaults for absent keys.

    Exactly one of ``shortest_edge`` (aspect kept; ``longest_edge`` caps the other side) and ``size`` (height,
    width, aspect ignored) says how to resize.
    """

    shortest_edge: int | None = 224
    longest_edge: int | None = None
    size: tuple[int, int] | None = None
    crop_size: tuple[int, int] = (224, 224)  # (height, width)
    # The class defaults are ImageNet's "standard" 0.5 / 0.5; the TimeSformer checkpoints use 0.45 / 0.225, so the
    # checkpoint's file decides and these apply only where it is silent.
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    do_resize: bool = True
    do_center_crop: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    resample: int = 2  # Pillow's code: 2 is bilinear

    def __post_init__(self):
        if (self.shortest_edge is None) == (self.size is None):
            raise CheckpointError("preprocessor config: give exactly one of size.shortest_edge and size.height/width")
        if self.longest_edge is not None and self.shortest_edge is None:
            raise CheckpointError("preprocessor config: size.longest_edge needs size.shortest_edge")
        sizes = [self.shortest_edge, self.longest_edge, *(self.size or ()), *self.crop_size]
        if any(s is not None and (not isinstance(s, int) or s < 1) for s in sizes):
            raise CheckpointError(f"preprocessor config: sizes must be positive integers, got {sizes}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or any(s == 0 for s in self.image_std):
            raise CheckpointError("preprocessor config: image_mean and image_std need 3 values, std non-zero")
        if self.resample not in RESAMPLE_NAMES:
            raise CheckpointError(f"preprocessor config: unknown resample filter {self.resample}")

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        """Read a preprocessor_config.json dict; absent keys take VideoMAEImageProcessor's defaults."""
        fields = {}
        if "size" in d:
            fields.update(_parse_size(d["size"]))
        if "crop_size" in d:
            fields["crop_size"] = _parse_crop_size(d["crop_size"])
        for key in ("image_mean", "image_std"):
            if key in d:
                value = d[key]
                fields[key] = (
                    tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * 3
                )
        for key in ("do_resize", "do_center_crop", "do_rescale", "do_normalize"):
            if key in d:
                fields[key] = bool(d[key])
        if "rescale_factor" in d:
            fields["rescale_factor"] = float(d["rescale_factor"])
        if "resample" in d:
            fields["resample"] = int(d["resample"])
        return cls(**fields)

    def to_dict(self) -> dict:
        """The preprocessor_config.json that transformers reads back as this same preprocessing."""
        if self.size is not None:
            size = {"height": self.size[0], "width": self.size[1]}
        else:
            size = {"shortest_edge": self.shortest_edge}
            if self.longest_edge is not None:
                size["longest_edge"] = self.longest_edge
        return {
            "image_processor_type": "VideoMAEImageProcessor",
            "do_resize": self.do_resize,
            "size": size,
            "resample": self.resample,
            "do_center_crop": self.do_center_crop,
            "crop_size": {"height": self.crop_size[0], "width": self.crop_size[1]},
            "do_rescale": self.do_rescale,
            "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize, with transformers' arithmetic (int() truncation, not rounding)."""
        if not self.do_resize:
            return height, width
        if self.size is not None:
            return self.size
        if self.longest_edge is not None:
            return _size_with_aspect_ratio(height, width, self.shortest_edge, self.longest_edge)
        # transformers' get_resize_output_image_size(default_to_square=False)
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)


def _parse_size(size) -> dict:
    if isinstance(size, int):  # old files: an int is the shortest edge for this processor
        return {"shortest_edge": size}
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"shortest_edge": None, "size": (int(size[0]), int(size[1]))}
    if isinstance(size, dict):
        if "shortest_edge" in size and set(size) <= {"shortest_edge", "longest_edge"}:
            return {"shortest_edge": int(size["shortest_edge"]), "longest_edge": size.get("longest_edge")}
        if set(size) == {"height", "width"}:
            return {"shortest_edge": None, "size": (int(size["height"]), int(size["width"]))}
    raise CheckpointError(f"preprocessor config: unsupported size {size!r}")


def _parse_crop_size(crop) -> tuple[int, int]:
    if isinstance(crop, int):
        return crop, crop
    if isinstance(crop, (list, tuple)) and len(crop) == 2:
        return int(crop[0]), int(crop[1])
    if isinstance(crop, dict) and set(crop) == {"height", "width"}:
        return int(crop["height"]), int(crop["width"])
    raise CheckpointError(f"preprocessor config: unsupported crop_size {crop!r}")


def _size_with_aspect_ratio(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
    """transformers' get_size_with_aspect_ratio: shortest edge ``size`` unless the long edge would pass max_size."""
    raw_size = None
    small, large = float(min(height, width)), float(max(height, width))
    if large / small * size > max_size:
        raw_size = max_size * small / large
        size = int(round(raw_size))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return (int(raw_size * height / width) if raw_size is not None else int(size * height / width)), size
    return size, (int(raw_size * width / height) if raw_size is not None else int(size * width / height))


def crop_views(
    clips: Sequence[np.ndarray], config: PreprocessConfig, *, crops: int = 1, backend: str = "pil"
) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB clips -> the model's views, still uint8: (len(clips) * crops, T, h, w, 3), resized and
    cropped. ``normalize`` turns them into pixel_values on whichever device runs the model.

    ``crops=3`` takes, from each resized clip, the crop at each end of the long side and the centre one (in that
    order: left or top, centre, right or bottom), as TimeSformer's test protocol does; views are clip-major.
    ``backend``: "pil" (exact, the default) or "torch" (faster, see the module notes).
    """
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    if crops == 3 and not config.do_center_crop:
        raise ValueError("3 crops need the config's crop_size, but do_center_crop is off")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    views = []
    for frames in clips:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"each clip must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        resized = _resize(frames, config, backend)  # (T, h, w, 3) uint8
        for top, left, height, width in crop_boxes(*resized.shape[1:3], config, crops):
            views.append(_crop(resized, top, left, height, width))  # (T, crop h, crop w, 3) uint8, often a view
    if len({v.shape for v in views}) > 1:
        raise ValueError("clips of different sizes give views of different sizes; turn do_center_crop on")
    return np.stack(views)


def value_table(config: PreprocessConfig) -> np.ndarray:
    """(3, 256) float32: channel c's pixel value for uint8 value v, computed with the reference's own numpy operations
    (float64 rescale cast to float32, then float32 normalisation), so that every output value is bit-exact. As the
    output depends on one uint8 value only, rescale plus normalise is one lookup in this table."""
    values = np.arange(256, dtype=np.uint8)
    scaled = (values.astype(np.float64) * config.rescale_factor).astype(np.float32) if config.do_rescale else values
    table = np.empty((3, 256), dtype=np.float32)
    for c in range(3):
        if config.do_normalize:
            mean, std = np.float32(config.image_mean[c]), np.float32(config.image_std[c])
            table[c] = (scaled.astype(np.float32) - mean) / std
        else:
            table[c] = scaled
    return table


def normalize(pixels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 views (..., h, w, 3) -> pixel_values (..., 3, h, w) float32 on the same device, through ``table``
    (``value_table``'s, on that device): the same floats as the reference, from a quarter of the bytes."""
    import torch

    index = pixels.movedim(-1, -3).to(torch.int64)  # (..., 3, h, w)
    index += torch.arange(0, 3 * 256, 256, device=pixels.device).view(3, 1, 1)  # channel c reads row c
    return table.flatten().take(index)


def normalize_array(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``normalize`` in numpy, for a runtime that never imports torch: uint8 views (..., h, w, 3) -> pixel_values
    (..., 3, h, w) float32, the same floats bit for bit (both only look values up in ``table``)."""
    out = np.empty((*pixels.shape[:-3], 3, *pixels.shape[-3:-1]), dtype=table.dtype)
    for c in range(3):
        # uint8 values are always valid indices, so "clip" never clips; it spares numpy's bounds-checking buffer
        np.take(table[c], pixels[..., c], out=out[..., c, :, :], mode="clip")
    return out


def preprocess(
    clips: Sequence[np.ndarray], config: PreprocessConfig, *, crops: int = 1, backend: str = "pil"
) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB clips -> pixel_values (len(clips) * crops, T, 3, h, w) float32, as the reference
    processor gives them: ``crop_views`` then ``normalize``, on the CPU."""
    import torch

    views = crop_views(clips, config, crops=crops, backend=backend)
    return normalize(torch.from_numpy(views), torch.from_numpy(value_table(config)))


def _resize(frames: np.ndarray, config: PreprocessConfig, backend: str) -> np.ndarray:
    """(T, H, W, 3) -> (T, h, w, 3) uint8."""
    height, width = frames.shape[1:3]
    new_height, new_width = config.resized_size(height, width)
    if (new_height, new_width) == (height, width):
        return frames  # Pillow's resize to the same size is a copy
    if backend == "pil":
        from PIL import Image

        size = (new_width, new_height)
        return np.stack(
            [np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize(size, config.resample)) for f in frames]
        )
    import torch

    mode = _TORCH_MODES.get(config.resample)
    if mode is None:
        raise ValueError(f"the torch backend has no {RESAMPLE_NAMES[config.resample]} filter; use backend='pil'")
    channels_first = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # channels-last memory
    resized = torch.nn.functional.interpolate(
        channels_first, size=(new_height, new_width), mode=mode, antialias=True, align_corners=False
    )
    return resized.permute(0, 2, 3, 1).numpy()


def crop_boxes(height: int, width: int, config: PreprocessConfig, crops: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each crop of a resized (height, width) frame, in ``crop_views``' order; floor
    division centres it as transformers' center_crop does. A box may leave the frame (``crop_views`` pads with
    zeros)."""
    if not config.do_center_crop:
        return [(0, 0, height, width)]
    crop_height, crop_width = config.crop_size
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    if crops == 1:
        return [(top, left, crop_height, crop_width)]
    if height > width:
        return [(t, left, crop_height, crop_width) for t in (0, top, height - crop_height)]
    return [(top, x, crop_height, crop_width) for x in (0, left, width - crop_width)]


def _crop(x: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """x[:, top:top + height, left:left + width], zero-padded where the box leaves the image (as transformers)."""
    full_height, full_width = x.shape[1:3]
    if top >= 0 and left >= 0 and top + height <= full_height and left + width <= full_width:
        return x[:, top : top + height, left : left + width]
    out = np.zeros((x.shape[0], height, width, x.shape[3]), dtype=x.dtype)
    y0, y1 = max(top, 0), min(top + height, full_height)
    x0, x1 = max(left, 0), min(left + width, full_width)
    out[:, y0 - top : y1 - top, x0 - left : x1 - left] = x[:, y0:y1, x0:x1]
    return out
