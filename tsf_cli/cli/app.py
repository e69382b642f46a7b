"""The ``tsf`` command: the commands of ``predict``, ``catalog``, ``training`` and ``demo`` assembled into one Typer
app, and the boundary where errors become one line and an exit code.

Exit codes: 0 success; 1 other known error; 2 bad command line; 3 a video could not be read; 4 model not found;
5 bad checkpoint; 6 output cannot be written; 7 device unavailable; 8 a batch finished but some inputs failed;
130 interrupted (Ctrl-C; what was finished is kept). The numbers live with the errors (``tsf_cli.errors``).

torch, PyAV and huggingface_hub are imported inside the commands, so ``tsf --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated

import typer

from .. import __version__
from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, TsfError
from . import catalog, demo, display, predict, training

app = typer.Typer(
    name="tsf",
    help="Classify videos with TimeSformer: top-k labels, folders of videos, embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def reports_errors(command):
    """Turn tsf's own errors (and Ctrl-C) into one line on stderr and a documented exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TsfError as exc:
            if _state["debug"]:
                raise
            display.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except ValueError as exc:
            # Option values the API rejects (a zero batch size, an unknown pool) are usage errors.
            if _state["debug"]:
                raise
            display.error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            display.stderr.print("Interrupted.")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _version(value: bool):
    if value:
        display.stdout.print(f"tsf {__version__}")
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


for name, command in (
    ("classify", predict.classify),
    ("batch", predict.batch),
    ("embed", predict.embed),
    ("models", catalog.models),
    ("info", catalog.info),
    ("train", training.train),
    ("eval", training.evaluate),
    ("demo", demo.demo),
):
    app.command(name)(reports_errors(command))


def main() -> None:
    """Console-script entry point."""
    app()
