"""The ``tsf`` command: the commands of ``predict``, ``timeline``, ``explain``, ``catalog``, ``training``, ``export``
and ``demo`` assembled into
one Typer app, and the boundary where errors become one line and an exit code.

Exit codes: 0 success; 1 other known error; 2 bad command line; 3 a video could not be read; 4 model not found;
5 bad checkpoint; 6 output cannot be written; 7 device unavailable; 8 a batch finished but some inputs failed;
130 interrupted (Ctrl-C; what was finished is kept). The numbers live with the errors (``tsf_cli.errors``).

torch, PyAV and huggingface_hub are imported inside the commands, so ``tsf --help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
import warnings
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import EXIT_INTERRUPTED, EXIT_USAGE, TsfError
from . import catalog, demo, display, explain, export, predict, timeline, training

# Options of the whole program that a user may also put after the command (`tsf classify x.mp4 --debug`).
ANYWHERE = ("--debug", "--quiet", "-q")
# Errors of the command line itself. Typer bundles its own copy of click, whose classes are reached through the one
# it exports.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

_state = {"debug": False}


class Tsf(TyperGroup):
    """Typer's group, with errors of the command line as one ``Error:`` line, and ``ANYWHERE`` options taken
    wherever they stand."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        ahead = [a for a in _before_double_dash(args) if a in ANYWHERE]
        args = ahead + [a for i, a in enumerate(args) if not (a in ANYWHERE and i < _double_dash(args))]
        try:
            code = super().main(args, prog_name or "tsf", complete_var, standalone_mode=False, **extra)
        except ClickException as exc:  # a usage error: unknown option, bad value, missing argument
            context = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":  # `tsf` alone, or a group without its command
                display.stdout.print(context.get_help(), markup=False, highlight=False)
                code = 0
            else:
                see = f" (see '{context.command_path} --help')" if context is not None else ""
                display.error(exc.format_message() + see)
                code = exc.exit_code
        except typer.Abort:
            display.error("interrupted")
            code = EXIT_INTERRUPTED
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _double_dash(args: list[str]) -> int:
    return args.index("--") if "--" in args else len(args)


def _before_double_dash(args: list[str]) -> list[str]:
    return args[: _double_dash(args)]


app = typer.Typer(
    name="tsf",
    cls=Tsf,
    help="Classify videos with TimeSformer: top-k labels, folders of videos, timelines, embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def reports_errors(command):
    """Turn tsf's own errors, the system's refusals (and Ctrl-C) into one line on stderr and a documented exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TsfError as exc:
            _fail(str(exc), exc.exit_code)
        except ValueError as exc:
            # Option values the API rejects (a zero batch size, an unknown pool) are usage errors.
            _fail(str(exc), EXIT_USAGE)
        except OSError as exc:
            # What the system refused where tsf asked nothing more specific (a folder it may not enter, a name too
            # long): tsf's own checks name what they check; this names the path and the system's reason.
            _fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc), TsfError.exit_code)
        except KeyboardInterrupt:
            display.stderr.print("Interrupted.")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _fail(message: str, exit_code: int) -> NoReturn:
    """The one ``Error:`` line and the documented exit code; with --debug the traceback first, same exit code."""
    if _state["debug"]:
        traceback.print_exc()
    display.error(message)
    raise typer.Exit(exit_code) from None


def _version(value: bool):
    if value:
        display.stdout.print(f"tsf {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and libraries' logs (or TSF_DEBUG=1).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors only: no progress, warnings or summaries.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
):
    """Classify videos with TimeSformer."""
    _state["debug"] = debug or os.environ.get("TSF_DEBUG", "") not in ("", "0")
    display.set_quiet(quiet)
    if _state["debug"]:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        return
    # Libraries' log records (huggingface_hub's retries, say) reach the terminal only with --debug: a handler on the
    # root logger keeps Python from printing them through its last-resort handler.
    logging.getLogger().addHandler(logging.NullHandler())
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """tsf's own warnings as one ``Warning:`` line; other packages' only with --debug."""
    if filename.startswith(os.path.dirname(os.path.dirname(__file__))):
        display.warn(str(message))


for name, command in (
    ("classify", predict.classify),
    ("batch", predict.batch),
    ("embed", predict.embed),
    ("timeline", timeline.timeline),
    ("explain", explain.explain),
    ("models", catalog.models),
    ("info", catalog.info),
    ("train", training.train),
    ("eval", training.evaluate),
    ("export", export.export),
    ("demo", demo.demo),
):
    app.command(name)(reports_errors(command))


def main() -> None:
    """Console-script entry point."""
    app()
