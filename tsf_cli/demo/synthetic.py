"""Synthetic motion clips that one frame cannot classify: a shape moving left, right, up or down, growing or
shrinking, fading in or fading out.

Every pair of opposite motions shows the same set of frames in opposite orders (start positions, sizes and opacities
are drawn symmetrically), so a model that ignores frame order is at chance within each pair; only attention across time
can tell them apart. Shape, colours, background, position, speed, size, frame count, frame rate, resolution and codec
are all drawn at random so that a model trained on them generalises to clips it has never seen.

Everything a clip looks like follows from its seed: ``write_clip(path, motion, seed=s)`` writes the same pixels every
time (the codec aside), and ``generate_dataset(root, per_class=n, seed=s)`` the same dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MOTIONS = (
    "moving_left",
    "moving_right",
    "moving_up",
    "moving_down",
    "growing",
    "shrinking",
    "fading_in",
    "fading_out",
)
SHAPES = ("polygon", "star", "pacman", "arrow", "ell", "bar")
BACKGROUNDS = ("solid", "gradient", "texture")

# Codec chosen by container when the caller names none; mjpeg and mpeg4 need no external encoder library.
DEFAULT_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9", ".avi": "mjpeg"}
# (codec, container suffix) pairs that generate_dataset cycles through.
DATASET_FORMATS = (("libx264", ".mp4"), ("mpeg4", ".avi"), ("mjpeg", ".avi"), ("libx264", ".mkv"))


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines a clip's pixels. Geometry is in pixels, the angle in radians."""

    motion: str
    width: int
    height: int
    num_frames: int
    fps: int
    shape: str
    outline: tuple[tuple[float, float], ...]  # the shape's vertices around its centre, outer radius 1
    color: tuple[int, int, int]
    background: str
    background_colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    background_angle: float  # direction of the gradient
    texture_seed: int
    noise: float  # standard deviation of the per-frame pixel noise, in 0-255 units
    start: tuple[float, float]  # centre (x, y) in the first frame
    end: tuple[float, float]  # centre (x, y) in the last frame
    angle: float  # the shape's orientation
    radius: tuple[float, float]  # outer radius in the first and last frame
    opacity: tuple[float, float]  # how much the shape covers the background in the first and last frame


@dataclass(frozen=True)
class SyntheticClip:
    """A clip written to disk and what it shows."""

    path: Path
    motion: str
    codec: str
    spec: ClipSpec


@dataclass(frozen=True)
class SyntheticDataset:
    """A generated data set: one subfolder per motion under ``root``."""

    root: Path
    clips: tuple[SyntheticClip, ...]


def _outline(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (V, 2) of a shape, centred, outer radius 1."""
    if shape == "polygon":
        count = int(rng.integers(4, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = rng.uniform(0.45, 1.0, count)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    elif shape == "star":
        points = int(rng.integers(3, 7))
        inner = rng.uniform(0.3, 0.5)
        angles = np.arange(2 * points) * np.pi / points
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    elif shape == "pacman":
        mouth = np.deg2rad(rng.uniform(50, 100))
        angles = np.linspace(mouth / 2, 2 * np.pi - mouth / 2, 28)
        points = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(angles), np.sin(angles)], axis=1)])
    elif shape == "arrow":
        shaft, head = rng.uniform(0.15, 0.3), rng.uniform(0.45, 0.7)
        points = np.array(
            [[-1, -shaft], [0.1, -shaft], [0.1, -head], [1, 0], [0.1, head], [0.1, shaft], [-1, shaft]], dtype=float
        )
    elif shape == "ell":
        arm = rng.uniform(0.3, 0.5)
        points = np.array([[-1, -1], [-1 + arm, -1], [-1 + arm, 1 - arm], [1, 1 - arm], [1, 1], [-1, 1]], dtype=float)
    elif shape == "bar":
        half = rng.uniform(0.25, 0.45)
        points = np.array([[-1, -half], [1, -half], [1, half], [-1, half]], dtype=float)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if rng.random() < 0.5:
        points[:, 0] = -points[:, 0]  # both handednesses of each shape
    points = points - points.mean(axis=0)
    return points / np.linalg.norm(points, axis=1).max()


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _colors(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """A shape colour and two background colours of any hue, the shape lighter than both by a clear margin.

    Always a light shape over a darker scene: a model must otherwise also learn that a dark shape on a light
    background moves the same way, which costs a from-scratch model far more training than this demo can spend.
    """
    while True:
        shape, bg0, bg1 = (rng.integers(0, 256, 3) for _ in range(3))
        if rng.random() < 0.5:
            bg1 = np.clip(bg0 + rng.integers(-50, 51, 3), 0, 255)  # a subtler background half of the time
        if _luma(shape) >= max(_luma(bg0), _luma(bg1)) + 80:
            return tuple(int(v) for v in shape), tuple(int(v) for v in bg0), tuple(int(v) for v in bg1)


def random_spec(
    motion: str,
    rng: np.random.Generator,
    *,
    width: int | None = None,
    height: int | None = None,
    num_frames: int | None = None,
    fps: int | None = None,
) -> ClipSpec:
    """Draw a clip of ``motion``. What is not given is drawn: a width of 80-176 pixels (even), a height of about 4:5
    to 5:4 of it (even, within 80-176), 24-48 frames, 12-30 fps."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {', '.join(MOTIONS)}")
    width = width or 2 * int(rng.integers(40, 89))
    # Near-square by default: a training crop then rarely cuts the motion, which stays in the central square.
    height = height or 2 * int(np.clip(round(width * rng.uniform(0.8, 1.25) / 2), 40, 88))
    num_frames = num_frames or int(rng.integers(24, 49))
    fps = fps or int(rng.choice([12, 15, 24, 25, 30]))
    shape = str(rng.choice(SHAPES))
    outline = _outline(shape, rng)
    color, bg0, bg1 = _colors(rng)

    # The motion stays inside the central square, which is what a centre crop keeps whatever the aspect ratio.
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    opacity = (1.0, 1.0)
    if motion.startswith("moving"):
        r = side * rng.uniform(0.09, 0.18)
        radius = (r, r)
        span = side - 2 * (r + 1)
        travel = min(side * rng.uniform(0.3, 0.55), 0.95 * span)
        low = r + 1 + rng.uniform(0, span - travel)  # the path's lower end: drawn alike for both directions
        across = rng.uniform(r + 1, side - r - 1)
        first, last = (low + travel, low) if motion in ("moving_left", "moving_up") else (low, low + travel)
        if motion in ("moving_left", "moving_right"):
            start, end = (left + first, top + across), (left + last, top + across)
        else:
            start, end = (left + across, top + first), (left + across, top + last)
    else:
        if motion in ("growing", "shrinking"):
            # Never so small that the shape's small end could pass for the faint end of a fade.
            small = side * rng.uniform(0.08, 0.12)
            big = min(small * rng.uniform(2.0, 3.0), side * 0.32)
            radius = (small, big) if motion == "growing" else (big, small)
            reach = big
        else:
            r = side * rng.uniform(0.12, 0.25)
            radius = (r, r)
            faint, solid = rng.uniform(0.0, 0.2), rng.uniform(0.85, 1.0)
            opacity = (faint, solid) if motion == "fading_in" else (solid, faint)
            reach = r
        centre = (left + rng.uniform(reach + 1, side - reach - 1), top + rng.uniform(reach + 1, side - reach - 1))
        start = end = centre
    return ClipSpec(
        motion=motion,
        width=width,
        height=height,
        num_frames=num_frames,
        fps=fps,
        shape=shape,
        outline=tuple((float(x), float(y)) for x, y in outline),
        color=color,
        background=str(rng.choice(BACKGROUNDS)),
        background_colors=(bg0, bg1),
        background_angle=float(rng.uniform(0, 2 * np.pi)),
        texture_seed=int(rng.integers(2**31)),
        noise=float(rng.choice([0.0, rng.uniform(1, 8)])),
        start=(float(start[0]), float(start[1])),
        end=(float(end[0]), float(end[1])),
        angle=float(rng.uniform(0, 2 * np.pi)),
        radius=(float(radius[0]), float(radius[1])),
        opacity=(float(opacity[0]), float(opacity[1])),
    )


def _background(spec: ClipSpec) -> np.ndarray:
    """The static background, (H, W, 3) float32 in 0-255."""
    bg0, bg1 = (np.array(c, dtype=np.float32) for c in spec.background_colors)
    h, w = spec.height, spec.width
    if spec.background == "solid":
        return np.broadcast_to(bg0, (h, w, 3)).copy()
    if spec.background == "gradient":
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        along = xs * math.cos(spec.background_angle) + ys * math.sin(spec.background_angle)
        t = (along - along.min()) / max(float(np.ptp(along)), 1.0)
        return bg0 + t[..., None] * (bg1 - bg0)
    # texture: a coarse random grid of blends between the two colours, smoothly upsampled
    rng = np.random.default_rng(spec.texture_seed)
    grid = rng.random((int(rng.integers(3, 8)), int(rng.integers(3, 8))), dtype=np.float32)
    gy = np.linspace(0, grid.shape[0] - 1, h, dtype=np.float32)
    gx = np.linspace(0, grid.shape[1] - 1, w, dtype=np.float32)
    y0, x0 = np.minimum(gy.astype(int), grid.shape[0] - 2), np.minimum(gx.astype(int), grid.shape[1] - 2)
    fy, fx = (gy - y0)[:, None], (gx - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    t = top * (1 - fy) + bottom * fy
    return bg0 + t[..., None] * (bg1 - bg0)


def _coverage(points: np.ndarray, height: int, width: int, supersample: int = 3) -> tuple[slice, slice, np.ndarray]:
    """Antialiased coverage of a polygon (V, 2) in pixel coordinates: the bounding box and its alpha (h, w)."""
    x0, y0 = (max(int(math.floor(v)), 0) for v in points.min(axis=0))
    x1, y1 = (int(math.ceil(v)) for v in points.max(axis=0))
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), dtype=np.float32)
    ys = y0 + (np.arange((y1 - y0) * supersample) + 0.5) / supersample
    xs = x0 + (np.arange((x1 - x0) * supersample) + 0.5) / supersample
    py, px = ys[:, None], xs[None, :]
    inside = np.zeros((ys.size, xs.size), dtype=bool)
    for (ax, ay), (bx, by) in zip(points, np.roll(points, -1, axis=0), strict=True):
        if ay == by:
            continue
        crosses = (ay > py) != (by > py)  # (h*s, 1): the horizontal ray at py meets this edge
        x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)  # even-odd rule
    alpha = inside.reshape(y1 - y0, supersample, x1 - x0, supersample).mean(axis=(1, 3), dtype=np.float32)
    return slice(y0, y1), slice(x0, x1), alpha


def _shape_at(spec: ClipSpec, index: int) -> tuple[np.ndarray, float]:
    """The shape's outline (V, 2) in pixel coordinates in frame ``index``, and its opacity there: position, size and
    opacity change at a constant rate from the first frame to the last."""
    rotation = np.array([[math.cos(spec.angle), -math.sin(spec.angle)], [math.sin(spec.angle), math.cos(spec.angle)]])
    outline = np.array(spec.outline, dtype=np.float64) @ rotation.T
    u = index / (spec.num_frames - 1)
    cx, cy = (a + u * (b - a) for a, b in zip(spec.start, spec.end, strict=True))
    radius, opacity = (a + u * (b - a) for a, b in (spec.radius, spec.opacity))
    return outline * radius + (cx, cy), opacity


def render(spec: ClipSpec) -> np.ndarray:
    """The clip's frames, (T, H, W, 3) uint8 RGB."""
    background = _background(spec)
    color = np.array(spec.color, dtype=np.float32)
    noise_rng = np.random.default_rng(spec.texture_seed + 1)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for t in range(spec.num_frames):
        points, opacity = _shape_at(spec, t)
        frame = background.copy()
        rows, cols, alpha = _coverage(points, spec.height, spec.width)
        frame[rows, cols] += opacity * alpha[..., None] * (color - frame[rows, cols])
        if spec.noise:
            frame += noise_rng.normal(0, spec.noise, frame.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames


def shape_coverage(spec: ClipSpec, index: int) -> np.ndarray:
    """(H, W) float32: how much of each pixel the shape covers in frame ``index`` (the antialiased alpha ``render``
    draws it with, whatever its opacity). The moving shape is the only thing in a clip that carries its motion, so
    this is what explanations of the demo model are scored against."""
    points, _ = _shape_at(spec, index)
    rows, cols, alpha = _coverage(points, spec.height, spec.width)
    mask = np.zeros((spec.height, spec.width), dtype=np.float32)
    mask[rows, cols] = alpha
    return mask


def write_video(path: str | Path, frames: np.ndarray, *, fps: int, codec: str | None = None) -> str:
    """Encode (T, H, W, 3) uint8 RGB frames with PyAV; the container follows the suffix. Returns the codec used."""
    import av

    path = Path(path)
    codec = codec or DEFAULT_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"{path}: no default codec for {path.suffix!r}; name one of {', '.join(DEFAULT_CODECS)}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"}
        else:
            stream.bit_rate = 2_000_000  # the defaults of mpeg4 and mjpeg are blocky at these sizes
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return codec


def write_clip(
    path: str | Path,
    motion: str | None = None,
    *,
    seed: int | None = None,
    width: int | None = None,
    height: int | None = None,
    num_frames: int | None = None,
    fps: int | None = None,
    codec: str | None = None,
) -> SyntheticClip:
    """Render one clip (a random motion unless one is named) and encode it at ``path``; what the seed leaves open is
    drawn from it."""
    rng = np.random.default_rng(seed)
    motion = motion or str(rng.choice(MOTIONS))
    spec = random_spec(motion, rng, width=width, height=height, num_frames=num_frames, fps=fps)
    used = write_video(path, render(spec), fps=spec.fps, codec=codec)
    return SyntheticClip(path=Path(path), motion=motion, codec=used, spec=spec)


def generate_dataset(
    root: str | Path,
    *,
    per_class: int,
    seed: int,
    motions: tuple[str, ...] = MOTIONS,
    formats: tuple[tuple[str, str], ...] = DATASET_FORMATS,
    size: tuple[int, int] | None = None,
    progress=None,
) -> SyntheticDataset:
    """Write ``per_class`` clips of each motion into ``root/<motion>/``, cycling through ``formats`` (codec, suffix).

    Clip ``i`` of motion ``m`` depends only on (seed, m, i), so a larger ``per_class`` or fewer ``motions`` adds or
    leaves out clips without changing the others. ``size`` (width, height) fixes the frame size, drawn per clip
    otherwise. ``progress``, if given, is called with (done, total) after each clip.
    """
    unknown = [m for m in motions if m not in MOTIONS]
    if unknown:
        raise ValueError(f"unknown motions {', '.join(unknown)}; expected some of {', '.join(MOTIONS)}")
    root = Path(root)
    width, height = size or (None, None)
    clips = []
    total = per_class * len(motions)
    for motion in motions:
        folder = root / motion
        folder.mkdir(parents=True, exist_ok=True)
        m = MOTIONS.index(motion)
        for i in range(per_class):
            codec, suffix = formats[(i + m) % len(formats)]
            path = folder / f"{motion}_{i:05d}{suffix}"
            clips.append(write_clip(path, motion, seed=[seed, m, i], width=width, height=height, codec=codec))
            if progress is not None:
                progress(len(clips), total)
    return SyntheticDataset(root=root, clips=tuple(clips))
