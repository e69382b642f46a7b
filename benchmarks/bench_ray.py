"""Videos/s of `tsf batch --engine ray` against the local engine on generated folders, with 1 and 2 CPUs.

    python benchmarks/bench_ray.py [--videos 32,128] [--repeats 3] [--cpus 1,2] [--model tiny|base] [--seconds 10]

Each run is a fresh process pinned to its CPUs (`taskset -c 0` for 1, `0,1` for 2), through `tsf_cli.batch` as the
command runs it, decoding on 1 to CPUs videos at once: the local engine with that many `--workers`, and
`engine="ray"` with that many decode tasks beside its model actor. Ray is the instance tsf starts for the run where
that gives the count (it gives the actor one CPU of two or more, and decodes on the rest); for more decode tasks
than that, the run starts an instance told of one CPU more than it has, which tsf then uses (both timed). Runs
interleave, repeat after repeat, so that a change in the machine's load hits them alike; medians of the repeats are
shown, with the 1-minute load average over the whole measurement (run it on a quiet machine: on a busy one runs
spread by 2x).

For each engine and CPU count: "end to end", videos/s over the whole call at each folder size (loading the model,
starting and stopping Ray: what a run of that size gets); "processing", the marginal rate between the smallest and
the largest folder, (N2 - N1) / (T2 - T1), what a long run converges to once the fixed cost is paid (Ray decodes
ahead while its actors start, so the time between the first and last record would flatter it); and "first record",
the seconds until the first record of the largest folder (the fixed cost).

`--model tiny` (default) is a 32x32, 4-frame random TimeSformer, so that decoding dominates as it does on a cluster
fed by GPUs; `--model base` the random base-size network (8 x 224, 400 labels), whose CPU forward pass dominates
instead. Videos are 30-fps "texture" clips (a camera-like bit rate) of `--seconds` at `--size`, cached under
~/.cache/tsf-bench; the defaults, 10 s at 640x360, take about 0.15 s each to decode and cut on one core, so that the
difference between the folder sizes outweighs the spread of Ray's start-up.
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

CACHE = Path.home() / ".cache" / "tsf-bench"


def tiny_checkpoint() -> Path:
    from tests._models import save_tiny_classifier

    folder = CACHE / "checkpoint_tiny_random"
    if not (folder / "preprocessor_config.json").exists():
        save_tiny_classifier(folder)
    return folder


def one_run(engine: str, decoders: int, folder: Path, checkpoint: Path, batch_size: int) -> dict:
    """One `tsf batch` of the folder in this process, decoding on ``decoders`` processes or Ray tasks at once."""
    import tsf_cli
    from tsf_cli.inference.runner import Observer

    class Clock(Observer):
        def __init__(self):
            self.times: list[float] = []

        def finished(self, record):
            self.times.append(time.perf_counter())

    cpus = len(os.sched_getaffinity(0))
    # Ray gives the model actor one CPU of its instance where there are two or more, and decodes on the rest; an
    # instance told of more CPUs than the process has runs more decode tasks (tsf then uses that instance).
    ray_cpus = decoders + (cpus >= 2)
    clock = Clock()
    with tempfile.TemporaryDirectory() as scratch:
        began = time.perf_counter()
        if engine == "ray" and ray_cpus != cpus:
            import logging

            import ray

            ray.init(
                address="local",
                num_cpus=ray_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        try:
            summary = tsf_cli.batch(
                [str(folder)],
                Path(scratch) / "labels.jsonl",
                model=str(checkpoint),
                device="cpu",
                dtype="fp32",
                batch_size=batch_size,
                workers=decoders,
                engine=engine,
                observer=clock,
            )
        finally:
            if engine == "ray" and ray_cpus != cpus:
                ray.shutdown()
        ended = time.perf_counter()
    return {
        "engine": engine,
        "cpus": cpus,
        "decoders": decoders,
        "videos": summary.total,
        "failed": summary.failed,
        "first_record_s": clock.times[0] - began,
        "total_s": ended - began,
    }


def measure(engine: str, cpus: int, decoders: int, videos: int, args) -> dict:
    command = ["taskset", "-c", ",".join(str(c) for c in range(cpus)), sys.executable, __file__, "--one", engine]
    command += ["--decoders", str(decoders), "--videos", str(videos), "--seconds", str(args.seconds)]
    command += ["--size", args.size, "--model", args.model, "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="32,128", help="folder sizes, comma-separated (two or more)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", default="1,2", help="CPU counts to pin to, comma-separated")
    parser.add_argument("--model", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--one", choices=("local", "ray"), help=argparse.SUPPRESS)  # a single run, in a child
    parser.add_argument("--decoders", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.videos.split(","))
    size = tuple(int(side) for side in args.size.split("x"))
    checkpoint = tiny_checkpoint() if args.model == "tiny" else build_checkpoint(CACHE)
    if args.one:
        folder = build_folder(CACHE, sizes[0], args.seconds, size)
        print(json.dumps(one_run(args.one, args.decoders, folder, checkpoint, args.batch_size)))
        return
    for n in sizes:
        build_folder(CACHE, n, args.seconds, size)
    # On c CPUs: decoding on 1 to c processes (local) or Ray tasks at once, the model beside them.
    configurations = [
        (engine, cpus, decoders)
        for cpus in map(int, args.cpus.split(","))
        for decoders in range(1, cpus + 1)
        for engine in ("local", "ray")
    ]
    runs: dict[tuple, list[dict]] = {(*c, n): [] for c in configurations for n in sizes}
    loads = []
    for repeat in range(args.repeats):
        for configuration in configurations:
            for n in sizes:
                loads.append(os.getloadavg()[0])
                run = measure(*configuration, n, args)
                assert run["videos"] == n and run["failed"] == 0, run
                runs[(*configuration, n)].append(run)
                print(f"repeat {repeat + 1}: {json.dumps(run)}", file=sys.stderr)

    def median(configuration, n, key):
        return statistics.median(r[key] for r in runs[(*configuration, n)])

    first, last = sizes[0], sizes[-1]

    def marginal(configuration):
        return (last - first) / (median(configuration, last, "total_s") - median(configuration, first, "total_s"))

    print(f"{', '.join(map(str, sizes))} videos of {args.seconds:g} s at {args.size}, model {args.model}, ", end="")
    print(f"batch {args.batch_size}; medians of {args.repeats}; 1-minute load {min(loads):.1f}-{max(loads):.1f}\n")
    ends = " | ".join(f"videos/s end to end, {n}" for n in sizes)
    print(f"| CPUs | decoding at once | engine | {ends} | videos/s processing | vs local | first record s |")
    print("| --- | --- | --- | " + "--- | " * len(sizes) + "--- | --- | --- |")
    for engine, cpus, decoders in configurations:
        configuration = (engine, cpus, decoders)
        totals = " | ".join(f"{n / median(configuration, n, 'total_s'):.2f}" for n in sizes)
        rate, local_rate = marginal(configuration), marginal(("local", cpus, decoders))
        print(
            f"| {cpus} | {decoders} | {engine} | {totals} | {rate:.2f} | {rate / local_rate:.2f}x | "
            f"{median(configuration, last, 'first_record_s'):.1f} |"
        )


if __name__ == "__main__":
    main()
