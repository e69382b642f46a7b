"""Writing files so that no reader, and no crash, ever sees half of one; locking a file for one run at a time.

Every file tsf writes whole (checkpoints, training state, embedding files, CSV tables) goes through ``atomic_file``;
files that grow record by record (``tsf batch`` outputs, embedding journals) are locked with ``lock_file`` while a
run appends to them. ``reporting(path)`` turns the OSError of a failed write into the one-line ``OutputError``.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a new binary file next to ``path`` that replaces ``path`` only once it is completely written and synced.

    Write through the file object, or by its name (``f.name``, the temporary path) for libraries that only take a
    path. An exception (Ctrl-C included) removes the temporary file and leaves whatever ``path`` held untouched.
    The file gets the permissions a plain open() would give (mkstemp's 0600 would hide a saved model from the rest
    of a team).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # syncs the inode, whichever handle (ours or a library's by name) wrote it
        # A library that wrote by name may have made the file anew with its own mode (safetensors: 0600).
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


@contextmanager
def reporting(path: str | os.PathLike) -> Iterator[None]:
    """Turn the OSError of writing ``path`` (missing folder, no permission, disk full) into one OutputError line."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from e


def lock_file(path: str | os.PathLike) -> BinaryIO | None:
    """Hold an exclusive lock on ``path`` (created if missing) for one run: two runs appending to one file would
    interleave their records and each redo the other's videos. The handle holds the lock until it is closed (or the
    process dies). An advisory flock, so other programs are not kept out; None where there is no flock (Windows, a
    file system without locks)."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(path, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutputError(
            f"{path} is being written by another tsf run: wait for it to end, or use another file"
        ) from None
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without locks (some NFS)
            return None
        raise
    return handle


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail now, with one OutputError line, if ``path`` (a file, or with ``folder`` a folder to create files in)
    cannot be written: before a run spends minutes on work whose result it could not keep. A folder that does not
    exist yet counts as writable where it could be created. The check writes and removes a small file, so it sees
    what permissions bits alone do not (a read-only file system, an administrator's lack of rights elsewhere)."""
    path = Path(path)
    target = path if folder else path.parent
    if not folder and not target.is_dir():
        raise OutputError(
            f"{path}: {target} is not a folder" if target.exists() else f"{path}: no such folder {target}"
        )
    if not folder and path.is_dir():
        raise OutputError(f"{path}: cannot write: it is a folder, not a file")
    existing = next(p for p in (target, *target.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot write: {existing} is a file, not a folder")
    probe = existing / f".tsf-write-check-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {existing}: {exc.strerror or exc}") from None
    probe.unlink()
