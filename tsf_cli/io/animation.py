"""The clip with its heatmaps over it, as it plays: ``.gif`` through Pillow, ``.mp4`` (H.264) through PyAV.

Each sampled frame stays on screen until the next one's time stamp, so the clip plays at the video's own pace, with
the label, the time and the frame's share of the relevance drawn on it.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw

from ..results import Explanation
from .heatmap_overlay import font, overlaid_frames

MIN_SIDE = 256  # small frames are scaled up to this shortest side, so that the words on them can be read
MP4_FPS = 25
BAR = (52, 101, 164)


def write_gif(explanation: Explanation, file: BinaryIO) -> None:
    pictures = animation_frames(explanation)
    milliseconds = [max(20, round(1000 * s)) for s in durations(explanation.timestamps)]
    pictures[0].save(file, format="GIF", save_all=True, append_images=pictures[1:], duration=milliseconds, loop=0)


def write_mp4(explanation: Explanation, file: BinaryIO) -> None:
    """H.264 at a constant MP4_FPS, each sampled frame repeated for as long as it lasts in the video."""
    import av

    pictures = animation_frames(explanation)
    repeats = np.maximum(1, np.round(durations(explanation.timestamps) * MP4_FPS)).astype(int)
    with av.open(file, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=MP4_FPS)
        stream.width, stream.height = pictures[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for picture, count in zip(pictures, repeats, strict=True):
            frame = av.VideoFrame.from_image(picture)
            for _ in range(count):
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


def animation_frames(explanation: Explanation) -> list[Image.Image]:
    """The overlaid frames at a shortest side of at least MIN_SIDE (even sides, as 4:2:0 video needs), captioned."""
    height, width = explanation.heatmaps.shape[1:]
    scale = max(1.0, MIN_SIDE / min(height, width))
    size = (2 * round(width * scale / 2), 2 * round(height * scale / 2))
    most = float(explanation.frame_importance.max()) or 1.0
    text = font(max(11, size[1] // 22))
    pictures = []
    for k, picture in enumerate(overlaid_frames(explanation)):
        picture = picture.resize(size, Image.BILINEAR)
        draw = ImageDraw.Draw(picture)
        share = float(explanation.frame_importance[k])
        caption = f"{explanation.label}  {explanation.timestamps[k]:.2f}s  {share:.0%}"
        draw.text((6, 4), caption, fill=(255, 255, 255), font=text, stroke_width=2, stroke_fill=(0, 0, 0))
        draw.rectangle((4, size[1] - 12, 4 + max(1, round((size[0] - 8) * share / most)), size[1] - 5), fill=BAR)
        pictures.append(picture)
    return pictures


def durations(timestamps: np.ndarray) -> np.ndarray:
    """Seconds each sampled frame stays on screen: until the next one; the last (and any step that does not move
    forward) as long as the median step, or a tenth of a second for a single frame."""
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    typical = float(np.median(steps)) if steps.size and np.median(steps) > 0 else 0.1
    steps = np.append(steps, typical)
    return np.where(steps > 0, steps, typical)
