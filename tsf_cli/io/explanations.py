"""Files of ``tsf explain``, chosen by suffix from ``EXPLANATION_WRITERS``: ``.npz`` (the arrays, for computing with),
``.png`` (a contact sheet), ``.gif`` and ``.mp4`` (the clip with its heatmaps). Each is written whole and atomically,
replacing a file of the same name only once it is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from ..results import Explanation
from .animation import write_gif, write_mp4
from .atomic import atomic_file, check_writable, reporting
from .contact_sheet import contact_sheet
from .records import by_extension


def explanation_arrays(explanation: Explanation) -> dict[str, np.ndarray]:
    """What the .npz holds: the arrays, and the words as 0-d string arrays, all readable with allow_pickle=False."""
    return {
        "heatmaps": explanation.heatmaps,  # (T, H, W) float32, each frame summing to 1
        "frame_importance": explanation.frame_importance,  # (T,) float32, summing to 1
        "timestamps": explanation.timestamps,  # (T,) float64 seconds
        "frame_indices": explanation.frame_indices,  # (T,) int64
        "label": np.array(explanation.label),
        "label_index": np.array(explanation.label_index),
        "probability": np.array(explanation.probability, dtype=np.float32),
        "method": np.array(explanation.method),
        "token_relevance": explanation.token_relevance,  # (T, grid_h, grid_w) float32, before mapping to pixels
        "crop": np.array(explanation.crop, dtype=np.int64),  # (top, left, height, width) in the resized frame
        "resized": np.array(explanation.resized, dtype=np.int64),  # (height, width)
        "view": np.array(explanation.view),
        "top_labels": np.array([p.label for p in explanation.predictions], dtype=str),
        "top_probabilities": np.array([p.probability for p in explanation.predictions], dtype=np.float32),
        "path": np.array(explanation.path),
        "model": np.array(explanation.model.name),
        "attention_type": np.array(explanation.attention_type),
    }


class NpzWriter:
    extension = ".npz"

    def write(self, file: BinaryIO, explanation: Explanation) -> None:
        np.savez_compressed(file, **explanation_arrays(explanation))


class ContactSheetWriter:
    extension = ".png"

    def write(self, file: BinaryIO, explanation: Explanation) -> None:
        contact_sheet(explanation).save(file, format="PNG")


class GifWriter:
    extension = ".gif"

    def write(self, file: BinaryIO, explanation: Explanation) -> None:
        write_gif(explanation, file)


class Mp4Writer:
    extension = ".mp4"

    def write(self, file: BinaryIO, explanation: Explanation) -> None:
        write_mp4(explanation, file)


EXPLANATION_WRITERS = {w.extension: w for w in (NpzWriter, ContactSheetWriter, GifWriter, Mp4Writer)}


def check_explanation_output(path: str | os.PathLike) -> None:
    """Fail now, with an OutputError, if ``path`` has no known suffix or cannot be written: before any work."""
    path = Path(path)
    by_extension(path, EXPLANATION_WRITERS, "an explanation")
    if path.is_dir():
        raise OutputError(f"{path} is a folder: name a file in it")
    check_writable(path)


def write_explanation(path: str | os.PathLike, explanation: Explanation) -> None:
    """Write ``explanation`` to ``path`` in the format of its suffix, atomically."""
    writer = by_extension(Path(path), EXPLANATION_WRITERS, "an explanation")
    with reporting(path), atomic_file(path) as file:
        writer.write(file, explanation)
