"""Issue 14's criterion on the bundled demo model: the heatmaps land on the moving shape.

On generated clips of all eight motions, the heatmap's mass on the shape (its exact coverage in each sampled frame,
known from the clip's ClipSpec) over the shape's share of the frame, averaged over frames and clips, must be at least
1.5 for rollout and 1.3 for grad-rollout; 1.0 is a uniform map. The clips' seeds were fixed before any result was seen,
and the methods run with their published defaults. Controls show the bar is not met by accident: a map uniform over
the crop, the same architecture with random weights, and the maps themselves mirrored or turned upside down (the shapes
stay near the middle, so a mirrored map still meets the issue's bar; it must score clearly less than the map itself).

And whether frame importance says when: clips whose shape shows in half of the frames only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests._models import randomize_
from tsf_cli import api
from tsf_cli.demo.synthetic import MOTIONS, random_spec, render, shape_coverage, write_clip, write_video
from tsf_cli.inference.explain import ViewGeometry

PER_MOTION = 2
BARS = {"rollout": 1.5, "grad-rollout": 1.3}


@pytest.fixture(scope="module")
def demo():
    return api.load_model("demo", device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain-clips")
    return [
        write_clip(folder / f"{motion}-{i}.mp4", motion, seed=30_000 + 100 * m + i)
        for m, motion in enumerate(MOTIONS)
        for i in range(PER_MOTION)
    ]


def mass_on_shape(heatmaps: np.ndarray, frame_indices: np.ndarray, spec) -> float:
    """The heatmaps' mass on the shape over the shape's share of the frame, averaged over the frames."""
    ratios = []
    for heat, index in zip(heatmaps.astype(np.float64), frame_indices, strict=True):
        mask = shape_coverage(spec, int(index)).astype(np.float64)
        ratios.append((heat * mask).sum() / (mask.sum() / mask.size))
    return float(np.mean(ratios))


@pytest.fixture(scope="module")
def explained(demo, clips):
    """method -> the explanation of each clip."""
    return {method: [api.explain(clip.path, model=demo, method=method) for clip in clips] for method in api.METHODS}


@pytest.mark.parametrize("method", api.METHODS)
def test_the_heatmaps_land_on_the_moving_shape(explained, clips, method):
    ratios = []
    for clip, e in zip(clips, explained[method], strict=True):
        assert e.heatmaps.shape == (8, clip.spec.height, clip.spec.width)
        ratios.append(mass_on_shape(e.heatmaps, e.frame_indices, clip.spec))
    assert np.mean(ratios) >= BARS[method], np.round(ratios, 2)


@pytest.mark.parametrize("method", api.METHODS)
def test_the_maps_mirrored_or_upside_down_score_clearly_less(explained, clips, method):
    def score(turn) -> float:
        pairs = zip(clips, explained[method], strict=True)
        return float(np.mean([mass_on_shape(turn(e.heatmaps), e.frame_indices, c.spec) for c, e in pairs]))

    as_they_are = score(lambda h: h)
    assert as_they_are > 1.25 * score(lambda h: h[:, :, ::-1])  # left-right
    assert as_they_are > 1.25 * score(lambda h: h[:, ::-1])  # top-bottom


def test_a_map_uniform_over_the_crop_does_not_meet_the_bar(demo, clips, explained):
    ratios = []
    for clip, e in zip(clips, explained["rollout"], strict=True):
        geometry = ViewGeometry((clip.spec.height, clip.spec.width), e.resized, e.crop, demo.config.patch_size)
        ratios.append(mass_on_shape(geometry.heatmaps(np.ones_like(e.token_relevance)), e.frame_indices, clip.spec))
    assert 1 < np.mean(ratios) < min(BARS.values())  # above 1: the shapes stay in the central square


@pytest.mark.parametrize("method", api.METHODS)
def test_an_untrained_demo_model_does_not_meet_the_bar(clips, method):
    untrained = api.load_model("demo", device="cpu", dtype="fp32")
    randomize_(untrained.model, seed=1, scale=0.05)
    ratios = []
    for clip in clips[::2]:  # one clip per motion
        e = api.explain(clip.path, model=untrained, method=method)
        ratios.append(mass_on_shape(e.heatmaps, e.frame_indices, clip.spec))
    assert np.mean(ratios) < min(BARS.values())


@pytest.fixture(scope="module")
def half_blank_clips(tmp_path_factory):
    """8-frame clips (the demo samples all 8) whose shape shows in the first or the last 4 frames only: the other 4
    are the background alone. (clip path, which frames show the shape)."""
    folder = tmp_path_factory.mktemp("half-blank")
    made = []
    for m, motion in enumerate(MOTIONS):
        spec = random_spec(motion, np.random.default_rng([40_000, m]), num_frames=8)
        shown = np.arange(8) < 4 if m % 2 == 0 else np.arange(8) >= 4
        frames = np.where(shown[:, None, None, None], render(spec), render(dataclasses.replace(spec, opacity=(0, 0))))
        path = folder / f"{motion}.mp4"
        write_video(path, frames, fps=spec.fps, codec="libx264")
        made.append((path, shown))
    return made


@pytest.mark.xfail(
    strict=True,
    reason="frame importance does not say when: on these clips the frames that show the shape get 0.53 of it on "
    "average with either method, where 0.5 is what as many blank frames get (0.53 and 0.52 in a trial on 16 others)",
)
@pytest.mark.parametrize("method", api.METHODS)
def test_frames_that_show_the_shape_matter_more_than_blank_ones(demo, half_blank_clips, method):
    shares = []
    for path, shown in half_blank_clips:
        e = api.explain(path, model=demo, method=method)
        assert list(e.frame_indices) == list(range(8))
        shares.append(float(e.frame_importance[shown].sum()))
    assert np.mean(shares) >= 0.6, np.round(shares, 2)
