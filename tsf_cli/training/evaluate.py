"""How good a model is on a labelled set: ``evaluate`` classifies every video on the inference runner, then scores
top-1, top-5, per class, and the confusion matrix."""

from __future__ import annotations

import csv as csv_module
import io
import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import numpy as np

from ..errors import DatasetError
from ..inference.runner import Observer, as_predictor, run
from ..io.atomic import atomic_file, check_writable, reporting
from ..media.limits import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT_S
from ..presets import DEFAULT_MODEL
from ..results import ModelInfo, VideoFailure
from .data import list_labelled_videos

if TYPE_CHECKING:
    from ..inference.predictor import BasePredictor


@dataclass(frozen=True)
class ClassAccuracy:
    label: str
    count: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        """None for a label none of whose videos could be scored (JSON's null: NaN is not JSON)."""
        return self.correct / self.count if self.count else None


@dataclass(frozen=True)
class EvalResult:
    """Accuracy of a model on a labelled set. ``confusion[i][j]`` counts videos of ``labels[i]`` predicted as
    ``columns[j]``; ``columns`` is ``labels`` plus ``"(other)"`` when the model predicted a label outside them."""

    model: ModelInfo
    count: int  # videos that decoded and were scored
    top1: float
    top5: float  # top-k with k = min(5, the model's number of labels)
    labels: tuple[str, ...]
    columns: tuple[str, ...]
    per_class: tuple[ClassAccuracy, ...]
    confusion: tuple[tuple[int, ...], ...]
    failures: tuple[VideoFailure, ...]

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "count": self.count,
            "top1": self.top1,
            "top5": self.top5,
            "per_class": [{"label": c.label, "count": c.count, "accuracy": c.accuracy} for c in self.per_class],
            "confusion": {"rows": list(self.labels), "columns": list(self.columns), "counts": self.confusion},
            "failures": [f.to_dict() for f in self.failures],
        }


def evaluate(
    data_dir: str | os.PathLike,
    *,
    model: str | BasePredictor = DEFAULT_MODEL,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    runtime: str = "torch",
    batch_size: int = 8,
    workers: int = 2,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_memory: int = DEFAULT_MAX_MEMORY,
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    csv: str | os.PathLike | None = None,
    strict: bool = False,
    observer: Observer | None = None,
) -> EvalResult:
    """Top-1 and top-5 accuracy, per-class accuracy and the confusion matrix of ``model`` on ``data_dir``.

    Each video is classified as ``tsf classify`` would (the model's preset views, with the same overrides), on the
    same runner (with PyTorch or, ``runtime="onnx"``, ONNX Runtime), so a video that crashes or hangs its decoder
    fails alone. Every label of the set must be one of the model's; videos that fail are listed in ``failures`` and
    left out of the figures. ``csv`` also writes the confusion matrix there (atomically; its folder is checked before
    any video is decoded).
    """
    videos = list_labelled_videos(data_dir)
    if csv is not None:
        check_writable(csv)
    observer = observer or Observer()
    predictor = as_predictor(model, observer, runtime=runtime, revision=revision, device=device, dtype=dtype)
    views = predictor.view_options(frames=frames, sampling=sampling, stride=stride, clips=clips, crops=crops)
    with observer.loading(predictor.info.name):
        predictor.ready(views)  # the onnx runtime's first run exports its graph here
    model_ids = {label: i for i, label in enumerate(predictor.labels)}
    labels = tuple(sorted({v.label for v in videos}))
    unknown = [label for label in labels if label not in model_ids]
    if unknown:
        raise DatasetError(f"{data_dir}: labels the model does not know: {', '.join(unknown)}")

    paths = list(dict.fromkeys(v.path for v in videos))
    k = min(5, len(predictor.labels))
    records = {}
    observer.started(len(paths), len(paths))
    options = {
        "top_k": k,
        "batch_size": batch_size,
        "workers": workers,
        "timeout": timeout,
        "strict": strict,
        "max_memory": max_memory,
    }
    for record in run(predictor, paths, views, **options):
        records[record.path] = record
        observer.finished(record)
    failures = tuple(records[p] for p in paths if isinstance(records[p], VideoFailure))
    scored = [(v, records[v.path]) for v in videos if not isinstance(records[v.path], VideoFailure)]
    if not scored:
        first = failures[0].message
        raise DatasetError(f"none of the {len(paths)} videos could be decoded; the first failure: {first}")
    truth = np.array([model_ids[v.label] for v, _ in scored], dtype=np.int64)
    top = np.array([[p.index for p in r.predictions] for _, r in scored], dtype=np.int64).reshape(len(scored), k)
    predicted = top[:, 0]

    row_of = {model_ids[label]: i for i, label in enumerate(labels)}
    other = any(p not in row_of for p in predicted.tolist())
    columns = labels + (("(other)",) if other else ())
    confusion = np.zeros((len(labels), len(columns)), dtype=np.int64)
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        confusion[row_of[t], row_of.get(p, len(labels))] += 1
    per_class = tuple(
        ClassAccuracy(label, int(confusion[i].sum()), int(confusion[i, i])) for i, label in enumerate(labels)
    )
    result = EvalResult(
        model=predictor.info,
        count=len(truth),
        top1=float((predicted == truth).mean()),
        top5=float((top == truth[:, None]).any(1).mean()),
        labels=labels,
        columns=columns,
        per_class=per_class,
        confusion=tuple(tuple(int(c) for c in row) for row in confusion),
        failures=failures,
    )
    if csv is not None:
        with reporting(csv), atomic_file(csv) as file:
            text = io.StringIO(newline="")
            write_confusion_csv(result, text)
            file.write(text.getvalue().encode("utf-8"))
    return result


def write_confusion_csv(result: EvalResult, file: IO[str]) -> None:
    """The confusion matrix as CSV: a header of predicted labels, then one row per true label."""
    writer = csv_module.writer(file)
    writer.writerow(["true \\ predicted", *result.columns])
    for label, row in zip(result.labels, result.confusion, strict=True):
        writer.writerow([label, *row])
