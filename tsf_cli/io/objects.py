"""Object stores: ``s3://``, ``gs://`` and the other URIs pyarrow's file systems open, as batch sources and as files
to read videos from, in ranged reads.

Configuration is pyarrow's, which is the cloud SDKs': S3 credentials from ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``~/.aws`` or the instance's role; the endpoint from
``AWS_ENDPOINT_URL`` (``AWS_ENDPOINT_URL_S3`` first) or the URI's own query
(``s3://bucket/key?endpoint_override=host:9000&scheme=http``); the region from ``AWS_DEFAULT_REGION`` or
``?region=``. Google Cloud Storage reads ``GOOGLE_APPLICATION_CREDENTIALS`` or gcloud's default credentials.

pyarrow is imported where it is first needed: tsf installs without it, and local paths never need it.
"""

from __future__ import annotations

import functools
import glob
import os
import posixpath
import re
from urllib.parse import urlsplit

from ..errors import MissingDependencyError, TsfError, VideoError, first_line

# pyarrow's FileSystem.from_uri schemes besides file:// (a local path in disguise, which tsf reads as one).
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
# What makes one file system differ from another with the same URI: a new value is a new one, not a cached one.
_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an object in a store pyarrow opens (``s3://bucket/key``), not a local file."""
    return urlsplit(str(path)).scheme.lower() in SCHEMES


def split_query(uri: str) -> tuple[str, str]:
    """``s3://b/key?endpoint_override=...`` -> (``s3://b/key``, ``?endpoint_override=...``): the query configures
    the file system, not the object."""
    base, mark, query = uri.partition("?")
    return base, mark + query


@functools.lru_cache(maxsize=32)
def _filesystem(root: str, settings: tuple):
    from pyarrow import fs

    return fs.FileSystem.from_uri(root)[0]


def filesystem_and_path(uri: str):
    """(pyarrow FileSystem, the object's path in it: ``bucket/key``). One file system per scheme, bucket, query and
    settings in a process: creating an S3 file system costs a request (the bucket's region)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"{uri}: an object store", "pyarrow", "parquet") from None
    base, query = split_query(uri)
    parts = urlsplit(base)
    settings = tuple(os.environ.get(name) for name in _SETTINGS)
    try:
        filesystem = _filesystem(f"{parts.scheme}://{parts.netloc}/{query}", settings)
    except (OSError, ValueError) as exc:  # an unknown query parameter, no credentials where they are required
        raise TsfError(f"{uri}: cannot open the object store ({first_line(exc)})") from None
    return filesystem, f"{parts.netloc}{parts.path}"


def portable_filesystem(uri: str):
    """(file system, path) for another process (a Ray task) to unpickle: pyarrow pickles an S3 file system's
    options, but not the environment they came from, so an endpoint from ``AWS_ENDPOINT_URL`` is made explicit here.
    Credentials are not: the process that unpickles it finds its own."""
    from pyarrow import fs

    base, query = split_query(uri)
    parts = urlsplit(base)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if parts.scheme == "s3" and endpoint and "endpoint_override" not in query:
        scheme, _, host = endpoint.partition("://")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return fs.S3FileSystem(endpoint_override=host, scheme=scheme, region=region), f"{parts.netloc}{parts.path}"
    return filesystem_and_path(uri)


def join(uri: str, path: str) -> str:
    """The URI of ``path`` (``bucket/key``) in the same store as ``uri``, with its query."""
    base, query = split_query(uri)
    return f"{urlsplit(base).scheme}://{path}{query}"


# --- Sources ------------------------------------------------------------------------------------------------------


def list_objects(source: str, *, recursive: bool = False) -> list[str]:
    """What a batch source names in an object store, as sorted URIs, with the rules of local sources: a prefix (the
    objects directly under it, or all of them with ``recursive``; hidden names left out), a glob (Python's rules:
    ``*`` and ``?`` within one name, ``**`` across names with ``recursive``), a ``.txt`` list (one URI or key a line,
    relative ones from the list's own prefix, ``#`` comments), or one object."""
    from pyarrow import fs

    filesystem, path = filesystem_and_path(source)
    try:
        if glob.has_magic(split_query(source)[0]):
            found = _glob(filesystem, path, recursive)
            if not found:
                raise TsfError(f"{source}: the pattern matches no object")
            return sorted(join(source, p) for p in found)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File and path.lower().endswith(".txt"):
            return _listed(filesystem, path, source)
        if info.type == fs.FileType.File:
            return [source]
        root = path.rstrip("/")
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=recursive, allow_not_found=True))
    except OSError as exc:  # no such bucket, access denied, the store does not answer
        raise TsfError(f"{source}: cannot list ({first_line(exc)})") from None
    found = [i.path for i in infos if i.type == fs.FileType.File and not _hidden(i.path[len(root) + 1 :])]
    if not found and not infos:
        raise TsfError(f"{source}: no such object or prefix")
    return sorted(join(source, p) for p in found)


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def _glob(filesystem, pattern: str, recursive: bool) -> list[str]:
    """Object paths matching ``pattern``: pyarrow has no glob, so list from the longest literal prefix and match."""
    from pyarrow import fs

    magic = re.search(r"[*?[]", pattern).start()
    root = pattern[:magic].rpartition("/")[0]
    infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
    regex = _glob_regex(pattern, recursive)
    dot_spelled = "/." in "/" + pattern  # as glob.glob: wildcards skip hidden names unless the pattern spells the dot
    return [
        i.path
        for i in infos
        if i.type == fs.FileType.File and regex.match(i.path) and (dot_spelled or not _hidden(i.path[len(root) :]))
    ]


def _glob_regex(pattern: str, recursive: bool) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        if recursive and pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # any number of names, none included
            i += 3
        elif recursive and pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _listed(filesystem, path: str, source: str) -> list[str]:
    with filesystem.open_input_stream(path) as file:
        try:
            lines = file.read().decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise TsfError(f"{source}: cannot read the list of paths ({exc})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    folder = posixpath.dirname(path)
    found = (e if is_uri(e) else join(source, posixpath.normpath(posixpath.join(folder, e))) for e in entries)
    return sorted(dict.fromkeys(found))


# --- Reading a video ----------------------------------------------------------------------------------------------


def open_object(uri: str, *, block_size: int = 1 << 20, cache_bytes: int = 64 << 20) -> BlockCachedFile:
    """A seekable binary file object on one object, read in ranged requests (see ``BlockCachedFile``), never
    downloaded whole first. The errors of a missing, empty or unreadable object are VideoErrors, as for a file."""
    from pyarrow import fs

    filesystem, path = filesystem_and_path(uri)
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.NotFound:
            raise VideoError(uri, "no such file")
        if info.type != fs.FileType.File:
            raise VideoError(uri, "a prefix (a folder), not a video file")
        if info.size == 0:
            raise VideoError(uri, "empty file (0 bytes)")
        raw = filesystem.open_input_file(path)
    except OSError as exc:
        raise VideoError(uri, f"cannot read: {first_line(exc)}") from None
    return BlockCachedFile(raw, uri, block_size=block_size, cache_bytes=cache_bytes)


class BlockCachedFile:
    """A read-only file object over a pyarrow RandomAccessFile that fetches aligned blocks of ``block_size`` bytes
    (one ranged GET each) and keeps up to ``cache_bytes`` of them, dropping the least recently used first.

    tsf's decoder reads every packet once to index the stream, then seeks back to the keyframes before the frames it
    wants. Reading straight through pyarrow's file, each of those seeks fetches its bytes again (130-160% of the file
    in hundreds of small requests, measured); with the blocks still cached here, every byte crosses the network once.
    ``requests`` and ``fetched`` count what it cost.
    """

    def __init__(self, raw, name: str, block_size: int = 1 << 20, cache_bytes: int = 64 << 20):
        self.raw, self.name = raw, name
        self.size = raw.size()
        self.block_size = block_size
        self.max_blocks = max(2, cache_bytes // block_size)
        self.blocks: dict[int, bytes] = {}  # in order of use, the most recent last
        self.position = 0
        self.requests = self.fetched = 0

    def _block(self, index: int) -> bytes:
        data = self.blocks.pop(index, None)
        if data is None:
            offset = index * self.block_size
            data = self.raw.read_at(min(self.block_size, self.size - offset), offset)
            self.requests += 1
            self.fetched += len(data)
            if len(self.blocks) >= self.max_blocks:
                del self.blocks[next(iter(self.blocks))]
        self.blocks[index] = data
        return data

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.position if n is None or n < 0 else min(n, self.size - self.position)
        chunks = []
        while n > 0:
            index, start = divmod(self.position, self.block_size)
            chunk = self._block(index)[start : start + n]
            chunks.append(chunk)
            self.position += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.blocks.clear()
        self.raw.close()

    def __enter__(self) -> BlockCachedFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
