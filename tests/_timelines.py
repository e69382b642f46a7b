"""Timelines and long videos whose truth is known, for tests (``from tests._timelines import ...``).

timeline_of_windows("v.mp4", [(0, 2, [("a", 0.9)]), ...], duration=10, window=2, hop=1)
scripted_timeline()                       # windows drawn around a scripted truth, with odd labels
write_motion_video(path, seed=0, fps=25, size=(128, 96), durations=[2.2, 2.5], codec="libx264") -> truth
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np

from tsf_cli.demo.synthetic import MOTIONS, random_spec, render, write_video
from tsf_cli.inference.timeline import TimelineOptions, build_timeline
from tsf_cli.inference.windows import place_windows
from tsf_cli.results import ClipFrames, ModelInfo, Prediction, Timeline

MODEL = ModelInfo("tiny", "tests/tiny", None, "fp32", "cpu")


def timeline_of_windows(
    path: str,
    windows: list[tuple[float, float, list[tuple[str, float]]]],
    *,
    duration: float,
    window: float,
    hop: float,
    min_probability: float = 0.5,
    smooth: int = 1,
    fps: float = 8,
) -> Timeline:
    """A Timeline of windows given as (start, end, [(label, probability), ...]); frames at ``fps`` in each."""
    labels = sorted({label for _, _, top in windows for label, _ in top})
    classified = []
    for start, end, top in windows:
        count = max(1, round((end - start) * fps))
        times = tuple(start + i * (end - start) / count for i in range(count))
        frames = ClipFrames(tuple(round(t * fps) for t in times), times)
        classified.append((start, end, frames, tuple(Prediction(lb, labels.index(lb), p) for lb, p in top)))
    options = TimelineOptions(window, hop, min_probability, smooth, top_k=max((len(t) for *_, t in windows), default=1))
    return build_timeline(path, duration, classified, options, 1, MODEL)


# A ground truth with a stretch nothing is sure of, and a label that markup and HTML would misread.
SCRIPT = [
    ("walking", 0, 7),
    ("running", 7, 13),
    (None, 13, 17),
    ('jumping <high> & "far"', 17, 22),
    ("walking", 22, 30),
]
OTHERS = ["sitting", "standing", "waving"]


def scripted_windows(duration=30.0, window=2.0, hop=1.0, *, script=SCRIPT, k=5, seed=0):
    """Windows placed as tsf places them; each one's truth (at its centre) well ahead of the rest, or nothing sure."""
    rng = random.Random(seed)
    labels = sorted({label for label, _, _ in script if label} | set(OTHERS))
    windows = []
    for start, end in place_windows(duration, window, hop):
        centre = (start + end) / 2
        truth = next((label for label, a, b in script if a <= centre < b), script[-1][0])
        scores = {label: rng.random() * 0.6 for label in labels}
        if truth is not None:
            scores[truth] += 3.0 + rng.random()
        total = sum(scores.values())
        top = sorted(((label, v / total) for label, v in scores.items()), key=lambda x: (-x[1], x[0]))[:k]
        windows.append((start, end, [(label, round(p, 4)) for label, p in top]))
    return windows


def scripted_timeline(path="clip.mp4", duration=30.0, window=2.0, hop=1.0, min_probability=0.4, smooth=3, **kw):
    windows = scripted_windows(duration, window, hop, **kw)
    return timeline_of_windows(
        str(path), windows, duration=duration, window=window, hop=hop, min_probability=min_probability, smooth=smooth
    )


# ---------------------------------------------------------------------------------------------------------------------
# Long videos of the demo's motions, one after another in one continuous shot


def write_motion_video(
    path, *, seed, fps: int, size: tuple[int, int], durations, codec: str
) -> list[tuple[str, float, float]]:
    """A video of one scene (shape, colours, background drawn by ``random_spec``) in which the shape makes one motion
    after another, each lasting the next of ``durations`` seconds and picking up where the last one left it (its
    place, size and opacity), as one continuous shot. Returns the truth: (motion, start, end) in seconds.

    Each motion is drawn as ``random_spec`` draws it for the demo's training clips (how far, how much bigger, how
    faint), among those that can start from where the shape is: a fade in only after a fade out, growing from a small
    shape, shrinking from a big one, a move that stays in the central square. Fades go from fully solid to invisible
    and back, the ends of the range the training clips were drawn from.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    scene = random_spec("growing", rng, width=width, height=height, num_frames=2, fps=fps)
    x, y, radius, opacity = left + side / 2, top + side / 2, side * rng.uniform(0.1, 0.15), 1.0
    frames, truth, t, previous = [], [], 0.0, None
    for seconds in durations:
        choices = _next_motions(rng, previous, x, y, radius, opacity, left, top, side)
        used = [motion for motion, _, _ in truth]
        weights = np.array([1 / (1 + used.count(choice[0])) for choice in choices])  # every motion gets its turn
        motion, end, radii, opacities = choices[int(rng.choice(len(choices), p=weights / weights.sum()))]
        count = round(seconds * fps)
        spec = dataclasses.replace(
            scene, motion=motion, num_frames=count, start=(x, y), end=end, radius=radii, opacity=opacities
        )
        frames.append(render(spec))
        truth.append((motion, t, t + count / fps))
        t += count / fps
        (x, y), radius, opacity, previous = end, radii[1], opacities[1], motion
    write_video(Path(path), np.concatenate(frames), fps=fps, codec=codec)
    return truth


def _next_motions(rng, previous, x, y, radius, opacity, left, top, side) -> list:
    """(motion, end place, (start, end radius), (start, end opacity)) of each motion that can follow."""
    choices = []
    solid = opacity > 0.5
    for motion in MOTIONS:
        if motion == previous:
            continue
        if motion.startswith("moving") and solid and 0.09 * side <= radius <= 0.18 * side:
            travel = side * rng.uniform(0.3, 0.55)
            dx, dy = {"left": (-travel, 0), "right": (travel, 0), "up": (0, -travel), "down": (0, travel)}[
                motion.split("_")[1]
            ]
            if _inside(x + dx, y + dy, radius, left, top, side):
                choices.append((motion, (x + dx, y + dy), (radius, radius), (opacity, opacity)))
        elif motion == "growing" and solid and radius <= 0.12 * side:
            big = min(radius * rng.uniform(2, 3), 0.32 * side)
            if _inside(x, y, big, left, top, side):
                choices.append((motion, (x, y), (radius, big), (opacity, opacity)))
        elif motion == "shrinking" and solid and radius >= 0.16 * side:
            small = float(np.clip(radius / rng.uniform(2, 3), 0.08 * side, 0.12 * side))
            choices.append((motion, (x, y), (radius, small), (opacity, opacity)))
        elif motion == "fading_out" and solid and 0.12 * side <= radius <= 0.25 * side:
            choices.append((motion, (x, y), (radius, radius), (opacity, 0.0)))
        elif motion == "fading_in" and not solid and 0.12 * side <= radius <= 0.25 * side:
            choices.append((motion, (x, y), (radius, radius), (opacity, 1.0)))
    return choices


def _inside(x, y, radius, left, top, side) -> bool:
    return left + radius + 1 <= x <= left + side - radius - 1 and top + radius + 1 <= y <= top + side - radius - 1
