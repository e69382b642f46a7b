"""What the sources of a batch name: folders, globs, ``.txt`` lists of paths, single files, as absolute paths."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import TsfError

URL = re.compile(r"(?i)^(https?)://")


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL rather than a file path (a file whose name starts so: ``./http:/...``)."""
    return bool(URL.match(path))


def list_inputs(source: str, *, recursive: bool = False, exclude: Iterable[str] = ()) -> list[str]:
    """The files one batch argument names, as absolute paths: a folder (every non-hidden file, sorted), a .txt list
    (one path a line, relative ones from the list's folder, # comments), a glob, or one file.

    Every file in a folder counts, whatever its extension: a text file among videos gets an error record rather
    than silently vanishing from the output. Absolute paths make ``--resume`` match its records whatever the
    working directory. ``exclude`` keeps tsf's own output files out of the list.
    """
    import glob

    excluded = {os.path.abspath(p) for p in exclude}
    path = Path(source).expanduser()
    if path.is_dir():
        walker = path.rglob("*") if recursive else path.glob("*")
        found = [
            str(p)
            for p in walker
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
    elif path.is_file() and path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TsfError(f"{source}: cannot read the list of paths ({exc})") from exc
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        found = [str(path.parent / Path(entry).expanduser()) for entry in entries]
    elif path.is_file():
        found = [str(path)]
    elif glob.has_magic(source):
        found = [p for p in glob.glob(os.path.expanduser(source), recursive=recursive) if os.path.isfile(p)]
        if not found:
            raise TsfError(f"{source}: the pattern matches no file")
    else:
        raise TsfError(f"{source}: no such file, folder or matching glob")
    absolute = (os.path.abspath(p) for p in found)
    return sorted(dict.fromkeys(p for p in absolute if p not in excluded))
