"""The ``tsf`` command: one thin function per command over ``tsf_cli.api``.

Data goes to stdout, everything for people (progress, warnings, errors) to stderr. A known error becomes one
``Error: ...`` line and its exit code; the traceback appears only with ``--debug`` or ``TSF_DEBUG=1``. torch, PyAV and
huggingface_hub are imported inside the commands, so ``tsf --help`` stays fast.

Exit codes: 0 success; 1 other known error; 2 bad command line; 3 a video could not be read; 4 model not found;
5 bad checkpoint; 6 output cannot be written; 7 device unavailable; 8 a batch finished but some inputs failed;
130 interrupted (Ctrl-C; what was finished is kept).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import __version__
from .errors import TsfError
from .synthetic import MOTIONS

EXIT_SOME_FAILED = 8
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="tsf",
    help="Classify videos with TimeSformer: top-k labels, folders of videos, embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)
_state = {"debug": False}


class Sampling(str, Enum):
    uniform = "uniform"
    stride = "stride"
    segments = "segments"


class DType(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Pool(str, Enum):
    cls = "cls"
    mean = "mean"


def _say(label: str, style: str, message: str) -> None:
    """``label: message`` on stderr; the message is printed as is (paths and FFmpeg's words may hold [brackets])."""
    from rich.text import Text

    stderr.print(Text.assemble((f"{label}:", style), " ", message), soft_wrap=True)


def _fail(message: str, code: int) -> typer.Exit:
    _say("Error", "bold red", message)
    return typer.Exit(code)


def reports_errors(command):
    """Turn tsf's own errors (and Ctrl-C) into one line on stderr and a documented exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TsfError as exc:
            if _state["debug"]:
                raise
            raise _fail(str(exc), exc.exit_code) from None
        except ValueError as exc:
            # Option values the API rejects (a zero batch size, an unknown pool) are usage errors.
            if _state["debug"]:
                raise
            raise _fail(str(exc), 2) from None
        except KeyboardInterrupt:
            stderr.print("Interrupted.")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _version(value: bool):
    if value:
        stdout.print(f"tsf {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (same as TSF_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
):
    """Classify videos with TimeSformer."""
    _state["debug"] = debug or os.environ.get("TSF_DEBUG", "") not in ("", "0")


# Options shared by the commands that run the model. Flag names equal the API's keyword arguments.
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Preset name (see `tsf models`), hub id, or local folder. [default: base-k400]"),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) to load.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
DTypeOpt = Annotated[DType, typer.Option(help="Compute precision; auto: bf16 where the hardware runs it natively.")]
FramesOpt = Annotated[int | None, typer.Option(min=1, help="Frames per clip. [default: the model's]")]
SamplingOpt = Annotated[Sampling | None, typer.Option(help="How frames are chosen. [default: the model's]")]
StrideOpt = Annotated[int | None, typer.Option(min=1, help="Frame step for --sampling stride.")]
ClipsOpt = Annotated[int | None, typer.Option(min=1, help="Temporal clips per video (averaged).")]
StartOpt = Annotated[
    float | None, typer.Option(min=0, help="--sampling stride: start the clip at this second (default: centred).")
]
CropsOpt = Annotated[int | None, typer.Option(min=1, max=3, help="Spatial crops per clip: 1 or 3.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Videos per model batch.")]
WorkersOpt = Annotated[int | None, typer.Option(min=0, help="Decoding processes (0: decode in this process).")]
TimeoutOpt = Annotated[float, typer.Option(min=1, help="Seconds one video may take to decode before it fails.")]


def _classifier(model, revision, device, dtype):
    from .api import Classifier
    from .presets import DEFAULT_MODEL

    with stderr.status(f"Loading {model or DEFAULT_MODEL}...", spinner="dots"):
        return Classifier(model or DEFAULT_MODEL, revision=revision, device=device, dtype=dtype.value)


def _views(classifier, frames, sampling, stride, clips, crops, start):
    return classifier.view_options(
        frames=frames,
        sampling=sampling.value if sampling else None,
        frame_sample_rate=stride,
        clips=clips,
        crops=crops,
        start=start,
    )


@app.command()
@reports_errors
def classify(
    videos: Annotated[list[Path], typer.Argument(help="Video files.", show_default=False)],
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels to show per video.")] = 5,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of tables.")] = False,
):
    """Top-k labels of each video, as a table (or JSON with --json)."""
    from .results import VideoFailure
    from .writers import write_json_document

    for video in videos:
        if not video.exists():
            raise _fail(f"{video}: no such file", 3)
    classifier = _classifier(model, revision, device, dtype)
    views = _views(classifier, frames, sampling, stride, clips, crops, start)
    paths = [str(v) for v in videos]
    by_path = {r.path: r for r in classifier.run(paths, views, top_k=top_k)}
    records = [by_path[p] for p in paths]
    if as_json:
        write_json_document(records, sys.stdout)
    else:
        for record in records:
            if not isinstance(record, VideoFailure):
                stdout.print(_prediction_table(record))
    failures = [r for r in records if isinstance(r, VideoFailure)]
    for failure in failures:
        _say("Error", "bold red", failure.message)
    if failures:
        raise typer.Exit(3)


def _prediction_table(result):
    from rich.markup import escape
    from rich.table import Table

    frames = sum(len(c.indices) for c in result.clips) // max(1, len(result.clips))
    views = f"{len(result.clips)} clip(s) x {result.crops} crop(s) of {frames} frames"
    caption = f"{result.model.name} · {result.model.dtype} on {result.model.device} · {views}"
    table = Table(title=escape(result.path), caption=escape(caption), title_justify="left", caption_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=20)
    for rank, p in enumerate(result.predictions, 1):
        bar = "█" * round(p.probability * 20)
        table.add_row(str(rank), escape(p.label), f"{p.probability:.1%}", f"[green]{bar}[/]")
    return table


OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file; its extension picks the format.")]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run: skip what OUTPUT already records.")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUTPUT.")]
RetryOpt = Annotated[
    bool, typer.Option("--retry-failed", help="With --resume, process again the inputs recorded as failed.")
]
SourcesArg = Annotated[
    list[str], typer.Argument(help="Folders, globs, .txt lists of paths, or files.", show_default=False)
]


def _inputs(sources: list[str], recursive: bool, outputs: list[Path]) -> list[str]:
    from .api import list_inputs

    found: dict[str, None] = {}
    for source in sources:
        found.update(dict.fromkeys(list_inputs(source, recursive=recursive, exclude=outputs)))
    return list(found)


def _check_flags(resume: bool, overwrite: bool, retry_failed: bool) -> None:
    if resume and overwrite:
        raise _fail("--resume and --overwrite exclude each other", 2)
    if retry_failed and not resume:
        raise _fail("--retry-failed goes with --resume", 2)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.2f} videos/s" if task.speed else "- videos/s", style="cyan")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeRemainingColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        console=stderr,
    )


def _run_with_progress(classifier, todo, views, sink, **run_options) -> int:
    """Feed every record to ``sink`` as it finishes, with a progress bar on stderr; return the failure count."""
    from rich.text import Text

    from .results import VideoFailure

    failed = 0
    with _progress() as progress:
        task = progress.add_task("videos", total=len(todo), failed=0)
        try:
            for record in classifier.run(todo, views, **run_options):
                sink.write(record)
                if isinstance(record, VideoFailure):
                    failed += 1
                    progress.console.print(Text.assemble(("failed:", "yellow"), " ", record.message), soft_wrap=True)
                progress.update(task, advance=1, failed=failed)
        except KeyboardInterrupt:
            progress.console.print("Finished records are kept: run the same command with --resume to continue.")
            raise
    return failed


def _summary(total: int, skipped: int, failed_now: int, failed_before: int, output: Path) -> None:
    done = total - skipped
    text = f"{total} input(s): {done - failed_now} ok, {failed_now} failed"
    if skipped:
        text += f", {skipped} already recorded ({failed_before} of them failed)"
    stderr.print(f"{text} -> {output}")
    if failed_now or failed_before:
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
@reports_errors
def batch(
    sources: SourcesArg,
    output: OutputOpt,
    recursive: RecursiveOpt = False,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 4,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = 300,
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels to keep per video.")] = 5,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
):
    """Classify every file of folders, globs or lists into OUTPUT (.jsonl or .csv), one record per input.

    Records are written as each video finishes, so an interrupted run leaves a valid file that --resume continues.
    Exit code 8 when any input failed.
    """
    from .workers import default_workers
    from .writers import open_record_sink

    _check_flags(resume, overwrite, retry_failed)
    paths = _inputs(sources, recursive, [output])
    # The model loads first: a wrong --model must not leave (or, with --overwrite, empty) an output file.
    classifier = _classifier(model, revision, device, dtype)
    views = _views(classifier, frames, sampling, stride, clips, crops, start)
    with open_record_sink(output, top_k=top_k, resume=resume, overwrite=overwrite, retry_failed=retry_failed) as sink:
        todo = [p for p in paths if p not in sink.done]
        failed_before = len(sink.failed.intersection(paths))
        run = {"top_k": top_k, "batch_size": batch_size, "timeout": timeout}
        workers = default_workers() if workers is None else workers
        failed_now = _run_with_progress(classifier, todo, views, sink, workers=workers, **run) if todo else 0
    _summary(len(paths), len(paths) - len(todo), failed_now, failed_before, output)


@app.command()
@reports_errors
def embed(
    sources: SourcesArg,
    output: OutputOpt,
    pool: Annotated[
        Pool, typer.Option(help="cls: the final-norm CLS token; mean: the mean of the patch tokens.")
    ] = Pool.cls,
    recursive: RecursiveOpt = False,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    retry_failed: RetryOpt = False,
    batch_size: BatchOpt = 4,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = 300,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    start: StartOpt = None,
    revision: RevisionOpt = None,
):
    """One embedding per video into OUTPUT: .npy (+ .json sidecar), .npz, .safetensors, .parquet or .jsonl.

    The file is written atomically at the end; until then results go to OUTPUT.partial.jsonl, which --resume
    continues. Exit code 8 when any input failed.
    """
    from .workers import default_workers
    from .writers import get_embedding_writer, open_embedding_journal

    _check_flags(resume, overwrite, retry_failed)
    get_embedding_writer(output)  # an unsupported format fails before any video is decoded
    side_files = [output, output.with_name(output.name + ".json"), output.with_name(output.name + ".partial.jsonl")]
    paths = _inputs(sources, recursive, side_files)
    classifier = _classifier(model, revision, device, dtype)
    views = _views(classifier, frames, sampling, stride, clips, crops, start)
    with open_embedding_journal(output, resume=resume, overwrite=overwrite, retry_failed=retry_failed) as journal:
        todo = [p for p in paths if p not in journal.done]
        failed_before = len(journal.failed.intersection(paths))
        workers = default_workers() if workers is None else workers
        run = {"pool": pool.value, "batch_size": batch_size, "timeout": timeout, "workers": workers}
        failed_now = _run_with_progress(classifier, todo, views, journal, **run) if todo else 0
    _summary(len(paths), len(paths) - len(todo), failed_now, failed_before, output)


@app.command()
@reports_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.")] = False,
):
    """The known models (presets), and which are already in the local cache."""
    from .checkpoints import is_cached
    from .presets import DEFAULT_MODEL, all_presets

    rows = []
    for preset in all_presets().values():
        if preset.bundled is not None:
            available = (preset.bundled_path / "config.json").is_file()
        else:
            available = is_cached(preset.hub_id, preset.revision)
        rows.append((preset, available))
    if as_json:
        out = [
            {
                "name": p.name,
                "source": p.source,
                "revision": p.revision,
                "dataset": p.dataset,
                "frames": p.frames,
                "image_size": p.image_size,
                "num_labels": p.num_labels,
                "sampling": p.sampling,
                "clips": p.clips,
                "crops": p.crops,
                "license": p.license,
                "available_offline": ok,
                "default": p.name == DEFAULT_MODEL,
            }
            for p, ok in rows
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich import box
    from rich.table import Table

    licences = sorted({p.license or "unknown" for p, _ in rows})
    caption = f"default: {DEFAULT_MODEL}; licence: {', '.join(licences)}; --model also takes a hub id or a folder"
    table = Table(caption=caption, caption_justify="left", box=box.SIMPLE_HEAD)
    for column in ("name", "source", "frames", "labels", "licence", "cached"):
        table.add_column(column, no_wrap=column != "source", overflow="fold")
    for p, ok in rows:
        table.add_row(
            p.name,
            p.source if p.bundled is None else "bundled",
            f"{p.frames}x{p.image_size}",
            str(p.num_labels),
            p.license or "?",
            "[green]yes[/]" if ok else "no",
        )
    stdout.print(table)


@app.command()
@reports_errors
def info(
    video: Annotated[Path, typer.Argument(help="A video file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.")] = False,
):
    """Streams, codec, size, duration, fps and frame count of a video, as measured (not as the header claims)."""
    import dataclasses

    from .video import StreamInfo, probe

    if not video.exists():
        raise _fail(f"{video}: no such file", 3)
    found = probe(str(video))
    if as_json:
        json.dump(dataclasses.asdict(found), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.table import Table

    duration = f"{found.duration_s:.3f} s" if found.duration_s is not None else "unknown duration"
    table = Table(title=f"{found.path} ({found.container}, {duration})", title_justify="left")
    table.add_column("stream", style="bold")
    for stream in found.streams:
        chosen = " (used)" if stream.index == found.video_stream else ""
        table.add_column(f"{stream.index}: {stream.type}{chosen}")
    for field in dataclasses.fields(StreamInfo)[2:]:
        values = [getattr(stream, field.name) for stream in found.streams]
        if all(v is None for v in values):
            continue
        table.add_row(field.name, *(_cell(v) for v in values))
    stdout.print(table)


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("train")
@reports_errors
def train_command(
    data_dir: Annotated[Path, typer.Argument(help="One subfolder of videos per class, or a CSV of path,label.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the trained model (HF layout).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Base model: preset, hub id or folder.")] = "base-k400",
    val_dir: Annotated[Path | None, typer.Option(help="Held-out set (default: --val-split of DATA_DIR).")] = None,
    val_split: Annotated[float, typer.Option(min=0, max=0.9, help="Fraction of each class held out.")] = 0.1,
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Take only the architecture and preprocessing from --model.")
    ] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 8,
    grad_accum: Annotated[int, typer.Option(min=1, help="Batches per optimizer step.")] = 1,
    lr: Annotated[float, typer.Option(min=0, help="Peak learning rate (AdamW).")] = 5e-5,
    weight_decay: Annotated[float, typer.Option(min=0)] = 0.05,
    warmup: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of steps warming up before cosine decay.")
    ] = 0.1,
    min_crop_scale: Annotated[
        float, typer.Option(min=0.05, max=1, help="Smallest random crop, as a fraction of the central square's area.")
    ] = 0.5,
    flip: Annotated[
        bool, typer.Option("--flip", help="Random horizontal flips (not when direction is the label).")
    ] = False,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 2,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUTPUT's last epoch checkpoint.")] = False,
    seed: int = 0,
    revision: RevisionOpt = None,
):
    """Fine-tune a model on your own labelled videos; a checkpoint every epoch, --resume to continue."""
    from .train import RichTrainDisplay, train

    with RichTrainDisplay(stderr) as display:
        result = train(
            data_dir,
            model=model,
            output_dir=output,
            val_dir=val_dir,
            val_split=val_split,
            from_scratch=from_scratch,
            epochs=epochs,
            batch_size=batch_size,
            grad_accum=grad_accum,
            lr=lr,
            weight_decay=weight_decay,
            warmup=warmup,
            min_crop_scale=min_crop_scale,
            flip=flip,
            num_workers=workers,
            device=device,
            resume=resume,
            seed=seed,
            revision=revision,
            progress=display,
        )
    accuracy = result.val_accuracy
    held_out = f", held-out top-1 {accuracy:.1%} on {result.val_size} videos" if accuracy is not None else ""
    summary = f"{len(result.labels)} labels, {result.train_size} training videos{held_out} -> {result.output_dir}"
    stderr.print(summary, soft_wrap=True)
    stderr.print(f"use it: tsf classify VIDEO --model {result.output_dir}", soft_wrap=True)


@app.command("eval")
@reports_errors
def eval_command(
    data_dir: Annotated[Path, typer.Argument(help="One subfolder of videos per class, or a CSV of path,label.")],
    model: ModelOpt = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the confusion matrix as CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")] = False,
    batch_size: BatchOpt = 8,
    workers: Annotated[int, typer.Option(min=0, help="Decoding processes.")] = 2,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    frames: FramesOpt = None,
    sampling: SamplingOpt = None,
    stride: StrideOpt = None,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    revision: RevisionOpt = None,
):
    """Top-1 / top-5 accuracy, per-class accuracy and the confusion matrix of a model on a labelled set."""
    from .checkpoints import write_atomically
    from .presets import DEFAULT_MODEL
    from .train import evaluate, write_confusion_csv

    if csv_path is not None and not csv_path.parent.is_dir():  # say so before the evaluation, not after it
        raise _fail(f"{csv_path}: no such folder {csv_path.parent}", 6)
    result = evaluate(
        data_dir,
        model=model or DEFAULT_MODEL,
        revision=revision,
        device=device,
        dtype=dtype.value,
        batch_size=batch_size,
        num_workers=workers,
        frames=frames,
        sampling=sampling.value if sampling else None,
        stride=stride,
        clips=clips,
        crops=crops,
    )
    if csv_path is not None:

        def write_csv(path: Path) -> None:
            with path.open("w", newline="", encoding="utf-8") as file:
                write_confusion_csv(result, file)

        try:
            write_atomically(csv_path, write_csv)
        except OSError as exc:
            raise _fail(f"{csv_path}: cannot write: {exc.strerror or exc}", 6) from None
    for failure in result.failures:
        _say("skipped", "yellow", failure.message)
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    from rich.table import Table

    summary = Table(title=f"{result.model.name}: {result.count} videos", title_justify="left")
    for column in ("label", "videos", "top-1"):
        summary.add_column(column, justify="left" if column == "label" else "right")
    for c in result.per_class:
        summary.add_row(c.label, str(c.count), f"{c.accuracy:.1%}")
    summary.add_section()
    summary.add_row("[bold]all[/]", str(result.count), f"[bold]{result.top1:.1%}[/] (top-5 {result.top5:.1%})")
    stdout.print(summary)
    confusion = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for column in result.columns:
        confusion.add_column(column, justify="right")
    for label, row in zip(result.labels, result.confusion, strict=True):
        confusion.add_row(label, *(str(n) if n else "." for n in row))
    stdout.print(confusion)


@app.command()
@reports_errors
def demo(
    motion: Annotated[
        str | None,
        typer.Option(help="The motion to generate: " + ", ".join(MOTIONS) + ". [default: a random one]"),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of the generated clip. [default: a random one]")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Keep the clip here (.mp4, .mkv, .mov, .avi, .webm).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.")] = False,
):
    """Offline: generate a synthetic motion clip and classify it with the small model bundled in tsf."""
    from .api import run_demo
    from .results import VideoFailure
    from .writers import write_json_document

    run = run_demo(motion, seed=seed, output=output)
    clip = run.clip
    article = "an" if clip.spec.shape[0] in "aeiou" else "a"
    description = (
        f"Generated {clip.path}: {article} {clip.spec.shape} {clip.motion.replace('_', ' ')}, "
        f"{clip.spec.num_frames} frames {clip.spec.width}x{clip.spec.height} ({clip.codec}), seed {run.seed}"
    )
    stderr.print(description, markup=False, soft_wrap=True)  # a path may hold [brackets]
    if isinstance(run.result, VideoFailure):
        raise _fail(run.result.message, 3)
    if as_json:
        write_json_document([run.result], sys.stdout)
        return
    stdout.print(_prediction_table(run.result))
    predicted = run.result.predictions[0].label
    verdict = "[green]right[/]" if predicted == clip.motion else "[red]wrong[/]"
    stdout.print(f"truth: {clip.motion}, prediction: {predicted} ({verdict})")


def main() -> None:
    """Console-script entry point."""
    app()
