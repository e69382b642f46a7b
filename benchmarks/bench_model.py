"""Inference speed of tsf's TimeSformer against transformers', side by side, on this machine's CPU.

    python benchmarks/bench_model.py            # base config, 8 frames of 224x224, batch 1 and 4, fp32 and bf16
    python benchmarks/bench_model.py --quick    # batch 1 only, fewer runs
    python benchmarks/bench_model.py --threads 1
    python benchmarks/bench_model.py --no-fast-kernels   # also tsf with its fast paths off: what they are worth
    python benchmarks/bench_model.py --no-onnx  # without the ONNX Runtime engine (which needs tsf-cli[onnx])

The engines are callables on pixel values: tsf's model (``ours``), transformers' (``transformers``), and in fp32
tsf's model exported to ONNX (as ``tsf export`` does, into a temporary folder) and run by ONNX Runtime's CPU provider
with the session options of ``--runtime onnx`` and as many threads as torch (``onnxruntime``); where the
onnxruntime-openvino package is installed instead of onnxruntime, also through its OpenVINO provider in fp32
(``ort+openvino``). ONNX Runtime's CPU provider has no bf16, so there are no bf16 rows for them.

On a machine shared with other work, two-thread timings suffer most: each operator waits at its closing barrier for
whichever thread the scheduler delayed, so time grows with the operator count rather than the work. The load average
is printed before and after; one thread (--threads 1) measures the work itself far more steadily.

All engines get the same random weights and inputs; the torch ones run under torch.inference_mode(). For each dtype
and batch size it prints seconds per clip (the median of --runs timed runs after a warm-up, the engines interleaved
so that a busy machine slows all alike), GFLOP/s counting 392 GFLOP per 8x224 clip, that rate as a fraction of the
machine's plain matrix-multiply rate in the same dtype (measured in the same run), and ours / transformers in
throughput; then the same in CPU seconds (all threads of the process), which a busy machine disturbs less. Last,
how often bf16 picks the same top-1 class as fp32 on the benchmark inputs, for each engine.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsf_cli.model import TimesformerConfig, TimesformerForVideoClassification  # noqa: E402
from tsf_cli.model.kernels import fast_kernels  # noqa: E402

GFLOP_PER_CLIP = 392.0  # 8 frames of 224x224 through TimeSformer-base, multiply-adds counted as two
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_rate(dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of the best of a few large GEMMs through torch.mm: a square one and the shapes the model runs (tokens x
    768 by 768 x 3072 and back). The model's work is mostly such GEMMs, so this is the yardstick. It is not a strict
    ceiling: the 392 GFLOP count is the reference's work (tsf folds away 1/17 of the GEMMs), and in fp32 tsf's linears
    run on oneDNN, whose GEMM outruns torch.mm's MKL on AMD CPUs, so tsf can show more than 100%."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (4 * 1569, 768, 3072), (4 * 1569, 3072, 768)):
        a = torch.randn(m, k, dtype=dtype)
        b = torch.randn(n, k, dtype=dtype).t()  # (k, n) with the layout of a linear layer's weight
        torch.mm(a, b)
        seconds = min(timed(lambda a=a, b=b: torch.mm(a, b)) for _ in range(repeats))
        best = max(best, 2 * m * k * n / seconds / 1e9)
    return best


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def timed_both(run) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all of this process's threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def build(seed: int):
    """Ours and transformers' base model (400 classes) with the same random weights, every tensor non-zero."""
    import transformers

    torch.manual_seed(seed)
    theirs = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(num_labels=400))
    with torch.no_grad():
        for parameter in theirs.parameters():
            if parameter.abs().sum() == 0:  # biases and time embeddings start at zero; give them a spread too
                parameter.normal_(0.0, 0.02)
    ours = TimesformerForVideoClassification(TimesformerConfig(num_labels=400))
    ours.load_state_dict(theirs.state_dict())
    return ours.eval(), theirs.eval()


def plain(model, pixels):
    """tsf's model on standard operators only: no oneDNN fused linears, no folded temporal projection."""
    with fast_kernels(False):
        return model(pixels)


def onnx_engines(model, folder: Path, threads: int) -> dict:
    """tsf's model exported to ONNX and run by ONNX Runtime as ``--runtime onnx`` runs it (``onnxruntime``), and where
    the onnxruntime-openvino package stands in for onnxruntime, by its OpenVINO provider in fp32 (``ort+openvino``);
    none without the extra."""
    try:
        import onnxruntime

        from tsf_cli.inference.onnx_predictor import _session_options
        from tsf_cli.model.export import export_onnx
    except ImportError as exc:
        print(f"no onnxruntime engine: {exc} (pip install 'tsf-cli[onnx]')")
        return {}
    started = time.perf_counter()
    result = export_onnx(model, folder / "model.onnx")
    providers = {"onnxruntime": ["CPUExecutionProvider"]}
    if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
        openvino = {"device_type": "CPU", "precision": "FP32", "num_of_threads": str(threads)}
        providers["ort+openvino"] = [("OpenVINOExecutionProvider", openvino)]
    engines = {}
    for name, chosen in providers.items():
        options = _session_options(onnxruntime)
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=chosen)
        engines[name] = lambda pixels, session=session: torch.from_numpy(
            session.run(["logits"], {"pixel_values": pixels.numpy()})[0]
        )
    print(
        f"onnxruntime {onnxruntime.__version__}: exported and opened in {time.perf_counter() - started:.0f} s, "
        f"{result.size_bytes / 2**20:.0f} MB, max abs difference {result.differences['logits']:.1e}"
    )
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 3 timed runs")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per engine, dtype and batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's, one per core)")
    parser.add_argument(
        "--no-fast-kernels", action="store_true", help="also time tsf inside kernels.fast_kernels(False)"
    )
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX Runtime engine")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.runs = [1], 3
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, inference_mode, 8x3x224x224 clips; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    ours_fp32, theirs_fp32 = build(args.seed)
    onnx_folder = tempfile.TemporaryDirectory(prefix="tsf-bench-onnx-")  # a base graph is 440 MB: never kept
    onnx = {} if args.no_onnx else onnx_engines(ours_fp32, Path(onnx_folder.name), torch.get_num_threads())
    generator = torch.Generator().manual_seed(args.seed)
    inputs = {b: torch.randn(b, 8, 3, 224, 224, generator=generator) for b in args.batches}
    top1: dict[str, dict[str, list[torch.Tensor]]] = {}

    header = (
        f"{'dtype':5} {'batch':>5} {'engine':12} {'s/clip':>8} {'GFLOP/s':>8} {'of mm':>6} {'ours/tf':>8}"
        f" | {'cpu s/clip':>10} {'ours/tf':>8}"
    )
    rows = []
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        peak = matmul_rate(dtype, repeats=3)
        # copies cast once to the dtype (the fp32 originals stay exact for the other dtypes)
        ours, theirs = copy.deepcopy(ours_fp32).to(dtype), copy.deepcopy(theirs_fp32).to(dtype)
        engines = {
            "ours": lambda pixels, ours=ours: ours(pixels).logits,
            "transformers": lambda pixels, theirs=theirs: theirs(pixels).logits,
        }
        if args.no_fast_kernels:
            engines["ours, plain"] = lambda pixels, ours=ours: plain(ours, pixels).logits
        if dtype_name == "fp32":
            engines.update(onnx)
        for batch in args.batches:
            pixels = inputs[batch].to(dtype)
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
            with torch.inference_mode():
                for name, engine in engines.items():  # warm-up; its logits give the top-1 classes
                    top1.setdefault(name, {}).setdefault(dtype_name, []).append(engine(pixels).float().argmax(-1))
                for _ in range(args.runs):
                    for name, engine in engines.items():
                        times[name].append(timed_both(lambda engine=engine, pixels=pixels: engine(pixels)))
            per_clip = {name: statistics.median(w for w, _ in values) / batch for name, values in times.items()}
            cpu_per_clip = {name: statistics.median(c for _, c in values) / batch for name, values in times.items()}
            for name in engines:
                rate = GFLOP_PER_CLIP / per_clip[name]
                ours = name != "transformers"
                ratio = f"{per_clip['transformers'] / per_clip[name]:7.2f}x" if ours else " " * 8
                cpu_ratio = f"{cpu_per_clip['transformers'] / cpu_per_clip[name]:7.2f}x" if ours else ""
                rows.append(
                    f"{dtype_name:5} {batch:>5} {name:12} {per_clip[name]:8.3f} {rate:8.1f} {rate / peak:6.1%} {ratio}"
                    f" | {cpu_per_clip[name]:10.3f} {cpu_ratio}"
                )
        rows.append(f"{dtype_name:5} {'':>5} {'torch.mm':12} {'':>8} {peak:8.1f} {1:6.0%}")
        del engines

    print(header)
    print("\n".join(rows))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    onnx_folder.cleanup()
    if "fp32" in top1["ours"] and len(top1["ours"]) > 1:
        for name, by_dtype in top1.items():
            reference = torch.cat(by_dtype["fp32"])
            for dtype_name, classes in by_dtype.items():
                if dtype_name != "fp32":
                    same = (torch.cat(classes) == reference).sum().item()
                    print(f"top-1 {dtype_name} = fp32 ({name}): {same}/{reference.numel()} clips")
    for name in onnx:
        reference = torch.cat(top1["ours"]["fp32"])
        same = (torch.cat(top1[name]["fp32"]) == reference).sum().item()
        print(f"top-1 {name} = ours in fp32: {same}/{reference.numel()} clips")


if __name__ == "__main__":
    main()
