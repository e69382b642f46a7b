"""``--engine ray`` on a Ray instance started here (2 CPUs, shared by the module): the records of the local engine,
a decoder that segfaults or hangs costing only its file, an interrupted run resumed with no record lost or doubled,
Parquet folders read back with pyarrow, and sources and outputs in a local S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("moto")

import pyarrow.parquet as pq  # noqa: E402

from tests._cli import invoke  # noqa: E402
from tests._faults import load_views_or_fail  # noqa: E402
from tests._s3 import keys, local_s3, text  # noqa: E402
from tests._videos import corrupt_file, make_text, make_video  # noqa: E402
from tsf_cli import api  # noqa: E402
from tsf_cli.errors import EngineError  # noqa: E402
from tsf_cli.inference import ray_runner  # noqa: E402
from tsf_cli.inference.predictor import Predictor  # noqa: E402
from tsf_cli.inference.ray_session import PROBE_TIMEOUT_S, ray_session  # noqa: E402
from tsf_cli.inference.runner import Observer  # noqa: E402
from tsf_cli.io.objects import filesystem_and_path  # noqa: E402
from tsf_cli.results import VideoFailure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3():
    with local_s3() as client:  # before Ray starts: its workers inherit the endpoint and the credentials
        yield client


@pytest.fixture(scope="module")
def cluster(s3):
    """One Ray instance for the module, started as tsf starts its own; every run below finds it and leaves it."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT)  # the workers import tests._faults by name
    try:
        with ray_session(num_cpus=2) as started:
            yield started
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for i in range(4):
        make_video(folder / f"v{i}.mp4", frames=24 + 8 * i, size=(64, 48))
    make_video(folder / "w.webm", frames=20, size=(48, 64))
    corrupt_file(make_video(folder.parent / "source.mp4", frames=40), folder / "corrupt.mp4", start=0.0, length=1.0)
    make_text(folder / "readme.txt")
    return folder


@pytest.fixture(scope="module")
def options(checkpoint) -> dict:
    return {"model": str(checkpoint), "device": "cpu", "dtype": "fp32", "top_k": 3, "batch_size": 2}


def _jsonl(path: Path) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, path.read_text().splitlines())}


def _assert_same_records(ray_records: dict, local_records: dict) -> None:
    """Equal field for field, but probabilities within 1e-5: Ray groups videos into other batches, and a batch's
    shape may move a float in its last bits."""
    assert ray_records.keys() == local_records.keys()
    for path, expected in local_records.items():
        got, expected = dict(ray_records[path]), dict(expected)
        got_predictions, expected_predictions = got.pop("predictions", []), expected.pop("predictions", [])
        assert got == expected
        assert [p["label"] for p in got_predictions] == [p["label"] for p in expected_predictions]
        assert [p["probability"] for p in got_predictions] == pytest.approx(
            [p["probability"] for p in expected_predictions], abs=1e-5
        )


def test_the_records_are_the_local_engines(cluster, videos, options, tmp_path):
    local = api.batch([str(videos)], tmp_path / "local.jsonl", workers=1, **options)
    summary = api.batch([str(videos)], tmp_path / "ray.jsonl", engine="ray", **options)
    assert (summary.total, summary.failed) == (local.total, local.failed) == (7, 2)
    local_records = _jsonl(tmp_path / "local.jsonl")
    assert {p for p, r in local_records.items() if r["status"] == "error"} == {
        str(videos / "corrupt.mp4"),
        str(videos / "readme.txt"),
    }
    _assert_same_records(_jsonl(tmp_path / "ray.jsonl"), local_records)


def _work(checkpoint, **options):
    predictor = Predictor(str(checkpoint), device="cpu", dtype="fp32")
    spec = ray_runner.ModelSpec(str(checkpoint), None, "cpu", "fp32")
    return spec, ray_runner.Work(predictor.default_views, predictor.preprocess_config, **options)


def test_decoding_runs_in_tasks_apart_from_the_model_actors(cluster, checkpoint, videos):
    # Without its own memory request the decode map would be fused into the actors, which would decode one by one.
    spec, work = _work(checkpoint)
    dataset = ray_runner.build_dataset([str(videos / "v0.mp4")], spec, work, cluster)
    assert len(dataset.take_all()) == 1
    stats = dataset.stats()
    assert "Map(Decoder)" in stats and "MapBatches(ModelActor)" in stats
    assert "Map(Decoder)->MapBatches(ModelActor)" not in stats


def test_a_decoder_that_segfaults_or_hangs_costs_only_its_file(cluster, checkpoint, videos, tmp_path):
    segfault, hang = make_video(tmp_path / "segfault.mp4"), make_video(tmp_path / "hang.mp4")
    paths = [str(videos / "v0.mp4"), str(segfault), str(videos / "v1.mp4"), str(hang)]
    spec, work = _work(checkpoint, timeout=3)
    records = {r.path: r for r in ray_runner.run(paths, spec, work, cluster, load=load_views_or_fail)}
    assert records[str(segfault)] == VideoFailure(
        str(segfault), "WorkerCrash", f"{segfault}: the decoding process crashed (SIGSEGV)"
    )
    assert records[str(hang)] == VideoFailure(str(hang), "Timeout", f"{hang}: no result after 3 s")
    assert records[paths[0]].status == records[paths[2]].status == "ok"


class _StopAfter(Observer):
    """Ctrl-C after ``count`` records."""

    def __init__(self, count: int):
        self.count = count

    def finished(self, record) -> None:
        self.count -= 1
        if self.count == 0:
            raise KeyboardInterrupt


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="") as file:
        return [row["path"] for row in csv.DictReader(file)]


def test_an_interrupted_run_resumes_with_no_record_lost_or_twice(cluster, videos, options, tmp_path):
    output = tmp_path / "labels.csv"
    with pytest.raises(KeyboardInterrupt):
        api.batch([str(videos)], output, engine="ray", observer=_StopAfter(3), **options)
    assert len(_csv_paths(output)) == 3
    summary = api.batch([str(videos)], output, engine="ray", resume=True, **options)
    assert (summary.total, summary.skipped) == (7, 3)
    recorded = _csv_paths(output)
    assert sorted(recorded) == sorted(str(p) for p in videos.iterdir())  # each input once


def test_a_parquet_folder_reads_back_and_resumes(cluster, videos, options, tmp_path):
    folder = tmp_path / "labels"
    first = [str(videos / name) for name in ("v0.mp4", "v1.mp4", "corrupt.mp4")]
    summary = api.batch(first, f"{folder}/", engine="ray", **options)
    assert (summary.total, summary.failed) == (3, 1)
    again = api.batch([str(videos)], f"{folder}/", engine="ray", resume=True, **options)
    assert (again.total, again.skipped, again.failed, again.failed_before) == (7, 3, 1, 1)
    table = pq.read_table(folder)
    assert sorted(table.column("path").to_pylist()) == sorted(str(p) for p in videos.iterdir())
    rows = {row["path"]: row for row in table.to_pylist()}
    api.batch([str(videos / "v0.mp4")], tmp_path / "v0.jsonl", workers=0, **options)
    (expected,) = _jsonl(tmp_path / "v0.jsonl").values()
    got = rows[str(videos / "v0.mp4")]
    assert (got["status"], got["model"], got["crops"], got["clips"]) == (
        "ok",
        expected["model"]["name"],
        expected["crops"],
        expected["clips"],
    )
    assert [p["label"] for p in got["predictions"]] == [p["label"] for p in expected["predictions"]]
    assert [p["probability"] for p in got["predictions"]] == pytest.approx(
        [p["probability"] for p in expected["predictions"]], abs=1e-5
    )
    failure = rows[str(videos / "corrupt.mp4")]
    assert failure["status"] == "error" and failure["message"].startswith(str(videos / "corrupt.mp4"))


def test_sources_and_outputs_in_an_object_store(cluster, s3, videos, options, tmp_path):
    s3.create_bucket(Bucket="vids")
    for name in ("v0.mp4", "v1.mp4", "w.webm", "readme.txt"):
        s3.upload_file(str(videos / name), "vids", f"in/{name}")
    s3.put_object(Bucket="vids", Key="lists/some.txt", Body=b"../in/v0.mp4\ns3://vids/in/w.webm\n")
    output = "s3://vids/out/labels.jsonl"
    summary = api.batch(["s3://vids/in/*.mp4", "s3://vids/lists/some.txt"], output, engine="ray", **options)
    assert (summary.total, summary.failed) == (3, 0)
    assert keys(s3, "vids", "out/labels.jsonl") == ["out/labels.jsonl"]  # no segment left
    again = api.batch(["s3://vids/in/"], output, engine="ray", resume=True, **options)
    assert (again.total, again.skipped, again.failed) == (4, 3, 1)
    records = {r["path"]: r for r in map(json.loads, text(s3, "vids", "out/labels.jsonl").splitlines())}
    assert sorted(records) == [f"s3://vids/in/{n}" for n in ("readme.txt", "v0.mp4", "v1.mp4", "w.webm")]
    local = api.batch([str(videos / "v0.mp4")], tmp_path / "v0.jsonl", workers=0, **options)
    assert local.failed == 0
    (expected,) = _jsonl(tmp_path / "v0.jsonl").values()
    _assert_same_records({"v0": {**records["s3://vids/in/v0.mp4"], "path": "v0"}}, {"v0": {**expected, "path": "v0"}})

    # the query configures the store: the folder's slash goes before it
    query = f"?endpoint_override={os.environ['AWS_ENDPOINT_URL'].partition('://')[2]}&scheme=http"
    parquet = api.batch(["s3://vids/in/"], "s3://vids/parquet/" + query, engine="ray", **options)
    assert (parquet.total, parquet.failed) == (4, 1)
    filesystem, root = filesystem_and_path("s3://vids/parquet/")
    table = pq.read_table(root, filesystem=filesystem)
    assert sorted(table.column("path").to_pylist()) == sorted(records)
    assert table.column("status").to_pylist().count("error") == 1


def test_embeddings_are_the_local_engines(cluster, videos, options, tmp_path):
    options = {k: v for k, v in options.items() if k != "top_k"}
    api.embed_files([str(videos)], tmp_path / "local.npz", workers=1, pool="mean", **options)
    summary = api.embed_files([str(videos)], tmp_path / "ray.npz", engine="ray", pool="mean", **options)
    assert (summary.total, summary.failed) == (7, 2)
    with np.load(tmp_path / "local.npz") as local, np.load(tmp_path / "ray.npz") as ray:
        order = {p: i for i, p in enumerate(ray["paths"])}
        assert sorted(order) == sorted(local["paths"])
        rows = [order[p] for p in local["paths"]]
        np.testing.assert_allclose(ray["embeddings"][rows], local["embeddings"], atol=1e-5, rtol=0)
        failures = sorted(f["path"] for f in json.loads(str(ray["metadata"]))["failures"])
    assert failures == [str(videos / "corrupt.mp4"), str(videos / "readme.txt")]


def _assert_close(got, expected, path="record"):
    """Equal, except floats within 1e-5 (probabilities, and confidences averaged from them)."""
    if isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-5), path
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), path
        for key in expected:
            _assert_close(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_close(a, b, f"{path}[{i}]")
    else:
        assert got == expected, path


def test_timelines_are_the_local_engines(cluster, videos, options, tmp_path):
    long = make_video(tmp_path / "long.mp4", frames=96, fps=24, size=(64, 48))
    sources = [str(long), str(videos / "v3.mp4"), str(videos / "readme.txt")]
    timeline = {"timeline": True, "windows": True, "window": 1.0, "hop": 0.5}
    local = api.batch(sources, tmp_path / "local.jsonl", workers=1, **timeline, **options)
    summary = api.batch(sources, tmp_path / "ray.jsonl", engine="ray", **timeline, **options)
    assert (summary.total, summary.failed) == (local.total, local.failed) == (3, 1)
    local_records, ray_records = _jsonl(tmp_path / "local.jsonl"), _jsonl(tmp_path / "ray.jsonl")
    assert len(local_records[str(long)]["windows"]) == 7
    _assert_close(ray_records, local_records)


def test_the_command_takes_the_engine(cluster, videos, checkpoint, tmp_path, monkeypatch):
    output = tmp_path / "labels.jsonl"
    monkeypatch.chdir(checkpoint.parent)  # a model folder named relative to here, where the actors are not
    args = ["batch", videos / "v2.mp4", "-o", output, "--engine", "ray", "-m", checkpoint.name, "--device", "cpu"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    (record,) = _jsonl(output).values()
    assert record["status"] == "ok" and record["model"]["device"] == "cpu"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_cluster_at_the_address_is_one_line_in_seconds(monkeypatch):
    # RAY_ADDRESS names a cluster that is gone, as the file of the last `ray start` does after its head died, where
    # ray.init itself would wait for minutes.
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    began = time.monotonic()
    with pytest.raises(EngineError, match=f"^no Ray cluster at auto: nothing answers at 127.0.0.1:{port}$"):
        with ray_session("auto"):
            pass
    assert time.monotonic() - began < PROBE_TIMEOUT_S
    with pytest.raises(EngineError, match=r"Ray Data does not run through Ray Client \(ray://\)"):
        with ray_session("ray://127.0.0.1:10001"):
            pass
