"""Generate synthetic motion clips, or rebuild the bundled demo model (data and training):

python -m tsf_cli.demo OUT_DIR --per-class 50 --seed 1
python -m tsf_cli.demo --build-demo tsf_cli/demo/weights
"""

from __future__ import annotations

import argparse

from .recipe import build_demo
from .synthetic import DATASET_FORMATS, generate_dataset


def _parse_formats(text: str) -> tuple[tuple[str, str], ...]:
    formats = []
    for item in text.split(","):
        codec, _, suffix = item.strip().rpartition(".")
        if not codec or not suffix:
            raise argparse.ArgumentTypeError(f"expected codec.suffix such as libx264.mp4, got {item!r}")
        formats.append((codec, f".{suffix}"))
    return tuple(formats)


def _parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if (
        not (width.isdigit() and height.isdigit())
        or min(int(width), int(height)) < 16
        or (int(width) | int(height)) % 2
    ):
        # 4:2:0 video, what every codec here writes, needs even sides
        raise argparse.ArgumentTypeError(
            f"expected an even WIDTHxHEIGHT of at least 16x16 such as 256x144, got {text!r}"
        )
    return int(width), int(height)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tsf_cli.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", nargs="?", help="where to write one subfolder of clips per motion")
    parser.add_argument("--per-class", type=int, default=50, help="clips per motion (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="the data set's seed (default 0)")
    parser.add_argument(
        "--formats",
        type=_parse_formats,
        default=DATASET_FORMATS,
        help="codec.suffix pairs to cycle through, comma-separated (default: "
        + ",".join(f"{codec}{suffix}" for codec, suffix in DATASET_FORMATS)
        + ")",
    )
    parser.add_argument(
        "--size", type=_parse_size, help="with OUT_DIR: every clip's frame size, WIDTHxHEIGHT (default: drawn per clip)"
    )
    parser.add_argument("--build-demo", metavar="DIR", help="generate the demo data, train the demo model, write DIR")
    parser.add_argument("--work-dir", help="with --build-demo: keep the data and the resume state here")
    parser.add_argument("--attention-type", default="divided_space_time", help="with --build-demo: for ablations")
    parser.add_argument("--num-workers", type=int, default=1, help="with --build-demo: decoding processes")
    args = parser.parse_args(argv)
    if (args.out_dir is None) == (args.build_demo is None):
        parser.error("give either OUT_DIR or --build-demo DIR")

    from rich.console import Console

    console = Console(stderr=True)
    if args.out_dir is not None:
        with console.status("generating") as status:
            dataset = generate_dataset(
                args.out_dir,
                per_class=args.per_class,
                seed=args.seed,
                formats=args.formats,
                size=args.size,
                progress=lambda done, total: status.update(f"generating clip {done}/{total}"),
            )
        console.print(f"wrote {len(dataset.clips)} clips to {dataset.root}")
        return

    from ..cli.display import TrainDisplay

    with TrainDisplay(console) as display:
        result = build_demo(
            args.build_demo,
            work_dir=args.work_dir,
            attention_type=args.attention_type,
            workers=args.num_workers,
            progress=display,
        )
    console.print(f"wrote {args.build_demo}: validation top-1 {result.val_accuracy:.4f} after {result.step} steps")


if __name__ == "__main__":
    main()
