"""Record files (``.jsonl``, ``.csv``) in an object store, resumable although objects cannot be appended to.

pyarrow's S3 and GCS file systems have no append (``open_append_stream``: "It is not possible to append efficiently
to S3 objects"), and what is written to an object becomes visible only when the stream closes: a record flushed into
a stream that never closes is lost. So a run keeps a journal of segments: every ``interval_s`` seconds (or
``max_records`` records) the records written since the last flush become one new object
``OUTPUT.partial/<run>-<n>.<ext>``, a complete file of the output's format (a CSV one with its header). An object
appears whole or not at all, so no record is ever torn, and a crash loses at most one interval's records, which
``--resume`` does again.

At the end ``close`` writes OUTPUT from what it held before and every segment in order, keeping the last record of
each path where that path first appeared (so a crash between writing OUTPUT and deleting the segments cannot record a
video twice, and a failure done again with ``retry_failed`` replaces the old one), then deletes the segments.
Resuming reads OUTPUT and the segments to know what is done.

There is no lock: two runs on one OUTPUT would each write it. (S3's conditional writes could make a lock object;
pyarrow does not expose them.)
"""

from __future__ import annotations

import posixpath
import secrets
import time

from ..errors import OutputError
from ..results import VideoFailure
from .objects import filesystem_and_path
from .records import RECORD_FORMATS, held_identity


class ObjectRecordSink:
    """What ``records.RecordSink`` is for a local file (``done``, ``failed``, ``write``, one model and top-k per
    file, a context manager), for a record file in an object store."""

    def __init__(
        self,
        uri: str,
        top_k: int | None,
        *,
        resume: bool = False,
        overwrite: bool = False,
        retry_failed: bool = False,
        interval_s: float = 30.0,
        max_records: int = 1000,
    ):
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other")
        if retry_failed and not resume:
            raise ValueError("retry_failed applies only when resuming")
        self.extension = posixpath.splitext(uri.partition("?")[0])[1].lower()
        if self.extension not in RECORD_FORMATS:
            given = f"'{self.extension}' files" if self.extension else "an object without an extension"
            raise OutputError(f"{uri}: cannot write records as {given}; use one of {', '.join(RECORD_FORMATS)}")
        self.path, self.top_k, self.format = uri, top_k, RECORD_FORMATS[self.extension]()
        self.interval_s, self.max_records = interval_s, max_records
        self._fs, self._object = filesystem_and_path(uri)
        self._journal = self._object + ".partial"
        self._run = f"{time.time_ns():020d}-{secrets.token_hex(3)}"  # segments sort in the order runs wrote them
        self._segments_written = 0
        self._pending: list = []
        self._flushed = time.monotonic()
        self._keep_old = not overwrite
        stored = self._stored(self._segments()) if resume else []
        if not resume and not overwrite and (self._exists() or self._segments()):
            raise OutputError(f"{uri} already exists: use --resume to continue it or --overwrite to replace it")
        latest = {record.path: record for record in stored}
        self.failed = {path for path, record in latest.items() if record.failed}
        if retry_failed:
            latest = {path: record for path, record in latest.items() if not record.failed}
            self.failed = set()
        self.done = set(latest)
        self._identity = next((r.identity for r in latest.values() if not r.failed), None)
        if overwrite:
            self._delete_segments()

    # --- what is there already

    def _exists(self) -> bool:
        from pyarrow import fs

        return self._fs.get_file_info(self._object).type == fs.FileType.File

    def _segments(self) -> list[str]:
        from pyarrow import fs

        infos = self._fs.get_file_info(fs.FileSelector(self._journal, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == fs.FileType.File and i.path.endswith(self.extension))

    def _read(self, path: str) -> list[tuple]:
        """(stored record, its bytes) for each complete record of one object."""
        with self._fs.open_input_stream(path) as file:
            data = file.read()
        try:
            scan = self.format.read(data)
        except ValueError as exc:
            raise OutputError(f"{path}: {exc}; is it a tsf {self.extension} output?") from exc
        if scan.top_k is not None and scan.top_k != self.top_k:
            raise OutputError(
                f"{self.path} has columns for top {scan.top_k}, not {self.top_k}: "
                f"resume it with --top-k {scan.top_k}, or use --overwrite"
            )
        return [(record, data[record.start : record.end]) for record in scan.records]

    def _pieces(self, segments: list[str]) -> list[tuple]:
        pieces = self._read(self._object) if self._keep_old and self._exists() else []
        for segment in segments:
            pieces += self._read(segment)
        return pieces

    def _stored(self, segments: list[str]) -> list:
        return [record for record, _ in self._pieces(segments)]

    def _delete_segments(self) -> None:
        # delete_dir, not delete_file per segment: deleting the last object under a prefix makes pyarrow put an
        # empty marker object (OUTPUT.partial/) in its place, and delete_dir removes that too.
        if self._segments():
            self._fs.delete_dir(self._journal)

    # --- writing

    def write(self, record) -> None:
        if record.path in self.done:
            raise ValueError(f"{record.path} is already recorded in {self.path}")
        self._identity = held_identity(self.path, self._identity, self.format.identity(record))
        self._pending.append(record)
        self.done.add(record.path)
        if isinstance(record, VideoFailure):
            self.failed.add(record.path)
        if len(self._pending) >= self.max_records or time.monotonic() - self._flushed >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """The records written since the last flush, as one new segment object (which appears whole or not at all)."""
        self._flushed = time.monotonic()
        if not self._pending:
            return
        body = self.format.header(self.top_k) + b"".join(self.format.encode(r, self.top_k) for r in self._pending)
        self._segments_written += 1
        segment = f"{self._journal}/{self._run}-{self._segments_written:06d}{self.extension}"
        with self._fs.open_output_stream(segment) as file:
            file.write(body)
        self._pending = []

    def close(self) -> None:
        """Flush, write OUTPUT from its old records and every segment (the last record of a path, where the path
        first appeared), and delete the segments."""
        self.flush()
        segments = self._segments()
        latest: dict[str, bytes] = {}
        for record, raw in self._pieces(segments):
            latest[record.path] = raw  # a later record of a path replaces the earlier one, in its place
        with self._fs.open_output_stream(self._object) as file:
            file.write(self.format.header(self.top_k) + b"".join(latest.values()))
        self._delete_segments()

    def __enter__(self) -> ObjectRecordSink:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.flush()  # what was done stays in the journal for --resume; OUTPUT is written by the run that ends
