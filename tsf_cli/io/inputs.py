"""What the sources of a batch name: folders, globs, ``.txt`` lists of paths, single files as absolute paths, and
http(s) URLs as they are; the same in object stores, as URIs (``objects.py``).

Every entry a listing finds is an input, whatever its extension or kind: a text file, a FIFO, a device, a broken or
looping link among videos gets an error record (the decoder names what it is, and never opens a FIFO) rather than
vanishing from the output. Links to folders are descended only when asked (``follow_links``), and each real folder
once, so that a link to ``..`` neither loops nor lists the tree again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import TsfError

URL = re.compile(r"(?i)^(https?)://")

# A folder named like a video gets its own record ("a directory, not a video file") instead of being skipped in
# silence, as a plain sub-folder is.
_VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".wmv", ".flv",
     ".ogv", ".3gp", ".gif", ".mxf", ".h264", ".hevc", ".ivf", ".vob"}
)  # fmt: skip


def is_url(path: str) -> bool:
    """Whether ``path`` is an http(s) URL rather than a file path (a file whose name starts so: ``./http:/...``)."""
    return bool(URL.match(path))


def list_inputs(
    source: str, *, recursive: bool = False, exclude: Iterable[str] = (), follow_links: bool = False
) -> list[str]:
    """The inputs one batch argument names, as absolute paths: a folder (every non-hidden entry, sorted), a .txt list
    (one path or URL a line, relative paths from the list's folder, # comments), a glob, one file, or one URL.

    ``recursive`` descends into sub-folders (and lets ``**`` in a glob span folders); ``follow_links`` also into
    links to folders. Absolute paths make ``--resume`` match its records whatever the working directory.
    ``exclude`` keeps tsf's own output files out of the list. A source in an object store (``s3://...``) names
    objects by the same rules (``objects.list_objects``); a .txt list may name them too.
    """
    import glob

    from .objects import is_uri, list_objects

    exclude = [str(p) for p in exclude]
    if is_url(source):
        return [source]
    if is_uri(source):
        return [uri for uri in list_objects(source, recursive=recursive) if uri not in exclude]
    excluded = {os.path.abspath(p) for p in exclude if not is_uri(p)}
    expanded = os.path.expanduser(source)
    path = Path(expanded)
    if path.is_dir():
        found = list(_walk(expanded, recursive, follow_links))
    elif path.is_file() and path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TsfError(f"{source}: cannot read the list of paths ({exc})") from exc
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        found = [
            entry if is_url(entry) or is_uri(entry) else str(path.parent / Path(entry).expanduser())
            for entry in entries
        ]
    elif os.path.lexists(expanded):  # a file, or a FIFO, device or broken link named on its own: its record says
        found = [expanded]
    elif glob.has_magic(source):
        found = _glob(expanded, recursive, follow_links)
        if not found:
            raise TsfError(f"{source}: the pattern matches no file")
    else:
        raise TsfError(f"{source}: no such file, folder or matching glob")
    absolute = (p if is_url(p) or is_uri(p) else os.path.abspath(p) for p in found)
    return sorted(dict.fromkeys(p for p in absolute if p not in excluded))


def _walk(root: str, recursive: bool, follow_links: bool, skip_hidden: bool = True) -> Iterator[str]:
    """Every entry under ``root`` that is an input, in sorted order: anything that is not a folder, and folders
    named like videos. Folders are descended with ``recursive``, links to folders only with ``follow_links``, and
    each real folder once."""
    seen: set[tuple[int, int]] = set()

    def visit(folder: str) -> Iterator[str]:
        try:
            status = os.stat(folder)
        except OSError:
            return
        if (status.st_dev, status.st_ino) in seen:
            return
        seen.add((status.st_dev, status.st_ino))
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            if folder == root:
                raise TsfError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from exc
            yield folder  # an unreadable sub-folder gets a record rather than vanishing
            return
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            folder_like, descend = _is_folder(entry, follow_links)
            if not folder_like:
                yield entry.path
                continue
            if os.path.splitext(entry.name)[1].lower() in _VIDEO_SUFFIXES:
                yield entry.path
            if recursive and descend:
                yield from visit(entry.path)

    yield from visit(root)


def _is_folder(entry: os.DirEntry, follow_links: bool) -> tuple[bool, bool]:
    """(is a folder, may be descended): a link to a folder is one, descended only with ``follow_links``; a broken or
    looping link is no folder, so it is an input."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return True, True
        if entry.is_symlink() and entry.is_dir():
            return True, follow_links
    except OSError:
        pass
    return False, False


def _glob(pattern: str, recursive: bool, follow_links: bool) -> list[str]:
    """glob.glob's matches (``**`` spans folders with ``recursive``, ``*`` never matches a leading dot), found by
    walking as ``_walk`` does: links to folders are not followed unless asked, and entries that are not files count."""
    import fnmatch
    import glob

    parts = pattern.split(os.sep)
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else os.curdir)
    wanted = parts[fixed:]

    def matches(names: list[str], patterns: list[str]) -> bool:
        if not patterns:
            return not names
        if patterns[0] == "**" and recursive:
            return any(matches(names[i:], patterns[1:]) for i in range(len(names) + 1))
        if not names or (names[0].startswith(".") and not patterns[0].startswith(".")):
            return False
        return fnmatch.fnmatchcase(names[0], patterns[0]) and matches(names[1:], patterns[1:])

    deep = len(wanted) > 1 or (recursive and "**" in wanted)
    return [
        path
        for path in _walk(base, deep, follow_links, skip_hidden=False)
        if matches(os.path.relpath(path, base).split(os.sep), wanted)
    ]
