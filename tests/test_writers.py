"""Writers: every format read back by its own library, resuming after a torn write, atomic replacement, refusals."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import sys

import numpy as np
import pytest

from tsf_cli import __version__
from tsf_cli.errors import MissingDependencyError, OutputError
from tsf_cli.io import embeddings, records
from tsf_cli.io.embeddings import get_embedding_writer, open_embedding_journal, write_embeddings
from tsf_cli.io.records import completed_paths, open_record_sink, write_json_document
from tsf_cli.results import (
    ClipFrames,
    ModelInfo,
    Prediction,
    VideoEmbedding,
    VideoFailure,
    VideoResult,
    path_fields,
    readable,
)

MODEL = ModelInfo("k400", "/cache/k400", "abc123", "float32", "cpu")
CLIPS = (ClipFrames((0, 4, 8), (0.0, 0.133333, 0.266667)), ClipFrames((9, 9, 9), (0.3, 0.3, 0.3), padded=2))
# What file names can hold and a naive writer would break on; the last is an undecodable byte as os.fsdecode gives it.
ODD_PATHS = ["plain.mp4", "a,b.mp4", 'say "hi".mp4', "line\nbreak.mp4", "cr\rlf.mp4", "vidéo 日本.mp4", "\udcff.mp4"]


def result(path: str, k: int = 2, model: ModelInfo = MODEL, warnings: tuple[str, ...] = ()) -> VideoResult:
    predictions = tuple(Prediction(f'label {i}, "quoted"', i, 1 / (3 + i)) for i in range(k))
    return VideoResult(path, predictions, CLIPS, 1, model, warnings)


def failure(path: str) -> VideoFailure:
    return VideoFailure(path, "VideoError", f"{path}: cannot decode, no frames")


def embedding(path: str, seed: int, dtype: str = "float32") -> VideoEmbedding:
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    model = ModelInfo("k400", "/cache/k400", "abc123", dtype, "cpu")
    return VideoEmbedding(path, vector, "cls", CLIPS, model)


def read_text(path) -> str:
    return path.read_text(encoding="utf-8")  # strict: outputs are valid UTF-8, whatever the file names


def read_records(path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in read_text(path).splitlines()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def expected_csv_row(record, k: int = 2) -> dict:
    named = path_fields(record.path)
    row = {"path": named["path"], "status": record.status}
    for rank in range(1, k + 1):
        p = record.predictions[rank - 1] if isinstance(record, VideoResult) else None
        row[f"label_{rank}"] = p.label if p else ""
        row[f"prob_{rank}"] = repr(p.probability) if p else ""
    ok = isinstance(record, VideoResult)
    row.update(
        error="" if ok else record.error,
        message="" if ok else readable(record.message),
        warnings="; ".join(record.warnings) if ok else "",
        model=MODEL.name if ok else "",
        revision=MODEL.revision if ok else "",
        path_bytes=named.get("path_bytes", ""),
    )
    return row


def expected(record, suffix: str) -> dict:
    return record.to_dict() if suffix == ".jsonl" else expected_csv_row(record)


@pytest.fixture(params=[".jsonl", ".csv"])
def suffix(request):
    return request.param


def test_records_round_trip(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    records = [result(p) if i % 2 == 0 else failure(p) for i, p in enumerate(ODD_PATHS)]
    with open_record_sink(out, top_k=2) as sink:
        for record in records:
            sink.write(record)
        assert sink.done == set(ODD_PATHS)
    assert read_records(out) == [expected(r, suffix) for r in records]
    if suffix == ".csv":
        assert float(read_records(out)[0]["prob_2"]) == records[0].predictions[1].probability


def test_warnings_reach_every_record_format(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    warned = result("a.mp4", warnings=("a still image, nothing moves", "the clip runs past the video's end"))
    with open_record_sink(out, top_k=2) as sink:
        sink.write(warned)
        sink.write(result("b.mp4"))
    rows = read_records(out)
    if suffix == ".jsonl":
        assert rows[0]["warnings"] == list(warned.warnings) and rows[1]["warnings"] == []
    else:
        assert rows[0]["warnings"] == "a still image, nothing moves; the clip runs past the video's end"
        assert rows[1]["warnings"] == ""


def test_a_csv_of_an_earlier_version_is_refused_with_the_way_out(tmp_path):
    out = tmp_path / "old.csv"
    out.write_text("path,status,label_1,prob_1,error,message,model,revision\nx.mp4,ok,a,0.5,,,m,\n")
    with pytest.raises(OutputError, match="written by an earlier tsf .* --overwrite"):
        open_record_sink(out, top_k=1, resume=True)


def test_files_written_before_path_bytes_still_resume(tmp_path):
    name = os.fsdecode(b"/videos/caf\xe9.mp4")  # written as its raw bytes then
    old_csv = tmp_path / "old.csv"
    header = "path,status,label_1,prob_1,error,message,warnings,model,revision\n"
    old_csv.write_bytes(header.encode() + b"/videos/caf\xe9.mp4,ok,a,0.5,,,,k400,abc123\n")
    with open_record_sink(old_csv, top_k=1, resume=True) as sink:
        assert sink.done == {name}
        sink.write(failure("b.mp4"))
    *_, added = old_csv.read_bytes().splitlines()
    assert len(next(csv.reader([added.decode()]))) == 9  # its own columns, no path_bytes
    assert completed_paths(old_csv) == {name, "b.mp4"}
    old_jsonl = tmp_path / "old.jsonl"
    old_jsonl.write_bytes(b'{"path": "/videos/caf\xe9.mp4", "status": "error", "error": "E", "message": "m"}\n')
    assert completed_paths(old_jsonl) == {name}


def test_a_torn_last_record_is_cut_off_and_redone_once(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with open_record_sink(out, top_k=2) as sink:
        sink.write(result("a,b.mp4"))
        sink.write(failure('say "hi".mp4'))
    complete = out.read_bytes()
    with open_record_sink(out, top_k=2, resume=True) as sink:
        sink.write(result("line\nbreak.mp4"))
    last = out.read_bytes()[len(complete) :]
    # Every way a crash can cut the last record: mid-cell, inside the quoted newline, just before its line end.
    for cut in range(1, len(last)):
        out.write_bytes(complete + last[:cut])
        assert completed_paths(out) == {"a,b.mp4", 'say "hi".mp4'}, cut
        assert out.read_bytes() == complete, cut

    out.write_bytes(complete + last[: len(last) // 2])
    with open_record_sink(out, top_k=2, resume=True) as sink:
        assert sink.done == {"a,b.mp4", 'say "hi".mp4'}
        assert sink.failed == {'say "hi".mp4'}
        sink.write(result("line\nbreak.mp4"))
        with pytest.raises(ValueError, match="already recorded"):
            sink.write(result("a,b.mp4"))
    assert out.read_bytes() == complete + last
    assert [r["path"] for r in read_records(out)] == ["a,b.mp4", 'say "hi".mp4', "line\nbreak.mp4"]


def test_a_torn_csv_header_is_rewritten(tmp_path):
    out = tmp_path / "out.csv"
    out.write_bytes(b"path,sta")
    with open_record_sink(out, top_k=2, resume=True) as sink:
        assert sink.done == set()
        sink.write(result("a.mp4"))
    assert read_records(out) == [expected_csv_row(result("a.mp4"))]


def test_retry_failed_drops_failures_so_they_are_recorded_once(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with open_record_sink(out, top_k=2) as sink:
        for record in (result("a.mp4"), failure("b.mp4"), result("c.mp4")):
            sink.write(record)
    assert completed_paths(out) == {"a.mp4", "b.mp4", "c.mp4"}
    with open_record_sink(out, top_k=2, resume=True, retry_failed=True) as sink:
        assert sink.done == {"a.mp4", "c.mp4"}
        assert sink.failed == set()
        sink.write(result("b.mp4"))
    assert read_records(out) == [expected(result(p), suffix) for p in ("a.mp4", "c.mp4", "b.mp4")]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_damage_before_the_last_record_is_refused(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_bytes(records.json_line(result("a.mp4").to_dict()) + b"{not json\n" + b'{"path": "c"')
    with pytest.raises(OutputError, match="line 2 is not a tsf record"):
        open_record_sink(jsonl, top_k=2, resume=True)
    table = tmp_path / "out.csv"
    table.write_text("name,score\nx,1\n")
    with pytest.raises(OutputError, match="header is not tsf's columns"):
        completed_paths(table)


def test_an_existing_output_needs_resume_or_overwrite(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    out.touch()  # an empty file holds nothing to lose
    with open_record_sink(out, top_k=2) as sink:
        sink.write(result("a.mp4"))
    with pytest.raises(OutputError, match="already exists: use --resume to continue it or --overwrite to replace it"):
        open_record_sink(out, top_k=2)
    with open_record_sink(out, top_k=2, overwrite=True) as sink:
        sink.write(result("b.mp4"))
    assert [r["path"] for r in read_records(out)] == ["b.mp4"]
    with pytest.raises(ValueError, match="exclude each other"):
        open_record_sink(out, top_k=2, resume=True, overwrite=True)


def test_resuming_with_other_settings_is_refused(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with open_record_sink(out, top_k=2) as sink:
        sink.write(result("a.mp4"))
    if suffix == ".csv":
        with pytest.raises(OutputError, match="columns for top 2, not 3: resume it with --top-k 2"):
            open_record_sink(out, top_k=3, resume=True)
    with open_record_sink(out, top_k=2, resume=True) as sink:
        sink.write(failure("b.mp4"))  # failures carry no model and always fit
        newer = ModelInfo("k400", "/cache/k400", "def456", "float32", "cpu")
        with pytest.raises(OutputError, match="revision abc123.*revision def456"):
            sink.write(result("c.mp4", model=newer))
    assert [r["path"] for r in read_records(out)] == ["a.mp4", "b.mp4"]


def test_unknown_extensions_and_unwritable_paths(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write records as '\.txt' files; use one of \.jsonl, \.csv"):
        open_record_sink(tmp_path / "out.txt", top_k=2)
    with pytest.raises(OutputError, match=r"without an extension; use one of \.npy, \.npz, \.safetensors, \.parquet"):
        get_embedding_writer(tmp_path / "embeddings")
    with pytest.raises(OutputError, match="cannot write: No such file or directory"):
        open_record_sink(tmp_path / "missing" / "out.jsonl", top_k=2)


def test_json_document():
    stream = io.StringIO()
    records = [result("vidéo.mp4"), failure("b.mp4")]
    write_json_document(records, stream)
    document = json.loads(stream.getvalue())
    assert list(document) == ["tsf_version", "results"]
    assert document == {"tsf_version": __version__, "results": [r.to_dict() for r in records]}
    assert list(document["results"][0]) == ["path", "status", "warnings", "model", "clips", "crops", "predictions"]
    assert "vidéo.mp4" in stream.getvalue()


# --- Embeddings ---------------------------------------------------------------------------------------------------


def read_embeddings(path) -> tuple[np.ndarray, list[str], dict]:
    """(matrix, paths, metadata) as a user of each format would read them, with that format's own library."""
    if path.suffix == ".npy":
        metadata = json.loads(path.with_name(path.name + ".json").read_text())
        return np.load(path, allow_pickle=False), [v["path"] for v in metadata["videos"]], metadata
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return z["embeddings"], z["paths"].tolist(), json.loads(str(z["metadata"]))
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(path, framework="np") as f:
            metadata = json.loads(f.metadata()["tsf"])
        matrix = load_file(path)["embeddings"].numpy()
        return matrix, [v["path"] for v in metadata["videos"]], metadata
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        vectors = table.schema.field("embedding").type
        assert str(vectors).startswith("fixed_size_list<element: float>")
        assert table.column("timestamps").to_pylist() == [[list(c.to_dict()["timestamps"]) for c in CLIPS]] * len(table)
        matrix = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(table), vectors.list_size)
        return matrix, table.column("path").to_pylist(), json.loads(table.schema.metadata[b"tsf"])
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ok = [d for d in lines if d["status"] == "ok"]
    matrix = np.array([d["vector"] for d in ok], dtype=np.float32) if ok else np.zeros((0, 0), np.float32)
    return matrix, [d["path"] for d in ok], {"failures": [d for d in lines if d["status"] == "error"]}


def _written(out) -> set[str]:
    return {out.name, out.name + ".json"} if out.suffix == ".npy" else {out.name}


@pytest.fixture(params=list(embeddings.EMBEDDING_WRITERS))
def embedding_suffix(request):
    if request.param == ".parquet":
        pytest.importorskip("pyarrow")
    return request.param


@pytest.mark.parametrize("count", [3, 0])
def test_embeddings_round_trip(tmp_path, embedding_suffix, count):
    out = tmp_path / f"emb{embedding_suffix}"
    embeddings = [embedding(p, seed) for seed, p in enumerate(["a,b.mp4", 'say "hi".mp4', "vidéo 日本.mp4"][:count])]
    write_embeddings(out, embeddings, [failure("broken.mp4")])
    matrix, paths, metadata = read_embeddings(out)
    assert matrix.dtype == np.float32
    expected_matrix = np.stack([e.vector for e in embeddings]) if embeddings else np.zeros((0, 0), np.float32)
    np.testing.assert_array_equal(matrix, expected_matrix)
    assert paths == [e.path for e in embeddings]
    assert metadata["failures"] == [failure("broken.mp4").to_dict()]
    if embedding_suffix != ".jsonl":  # each JSONL line carries its own model and clips, checked in the journal test
        assert metadata["model"] == (MODEL.to_dict() if embeddings else None)
        assert metadata["videos"] == [
            {"path": e.path, "clips": [c.to_dict() for c in CLIPS], "warnings": []} for e in embeddings
        ]
    assert {p.name for p in tmp_path.iterdir()} == _written(out)  # no temporary file left behind


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path, embedding_suffix, monkeypatch):
    out = tmp_path / f"emb{embedding_suffix}"
    write_embeddings(out, [embedding("old.mp4", 0)])
    before = {name: (tmp_path / name).read_bytes() for name in _written(out)}

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    # fsync is where a full disk often shows (delayed allocation): by then the new file is completely written.
    monkeypatch.setattr(embeddings.os, "fsync", disk_full)
    with pytest.raises(OutputError, match="cannot write: No space left on device"):
        write_embeddings(out, [embedding("new.mp4", 1)])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_parquet_without_pyarrow_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(
        MissingDependencyError, match=r"writing \.parquet needs pyarrow: pip install \"tsf-cli\[parquet\]\""
    ):
        open_embedding_journal(tmp_path / "emb.parquet")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_embedding_run_resumes_from_its_journal(tmp_path):
    out = tmp_path / "emb.npz"
    journal = tmp_path / "emb.npz.partial.jsonl"
    first, second = embedding("a,b.mp4", 0), embedding("line\nbreak.mp4", 1)
    with pytest.raises(KeyboardInterrupt):
        with open_embedding_journal(out) as run:
            run.write(first)
            run.write(failure("broken.mp4"))
            raise KeyboardInterrupt
    assert not out.exists()
    with journal.open("ab") as f:  # the crash also tore a record in half
        f.write(embeddings._JournalRecords().encode(second, None)[:50])

    with pytest.raises(OutputError, match="partial.jsonl already exists: use --resume"):
        open_embedding_journal(out)
    with open_embedding_journal(out, resume=True) as run:
        assert run.done == {"a,b.mp4", "broken.mp4"}
        assert run.failed == {"broken.mp4"}
        with pytest.raises(OutputError, match="dtype float32.*dtype float16"):
            run.write(embedding("half.mp4", 2, dtype="float16"))
        run.write(second)
    assert not journal.exists()
    for got, want in zip(run.embeddings, [first, second], strict=True):  # == on the dataclasses would compare arrays
        assert (got.path, got.pool, got.clips, got.model) == (want.path, want.pool, want.clips, want.model)
        assert got.vector.dtype == np.float32 and np.array_equal(got.vector, want.vector)
    assert run.failures == [failure("broken.mp4")]
    matrix, paths, metadata = read_embeddings(out)
    np.testing.assert_array_equal(matrix, np.stack([first.vector, second.vector]))
    assert paths == ["a,b.mp4", "line\nbreak.mp4"]
    assert metadata["failures"] == [failure("broken.mp4").to_dict()]

    with pytest.raises(OutputError, match="already exists: use --overwrite"):
        open_embedding_journal(out)


def test_resuming_a_finished_embedding_file_adds_new_inputs(tmp_path, embedding_suffix):
    out = tmp_path / f"emb{embedding_suffix}"
    warned = VideoEmbedding("a,b.mp4", embedding("x", 0).vector, "cls", CLIPS, embedding("x", 0).model, ("still",))
    with open_embedding_journal(out) as run:
        run.write(warned)
        run.write(failure("broken.mp4"))
    with open_embedding_journal(out, resume=True) as run:
        assert run.done == {"a,b.mp4", "broken.mp4"} and run.failed == {"broken.mp4"}
        with pytest.raises(OutputError, match="dtype float32.*dtype float16"):
            run.write(embedding("half.mp4", 2, dtype="float16"))
        run.write(embedding("new.mp4", 1))
    matrix, paths, metadata = read_embeddings(out)
    assert paths == ["a,b.mp4", "new.mp4"]
    np.testing.assert_array_equal(matrix, np.stack([warned.vector, embedding("new.mp4", 1).vector]))
    assert metadata["failures"] == [failure("broken.mp4").to_dict()]
    assert run.embeddings[0].warnings == ("still",) and run.embeddings[0].clips == CLIPS
    assert {p.name for p in tmp_path.iterdir()} == _written(out)


def test_a_finished_file_that_cannot_be_read_back_is_refused_with_the_way_out(tmp_path):
    out = tmp_path / "emb.npz"
    out.write_bytes(b"not an npz file")
    with pytest.raises(OutputError, match="cannot be read back to add to it .* use --overwrite"):
        open_embedding_journal(out, resume=True)
    assert out.read_bytes() == b"not an npz file" and not (tmp_path / "emb.npz.partial.jsonl").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
def test_a_file_another_run_is_writing_is_refused_until_it_ends(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with open_record_sink(path, top_k=2) as first:
        first.write(result("a.mp4"))
        before = path.read_bytes()
        for options in ({"resume": True}, {"overwrite": True}, {"resume": True, "retry_failed": True}):
            with pytest.raises(OutputError, match="is being written by another tsf run"):
                open_record_sink(path, top_k=2, **options)
        assert path.read_bytes() == before  # the refused runs neither repaired, emptied nor appended
        first.write(result("b.mp4"))
    with open_record_sink(path, top_k=2, resume=True) as again:  # released when the first run ended
        assert again.done == {"a.mp4", "b.mp4"}


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
def test_an_embedding_run_locks_its_journal_until_the_output_is_written(tmp_path):
    output = tmp_path / "vectors.npy"
    with open_embedding_journal(output) as journal:
        journal.write(embedding("a.mp4", 1))
        with pytest.raises(OutputError, match="being written by another tsf run"):
            open_embedding_journal(output, resume=True)
    assert output.exists() and not (tmp_path / "vectors.npy.partial.jsonl").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
def test_the_lock_follows_a_file_that_retry_failed_rewrote(tmp_path):
    path = tmp_path / "out.jsonl"
    with open_record_sink(path, top_k=2) as sink:
        sink.write(result("a.mp4"))
        sink.write(failure("bad.mp4"))
    with open_record_sink(path, top_k=2, resume=True, retry_failed=True) as first:  # the file is replaced whole
        with pytest.raises(OutputError, match="being written by another tsf run"):
            open_record_sink(path, top_k=2, resume=True)
        with pytest.raises(OutputError, match="being written by another tsf run"):
            records.completed_paths(path)
        first.write(result("bad.mp4"))
    assert [r["path"] for r in read_records(path)] == ["a.mp4", "bad.mp4"]


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
def test_a_file_system_without_locks_still_gets_its_records(tmp_path, monkeypatch):
    import errno as errors
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errors.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "out.jsonl"
    with open_record_sink(path, top_k=2) as sink:
        sink.write(result("a.mp4"))
    assert [r["path"] for r in read_records(path)] == ["a.mp4"]
