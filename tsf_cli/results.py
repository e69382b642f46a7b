"""Typed results that flow from the API to the writers: frozen dataclasses, no torch inside.

``to_dict()`` gives the JSON-ready form that every writer shares, so the JSON, JSONL and CSV outputs agree field for
field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# How a video's final-norm tokens become one vector (``VideoEmbedding.pool``): the class token, or the mean of the
# patch tokens. Here rather than beside the network, so that choosing one never imports torch.
POOLS = ("cls", "mean")


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
            "path": self.path,
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
        return {"path": self.path, "status": self.status, "error": self.error, "message": self.message}


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
            "path": self.path,
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
