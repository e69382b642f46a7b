"""ONNX graphs of checkpoints: exporting one with everything the file needs to stand alone, and the cache that lets
``--runtime onnx`` export a checkpoint once and then reuse the graph.

The cache is ``$TSF_CACHE``, else ``$XDG_CACHE_HOME/tsf``, else ``~/.cache/tsf``; graphs go under ``onnx/``, one folder
per model and revision, one file per frame count, frame size and dtype::

    onnx/<model>/<frames>x<height>x<width>-<dtype>-<key>.onnx

The key is a hash of everything the graph is made from, so that a changed checkpoint never reuses a stale graph:

- each checkpoint file (config.json, preprocessor_config.json, the weights): in the Hugging Face cache, its blob name,
  which is the hash of its content (sha256 for the weights); anywhere else, its path, inode, size, modification and
  change times, plus the sha256 of the small files. Hashing the weights themselves would cost about a second per run
  for a base model; the times and the inode change with any write, copy or replace (the change time cannot even be
  set back by hand);
- the frame count, size and dtype; the opset and outputs; the versions of tsf and torch; ``CACHE_FORMAT``.

A graph is written atomically, and its key is also in its metadata (``tsf.cache_key``), checked when it is opened. When
a graph is exported, the older graphs of the same model, revision, frame count, size and dtype are deleted (they were
made from files that have changed since, or by another tsf or torch): at most one graph per model, revision, frame
count, size and dtype stays, about 440 MB for a base model in fp32.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from .. import __version__
from ..model.hub import CONFIG_NAME, resolve_file
from ..model.loading import resolve_weights
from ..model.onnx_format import OPSET, OUTPUTS
from .predictor import preprocessor_file, read_json_object

# Bump whenever the graph that the same checkpoint exports to changes: the wrapper, the folding, the outputs.
CACHE_FORMAT = 1
_SMALL_FILE = 1 << 20  # files up to this size are hashed outright (config.json, preprocessor_config.json)


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint's files, resolved to local paths (downloaded if need be)."""

    source: str  # the preset's source, the folder, or the hub id
    revision: str | None
    config: Path
    preprocessor: Path
    weights: Path

    @property
    def folder(self) -> Path:
        """The folder that holds them all (for the hub, the snapshot), which ``from_pretrained`` loads from."""
        return self.config.parent


def resolve_checkpoint(source: str, **hub) -> CheckpointFiles:
    """The files of the checkpoint at ``source`` (``hub``: revision, local_files_only, token, cache_dir)."""
    return CheckpointFiles(
        source=source,
        revision=hub.get("revision"),
        config=resolve_file(source, CONFIG_NAME, **hub),
        preprocessor=preprocessor_file(source, **hub),
        weights=resolve_weights(source, **hub),
    )


def cache_root() -> Path:
    """tsf's cache folder: ``$TSF_CACHE``, else ``$XDG_CACHE_HOME/tsf``, else ``~/.cache/tsf``."""
    if os.environ.get("TSF_CACHE"):
        return Path(os.environ["TSF_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "tsf"


def graph_key(files: CheckpointFiles, frames: int, height: int, width: int, dtype: str) -> str:
    """The hash of everything the graph of ``files`` for these frames, size and dtype is made from."""
    material = {
        "cache_format": CACHE_FORMAT,
        "opset": OPSET,
        "outputs": list(OUTPUTS),
        "shape": [frames, height, width],
        "dtype": dtype,
        "tsf": __version__,
        "torch": version("torch"),  # from the package's metadata: importing torch takes a second
        "files": {name: _identity(getattr(files, name)) for name in ("config", "preprocessor", "weights")},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _identity(path: Path) -> dict:
    """What tells this file from any other version of it, without reading a large file."""
    real = Path(path).resolve()
    if real.parent.name == "blobs" and real.parent.parent.name.startswith("models--"):
        return {"blob": real.name}  # huggingface_hub names blobs after their content's hash
    stat = real.stat()
    identity = {
        "path": str(real),
        "device": stat.st_dev,
        "inode": stat.st_ino,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
    }
    if stat.st_size <= _SMALL_FILE:
        identity["sha256"] = hashlib.sha256(real.read_bytes()).hexdigest()
    return identity


def graph_path(files: CheckpointFiles, frames: int, height: int, width: int, dtype: str, key: str) -> Path:
    """Where the cache keeps the graph of ``files`` for these frames, size and dtype, made under ``key``."""
    return cache_root() / "onnx" / _folder_name(files) / f"{_stem(frames, height, width, dtype)}-{key}.onnx"


def _stem(frames: int, height: int, width: int, dtype: str) -> str:
    return f"{frames}x{height}x{width}-{dtype}"


def _folder_name(files: CheckpointFiles) -> str:
    """One folder per model and revision: ``org--name[@revision]`` for a hub id, else the folder's name and a hash of
    its path (two folders of one name are two models)."""
    if files.config.parent.parent.name == "snapshots":  # a hub id, resolved into the hub cache
        name = files.source.replace("/", "--") + (f"@{files.revision}" if files.revision else "")
    else:
        folder = files.folder.resolve()
        name = f"{folder.name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
    return re.sub(r"[^A-Za-z0-9._@-]", "-", name)


def prune(path: Path) -> list[Path]:
    """Delete the graphs beside ``path`` made for the same frames, size and dtype under another key, which this one
    replaces; returns them."""
    stem = path.name.rsplit("-", 1)[0]
    stale = [other for other in path.parent.glob(f"{stem}-*.onnx") if other.name != path.name]
    for other in stale:
        other.unlink(missing_ok=True)  # another run may have pruned it first
    return stale


def export_checkpoint(
    files: CheckpointFiles,
    output: str | os.PathLike,
    *,
    frames: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    dtype: str = "fp32",
    outputs: tuple[str, ...] = OUTPUTS,
    opset: int = OPSET,
    cache_key: str | None = None,
):
    """Export the checkpoint to ``output`` with its labels, preprocessing and provenance in the metadata (see
    ``model/onnx_format.py``), checked against the PyTorch model first (``model.export.export_onnx``). Imports torch."""
    from ..model.export import DTYPES, export_onnx, require_exporter
    from ..model.hub import snapshot_commit
    from ..model.timesformer import TimesformerForVideoClassification

    require_exporter()  # before a base model spends seconds loading
    if dtype not in DTYPES:
        raise ValueError(f"an ONNX graph is fp32 or fp16, not {dtype!r} (ONNX Runtime's CPU provider has no bf16)")
    model = TimesformerForVideoClassification.from_pretrained(files.folder, dtype=DTYPES[dtype])
    return export_onnx(
        model,
        output,
        frames=frames,
        image_size=image_size,
        outputs=outputs,
        opset=opset,
        preprocessor=read_json_object(files.preprocessor, "preprocessor config"),
        source=files.source,
        revision=snapshot_commit(files.config) or files.revision,
        cache_key=cache_key,
    )
