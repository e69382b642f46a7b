"""``tsf timeline --model demo`` against a plain full decode of the same 1080p H.264 file, in the same run.

    python benchmarks/bench_timeline.py [--seconds 180] [--runs 3] [--cache-dir DIR]

The issue's goal: at most 1.2x the full decode with dense windows, well under 1x when the windows need few frames.

- full decode: PyAV, every frame of the stream (``container.decode``), with FFmpeg's threads as tsf sets them; once
  without and once with ``frame.to_ndarray(format="rgb24")``, the conversion every pipeline needs before a model.
- dense: the demo's defaults, windows of 2 s every 1 s, 8 frames each (about half of the frames of a 30 fps video).
- sparse: windows of 2 s every 30 s.
tsf runs through ``tsf_cli.timeline`` with the model loaded beforehand: what ``tsf timeline`` does once it has
started. Each figure is the median of ``--runs`` runs. Timings depend on what else the machine does: the load
average is printed before and after, and ratios from a busy machine are not the tool's.

The video (a panning texture with film grain, about 3.5 Mbit/s at 30 fps like web video, libx264 veryfast crf 23,
a keyframe every 250 frames) is made once and kept in the cache directory, so reruns only time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tsf_cli  # noqa: E402
from tests._videos import _texture  # noqa: E402

SIZE = (1920, 1080)
FPS = 30
GOP = 250


def ensure_video(cache: Path, seconds: int) -> Path:
    path = cache / f"timeline-1080p-{seconds}s.mp4"
    if path.exists():
        return path
    print(f"making {path} (once; minutes at 1080p) ...", file=sys.stderr, flush=True)
    partial = path.with_suffix(".partial.mp4")  # renamed when complete, so an interrupted run is not reused
    background, grains = _texture(*SIZE)
    options = {"preset": "veryfast", "crf": "23", "g": str(GOP), "sc_threshold": "0"}
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i in range(seconds * FPS):
            # tests._videos' texture pattern without its frame-number bars (they count to 4096 frames only)
            rgb = np.roll(background, (i * 7) % SIZE[0], axis=1).astype(np.int16) + grains[i % len(grains)]
            frame = av.VideoFrame.from_ndarray(rgb.clip(0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def full_decode(path: Path, rgb: bool) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"  # as tsf decodes
        count = 0
        for frame in container.decode(stream):
            if rgb:
                frame.to_ndarray(format="rgb24")
            count += 1
    return count


def median_seconds(work, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=180, help="length of the video (180: three minutes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "tsf-bench")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = ensure_video(args.cache_dir, args.seconds)
    warnings.filterwarnings("ignore", message="a hop of .* is longer than")  # sparse windows are the point here
    predictor = tsf_cli.load_model("demo", device="cpu")
    print(f"{path.name}: {SIZE[0]}x{SIZE[1]} H.264, {args.seconds} s at {FPS} fps; median of {args.runs} runs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    decode = median_seconds(lambda: full_decode(path, rgb=False), args.runs)
    decode_rgb = median_seconds(lambda: full_decode(path, rgb=True), args.runs)
    rows = [("full decode (PyAV, every frame)", decode), ("full decode + rgb24 (every frame)", decode_rgb)]
    for name, hop in (("tsf timeline --model demo, dense (2 s every 1 s)", None), ("sparse (2 s every 30 s)", 30.0)):
        timed = median_seconds(lambda hop=hop: tsf_cli.timeline(path, model=predictor, hop=hop), args.runs)
        rows.append((name, timed))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        ratios = f"{seconds / decode:5.2f}x decode  {seconds / decode_rgb:5.2f}x decode+rgb"
        print(f"{name:<{width}}  {seconds:7.2f} s  {ratios}")


if __name__ == "__main__":
    main()
