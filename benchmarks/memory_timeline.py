"""Peak memory of ``tsf timeline`` on a long video against a short one of the same resolution: the frames stream
through, so the peak should not grow with the video's length (the issue's bar: within 10%).

    python benchmarks/memory_timeline.py [--minutes 5 60] [--cache-dir DIR] [--model demo]

Each video (320x240 at 10 fps, a texture that pans a pixel a frame, H.264 from libx264 at preset ultrafast: cheap to
make) is made once and kept in the cache directory. Each run is a fresh ``tsf timeline VIDEO --model M`` process, its
peak resident set size read from the kernel when it exits (``os.wait4``): memory is not disturbed by a busy machine
the way time is, so these figures hold on a shared one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

SIZE = (320, 240)
FPS = 10


def ensure_video(cache: Path, minutes: int) -> Path:
    path = cache / f"timeline-{minutes}min-{SIZE[0]}x{SIZE[1]}-{FPS}fps.mp4"
    if path.exists():
        return path
    print(f"making {path} (once) ...", file=sys.stderr, flush=True)
    partial = path.with_suffix(".partial.mp4")  # renamed when complete, so an interrupted run is not reused
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (SIZE[1] // 8, 2 * SIZE[0] // 8, 3), dtype=np.uint8)
    texture = small.repeat(8, axis=0).repeat(8, axis=1)  # (H, 2W, 3): wide enough to pan across
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i in range(minutes * 60 * FPS):
            start = i % SIZE[0]
            frame = np.ascontiguousarray(texture[:, start : start + SIZE[0]])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """(peak resident set size in MiB, wall seconds) of one run of ``command``, which must succeed."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed with {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[5, 60])
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "tsf-bench")
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    videos = [(minutes, ensure_video(args.cache_dir, minutes)) for minutes in args.minutes]
    print(f"tsf timeline --model {args.model}, {SIZE[0]}x{SIZE[1]} at {FPS} fps, peak RSS of a fresh process each")
    peaks: dict[int, float] = {}
    for minutes, path in videos:
        command = [sys.executable, "-m", "tsf_cli", "timeline", str(path), "--model", args.model]
        peak, seconds = peak_rss_mib(command)
        peaks[minutes] = max(peak, peaks.get(minutes, 0.0))
        print(f"{minutes:>4} min: peak RSS {peak:7.1f} MiB ({seconds:.0f} s wall, not a speed figure)", flush=True)
    if len(peaks) > 1:
        print(f"longest / shortest video (highest peak of each): {peaks[max(peaks)] / peaks[min(peaks)]:.3f}")


if __name__ == "__main__":
    main()
