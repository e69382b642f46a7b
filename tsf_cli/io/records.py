"""Record files of ``tsf batch`` and the JSON document of ``tsf classify --json``.

Record sinks (``.jsonl``, ``.csv``, chosen from ``RECORD_FORMATS``) get one record per video, appended and flushed as
each video finishes, so an interrupted batch leaves a valid file that ``resume=True`` continues. A crash can tear only
the last record; resuming cuts it off before appending. One run at a time: a sink locks its file.
``write_json_document`` writes the single document of ``tsf classify --json`` to a stream.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..errors import OutputError, UsageError
from ..results import Timeline, VideoFailure, VideoResult, path_fields, path_from_fields, readable
from .atomic import atomic_file, lock_file, reporting

# Outputs are valid UTF-8: a name that is not UTF-8 is written as results.path_fields says, and any other text with
# lone surrogates (os.fsdecode's stand-ins for undecodable bytes) shows U+FFFD. Reading keeps those bytes as
# surrogates, so that files older versions wrote with raw bytes in their names still resume.
ENCODING_ERRORS = "surrogateescape"

# flush() after every record is what survives kill -9 and Ctrl-C: the bytes are in the kernel. fsync() adds survival
# of a power loss or OS crash; once a second it costs nothing next to decoding a video and running the model, while
# a batch of thousands of quickly failing files is not slowed down to the disk's sync rate.
FSYNC_INTERVAL_S = 1.0


def has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def json_line(obj: dict) -> bytes:
    return (readable(json.dumps(obj, ensure_ascii=False)) + "\n").encode("utf-8")


def by_extension(path: Path, choices: dict, what: str):
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


def _timeline_identity(model: str, revision: str | None, settings: dict, windows: bool) -> dict:
    # A timeline's settings say where its windows were and how they became segments; with or without its windows,
    # a record is another kind of record.
    return {"model": model, "revision": revision, "timeline": settings, "windows": windows}


def _record_identity(record: VideoResult | Timeline | VideoFailure) -> dict | None:
    if isinstance(record, VideoFailure):
        return None
    if isinstance(record, Timeline):
        return _timeline_identity(record.model.name, record.model.revision, record.settings, record.windows is not None)
    return _result_identity(record.model.name, record.model.revision, len(record.predictions))


class JsonlRecords:
    """One JSON object per line: the ``to_dict()`` of each VideoResult, Timeline or VideoFailure."""

    extension = ".jsonl"

    def header(self, top_k: int | None) -> bytes:
        return b""

    def encode(self, record, top_k: int | None) -> bytes:
        return json_line(record.to_dict())

    identity = staticmethod(_record_identity)

    def stored_identity(self, obj: dict) -> dict:
        model = obj["model"]
        if "segments" in obj:
            return _timeline_identity(model["name"], model["revision"], obj["settings"], "windows" in obj)
        return _result_identity(model["name"], model["revision"], len(obj["predictions"]))

    def read(self, data: bytes) -> _Scan:
        records, start = [], 0
        # Only a line with its newline counts: a record is written in one piece ending with "\n", so whatever follows
        # the last newline is a record cut short by a crash, dropped here and done again.
        while (end := data.find(b"\n", start)) >= 0:
            try:
                obj = json.loads(data[start:end].decode("utf-8", ENCODING_ERRORS))
                failed = _failed(obj["status"])
                identity = None if failed else self.stored_identity(obj)
                records.append(_Stored(path_from_fields(obj), failed, identity, start, end + 1))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"line {len(records) + 1} is not a tsf record ({e!r})") from e
            start = end + 1
        return _Scan(data, 0, records, start, top_k=None)


def _failed(status: str) -> bool:
    if status not in ("ok", "error"):
        raise ValueError(f"unknown status {status!r}")
    return status == "error"


class CsvRecords:
    """One row per video: path, status, label_1, prob_1 ... label_k, prob_k, error, message, warnings (joined by
    "; "), model, revision, path_bytes (base64 of a name that is not UTF-8, else empty: see results.path_fields).

    The header fixes k, so a file can only be resumed with the top-k it was written with. Probabilities are written as
    Python's repr of the float, which reads back to the same value. A file written before the path_bytes column is
    continued in its own columns, names that are not UTF-8 as their raw bytes as it has them, so that resuming it
    still matches them.
    """

    extension = ".csv"

    def __init__(self):
        self.path_bytes = True  # False while continuing a file written without the column

    @staticmethod
    def columns(top_k: int, path_bytes: bool = True) -> list[str]:
        ranked = [f"{name}_{rank}" for rank in range(1, top_k + 1) for name in ("label", "prob")]
        exact = ["path_bytes"] if path_bytes else []
        return ["path", "status", *ranked, "error", "message", "warnings", "model", "revision", *exact]

    def header(self, top_k: int | None) -> bytes:
        return self._row(self.columns(top_k, self.path_bytes))

    def encode(self, record, top_k: int | None) -> bytes:
        named = path_fields(record.path) if self.path_bytes else {"path": record.path}
        exact = [named.get("path_bytes", "")] if self.path_bytes else []
        if isinstance(record, VideoFailure):
            failed = [record.status, *[""] * (2 * top_k), record.error, record.message, "", "", ""]
            return self._row([named["path"], *failed, *exact])
        if len(record.predictions) > top_k:
            raise ValueError(f"{record.path}: {len(record.predictions)} predictions do not fit columns for top {top_k}")
        ranked = [cell for p in record.predictions for cell in (p.label, p.probability)]
        ranked += [""] * (2 * top_k - len(ranked))
        model = record.model
        warnings = "; ".join(record.warnings)
        cells = [named["path"], record.status, *ranked, "", "", warnings, model.name, model.revision or ""]
        return self._row([*cells, *exact])

    identity = staticmethod(_record_identity)

    def _row(self, cells: list) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerow(cells)  # QUOTE_MINIMAL: commas, quotes, \r and \n inside cells are quoted
        if self.path_bytes:
            return readable(text.getvalue()).encode("utf-8")
        return text.getvalue().encode("utf-8", ENCODING_ERRORS)  # as the file's older columns have it

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
            width = len(self.columns(top_k, self.path_bytes))
            if len(row) != width:
                raise ValueError(f"line {rows.line_num} has {len(row)} cells, not {width}")
            failed = _failed(row[1])
            labels = [label for label in row[2 : 2 + 2 * top_k : 2] if label]
            model, revision = row[5 + 2 * top_k], row[6 + 2 * top_k]
            identity = None if failed else _result_identity(model, revision or None, len(labels))
            path = path_from_fields({"path": row[0], "path_bytes": row[-1] if self.path_bytes else ""})
            records.append(_Stored(path, failed, identity, start, lines.pos))
        valid_end = records[-1].end if records else header_end
        return _Scan(data, header_end, records, valid_end, top_k)

    def _top_k_of(self, header: list[str]) -> int:
        self.path_bytes = header[-1:] == ["path_bytes"]
        top_k, odd = divmod(len(header) - len(self.columns(0, self.path_bytes)), 2)
        if odd or top_k < 0 or header != self.columns(top_k, self.path_bytes):
            if header[-4:] == ["error", "message", "model", "revision"]:
                raise ValueError(
                    "it was written by an earlier tsf (no warnings column): start it again with --overwrite"
                )
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
        with atomic_file(path) as f:
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
    format = by_extension(path, RECORD_FORMATS, "records")
    if not path.exists():
        return set()
    with reporting(path):
        lock = lock_file(path)  # a run writing the file must not have it repaired under it
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
        with reporting(path):
            self._lock = lock_file(path)
        self._file = None
        try:
            records = self._open(resume=resume, overwrite=overwrite, retry_failed=retry_failed)
            if self._lock is not None and os.fstat(self._lock.fileno()).st_ino != os.fstat(self._file.fileno()).st_ino:
                # retry_failed rewrote the file whole: lock the new one (a run that got there first stops this one)
                self._lock.close()
                with reporting(path):
                    self._lock = lock_file(path)
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
        with reporting(path):
            if resume:
                scan = _scan(path, format)
                if scan.top_k is not None and scan.top_k != top_k:
                    raise OutputError(
                        f"{path} has columns for top {scan.top_k}, not {top_k}: "
                        f"resume it with --top-k {scan.top_k}, or use --overwrite"
                    )
                records = _repair(path, scan, retry_failed=retry_failed)
            elif not overwrite and has_content(path):
                raise OutputError(f"{path} already exists: use --resume to continue it or --overwrite to replace it")
            self._file = open(path, "ab" if resume else "wb")
            if os.fstat(self._file.fileno()).st_size == 0:
                self._file.write(format.header(top_k))
        return records

    def write(self, record) -> None:
        if record.path in self.done:
            raise ValueError(f"{record.path} is already recorded in {self.path}")
        self._identity = held_identity(self.path, self._identity, self.format.identity(record))
        with reporting(self.path):
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
        with reporting(self.path):
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


def held_identity(path, held: dict | None, identity: dict | None) -> dict | None:
    """What a record file holds once a record of ``identity`` joins those of ``held`` (None: not known yet); records
    of other weights or other settings are refused, so that one file never mixes two runs' results."""
    if identity is None:
        return held
    if held is not None and identity != held:
        raise OutputError(
            f"{path} holds results of {_describe(held)}, this run gives {_describe(identity)}: use the same options, "
            "--overwrite or another output file"
        )
    return identity


def _describe(identity: dict) -> str:
    if "timeline" in identity:
        settings = ", ".join(f"{key} {value}" for key, value in identity["timeline"].items())
        kept = "with" if identity["windows"] else "without"
        return f"timelines of model {identity['model']}, revision {identity['revision']} ({settings}; {kept} windows)"
    return ", ".join(f"{key} {value}" for key, value in identity.items())


STDOUT = "-"  # as an output path: the records go to standard output, for a pipeline


def open_record_sink(
    path: str | os.PathLike,
    *,
    top_k: int,
    resume: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    format: str | None = None,
) -> RecordSink | StreamSink:
    """Open the ``.jsonl`` or ``.csv`` record file of a batch run (``-``: standard output); use it as a context
    manager.

    Without ``resume`` or ``overwrite`` an existing non-empty file is refused. ``resume`` keeps the complete records
    (cutting off one torn by a crash) and appends; recorded failures count as done unless ``retry_failed``, which
    removes them from the file first. ``overwrite`` empties the file. ``format`` ("jsonl" or "csv") picks the format
    of standard output; for a file it must agree with the suffix.
    """
    check_record_output(path, format, resume)
    if str(path) == STDOUT:
        return StreamSink(by_extension(Path(f"stdout.{format or 'jsonl'}"), RECORD_FORMATS, "records"), top_k)
    path = Path(path)
    record_format = by_extension(path, RECORD_FORMATS, "records")
    return RecordSink(path, record_format, top_k, resume=resume, overwrite=overwrite, retry_failed=retry_failed)


def check_record_output(path, format: str | None, resume: bool) -> None:
    """Refuse what a record file cannot be, for a caller to check before any work: ``-`` with ``resume``, a suffix
    that is no record format, a ``format`` the suffix disagrees with. ``path`` may be an object store's URI."""
    from .objects import is_uri, split_query

    if str(path) == STDOUT:
        if resume:
            raise UsageError("--resume needs an output file to read back, not -")
        return
    name = Path(split_query(str(path))[0] if is_uri(path) else path)  # the query configures the store
    record_format = by_extension(name, RECORD_FORMATS, "records")
    if format is not None and record_format.extension != f".{format}":
        raise UsageError(f"{path}: --format {format} disagrees with the file's suffix")


class StreamSink:
    """Records to standard output, each flushed as it is written: nothing to resume from and nothing to lock."""

    def __init__(self, format, top_k: int):
        self.format, self.top_k = format, top_k
        self.path = STDOUT
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self._out = sys.stdout.buffer
        self._out.write(format.header(top_k))
        self._out.flush()

    def write(self, record) -> None:
        self._out.write(self.format.encode(record, self.top_k))
        self._out.flush()

    def __enter__(self) -> StreamSink:
        return self

    def __exit__(self, *exc) -> None:
        self._out.flush()


# --- The JSON document of `tsf classify --json` ------------------------------------------------------------------


def write_json_document(results: Iterable[VideoResult | VideoFailure], file: TextIO, **extra) -> None:
    """Write ``{"tsf_version": ..., "results": [...]}`` (and any ``extra`` keys) to ``file``, one entry per video in the
    order given.

    Keys keep the order of ``to_dict()`` (path and status first) instead of being sorted: as stable, and readable.
    """
    document = {"tsf_version": __version__, "results": [r.to_dict() for r in results], **extra}
    json.dump(document, file, indent=2, ensure_ascii=False)
    file.write("\n")
