"""The ``tsf`` command line: a thin shell over ``tsf_cli.api`` (see ``app``)."""

from .app import app, main

__all__ = ["app", "main"]
