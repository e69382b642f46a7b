"""The fuzz test's inputs: small generated videos, seeded mutations of them that say which bytes they damaged, and
which bytes of each video are coded picture data (``picture_bytes``), the only place damage may pass unseen.

    bases = make_bases(folder)                             # name -> path: mp4, mkv, webm, avi, raw H.264, GIF
    what, damaged, data = mutate(data, rng, ".gif")        # "bitflip x2 @123", the byte offsets touched, new bytes
    in_unchecked_pictures(base, data, damaged) -> bool     # the damage is inside coded picture data (see below)
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np

from tests._hostile import rewrite_sps_size
from tests._videos import make_video

BASES = {
    "h264.mp4": dict(codec="libx264", gop=8, bframes=2),
    "vp9.mkv": dict(codec="libvpx-vp9", gop=8),  # FFmpeg's Matroska muxer writes CRC-32 elements
    "vp8.webm": dict(codec="libvpx", gop=8),  # WebM files carry none
    "mpeg4.avi": dict(codec="mpeg4", gop=8, bframes=1),
    "raw.h264": dict(codec="libx264", gop=8, bframes=0),  # Annex B, no container: the SPS alone sizes the frames
    "anim.gif": dict(codec="gif", pix_fmt="rgb8"),
}
# Sizes a "dims" mutation writes into a raw H.264 SPS or a GIF's logical screen: 4K decodes within the memory budget,
# the others are refused by it or by max_pixels, or are over FFmpeg's own limit.
BOMB_SIZES = [(4096, 2304), (8000, 8000), (16000, 16000), (65535, 65535)]
CHECKSUMMED = {"vp9.mkv"}  # bases whose every byte a checksum covers: no damage may pass unseen there


def make_bases(folder: Path) -> dict[str, Path]:
    """48 frames of 64x48 in each base format, each picture carrying its own index (tests/_videos.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make_video(folder / name, frames=48, size=(64, 48), **spec) for name, spec in BASES.items()}


def mutate(data: bytes, rng, suffix: str) -> tuple[str, set[int] | None, bytes]:
    """One seeded mutation: (what it did, the offsets of the base's bytes it changed or removed, the new bytes).
    The offsets are None for a "dims" mutation, which rewrites a header's claim rather than damaging bytes."""
    if suffix in (".h264", ".gif") and rng.random() < 0.15:
        width, height = rng.choice(BOMB_SIZES)
        if suffix == ".gif":
            screen = struct.pack("<HH", min(width, 65535), min(height, 65535))
            return f"dims {width}x{height}", None, data[:6] + screen + data[10:]
        return f"dims {width}x{height}", None, rewrite_sps_size(data, width, height)
    data = bytearray(data)
    kind = rng.choice(["bitflip", "bitflip", "truncate", "zero", "header"])
    if kind == "bitflip":
        where = {rng.randrange(len(data)) for _ in range(rng.choice([1, 1, 2, 4, 8]))}
        for i in where:
            data[i] ^= 1 << rng.randrange(8)
        return f"bitflip x{len(where)} @{min(where)}", where, bytes(data)
    if kind == "truncate":
        keep = int(len(data) * rng.uniform(0.05, 0.995))
        return f"truncate at {keep}", set(range(keep, len(data))), bytes(data[:keep])
    if kind == "zero":
        start = rng.randrange(len(data))
        length = rng.choice([1, 4, 16, 64, 256, int(len(data) * rng.uniform(0.01, 0.1))])
        end = min(start + length, len(data))
        data[start:end] = bytes(end - start)
        return f"zero {end - start} B @{start}", set(range(start, end)), bytes(data)
    # a byte of the first KiB (box and element sizes, IDs, codec private data, counts) set to an extreme
    i = rng.randrange(min(1024, len(data)))
    data[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return f"header byte {i} = 0x{data[i]:02x}", {i}, bytes(data)


def in_unchecked_pictures(base: Path, data: bytes, damaged: set[int]) -> bool:
    """Whether the damage (offsets of ``base`` that ``data`` changed or lacks) lies inside the base's coded picture
    data, or whatever of it lies outside, applied alone, decodes to the base's very frames."""
    outside = damaged - picture_bytes(base)
    if not outside:
        return True
    return len(data) == base.stat().st_size and _changes_nothing(base, data, outside)


@functools.lru_cache
def picture_bytes(path: Path) -> frozenset[int]:
    """Offsets of the coded picture data of a base: the payload of every video packet (found in the file), or for a
    GIF, where the container is the codec, its colour tables and LZW data (not the block structure around them)."""
    data = path.read_bytes()
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_picture_bytes(data)
    import av

    offsets: set[int] = set()
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                payload = bytes(packet)
                start = data.find(payload, max(0, packet.pos or 0))  # Matroska's pos is its block's header
                assert start >= 0, f"{path.name}: a packet's bytes are not in the file as they are"
                offsets.update(range(start, start + len(payload)))
    return frozenset(offsets)


def _gif_picture_bytes(data: bytes) -> frozenset[int]:
    offsets: set[int] = set()

    def colours(pos: int, flags: int) -> int:
        if not flags & 0x80:
            return pos
        size = 3 << ((flags & 7) + 1)
        offsets.update(range(pos, pos + size))
        return pos + size

    def sub_blocks(pos: int, picture: bool) -> int:
        while data[pos]:
            if picture:
                offsets.update(range(pos + 1, pos + 1 + data[pos]))
            pos += 1 + data[pos]
        return pos + 1

    pos = colours(13, data[10])
    while data[pos] != 0x3B:
        if data[pos] == 0x21:
            pos = sub_blocks(pos + 2, picture=False)
        else:
            pos = colours(pos + 10, data[pos + 9])
            pos = sub_blocks(pos + 1, picture=True)
    return frozenset(offsets)


def _changes_nothing(base: Path, damaged: bytes, offsets: set[int]) -> bool:
    """Whether the base with only the bytes at ``offsets`` taken from ``damaged`` (of the base's length) decodes to
    the base's frames, by a plain decode of every frame."""
    data = bytearray(base.read_bytes())
    for i in offsets:
        data[i] = damaged[i]
    scratch = base.with_name("partly-" + base.name)
    scratch.write_bytes(bytes(data))
    try:
        return all(np.array_equal(a, b) for a, b in zip(_frames(scratch), _frames(base), strict=True))
    except ValueError:  # a different number of frames
        return False
    except Exception:  # noqa: BLE001 - whatever PyAV raises on it, the damage did something
        return False


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
