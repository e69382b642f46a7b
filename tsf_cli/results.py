"""Typed results that flow from the API to the writers: frozen dataclasses, no torch inside.

``to_dict()`` gives the JSON-ready form that every writer shares, so the JSON, JSONL and CSV outputs agree field for
field. Every output is valid UTF-8 whatever the file names (``path_fields``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np

# How a video's final-norm tokens become one vector (``VideoEmbedding.pool``): the class token, or the mean of the
# patch tokens. Here rather than beside the network, so that choosing one never imports torch.
POOLS = ("cls", "mean")


def path_fields(path: str) -> dict[str, str]:
    """A file path as every strict UTF-8 reader (jq, serde_json, pyarrow, safetensors) can take it.

    ``path`` is always valid Unicode. A POSIX name that is not UTF-8 reaches Python with lone surrogates (os.fsdecode's
    surrogateescape), which no UTF-8 output can hold, raw or escaped: then ``path`` shows each undecodable byte as
    U+FFFD, for people, and ``path_bytes`` holds the name's exact bytes in base64, for programs and ``--resume``.
    """
    try:
        path.encode("utf-8")
        return {"path": path}
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape")
        return {"path": raw.decode("utf-8", "replace"), "path_bytes": base64.b64encode(raw).decode("ascii")}


def path_from_fields(fields: dict) -> str:
    """The path ``path_fields`` was given, as os.fsdecode gives it, so that a record matches the file it is about."""
    if fields.get("path_bytes"):
        return base64.b64decode(fields["path_bytes"]).decode("utf-8", "surrogateescape")
    return fields["path"]


def readable(text: str) -> str:
    """Free text that may quote a path (an error message) with each undecodable byte of a name shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class Prediction:
    """One label with its probability (averaged over the views when there are several)."""

    label: str
    index: int
    probability: float

    def to_dict(self) -> dict:
        return {"label": self.label, "index": self.index, "probability": self.probability}


@dataclass(frozen=True)
class ModelInfo:
    """Which weights produced a result: what the user asked for, where it resolved, and the exact revision."""

    name: str
    source: str
    revision: str | None
    dtype: str
    device: str
    runtime: str = "torch"  # what ran the model: "torch" (PyTorch) or "onnx" (ONNX Runtime)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "runtime": self.runtime,
        }


@dataclass(frozen=True)
class ClipFrames:
    """The frames one temporal view was built from."""

    indices: tuple[int, ...]
    timestamps: tuple[float, ...]
    padded: int = 0

    def to_dict(self) -> dict:
        timestamps = [round(t, 6) for t in self.timestamps]
        return {"indices": list(self.indices), "timestamps": timestamps, "padded": self.padded}


@dataclass(frozen=True)
class VideoResult:
    """The top-k labels of one video."""

    path: str
    predictions: tuple[Prediction, ...]
    clips: tuple[ClipFrames, ...]
    crops: int
    model: ModelInfo
    warnings: tuple[str, ...] = ()  # what the label cannot be trusted for (padded clips, a still picture, ...)
    status: str = field(default="ok", init=False)

    def to_dict(self) -> dict:
        return {
            **path_fields(self.path),
            "status": self.status,
            "warnings": list(self.warnings),
            "model": self.model.to_dict(),
            "clips": [c.to_dict() for c in self.clips],
            "crops": self.crops,
            "predictions": [p.to_dict() for p in self.predictions],
        }


@dataclass(frozen=True)
class VideoFailure:
    """A video that could not be processed: its error type and the one-line message."""

    path: str
    error: str
    message: str
    status: str = field(default="error", init=False)

    def to_dict(self) -> dict:
        return {**path_fields(self.path), "status": self.status, "error": self.error, "message": readable(self.message)}


@dataclass(frozen=True, eq=False)  # an ndarray field has no single truth value, so no == (and no hash)
class VideoEmbedding:
    """One vector per video, with what is needed to trace it back to its frames and weights."""

    path: str
    vector: np.ndarray  # (hidden_size,) float32
    pool: str  # "cls" or "mean"
    clips: tuple[ClipFrames, ...]
    model: ModelInfo
    warnings: tuple[str, ...] = ()
    status: str = field(default="ok", init=False)

    def to_dict(self) -> dict:
        return {
            **path_fields(self.path),
            "status": self.status,
            "warnings": list(self.warnings),
            "pool": self.pool,
            "model": self.model.to_dict(),
            "clips": [c.to_dict() for c in self.clips],
            "vector": self.vector.astype(np.float32).tolist(),
        }


@dataclass(frozen=True)
class BatchSummary:
    """What a resumable run (``tsf batch``, ``tsf embed``) did with its inputs: ``skipped`` were recorded by an earlier
    run, ``failed_before`` of them as failures; ``failed`` failed in this one."""

    output: str
    total: int
    skipped: int
    failed: int
    failed_before: int

    @property
    def ok(self) -> int:
        return self.total - self.skipped - self.failed


UNCERTAIN = "uncertain"  # how an uncertain segment (label None) reads where text is needed


@dataclass(frozen=True)
class Segment:
    """A stretch of a video with one label: consecutive windows that the segment rule gave the same decision.
    ``label`` None means uncertain (the windows' top probability fell below the run's ``min_probability``)."""

    label: str | None
    start: float  # seconds
    end: float
    confidence: float  # the mean over its windows of the label's probability (uncertain: of their top-1's)

    @property
    def uncertain(self) -> bool:
        return self.label is None

    @property
    def text(self) -> str:
        """The label, or the word ``uncertain``, for where text is needed."""
        return UNCERTAIN if self.label is None else self.label

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "uncertain": self.uncertain,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class TimelineWindow:
    """What the model saw in one window of a timeline, what it said, and what the segment rule decided there."""

    start: float  # seconds
    end: float
    frames: ClipFrames
    predictions: tuple[Prediction, ...]  # the top-k, averaged over the crops
    label: str | None  # the segment rule's decision, after smoothing; None: uncertain
    probability: float  # this window's probability of ``label`` (of its top-1 when uncertain)

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "indices": list(self.frames.indices),
            "timestamps": [round(t, 6) for t in self.frames.timestamps],
            "predictions": [p.to_dict() for p in self.predictions],
            "label": self.label,
            "uncertain": self.label is None,
            "probability": self.probability,
        }


@dataclass(frozen=True)
class Timeline:
    """Labels along one video: windows of ``window`` seconds every ``hop`` seconds, each classified, and the segments
    the segment rule made of them, which tile [0, ``duration``] without gap or overlap. ``windows`` is None where
    a record keeps the segments only (``tsf batch --timeline`` without ``--windows``)."""

    path: str
    duration: float  # seconds, to the end of the last frame
    window: float
    hop: float
    min_probability: float
    smooth: int
    top_k: int
    crops: int
    segments: tuple[Segment, ...]
    windows: tuple[TimelineWindow, ...] | None
    model: ModelInfo
    warnings: tuple[str, ...] = ()  # what the file or its decoding showed missing or damaged
    status: str = field(default="ok", init=False)

    @property
    def labels(self) -> tuple[str, ...]:
        """The segments' labels, each once, in order of first appearance."""
        return tuple(dict.fromkeys(s.label for s in self.segments if s.label is not None))

    @property
    def settings(self) -> dict:
        """How the timeline was made, apart from the model: where the windows went and how they became segments."""
        return {
            "window": self.window,
            "hop": self.hop,
            "min_probability": self.min_probability,
            "smooth": self.smooth,
            "top_k": self.top_k,
            "crops": self.crops,
        }

    def to_dict(self) -> dict:
        document = {
            "path": self.path,
            "status": self.status,
            "model": self.model.to_dict(),
            "duration": round(self.duration, 6),
            "settings": self.settings,
            "labels": list(self.labels),
            "segments": [s.to_dict() for s in self.segments],
            "warnings": list(self.warnings),
        }
        if self.windows is not None:
            document["windows"] = [w.to_dict() for w in self.windows]
        return document


@dataclass(frozen=True, eq=False)  # ndarray fields have no single truth value, so no == (and no hash)
class Explanation:
    """Where and when the model looked for one label (``tsf explain``): a heatmap over each sampled frame of the
    video as decoded (not the model's normalised crop), and each frame's share of the relevance.

    One view is explained: the centre crop of the first temporal clip, which ``view`` says in words. ``predictions``
    are that view's own top-k, which may differ from ``tsf classify``'s average over several views.
    """

    path: str
    method: str  # "rollout" or "grad-rollout"
    label: str  # the label explained
    label_index: int
    probability: float  # the explained view's probability of that label
    heatmaps: np.ndarray  # (T, H, W) float32 at the decoded frames' resolution, each frame summing to 1
    frame_importance: np.ndarray  # (T,) float32 summing to 1: each frame's share of the relevance
    frame_indices: np.ndarray  # (T,) int64, frame numbers in the video
    timestamps: np.ndarray  # (T,) float64, seconds from the first frame
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB: the decoded frames the view was cut from
    token_relevance: np.ndarray  # (T, grid_h, grid_w) float32: the relevance of each patch, before mapping to pixels
    crop: tuple[int, int, int, int]  # (top, left, height, width) of the view in the resized frame
    resized: tuple[int, int]  # (height, width) of the frame after the resize, before the crop
    view: str  # which view was explained, in words
    predictions: tuple[Prediction, ...]  # the explained view's top-k
    model: ModelInfo
    attention_type: str
    warnings: tuple[str, ...] = ()  # what the frames cannot show (padded clips, a still picture)


def record_from_dict(record: dict) -> VideoResult | VideoEmbedding | VideoFailure:
    """The result whose ``to_dict()`` is ``record``: what a record is after a trip through JSON (from another process
    or machine), back as the object every writer takes."""
    if record["status"] == "error":
        return VideoFailure(record["path"], record["error"], record["message"])
    clips = tuple(ClipFrames(tuple(c["indices"]), tuple(c["timestamps"]), c["padded"]) for c in record["clips"])
    model, warnings = ModelInfo(**record["model"]), tuple(record["warnings"])
    if "vector" in record:
        vector = np.asarray(record["vector"], dtype=np.float32)
        return VideoEmbedding(record["path"], vector, record["pool"], clips, model, warnings)
    predictions = tuple(Prediction(p["label"], p["index"], p["probability"]) for p in record["predictions"])
    return VideoResult(record["path"], predictions, clips, record["crops"], model, warnings)
