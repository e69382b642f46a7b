"""Peak memory of ``tsf explain`` at the hr presets' size (16 frames of 448x448, 12 layers of 12 heads, 400 labels),
next to ``tsf classify`` on the same view, with random weights (no download) on the CPU.

    python benchmarks/bench_explain.py                       # classify, rollout, grad-rollout; fp32
    python benchmarks/bench_explain.py --modes grad-rollout --dtype bf16

A random hr-shaped checkpoint (470 MB) and a 720p clip are written to a temporary folder, then each mode runs in a
process of its own, the whole path ``tsf explain`` takes: decode the clip, cut the view, run the method, map the
heatmaps back onto the 720p frames. Peak RSS is the kernel's high-water mark (VmHWM), reset once the model is loaded,
so the resident weights count and their loading does not. It prints, per mode, the resident memory before the work,
the peak during it and the difference; the seconds it prints are this machine's, under whatever else it runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("classify", "rollout", "grad-rollout")
HR = {"image_size": 448, "num_frames": 16, "num_labels": 400}  # the rest is TimesformerConfig's default: the base size
PREPROCESSOR = {"size": {"shortest_edge": 448}, "crop_size": {"height": 448, "width": 448}}


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Start the high-water mark (VmHWM) again from the resident memory now (Linux 4.0 and later)."""
    Path("/proc/self/clear_refs").write_text("5")


def child(mode: str, folder: Path, dtype: str) -> dict:
    """Run one mode in this process and measure it."""
    from tsf_cli.inference.explain import explain_video
    from tsf_cli.inference.predictor import Predictor
    from tsf_cli.inference.views import load_views

    predictor = Predictor(str(folder / "model"), device="cpu", dtype=dtype)
    views = predictor.view_options(frames=16)
    video = str(folder / "clip.mp4")
    reset_peak()
    before = memory_kib("VmRSS")
    start = time.perf_counter()
    if mode == "classify":
        predictor.probabilities(load_views(video, views, predictor.preprocess_config).pixels)
    else:
        explain_video(predictor, video, views, method=mode)
    return {
        "mode": mode,
        "dtype": dtype,
        "before_mib": before / 1024,
        "peak_mib": memory_kib("VmHWM") / 1024,
        "seconds": time.perf_counter() - start,
    }


def prepare(folder: Path) -> None:
    """A random hr-shaped checkpoint with its preprocessing, and 48 frames of 1280x720."""
    import numpy as np

    from tsf_cli.demo.synthetic import write_video
    from tsf_cli.model import TimesformerConfig, TimesformerForVideoClassification

    model = TimesformerForVideoClassification(TimesformerConfig(**HR))
    model.save_pretrained(folder / "model")
    (folder / "model" / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    ys, xs = (a.astype(np.uint8) for a in np.mgrid[0:720, 0:1280] % 256)
    frames = np.stack([np.stack([xs + np.uint8(8 * t % 256), ys, xs + ys], axis=-1) for t in range(48)])  # uint8 wraps
    write_video(folder / "clip.mp4", frames, fps=24, codec="libx264")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.dtype)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as folder:
        prepare(Path(folder))
        print(f"hr size (16 x 448, 12 layers x 12 heads, 400 labels), random weights, {args.dtype}, CPU; 720p clip")
        print(f"{'mode':<14}{'before':>12}{'peak':>12}{'peak - before':>16}{'seconds':>10}")
        for mode in args.modes:
            command = [sys.executable, __file__, "--child", mode, "--folder", folder, "--dtype", args.dtype]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(
                f"{mode:<14}{result['before_mib']:>8.0f} MiB{result['peak_mib']:>8.0f} MiB"
                f"{result['peak_mib'] - result['before_mib']:>12.0f} MiB{result['seconds']:>10.0f}"
            )


if __name__ == "__main__":
    main()
