"""The errors tsf raises on purpose, and the exit codes of the ``tsf`` command.

Each error carries the path or name it is about and the cause, in one line. The CLI turns a ``TsfError`` into
``Error: <message>`` on stderr and exits with its ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

# Exit codes that belong to no error class: a bad command line, a batch that finished with failed inputs, Ctrl-C.
EXIT_USAGE = 2
EXIT_SOME_FAILED = 8
EXIT_INTERRUPTED = 130


def first_line(exc: BaseException, *, named: bool = False) -> str:
    """What a library's exception says, for a one-line error: its message's first line (after its type's name when
    ``named``), or the type's name when it says nothing."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if named else text.splitlines()[0]


class TsfError(Exception):
    """Base class of every error tsf reports to users as one line."""

    exit_code = 1


class UsageError(TsfError):
    """Options that do not go together, or a value the command cannot take."""

    exit_code = EXIT_USAGE


class DatasetError(TsfError):
    """A labelled set that cannot be used: missing, empty, malformed, or with labels the model does not know."""

    exit_code = EXIT_USAGE


class VideoError(TsfError):
    """A video that cannot be opened, has no usable video stream, or fails to decode."""

    exit_code = 3

    def __init__(self, path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class ModelNotFoundError(TsfError):
    """A model name, hub id or folder that cannot be resolved (unknown, offline and not cached, missing file)."""

    exit_code = 4


class CheckpointError(TsfError):
    """A checkpoint that exists but cannot be loaded: corrupt, truncated, wrong model type, missing or extra tensors."""

    exit_code = 5


class MissingDependencyError(TsfError):
    """An optional package that a feature needs is not installed; the message names the extra that brings it."""

    def __init__(self, feature: str, packages: str, extra: str):
        super().__init__(f'{feature} needs {packages}: pip install "tsf-cli[{extra}]"')


class ExportError(TsfError):
    """A model that could not be exported, or whose exported graph does not compute what the model computes."""


class OutputError(TsfError):
    """An output file that cannot be written, or an output format that is not supported."""

    exit_code = 6


class DeviceError(TsfError):
    """A device that was asked for but is not there (CUDA on a machine without it, a GPU index out of range)."""

    exit_code = 7


class WorkerStartError(TsfError):
    """A decoding process that exited, or never said it was ready, before it took any video."""

    exit_code = 1


class EngineError(TsfError):
    """An engine that cannot run: Ray not installed for ``--engine ray``, or no Ray cluster at ``--ray-address``."""
