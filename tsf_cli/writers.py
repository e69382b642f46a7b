"""Where results go: record files for ``tsf batch``, the JSON document of ``tsf classify --json``, embedding files.

Three outputs, three lifecycles:

* Record sinks (``.jsonl``, ``.csv``, chosen from ``RECORD_FORMATS``) get one record per video, appended and flushed as
  each video finishes, so an interrupted batch leaves a valid file that ``resume=True`` continues. A crash can tear
  only the last record; resuming cuts it off before appending. One run at a time: a sink locks its file.
* ``write_json_document`` writes the single document of ``tsf classify --json`` to a stream.
* Embedding files (``.npy``, ``.npz``, ``.safetensors``, ``.parquet``, ``.jsonl``, chosen from ``EMBEDDING_WRITERS``)
  are written whole and atomically. As most of them cannot be appended to, an ``EmbeddingJournal`` streams each
  finished vector to ``<output>.partial.jsonl`` (a record sink of its own, so it resumes the same way) and turns it
  into the output once every video is done.
"""

from __future__ import annotations

import base64
import csv
import errno
import io
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from tsf_cli import __version__
from tsf_cli.errors import OutputError
from tsf_cli.results import ClipFrames, ModelInfo, VideoEmbedding, VideoFailure, VideoResult

# A path is the str the file system gave; on POSIX an undecodable name carries lone surrogates (os.fsdecode), which
# "surrogateescape" writes back as the name's own bytes instead of failing in the middle of a batch.
ENCODING_ERRORS = "surrogateescape"

# flush() after every record is what survives kill -9 and Ctrl-C: the bytes are in the kernel. fsync() adds survival
# of a power loss or OS crash; once a second it costs nothing next to decoding a video and running the model, while
# a batch of thousands of quickly failing files is not slowed down to the disk's sync rate.
FSYNC_INTERVAL_S = 1.0


@contextmanager
def _reporting(path: Path) -> Iterator[None]:
    """Turn the OSError of writing ``path`` (missing folder, no permission, disk full) into one OutputError line."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from e


def _lock(path: Path) -> BinaryIO | None:
    """Hold an exclusive lock on ``path`` (created if missing) for one run: two runs appending to one file would
    interleave their records and each redo the other's videos. The handle holds the lock until it is closed (or the
    process dies). An advisory flock, so other programs are not kept out; None where there is no flock (Windows, a
    file system without locks)."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(path, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutputError(
            f"{path} is being written by another tsf run: wait for it to end, or use another file"
        ) from None
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without locks (some NFS)
            return None
        raise
    return handle


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a temporary file next to ``path`` that replaces ``path`` only once it is completely written and synced.

    An exception (Ctrl-C included) removes the temporary file and leaves whatever ``path`` held untouched.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 gets the permissions a plain open() would (after the umask); mkstemp's would be 0600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _json_line(obj: dict) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", ENCODING_ERRORS)


def _by_extension(path: Path, choices: dict, what: str):
    extension = path.suffix.lower()
    if extension not in choices:
        given = f"'{extension}' files" if extension else "a file without an extension"
        raise OutputError(f"{path}: cannot write {what} as {given}; use one of {', '.join(choices)}")
    return choices[extension]()


# --- Record formats: how one record is encoded, and how an existing file is read back to resume it ---------------


@dataclass(frozen=True)
class _Stored:
    """One complete record found in an existing file."""

    path: str
    failed: bool
    identity: dict | None  # what new records must match to join the file; None for a failure
    start: int  # the record's bytes in the file, to rewrite it without its failures
    end: int


@dataclass(frozen=True)
class _Scan:
    """What an existing file holds: its header, its complete records, and where they end (a torn record follows)."""

    data: bytes
    header_end: int
    records: list[_Stored]
    valid_end: int
    top_k: int | None  # the top-k a CSV header was written for; None when the format does not fix it


def _result_identity(model: str, revision: str | None, predictions: int) -> dict:
    # The model name and revision say which weights; the number of predictions is the top-k (or the label count when
    # a model has fewer labels), which a CSV header fixes and which a resumed JSONL should keep as well.
    return {"model": model, "revision": revision, "predictions": predictions}


def _record_identity(record: VideoResult | VideoFailure) -> dict | None:
    if isinstance(record, VideoFailure):
        return None
    return _result_identity(record.model.name, record.model.revision, len(record.predictions))


class JsonlRecords:
    """One JSON object per line: the ``to_dict()`` of each VideoResult or VideoFailure."""

    extension = ".jsonl"

    def header(self, top_k: int | None) -> bytes:
        return b""

    def encode(self, record, top_k: int | None) -> bytes:
        return _json_line(record.to_dict())

    identity = staticmethod(_record_identity)

    def stored_identity(self, obj: dict) -> dict:
        return _result_identity(obj["model"]["name"], obj["model"]["revision"], len(obj["predictions"]))

    def read(self, data: bytes) -> _Scan:
        records, start = [], 0
        # Only a line with its newline counts: a record is written in one piece ending with "\n", so whatever follows
        # the last newline is a record cut short by a crash, dropped here and done again.
        while (end := data.find(b"\n", start)) >= 0:
            try:
                obj = json.loads(data[start:end].decode("utf-8", ENCODING_ERRORS))
                failed = _failed(obj["status"])
                identity = None if failed else self.stored_identity(obj)
                records.append(_Stored(obj["path"], failed, identity, start, end + 1))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"line {len(records) + 1} is not a tsf record ({e!r})") from e
            start = end + 1
        return _Scan(data, 0, records, start, top_k=None)


def _failed(status: str) -> bool:
    if status not in ("ok", "error"):
        raise ValueError(f"unknown status {status!r}")
    return status == "error"


class CsvRecords:
    """One row per video: path, status, label_1, prob_1 ... label_k, prob_k, error, message, model, revision.

    The header fixes k, so a file can only be resumed with the top-k it was written with. Probabilities are written as
    Python's repr of the float, which reads back to the same value.
    """

    extension = ".csv"

    @staticmethod
    def columns(top_k: int) -> list[str]:
        ranked = [f"{name}_{rank}" for rank in range(1, top_k + 1) for name in ("label", "prob")]
        return ["path", "status", *ranked, "error", "message", "model", "revision"]

    def header(self, top_k: int | None) -> bytes:
        return self._row(self.columns(top_k))

    def encode(self, record, top_k: int | None) -> bytes:
        if isinstance(record, VideoFailure):
            return self._row([record.path, record.status, *[""] * (2 * top_k), record.error, record.message, "", ""])
        if len(record.predictions) > top_k:
            raise ValueError(f"{record.path}: {len(record.predictions)} predictions do not fit columns for top {top_k}")
        ranked = [cell for p in record.predictions for cell in (p.label, p.probability)]
        ranked += [""] * (2 * top_k - len(ranked))
        model = record.model
        return self._row([record.path, record.status, *ranked, "", "", model.name, model.revision or ""])

    identity = staticmethod(_record_identity)

    @staticmethod
    def _row(cells: list) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerow(cells)  # QUOTE_MINIMAL: commas, quotes, \r and \n inside cells are quoted
        return text.getvalue().encode("utf-8", ENCODING_ERRORS)

    def read(self, data: bytes) -> _Scan:
        lines = _Lines(data)
        rows = csv.reader(lines, strict=True)
        header_end, records, top_k = 0, [], None
        while lines.pos < len(data):
            start = lines.pos
            try:
                row = next(rows)
            except csv.Error as e:
                if lines.pos == len(data):
                    break  # a quoted cell cut short by a crash at the end of the file
                raise ValueError(f"line {rows.line_num}: {e}") from e
            if not data.endswith(b"\n", 0, lines.pos):
                break  # the last row lost its line end in a crash: its last cell may be cut short too
            if top_k is None:
                top_k = self._top_k_of(row)
                header_end = lines.pos
                continue
            if len(row) != len(self.columns(top_k)):
                raise ValueError(f"line {rows.line_num} has {len(row)} cells, not {len(self.columns(top_k))}")
            failed = _failed(row[1])
            labels = [label for label in row[2 : 2 + 2 * top_k : 2] if label]
            identity = None if failed else _result_identity(row[-2], row[-1] or None, len(labels))
            records.append(_Stored(row[0], failed, identity, start, lines.pos))
        valid_end = records[-1].end if records else header_end
        return _Scan(data, header_end, records, valid_end, top_k)

    def _top_k_of(self, header: list[str]) -> int:
        top_k, odd = divmod(len(header) - len(self.columns(0)), 2)
        if odd or top_k < 0 or header != self.columns(top_k):
            raise ValueError("its header is not tsf's columns")
        return top_k


class _Lines:
    """Feeds csv.reader one line at a time and keeps the byte offset reached, so each row maps to its bytes."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.data):
            raise StopIteration
        end = self.data.find(b"\n", self.pos) + 1 or len(self.data)  # find() gives -1 on the last, unended line
        line = self.data[self.pos : end]
        self.pos = end
        return line.decode("utf-8", ENCODING_ERRORS)


RECORD_FORMATS = {f.extension: f for f in (JsonlRecords, CsvRecords)}


def _scan(path: Path, format) -> _Scan:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    try:
        return format.read(data)
    except ValueError as e:
        raise OutputError(f"{path}: {e}; is it a tsf {format.extension} output?") from e


def _repair(path: Path, scan: _Scan, *, retry_failed: bool) -> list[_Stored]:
    """Cut off a torn last record and, with ``retry_failed``, drop the failures; returns the records kept."""
    if retry_failed and any(r.failed for r in scan.records):
        kept = [r for r in scan.records if not r.failed]
        # Rewritten whole rather than edited, so a crash leaves either the old file or the new one.
        with _atomic_file(path) as f:
            f.write(scan.data[: scan.header_end])
            for record in kept:
                f.write(scan.data[record.start : record.end])
        return kept
    if scan.valid_end < len(scan.data):
        with open(path, "r+b") as f:
            f.truncate(scan.valid_end)
    return scan.records


def completed_paths(path: str | os.PathLike, *, retry_failed: bool = False) -> set[str]:
    """The videos an existing record file already accounts for; none when it does not exist.

    Like resuming, this repairs the file: a record torn by a crash is cut off, and with ``retry_failed`` the failures
    are removed so that they are done again. A file that is damaged elsewhere raises OutputError.
    """
    path = Path(path)
    format = _by_extension(path, RECORD_FORMATS, "records")
    if not path.exists():
        return set()
    with _reporting(path):
        lock = _lock(path)  # a run writing the file must not have it repaired under it
        try:
            return {r.path for r in _repair(path, _scan(path, format), retry_failed=retry_failed)}
        finally:
            if lock is not None:
                lock.close()


class RecordSink:
    """A file that gets one record per video, appended and flushed as each video finishes.

    ``done`` holds the paths recorded so far, by an earlier run when resuming and by this one; ``failed`` those among
    them recorded as failures. Writing a path in ``done`` again raises ValueError, so a file never holds two records
    of one video: callers skip ``done``. Every result must come from the weights and top-k of the results already in
    the file (model name, revision and number of predictions); a mismatch raises OutputError, since a file mixing
    them would pass for one run.
    """

    def __init__(self, path: Path, format, top_k: int | None, *, resume: bool, overwrite: bool, retry_failed: bool):
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other")
        if retry_failed and not resume:
            raise ValueError("retry_failed applies only when resuming")
        self.path, self.format, self.top_k = path, format, top_k
        with _reporting(path):
            self._lock = _lock(path)
        self._file = None
        try:
            records = self._open(resume=resume, overwrite=overwrite, retry_failed=retry_failed)
            if self._lock is not None and os.fstat(self._lock.fileno()).st_ino != os.fstat(self._file.fileno()).st_ino:
                # retry_failed rewrote the file whole: lock the new one (a run that got there first stops this one)
                self._lock.close()
                with _reporting(path):
                    self._lock = _lock(path)
        except BaseException:
            if self._file is not None:
                self._file.close()
            self.release()
            raise
        self.done = {r.path for r in records}
        self.failed = {r.path for r in records if r.failed}
        self._identity = next((r.identity for r in records if not r.failed), None)
        self._synced = time.monotonic()

    def _open(self, *, resume: bool, overwrite: bool, retry_failed: bool) -> list[_Stored]:
        """Check the file against the options, repair it when resuming, open it for appending; the records kept."""
        path, format, top_k = self.path, self.format, self.top_k
        records = []
        with _reporting(path):
            if resume:
                scan = _scan(path, format)
                if scan.top_k is not None and scan.top_k != top_k:
                    raise OutputError(
                        f"{path} has columns for top {scan.top_k}, not {top_k}: "
                        f"resume it with --top-k {scan.top_k}, or use --overwrite"
                    )
                records = _repair(path, scan, retry_failed=retry_failed)
            elif not overwrite and _has_content(path):
                raise OutputError(f"{path} already exists: use --resume to continue it or --overwrite to replace it")
            self._file = open(path, "ab" if resume else "wb")
            if os.fstat(self._file.fileno()).st_size == 0:
                self._file.write(format.header(top_k))
        return records

    def write(self, record) -> None:
        if record.path in self.done:
            raise ValueError(f"{record.path} is already recorded in {self.path}")
        identity = self.format.identity(record)
        if identity is not None:
            if self._identity is None:
                self._identity = identity
            elif identity != self._identity:
                raise OutputError(
                    f"{self.path} holds results of {_describe(self._identity)}, this run gives "
                    f"{_describe(identity)}: use the same options, --overwrite or another output file"
                )
        with _reporting(self.path):
            self._file.write(self.format.encode(record, self.top_k))
            self._file.flush()
            if time.monotonic() - self._synced >= FSYNC_INTERVAL_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()
        self.done.add(record.path)
        if isinstance(record, VideoFailure):
            self.failed.add(record.path)

    def close(self) -> None:
        """Flush, sync and close the file; the lock stays until ``release`` (a context manager's exit does both)."""
        if self._file.closed:
            return
        with _reporting(self.path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def release(self) -> None:
        """Let another run open the file."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RecordSink:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            self.release()


def _describe(identity: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in identity.items())


def open_record_sink(
    path: str | os.PathLike,
    *,
    top_k: int,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
) -> RecordSink:
    """Open the ``.jsonl`` or ``.csv`` record file of a batch run; use it as a context manager.

    Without ``resume`` or ``overwrite`` an existing non-empty file is refused. ``resume`` keeps the complete records
    (cutting off one torn by a crash) and appends; recorded failures count as done unless ``retry_failed``, which
    removes them from the file first. ``overwrite`` empties the file.
    """
    path = Path(path)
    format = _by_extension(path, RECORD_FORMATS, "records")
    return RecordSink(path, format, top_k, resume=resume, overwrite=overwrite, retry_failed=retry_failed)


# --- The JSON document of `tsf classify --json` ------------------------------------------------------------------


def write_json_document(results: Iterable[VideoResult | VideoFailure], file: TextIO) -> None:
    """Write ``{"tsf_version": ..., "results": [...]}`` to ``file``, one entry per video in the order given.

    Keys keep the order of ``to_dict()`` (path and status first) instead of being sorted: as stable, and readable.
    """
    document = {"tsf_version": __version__, "results": [r.to_dict() for r in results]}
    json.dump(document, file, indent=2, ensure_ascii=False)
    file.write("\n")


# --- Embedding files ----------------------------------------------------------------------------------------------


def _matrix(embeddings: Sequence[VideoEmbedding]) -> np.ndarray:
    """(N, D) float32, one row per embedding; (0, 0) when no video gave one."""
    if not embeddings:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(e.vector, dtype=np.float32) for e in embeddings])


def _metadata(embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> str:
    """What every embedding format stores beside the array, as JSON: which weights and pooling, which row is which
    video and which frames it was built from, and the videos that failed (they have no row).

    The weights are those of the first row: one run, or one resumed journal, holds a single model.
    ASCII-escaped because safetensors and parquet keep metadata as strict UTF-8, which an undecodable file name
    would break; every JSON reader undoes the escapes.
    """
    first = embeddings[0] if embeddings else None
    return json.dumps(
        {
            "tsf_version": __version__,
            "model": first.model.to_dict() if first else None,
            "pool": first.pool if first else None,
            "videos": [{"path": e.path, "clips": [c.to_dict() for c in e.clips]} for e in embeddings],
            "failures": [f.to_dict() for f in failures],
        }
    )


class NpyWriter:
    """A bare (N, D) float32 array; the metadata goes to ``<file>.json`` beside it, as .npy has no room for any."""

    extension = ".npy"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        sidecar = path.with_name(path.name + ".json")
        # Both files are written in full before either is renamed into place, so a failure while writing leaves the
        # old pair; only a crash between the two renames could pair a new sidecar with an old array.
        with _atomic_file(path) as array_file, _atomic_file(sidecar) as metadata_file:
            np.save(array_file, _matrix(embeddings), allow_pickle=False)
            metadata_file.write(_metadata(embeddings, failures).encode("ascii") + b"\n")


class NpzWriter:
    """Arrays ``embeddings`` (N, D) float32, ``paths`` (N,) unicode and ``metadata`` (a 0-d JSON string), all of
    which ``np.load(allow_pickle=False)`` opens."""

    extension = ".npz"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        with _atomic_file(path) as f:
            np.savez(
                f,
                embeddings=_matrix(embeddings),
                paths=np.array([e.path for e in embeddings], dtype=np.str_),
                metadata=np.array(_metadata(embeddings, failures)),
            )


class SafetensorsWriter:
    """The tensor ``embeddings`` (N, D) float32; the JSON metadata in the header under the key ``tsf``."""

    extension = ".safetensors"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        from safetensors.numpy import save

        with _atomic_file(path) as f:
            f.write(save({"embeddings": _matrix(embeddings)}, metadata={"tsf": _metadata(embeddings, failures)}))


class ParquetWriter:
    """One row per video: path, embedding (fixed_size_list<float32>[D]), model, revision, pool, frame_indices and
    timestamps (one list per clip); the JSON metadata, failures included, in the schema metadata under ``tsf``.

    pyarrow is optional, so it is imported here: choosing this writer fails before any video is processed.
    """

    extension = ".parquet"

    def __init__(self):
        try:
            import pyarrow
            import pyarrow.parquet
        except ImportError as e:
            raise OutputError("writing .parquet needs pyarrow: pip install pyarrow") from e
        self.pa, self.pq = pyarrow, pyarrow.parquet

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        pa = self.pa
        matrix = _matrix(embeddings)
        vectors = pa.list_(pa.float32(), matrix.shape[1])
        if embeddings:
            embedding_column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), type=vectors)
        else:
            embedding_column = pa.array([], type=vectors)  # from_arrays rejects a list size of 0
        clips = [[c.to_dict() for c in e.clips] for e in embeddings]
        table = pa.table(
            {
                "path": pa.array([e.path for e in embeddings], pa.string()),
                "embedding": embedding_column,
                "model": pa.array([e.model.name for e in embeddings], pa.string()),
                "revision": pa.array([e.model.revision for e in embeddings], pa.string()),
                "pool": pa.array([e.pool for e in embeddings], pa.string()),
                "frame_indices": pa.array([[c["indices"] for c in v] for v in clips], pa.list_(pa.list_(pa.int64()))),
                "timestamps": pa.array([[c["timestamps"] for c in v] for v in clips], pa.list_(pa.list_(pa.float64()))),
            }
        )
        table = table.replace_schema_metadata({"tsf": _metadata(embeddings, failures)})
        with _atomic_file(path) as f:
            self.pq.write_table(table, f)


class JsonlEmbeddingWriter:
    """One ``VideoEmbedding.to_dict()`` per line, the vector as a list of numbers (exact: a float32 widens to a double
    without loss), then one ``VideoFailure.to_dict()`` per failure."""

    extension = ".jsonl"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        with _atomic_file(path) as f:
            for item in (*embeddings, *failures):
                f.write(_json_line(item.to_dict()))


EMBEDDING_WRITERS = {
    w.extension: w for w in (NpyWriter, NpzWriter, SafetensorsWriter, ParquetWriter, JsonlEmbeddingWriter)
}


def get_embedding_writer(path: str | os.PathLike):
    """The writer for ``path``'s extension; OutputError for an unknown one, or for .parquet without pyarrow."""
    return _by_extension(Path(path), EMBEDDING_WRITERS, "embeddings")


def write_embeddings(
    path: str | os.PathLike, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure] = ()
) -> None:
    """Write the embeddings, one row each in the order given, to ``path`` in the format of its extension, atomically.

    Failures get no row but are listed in the metadata, so that every input is accounted for.
    """
    path = Path(path)
    writer = get_embedding_writer(path)
    with _reporting(path):
        writer.write(path, list(embeddings), list(failures))


# --- Resumable embedding runs -------------------------------------------------------------------------------------


class _JournalRecords(JsonlRecords):
    """The journal of an embedding run: JSONL records whose vectors are base64 of their float32 little-endian bytes,
    exact and about half the size of decimal text."""

    def encode(self, record, top_k: int | None) -> bytes:
        if isinstance(record, VideoFailure):
            return _json_line(record.to_dict())
        vector = np.asarray(record.vector, dtype="<f4").tobytes()
        return _json_line(
            {
                "path": record.path,
                "status": record.status,
                "pool": record.pool,
                "model": record.model.to_dict(),
                "clips": [c.to_dict() for c in record.clips],
                "vector_f32le_b64": base64.b64encode(vector).decode("ascii"),
            }
        )

    def identity(self, record) -> dict | None:
        if isinstance(record, VideoFailure):
            return None
        # The dtype is part of it: float16 and float32 runs give visibly different vectors; the device is not.
        model = record.model
        return {"model": model.name, "revision": model.revision, "dtype": model.dtype, "pool": record.pool}

    def stored_identity(self, obj: dict) -> dict:
        model = obj["model"]
        return {"model": model["name"], "revision": model["revision"], "dtype": model["dtype"], "pool": obj["pool"]}

    @staticmethod
    def decode(line: bytes) -> VideoEmbedding | VideoFailure:
        obj = json.loads(line.decode("utf-8", ENCODING_ERRORS))
        if obj["status"] == "error":
            return VideoFailure(obj["path"], obj["error"], obj["message"])
        return VideoEmbedding(
            path=obj["path"],
            vector=np.frombuffer(base64.b64decode(obj["vector_f32le_b64"]), dtype="<f4").astype(np.float32),
            pool=obj["pool"],
            clips=tuple(ClipFrames(tuple(c["indices"]), tuple(c["timestamps"]), c["padded"]) for c in obj["clips"]),
            model=ModelInfo(**obj["model"]),
        )


class EmbeddingJournal:
    """Collects the embeddings of a run in ``<output>.partial.jsonl`` and turns them into ``output`` at the end.

    ``write`` and ``done`` / ``failed`` behave as in RecordSink (one model, dtype and pool per journal). Used as a
    context manager: a clean exit writes ``output`` atomically from the journal (rows in the order written, failures
    in the metadata), sets ``embeddings`` and ``failures`` to what it wrote and deletes the journal; an exception,
    Ctrl-C included, keeps the journal for ``resume=True``.
    """

    def __init__(self, output: Path, writer, sink: RecordSink):
        self.output, self.writer, self.sink = output, writer, sink
        self.done, self.failed = sink.done, sink.failed
        self.embeddings: list[VideoEmbedding] = []
        self.failures: list[VideoFailure] = []

    def write(self, item: VideoEmbedding | VideoFailure) -> None:
        self.sink.write(item)

    def __enter__(self) -> EmbeddingJournal:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:  # the journal stays locked until the output is written from it and it is gone
            self.sink.close()
            if exc_type is None:
                self._finish()
        finally:
            self.sink.release()

    def _finish(self) -> None:
        journal = self.sink.path
        with _reporting(self.output):
            for line in journal.read_bytes().splitlines():
                item = _JournalRecords.decode(line)
                (self.failures if isinstance(item, VideoFailure) else self.embeddings).append(item)
            self.writer.write(self.output, self.embeddings, self.failures)
            journal.unlink()


def open_embedding_journal(
    output: str | os.PathLike, *, resume: bool = False, overwrite: bool = False, retry_failed: bool = False
) -> EmbeddingJournal:
    """Start (or with ``resume``, continue) an embedding run whose result goes to ``output``.

    The format is checked first, so an unknown extension or missing pyarrow fails before any video is processed.
    Without ``resume`` or ``overwrite``, an existing output or journal is refused. ``resume`` continues the journal
    of an interrupted run as ``open_record_sink`` does; an output completed earlier (no journal left) is not
    extended: that is refused too. ``overwrite`` empties the journal; the old output stays until the new one replaces
    it.
    """
    output = Path(output)
    writer = get_embedding_writer(output)
    journal = output.with_name(output.name + ".partial.jsonl")
    if resume and not journal.exists() and _has_content(output):
        raise OutputError(f"{output} is complete (no {journal.name} to resume from): use --overwrite to redo it")
    if not resume and not overwrite and _has_content(output):
        raise OutputError(f"{output} already exists: use --overwrite to replace it")
    sink = RecordSink(journal, _JournalRecords(), None, resume=resume, overwrite=overwrite, retry_failed=retry_failed)
    return EmbeddingJournal(output, writer, sink)
