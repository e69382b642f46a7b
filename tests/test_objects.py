"""Object stores without Ray: sources listed as local ones are, videos read in ranged requests (each byte once), and
record files kept as segment objects that survive a crash and never record a video twice. A local S3 (moto on
127.0.0.1) stands in for the cloud."""

from __future__ import annotations

import json
import math
import os

import pytest

pytest.importorskip("moto")
pytest.importorskip("pyarrow")

from tests._cli import invoke, one_error_line  # noqa: E402
from tests._s3 import keys, local_s3, text  # noqa: E402
from tests._videos import make_text, make_video  # noqa: E402
from tsf_cli import api  # noqa: E402
from tsf_cli.errors import OutputError, TsfError  # noqa: E402
from tsf_cli.io.object_records import ObjectRecordSink  # noqa: E402
from tsf_cli.io.objects import list_objects, open_object  # noqa: E402
from tsf_cli.media.decode import sample_video  # noqa: E402
from tsf_cli.results import VideoFailure  # noqa: E402


@pytest.fixture()
def s3():
    with local_s3() as client:
        client.create_bucket(Bucket="bkt")
        yield client


def test_sources_are_prefixes_globs_lists_and_objects(s3):
    for key in ("in/a.mp4", "in/b.mkv", "in/sub/c.mp4", "in/.hidden/d.mp4", "in/.e.mp4"):
        s3.put_object(Bucket="bkt", Key=key, Body=b"x")
    s3.put_object(Bucket="bkt", Key="lists/l.txt", Body=b"../in/a.mp4\n# a comment\ns3://bkt/in/sub/c.mp4\n")
    assert list_objects("s3://bkt/in") == ["s3://bkt/in/a.mp4", "s3://bkt/in/b.mkv"]
    assert list_objects("s3://bkt/in/", recursive=True) == [
        "s3://bkt/in/a.mp4",
        "s3://bkt/in/b.mkv",
        "s3://bkt/in/sub/c.mp4",
    ]
    assert list_objects("s3://bkt/in/*.mp4") == ["s3://bkt/in/a.mp4"]
    assert list_objects("s3://bkt/**/*.mp4", recursive=True) == ["s3://bkt/in/a.mp4", "s3://bkt/in/sub/c.mp4"]
    assert list_objects("s3://bkt/in/.hidden/*.mp4") == ["s3://bkt/in/.hidden/d.mp4"]
    assert list_objects("s3://bkt/lists/l.txt") == ["s3://bkt/in/a.mp4", "s3://bkt/in/sub/c.mp4"]
    assert list_objects("s3://bkt/in/b.mkv") == ["s3://bkt/in/b.mkv"]
    with pytest.raises(TsfError, match="no such object or prefix"):
        list_objects("s3://bkt/nothing/")
    with pytest.raises(TsfError, match="matches no object"):
        list_objects("s3://bkt/in/*.webm")


def test_a_video_is_read_in_ranged_requests_each_byte_once(s3, tmp_path):
    # The decoder reads every packet to index the stream, then seeks back to keyframes: the cache serves the seeks.
    video = make_video(tmp_path / "v.mp4", frames=96, size=(160, 120), pattern="texture", gop=12)
    s3.upload_file(str(video), "bkt", "v.mp4")
    block = 16 << 10
    with open_object("s3://bkt/v.mp4", block_size=block) as file:
        sampled = sample_video(file, 8)
        assert file.fetched == file.size == video.stat().st_size
        assert file.requests == math.ceil(file.size / block) > 4
    local = sample_video(video, 8)
    assert [c.indices for c in sampled.clips] == [c.indices for c in local.clips]
    assert all((a.frames == b.frames).all() for a, b in zip(sampled.clips, local.clips, strict=True))


def test_a_missing_or_empty_object_fails_as_a_missing_or_empty_file(s3):
    s3.put_object(Bucket="bkt", Key="empty.mp4", Body=b"")
    with pytest.raises(TsfError, match="s3://bkt/none.mp4: no such file"):
        open_object("s3://bkt/none.mp4")
    with pytest.raises(TsfError, match=r"empty file \(0 bytes\)"):
        open_object("s3://bkt/empty.mp4")


def test_batch_reads_and_writes_an_object_store_on_this_machine(s3, checkpoint, tmp_path):
    for i in range(2):
        s3.upload_file(str(make_video(tmp_path / f"v{i}.mp4", frames=24)), "bkt", f"in/v{i}.mp4")
    s3.upload_file(str(make_text(tmp_path / "notes.txt")), "bkt", "in/notes.txt")
    options = {"model": str(checkpoint), "device": "cpu", "dtype": "fp32", "top_k": 2, "workers": 0}
    summary = api.batch(["s3://bkt/in/"], "s3://bkt/out/labels.jsonl", **options)
    assert (summary.total, summary.failed) == (3, 1)
    records = {r["path"]: r for r in map(json.loads, text(s3, "bkt", "out/labels.jsonl").splitlines())}
    assert records["s3://bkt/in/notes.txt"]["status"] == "error"
    assert records["s3://bkt/in/notes.txt"]["message"].startswith("s3://bkt/in/notes.txt: not a video")
    local = api.batch([str(tmp_path / "v0.mp4")], tmp_path / "v0.jsonl", **options)
    assert local.failed == 0
    (expected,) = map(json.loads, (tmp_path / "v0.jsonl").read_text().splitlines())
    got = {**records["s3://bkt/in/v0.mp4"], "path": expected["path"]}
    # within 1e-6: there two videos shared a batch, here one is alone, and a batch's shape may move the last bits
    probabilities = [[p.pop("probability") for p in r["predictions"]] for r in (got, expected)]
    assert got == expected and probabilities[0] == pytest.approx(probabilities[1], abs=1e-6)
    assert keys(s3, "bkt", "out/labels.jsonl") == ["out/labels.jsonl"]  # the journal's segments are gone


def test_a_query_that_configures_the_store_is_no_part_of_the_object_s_name(s3, checkpoint, tmp_path):
    s3.upload_file(str(make_video(tmp_path / "v.mp4", frames=24)), "bkt", "in/v.mp4")
    query = f"?endpoint_override={os.environ['AWS_ENDPOINT_URL'].partition('://')[2]}&scheme=http"
    options = {"model": str(checkpoint), "device": "cpu", "dtype": "fp32", "workers": 0}
    summary = api.batch(["s3://bkt/in/v.mp4" + query], "s3://bkt/out/t.jsonl" + query, timeline=True, **options)
    assert (summary.total, summary.failed) == (1, 0)
    (record,) = map(json.loads, text(s3, "bkt", "out/t.jsonl").splitlines())
    assert record["status"] == "ok" and record["segments"]


def test_the_commands_read_objects_or_say_they_do_not(s3, checkpoint, tmp_path):
    """classify and timeline read an object (they called it "no such file"); info says that it reads none."""
    s3.upload_file(str(make_video(tmp_path / "v.mp4", frames=24)), "bkt", "in/v.mp4")
    for command in ("classify", "timeline"):
        result = invoke(command, "s3://bkt/in/v.mp4", "--model", checkpoint, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["results"][0]["path"] == "s3://bkt/in/v.mp4"
    info = invoke("info", "s3://bkt/in/v.mp4")
    assert info.exit_code == 3 and "not objects in a store" in one_error_line(info)


def test_resume_refuses_to_mix_other_settings_into_an_object_and_says_which(s3, checkpoint, tmp_path):
    s3.upload_file(str(make_video(tmp_path / "v.mp4", frames=24)), "bkt", "in/v.mp4")
    s3.upload_file(str(make_video(tmp_path / "w.mp4", frames=24)), "bkt", "in/w.mp4")
    options = {"model": str(checkpoint), "device": "cpu", "dtype": "fp32", "workers": 0}
    api.batch(["s3://bkt/in/v.mp4"], "s3://bkt/r.jsonl", top_k=2, **options)
    with pytest.raises(OutputError, match=r"holds results of .*predictions 2, this run gives .*predictions 3"):
        api.batch(["s3://bkt/in/"], "s3://bkt/r.jsonl", top_k=3, resume=True, **options)
    assert _paths(s3, "r.jsonl") == ["s3://bkt/in/v.mp4"]


def _paths(s3, key: str) -> list[str]:
    return [json.loads(line)["path"] for line in text(s3, "bkt", key).splitlines()]


def test_a_crashed_run_keeps_its_segments_and_resume_finishes_the_file(s3):
    sink = ObjectRecordSink("s3://bkt/out.jsonl", 5, max_records=2)
    for i in range(5):
        sink.write(VideoFailure(f"v{i}", "VideoError", "x"))
    # never closed, as when the process is killed: two segments of two records made it, the fifth did not
    assert len(keys(s3, "bkt", "out.jsonl.partial/")) == 2 and "out.jsonl" not in keys(s3, "bkt")
    with pytest.raises(OutputError, match="already exists"):
        ObjectRecordSink("s3://bkt/out.jsonl", 5)
    with ObjectRecordSink("s3://bkt/out.jsonl", 5, resume=True) as again:
        assert again.done == {"v0", "v1", "v2", "v3"}
        again.write(VideoFailure("v4", "VideoError", "x"))
    assert _paths(s3, "out.jsonl") == ["v0", "v1", "v2", "v3", "v4"]
    assert keys(s3, "bkt") == ["out.jsonl"]  # the segments and pyarrow's marker of their "folder" are gone


def test_a_crash_between_writing_the_output_and_deleting_the_segments_records_nothing_twice(s3):
    sink = ObjectRecordSink("s3://bkt/o.csv", 2)
    sink.write(VideoFailure("a", "VideoError", "x"))
    sink.flush()
    (segment,) = keys(s3, "bkt", "o.csv.partial/")
    s3.copy_object(Bucket="bkt", Key="o.csv", CopySource={"Bucket": "bkt", "Key": segment})
    with ObjectRecordSink("s3://bkt/o.csv", 2, resume=True) as again:
        assert again.done == {"a"}
        again.write(VideoFailure("b", "VideoError", "y"))
    rows = text(s3, "bkt", "o.csv").splitlines()
    assert rows[0].startswith("path,status,label_1,prob_1,label_2,prob_2,error")
    assert [row.split(",")[0] for row in rows[1:]] == ["a", "b"]


def test_retry_failed_replaces_the_failure(s3):
    with ObjectRecordSink("s3://bkt/r.jsonl", 1) as sink:
        sink.write(VideoFailure("a", "VideoError", "first"))
    with ObjectRecordSink("s3://bkt/r.jsonl", 1, resume=True, retry_failed=True) as sink:
        assert "a" not in sink.done and not sink.failed
        sink.write(VideoFailure("a", "VideoError", "second"))
    assert [json.loads(line)["message"] for line in text(s3, "bkt", "r.jsonl").splitlines()] == ["second"]
