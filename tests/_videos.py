"""Test videos written with PyAV, whose every frame says which frame it is.

Each frame carries its index as two rows of six black or white bars (12 bits, so up to 4096 frames); the bars are
wide and flat, so ``read_index`` recovers the index after any lossy codec at the sizes tests use (from about 24x16
up). The rest of the frame moves from frame to frame, so encoders make real P and B frames, not copies.

    make_video(path, frames=48, size=(64, 48), fps=24, codec="libx264", gop=12, bframes=2)
    make_streams(path, [VideoSpec(size=(64, 48)), VideoSpec(size=(32, 24), first_index=1000)], audio=True)
    read_index(rgb_frame) -> int

The container comes from the path's suffix (.mp4 .mkv .webm .avi .mov .ts .h264 ...), the codec from
``DEFAULT_CODECS`` unless named. ``encoder_available`` tells whether this PyAV build has an encoder, for skipif.
Odd and broken inputs: ``make_audio`` (optionally with cover art), ``add_data_stream``, ``drop_leading_packets``,
``make_text``, ``make_empty``, ``truncate_file``, ``corrupt_file``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 12
_BARS_PER_ROW = BITS // 2

# Encoder used for each suffix when a test names none: the common codec of that container.
DEFAULT_CODECS = {
    ".mp4": "libx264",
    ".mkv": "libx264",
    ".mov": "libx264",
    ".ts": "libx264",
    ".h264": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
}
_FORMATS = {".mkv": "matroska", ".ts": "mpegts", ".h264": "h264", ".hevc": "hevc", ".ivf": "ivf"}
_AUDIO_CODECS = {".webm": "libopus", ".avi": "pcm_s16le", ".ts": "aac"}
# Pixel formats an encoder accepts when the test names none (libx264 and friends take yuv420p).
_DEFAULT_PIX_FMTS = {
    "mjpeg": "yuvj420p",
    "prores_ks": "yuv422p10le",
    "prores": "yuv422p10le",
}
# Keep encoders quiet and the bars crisp; lossless is not needed, readable bars are.
_QUALITY = {
    "libx264": {"crf": "20"},
    "libx265": {"crf": "22", "x265-params": "log-level=error"},
    "libvpx-vp9": {"crf": "24", "b": "0"},
    "libsvtav1": {"crf": "30"},
    "mpeg4": {"qscale": "3"},
    "mjpeg": {"qscale": "3"},
}


@dataclass(frozen=True)
class VideoSpec:
    """One video stream: what ``make_video`` takes besides the path.

    ``timestamps`` (seconds, increasing) gives each frame's time for variable frame rate; otherwise frame i is at
    i / fps. ``rotation`` is display rotation counter-clockwise in degrees (what ``VideoFrame.rotation`` reads
    back). ``first_index`` offsets the encoded indices, to tell streams of one file apart. ``pattern`` is
    "bars" (small, compresses well) or "texture" (a panning texture with film grain under the bars: a bit rate and
    decoding cost like camera footage, for benchmarks). ``options`` go to the encoder, over the defaults.
    """

    frames: int = 24
    size: tuple[int, int] = (64, 48)
    fps: float = 24
    codec: str | None = None
    gop: int | None = None
    bframes: int | None = None
    pix_fmt: str | None = None
    timestamps: Sequence[float] | None = None
    rotation: int = 0
    first_index: int = 0
    pattern: str = "bars"
    options: dict[str, str] = field(default_factory=dict)


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def pattern_frame(index: int, width: int, height: int, pattern: str = "bars", *, texture=None) -> np.ndarray:
    """The RGB frame (height, width, 3) uint8 that encodes ``index``."""
    if not 0 <= index < 2**BITS:
        raise ValueError(f"index {index} does not fit in {BITS} bits")
    y, x = np.mgrid[0:height, 0:width]
    if pattern == "texture":
        background, grains = texture if texture is not None else _texture(width, height)
        rgb = np.roll(background, (index * 7) % width, axis=1)
        # Grain that changes every frame, from a few stored fields: motion search cannot predict it away.
        rgb = (rgb.astype(np.int16) + grains[index % len(grains)]).clip(0, 255).astype(np.uint8)
    elif pattern == "bars":
        rgb = np.stack(
            [(x * 5 + y * 3 + index * 9) % 256, (x * 2 + index * 5) % 256, (y * 7 + index * 3) % 256], axis=-1
        ).astype(np.uint8)
    else:
        raise ValueError(f"unknown pattern {pattern!r}: use 'bars' or 'texture'")
    band = height // 4  # rows [0, band) hold bits 0-5, rows [band, 2 band) bits 6-11; the lower half moves
    for bit in range(BITS):
        row, col = divmod(bit, _BARS_PER_ROW)
        x0, x1 = col * width // _BARS_PER_ROW, (col + 1) * width // _BARS_PER_ROW
        rgb[row * band : (row + 1) * band, x0:x1] = 255 if index >> bit & 1 else 0
    return rgb


def read_index(rgb: np.ndarray, *, first_index: int = 0) -> int:
    """The index a decoded (height, width, 3) frame of ``make_video`` carries (without its rotation applied)."""
    height, width = rgb.shape[:2]
    band = height // 4
    luma = rgb.astype(np.float32).mean(axis=-1)
    index = 0
    for bit in range(BITS):
        row, col = divmod(bit, _BARS_PER_ROW)
        x0, x1 = col * width // _BARS_PER_ROW, (col + 1) * width // _BARS_PER_ROW
        # The middle of each bar: codecs smear edges, not centres.
        cx0, cx1 = x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3
        cy0, cy1 = row * band + band // 4, (row + 1) * band - band // 4
        if luma[cy0 : max(cy1, cy0 + 1), cx0 : max(cx1, cx0 + 1)].mean() > 128:
            index |= 1 << bit
    return index - first_index


def _texture(width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A smooth noise background (a few scales, like natural images) and grain fields; seeded, so the cached
    benchmark videos never change."""
    rng = np.random.default_rng(0)
    out = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        small = rng.random((height // scale + 2, width // scale + 2, 3), dtype=np.float32)
        big = small.repeat(scale, axis=0).repeat(scale, axis=1)[:height, :width]
        out += weight * big
    grains = [rng.integers(-6, 7, (height, width, 1), dtype=np.int16) for _ in range(7)]
    return (out * 255).astype(np.uint8), grains


def make_video(path, *, audio: bool = False, muxer_options: dict[str, str] | None = None, **spec) -> Path:
    """Write a one-video-stream file (plus an audio stream if asked); keywords are ``VideoSpec``'s fields."""
    return make_streams(path, [VideoSpec(**spec)], audio=audio, muxer_options=muxer_options)


def make_streams(
    path,
    videos: Sequence[VideoSpec],
    *,
    audio: bool = False,
    audio_seconds: float | None = None,
    muxer_options: dict[str, str] | None = None,
) -> Path:
    """Write one file with a video stream per spec, interleaved by time, and optionally an audio stream.

    ``muxer_options`` go to FFmpeg's muxer, e.g. ``{"movflags": "faststart"}`` to put an MP4's index first.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    container = av.open(str(path), "w", format=_FORMATS.get(suffix), options=muxer_options or {})
    try:
        encoders = [_add_video(container, spec, suffix) for spec in videos]
        audio_stream = None
        if audio:
            audio_stream = container.add_stream(_AUDIO_CODECS.get(suffix, "aac"), rate=48000)
            audio_stream.layout = "mono"
        # Feed frames in time order so that the muxer interleaves the streams as a real file would.
        events = [(t, k, i) for k, (_, times, _) in enumerate(encoders) for i, t in enumerate(times)]
        for _, k, i in sorted(events):
            stream, times, frame_at = encoders[k]
            for packet in stream.encode(frame_at(i)):
                container.mux(packet)
        for stream, _, _ in encoders:
            for packet in stream.encode():
                container.mux(packet)
        if audio_stream is not None:
            seconds = audio_seconds if audio_seconds is not None else max(t[-1] for _, t, _ in encoders if t)
            _write_tone(container, audio_stream, seconds)
    finally:
        container.close()
    return path


def _add_video(container, spec: VideoSpec, suffix: str):
    codec = spec.codec or DEFAULT_CODECS.get(suffix, "libx264")
    options = {**_QUALITY.get(codec, {}), **spec.options}
    if spec.bframes is not None:
        options["bf"] = str(spec.bframes)
    if spec.gop is not None:
        options["g"] = str(spec.gop)
        # Keyframes exactly every gop frames: no scene-cut keyframes (the bars change a lot between frames).
        options["sc_threshold"] = "0"
        if codec == "libx265":
            options["x265-params"] = f"{options['x265-params']}:keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0"
        if codec == "libsvtav1":
            options["svtav1-params"] = f"keyint={spec.gop}"
    width, height = spec.size
    if spec.timestamps is not None:
        if len(spec.timestamps) != spec.frames:
            raise ValueError("timestamps must have one entry per frame")
        times = [float(t) for t in spec.timestamps]
        time_base = Fraction(1, 1000)
        stream = container.add_stream(codec, rate=Fraction(spec.fps).limit_denominator(1001), options=options)
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
    else:
        rate = Fraction(spec.fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate, options=options)
        time_base = 1 / rate
        times = [i / rate for i in range(spec.frames)]
    stream.width, stream.height = width, height
    stream.pix_fmt = spec.pix_fmt or _DEFAULT_PIX_FMTS.get(codec, "yuv420p")
    if spec.bframes is not None:
        stream.codec_context.max_b_frames = spec.bframes
    if spec.rotation:
        stream.set_display_rotation(spec.rotation)
    texture = _texture(width, height) if spec.pattern == "texture" else None

    def frame_at(i: int):
        rgb = pattern_frame(spec.first_index + i, width, height, spec.pattern, texture=texture)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = round(Fraction(times[i]) / Fraction(time_base))
        frame.time_base = Fraction(time_base)
        return frame

    return stream, [float(t) for t in times], frame_at


def _write_tone(container, stream, seconds: float) -> None:
    rate = stream.rate
    chunk = stream.codec_context.frame_size or 1024
    total = max(int(seconds * rate), chunk)
    t = np.arange(total, dtype=np.float32) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    for start in range(0, total, chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def make_audio(path, *, seconds: float = 1.0, cover_art: bool = False) -> Path:
    """An audio-only file (.wav, .m4a, .mp3, .mka ... by suffix): it opens, but has no video stream. With
    ``cover_art`` (.mp3) it carries a picture as a one-frame video stream marked attached_pic, as music does."""
    path = Path(path)
    suffix = path.suffix.lower()
    codec = {".wav": "pcm_s16le", ".mp3": "libmp3lame"}.get(suffix, "aac")
    container = av.open(str(path), "w", format={".mka": "matroska"}.get(suffix))
    try:
        stream = container.add_stream(codec, rate=48000)
        stream.layout = "mono"
        if cover_art:
            picture = container.add_stream("mjpeg")
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            frame = av.VideoFrame.from_ndarray(pattern_frame(0, 32, 32), format="rgb24")
            frame.pts = 0
            for packet in [*picture.encode(frame), *picture.encode()]:
                container.mux(packet)
        _write_tone(container, stream, seconds)
    finally:
        container.close()
    return path


def add_data_stream(path, *, packets: int = 24, rate: float = 24.0) -> Path:
    """Rewrite an MPEG-TS file with a KLV data stream added (as drones and dashcams write): a stream FFmpeg has no
    decoder for."""
    path = Path(path)
    source = av.open(str(path))
    staging = path.with_name(path.name + ".tmp.ts")
    target = av.open(str(staging), "w", format="mpegts")
    try:
        copies = {s.index: target.add_stream_from_template(s) for s in source.streams}
        data = target.add_data_stream("klv")
        for packet in source.demux():
            if packet.size:
                packet.stream = copies[packet.stream_index]
                target.mux(packet)
        for i in range(packets):
            klv = av.Packet(b"\x06\x0e\x2b\x34" + bytes(12))
            klv.stream, klv.time_base = data, Fraction(1, 90000)
            klv.pts = klv.dts = round(i / rate * 90000)
            target.mux(klv)
    finally:
        target.close()
        source.close()
    staging.replace(path)
    return path


def drop_leading_packets(src, dst, *, count: int) -> Path:
    """Copy ``src``'s video stream to ``dst`` without its first ``count`` packets: a stream that starts mid-GOP, as
    a careless cut gives. Decoders drop the frames that reference the missing ones."""
    dst = Path(dst)
    with av.open(str(src)) as source, av.open(str(dst), "w", format=_FORMATS.get(dst.suffix.lower())) as target:
        copy = target.add_stream_from_template(source.streams.video[0])
        packets = [p for p in source.demux(video=0) if p.size]
        for packet in packets[count:]:
            packet.stream = copy
            target.mux(packet)
    return dst


def make_text(path, text: str = "this is not a video\n") -> Path:
    path = Path(path)
    path.write_text(text)
    return path


def make_empty(path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def truncate_file(src, dst, *, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst``: a download cut short."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def corrupt_file(src, dst, *, start: float = 0.3, length: float = 0.4, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with the bytes from ``start`` for ``length`` (fractions of the size) randomised."""
    dst = Path(dst)
    shutil.copyfile(src, dst)
    data = bytearray(dst.read_bytes())
    begin, span = int(len(data) * start), int(len(data) * length)
    data[begin : begin + span] = np.random.default_rng(seed).integers(0, 256, span, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst
