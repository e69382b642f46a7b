"""What a file's own headers and packets say may be missing or wrong, for a file FFmpeg still opens.

FFmpeg plays what it can of a damaged file without a word: a Matroska file cut at 90% keeps its first 90%, a flipped
bit in an MP4 time scale moves every frame, an edit list can hide a third of the frames, and a container whose header
is gone is probed as raw codec data. Each rule here compares two things the file states about itself (its header's
size and the file's, its header's duration and its frames', its rate and its timestamps' spacing) and returns a
sentence where they disagree by more than rounding; ``decode`` refuses the file or puts the sentence in the result's
warnings. Nothing here decodes.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib

import numpy as np

# The demuxer family each extension names, to notice a file whose header is gone (or that is misnamed).
_EXTENSION_FORMATS = {
    ".mkv": "matroska", ".webm": "matroska", ".mk3d": "matroska",
    ".mp4": "mov", ".m4v": "mov", ".mov": "mov", ".3gp": "mov", ".3g2": "mov", ".mj2": "mov",
    ".avi": "avi", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".flv": "flv",
    ".wmv": "asf", ".asf": "asf", ".ogv": "ogg", ".ogg": "ogg", ".mxf": "mxf", ".gif": "gif",
    ".mpg": "mpeg", ".mpeg": "mpeg", ".vob": "mpeg", ".ivf": "ivf", ".nut": "nut", ".y4m": "yuv4mpegpipe",
}  # fmt: skip
# Demuxers of bare codec data: no header, no timestamps, found by scanning bytes for start codes. A file named as a
# container that only probes as one of these has lost its header, and what decodes is a guess.
_RAW_STREAM_DEMUXERS = frozenset(
    {"h261", "h263", "h264", "hevc", "vvc", "evc", "m4v", "mpegvideo", "cavsvideo", "avs2", "avs3", "dirac",
     "dnxhd", "vc1", "obu", "mjpeg", "ingenient", "data", "rawvideo", "image2pipe", "mjpeg_2000"}
)  # fmt: skip
_FAMILY_NAMES = {"matroska": "Matroska", "mov": "MP4/QuickTime", "avi": "AVI (RIFF)", "mpegts": "MPEG-TS"}
_MP4_TOP_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MATROSKA_SEGMENT = b"\x18\x53\x80\x67"
# The elements a Matroska Segment holds at its top level (SeekHead, Info, Tracks, Cluster, Cues, Tags, Chapters,
# Attachments, Void): anything else there means the walk has left the file's structure.
_MATROSKA_TOP_LEVEL = frozenset(
    {0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1F43B675, 0x1C53BB6B, 0x1254C367, 0x1043A770, 0x1941A469, 0xEC}
)
_CRC32_ELEMENT = b"\xbf\x84"  # ID 0xBF, size 4: the checksum of the rest of its parent's data


def format_check(path: str, demuxer: str) -> tuple[str | None, str | None]:
    """(refusal, warning) from the file's extension against the demuxer FFmpeg probed: a container name whose file
    only probes as raw codec data is refused (its header is gone), another container gets a warning."""
    suffix = os.path.splitext(path)[1].lower()
    expected = _EXTENSION_FORMATS.get(suffix)
    found = demuxer.split(",")
    if expected is None or expected in found:
        return None, None
    family = _FAMILY_NAMES.get(expected, expected)
    if set(found) & _RAW_STREAM_DEMUXERS:
        return f"its {family} header is missing or damaged: FFmpeg could only guess raw {found[0]} data in it", None
    return None, f"named {suffix} but it is a {found[0]} file, not {family}"


def container_damage(path: str) -> str | None:
    """A sentence on a file that ends before its own header says it does (cut short), or None."""
    declared = _declared_size(path)
    if declared is None:
        return None
    container, expected = declared
    actual = os.path.getsize(path)
    if expected <= actual:
        return None
    return (
        f"truncated: its {container} header says {expected} bytes, the file has {actual} "
        f"({100 * actual / expected:.0f}%)"
    )


def _declared_size(path: str) -> tuple[str, int] | None:
    """(container, bytes) that the file's own header says it holds: RIFF's size, Matroska's Segment size, or the
    end of the last MP4 top-level box. None where the header states no size (live Matroska, MPEG-TS, raw data)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
            if head[:4] == b"RIFF" and len(head) >= 8:
                return "RIFF", struct.unpack("<I", head[4:8])[0] + 8
            if head[:4] == _EBML_MAGIC:
                return _matroska_size(head)
            if head[4:8] in _MP4_TOP_BOXES:
                boxes = list(_mp4_boxes(f, 0, os.fstat(f.fileno()).st_size))
                if not boxes or boxes[-1][2] is None:
                    return None
                kind, start, length = boxes[-1]
                return f"MP4 ({kind.decode('latin-1')} box)", start + length
    except OSError:
        return None
    return None


def _matroska_size(head: bytes) -> tuple[str, int] | None:
    """The end of the Segment, which follows the EBML header; None for a Segment of unknown size (written live)."""
    segment = _matroska_segment(head)
    if segment is None or segment[1] is None:
        return None
    return "Matroska", segment[1]


def matroska_checksums(path: str) -> str | None:
    """A sentence where the file's own CRC-32 elements (FFmpeg's Matroska muxer writes one into each top-level
    element, WebM files have none) disagree with its data, or where its top-level structure breaks; None when every
    checksum holds. Bit flips inside coded frames are invisible to the decoders, not to these checksums."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            segment = _matroska_segment(f.read(64 * 1024))
            if segment is None:
                return None
            pos, end = segment[0], size if segment[1] is None else min(segment[1], size)
            checked, failed = 0, []
            while pos < end:
                f.seek(pos)
                head = f.read(12)
                element = _ebml_id(head)
                length = _ebml_size(head, len(element or b"")) if element else None
                if element is None or int.from_bytes(element, "big") not in _MATROSKA_TOP_LEVEL or length is None:
                    return f"its Matroska structure breaks at byte {pos} of {size} (a damaged file)"
                data_start, data_end = pos + length[1], pos + length[1] + length[0]
                if length[0] == (1 << (7 * (length[1] - len(element)))) - 1 or data_end > size:
                    break  # an element of unknown size (written live), or one cut short: container_damage says so
                if data_end > end:
                    return f"its Matroska structure breaks at byte {pos} of {size} (a damaged file)"
                f.seek(data_start)
                if f.read(2) == _CRC32_ELEMENT:
                    stored = int.from_bytes(f.read(4), "little")
                    checked += 1
                    if _crc32(f, data_end - data_start - 6) != stored:
                        failed.append(pos)
                pos = data_end
    except OSError:
        return None
    if failed:
        return (
            f"{len(failed)} of its {checked} Matroska checksums (CRC-32) fail, the first at byte {failed[0]}: its "
            "data is damaged"
        )
    return None


def _matroska_segment(head: bytes) -> tuple[int, int | None] | None:
    """(start of the Segment's data, its end as declared, None where written live with an unknown size) from a
    file's first bytes; None for a file that is not Matroska."""
    if head[:4] != _EBML_MAGIC:
        return None
    header = _ebml_size(head, 4)
    if header is None:
        return None
    pos = header[1] + header[0]
    if head[pos : pos + 4] != _MATROSKA_SEGMENT:
        return None
    segment = _ebml_size(head, pos + 4)
    if segment is None:
        return None
    unknown = segment[0] == (1 << (7 * (9 - head[pos + 4].bit_length()))) - 1
    return segment[1], None if unknown else segment[1] + segment[0]


def _ebml_id(data: bytes) -> bytes | None:
    """The EBML element ID at the start of ``data`` (1 to 4 bytes, its length told by its first 1 bit)."""
    if not data or data[0] < 0x10:
        return None
    return data[: 9 - data[0].bit_length()]


def _crc32(f, length: int) -> int:
    crc = 0
    while length > 0:
        chunk = f.read(min(length, 1 << 20))
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        length -= len(chunk)
    return crc


def gif_damage(path: str) -> list[str]:
    """What the blocks of a GIF say against themselves: a file that stops without the trailer that ends every GIF,
    a block that is none of GIF's (a damaged file: FFmpeg's demuxer then folds the rest into one picture), a first
    picture that covers almost none of its logical screen (a damaged screen size)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _gif_walk(data)
    except (OSError, ValueError):  # ValueError: an empty file, which mmap refuses
        return []


def _gif_walk(data) -> list[str]:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return []
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    first = None
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # the trailer
            break
        if block == 0x21:  # an extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # an image: descriptor, colour table, LZW code size, sub-blocks
            image_width, image_height, image_flags = struct.unpack("<HHB", data[pos + 5 : pos + 10])
            first = first or (image_width, image_height)
            local_colours = 3 << ((image_flags & 7) + 1) if image_flags & 0x80 else 0
            pos += 10 + local_colours
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            return [f"its GIF structure breaks at byte {pos} of {len(data)}: the pictures after are lost (damaged)"]
    found = []
    if pos >= len(data):
        found.append("truncated: its GIF data stops without the trailer that ends every GIF")
    if first and 100 * first[0] * first[1] < width * height:
        found.append(
            f"its first picture covers {first[0]}x{first[1]} of its {width}x{height} screen (a damaged screen size?)"
        )
    return found


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The position after the sub-blocks starting at ``pos`` (each a length byte and that many bytes, a 0 ends)."""
    while pos < len(data):
        length = data[pos]
        pos += 1
        if length == 0:
            return pos
        pos += length
    return pos + 1  # past the end: cut short


def _ebml_size(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, end) of the EBML variable-length size at ``pos``: its length is told by its first 1 bit."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    return value, pos + length


def _mp4_boxes(f, start: int, end: int):
    """(type, offset, size) of each box from ``start`` up to ``end``; size None for a box that runs "to the end of
    the file"; stops at a box whose size cannot be."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        box = f.read(16)
        if len(box) < 8:
            return
        length, kind = struct.unpack(">I4s", box[:8])
        if length == 1 and len(box) == 16:
            length = struct.unpack(">Q", box[8:16])[0]
        elif length == 0:
            yield kind, pos, None
            return
        if length < 8:
            return
        yield kind, pos, length
        pos += length


def mp4_movie_duration(path: str) -> float | None:
    """Seconds the movie header (mvhd) of an MP4/QuickTime file states; None if it has none or is not one.

    Read here because FFmpeg derives ``container.duration`` from the tracks, which is what damage moves."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(4)
            if f.read(4) not in _MP4_TOP_BOXES:
                return None
            moov = next(((p, n) for k, p, n in _mp4_boxes(f, 0, size) if k == b"moov" and n), None)
            if moov is None:
                return None
            mvhd = next((p for k, p, _ in _mp4_boxes(f, moov[0] + 8, moov[0] + moov[1]) if k == b"mvhd"), None)
            if mvhd is None:
                return None
            f.seek(mvhd + 8)
            body = f.read(32)
    except OSError:
        return None
    if len(body) < 32:
        return None
    if body[0] == 1:  # version 1: 64-bit times
        scale, duration = struct.unpack(">IQ", body[20:32])
    else:
        scale, duration = struct.unpack(">II", body[12:20])
    unknown = duration in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    return duration / scale if scale and not unknown else None


def hidden_frames(packets: int, shown: int) -> str | None:
    """An edit list that hides more than a few frames: an edited file, or a time scale moved by damage (a few leading
    frames of B-frame delay are routine)."""
    hidden = packets - shown
    if hidden > max(2, 0.05 * packets):
        return f"its edit list hides {hidden} of its {packets} frames (an edited file, or damaged timing)"
    return None


def missing_at_end(measured: float, interval: float, declared: float) -> str | None:
    """Frames end a frame or more before the duration the stream's header states (Matroska's DURATION tag counts the
    last frame's display time, hence the frame and a half)."""
    if measured + 1.5 * interval < declared:
        return (
            f"frames end at {measured:.3f} s of the {declared:.3f} s its header states: about "
            f"{round((declared - measured) / interval) - 1} frame(s) at the end are missing (cut short?)"
        )
    return None


def timing_warnings(times: np.ndarray, trusted: bool, tick: float, header_duration: float | None, others) -> list[str]:
    """What a stream's frame times say against themselves and against the file's header.

    ``times``: seconds from the first frame, in presentation order; ``trusted``: they come from the packets (not
    made up from a rate); ``tick``: the stream's time base; ``header_duration``: what the file says it lasts (MP4's
    movie header), ``others``: the durations of its other streams (audio running on past the video explains a
    difference)."""
    warnings = []
    count = len(times)
    if count < 2:
        return warnings
    span = float(times[-1])
    interval = span / (count - 1)
    if span > 0 and not 0.1 <= 1 / interval <= 1000:
        warnings.append(
            f"{count} frames in {span:.3f} s is {1 / interval:.4g} frames per second: its timestamps are damaged "
            "(or in the wrong time base)"
        )
    if header_duration and span > 0:
        # a flipped bit in a track's time scale moves every frame, but not the movie header
        explained = any(abs(other - header_duration) <= max(0.5, 0.1 * header_duration) for other in others)
        if not explained and abs(span + interval - header_duration) > max(2 * interval, 0.05 * header_duration):
            warnings.append(
                f"its frames span {span + interval:.3f} s but the file says it lasts {header_duration:.3f} s: its "
                "timing is damaged, or frames are missing"
            )
    if trusted and count >= 10:
        gaps = np.diff(times)
        typical = float(np.median(gaps))
        # A constant-rate stream (nine in ten intervals the same, allowing Matroska's millisecond rounding) with
        # intervals of several frames has lost some.
        regular = np.mean(np.abs(gaps - typical) <= 0.02 * typical + 2 * tick) >= 0.9
        holes = gaps > 1.5 * typical
        if typical > 0 and regular and holes.any():
            lost = int(np.round(gaps[holes] / typical).sum() - holes.sum())
            where = float(times[int(np.flatnonzero(holes)[0])])
            warnings.append(
                f"about {lost} frame(s) are missing from a constant-rate stream (the first gap at {where:.3f} s)"
            )
    return warnings
