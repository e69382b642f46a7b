"""`tsf batch` against the documented transformers recipe, video after video, on one generated folder.

    python benchmarks/bench_batch.py [--videos 12] [--seconds 10] [--size 640x360]
    python benchmarks/bench_batch.py --tsf-root /path/to/other/checkout --top-k 400   # before/after a change

Both sides use the same random base-size weights (8 frames x 224, 400 labels) saved as a checkpoint folder, and the
same 8 frames per video (spread evenly over the whole video, tsf's default for a folder checkpoint), one view each.
The recipe is the one transformers documents for TimeSformer: PyAV decoding from the start keeping the wanted
indices, VideoMAEImageProcessor, TimesformerForVideoClassification in fp32, one video at a time. tsf runs as the
installed command with its defaults (decoding workers, batching, --dtype auto) and once more with --dtype fp32.
Wall-clock times include loading the model on both sides. Videos are cached under ~/.cache/tsf-bench.

``--tsf-root`` adds the same two tsf runs from another checkout of tsf (its ``python -m tsf_cli``), interleaved with
this one's, and prints the largest difference between the two checkouts' probabilities (``--top-k 400`` compares
every label). Last, the bytes one video's views take across the worker pipe (pickled, as the pool sends them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_video import K400  # noqa: E402  (facebook/timesformer-base-finetuned-k400's preprocessing)
from tests._videos import make_video  # noqa: E402
from tsf_cli.model import TimesformerConfig, TimesformerForVideoClassification  # noqa: E402


def build_folder(root: Path, videos: int, seconds: float, size: tuple[int, int]) -> Path:
    folder = root / f"batch_{videos}x{seconds:g}s_{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        path = folder / f"video_{i:03d}.mp4"
        if not path.exists():
            partial = path.with_suffix(".partial.mp4")
            make_video(partial, frames=int(seconds * 30), size=size, fps=30, pattern="texture")
            partial.rename(path)
    return folder


def build_checkpoint(root: Path) -> Path:
    folder = root / "checkpoint_base_random"
    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        labels = {i: f"class_{i}" for i in range(400)}
        config = TimesformerConfig(id2label=labels, label2id={v: k for k, v in labels.items()})
        TimesformerForVideoClassification(config).save_pretrained(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(K400, indent=2))
    return folder


def uniform_indices(count: int, frames: int = 8) -> np.ndarray:
    return np.linspace(0, count - 1, frames).round().astype(np.int64)


def run_recipe(folder: Path, checkpoint: Path) -> tuple[float, dict[str, int]]:
    """The transformers documentation's recipe, one video at a time; returns seconds and top-1 per video."""
    import av
    from transformers import TimesformerForVideoClassification as Reference
    from transformers import VideoMAEImageProcessor

    started = time.perf_counter()
    processor = VideoMAEImageProcessor.from_pretrained(checkpoint)
    model = Reference.from_pretrained(checkpoint).eval()
    top1 = {}
    for path in sorted(folder.glob("*.mp4")):
        with av.open(str(path)) as container:
            # The recipe trusts the header's frame count; these mp4 files carry a correct one.
            indices = uniform_indices(container.streams.video[0].frames)
            wanted, frames = set(indices.tolist()), []
            container.seek(0)
            for i, frame in enumerate(container.decode(video=0)):
                if i > indices[-1]:
                    break
                if i in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
        inputs = processor(list(np.stack(frames)), return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits
        top1[str(path)] = int(logits.argmax(-1))
    return time.perf_counter() - started, top1


def run_tsf(
    folder: Path, checkpoint: Path, out: Path, *extra: str, root: Path | None = None, top_k: int = 1
) -> tuple[float, dict[str, int], dict[str, dict[int, float]]]:
    """Seconds, top-1 per video, and the probability of each of the top-k labels per video."""
    command = [sys.executable, "-m", "tsf_cli", "batch", str(folder), "-o", str(out), "--overwrite"]
    command += ["--model", str(checkpoint), "--top-k", str(top_k), *extra]
    environment = {**os.environ, "PYTHONPATH": str(root)} if root is not None else None
    started = time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL, env=environment, cwd=root)
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in out.read_text().splitlines()]
    probabilities = {r["path"]: {p["index"]: p["probability"] for p in r["predictions"]} for r in records}
    return seconds, {r["path"]: r["predictions"][0]["index"] for r in records}, probabilities


def pipe_bytes(video: Path, crops: int) -> int:
    """The pickled size of one video's views: what a decoding worker sends to the model's process."""
    import pickle

    from tsf_cli.inference.views import ViewOptions, load_views
    from tsf_cli.media.preprocess import PreprocessConfig

    return len(
        pickle.dumps(load_views(str(video), ViewOptions(frames=8, crops=crops), PreprocessConfig.from_dict(K400)))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; the median is reported")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tsf-bench")
    parser.add_argument("--tsf-root", type=Path, help="another checkout of tsf to run side by side with this one")
    parser.add_argument("--top-k", type=int, default=1, help="labels each tsf record keeps (400: all)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    folder = build_folder(args.cache, args.videos, args.seconds, size)
    checkpoint = build_checkpoint(args.cache)
    out = args.cache / "bench_batch_out.jsonl"

    k = args.top_k
    runs = {
        "transformers recipe (fp32, sequential)": lambda: (*run_recipe(folder, checkpoint), {}),
        "tsf batch (defaults)": lambda: run_tsf(folder, checkpoint, out, top_k=k),
        "tsf batch --dtype fp32": lambda: run_tsf(folder, checkpoint, out, "--dtype", "fp32", top_k=k),
    }
    if args.tsf_root is not None:
        other = args.tsf_root.resolve()
        runs["other tsf batch (defaults)"] = lambda: run_tsf(folder, checkpoint, out, root=other, top_k=k)
        runs["other tsf batch --dtype fp32"] = lambda: run_tsf(
            folder, checkpoint, out, "--dtype", "fp32", root=other, top_k=k
        )
    times: dict[str, list[float]] = {name: [] for name in runs}
    top1: dict[str, dict[str, int]] = {}
    probabilities: dict[str, dict[str, dict[int, float]]] = {}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, run in runs.items():  # interleaved, so drift in the machine's speed hits every side alike
            seconds, top1[name], probabilities[name] = run()
            times[name].append(seconds)

    reference = next(iter(runs))
    base = statistics.median(times[reference])
    print(
        f"{args.videos} videos, {args.seconds:g} s each at {args.size}, 30 fps; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(f"{'runner':42} {'seconds':>8} {'videos/s':>9} {'speed-up':>9} {'top-1 = recipe':>15}")
    for name in runs:
        seconds = statistics.median(times[name])
        agree = sum(top1[name][p] == top1[reference].get(p) for p in top1[name])
        print(f"{name:42} {seconds:8.1f} {args.videos / seconds:9.3f} {base / seconds:8.2f}x {agree:>8}/{args.videos}")
    if args.tsf_root is not None:
        for name in ("tsf batch (defaults)", "tsf batch --dtype fp32"):
            ours, theirs = probabilities[name], probabilities[f"other {name}"]
            gap = max(abs(p - theirs[path].get(i, 0.0)) for path in ours for i, p in ours[path].items())
            print(f"{name}: largest probability difference from the other checkout {gap:.2e} (top {k})")
    first = sorted(folder.glob("*.mp4"))[0]
    print(f"bytes across the worker pipe per video: {pipe_bytes(first, 1)} (1 view), {pipe_bytes(first, 3)} (3 crops)")


if __name__ == "__main__":
    main()
