"""The ``tsf`` command run in the test process, as a shell would run it, and what its errors must look like."""

from __future__ import annotations

from typer.testing import CliRunner

from tsf_cli.cli import app


def invoke(*args):
    """``tsf ARGS``, each argument passed as the string a shell would pass (paths, numbers)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    """The one ``Error:`` line a failed command prints on stderr, and nothing else there."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]
