"""http(s) URLs: read through FFmpeg's http protocol with range requests, over http,tcp or https,tls,tcp and nothing
else, certificates checked, redirects to local files refused; against a server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests._cli import invoke
from tests._range_server import RangeServer
from tests._videos import make_video
from tsf_cli.errors import VideoError
from tsf_cli.media.decode import sample_video


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    make_video(folder / "clip.mkv", frames=48, gop=8)
    make_video(folder / "clip.mp4", frames=48, gop=8)  # the index (moov) at the end
    # 140 KB, more than FFmpeg reads ahead: its moov, at the end, is reached only by seeking
    make_video(folder / "grainy.mp4", frames=48, gop=8, size=(320, 240), pattern="texture")
    return folder


def test_classify_info_and_batch_read_an_http_url(checkpoint, served, tmp_path):
    with RangeServer(served) as server:
        url = server.url("clip.mkv")
        result = invoke("classify", url, "--model", checkpoint, "--json")  # a Path argument made it https:/...
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["results"][0]["path"] == url
        assert any(ranged for _, _, ranged in server.requests)  # FFmpeg asked for byte ranges
        info = invoke("info", url, "--json")
        assert info.exit_code == 0 and json.loads(info.stdout)["streams"][0]["num_frames"] == 48
        listed = tmp_path / "list.txt"
        listed.write_text(f"{url}\n{server.url('clip.mp4')}\n")
        out = tmp_path / "out.jsonl"
        batch = invoke("batch", listed, "-o", out, "--model", checkpoint, "--workers", "0")
        assert batch.exit_code == 0 and sorted(json.loads(r)["path"] for r in out.read_text().splitlines()) == [
            server.url("clip.mkv"),
            server.url("clip.mp4"),
        ]


def test_explain_and_timeline_read_an_http_url(checkpoint, served, tmp_path):
    with RangeServer(served) as server:
        url = server.url("clip.mkv")  # a Path argument made it http:/127...
        explained = invoke("explain", url, "--model", checkpoint, "-o", tmp_path / "why.npz")
        assert explained.exit_code == 0, explained.output
        heatmaps = np.load(tmp_path / "why.npz")["heatmaps"]
        assert np.allclose(heatmaps.sum(axis=(1, 2)), 1, atol=1e-4)
        timeline = invoke("timeline", url, "--model", checkpoint, "--json")
        assert timeline.exit_code == 0 and json.loads(timeline.stdout)["results"][0]["path"] == url


def test_a_url_gives_the_frames_of_the_file(served):
    with RangeServer(served) as server:
        for name in ("clip.mkv", "clip.mp4"):
            remote, local = sample_video(server.url(name), 8), sample_video(served / name, 8)
            assert remote.clips[0].indices == local.clips[0].indices and remote.warnings == ()
            assert np.array_equal(remote.clips[0].frames, local.clips[0].frames)


def test_without_range_requests_a_stream_decodes_forward_or_says_why_not(served):
    with RangeServer(served, ranges=False) as server:
        assert len(sample_video(server.url("clip.mkv"), 8).clips[0].indices) == 8
        with pytest.raises(VideoError, match="does the server support range requests"):
            sample_video(server.url("grainy.mp4"), 8)


def test_urls_use_http_s_own_protocols_and_a_redirect_to_a_local_file_is_refused(served, tmp_path):
    from tsf_cli.media.sources import open_options

    assert open_options("http://h/v.mp4", None)["protocol_whitelist"] == "http,tcp"
    assert open_options("HTTPS://h/v.mp4", None)["protocol_whitelist"] == "https,tls,tcp"
    assert open_options("/videos/v.mp4", None)["protocol_whitelist"] == "file"
    secret = make_video(tmp_path / "local.mkv", frames=12)
    with RangeServer(served) as server:
        server.redirects["/elsewhere.mkv"] = "/clip.mkv"
        assert len(sample_video(server.url("elsewhere.mkv"), 4).clips[0].indices) == 4  # a redirect is followed
        server.redirects["/local.mkv"] = f"file://{secret}"
        with pytest.raises(VideoError, match="cannot open the URL"):
            sample_video(server.url("local.mkv"), 4)  # it played the local file


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_checks_the_certificate(served, certificate, monkeypatch):
    cert, key = certificate
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with RangeServer(served, certfile=cert, keyfile=key) as server:
        url = server.url("clip.mkv")
        with pytest.raises(VideoError, match="TLS failure: is the server's certificate trusted"):
            sample_video(url, 4)  # FFmpeg's own default (tls_verify=0) played it
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert len(sample_video(url, 4).clips[0].indices) == 4


def test_a_server_that_stops_answering_fails_a_timeline_in_one_line(checkpoint, served):
    """tsf timeline had no time limit: a URL whose server stopped answering hung it for ever."""
    with RangeServer(served) as server:
        server.stall_after = 20_000
        began = time.monotonic()
        command = [sys.executable, "-m", "tsf_cli", "timeline", server.url("grainy.mp4"), "--model", str(checkpoint)]
        run = subprocess.run([*command, "--timeout", "2"], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - began
    assert run.returncode == 3, run.stderr
    assert run.stderr.strip().count("\n") == 0 and "grainy.mp4" in run.stderr, run.stderr
    assert took < 60
