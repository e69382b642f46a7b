"""Hostile and damaged inputs, each built in well under a second from a few hundred bytes of encoding, so that the
test suite can make them as fixtures.

    make_sps_bomb(path, width=8000, height=8000, frames=10)   # ~1 KB raw H.264 whose SPS claims width x height
    make_gif_bomb(path, width=8000, height=8000, frames=10)   # ~260 bytes: a huge logical screen, 1x1 images
    gif_images(data) -> [offset, ...]                         # where a GIF's image descriptors are
    rewrite_sps_size(annexb_bytes, width, height) -> bytes      # the SPS rewrite on its own
    flip_mdhd(src, dst, field="timescale"|"duration", bit=...) # one bit flipped in an MP4's media header
    zero_matroska_header(src, dst)                            # the EBML header zeroed (probes as raw H.263)
    make_special_entries(folder)                              # FIFO, a folder named x.mp4, dangling link, link loop,
                                                              # link to /dev/zero, up -> .. (for list_inputs)
    make_protocol_names(folder)                               # "concat:a.mp4|b.webm", "pipe:0", ... holding text

Exp-Golomb: an SPS field ue(v) is written as (n zero bits, then n+1 bits of value + 1); the bits after the fields
that change are copied as they are, so the rest of the SPS (VUI, flags) stays valid.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

# ---------------------------------------------------------------------------------------------------------------------
# H.264 SPS rewriting


class _Bits:
    def __init__(self, data: bytes):
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def u(self, n: int) -> int:
        value = int(self.bits[self.pos : self.pos + n], 2) if n else 0
        self.pos += n
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits[self.pos] == "0":
            zeros += 1
            self.pos += 1
        self.pos += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _ue(value: int) -> str:
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def _unescape(payload: bytes) -> bytes:
    """NAL payload -> RBSP: drop the emulation prevention byte of each 00 00 03."""
    out, zeros = bytearray(), 0
    for b in payload:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _escape(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + r.se() + 256) % 256
        last = following or last


def _rewrite_sps_rbsp(rbsp: bytes, width_mbs: int, height_map_units: int) -> bytes:
    r = _Bits(rbsp)
    profile = r.u(8)
    r.u(16)  # constraint flags, level_idc
    r.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            r.u(1)
        r.ue(), r.ue(), r.u(1)  # bit depths, qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.u(1), r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue(), r.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    head = r.bits[: r.pos]
    r.ue(), r.ue()  # pic_width_in_mbs_minus1, pic_height_in_map_units_minus1
    tail = r.bits[r.pos :].rstrip("0")[:-1]  # the fields after, without the rbsp stop bit and its alignment
    bits = head + _ue(width_mbs - 1) + _ue(height_map_units - 1) + tail + "1"
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def rewrite_sps_size(annexb: bytes, width: int, height: int) -> bytes:
    """An Annex B H.264 stream with every SPS rewritten to claim ``width`` x ``height`` (rounded up to macroblocks;
    progressive streams, where a map unit is a macroblock row). Slices stay as they were: the decoder conceals the
    macroblocks they do not cover, so each frame still comes out at the claimed size."""
    out, pos = bytearray(), 0
    starts = []
    while (i := annexb.find(b"\x00\x00\x01", pos)) >= 0:
        starts.append(i + 3)
        pos = i + 3
    for k, start in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(annexb)
        nal = annexb[start:end]
        if k + 1 < len(starts) and nal.endswith(b"\x00"):  # a 4-byte start code's leading zero
            nal = nal[:-1]
        if nal and nal[0] & 0x1F == 7:
            rbsp = _rewrite_sps_rbsp(_unescape(nal[1:]), -(-width // 16), -(-height // 16))
            nal = nal[:1] + _escape(rbsp)
        out += b"\x00\x00\x00\x01" + nal
    return bytes(out)


def make_sps_bomb(path, *, width: int = 8000, height: int = 8000, frames: int = 10) -> Path:
    """A raw .h264 file of ``frames`` 16x16 frames (baseline, no SEI) whose SPS claims ``width`` x ``height``."""
    import av
    import numpy as np

    path = Path(path)
    scratch = path.with_name(path.name + ".src.h264")
    with av.open(str(scratch), "w", format="h264") as container:
        stream = container.add_stream(
            "libx264", rate=24, options={"preset": "ultrafast", "bf": "0", "x264-params": "no-info=1:log-level=error"}
        )
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), i * 20 % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.write_bytes(rewrite_sps_size(scratch.read_bytes(), width, height))
    scratch.unlink()
    return path


# ---------------------------------------------------------------------------------------------------------------------
# GIF


def make_gif_bomb(path, *, width: int = 8000, height: int = 8000, frames: int = 10, delay_cs: int = 4) -> Path:
    """A GIF89a with a ``width`` x ``height`` logical screen and ``frames`` 1x1 images, ``delay_cs`` hundredths of a
    second apart: 20 + 23 * frames bytes. FFmpeg's decoder paints each image on a screen-sized canvas."""
    data = bytearray(b"GIF89a")
    data += struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # global colour table of 2 entries
    data += bytes([0, 0, 0, 255, 255, 255])
    for i in range(frames):
        data += b"\x21\xf9\x04" + struct.pack("<BHBB", 0x04, delay_cs, 0, 0)  # graphic control: delay, keep
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)  # image descriptor: 1x1 at (0, 0)
        data += b"\x02\x02" + (b"\x44\x01" if i % 2 == 0 else b"\x4c\x01") + b"\x00"  # LZW: clear, pixel 0 or 1, end
    data += b"\x3b"
    path = Path(path)
    path.write_bytes(bytes(data))
    return path


def gif_images(data: bytes) -> list[int]:
    """The offsets of a GIF's image descriptors (0x2C), found by walking its blocks (0x2C occurs in data too)."""

    def skip_sub_blocks(pos: int) -> int:
        while data[pos]:
            pos += 1 + data[pos]
        return pos + 1

    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    images = []
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # an extension: introducer, label, sub-blocks
            pos = skip_sub_blocks(pos + 2)
        else:  # an image: descriptor, local colour table, LZW code size, sub-blocks
            images.append(pos)
            flags = data[pos + 9]
            pos = skip_sub_blocks(pos + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1)
    return images


# ---------------------------------------------------------------------------------------------------------------------
# Container damage


def _find_box(data: bytes, name: bytes, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """(offset, size) of the first box ``name`` among the boxes in data[start:end], descending into containers."""
    end = len(data) if end is None else end
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta"}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8:
            return None
        if kind == name:
            return pos, size
        if kind in containers:
            found = _find_box(data, name, pos + 8, pos + size)
            if found:
                return found
        pos += size
    return None


def flip_mdhd(src, dst, *, field: str = "timescale", bit: int = 3) -> Path:
    """Copy an MP4 with one bit of its (first) media header's ``timescale`` or ``duration`` flipped."""
    data = bytearray(Path(src).read_bytes())
    offset, _ = _find_box(bytes(data), b"mdhd")
    version = data[offset + 8]
    # version 0: creation(4) modification(4) timescale(4) duration(4); version 1: 8 8 4 8
    body = offset + 12
    where = body + (16 if version else 8) if field == "timescale" else body + (20 if version else 12)
    width = 4 if field == "timescale" or not version else 8
    value = int.from_bytes(data[where : where + width], "big") ^ (1 << bit)
    data[where : where + width] = value.to_bytes(width, "big")
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def zero_matroska_header(src, dst, *, length: int = 64) -> Path:
    """Copy a Matroska/WebM file with its first ``length`` bytes (the EBML header and the Segment's start) zeroed."""
    data = bytearray(Path(src).read_bytes())
    data[:length] = bytes(length)
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


# ---------------------------------------------------------------------------------------------------------------------
# File names and special files


PROTOCOL_NAMES = (
    "concat:a.mp4|b.webm",
    "pipe:0",
    "subfile,,start,0,end,0,,:a.mp4",
    "file:a.mp4",
    "data:;base64,AAAAGGZ0eXBpc29t",
    "tee:a.mp4",
    "http:",
    "crypto:a.mp4",
    "cache:a.mp4",
    "async:a.mp4",
)


def make_protocol_names(folder) -> list[Path]:
    """Text files named like FFmpeg protocol URLs (next to a real a.mp4 and b.webm the caller makes)."""
    folder = Path(folder)
    made = []
    for name in PROTOCOL_NAMES:
        path = folder / name
        path.write_text(f"not a video: {name}\n")
        made.append(path)
    return made


def make_special_entries(folder) -> dict[str, Path]:
    """Every kind of entry a folder listing can find that is not a plain video: returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    fifo = folder / "fifo.mp4"
    os.mkfifo(fifo)
    entries["fifo"] = fifo
    (folder / "x.mp4").mkdir()
    entries["directory"] = folder / "x.mp4"
    os.symlink("missing.mp4", folder / "dangling.mp4")
    entries["dangling"] = folder / "dangling.mp4"
    os.symlink("loop_b.mp4", folder / "loop_a.mp4")
    os.symlink("loop_a.mp4", folder / "loop_b.mp4")
    entries["loop_a"] = folder / "loop_a.mp4"
    entries["loop_b"] = folder / "loop_b.mp4"
    os.symlink("/dev/zero", folder / "zero.mp4")
    entries["devzero"] = folder / "zero.mp4"
    os.symlink("..", folder / "up")
    entries["up"] = folder / "up"
    return entries


def make_size_switch(path, *, width: int = 8000, height: int = 8000, frames: int = 24) -> Path:
    """A raw .h264 stream that starts at 64x48 (which its header and the probe see) and switches to an SPS claiming
    ``width`` x ``height`` half-way: budgets computed from the header alone do not cover it."""
    from tests._videos import make_video

    path = Path(path)
    head = path.with_name(path.name + ".head.h264")
    tail = path.with_name(path.name + ".tail.h264")
    make_video(head, frames=frames, size=(64, 48), codec="libx264", bframes=0)
    make_sps_bomb(tail, width=width, height=height, frames=frames)
    path.write_bytes(head.read_bytes() + tail.read_bytes())
    head.unlink()
    tail.unlink()
    return path
