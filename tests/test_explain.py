"""``tsf explain`` and ``tsf_cli.explain``: the heatmaps' geometry, the view explained (the one ``tsf classify`` uses),
the files (.npz, .png, .gif, .mp4), and the command with good and bad inputs."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from tests._cli import invoke
from tests._models import save_tiny_classifier
from tests._videos import make_video
from tsf_cli import api
from tsf_cli.errors import OutputError, UsageError
from tsf_cli.inference.explain import ViewGeometry, frame_importance
from tsf_cli.inference.views import load_views
from tsf_cli.io.animation import durations
from tsf_cli.io.explanations import EXPLANATION_WRITERS, write_explanation
from tsf_cli.media.preprocess import PreprocessConfig

SUFFIXES = (".npz", ".png", ".gif", ".mp4")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return api.load_model(str(checkpoint), device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 90x60 frames, resized to 48x32 and cropped to the model's 32x32: a crop that cuts the sides
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", frames=30, size=(90, 60), fps=15)


# ------------------------------------------------------------------------------------------------- geometry


def geometry_of_a_wide_frame() -> ViewGeometry:
    config = PreprocessConfig(shortest_edge=64, crop_size=(64, 64))
    geometry = ViewGeometry.of((90, 160), config, crops=1, patch_size=16)
    assert geometry.resized == (64, 113) and geometry.crop == (0, 24, 64, 64)  # 113 = int(64 * 160 / 90)
    return geometry


def test_heatmaps_cover_the_crop_and_sum_to_one():
    geometry = geometry_of_a_wide_frame()
    heat = geometry.heatmaps(np.random.default_rng(0).random((2, 4, 4)))
    assert heat.shape == (2, 90, 160) and heat.dtype == np.float32
    np.testing.assert_allclose(heat.sum(axis=(1, 2)), 1, atol=1e-6)  # in float32, as a reader sums them
    columns_in_crop = (np.arange(160) + 0.5) * 113 / 160 - 24  # each pixel column's centre in the crop
    outside = (columns_in_crop < 0) | (columns_in_crop >= 64)
    assert (~outside).sum() == 91  # the crop's 64 of the resized 113 columns are 91 of the original 160
    assert heat[:, :, outside].max() == 0 and heat[:, :, ~outside].min() > 0


def test_a_patch_s_heat_is_centred_where_the_patch_was_cut_from():
    geometry = geometry_of_a_wide_frame()
    one = np.zeros((1, 4, 4))
    one[0, 1, 2] = 1  # the patch whose centre is at (24, 40) in the crop: (24, 64) in the resized frame
    heat = geometry.heatmaps(one)[0].astype(np.float64)
    ys, xs = np.mgrid[0:90, 0:160] + 0.5  # pixel centres in the original frame
    centre = ((heat * ys).sum(), (heat * xs).sum())
    np.testing.assert_allclose(centre, (24 * 90 / 64, 64 * 160 / 113), atol=0.3)


def test_a_frame_without_relevance_is_uniform_over_the_crop():
    geometry = geometry_of_a_wide_frame()
    heat = geometry.heatmaps(np.zeros((1, 4, 4)))[0]
    inside = heat[heat > 0]
    assert inside.size == 90 * 91 and np.ptp(inside) < 1e-3 * inside.max()


def test_frame_importance_is_each_frame_s_share():
    np.testing.assert_allclose(frame_importance(np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 4.0]])), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(frame_importance(np.zeros((4, 2))), [0.25] * 4)


# ------------------------------------------------------------------------------------------------- the API


@pytest.mark.parametrize("method", api.METHODS)
def test_explain_returns_arrays_over_the_frames_as_decoded(predictor, video, method):
    e = api.explain(video, model=predictor, method=method, frames=3, top_k=3)
    assert e.method == method and e.label == e.predictions[0].label and e.label_index == e.predictions[0].index
    assert e.heatmaps.shape == (3, 60, 90) and e.heatmaps.dtype == np.float32
    np.testing.assert_allclose(e.heatmaps.sum(axis=(1, 2)), 1, atol=1e-6)
    assert e.frame_importance.shape == (3,) and e.frame_importance.sum() == pytest.approx(1, abs=1e-6)
    assert e.frames.shape == (3, 60, 90, 3) and e.token_relevance.shape == (3, 4, 4)
    assert e.resized == (32, 48) and e.crop == (0, 8, 32, 32)
    columns_in_crop = (np.arange(90) + 0.5) * 48 / 90 - 8
    assert e.heatmaps[:, :, (columns_in_crop < 0) | (columns_in_crop >= 32)].max() == 0
    assert len(e.predictions) == 3 and e.view == "the crop of the clip, the one view tsf classify uses"


def test_explain_takes_the_frames_and_the_view_tsf_classify_takes(predictor, video):
    """3 clips x 3 crops: the first clip's frames and its centre crop, with the probabilities that view has in the
    classify path."""
    options = {"clips": 3, "crops": 3, "frames": 4}
    e = api.explain(video, model=predictor, top_k=5, **options)
    (result,) = api.classify([video], model=predictor, **options)
    assert tuple(e.frame_indices) == result.clips[0].indices
    assert tuple(e.timestamps) == pytest.approx(result.clips[0].timestamps)
    views = load_views(str(video), predictor.view_options(**options), predictor.preprocess_config)
    centre_of_first_clip = predictor.probabilities(views.pixels[1:2])[0]
    for p in e.predictions:
        assert p.probability == pytest.approx(float(centre_of_first_clip[p.index]), abs=1e-6)
    assert e.view == "the centre crop of 3 of the first of 3 clips: one of the 9 views tsf classify averages"


def test_the_label_asked_for_is_explained(predictor, video):
    e = api.explain(video, model=predictor, method="grad-rollout", label="LABEL_3", top_k=1)
    assert e.label == "LABEL_3" and e.label_index == 3
    with pytest.raises(UsageError, match="has no label 'LABEL_9'.*LABEL_0, LABEL_1, LABEL_2, LABEL_3, LABEL_4"):
        api.explain(video, model=predictor, label="LABEL_9")


def test_heatmaps_follow_the_displayed_orientation(predictor, tmp_path):
    rotated = make_video(tmp_path / "rotated.mp4", frames=12, size=(64, 48), rotation=90)
    e = api.explain(rotated, model=predictor, frames=2)
    assert e.frames.shape[1:3] == (64, 48) and e.heatmaps.shape == (2, 64, 48)


def test_options_and_outputs_are_checked_before_any_work(video, tmp_path):
    missing_model = str(tmp_path / "no-model")  # loading it would fail with ModelNotFoundError
    with pytest.raises(OutputError, match="cannot write an explanation as '.jpg' files"):
        api.explain(video, model=missing_model, output=[tmp_path / "a.png", tmp_path / "b.jpg"])
    with pytest.raises(OutputError, match="no such folder"):
        api.explain(video, model=missing_model, output=[tmp_path / "missing" / "a.png"])
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        api.explain(video, model=missing_model, output=[tmp_path / "folder.png"])
    with pytest.raises(UsageError, match="needs the torch runtime"):
        api.explain(video, model=missing_model, runtime="onnx")
    with pytest.raises(UsageError, match="unknown method 'saliency'"):
        api.explain(video, model=missing_model, method="saliency")
    with pytest.raises(UsageError, match="top-k must be at least 1"):
        api.explain(video, model=missing_model, top_k=0)


# -------------------------------------------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def explanation(predictor, video):
    return api.explain(video, model=predictor, method="grad-rollout", frames=4)


def written(explanation, suffix: str) -> bytes:
    buffer = io.BytesIO()
    EXPLANATION_WRITERS[suffix]().write(buffer, explanation)
    return buffer.getvalue()


def test_the_npz_holds_the_arrays_and_the_words(explanation):
    with np.load(io.BytesIO(written(explanation, ".npz")), allow_pickle=False) as npz:
        assert npz["heatmaps"].shape == (4, 60, 90) and npz["heatmaps"].dtype == np.float32
        np.testing.assert_allclose(npz["heatmaps"].sum(axis=(1, 2)), 1, atol=1e-6)
        assert npz["frame_importance"].dtype == np.float32
        assert npz["frame_importance"].sum() == pytest.approx(1, abs=1e-6)
        np.testing.assert_array_equal(npz["frame_indices"], explanation.frame_indices)
        np.testing.assert_array_equal(npz["timestamps"], explanation.timestamps)
        assert str(npz["label"]) == explanation.label and str(npz["method"]) == "grad-rollout"
        assert list(npz["crop"]) == [0, 8, 32, 32] and str(npz["view"]) == explanation.view


def test_the_contact_sheet_is_a_png_with_the_heat_drawn(explanation):
    sheet = Image.open(io.BytesIO(written(explanation, ".png")))
    assert sheet.format == "PNG" and sheet.mode == "RGB"
    pixels = np.asarray(sheet)
    # the frames are grey test bars; the Turbo colours of the heat are not
    saturation = pixels.max(axis=2).astype(int) - pixels.min(axis=2)
    assert (saturation > 60).sum() > 1000


def test_the_gif_has_one_frame_per_sampled_frame(explanation):
    gif = Image.open(io.BytesIO(written(explanation, ".gif")))
    assert gif.format == "GIF" and gif.n_frames == 4 and min(gif.size) >= 256


def test_the_mp4_decodes_and_lasts_as_long_as_the_clip(explanation):
    with av.open(io.BytesIO(written(explanation, ".mp4"))) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert stream.codec_context.name == "h264" and frames[0].shape[:2] == (256, 384)
    expected = np.maximum(1, np.round(durations(explanation.timestamps) * 25)).sum()
    assert len(frames) == expected


def test_durations_hold_each_frame_until_the_next():
    np.testing.assert_allclose(durations(np.array([0.0, 0.5, 1.5, 2.0])), [0.5, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(durations(np.array([0.0])), [0.1])


def test_a_failed_write_leaves_the_old_file(explanation, tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    monkeypatch.setattr("tsf_cli.io.explanations.contact_sheet", lambda e: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_explanation(target, explanation)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.png"]


# ---------------------------------------------------------------------------------------------------- the command


def test_the_command_writes_every_output_and_says_what_it_explained(checkpoint, video, tmp_path):
    outputs = [tmp_path / f"out{suffix}" for suffix in SUFFIXES]
    args = ["explain", video, "-m", checkpoint, "--dtype", "fp32", "--crops", "3", "--method", "grad-rollout"]
    result = invoke(*args, *(a for o in outputs for a in ("-o", o)))
    assert result.exit_code == 0, result.output
    assert all(o.stat().st_size > 0 for o in outputs)
    assert "by grad-rollout, on the centre crop of 3 of the clip" in result.stdout
    assert "most relevant: frame #" in result.stdout
    assert f"wrote {outputs[0]}" in result.stderr and "wrote" not in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--label", "cat"], 2, "has no label 'cat'; its labels are LABEL_0, LABEL_1"),
        (["--runtime", "onnx"], 2, "explain needs the torch runtime"),
        (["--method", "saliency"], 2, "Invalid value for '--method'"),
        (["-o", "{tmp}/x.jpg"], 6, "cannot write an explanation as '.jpg' files; use one of .npz, .png, .gif, .mp4"),
        (["-o", "{tmp}/missing/x.png"], 6, "no such folder"),
    ],
)
def test_bad_inputs_are_one_line_and_an_exit_code(checkpoint, video, tmp_path, args, code, message):
    args = [a.format(tmp=tmp_path) for a in args]
    output = [] if "-o" in args else ["-o", tmp_path / "x.png"]
    result = invoke("explain", video, "-m", checkpoint, *output, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_a_missing_video_is_exit_3_before_the_model_loads(tmp_path):
    result = invoke("explain", tmp_path / "nope.mp4", "-m", tmp_path / "no-model", "-o", tmp_path / "x.png")
    assert result.exit_code == 3 and "nope.mp4: no such file" in result.stderr
