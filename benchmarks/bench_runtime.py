"""Whole-process `tsf classify` with `--runtime onnx` against `--runtime torch`: what a user waits for, start to end.

    python benchmarks/bench_runtime.py                  # base size, 1 clip x 3 crops, 3 interleaved repeats
    python benchmarks/bench_runtime.py --cpus 0         # pinned to one core: CPU seconds then measure the work alone
    python benchmarks/bench_runtime.py --model demo     # the bundled model (a short job: start-up dominates)

Each run is the installed command in a fresh process (`python -m tsf_cli classify VIDEO --json`), on one generated
clip (10 s of 640x360 at 30 fps), 1 clip x 3 crops (a batch of 3 views, as base-k400 classifies), with the random
base-size checkpoint of bench_batch.py (8 frames x 224, 400 labels). The runtimes:

- torch --dtype fp32, and torch with the default dtype (auto: bf16 on CPUs with AVX512-BF16 or AMX, else fp32);
- onnx (fp32 on a CPU), its graph already in the cache: the first run, which exports it, is timed apart.

For each: the median wall-clock seconds, CPU seconds (user + system of the process and its threads) and peak memory
(max RSS) over the repeats, interleaved so that a busy machine slows every runtime alike, and the speed-up over
torch fp32. On a shared machine trust CPU seconds with --cpus 0 more than wall-clock ones; the load average is
printed before and after. Last, the largest difference between the onnx and torch fp32 probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_batch import build_checkpoint, build_folder  # noqa: E402


def run(command: list[str], environment: dict, cpus: set[int] | None) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds and max RSS (MB) of one process, and its JSON document."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage, threads included
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model instead of the random base checkpoint (e.g. demo, base-k400)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each runtime; the median is reported")
    parser.add_argument("--crops", type=int, default=3)
    parser.add_argument("--cpus", help="run pinned to these cores (e.g. 0, or 0,1)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tsf-bench")
    args = parser.parse_args()
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    video = next(build_folder(args.cache, 1, 10, (640, 360)).glob("*.mp4"))
    model = args.model or str(build_checkpoint(args.cache))

    base = [sys.executable, "-m", "tsf_cli", "classify", str(video), "--model", model, "--json"]
    base += ["--clips", "1", "--crops", str(args.crops), "--top-k", "5"]
    runtimes = {
        "torch --dtype fp32": [*base, "--runtime", "torch", "--dtype", "fp32"],
        "torch (default dtype)": [*base, "--runtime", "torch"],
        "onnx (fp32)": [*base, "--runtime", "onnx"],
    }
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tsf-bench-cache-") as cache:
        environment = {**os.environ, "TSF_CACHE": cache}
        first = run(runtimes["onnx (fp32)"], environment, cpus)  # exports the graph into the empty cache
        results: dict[str, list[tuple]] = {name: [] for name in runtimes}
        for _ in range(args.repeats):
            for name, command in runtimes.items():
                results[name].append(run(command, environment, cpus))

    print(
        f"tsf classify, 1 clip x {args.crops} crops of {video.name}, model {args.model or 'random base (8x224)'}; "
        f"{'cores ' + args.cpus if cpus else f'all {os.cpu_count()} cores'}; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; median of {args.repeats}"
    )
    print(
        f"onnx's first run (exports the graph, then classifies): {first[0]:.1f} s wall, {first[1]:.1f} s CPU, "
        f"max RSS {first[2]:.0f} MB"
    )
    print(f"{'runtime':24} {'wall s':>7} {'CPU s':>7} {'max RSS MB':>11} {'speed-up wall':>14} {'speed-up CPU':>13}")
    medians = {name: [statistics.median(r[i] for r in rows) for i in range(3)] for name, rows in results.items()}
    wall_ref, cpu_ref, _ = medians["torch --dtype fp32"]
    for name, (wall, cpu, rss) in medians.items():
        print(f"{name:24} {wall:7.2f} {cpu:7.2f} {rss:11.0f} {wall_ref / wall:13.2f}x {cpu_ref / cpu:12.2f}x")
    onnx, torch_fp32 = (results[name][-1][3]["results"][0] for name in ("onnx (fp32)", "torch --dtype fp32"))
    reference = {p["index"]: p["probability"] for p in torch_fp32["predictions"]}
    gap = max(abs(p["probability"] - reference.get(p["index"], 0.0)) for p in onnx["predictions"])
    same = [p["index"] for p in onnx["predictions"]] == list(reference)
    print(f"onnx vs torch fp32: top-5 {'the same' if same else 'DIFFERENT'}, largest probability difference {gap:.1e}")


if __name__ == "__main__":
    main()
