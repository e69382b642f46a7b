"""The synthetic motion clips: reproducible, the motion each label names, and opposite motions indistinguishable frame
by frame."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest

from tsf_cli.demo import synthetic
from tsf_cli.demo.__main__ import main
from tsf_cli.demo.synthetic import MOTIONS, generate_dataset, random_spec, render, write_clip


def _still(motion: str, seed: int, **kwargs) -> synthetic.ClipSpec:
    """A clip on a plain background without noise, so the shape is exactly the pixels that differ from it."""
    spec = random_spec(motion, np.random.default_rng(seed), **kwargs)
    return replace(spec, background="solid", noise=0.0)


def _masks(spec: synthetic.ClipSpec) -> np.ndarray:
    frames = render(spec).astype(int)
    background = np.array(spec.background_colors[0])
    return np.abs(frames - background).sum(-1) > 60  # (T, H, W): pixels mostly covered by the shape


def _centroids(masks: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0 : masks.shape[1], 0 : masks.shape[2]]
    area = masks.sum((1, 2))
    return np.stack([(masks * xs).sum((1, 2)) / area, (masks * ys).sum((1, 2)) / area], axis=1)  # (T, 2) x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_motion_moves_the_way_its_label_says(seed):
    for motion in MOTIONS:
        spec = _still(motion, seed, width=120, height=96, num_frames=16)
        if motion.startswith("fading"):  # the shape stays put while its contrast with the background rises or falls
            assert spec.start == spec.end and spec.radius[0] == spec.radius[1]
            first, last = _contrast(spec)[[0, -1]]
            assert last > 4 * first + 20 if motion == "fading_in" else first > 4 * last + 20
            continue
        masks = _masks(spec)
        centre, area = _centroids(masks), masks.sum((1, 2))
        dx, dy = centre[-1] - centre[0]
        if motion == "moving_left":
            assert dx < -10 and abs(dy) < 2
        elif motion == "moving_right":
            assert dx > 10 and abs(dy) < 2
        elif motion == "moving_up":
            assert dy < -10 and abs(dx) < 2
        elif motion == "moving_down":
            assert dy > 10 and abs(dx) < 2
        elif motion == "growing":
            assert area[-1] > 2.5 * area[0]
        else:
            assert motion == "shrinking" and area[0] > 2.5 * area[-1]


def _contrast(spec: synthetic.ClipSpec) -> np.ndarray:
    """(T,) the largest difference from the background in each frame."""
    frames = render(spec).astype(int)
    return np.abs(frames - np.array(spec.background_colors[0])).sum(-1).max(axis=(1, 2))


@pytest.mark.parametrize(
    ("forward", "backward"),
    [
        ("moving_left", "moving_right"),
        ("moving_up", "moving_down"),
        ("growing", "shrinking"),
        ("fading_in", "fading_out"),
    ],
)
def test_opposite_motions_are_the_same_frames_in_reverse(forward, backward):
    # Drawn from the same seed, the two clips differ only in the order of their frames: no single frame (nor any
    # order-blind pooling of frames) can tell the labels apart.
    for seed in range(3):
        a = render(_still(forward, seed, num_frames=12))
        b = render(_still(backward, seed, num_frames=12))
        assert np.abs(a.astype(int) - b[::-1]).max() <= 1  # rounding of the interpolated geometry


def test_the_motion_stays_inside_the_centre_square():
    for seed in range(20):
        for motion in MOTIONS:
            spec = random_spec(motion, np.random.default_rng(seed))
            side = min(spec.width, spec.height)
            left, top = (spec.width - side) / 2, (spec.height - side) / 2
            for (x, y), r in zip((spec.start, spec.end), spec.radius, strict=True):
                assert left + r <= x <= left + side - r
                assert top + r <= y <= top + side - r


def test_the_shape_is_lighter_than_its_background():
    for seed in range(50):
        spec = random_spec("growing", np.random.default_rng(seed))
        luma = [synthetic._luma(np.array(c)) for c in (spec.color, *spec.background_colors)]
        assert luma[0] >= max(luma[1:]) + 80


def test_a_seed_fixes_the_clip():
    a = render(random_spec("growing", np.random.default_rng([7, 1])))
    b = render(random_spec("growing", np.random.default_rng([7, 1])))
    c = render(random_spec("growing", np.random.default_rng([7, 2])))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mp4", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mjpeg"), (".mkv", "mpeg4")]
)
def test_write_clip_encodes_a_video_pyav_reads_back(tmp_path, suffix, codec):
    clip = write_clip(tmp_path / f"clip{suffix}", "moving_up", seed=3, width=96, height=80, num_frames=20, codec=codec)
    assert clip.codec == codec and clip.motion == "moving_up"
    with av.open(str(clip.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (80, 96, 3)
    original = render(clip.spec)
    assert np.abs(frames[10].astype(int) - original[10]).mean() < 6  # lossy, but the picture survives


def test_write_clip_picks_a_motion_and_the_codec_from_the_suffix(tmp_path):
    clip = write_clip(tmp_path / "x.avi", seed=11, num_frames=12)
    assert clip.motion in MOTIONS and clip.codec == "mjpeg"
    with pytest.raises(ValueError, match="no default codec"):
        write_clip(tmp_path / "x.xyz", seed=1)


def test_generate_dataset_writes_one_folder_per_motion_reproducibly(tmp_path):
    first = generate_dataset(tmp_path / "a", per_class=2, seed=4, motions=("growing", "moving_left"))
    again = generate_dataset(tmp_path / "b", per_class=2, seed=4, motions=("growing", "moving_left"))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["growing", "moving_left"]
    assert len(first.clips) == 4 and all(c.path.exists() for c in first.clips)
    assert [c.spec for c in first.clips] == [c.spec for c in again.clips]
    assert {c.path.suffix for c in first.clips} == {".mp4", ".avi"}


def test_command_line_generates_a_dataset(tmp_path):
    main([str(tmp_path / "data"), "--per-class", "1", "--seed", "2", "--formats", "mjpeg.avi,mpeg4.mkv"])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(MOTIONS)
    assert {p.suffix for p in (tmp_path / "data").rglob("*.*")} == {".avi", ".mkv"}
    with pytest.raises(SystemExit):
        main([])


def test_command_line_fixes_the_frame_size_on_request(tmp_path, capsys):
    main([str(tmp_path / "d"), "--per-class", "1", "--size", "64x48", "--formats", "mjpeg.avi"])
    clips = sorted((tmp_path / "d").rglob("*.avi"))
    assert len(clips) == len(MOTIONS)
    with av.open(str(clips[0])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 48)
    for bad in ("65x48", "64", "8x8", "axb"):
        with pytest.raises(SystemExit):
            main([str(tmp_path / "e"), "--size", bad])
        assert "--size" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_a_subset_of_motions_gives_the_same_clips_as_the_full_set(tmp_path):
    full = generate_dataset(tmp_path / "full", per_class=2, seed=5)
    part = generate_dataset(tmp_path / "part", per_class=2, seed=5, motions=("shrinking",))
    same = [c for c in full.clips if c.motion == "shrinking"]
    assert [(c.path.name, c.codec, c.spec) for c in part.clips] == [(c.path.name, c.codec, c.spec) for c in same]


def test_default_frames_are_near_square_and_named_sizes_are_kept():
    for seed in range(50):
        spec = random_spec("moving_left", np.random.default_rng(seed))
        assert 80 <= spec.width <= 176 and 80 <= spec.height <= 176
        assert 0.75 <= spec.height / spec.width <= 1.3
    spec = random_spec("fading_in", np.random.default_rng(0), width=256, height=144)
    assert (spec.width, spec.height) == (256, 144)


def test_generate_dataset_refuses_an_unknown_motion_before_writing(tmp_path):
    with pytest.raises(ValueError, match="unknown motions spinning"):
        generate_dataset(tmp_path / "d", per_class=1, seed=0, motions=("growing", "spinning"))
    assert not (tmp_path / "d").exists()
