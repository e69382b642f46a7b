"""Video to pixel_values: the transformers docs' recipe against tsf, per video and per stage.

    python benchmarks/bench_video.py [--runs 3] [--cache-dir DIR] [--only 60s]

The recipe (the TimeSformer / VideoMAE model docs): decode from the start with ``container.decode``, keep the wanted
indices, ``frame.to_ndarray(format="rgb24")``, then ``VideoMAEImageProcessor`` with facebook/timesformer-base-
finetuned-k400's settings (its PIL backend, the one transformers falls back to without torchvision). tsf:
``video.sample_clips`` then ``preprocess.preprocess``. Both take the same 8 frames, uniform over the video (tsf's
default), and the script checks that both give the same pixel_values.

The test videos (H.264 from libx264 at preset veryfast, crf 23, 30 fps: a panning texture with film grain, about
3.5 Mbit/s at 1080p like web video) are made once and kept in the cache directory, so reruns only time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._videos import make_video  # noqa: E402
from tsf_cli.media.decode import sample_clips  # noqa: E402
from tsf_cli.media.preprocess import PreprocessConfig, preprocess  # noqa: E402

K400 = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.45, 0.45, 0.45],
    "image_std": [0.225, 0.225, 0.225],
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
FRAMES = 8
FPS = 30
# (name, (width, height), seconds, keyframe interval)
VIDEOS = [
    (f"{p}p-{s}s-gop{g}", size, s, g)
    for p, size in ((1080, (1920, 1080)), (360, (640, 360)))
    for s in (10, 60)
    for g in (250, 30)
]


def ensure_video(cache: Path, name: str, size: tuple[int, int], seconds: int, gop: int) -> Path:
    path = cache / f"{name}.mp4"
    if not path.exists():
        print(f"making {path} (once) ...", file=sys.stderr, flush=True)
        partial = cache / f"{name}.partial.mp4"  # renamed when complete, so an interrupted run is not reused
        make_video(
            partial,
            frames=seconds * FPS,
            size=size,
            fps=FPS,
            gop=gop,
            pattern="texture",
            options={"preset": "veryfast", "crf": "23"},
        )
        partial.rename(path)
    return path


def recipe_decode(path: Path, indices) -> np.ndarray:
    """read_video_pyav from the transformers docs, verbatim but for the arguments."""
    container = av.open(str(path))
    frames = []
    container.seek(0)
    start_index = indices[0]
    end_index = indices[-1]
    for i, frame in enumerate(container.decode(video=0)):
        if i > end_index:
            break
        if i >= start_index and i in indices:
            frames.append(frame)
    result = np.stack([x.to_ndarray(format="rgb24") for x in frames])
    container.close()
    return result


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def bench(path: Path, runs: int, processor, config: PreprocessConfig) -> dict[str, tuple[float, float]]:
    indices = list(sample_clips(path, FRAMES)[0].indices)  # the same frames for both
    times = {"decode": ([], []), "preprocess": ([], []), "total": ([], [])}
    for _ in range(runs):
        frames, recipe_decode_s = timed(recipe_decode, path, indices)
        recipe_out, recipe_pre_s = timed(lambda f: processor(list(f), return_tensors="pt").pixel_values, frames)
        clip, ours_decode_s = timed(lambda: sample_clips(path, FRAMES)[0])
        ours_out, ours_pre_s = timed(lambda c: preprocess([c.frames], config), clip)
        if list(clip.indices) != indices or not torch.equal(recipe_out, ours_out):
            raise SystemExit(f"{path}: tsf and the recipe disagree")
        for stage, recipe_s, ours_s in (
            ("decode", recipe_decode_s, ours_decode_s),
            ("preprocess", recipe_pre_s, ours_pre_s),
            ("total", recipe_decode_s + recipe_pre_s, ours_decode_s + ours_pre_s),
        ):
            times[stage][0].append(recipe_s)
            times[stage][1].append(ours_s)
    return {stage: (statistics.median(r), statistics.median(o)) for stage, (r, o) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per video; the table shows medians")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tsf" / "bench-videos"
    parser.add_argument("--cache-dir", type=Path, default=default_cache, help="where the test videos are kept")
    parser.add_argument("--only", default="", help="run only videos whose name contains this, e.g. 1080p-60s")
    args = parser.parse_args()

    from transformers import VideoMAEImageProcessorPil

    processor = VideoMAEImageProcessorPil(**K400)
    config = PreprocessConfig.from_dict(K400)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VIDEOS if args.only in v[0]]
    paths = {name: ensure_video(args.cache_dir, name, size, s, g) for name, size, s, g in chosen}

    print(
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; medians of {args.runs} runs; "
        f"{FRAMES} frames uniform over each video, k400 preprocessing, 1 crop"
    )
    print(f"{'video':<20} {'stage':<11} {'recipe s':>9} {'tsf s':>9} {'tsf/recipe':>11}")
    for name, path in paths.items():
        for stage, (recipe_s, ours_s) in bench(path, args.runs, processor, config).items():
            print(f"{name:<20} {stage:<11} {recipe_s:>9.3f} {ours_s:>9.3f} {ours_s / recipe_s:>10.2f}x", flush=True)


if __name__ == "__main__":
    main()
