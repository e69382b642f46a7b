"""Everything the ``tsf`` command shows people, with Rich: tables, progress, one-line messages.

Data goes to ``stdout``, everything for people (progress, warnings, errors) to ``stderr``. File names and FFmpeg's
words are printed as they are, never read as Rich markup (a path may hold ``[brackets]``), with each byte of a name
that is not UTF-8 shown as U+FFFD (``readable``) rather than failing the terminal's encoding.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import ProgressColumn
from rich.table import Table
from rich.text import Text

from ..results import readable

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)  # for people: progress, warnings, summaries (silent with --quiet)
_errors = Console(stderr=True, highlight=False)  # errors, which --quiet never hides


def set_quiet(quiet: bool) -> None:
    stderr.quiet = quiet


def say(label: str, style: str, message: str, console: Console = stderr) -> None:
    """``label: message`` on stderr, the message printed as it is."""
    console.print(Text.assemble((f"{label}:", style), " ", readable(message)), soft_wrap=True)


def error(message: str) -> None:
    say("Error", "bold red", message, _errors)


def warn(message: str) -> None:
    say("Warning", "yellow", message)


class Loading:
    """An observer (see ``tsf_cli.api.Observer``) that shows a spinner while the model loads."""

    def loading(self, model: str):
        return stderr.status(f"Loading {model}...", spinner="dots")

    def started(self, total: int, todo: int) -> None:
        pass

    def finished(self, record) -> None:
        pass

    def windows(self, path: str, done: int, total: int) -> None:
        pass


class WindowProgress(Loading):
    """An observer for ``tsf timeline``: a progress bar of one video's windows, with time left. Use it as a context
    manager around that video's run."""

    def __init__(self, path):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows"),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        )
        self._name = Text(str(path)).plain
        self._task = None

    def __enter__(self) -> WindowProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def windows(self, path: str, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task(escape(self._name), total=total)
        self._progress.update(self._task, completed=done, total=total)


class Explaining(Loading):
    """An observer for ``tsf explain``: the loading spinner, then another while the explanation is computed. Use it as
    a context manager around the call, so that an error stops the spinner."""

    def __init__(self, video, method: str):
        self._status = stderr.status(f"Explaining {escape(str(video))} ({method})...", spinner="dots")

    def __enter__(self) -> Explaining:
        return self

    def __exit__(self, *exc) -> None:
        self._status.stop()

    def started(self, total: int, todo: int) -> None:
        self._status.start()

    def finished(self, record) -> None:
        self._status.stop()


def explanation_line(explanation) -> str:
    """What was explained, on which view, and the frame that mattered most."""
    e = explanation
    peak = int(e.frame_importance.argmax())
    return (
        f"{e.path}: '{e.label}' ({e.probability:.1%}) by {e.method}, on {e.view}; most relevant: frame "
        f"#{e.frame_indices[peak]} at {e.timestamps[peak]:.2f} s ({e.frame_importance[peak]:.0%} of the relevance)"
    )


class VideosPerSecond(ProgressColumn):
    """The rate over the whole run: records arrive in bursts (a batch finishes at once), which a recent-window rate
    (Rich's ``speed``) turns into thousands of videos a second."""

    def render(self, task) -> Text:
        rate = task.completed / task.elapsed if task.completed and task.elapsed else None
        return Text(f"{rate:.2f} videos/s" if rate else "- videos/s", style="cyan")


class RunProgress(Loading):
    """An observer for long runs: the loading spinner, then a progress bar with videos/s and time left, and one line
    per failed input. Use it as a context manager around the run; Ctrl-C says how to continue."""

    def __init__(self, interrupted_hint: str | None = None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            VideosPerSecond(),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            console=stderr,
        )
        self._task = None
        self._failed = 0
        self._hint = interrupted_hint

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._progress.stop()
        if exc_type is KeyboardInterrupt and self._hint:
            stderr.print(self._hint)

    def started(self, total: int, todo: int) -> None:
        if todo:
            self._progress.start()
            self._task = self._progress.add_task("videos", total=todo, failed=0)

    def finished(self, record) -> None:
        if getattr(record, "status", None) == "error":
            self._failed += 1
            say("failed", "yellow", record.message, self._progress.console)
        for warning in getattr(record, "warnings", ()):  # one line each, as everywhere: grep finds them whole
            say("Warning", "yellow", f"{record.path}: {warning}", self._progress.console)
        self._progress.update(self._task, advance=1, failed=self._failed)


def record_warnings(records) -> None:
    """Each record's warnings, one ``Warning:`` line each, on stderr."""
    for record in records:
        for warning in getattr(record, "warnings", ()):
            warn(f"{record.path}: {warning}")


def summary_line(summary) -> str:
    """``N input(s): X ok, Y failed[, Z already recorded (W of them failed)] -> OUTPUT``."""
    text = f"{summary.total} input(s): {summary.ok} ok, {summary.failed} failed"
    if summary.skipped:
        text += f", {summary.skipped} already recorded ({summary.failed_before} of them failed)"
    return f"{text} -> {'standard output' if summary.output == '-' else summary.output}"


def prediction_table(result, title: str | None = None) -> Table:
    frames = sum(len(c.indices) for c in result.clips) // max(1, len(result.clips))
    views = f"{len(result.clips)} clip(s) x {result.crops} crop(s) of {frames} frames"
    runtime = " through ONNX Runtime" if result.model.runtime == "onnx" else ""
    caption = f"{result.model.name} · {result.model.dtype} on {result.model.device}{runtime} · {views}"
    title = escape(readable(title or result.path))
    table = Table(title=title, caption=escape(caption), title_justify="left", caption_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=20)
    for rank, p in enumerate(result.predictions, 1):
        bar = "█" * round(p.probability * 20)
        table.add_row(str(rank), escape(p.label), f"{p.probability:.1%}", f"[green]{bar}[/]")
    return table


def export_summary(result) -> str:
    """What ``tsf export`` wrote, and how far the graph is from the PyTorch model it was checked against."""
    differences = ", ".join(f"{name} {difference:.1e}" for name, difference in result.differences.items())
    return (
        f"{result.path}: {result.size_bytes / 2**20:.1f} MB, opset {result.opset}, {result.frames} frames of "
        f"{result.height}x{result.width} in {result.dtype} -> {', '.join(result.outputs)}, any batch size; max abs "
        f"difference from PyTorch on random inputs: {differences} (tolerance {result.tolerance:.1e}); "
        f"{result.seconds:.0f} s"
    )


def models_table(rows, default_model: str) -> Table:
    """One row per preset: its name with where the weights come from beneath it (a hub id is never split), then the
    frames x size, labels, licence and whether it runs offline; 80 columns wide."""
    from rich import box

    caption = f"default: {default_model}; --model also takes a hub id or a folder"
    table = Table(
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("name / source", no_wrap=True)
    for column in ("frames", "labels", "licence", "cached"):
        table.add_column(column, no_wrap=True)
    for p, ok in rows:
        source = "bundled in tsf" if p.bundled is not None else p.source
        table.add_row(
            Text.assemble((p.name, "bold"), "\n", (source, "dim")),
            f"{p.frames}x{p.image_size}",
            str(p.num_labels),
            p.license or "?",
            "[green]yes[/]" if ok else "no",
        )
    return table


def info_table(found) -> Table:
    import dataclasses

    duration = f"{found.duration_s:.3f} s" if found.duration_s is not None else "unknown duration"
    table = Table(title=escape(readable(f"{found.path} ({found.container}, {duration})")), title_justify="left")
    table.add_column("stream", style="bold", no_wrap=True)
    for stream in found.streams:
        chosen = " (used)" if stream.index == found.video_stream else ""
        table.add_column(f"{stream.index}: {stream.type}{chosen}")
    for field in dataclasses.fields(type(found.streams[0]))[2:] if found.streams else ():
        values = [getattr(stream, field.name) for stream in found.streams]
        if all(v is None for v in values):
            continue
        table.add_row(field.name, *(_cell(v) for v in values))
    return table


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


CONFUSION_MAX_LABELS = 20  # beyond this a matrix no longer reads in a terminal; --csv writes it whole


def evaluation_tables(result) -> tuple[Table, ...]:
    """The accuracy per class with the totals, and the confusion matrix with numbered columns (labels as column
    headers would be cut short), where it fits."""
    summary = Table(title=f"{result.model.name}: {result.count} videos", title_justify="left")
    for column in ("label", "videos", "top-1"):
        summary.add_column(column, justify="left" if column == "label" else "right")
    for c in result.per_class:
        summary.add_row(c.label, str(c.count), "-" if c.accuracy is None else f"{c.accuracy:.1%}")
    summary.add_section()
    summary.add_row("[bold]all[/]", str(result.count), f"[bold]{result.top1:.1%}[/] (top-5 {result.top5:.1%})")
    if len(result.columns) > CONFUSION_MAX_LABELS:
        return (summary,)
    confusion = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("", no_wrap=True)
    for number, column in enumerate(result.columns, 1):
        confusion.add_column("other" if column == "(other)" else str(number), justify="right", no_wrap=True)
    for number, (label, row) in enumerate(zip(result.labels, result.confusion, strict=True), 1):
        confusion.add_row(f"{number} {escape(label)}", *(str(n) if n else "." for n in row))
    return summary, confusion


class TrainDisplay:
    """A ``progress`` callback for ``train`` that draws a Rich progress bar (loss, accuracy, time left) and prints
    one line per finished epoch. Use it as a context manager around ``train``."""

    def __init__(self, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or stderr
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[accuracy]:.3f}"),
            TimeElapsedColumn(),
            TextColumn("left {task.fields[remaining]}"),
            console=self.console,
        )
        self._task = None

    def __enter__(self) -> TrainDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, event) -> None:
        remaining = "?" if event.remaining is None else time.strftime("%H:%M:%S", time.gmtime(event.remaining))
        fields = {"epoch": f"{event.epoch}/{event.epochs}", "loss": event.loss, "accuracy": event.accuracy}
        if self._task is None:
            self._task = self._progress.add_task("train", total=event.total_steps, remaining=remaining, **fields)
        self._progress.update(self._task, completed=event.step, remaining=remaining, **fields)
        if event.epoch_done:
            held_out = ""
            if event.val_accuracy is not None:
                held_out = f"  held-out loss {event.val_loss:.4f} acc {event.val_accuracy:.3f}"
            skipped = f"  ({event.skipped} videos skipped)" if event.skipped else ""
            self._progress.console.print(
                f"epoch {event.epoch}/{event.epochs}  step {event.step}  loss {event.loss:.4f}"
                f"  acc {event.accuracy:.3f}{held_out}{skipped}"
            )
