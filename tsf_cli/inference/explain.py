"""``tsf explain``'s work on one video: the view ``tsf classify`` starts from, its patch relevances (``rollout``), and
those mapped back through the crop and the resize onto the frames as decoded, with each frame's share.

The view is the centre crop of the first temporal clip, sampled exactly as ``tsf classify`` samples it (with every
clip the views ask for, since uniform clips interleave and the first clip's frames depend on their number), and
preprocessed the same way: ``Predictor.pixel_values`` turns the same uint8 crop into the same pixel values.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..media.limits import DecodeLimits
from ..media.preprocess import PreprocessConfig, crop_boxes, crop_views
from ..results import Explanation, Prediction
from .rollout import relevance
from .views import ViewOptions, decode_clips

if TYPE_CHECKING:
    from .predictor import Predictor

LABELS_SHOWN = 12  # a model with at most this many labels lists them all when one is misspelt


def explain_video(
    predictor: Predictor,
    path: str,
    views: ViewOptions,
    *,
    method: str = "rollout",
    label: str | None = None,
    top_k: int = 5,
    limits: DecodeLimits = DecodeLimits(),
) -> Explanation:
    """Explain ``label`` (default: the view's top-1) for the video at ``path`` with ``method`` (``rollout`` or
    ``grad-rollout``), on the view that ``views`` make first. An unknown label is a UsageError that says where the
    labels are."""
    index = None if label is None else label_index(predictor, label)
    sampled = decode_clips(path, views, limits)
    clip = sampled.clips[0]
    config = predictor.preprocess_config
    crops = crop_views([clip.frames], config, crops=views.crops)  # (crops, T, h, w, 3) uint8
    centre = len(crops) // 2  # the only crop, or the middle one of 3
    tokens = relevance(predictor.model, predictor.pixel_values(crops[centre : centre + 1]), method, index)
    geometry = ViewGeometry.of(clip.frames.shape[1:3], config, views.crops, predictor.config.patch_size)
    probabilities = np.exp(tokens.logits - tokens.logits.max())
    probabilities /= probabilities.sum()
    top = np.argsort(-probabilities, kind="stable")[:top_k]
    return Explanation(
        path=path,
        method=method,
        label=predictor.labels[tokens.label_index],
        label_index=tokens.label_index,
        probability=float(probabilities[tokens.label_index]),
        heatmaps=geometry.heatmaps(tokens.patches),
        frame_importance=frame_importance(tokens.patches),
        frame_indices=np.array(clip.indices, dtype=np.int64),
        timestamps=np.array(clip.timestamps, dtype=np.float64),
        frames=clip.frames,
        token_relevance=tokens.patches.astype(np.float32),
        crop=geometry.crop,
        resized=geometry.resized,
        view=describe_view(views),
        predictions=tuple(Prediction(predictor.labels[i], int(i), float(probabilities[i])) for i in top),
        model=predictor.info,
        attention_type=predictor.config.attention_type,
        warnings=sampled.warnings,
    )


def label_index(predictor: Predictor, label: str) -> int:
    """The index of ``label`` among the model's labels; a UsageError that says where to find them if it has none."""
    labels = predictor.labels
    if label in labels:
        return labels.index(label)
    name = predictor.info.name
    message = f"{name} has no label {label!r}"
    close = difflib.get_close_matches(label, labels, n=3)
    if close:
        message += f" (did you mean {', '.join(repr(c) for c in close)}?)"
    if len(labels) <= LABELS_SHOWN:
        message += f"; its labels are {', '.join(labels)}"
    else:
        message += (
            f"; its {len(labels)} labels are the id2label of its config.json, and "
            f"`tsf classify VIDEO --model {name} --top-k {len(labels)}` lists them all"
        )
    raise UsageError(message)


def describe_view(views: ViewOptions) -> str:
    """Which view is explained, in words, and how it relates to what ``tsf classify`` averages."""
    crop = "the crop" if views.crops == 1 else f"the centre crop of {views.crops}"
    if views.views == 1:
        return f"{crop} of the clip, the one view tsf classify uses"
    clip = "the clip" if views.clips == 1 else f"the first of {views.clips} clips"
    return f"{crop} of {clip}: one of the {views.views} views tsf classify averages"


def frame_importance(patches: np.ndarray) -> np.ndarray:
    """(T, ...) patch relevances -> (T,) float32 summing to 1: each frame's share of the total (uniform if none)."""
    totals = patches.reshape(len(patches), -1).sum(axis=1, dtype=np.float64)
    total = totals.sum()
    return (totals / total if total > 0 else np.full(len(totals), 1 / len(totals))).astype(np.float32)


@dataclass(frozen=True)
class ViewGeometry:
    """How the explained view was cut from the decoded frames."""

    original: tuple[int, int]  # (height, width) of the decoded frames
    resized: tuple[int, int]  # (height, width) after the resize
    crop: tuple[int, int, int, int]  # (top, left, height, width) in the resized frame; may leave it (zero padding)
    patch_size: int

    @classmethod
    def of(cls, frame_size: tuple[int, int], config: PreprocessConfig, crops: int, patch_size: int) -> ViewGeometry:
        """The centre crop (the only one, or the middle of 3) of frames of ``frame_size``, as ``crop_views`` cuts it."""
        resized = config.resized_size(*frame_size)
        boxes = crop_boxes(*resized, config, crops)
        return cls(tuple(frame_size), tuple(resized), boxes[len(boxes) // 2], patch_size)

    def heatmaps(self, patches: np.ndarray) -> np.ndarray:
        """(T, grid_h, grid_w) patch relevances -> (T, H, W) float32 over the decoded frames, each frame summing to 1
        (uniform over the crop where a frame has no relevance at all). Values are interpolated bilinearly between the
        patch centres, held constant beyond the outer ones, and zero outside the crop.

        Separable and linear: heat_t = Wy·R_t·Wxᵀ, with Wy (H, grid_h) and Wx (W, grid_w), so a frame costs two small
        products and no full-size temporaries (16 frames of 720p: the 59 MB of the result, nothing more)."""
        frames, grid_h, grid_w = patches.shape
        (height, width), (resized_h, resized_w) = self.original, self.resized
        top, left = self.crop[:2]
        wy = _axis_weights(height, resized_h, top, grid_h, self.patch_size)  # (H, grid_h)
        wx = _axis_weights(width, resized_w, left, grid_w, self.patch_size)  # (W, grid_w)
        reach_y, reach_x = wy.sum(axis=0), wx.sum(axis=0)  # how much of each patch row / column reaches the frame
        out = np.empty((frames, height, width), dtype=np.float32)
        for t in range(frames):
            r = np.clip(patches[t], 0, None)
            total = reach_y @ r @ reach_x  # the frame's sum, were it mapped as it is
            if not total > 0:
                r = np.ones_like(r)
                total = reach_y @ r @ reach_x
            out[t] = (wy @ (r / total)).astype(np.float32) @ wx.T.astype(np.float32)
        return out / out.sum(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)  # to 1 in float32 too


def _axis_weights(size: int, resized: int, offset: int, cells: int, cell: int) -> np.ndarray:
    """(size, cells): the weights of the patch centres along one axis for each pixel of the decoded frame. A pixel's
    centre goes through the resize (Pillow's convention: centres scale) and the crop; between two patch centres it
    takes both linearly, beyond the outer ones the outer one; outside the crop it takes nothing."""
    centre = (np.arange(size) + 0.5) * resized / size - offset  # in the crop's pixels
    grid = np.clip(centre / cell - 0.5, 0, cells - 1)  # in patches, 0 at the first patch's centre
    low = np.floor(grid).astype(np.int64)
    high = np.minimum(low + 1, cells - 1)
    weights = np.zeros((size, cells), dtype=np.float64)
    rows = np.arange(size)
    np.add.at(weights, (rows, low), 1 - (grid - low))
    np.add.at(weights, (rows, high), grid - low)
    weights[(centre < 0) | (centre >= cells * cell)] = 0
    return weights
