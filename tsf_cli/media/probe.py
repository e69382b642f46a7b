"""What a file holds, for ``tsf info``: its streams, with fps, duration and frame counts measured from the packets
rather than taken from the header."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import av
import numpy as np

from ..errors import VideoError
from .decode import best_video_stream, check_deadline, open_container, read_failure
from .limits import DecodeLimits


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a file. Video fields are None for other types; fps, duration and frame count are measured
    from the packets when ``probe`` counts frames, else they are the header's claims (None where it has none)."""

    index: int
    type: str  # video, audio, subtitle, data or attachment
    codec: str
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None  # average over the stream: (frames - 1) / (last - first timestamp)
    variable_fps: bool | None = None  # frame intervals differ by more than timestamp rounding explains
    duration_s: float | None = None
    num_frames: int | None = None
    keyframes: int | None = None
    rotation: int = 0  # degrees counter-clockwise that frames are turned for display (and by sample_clips)
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str  # FFmpeg's name for the format, e.g. "matroska,webm"
    duration_s: float | None  # the longest stream, measured when counted, else the header's
    streams: tuple[StreamInfo, ...]
    video_stream: int | None  # the stream sample_clips uses by default; None if the file has no video


def probe(path, *, count_frames: bool = True, limits: DecodeLimits = DecodeLimits()) -> VideoInfo:
    """What a file holds, for ``tsf info``. With ``count_frames`` every packet is read (not decoded) to measure
    frame counts, rates and durations; without, those are the header's claims. Rotation comes from decoding each
    video stream's first frame."""
    path = os.fspath(path)
    deadline = limits.deadline()
    try:
        with open_container(path, limits) as container:
            streams = list(container.streams)
            tallies = {s.index: _Tally() for s in streams}
            video = [s for s in streams if s.type == "video" and s.codec_context is not None]
            for s in video:
                s.codec_context.thread_count = 1  # one frame is all it decodes: no other thread's frames to pay for
                s.codec_context.options = {**s.codec_context.options, "max_pixels": str(limits.max_pixels)}
            waiting_first_frame = {s.index for s in video}
            for packet in container.demux(streams):
                if not count_frames and not waiting_first_frame:
                    break
                if packet.size == 0:
                    continue
                check_deadline(deadline, path, limits)
                tally = tallies[packet.stream_index]
                if tally.count >= limits.max_frames and packet.stream.type == "video":
                    raise VideoError(path, f"more than {limits.max_frames} frames (DecodeLimits.max_frames)")
                tally.add(packet)
                if packet.stream_index in waiting_first_frame:
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError:
                        frames = []
                    if frames:
                        tally.rotation = frames[0].rotation
                        waiting_first_frame.discard(packet.stream_index)
            chosen = best_video_stream(container)
            infos = tuple(_stream_info(s, tallies[s.index], count_frames) for s in streams)
            header = container.duration / 1_000_000 if container.duration else None
            measured = [i.duration_s for i in infos if i.duration_s is not None]
            duration = max(measured) if count_frames and measured else header
            return VideoInfo(path, container.format.name, duration, infos, chosen.index if chosen else None)
    except av.error.FFmpegError as exc:
        raise read_failure(path, exc, limits) from exc


@dataclass
class _Tally:
    count: int = 0
    keyframes: int = 0
    pts: list = field(default_factory=list)
    last_duration: int | None = None
    rotation: int = 0

    def add(self, packet) -> None:
        self.count += not packet.is_discard  # an edit list hides discarded packets' frames
        self.keyframes += bool(packet.is_keyframe)
        if packet.pts is not None:
            self.pts.append(packet.pts)
        self.last_duration = packet.duration


def _stream_info(stream, tally: _Tally, counted: bool) -> StreamInfo:
    context = stream.codec_context
    # Streams FFmpeg has no decoder for (data, attachments) have no codec context; data streams still name theirs.
    codec = context.name if context else getattr(stream, "name", None) or "unknown"
    base = dict(index=stream.index, type=stream.type, codec=codec)
    time_base = float(stream.time_base) if stream.time_base else None
    duration = None
    if counted and tally.pts and time_base:
        end = max(tally.pts) + (tally.last_duration or 0)
        duration = (end - min(tally.pts)) * time_base
    elif stream.duration and time_base:
        duration = stream.duration * time_base
    if stream.type == "audio":
        return StreamInfo(
            **base,
            duration_s=duration,
            sample_rate=context.sample_rate if context else None,
            channels=context.channels if context else None,
        )
    if stream.type != "video":
        return StreamInfo(**base, duration_s=duration)
    fps = variable = None
    frames = tally.count if counted else (stream.frames or None)
    if counted and len(tally.pts) >= 2 and time_base:
        ticks = np.diff(np.sort(np.array(tally.pts, dtype=np.int64)))
        span = float(ticks.sum())
        fps = (len(tally.pts) - 1) / (span * time_base) if span > 0 else None
        median = float(np.median(ticks))
        variable = bool(ticks.max() - ticks.min() > max(2, 0.01 * median))
    elif stream.average_rate:
        fps = float(stream.average_rate)
    return StreamInfo(
        **base,
        width=context.width if context else None,
        height=context.height if context else None,
        pix_fmt=context.pix_fmt if context else None,
        fps=fps,
        variable_fps=variable,
        duration_s=duration,
        num_frames=frames,
        keyframes=tally.keyframes if counted else None,
        rotation=tally.rotation,
    )
