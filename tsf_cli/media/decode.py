"""Everything between a video file and uint8 RGB frames: open it with PyAV, choose the stream, index it, plan the
frames (``sampling``), and decode only those.

Timing comes from the packets, not the header: headers often lack frame counts (Matroska and WebM say 0) or state
an average rate for a variable-rate video. ``_read_index`` demuxes the stream once without decoding, which is cheap,
and records every packet's timestamp and keyframe flag. Frame ``i`` is the ``i``-th frame in presentation order,
exactly what a full ``container.decode`` gives as its ``i``-th frame, and timestamps are seconds from the first
frame.

Decoding then seeks to the keyframe before each wanted frame and decodes forward, where that is cheaper than
continuing from where it is; each seek is checked against the index, and where timestamps cannot be trusted
(missing or repeated) or a seek lands somewhere else, it decodes the whole stream from the start instead.

Every failure a user can cause (a missing, empty, truncated, corrupt or non-video file, or one past
``DecodeLimits``) is a ``VideoError`` naming the file and the cause. A file that decodes but whose headers, packets
or decoder say something is missing or damaged (``damage``) comes back with warnings, as does one whose clips cannot
show motion.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

from ..errors import VideoError
from .damage import (
    container_damage,
    format_check,
    gif_damage,
    hidden_frames,
    matroska_checksums,
    missing_at_end,
    mp4_movie_duration,
    timing_warnings,
)
from .limits import Deadline, DecodeLimits, MemoryBudget, memory_budget
from .sampling import check_sampling, plan_clips
from .sources import check_local_file, ffmpeg_name, is_url, looks_like_text, open_options

# A seek costs about as much as decoding this many frames: flushing the decoder, re-reading from the keyframe, and
# (with frame threads) refilling the pipeline. Below it, decoding straight on to the next wanted frame is cheaper.
_SEEK_COST_FRAMES = 8
# Codecs whose decoders skip, under AVDISCARD_NONREF, only frames that no other frame predicts from (H.264
# nal_ref_idc 0, VP9 frames refreshing no reference slot, MPEG-4 and MPEG-2 B-frames), so that skipping unwanted
# ones leaves every other frame bit-identical. Not HEVC (its "non-reference" pictures may be referenced from higher
# temporal layers) nor AV1 (dav1d reads the setting only when it opens).
_NONREF_SKIP_IS_EXACT = frozenset({"h264", "vp9", "mpeg4", "mpeg2video"})


@dataclass(frozen=True, eq=False)
class Clip:
    """One temporal view: its frames and where in the video they come from."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, rotation applied
    indices: tuple[int, ...]  # frame indices in presentation order, 0-based
    timestamps: tuple[float, ...]  # seconds from the first frame
    padded: int  # trailing entries that repeat the last frame because the video is shorter than the clip


@dataclass(frozen=True, eq=False)
class SampledVideo:
    """The clips of one video, and what a result made from them should say about how much they can tell."""

    clips: list[Clip]
    num_frames: int  # frames in the stream, as decoded
    warnings: tuple[str, ...]  # each a sentence: damage the file or the decoder shows, padded clips, a still picture


# ---------------------------------------------------------------------------------------------------------------------
# Opening


@contextmanager
def open_container(path, limits: DecodeLimits):
    """Open ``path``, a file or an http(s) URL, as that and nothing else (``sources``); a VideoError otherwise."""
    path = os.fspath(path)
    if not is_url(path):
        check_local_file(path)
    container = _open(path, limits, limits.max_pixels)
    if _unsized_video(container):
        # A decoder that refused a frame over max_pixels while FFmpeg probed the streams leaves its stream at 0x0,
        # hiding the size that _choose_stream checks (VP9, MPEG-4, MJPEG, FFV1 and GIF take their size from the
        # decoder): open once more without the limit to learn it. Only files over the limit, or damaged ones, pay.
        container.close()
        container = _open(path, limits, None)
    try:
        yield container
    finally:
        container.close()


def _open(path: str, limits: DecodeLimits, probe_max_pixels: int | None):
    try:
        return av.open(
            ffmpeg_name(path),
            metadata_errors="replace",  # a badly encoded title must not fail the video
            timeout=limits.timeout_s,
            container_options=open_options(path, limits.timeout_s),
            # PyAV gives these to the decoders avformat_find_stream_info opens too: they then refuse a huge frame
            # instead of decoding it just to learn its format
            options={"max_pixels": str(probe_max_pixels)} if probe_max_pixels else None,
        )
    except av.error.ExitError as exc:  # FFmpeg's I/O was interrupted by PyAV's timeout
        raise VideoError(path, f"gave up opening after {limits.timeout_s:g} s (DecodeLimits.timeout_s)") from exc
    except av.error.FFmpegError as exc:
        raise _open_failure(path, exc, limits) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VideoError(path, f"cannot open: {exc}") from exc


def _unsized_video(container) -> bool:
    return any(
        s.codec_context is not None and not (s.codec_context.width and s.codec_context.height)
        for s in container.streams.video
    )


def _open_failure(path: str, exc: Exception, limits: DecodeLimits) -> VideoError:
    """The cause of a failed open, in the file's terms where FFmpeg's words mislead (an "I/O error" that is a file
    cut short, "invalid data" that is a playlist)."""
    cause = reason(exc)
    code = getattr(exc, "errno", None)
    if is_url(path):
        hint = ""
        if path.lower().startswith("https:") and code == errno.EIO:
            hint = " (a TLS failure: is the server's certificate trusted? SSL_CERT_FILE names a CA bundle to trust)"
        elif code == errno.EINVAL:  # what FFmpeg answers a protocol outside the whitelist
            hint = " (a redirect to another protocol than the URL's own, which tsf refuses?)"
        return VideoError(path, f"cannot open the URL: {cause}{hint}")
    if code in (errno.EACCES, errno.EPERM):
        return VideoError(path, f"cannot read: {cause}")
    if code == errno.EIO or isinstance(exc, EOFError):
        if not _readable_to_the_end(path, time.monotonic() + min(limits.timeout_s or 30.0, 30.0)):
            return VideoError(path, f"cannot read: {cause} (a disk or file system error)")
        damage = container_damage(path)
        if damage:
            return VideoError(path, f"{damage} (FFmpeg: {cause})")
        return VideoError(path, f"truncated or corrupt: its container breaks off where FFmpeg expected more ({cause})")
    if (code == errno.EINVAL or isinstance(exc, av.error.InvalidDataError)) and looks_like_text(path):
        # format_whitelist refuses (EINVAL) what FFmpeg would open from text: playlists, concat lists, ANSI art
        text = "it holds text; tsf reads no playlists or lists of other files"
        return VideoError(path, f"not a video FFmpeg can read ({cause}): {text}")
    damage = container_damage(path)
    if damage:
        return VideoError(path, f"{damage} (FFmpeg: {cause})")
    return VideoError(path, f"not a video FFmpeg can read ({cause})")


def _readable_to_the_end(path: str, deadline: float) -> bool:
    """Whether plain reads get every byte: then an I/O error from FFmpeg was its demuxer's, not the disk's."""
    try:
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                if time.monotonic() > deadline:
                    return True  # no disk error so far; not worth more of the video's time
        return True
    except OSError:
        return False


@contextmanager
def open_file_container(file: BinaryIO, limits: DecodeLimits):
    """A container on an open, seekable binary file object (an object store's ranged reader, say), read from its
    start; errors name ``file.name``. The file stays open for its owner to close: a second pass reopens it here."""
    path = file.name
    file.seek(0)
    try:
        # no container_options: a file object reads through PyAV's own I/O, where FFmpeg's protocols play no part
        container = av.open(
            file, metadata_errors="replace", timeout=limits.timeout_s, options={"max_pixels": str(limits.max_pixels)}
        )
    except av.error.ExitError as exc:
        raise VideoError(path, f"gave up opening after {limits.timeout_s:g} s (DecodeLimits.timeout_s)") from exc
    except av.error.FFmpegError as exc:
        raise VideoError(path, f"not a video FFmpeg can read ({reason(exc)})") from exc
    except OSError as exc:  # the file object's own reads failed (a network error, say)
        raise VideoError(path, f"cannot read: {exc}") from exc
    try:
        yield container
    finally:
        container.close()


def _open_source(source, limits: DecodeLimits):
    if isinstance(source, (str, os.PathLike)):
        return open_container(source, limits)
    return open_file_container(source, limits)


def read_failure(path: str, exc: Exception, limits: DecodeLimits) -> VideoError:
    if isinstance(exc, av.error.ExitError):  # FFmpeg's I/O was interrupted by PyAV's timeout
        return VideoError(path, f"gave up reading after {limits.timeout_s:g} s (DecodeLimits.timeout_s)")
    return VideoError(path, f"cannot read: {reason(exc)} (truncated or corrupt file?)")


def best_video_stream(container):
    """The video stream with the most pixels, the first of equals, as the ffmpeg tool chooses; cover art (a still
    image attached to an audio file) does not count."""
    candidates = [s for s in container.streams.video if not _is_cover_art(s) and s.codec_context is not None]
    return max(candidates, key=lambda s: s.codec_context.width * s.codec_context.height, default=None)


def _is_cover_art(stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def reason(exc: Exception) -> str:
    """FFmpeg's words for an error, without the errno and file name PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _choose_stream(container, path: str, index: int | None, limits: DecodeLimits):
    streams = container.streams
    if index is not None:
        if not 0 <= index < len(streams):
            raise VideoError(path, f"no stream {index}: the file has streams 0-{len(streams) - 1}")
        chosen = streams[index]
        if chosen.type != "video":
            raise VideoError(path, f"stream {index} is {chosen.type}, not video")
    else:
        chosen = best_video_stream(container)
        if chosen is None:
            unknown = [s for s in streams if s.type == "video" and s.codec_context is None]
            if unknown and not any(s.type == "video" and s.codec_context for s in streams):
                raise VideoError(
                    path,
                    f"stream {unknown[0].index} is video in a codec FFmpeg does not know (an unsupported codec, or "
                    "a damaged header)",
                )
            found = ", ".join(f"{s.index}: {'cover art' if _is_cover_art(s) else s.type}" for s in streams)
            raise VideoError(path, f"no video stream (streams: {found or 'none'})")
    context = chosen.codec_context
    if context is None:
        raise VideoError(path, f"stream {chosen.index}: FFmpeg has no decoder for its codec")
    if context.width * context.height > limits.max_pixels:
        raise VideoError(
            path,
            f"frames of {context.width}x{context.height} are over the limit of {limits.max_pixels} pixels "
            "(DecodeLimits.max_pixels)",
        )
    return chosen


# ---------------------------------------------------------------------------------------------------------------------
# Indexing: one pass over the packets, no decoding


@dataclass(frozen=True, eq=False)
class _Index:
    """The packets of one stream. Decode order is the order in the file; presentation order sorts by pts."""

    pts: np.ndarray  # (P,) int64 per packet in decode order (0 where missing, then trusted is False)
    dts: np.ndarray  # (P,) int64 per packet in decode order, _NO_TIME where missing
    keyframe: np.ndarray  # (P,) bool per packet in decode order
    order: np.ndarray  # (N,) the decode position of each frame, in presentation order
    times: np.ndarray  # (N,) float64 seconds from the first frame
    trusted: bool  # timestamps present and unique: frames can be found by pts after a seek
    warnings: tuple[str, ...] = ()  # what the packets and headers say may be missing or damaged

    @property
    def num_frames(self) -> int:
        return len(self.order)


_NO_TIME = np.iinfo(np.int64).min


def _read_index(container, stream, path: str, limits: DecodeLimits, deadline: Deadline) -> _Index:
    time_base = stream.time_base or Fraction(1, 1_000_000)
    max_ticks = limits.max_seconds / time_base
    pts, dts, keyframe, discard = [], [], [], []
    first = None
    placeholders = 0  # empty packets with a time: AVI's "dropped frame" chunks, which headers count as frames
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the end-of-stream marker PyAV yields, or a placeholder
                placeholders += packet.dts is not None or packet.pts is not None
                continue
            check_deadline(deadline, path, limits)
            deadline.step()
            if len(pts) >= limits.max_frames:
                raise VideoError(path, f"more than {limits.max_frames} frames (DecodeLimits.max_frames)")
            if packet.pts is not None:
                first = packet.pts if first is None else min(first, packet.pts)
                if packet.pts - first > max_ticks:
                    raise VideoError(path, f"longer than {limits.max_seconds:g} s (DecodeLimits.max_seconds)")
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(packet.is_keyframe)
            discard.append(packet.is_discard)
    except av.error.ExitError as exc:
        raise read_failure(path, exc, limits) from exc
    except av.error.FFmpegError as exc:
        hint = " (over HTTP: does the server support range requests?)" if is_url(path) else ""
        raise VideoError(path, f"cannot read packet {len(pts)} of stream {stream.index}: {reason(exc)}{hint}") from exc
    shown = np.flatnonzero(~np.array(discard, dtype=bool))  # an edit list hides discarded packets' frames
    if not len(shown):
        raise VideoError(path, f"stream {stream.index} has no frames (truncated or corrupt file?)")
    warnings = _check_not_truncated(stream, path, pts, placeholders, time_base)
    warnings.append(hidden_frames(len(pts), len(shown)))

    known = [p for p in pts if p is not None]
    pts_array = np.array([p if p is not None else 0 for p in pts], dtype=np.int64)
    # Decoders may drop frames shown before the first keyframe (leading pictures whose references are not in the
    # file), so a stream that has any is decoded from the start and counted, like one without timestamps.
    trusted = (
        len(known) == len(pts)
        and len(set(known)) == len(known)
        and keyframe[0]
        and pts_array[shown].min() >= pts_array[0]
    )
    dts_array = np.array([d if d is not None else _NO_TIME for d in dts], dtype=np.int64)
    if trusted:
        order = shown[np.argsort(pts_array[shown], kind="stable")]
        times = (pts_array[order] - pts_array[order[0]]).astype(np.float64) * float(time_base)
    else:
        # Decode order is all there is; the frame count still holds, times follow the declared rate.
        order = shown
        times = np.arange(len(order), dtype=np.float64) / _declared_rate(stream)
    if times[-1] > limits.max_seconds:
        raise VideoError(path, f"longer than {limits.max_seconds:g} s (DecodeLimits.max_seconds)")
    header_duration = None if is_url(path) else mp4_movie_duration(path)
    others = [
        float(other.duration * other.time_base)
        for other in container.streams
        if other.index != stream.index and other.duration and other.time_base
    ]
    warnings += timing_warnings(times, bool(trusted), float(time_base), header_duration, others)
    found = tuple(dict.fromkeys(w for w in warnings if w))
    return _Index(pts_array, dts_array, np.array(keyframe, dtype=bool), order, times, bool(trusted), found)


def _declared_rate(stream) -> float:
    return float(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)


def _check_not_truncated(stream, path: str, pts: list, placeholders: int, time_base: Fraction) -> list[str | None]:
    """Refuse a stream that ends well before its header says; a warning for a frame or more missing at its end."""
    # MP4 and AVI headers list every frame; Matroska's muxer tags each stream with its duration. A file that ends
    # before what its own header promised was cut short, and sampling it "uniformly" would quietly mislead.
    if stream.frames and len(pts) + placeholders < stream.frames:
        raise VideoError(
            path, f"truncated or corrupt: {len(pts)} of the {stream.frames} frames its header lists are present"
        )
    declared = _parse_duration_tag(stream.metadata.get("DURATION"))
    known = [p for p in pts if p is not None]
    if declared is None or not known:
        return []
    measured = float((max(known) - min(known)) * time_base)
    interval = measured / (len(known) - 1) if len(known) > 1 else 0.0
    # The tag includes the last frame's display time, which the packets may not state: only a gap no last frame
    # plausibly shows for (a second, or 5% of the video) counts as missing data. A single frame left of a video that
    # lasted seconds is no still image.
    if measured + interval + max(1.0, 0.05 * declared) < declared:
        raise VideoError(
            path, f"truncated or corrupt: frames end at {measured:.3f} s of the {declared:.3f} s its header states"
        )
    return [missing_at_end(measured, interval, declared)] if interval else []


def _parse_duration_tag(text: str | None) -> float | None:
    if not text:
        return None
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def check_deadline(deadline: Deadline, path: str, limits: DecodeLimits) -> None:
    if deadline.passed():
        raise VideoError(path, f"gave up after {limits.timeout_s:g} s (DecodeLimits.timeout_s)")


# ---------------------------------------------------------------------------------------------------------------------
# Decoding


class _Untrusted(Exception):
    """The file's timestamps or seeking did not behave as its index says: decode it from the start instead."""


@dataclass
class DecodeReport:
    """What decoding said besides its frames, collected as it goes: what the file and its packets showed before any
    frame (``found``), the frames that may show damage the decoder concealed, and its first error."""

    found: list[str] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)  # indices, as the frames are numbered when given
    error: str | None = None  # the first decoding error, though every wanted frame came out

    def warnings(self) -> list[str]:
        damage = []
        if self.damaged:
            shown = ", ".join(str(i) for i in sorted(set(self.damaged))[:5])
            cause = f" ({self.error})" if self.error else ""
            damage = [f"frame(s) {shown} may show damage the decoder concealed: it met errors{cause} on the way"]
        elif self.error:
            damage = [f"the decoder met errors ({self.error}) while decoding frames near those sampled"]
        return [*self.found, *damage]


def _discard_other_streams(stream) -> None:
    for other in stream.container.streams:
        if other.index != stream.index:
            other.discard = av.stream.Discard.all  # demuxers then skip their packets' data


def _prepare_decoder(stream, budget: MemoryBudget) -> None:
    _discard_other_streams(stream)
    context = stream.codec_context
    # Frame threads decode several frames at once; FFmpeg falls back to slice threads where a codec lacks them.
    context.thread_type = "AUTO"
    if budget.threads:
        context.thread_count = budget.threads
    # On the decoder alone: a frame larger than the budget allows (a stream that switches size) is refused.
    context.options = {**context.options, "max_pixels": str(budget.max_pixels)}


def _rgb(frame, size: tuple[int, int]) -> np.ndarray:
    # Exactly what `frame.to_ndarray(format="rgb24")` gives; a frame whose size changed mid-stream is scaled back to
    # the stream's size so that the clip stacks.
    if (frame.width, frame.height) == size:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def _tainted(tainted: bool, frames) -> bool:
    """Whether decoding is still tainted after ``frames``: a keyframe cleans it, a concealed frame taints it. The
    decoder flags only the frame it repaired, not those predicted from it, so taint lasts until the next keyframe."""
    for frame in frames:
        tainted = (tainted and not frame.key_frame) or frame.is_corrupt
    return tainted


class _Converter:
    """Wanted frames -> (index, RGB frame, rotation), noting in the report those decoded while tainted."""

    def __init__(self, size: tuple[int, int], report: DecodeReport):
        self.size, self.report = size, report

    def __call__(self, index: int, frame, tainted: bool) -> tuple[int, np.ndarray, int]:
        if 0 in self.size:  # the header gave no size: the first frame's
            self.size = (frame.width, frame.height)
        if tainted or frame.is_corrupt:
            self.report.damaged.append(index)
        return index, _rgb(frame, self.size), frame.rotation


class _SeekingDecoder:
    """Decode the wanted frames of a trusted index, seeking to keyframes where that beats decoding on."""

    def __init__(self, container, stream, index: _Index, path, limits: DecodeLimits, deadline: Deadline, report):
        self.container, self.stream, self.index = container, stream, index
        self.path, self.limits, self.deadline, self.report = path, limits, deadline, report
        self.convert = _Converter((stream.codec_context.width, stream.codec_context.height), report)
        self.shown_pts = index.pts[index.order]  # ascending: frame i's pts is shown_pts[i]
        self.by_pts = np.argsort(index.pts)  # decode positions sorted by pts, to find a packet by its pts
        self.packets: Iterator | None = None
        self.position: int | None = None  # decode position of the next packet self.packets yields
        self.error: str | None = None  # the first decoding error, reported if a wanted frame is then missing
        self.skip_unwanted = stream.codec_context.name in _NONREF_SKIP_IS_EXACT
        self.tainted = False  # a decoding error or a concealed frame since the last keyframe (see _tainted)

    def frames(self, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray, int]]:
        """(index, RGB frame, rotation) of each wanted frame as it is decoded: in presentation order within a group,
        and a frame met on the way to a later group comes when it is met."""
        missing = {int(self.index.pts[self.index.order[i]]): i for i in wanted}
        for key, members in self._groups(wanted):
            if all(int(self.index.pts[self.index.order[i]]) not in missing for i in members):
                continue  # already decoded on the way to an earlier group
            if self.position is None or key > self.position + _SEEK_COST_FRAMES:
                self._seek(key)  # otherwise decoding on from here is cheaper than a seek
            yield from self._decode_until(members, missing)
        if missing:
            self._fail_missing(missing)
        self.report.error = self.report.error or self.error

    def _groups(self, wanted: Sequence[int]) -> list[tuple[int, list[int]]]:
        """Wanted frames grouped by the keyframe to start decoding them from, in decode order."""
        keys = np.flatnonzero(self.index.keyframe)
        groups: dict[int, list[int]] = {}
        for i in wanted:
            position = int(self.index.order[i])
            pts = self.index.pts[position]
            j = int(np.searchsorted(keys, position, side="right")) - 1
            # A frame shown before its keyframe (a leading picture of an open GOP) may reference the GOP before.
            while j > 0 and self.index.pts[keys[j]] > pts:
                j -= 1
            groups.setdefault(int(keys[j]), []).append(i)
        return sorted(groups.items())

    def _seek(self, key: int) -> None:
        """Seek so that the next packet is the one at decode position ``key``, or raise _Untrusted."""
        want_pts = int(self.index.pts[key])
        candidates = [want_pts]
        dts = int(self.index.dts[key])
        if dts != _NO_TIME and dts < want_pts:
            candidates.append(dts)  # MPEG-TS seeks by dts; MP4 and Matroska by pts
        for target in candidates:
            try:
                self.container.seek(target, stream=self.stream, backward=True)
            except av.error.FFmpegError:
                continue
            packets = (p for p in self.container.demux(self.stream) if p.size)
            try:
                first = next(packets, None)
            except av.error.FFmpegError:  # a source that cannot seek (an HTTP server without range requests)
                continue
            if first is None or first.pts is None:
                continue
            landed = self._position_of(first.pts)
            if landed is None or landed > key:
                continue
            # Landed on an earlier keyframe: skip ahead (without decoding) to ours, checking each packet's place.
            while landed < key:
                first = next(packets, None)
                landed += 1
                if first is None or first.pts != int(self.index.pts[landed]):
                    raise _Untrusted
            self.packets = _prepend(first, packets)
            self.position = key
            self.tainted = False
            return
        raise _Untrusted

    def _decode_until(self, members: list[int], missing: dict[int, int]) -> Iterator[tuple[int, np.ndarray, int]]:
        context = self.stream.codec_context
        targets = {int(self.index.pts[self.index.order[i]]) for i in members}
        while targets & missing.keys():
            check_deadline(self.deadline, self.path, self.limits)
            packet = next(self.packets, None)
            if packet is None:
                yield from self._take(self._decode(context, None), missing)
                return
            self.position += 1
            if self.skip_unwanted:
                # A frame nobody wants and nothing references need not be decoded at all.
                skip = "DEFAULT" if packet.pts in missing else "NONREF"
                if context.skip_frame != skip:
                    context.skip_frame = skip
            yield from self._take(self._decode(context, packet), missing)

    def _decode(self, context, packet) -> list:
        try:
            frames = context.decode(packet)
        except av.error.FFmpegError as exc:
            # Like the ffmpeg tool, carry on past a damaged packet; the frames that depend on it may still come out
            # concealed, and a wanted frame that does not is reported with this cause.
            self.error = self.error or reason(exc)
            self.tainted = True
            return []
        self.tainted = _tainted(self.tainted, frames)
        return frames

    def _position_of(self, pts: int) -> int | None:
        """The decode position of the packet with this pts, if the index has one."""
        j = int(np.searchsorted(self.index.pts, pts, sorter=self.by_pts))
        if j < len(self.by_pts) and self.index.pts[self.by_pts[j]] == pts:
            return int(self.by_pts[j])
        return None

    def _take(self, frames: list, missing: dict[int, int]) -> Iterator[tuple[int, np.ndarray, int]]:
        for frame in frames:
            if frame.pts is None:
                raise _Untrusted
            place = int(np.searchsorted(self.shown_pts, frame.pts))
            if place == len(self.shown_pts) or self.shown_pts[place] != frame.pts:
                raise _Untrusted  # a frame the index does not know: the packets lied
            index = missing.pop(frame.pts, None)
            if index is not None:
                yield self.convert(index, frame, self.tainted)

    def _fail_missing(self, missing: dict[int, int]) -> None:
        first = min(missing.values())
        cause = f"frame {first} (at {self.index.times[first]:.3f} s) could not be decoded"
        raise VideoError(self.path, cause + (f": {_decoder_refusal(self.error)}" if self.error else ""))


def _decoder_refusal(error: str) -> str:
    """Decoders answer a frame over their max_pixels with EINVAL (or EBUSY, under frame threads): name the limit."""
    if error in ("Invalid argument", "Device or resource busy"):
        return f"{error} (a frame larger than this video may decode to? DecodeLimits.max_pixels, --max-memory)"
    return error


def _prepend(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _in_order(
    frames: Iterator[tuple[int, np.ndarray, int]], wanted: Sequence[int]
) -> Iterator[tuple[int, np.ndarray, int]]:
    """The frames by ascending index: one decoded ahead of its turn (met on the way to a later group, or a leading
    picture of an open GOP) waits until every wanted frame before it has come, which is rarely more than a few."""
    upcoming = iter(wanted)
    due = next(upcoming, None)
    early: dict[int, tuple[np.ndarray, int]] = {}
    for index, rgb, rotation in frames:
        early[index] = (rgb, rotation)
        while due in early:
            yield (due, *early.pop(due))
            due = next(upcoming, None)


def _decode_forward(
    container, stream, wanted: set[int], all_pts: list, path, limits: DecodeLimits, deadline: Deadline, report
) -> Iterator[tuple[int, np.ndarray, int]]:
    """Decode every frame from the start, as ``container.decode`` does, yielding (place, RGB frame, rotation) of the
    wanted ones by their place in that decode, in order.

    Appends every frame's pts (None where the decoder gave none) to ``all_pts``, so that a caller whose index was
    wrong about the frames can plan again from what the decoder really produced.
    """
    context = stream.codec_context
    convert = _Converter((context.width, context.height), report)
    error = None
    tainted = False  # a decoding error or a concealed frame since the last keyframe (see _tainted)

    def take(frames) -> list[tuple[int, np.ndarray, int]]:
        nonlocal tainted
        kept = []
        for frame in frames:
            if len(all_pts) >= limits.max_frames:
                raise VideoError(path, f"more than {limits.max_frames} frames (DecodeLimits.max_frames)")
            tainted = _tainted(tainted, [frame])
            if len(all_pts) in wanted:
                kept.append(convert(len(all_pts), frame, tainted))
            all_pts.append(frame.pts)
        return kept

    def decode(packet) -> list[tuple[int, np.ndarray, int]]:
        nonlocal error, tainted
        try:
            return take(context.decode(packet))
        except av.error.FFmpegError as exc:
            error = error or reason(exc)
            tainted = True
            return []

    for packet in container.demux(stream):
        check_deadline(deadline, path, limits)
        if packet.size:  # an empty packet would flush the decoder; the real flush comes after the last packet
            yield from decode(packet)
    yield from decode(None)
    if not all_pts:
        raise VideoError(path, "no frame could be decoded" + (f": {_decoder_refusal(error)}" if error else ""))
    report.error = report.error or error


def _as_displayed(frames: Iterator[tuple[int, np.ndarray, int]]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) turned as players show it, by the rotation of the first frame of this pass: display matrices
    in the wild are quarter turns, and one per stream."""
    turns = None
    for index, rgb, rotation in frames:
        if turns is None:
            turns = round(rotation / 90) % 4
        yield index, (np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb)  # counter-clockwise


# ---------------------------------------------------------------------------------------------------------------------
# The public entry points


@dataclass(frozen=True, eq=False)
class FrameTimes:
    """When each frame of a video stream shows, as ``stream_frames`` numbers them.

    ``stream_frames`` yields one before its first frame, and another when decoding proves that numbering wrong:
    a seek landed elsewhere (then ``kept`` is False: forget the frames given so far, they all come again), or the
    decoder gave another number of frames than the packets promised (``kept`` is True: the frames given so far keep
    their numbers, which are the decoder's; frames wanted by the new times that were not given come in a new pass).
    """

    times: np.ndarray  # (N,) float64 seconds from the first frame, frame i in presentation order
    kept: bool = False


def stream_frames(
    path,
    plan: Callable[[np.ndarray], Iterable[int]],
    *,
    held: int,
    stream: int | None = None,
    limits: DecodeLimits = DecodeLimits(),
    report: DecodeReport | None = None,
    deadline_per_step: bool = False,
) -> Iterator[FrameTimes | tuple[int, np.ndarray]]:
    """Decode the frames ``plan`` wants, each once, and yield them as they come: ``(index, frame)`` by ascending
    index, ``frame`` being (H, W, 3) uint8 RGB as displayed (rotation applied).

    ``plan(times)`` gets ``FrameTimes.times`` and returns the indices wanted (in any order, repeats allowed). A
    ``FrameTimes`` comes first and again whenever the numbering changed (see there); after it, plan again on its
    times as ``plan`` did. Nothing is kept here once given, so a consumer that drops what it no longer needs holds
    only that, however long the video. ``held``: the most frames the consumer keeps at once, for the memory budget
    (``limits.max_memory``), checked from the stream's header before any frame is decoded. ``report`` collects what
    the file, its packets and the decoder say is missing or damaged. ``limits.timeout_s`` bounds the whole call, or
    with ``deadline_per_step`` the wait for each packet of the index and then for each frame (a stream as long as a
    film is not cut short). ``path`` may also be an open, seekable binary file object with a ``name`` (see
    ``open_file_container``).
    """
    source = path
    local = isinstance(source, (str, os.PathLike))
    path = os.fspath(source) if local else source.name
    deadline = limits.deadline(per_step=deadline_per_step)
    report = report if report is not None else DecodeReport()

    def given(frames: Iterator[tuple[int, np.ndarray, int]]) -> Iterator[tuple[int, np.ndarray]]:
        for item in _as_displayed(frames):
            yield item
            deadline.step()  # after the consumer's turn, which is not the decoder's time

    try:
        with _open_source(source, limits) as container:
            chosen = _choose_stream(container, path, stream, limits)
            stream = chosen.index  # PyAV objects die with their container; keep plain values only
            context = chosen.codec_context
            budget = memory_budget(path, context.width, context.height, context.pix_fmt, held, limits)
            report.found += _file_warnings(container, path, readable=local and not is_url(path))
            _prepare_decoder(chosen, budget)
            index = _read_index(container, chosen, path, limits, deadline)
            report.found += index.warnings
            wanted = sorted({int(i) for i in plan(index.times)})
            yield FrameTimes(index.times)
            if index.trusted:
                decoder = _SeekingDecoder(container, chosen, index, path, limits, deadline, report)
                try:
                    yield from given(_in_order(decoder.frames(wanted), wanted))
                    return
                except _Untrusted:
                    pass  # decode from the start below, in a fresh container
        if index.trusted:
            report.damaged.clear()  # of frames given so far, which all come again
            yield FrameTimes(index.times)
        times = index.times
        for _ in range(2):
            with _open_source(source, limits) as container:
                chosen = _choose_stream(container, path, stream, limits)
                _prepare_decoder(chosen, budget)
                all_pts: list[int | None] = []
                forward = _decode_forward(container, chosen, set(wanted), all_pts, path, limits, deadline, report)
                yield from given(forward)
                if len(all_pts) == len(times):
                    return
                # The decoder gave another number of frames than the packets promised (it dropped or added some):
                # number by what it gave (the stream's time base dies with its container: read it here), and
                # decode once more for what the new plan wants and this pass did not give.
                report.found.append(
                    f"the decoder gave {len(all_pts)} frames where the packets promised {len(times)}: frames are "
                    "sampled from those it gave"
                )
                times = _times_of(all_pts, chosen)
            wanted = sorted({int(i) for i in plan(times)})
            yield FrameTimes(times, kept=True)
        raise VideoError(path, "the decoder gives a different number of frames on each pass")
    except av.error.FFmpegError as exc:
        raise read_failure(path, exc, limits) from exc


def sample_clips(path, num_frames: int, sampling: str = "uniform", **options) -> list[Clip]:
    """``sample_video(...).clips``: the clips alone."""
    return sample_video(path, num_frames, sampling, **options).clips


def sample_video(
    path,
    num_frames: int,
    sampling: str = "uniform",
    *,
    clips: int = 1,
    frame_sample_rate: int = 1,
    target_fps: float | None = None,
    start: float | None = None,
    seed: int | None = None,
    stream: int | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> SampledVideo:
    """Decode ``clips`` temporal views of ``num_frames`` frames each from a video.

    ``sampling``:
      - ``uniform``: frames evenly spaced from the first to the last (clips interleave on one grid);
      - ``segments``: the middle frame of each of ``num_frames`` equal segments (clip k of K: the point
        (k + 0.5) / K of the way through each);
      - ``stride``: ``num_frames`` frames every ``frame_sample_rate`` frames, counted at ``target_fps`` (the video's
        own frames when None), spaced as transformers' ``sample_frame_indices`` spaces them; the window starts at
        ``start`` seconds (clips back to back), or is centred (clips centred in equal parts of the video).
    ``seed`` makes the choice random, as in training: ``stride`` draws its window as ``sample_frame_indices`` does
    (``np.random.seed(seed)`` then the docs' function gives the same window), the others a random frame in each
    segment. ``stream`` is a stream index as ``probe`` lists them (default: the best video stream).

    A video shorter than a clip repeats its last frame; ``Clip.padded`` counts the repeats, and the warnings say so.
    ``path`` may also be an open, seekable binary file object with a ``name`` (see ``open_file_container``).
    """
    check_sampling(num_frames, sampling, clips, frame_sample_rate, target_fps, start)
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path.name
    choice = dict(sampling=sampling, clips=clips, frame_sample_rate=frame_sample_rate, target_fps=target_fps)

    def planned(times: np.ndarray) -> list[tuple[np.ndarray, int]]:
        if start is not None and start > times[-1]:
            raise VideoError(name, f"start {start:g} s is past the last frame (at {times[-1]:.3f} s)")
        return plan_clips(len(times), times, num_frames, start=start, seed=seed, **choice)

    def wanted(times: np.ndarray) -> list[int]:
        return [int(i) for points, _ in planned(times) for i in points]

    report = DecodeReport()
    frames: dict[int, np.ndarray] = {}
    held = clips * num_frames  # the most frames any plan keeps, until the clips are made
    for item in stream_frames(path, wanted, held=held, stream=stream, limits=limits, report=report):
        if isinstance(item, FrameTimes):
            times, plans = item.times, planned(item.times)
            if not item.kept:
                frames.clear()
            elif frames.keys() >= set(wanted(times)):
                break  # the frames this pass gave already hold the new plan
            continue
        index, frame = item
        frames[index] = frame
    return _sampled(plans, frames, times, report)


def _times_of(all_pts: list, stream) -> np.ndarray:
    known = [p for p in all_pts if p is not None]
    if len(known) == len(all_pts) and bool(np.all(np.diff(known) > 0)):
        return (np.array(known, dtype=np.float64) - known[0]) * float(stream.time_base)
    return np.arange(len(all_pts), dtype=np.float64) / _declared_rate(stream)


def _file_warnings(container, path: str, readable: bool) -> list[str]:
    """Before indexing: a file named as a container that only probes as raw codec data is refused; one that ends
    before its header says, whose checksums or structure fail, or whose format is not the one its name says, gets a
    warning. (Only a local file is ``readable`` again for this: a URL or an object store's file object is not.)"""
    demuxer = container.format.name
    refusal, mismatch = format_check(path, demuxer)
    if refusal:
        raise VideoError(path, refusal)
    found = [mismatch] if mismatch else []
    if not readable:
        return found
    found.append(container_damage(path))
    if "matroska" in demuxer:
        found.append(matroska_checksums(path))
    if demuxer == "gif":
        found += gif_damage(path)
    return [sentence for sentence in found if sentence]


def _sampled(plans, frames: dict[int, np.ndarray], times: np.ndarray, report: DecodeReport) -> SampledVideo:
    """The clips, each decoded frame copied into its clips and then dropped, so that the frames are never held twice
    (``memory_budget`` counts them once); the report's warnings and those of the clips themselves."""
    uses = Counter(int(i) for points, _ in plans for i in points)
    clips = []
    for points, padded in plans:
        stacked = None
        for t, i in enumerate(int(i) for i in points):
            if stacked is None:
                stacked = np.empty((len(points), *frames[i].shape), dtype=np.uint8)  # (T, H, W, 3), as displayed
            stacked[t] = frames[i]
            uses[i] -= 1
            if not uses[i]:
                del frames[i]
        clips.append(Clip(stacked, tuple(int(i) for i in points), tuple(float(times[i]) for i in points), padded))
    warnings = tuple(dict.fromkeys([*report.warnings(), *_warnings(clips, len(times))]))
    return SampledVideo(clips, len(times), warnings)


def _warnings(clips: list[Clip], num_frames: int) -> tuple[str, ...]:
    """What a label made from these clips cannot be trusted for: frames that are not the video's own, no motion."""
    found = []
    if num_frames == 1:
        found.append("a single frame (a still image): there is no motion to classify")
    else:
        padded = max(clip.padded for clip in clips)
        if padded:
            length = len(clips[0].indices)
            found.append(
                f"the clip runs past the video's end ({num_frames} frames): {padded} of its {length} frames repeat "
                "the last one"
            )
        distinct = {int(i) for clip in clips for i in clip.indices}
        first = clips[0].frames[0]
        if len(distinct) > 1 and all(np.array_equal(frame, first) for clip in clips for frame in clip.frames):
            found.append(f"all {len(distinct)} sampled frames are the same picture: nothing moves")
    return tuple(found)
