"""What one video may cost before tsf refuses it: ``DecodeLimits``, checked while a file is opened, indexed and
decoded, each limit named in the error that it raises; and ``memory_budget``, how a video is decoded within its
memory limit (or why it cannot be), decided from the stream's header before any frame is decoded."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from ..errors import VideoError

DEFAULT_TIMEOUT_S = 600.0
# Longer than this is no limit: the system's waits overflow past 24.8 days (poll's milliseconds in a C int), and
# FFmpeg's microseconds take no infinity.
LONGEST_TIMEOUT_S = 1e6


def as_timeout(seconds: float | None) -> float | None:
    """``seconds`` as a time limit: None (no limit) for None or more than LONGEST_TIMEOUT_S, infinity included."""
    return None if seconds is None or seconds > LONGEST_TIMEOUT_S else seconds


# 2 GiB per video: a 16 GB laptop running four decoding workers (--workers 4) spends at most 8 GiB on decoding,
# leaving the model's process (TimeSformer-base with batches of a few videos: 2-3 GB), the system and a desktop the
# rest. 4K at 16 frames fits (about 0.7 GiB), 8K at 8 frames fits (1.5 GiB, with fewer decoder threads), 8K at 16
# frames needs about 2.1 GiB: raise the limit for it (--max-memory, or max_memory=).
DEFAULT_MAX_MEMORY = 2 * 2**30


@dataclass(frozen=True)
class DecodeLimits:
    """What one video may cost before it is refused; each limit's error message names it."""

    max_pixels: int = 8192 * 8192  # per frame (8K UHD is 7680x4320); FFmpeg's decoder enforces it too
    max_frames: int = 2_000_000  # frames in the stream (18.5 h at 30 fps); indexing reads every packet
    max_seconds: float = 24 * 3600.0  # duration of the stream
    # wall clock for one call, checked between packets; None where something else enforces a time limit (the worker
    # pool, which can stop a decoder that never returns to the check)
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    # bytes one video may hold while it is decoded (see memory_budget): a file of a few hundred bytes can claim frames
    # of 8000x8000, and a decoder allocates what the header claims
    max_memory: int = DEFAULT_MAX_MEMORY
    # FFmpeg's decoding threads per video: 0 lets FFmpeg choose (about one per core); 1 where a scheduler gave the
    # task one CPU (a Ray task), so that many decoders side by side do not each spread over every core
    threads: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout_s", as_timeout(self.timeout_s))

    def deadline(self, *, per_step: bool = False) -> Deadline:
        """When a call starting now must give up: ``timeout_s`` after now, or with ``per_step`` after its last step."""
        return Deadline(self.timeout_s, per_step=per_step)


class Deadline:
    """When a call must give up, on the ``time.monotonic()`` clock. With ``per_step`` each step renews it (a packet
    read, a frame given): a long video's stream is then bounded by its slowest step, not by its length, nor by its
    consumer's time; without, the whole call is bounded."""

    def __init__(self, seconds: float | None, *, per_step: bool = False):
        self.seconds, self.per_step = seconds, per_step
        self.at = time.monotonic() + (math.inf if seconds is None else seconds)

    def step(self) -> None:
        if self.per_step:
            self.at = time.monotonic() + (math.inf if self.seconds is None else self.seconds)

    def passed(self) -> bool:
        return time.monotonic() > self.at


@dataclass(frozen=True)
class MemoryBudget:
    """How to decode one video within ``DecodeLimits.max_memory``."""

    threads: int  # decoder threads; 0 leaves FFmpeg's automatic count
    max_pixels: int  # the largest frame the decoder may make at that thread count (a stream that switches size)


# Frames a decoder holds: about two per frame thread (the one it decodes and the one it hands over) and its
# references (up to 8 in AV1, fewer in H.264/HEVC at large sizes). Measured for H.264 at 8000x8000: 3.5 frames with
# one thread, 6 with 2, 10.4 with 4, 17 with 8; the estimate stays above.
_THREAD_FRAMES = 2
_REFERENCE_FRAMES = 6


def memory_budget(path: str, width: int, height: int, pix_fmt: str | None, held: int, limits: DecodeLimits):
    """The most decoder threads (up to FFmpeg's automatic count) whose estimate fits ``limits.max_memory`` when
    ``held`` RGB frames of ``width`` x ``height`` are kept for the clips; a VideoError naming the limit when even one
    thread does not fit."""
    pixels = width * height
    per_byte = _bytes_per_pixel(pix_fmt)
    auto = _auto_threads()
    for threads in range(auto, 0, -1):
        per_pixel = _per_pixel(per_byte, threads, held)
        if pixels * per_pixel <= limits.max_memory:
            most = min(limits.max_pixels, int(limits.max_memory // per_pixel))
            return MemoryBudget(0 if threads == auto else threads, most)
    need = pixels * _per_pixel(per_byte, 1, held)
    raise VideoError(
        path,
        f"decoding {held} frames of {width}x{height} ({pix_fmt}) needs about {format_size(need)}, over the limit "
        f"of {format_size(limits.max_memory)} (DecodeLimits.max_memory, --max-memory)",
    )


def _per_pixel(bytes_per_pixel: float, threads: int, held: int) -> float:
    """Bytes per pixel of frame size: the decoder's frames, the RGB frames kept (each copied into its clip, then
    dropped), one RGB frame being converted, and the RGBX copy preprocessing resizes from."""
    return bytes_per_pixel * (_THREAD_FRAMES * threads + _REFERENCE_FRAMES) + 3 * (held + 1) + 4


def _bytes_per_pixel(pix_fmt: str | None) -> float:
    import av

    try:
        return av.VideoFormat(pix_fmt).padded_bits_per_pixel / 8 if pix_fmt else 8.0
    except (ValueError, TypeError):
        return 8.0  # a format PyAV does not know: as much as 16-bit RGBA


def usable_cores() -> int:
    """The cores this process may run on: a container's or taskset's share, not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _auto_threads() -> int:
    """The count FFmpeg gives thread_count 0: the usable cores + 1, at most 16 (libavcodec/pthread.c)."""
    cores = usable_cores()
    return 1 if cores <= 1 else min(cores + 1, 16)


def format_size(size: float) -> str:
    """Bytes for people, in three figures, so that two sizes that differ read differently: ``100 KiB``, ``256 MiB``,
    ``2 GiB``, ``1.04 MiB``, ``12.6 MiB``, ``200 B``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            value = size / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            text = f"{value:.{digits}f}"
            return (text.rstrip("0").rstrip(".") if digits else text) + f" {unit}"
    return f"{size:.0f} B"
