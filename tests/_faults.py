"""A decoder that fails the way hostile files make FFmpeg fail, for the engines' isolation tests: a segfault for a
path with "segfault" in its name, a hang for one with "hang", else ``load_views`` itself. It is a module of its own so
that decoding processes (and Ray's workers) import it by name."""

from __future__ import annotations

import os
import signal
import time

from tsf_cli.inference.views import load_views


def load_views_or_fail(path: str, *arguments):
    name = os.path.basename(path)
    if "segfault" in name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in name:
        time.sleep(3600)
    return load_views(path, *arguments)
