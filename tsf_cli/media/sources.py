"""What a path given to tsf names, and what FFmpeg may do to open it: a local file, which opens that file and
nothing else, or an http(s) URL, which may use HTTP's own protocols and nothing else.

FFmpeg reads a name as a protocol URL when it can: ``concat:a.mp4|b.webm`` joins two other files, ``pipe:0`` reads
standard input, ``subfile,,start,0,end,0,,:a.mp4`` reads another file, ``http:`` connects somewhere. Demuxers, found
by probing the content, can do the same: a playlist (hls, dash), a concat list or an SDP session opens other files or
hosts, and text "plays" as ANSI art. So a local path goes to FFmpeg's file protocol by name (``file:`` + path) with
every other protocol refused, and only demuxers that read the one file they are given are allowed.

PyAV is imported only when a file is opened.
"""

from __future__ import annotations

import errno
import functools
import os
import stat

from ..errors import VideoError
from ..io.inputs import URL, is_url

# What each kind of source may use underneath, measured by opening with each whitelist: http needs tcp ("http"
# alone fails with EINVAL); https needs tls and tcp. A redirect to another protocol, file: included, is refused.
_PROTOCOLS = {"http": "http,tcp", "https": "https,tls,tcp", "file": "file"}
# Demuxers that read other files or hosts than the one named (playlists, concat lists, manifests, SDP/RTSP sessions,
# FFmpeg's metadata and filter-graph scripts), or draw text as pictures (tty, bintext, xbin, adf, idf: a notes.txt
# would "play" as ANSI art). Every other demuxer FFmpeg has stays allowed; image2 stays, with patterns off.
_UNSAFE_DEMUXERS = frozenset(
    {
        "concat", "hls", "dash", "imf", "webm_dash_manifest", "sdp", "rtsp", "rtp", "sap", "ffmetadata",
        "tty", "bintext", "xbin", "adf", "idf", "lavfi", "vapoursynth", "avisynth",
    }
)  # fmt: skip


def ffmpeg_name(path: str) -> str:
    """The name to give FFmpeg: a URL as it is, a file through the file protocol by name (so ``pipe:0`` is a file
    called pipe:0)."""
    return path if is_url(path) else "file:" + path


def open_options(path: str, timeout_s: float | None) -> dict[str, str]:
    """The options of the container alone (``avformat_open_input``), not of its decoders."""
    url = URL.match(path)
    options = {
        "protocol_whitelist": _PROTOCOLS[url.group(1).lower() if url else "file"],
        "format_whitelist": _allowed_demuxers(),
        "pattern_type": "none",  # image2: the path is one image, never a sequence of others ("img%03d.png")
    }
    if url:
        if timeout_s is not None:
            options["rw_timeout"] = str(int(timeout_s * 1_000_000))  # a server that stops answering
        # FFmpeg's TLS checks no certificate unless asked (tls_verify defaults to 0): ask, with the CA bundle
        # Python's own ssl would use (SSL_CERT_FILE, else OpenSSL's default file) where there is one.
        options["tls_verify"] = "1"
        ca_file = _ca_file()
        if ca_file:
            options["ca_file"] = ca_file
    return options


@functools.lru_cache(maxsize=1)
def _allowed_demuxers() -> str:
    """FFmpeg's input formats less the unsafe ones and the devices, as its format_whitelist option takes them."""
    import av

    allowed = []
    for name in sorted(av.formats_available):
        fmt = av.format.ContainerFormat(name)
        if not fmt.is_input or name in _UNSAFE_DEMUXERS:
            continue
        if fmt.no_file and name != "image2":  # devices (x11grab, alsa, v4l2...) and network sessions open no file
            continue
        allowed.append(name)
    return ",".join(allowed)


def _ca_file() -> str | None:
    import ssl

    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def check_local_file(path: str) -> None:
    """A VideoError naming what ``path`` is, unless it is a non-empty regular file (or a link to one).

    Checked before FFmpeg opens anything: opening a FIFO blocks until a writer comes, a device may never end."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise VideoError(path, f"a broken symbolic link (to {os.readlink(path)!r}, which does not exist)") from None
        raise VideoError(path, "no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VideoError(path, "a symbolic link loop (too many levels of symbolic links)") from None
        raise VideoError(path, f"cannot read: {exc.strerror or exc}") from None
    mode = status.st_mode
    if stat.S_ISDIR(mode):
        raise VideoError(path, "a directory, not a video file")
    if stat.S_ISFIFO(mode):
        raise VideoError(path, "a named pipe (FIFO), not a regular file: tsf never opens pipes")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "character" if stat.S_ISCHR(mode) else "block"
        raise VideoError(path, f"a {kind} device, not a regular file")
    if not stat.S_ISREG(mode):
        raise VideoError(path, "a socket, not a regular file")
    if status.st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")


def looks_like_text(path: str) -> bool:
    """Whether the file's first 4 KiB are UTF-8 text without NULs: a playlist, a list of files, notes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # more than a character cut at the end of the 4 KiB
            return False
    return b"\x00" not in head
