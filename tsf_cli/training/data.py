"""Labelled sets and how their videos reach a training step.

A labelled set is a folder with one subfolder of videos per class (the subfolder's name is the label), or a CSV file
of ``path,label`` rows whose paths are relative to the CSV's folder. Only files with a video suffix count, so notes and
annotations may sit beside the videos. Training reads them through a DataLoader whose workers (started with spawn)
decode with ``load_views``, the function inference uses, augmenting as each item's seed says.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DatasetError, VideoError
from ..inference.views import Augment, ViewOptions, load_views
from ..media.limits import DecodeLimits
from ..results import VideoFailure

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv", ".gif"}
)


@dataclass(frozen=True)
class LabelledVideo:
    path: str
    label: str


def list_labelled_videos(source: str | os.PathLike) -> tuple[LabelledVideo, ...]:
    """The videos of a class-per-subfolder folder or a ``path,label`` CSV, in a stable order."""
    source = Path(source)
    if source.is_dir():
        found = []
        for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(folder.rglob("*")):
                hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
                if path.is_file() and not hidden and path.suffix.lower() in VIDEO_SUFFIXES:
                    found.append(LabelledVideo(str(path), folder.name))
        if not found:
            raise DatasetError(f"{source}: no videos found in class subfolders (expected DIR/<label>/<video>)")
        return tuple(found)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _read_csv(source)
    raise DatasetError(f"{source}: not a folder of class subfolders nor a .csv of path,label rows")


def _read_csv(source: Path) -> tuple[LabelledVideo, ...]:
    found = []
    try:
        with source.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: not UTF-8 text (byte {exc.start}); save the list as UTF-8") from None
    for line, row in enumerate(rows, start=1):
        if not row or row[0].startswith("#") or (line == 1 and [c.strip() for c in row] == ["path", "label"]):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DatasetError(f"{source}:{line}: expected 'path,label', got {','.join(row)!r}")
        found.append(LabelledVideo(str(source.parent / row[0].strip()), row[1].strip()))
    if not found:
        raise DatasetError(f"{source}: no path,label rows")
    return tuple(found)


def split_held_out(
    videos: Sequence[LabelledVideo], fraction: float, seed: int
) -> tuple[tuple[LabelledVideo, ...], tuple[LabelledVideo, ...]]:
    """Hold out ``fraction`` of each class (at least one video of any class that has two), drawn with ``seed``."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    kept, held = [], []
    rng = np.random.default_rng(seed)
    for label in sorted({v.label for v in videos}):
        members = [v for v in videos if v.label == label]
        count = (
            0 if fraction == 0 or len(members) < 2 else min(max(round(len(members) * fraction), 1), len(members) - 1)
        )
        chosen = set(rng.permutation(len(members))[:count].tolist())
        for i, video in enumerate(members):
            (held if i in chosen else kept).append(video)
    return tuple(kept), tuple(held)


@dataclass(frozen=True)
class _Item:
    index: int
    pixels: torch.Tensor | None  # (views, frames, height, width, 3) uint8, None when the video failed
    error: VideoFailure | None = None


class VideoDataset(Dataset):
    """Decodes one video per item into uint8 views, in whichever process asks for it (picklable, spawn-safe).

    Items are ``(index, seed)`` pairs from ``EpochSampler``: with a seed the clip is augmented as that seed says, so
    an epoch's data does not depend on how many workers share it; with ``None`` it is the evaluation view, the same
    one ``tsf classify`` would take.
    """

    def __init__(
        self,
        paths: Sequence[str],
        views: ViewOptions,
        preprocess_config,
        augment: Augment | None = None,
        limits: DecodeLimits = DecodeLimits(),
    ):
        self.paths = list(paths)
        self.views = views
        self.preprocess_config = preprocess_config
        self.augment = augment
        self.limits = limits

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int | None]) -> _Item:
        index, seed = item
        path = self.paths[index]
        try:
            views = load_views(path, self.views, self.preprocess_config, self.limits, self.augment, seed)
        except VideoError as exc:
            return _Item(index, None, VideoFailure(path, type(exc).__name__, str(exc)))
        return _Item(index, torch.from_numpy(views.pixels))


class EpochSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a fresh order and fresh augmentation seeds each epoch, all from one seed."""

    def __init__(self, size: int, seed: int, *, shuffle: bool = True, augment: bool = True):
        self.size, self.seed, self.shuffle, self.augment = size, seed, shuffle, augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, 2**63, self.size)
        for i in order.tolist():
            yield i, (int(seeds[i]) if self.augment else None)


def collate(items: list[_Item]) -> tuple[torch.Tensor, torch.Tensor | None, list[VideoFailure]]:
    """(indices of the decoded videos, their uint8 views (B, V, T, H, W, 3) or None, the failures)."""
    good = [item for item in items if item.pixels is not None]
    indices = torch.tensor([item.index for item in good], dtype=torch.long)
    pixels = torch.stack([item.pixels for item in good]) if good else None
    return indices, pixels, [item.error for item in items if item.error is not None]


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # the workers decode; the main process owns the cores for the model


def loader(dataset: VideoDataset, sampler: EpochSampler, batch_size: int, workers: int, pin: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        multiprocessing_context="spawn" if workers > 0 else None,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        pin_memory=pin,
    )
