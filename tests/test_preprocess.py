"""preprocess.py against transformers' VideoMAEImageProcessor (its PIL backend, the reference): the same config
meaning, the same pixel_values bit for bit, and the torch backend within one 1/255 step on a few pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tsf_cli.errors import CheckpointError
from tsf_cli.media.preprocess import PreprocessConfig, normalize, normalize_array, preprocess, value_table

# facebook/timesformer-base-finetuned-k400's preprocessor_config.json
K400 = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.45, 0.45, 0.45],
    "image_processor_type": "VideoMAEImageProcessor",
    "image_std": [0.225, 0.225, 0.225],
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}

CONFIGS = {
    "k400": K400,
    "class-defaults": {},
    "small-crop": {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 36}},
    "old-int-sizes": {"size": 48, "crop_size": 40, "image_mean": 0.4, "image_std": 0.2},
    "fixed-size": {"size": {"height": 30, "width": 50}, "crop_size": {"height": 24, "width": 24}},
    "shortest-and-longest": {
        "size": {"shortest_edge": 40, "longest_edge": 50},
        "crop_size": {"height": 32, "width": 32},
    },
    "bicubic-no-crop": {"size": {"shortest_edge": 36}, "resample": 3, "do_center_crop": False},
    "crop-bigger-than-image": {"size": {"shortest_edge": 20}, "crop_size": {"height": 24, "width": 64}},
    "no-rescale": {"size": {"shortest_edge": 32}, "crop_size": 32, "do_rescale": False, "image_mean": [100, 110, 120]},
    "no-normalize": {"size": {"shortest_edge": 32}, "crop_size": 32, "do_normalize": False},
    "no-resize": {"do_resize": False, "crop_size": {"height": 20, "width": 30}},
}
SHAPES = [(3, 36, 64), (2, 17, 33), (2, 64, 36), (2, 48, 48), (1, 121, 203)]


def reference(config_dict: dict, tmp_path):
    """The transformers processor, loaded from the file as users load it, on the PIL backend."""
    transformers = pytest.importorskip("transformers")
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "VideoMAEImageProcessor", **config_dict})
    )
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    assert processor.backend == "pil"
    return processor


def run_reference(processor, clips) -> torch.Tensor:
    videos = [list(clip) for clip in clips]
    return processor(videos, input_data_format="channels_last", return_tensors="pt").pixel_values


def smooth_frames(rng, shape) -> np.ndarray:
    """Frames with both sharp noise and smooth areas, like decoded video."""
    t, h, w = shape
    noise = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    ramp = ((x * 7 + y * 3) % 256).astype(np.uint8)[None, :, :, None]
    return np.where(rng.random((t, h, w, 1)) < 0.5, noise, ramp).astype(np.uint8)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_reads_as_transformers_reads_it(name, tmp_path):
    processor = reference(CONFIGS[name], tmp_path)
    config = PreprocessConfig.from_dict(CONFIGS[name])
    assert config.image_mean == pytest.approx(np.broadcast_to(processor.image_mean, 3).tolist())  # a float means 3
    assert config.image_std == pytest.approx(np.broadcast_to(processor.image_std, 3).tolist())
    assert config.resample == int(processor.resample)
    assert config.crop_size == (processor.crop_size.height, processor.crop_size.width)
    assert config.shortest_edge == processor.size.shortest_edge
    assert (config.do_resize, config.do_center_crop) == (processor.do_resize, processor.do_center_crop)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_pixel_values_equal_the_reference_bit_for_bit(name, tmp_path):
    processor = reference(CONFIGS[name], tmp_path)
    config = PreprocessConfig.from_dict(CONFIGS[name])
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        clips = [smooth_frames(rng, shape), smooth_frames(rng, shape)]
        expected = run_reference(processor, clips)
        ours = preprocess(clips, config, backend="pil")
        assert ours.dtype == torch.float32 and ours.shape == expected.shape, (shape, expected.shape)
        assert torch.equal(ours, expected), (shape, (ours - expected).abs().max())


@pytest.mark.parametrize("name", ["k400", "no-rescale", "no-normalize"])
def test_the_numpy_normalisation_equals_the_torch_one_bit_for_bit(name):
    # the onnx runtime normalises in numpy so that it never imports torch: its pixel_values must be these same floats
    config = PreprocessConfig.from_dict(CONFIGS[name])
    views = np.random.default_rng(1).integers(0, 256, (3, 4, 32, 32, 3), dtype=np.uint8)  # uint8 views
    assert all(np.unique(views[..., c]).size == 256 for c in range(3))  # every value of every channel is looked up
    table = value_table(config)
    for pixels in (views, views[:, :, ::2, 1:]):  # contiguous, and a strided view
        ours = normalize_array(pixels, table)
        expected = normalize(torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(table)).numpy()
        assert ours.dtype == np.float32 and ours.shape == expected.shape
        assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))  # the bits, not only the values


def test_the_k400_checkpoint_values_are_not_the_class_defaults():
    config = PreprocessConfig.from_dict(K400)
    assert config.image_mean == (0.45, 0.45, 0.45) and config.image_std == (0.225, 0.225, 0.225)
    assert PreprocessConfig.from_dict({}).image_mean == (0.5, 0.5, 0.5)
    out = preprocess([np.zeros((1, 300, 400, 3), np.uint8)], config)
    assert out.shape == (1, 1, 3, 224, 224)
    assert torch.allclose(out, torch.tensor(-0.45 / 0.225))


def test_three_crops_are_the_ends_and_the_centre_of_the_long_side(tmp_path):
    rng = np.random.default_rng(1)
    for shape in [(2, 36, 64), (2, 64, 36)]:
        clips = [smooth_frames(rng, shape), smooth_frames(rng, shape)]
        config = PreprocessConfig.from_dict(CONFIGS["small-crop"])
        views = preprocess(clips, config, crops=3, backend="pil")
        assert views.shape == (6, 2, 3, 32, 36)
        # The reference without its crop gives the whole resized clip; our crops must be slices of it.
        whole = run_reference(reference({**CONFIGS["small-crop"], "do_center_crop": False}, tmp_path), clips)
        height, width = whole.shape[-2:]
        if height > width:
            boxes = [(0, (width - 36) // 2), ((height - 32) // 2, (width - 36) // 2), (height - 32, (width - 36) // 2)]
        else:
            boxes = [((height - 32) // 2, 0), ((height - 32) // 2, (width - 36) // 2), ((height - 32) // 2, width - 36)]
        for clip in range(2):
            for crop, (top, left) in enumerate(boxes):
                expected = whole[clip, :, :, top : top + 32, left : left + 36]
                assert torch.equal(views[clip * 3 + crop], expected)  # clip-major: clip 0's crops, then clip 1's
        assert torch.equal(views[1::3], preprocess(clips, config, backend="pil"))  # the middle one is the centre crop


def test_torch_backend_is_within_one_step_on_few_pixels():
    # torch's uint8 antialiasing kernel rounds its 16-bit weights where Pillow keeps 22 bits. Measured on decoded
    # 360p-720p video: 0.07-0.1% of values differ, each by one 1/255 step; a random-init TimeSformer-base's logits
    # moved by <= 2.6e-4 (their spread is 0.55), probabilities by < 1.4e-6, top-1 unchanged.
    config = PreprocessConfig.from_dict(K400)
    rng = np.random.default_rng(2)
    clip = smooth_frames(rng, (2, 270, 480))
    exact = preprocess([clip], config, backend="pil")
    fast = preprocess([clip], config, backend="torch")
    step = 1 / 255 / 0.225
    difference = (exact - fast).abs()
    assert difference.max() <= step * 1.0001
    assert (difference > 0).float().mean() < 0.05


def test_round_trip_through_a_file_transformers_reads(tmp_path):
    for d in CONFIGS.values():
        config = PreprocessConfig.from_dict(d)
        assert PreprocessConfig.from_dict(config.to_dict()) == config
    config = PreprocessConfig.from_dict(CONFIGS["shortest-and-longest"])
    processor = reference(config.to_dict(), tmp_path)
    clips = [smooth_frames(np.random.default_rng(3), (2, 40, 90))]
    assert torch.equal(run_reference(processor, clips), preprocess(clips, config, backend="pil"))


@pytest.mark.parametrize(
    "bad",
    [
        {"size": {"max_height": 10, "max_width": 10}},
        {"crop_size": "224"},
        {"resample": 9},
        {"image_mean": [0.5, 0.5]},
        {"size": {"shortest_edge": 0}},
    ],
)
def test_unsupported_configs_are_checkpoint_errors(bad):
    with pytest.raises(CheckpointError, match="preprocessor config"):
        PreprocessConfig.from_dict(bad)


def test_wrong_input_is_a_value_error():
    config = PreprocessConfig.from_dict(K400)
    with pytest.raises(ValueError, match="uint8"):
        preprocess([np.zeros((2, 8, 8, 3), np.float32)], config)
    with pytest.raises(ValueError, match="crops"):
        preprocess([np.zeros((2, 8, 8, 3), np.uint8)], config, crops=2)


@pytest.mark.slow
def test_torch_backend_moves_a_timesformers_logits_negligibly(transformers, tmp_path):
    """The measurement behind the torch backend's note: a randomly initialised TimeSformer-base (no weights can be
    downloaded in tests), 8 frames of decoded 360p video, the k400 preprocessing."""
    from tests._videos import make_video
    from tsf_cli.media.decode import sample_clips

    path = make_video(tmp_path / "v.mp4", frames=40, size=(640, 360), pattern="texture", gop=10)
    frames = sample_clips(path, 8)[0].frames
    config = PreprocessConfig.from_dict(K400)
    torch.manual_seed(0)
    model = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(num_labels=400)).eval()
    with torch.inference_mode():
        exact = model(preprocess([frames], config, backend="pil")).logits
        fast = model(preprocess([frames], config, backend="torch")).logits
    assert (exact - fast).abs().max() < 1e-3 < exact.std()
    assert exact.argmax() == fast.argmax()
