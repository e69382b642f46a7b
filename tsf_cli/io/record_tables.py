"""Records as Parquet, for archives: a folder (a local one, or a prefix in an object store) of files that Ray's
Parquet writer fills, one per block, each row one input's record with the fields of ``to_dict()`` as typed columns.

A folder takes the records of any number of runs: each adds its files. ``recorded`` reads the ``path`` and ``status``
columns back to resume, and removes a file that a killed run left half-written (on a local disk; an object store
never shows half an object), so that its rows are done again rather than lost.
"""

from __future__ import annotations

import os

from ..errors import OutputError
from .objects import filesystem_and_path, is_uri

PARQUET = ".parquet"


def record_table(records: list[dict]):
    """The records (``to_dict()`` of VideoResult, VideoEmbedding or VideoFailure) as one Arrow table: path, status,
    error, message, warnings, model, revision, dtype, device, crops, pool, predictions (list of label, index,
    probability), embedding (list of float32), clips (list of indices, timestamps, padded); a field a record has
    not is null."""
    import pyarrow as pa

    clip = pa.struct(
        [("indices", pa.list_(pa.int64())), ("timestamps", pa.list_(pa.float64())), ("padded", pa.int64())]
    )
    prediction = pa.struct([("label", pa.string()), ("index", pa.int64()), ("probability", pa.float64())])
    models = [r.get("model") or {} for r in records]

    return pa.table(
        {
            "path": pa.array([r["path"] for r in records], pa.string()),
            "status": pa.array([r["status"] for r in records], pa.string()),
            "error": pa.array([r.get("error") for r in records], pa.string()),
            "message": pa.array([r.get("message") for r in records], pa.string()),
            "warnings": pa.array([r.get("warnings") for r in records], pa.list_(pa.string())),
            "model": pa.array([m.get("name") for m in models], pa.string()),
            "revision": pa.array([m.get("revision") for m in models], pa.string()),
            "dtype": pa.array([m.get("dtype") for m in models], pa.string()),
            "device": pa.array([m.get("device") for m in models], pa.string()),
            "crops": pa.array([r.get("crops") for r in records], pa.int64()),
            "pool": pa.array([r.get("pool") for r in records], pa.string()),
            "predictions": pa.array([r.get("predictions") for r in records], pa.list_(prediction)),
            "embedding": pa.array([r.get("vector") for r in records], pa.list_(pa.float32())),
            "clips": pa.array([r.get("clips") for r in records], pa.list_(clip)),
        }
    )


def is_record_folder(output: str | os.PathLike) -> bool:
    """Whether ``output`` names a folder of Parquet records: it ends with a slash, or is a folder already."""
    text = str(output).partition("?")[0]
    return text.endswith(("/", os.sep)) or (not is_uri(text) and os.path.isdir(text))


def _files(folder: str):
    """(file system, the folder's .parquet files, sorted)."""
    from pyarrow import fs

    if is_uri(folder):
        filesystem, root = filesystem_and_path(folder)
    else:
        filesystem, root = fs.LocalFileSystem(), os.path.abspath(folder)
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root.rstrip("/"), allow_not_found=True))
    except OSError as exc:
        raise OutputError(f"{folder}: cannot list ({str(exc).splitlines()[0]})") from None
    return filesystem, sorted(i.path for i in infos if i.type == fs.FileType.File and i.path.endswith(PARQUET))


def has_records(folder: str) -> bool:
    return bool(_files(folder)[1])


def recorded(folder: str) -> dict[str, bool]:
    """Each input the folder records, and whether its record is a failure. A file that cannot be read (cut short
    by a killed run) is removed, so that its inputs are done again."""
    import pyarrow.parquet as pq

    filesystem, files = _files(folder)
    found: dict[str, bool] = {}
    for path in files:
        try:
            table = pq.read_table(path, columns=["path", "status"], filesystem=filesystem)
        except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError: a truncated footer
            filesystem.delete_file(path)
            continue
        for video, status in zip(table.column("path").to_pylist(), table.column("status").to_pylist(), strict=True):
            found[video] = status == "error"
    return found


def remove_records(folder: str) -> None:
    """Remove the folder's Parquet files (``--overwrite``); anything else in it stays."""
    filesystem, files = _files(folder)
    for path in files:
        filesystem.delete_file(path)
