"""Embedding files of ``tsf embed``: ``.npy``, ``.npz``, ``.safetensors``, ``.parquet``, ``.jsonl`` (chosen from
``EMBEDDING_WRITERS``), each written whole and atomically, and each read back whole to add to it.

As most of these formats cannot be appended to, an ``EmbeddingJournal`` streams each finished vector to
``<output>.partial.jsonl`` (a record sink of its own, so it resumes as a ``tsf batch`` output does) and turns it into
the output once every video is done. Resuming a finished output starts its journal from what the output holds.
"""

from __future__ import annotations

import base64
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import MissingDependencyError, OutputError
from ..results import ClipFrames, ModelInfo, VideoEmbedding, VideoFailure, path_fields, path_from_fields
from .atomic import atomic_file, reporting
from .records import ENCODING_ERRORS, JsonlRecords, RecordSink, by_extension, has_content, json_line


def _matrix(embeddings: Sequence[VideoEmbedding]) -> np.ndarray:
    """(N, D) float32, one row per embedding; (0, 0) when no video gave one."""
    if not embeddings:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(e.vector, dtype=np.float32) for e in embeddings])


def _metadata(embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> str:
    """What every embedding format stores beside the array, as JSON: which weights and pooling, which row is which
    video and which frames it was built from, and the videos that failed (they have no row).

    The weights are those of the first row: one run, or one resumed journal, holds a single model. Names that are
    not UTF-8 are given as results.path_fields gives them (safetensors and parquet keep metadata as strict UTF-8,
    and Rust's serde_json refuses the lone surrogates of an escaped name); ASCII-escaped all the same, which every
    JSON reader undoes.
    """
    first = embeddings[0] if embeddings else None
    return json.dumps(
        {
            "tsf_version": __version__,
            "model": first.model.to_dict() if first else None,
            "pool": first.pool if first else None,
            "videos": [
                {**path_fields(e.path), "clips": [c.to_dict() for c in e.clips], "warnings": list(e.warnings)}
                for e in embeddings
            ],
            "failures": [f.to_dict() for f in failures],
        }
    )


def _embedding(vector: np.ndarray, pool: str, model: dict, video: dict) -> VideoEmbedding:
    """A VideoEmbedding from a stored video entry: its path fields, clips and warnings."""
    clips = tuple(ClipFrames(tuple(c["indices"]), tuple(c["timestamps"]), c["padded"]) for c in video["clips"])
    path = path_from_fields(video)
    return VideoEmbedding(path, vector, pool, clips, ModelInfo(**model), tuple(video.get("warnings", ())))


def _failure(stored: dict) -> VideoFailure:
    return VideoFailure(path_from_fields(stored), stored["error"], stored["message"])


def _from_metadata(matrix: np.ndarray, metadata: str) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
    """Rows and failures back from an array and the metadata ``_metadata`` wrote beside it."""
    meta = json.loads(metadata)
    embeddings = [
        _embedding(np.asarray(matrix[i], dtype=np.float32), meta["pool"], meta["model"], video)
        for i, video in enumerate(meta["videos"])
    ]
    failures = [_failure(f) for f in meta["failures"]]
    return embeddings, failures


def _exact_name(path: str) -> bytes | None:
    """The bytes of a name that is not UTF-8; None for one that is (its ``path`` says it all)."""
    named = path_fields(path)
    return base64.b64decode(named["path_bytes"]) if "path_bytes" in named else None


class NpyWriter:
    """A bare (N, D) float32 array; the metadata goes to ``<file>.json`` beside it, as .npy has no room for any."""

    extension = ".npy"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        sidecar = path.with_name(path.name + ".json")
        # Both files are written in full before either is renamed into place, so a failure while writing leaves the
        # old pair; only a crash between the two renames could pair a new sidecar with an old array.
        with atomic_file(path) as array_file, atomic_file(sidecar) as metadata_file:
            np.save(array_file, _matrix(embeddings), allow_pickle=False)
            metadata_file.write(_metadata(embeddings, failures).encode("ascii") + b"\n")

    def read(self, path: Path) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
        sidecar = path.with_name(path.name + ".json")
        return _from_metadata(np.load(path, allow_pickle=False), sidecar.read_text(encoding="ascii"))


class NpzWriter:
    """Arrays ``embeddings`` (N, D) float32, ``paths`` (N,) unicode and ``metadata`` (a 0-d JSON string), all of
    which ``np.load(allow_pickle=False)`` opens."""

    extension = ".npz"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        with atomic_file(path) as f:
            np.savez(
                f,
                embeddings=_matrix(embeddings),
                paths=np.array([path_fields(e.path)["path"] for e in embeddings], dtype=np.str_),
                metadata=np.array(_metadata(embeddings, failures)),
            )

    def read(self, path: Path) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
        with np.load(path, allow_pickle=False) as saved:
            return _from_metadata(saved["embeddings"], str(saved["metadata"]))


class SafetensorsWriter:
    """The tensor ``embeddings`` (N, D) float32; the JSON metadata in the header under the key ``tsf``."""

    extension = ".safetensors"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        from safetensors.numpy import save

        with atomic_file(path) as f:
            f.write(save({"embeddings": _matrix(embeddings)}, metadata={"tsf": _metadata(embeddings, failures)}))

    def read(self, path: Path) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
        from safetensors import safe_open

        with safe_open(path, "np") as saved:
            return _from_metadata(saved.get_tensor("embeddings"), saved.metadata()["tsf"])


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
            raise MissingDependencyError("writing .parquet", "pyarrow", "parquet") from e
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
                "path": pa.array([path_fields(e.path)["path"] for e in embeddings], pa.string()),
                # the exact bytes of a name that is not UTF-8 (parquet's strings must be UTF-8), else null
                "path_bytes": pa.array([_exact_name(e.path) for e in embeddings], pa.binary()),
                "embedding": embedding_column,
                "model": pa.array([e.model.name for e in embeddings], pa.string()),
                "revision": pa.array([e.model.revision for e in embeddings], pa.string()),
                "pool": pa.array([e.pool for e in embeddings], pa.string()),
                "frame_indices": pa.array([[c["indices"] for c in v] for v in clips], pa.list_(pa.list_(pa.int64()))),
                "timestamps": pa.array([[c["timestamps"] for c in v] for v in clips], pa.list_(pa.list_(pa.float64()))),
                "warnings": pa.array([list(e.warnings) for e in embeddings], pa.list_(pa.string())),
            }
        )
        table = table.replace_schema_metadata({"tsf": _metadata(embeddings, failures)})
        with atomic_file(path) as f:
            self.pq.write_table(table, f)

    def read(self, path: Path) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
        table = self.pq.read_table(path)
        column = table.column("embedding").combine_chunks()
        matrix = column.values.to_numpy(zero_copy_only=False).reshape(len(table), column.type.list_size)
        return _from_metadata(matrix.astype(np.float32), table.schema.metadata[b"tsf"].decode("ascii"))


class JsonlEmbeddingWriter:
    """One ``VideoEmbedding.to_dict()`` per line, the vector as a list of numbers (exact: a float32 widens to a double
    without loss), then one ``VideoFailure.to_dict()`` per failure."""

    extension = ".jsonl"

    def write(self, path: Path, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure]) -> None:
        with atomic_file(path) as f:
            for item in (*embeddings, *failures):
                f.write(json_line(item.to_dict()))

    def read(self, path: Path) -> tuple[list[VideoEmbedding], list[VideoFailure]]:
        embeddings, failures = [], []
        for line in path.read_bytes().splitlines():
            obj = json.loads(line.decode("utf-8", ENCODING_ERRORS))
            if obj["status"] == "error":
                failures.append(_failure(obj))
            else:
                vector = np.array(obj["vector"], dtype=np.float32)
                embeddings.append(_embedding(vector, obj["pool"], obj["model"], obj))
        return embeddings, failures


EMBEDDING_WRITERS = {
    w.extension: w for w in (NpyWriter, NpzWriter, SafetensorsWriter, ParquetWriter, JsonlEmbeddingWriter)
}


def get_embedding_writer(path: str | os.PathLike):
    """The writer for ``path``'s extension; OutputError for an unknown one, or for .parquet without pyarrow."""
    return by_extension(Path(path), EMBEDDING_WRITERS, "embeddings")


def write_embeddings(
    path: str | os.PathLike, embeddings: Sequence[VideoEmbedding], failures: Sequence[VideoFailure] = ()
) -> None:
    """Write the embeddings, one row each in the order given, to ``path`` in the format of its extension, atomically.

    Failures get no row but are listed in the metadata, so that every input is accounted for.
    """
    path = Path(path)
    writer = get_embedding_writer(path)
    with reporting(path):
        writer.write(path, list(embeddings), list(failures))


# --- Resumable embedding runs -------------------------------------------------------------------------------------


class _JournalRecords(JsonlRecords):
    """The journal of an embedding run: JSONL records whose vectors are base64 of their float32 little-endian bytes,
    exact and about half the size of decimal text."""

    def encode(self, record, top_k: int | None) -> bytes:
        if isinstance(record, VideoFailure):
            return json_line(record.to_dict())
        vector = np.asarray(record.vector, dtype="<f4").tobytes()
        return json_line(
            {
                **path_fields(record.path),
                "status": record.status,
                "pool": record.pool,
                "model": record.model.to_dict(),
                "clips": [c.to_dict() for c in record.clips],
                "warnings": list(record.warnings),
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
            return _failure(obj)
        vector = np.frombuffer(base64.b64decode(obj["vector_f32le_b64"]), dtype="<f4").astype(np.float32)
        return _embedding(vector, obj["pool"], obj["model"], obj)


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
        with reporting(self.output):
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
    of an interrupted run as ``open_record_sink`` does, or, when an earlier run finished, a journal started from what
    ``output`` holds, so that new inputs are added to it. ``overwrite`` empties the journal; the old output stays until
    the new one replaces it.
    """
    output = Path(output)
    writer = get_embedding_writer(output)
    journal = output.with_name(output.name + ".partial.jsonl")
    if resume and not journal.exists() and has_content(output):
        _journal_from(output, writer, journal)
    if not resume and not overwrite and has_content(output):
        raise OutputError(f"{output} already exists: use --overwrite to replace it")
    sink = RecordSink(journal, _JournalRecords(), None, resume=resume, overwrite=overwrite, retry_failed=retry_failed)
    return EmbeddingJournal(output, writer, sink)


def _journal_from(output: Path, writer, journal: Path) -> None:
    """Start ``journal`` with every row and failure of a finished ``output``, in its order."""
    from safetensors import SafetensorError

    try:
        embeddings, failures = writer.read(output)
    # what a damaged file of each format raises: a bad zip (npz), header (safetensors, npy), JSON or schema
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile, SafetensorError) as exc:
        raise OutputError(f"{output}: cannot be read back to add to it ({exc}); use --overwrite to redo it") from exc
    records = _JournalRecords()
    with reporting(journal), atomic_file(journal) as file:
        for item in (*embeddings, *failures):
            file.write(records.encode(item, None))
