"""Training and evaluation on tiny models and videos written in the test: labelled sets, the training loop, its
checkpoints (loadable by tsf and by transformers), resuming, and the evaluation figures."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests._models import save_tiny_checkpoint
from tests._training import COLOURS, TINY_CONFIG, TINY_PREPROCESSOR
from tsf_cli.demo.synthetic import write_video
from tsf_cli.errors import CheckpointError, DatasetError, TsfError
from tsf_cli.inference.views import Augment, ViewOptions
from tsf_cli.media.preprocess import PreprocessConfig
from tsf_cli.model import TimesformerForVideoClassification
from tsf_cli.training.data import EpochSampler, LabelledVideo, VideoDataset, list_labelled_videos, split_held_out
from tsf_cli.training.evaluate import evaluate, write_confusion_csv
from tsf_cli.training.loop import STATE_FILE, train


def _linked(root: Path, source: Path, labels) -> Path:
    """A labelled set of links to ``source``'s videos of ``labels`` only."""
    for label in labels:
        (root / label).mkdir(parents=True)
        for clip in (source / label).iterdir():
            (root / label / clip.name).symlink_to(clip)
    return root


QUICK = {"batch_size": 4, "lr": 3e-3, "warmup": 0.1, "workers": 0, "device": "cpu", "min_crop_scale": 0.8}


# ------------------------------------------------------------------------------------------------- labelled sets


def test_a_folder_of_class_folders_lists_videos_only(tmp_path):
    for name in ("a/1.mp4", "a/2.MKV", "a/notes.txt", "a/.hidden.mp4", "b/deeper/3.webm", ".cache/4.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = list_labelled_videos(tmp_path)
    assert [(Path(v.path).relative_to(tmp_path).as_posix(), v.label) for v in found] == [
        ("a/1.mp4", "a"),
        ("a/2.MKV", "a"),
        ("b/deeper/3.webm", "b"),
    ]


def test_a_csv_names_paths_relative_to_itself(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\nclips/x.mp4,jump\n\n# a comment\n/abs/y.mp4, run \n")
    found = list_labelled_videos(tmp_path / "list.csv")
    assert found == (LabelledVideo(str(tmp_path / "clips/x.mp4"), "jump"), LabelledVideo("/abs/y.mp4", "run"))


@pytest.mark.parametrize(
    ("content", "message"),
    [("path,label\n", "no path,label rows"), ("x.mp4\n", "expected 'path,label'"), ("x.mp4,a,b\n", ":1:")],
)
def test_a_malformed_csv_is_a_dataset_error(tmp_path, content, message):
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        list_labelled_videos(tmp_path / "list.csv")


def test_an_empty_or_missing_set_is_a_dataset_error(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no videos"):
        list_labelled_videos(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not a folder"):
        list_labelled_videos(tmp_path / "missing")
    latin1 = tmp_path / "set.csv"
    latin1.write_bytes("vidéo.mp4,a\n".encode("latin-1"))  # said "'utf-8' codec can't decode", naming no file
    with pytest.raises(DatasetError, match=r"set\.csv: not UTF-8 text \(byte 3\)"):
        list_labelled_videos(latin1)


def test_the_held_out_split_is_per_class_and_reproducible():
    videos = [LabelledVideo(f"{label}{i}", label) for label, n in (("a", 20), ("b", 5), ("c", 1)) for i in range(n)]
    kept, held = split_held_out(videos, 0.2, seed=3)
    counts = {label: sum(v.label == label for v in held) for label in "abc"}
    assert counts == {"a": 4, "b": 1, "c": 0}  # at least one of any class that has two; never a whole class
    assert sorted(v.path for v in kept + held) == sorted(v.path for v in videos)
    assert split_held_out(videos, 0.2, seed=3) == (kept, held)
    assert split_held_out(videos, 0.2, seed=4) != (kept, held)
    assert split_held_out(videos, 0.0, seed=3) == (tuple(videos), ())


# ------------------------------------------------------------------------------------------------- data loading


def test_the_sampler_fixes_order_and_augmentation_per_epoch():
    sampler = EpochSampler(6, seed=1)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(6)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(EpochSampler(3, 1, shuffle=False, augment=False)) == [(0, None), (1, None), (2, None)]


def test_the_dataset_is_picklable_and_reports_broken_videos(dataset, base, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    config = PreprocessConfig.from_dict(TINY_PREPROCESSOR)
    paths = [str(dataset / "data" / "red" / "0.mp4"), str(broken)]
    data = pickle.loads(pickle.dumps(VideoDataset(paths, ViewOptions(frames=4), config, Augment(flip=True))))
    good, bad = data[(0, 7)], data[(1, None)]
    assert good.pixels.shape == (1, 4, 32, 32, 3) and good.pixels.dtype == torch.uint8 and good.error is None
    assert bad.pixels is None and str(broken) in bad.error.message
    again = data[(0, 7)].pixels
    assert torch.equal(good.pixels, again)  # a seed fixes the augmentation
    plain = data[(0, None)].pixels
    assert not torch.equal(good.pixels, plain)


def test_the_smallest_crop_is_the_share_of_the_picture_it_names(tmp_path):
    # A left-to-right ramp 128 wide and 32 high: a crop's width shows as the span of the ramp it keeps.
    ramp = np.broadcast_to(np.linspace(0, 255, 128)[None, None, :, None], (6, 32, 128, 3)).astype(np.uint8)
    path = tmp_path / "ramp.avi"
    write_video(path, ramp, fps=10, codec="mjpeg")
    config = PreprocessConfig.from_dict({**TINY_PREPROCESSOR, "image_mean": [0, 0, 0], "image_std": [1, 1, 1]})

    def spans(min_crop_scale: float) -> list[float]:
        augment = Augment(min_crop_scale=min_crop_scale)
        data = VideoDataset([str(path)], ViewOptions(frames=2), config, augment)
        rows = [data[(0, seed)].pixels[0, 0, 16, :, 0] for seed in range(12)]  # one row of one frame, red
        return [(float(row[-1]) - float(row[0])) / 255 for row in rows]

    full = spans(1.0)  # the whole 32-pixel short side: a quarter of the ramp, less the outer half-pixels
    assert all(0.2 < span < 0.26 for span in full), full
    assert min(spans(0.05)) < 0.12  # crops down to ~7 pixels wide


# ------------------------------------------------------------------------------------------------------ training


def test_training_lowers_the_loss_and_writes_a_model_tsf_and_transformers_load(dataset, base, tmp_path):
    events = []
    out = tmp_path / "run"
    result = train(
        dataset / "data",
        model=str(base),
        output=out,
        val_dir=dataset / "val",
        from_scratch=True,
        epochs=6,
        progress=events.append,
        **QUICK,
    )
    assert result.labels == ("blue", "green", "red") and result.train_size == 12 and result.val_size == 6
    assert result.step == 6 * 3 and [h.epoch for h in result.history] == list(range(1, 7))
    assert result.history[-1].train_loss < 0.5 * result.history[0].train_loss
    assert result.val_accuracy == 1.0
    assert [e.step for e in events if not e.epoch_done] == list(range(1, 19))
    assert sum(e.epoch_done for e in events) == 6 and events[-1].remaining == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "preprocessor_config.json"}

    ours = TimesformerForVideoClassification.from_pretrained(str(out))
    assert ours.config.id2label == {0: "blue", 1: "green", 2: "red"}
    transformers = pytest.importorskip("transformers")
    theirs = transformers.TimesformerForVideoClassification.from_pretrained(str(out)).eval()
    assert theirs.config.id2label == {0: "blue", 1: "green", 2: "red"}
    pixels = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(theirs(pixels).logits, ours(pixels).logits, atol=1e-4, rtol=1e-4)


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def progress(event):
        if event.epoch_done and event.epoch == epoch:
            raise _Stop

    return progress


def test_resuming_continues_where_the_checkpoint_left_off(dataset, base, tmp_path):
    options = {"model": str(base), "from_scratch": True, "epochs": 3, "val_split": 0.25, **QUICK}
    straight = train(dataset / "data", output=tmp_path / "straight", **options)

    with pytest.raises(_Stop):
        train(dataset / "data", output=tmp_path / "resumed", progress=_stop_after(2), **options)
    saved = torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=True)
    assert saved["step"] == 6 and saved["epoch"] == 2
    with pytest.raises(TsfError, match="already holds a training run"):
        train(dataset / "data", output=tmp_path / "resumed", **options)

    events = []
    resumed = train(dataset / "data", output=tmp_path / "resumed", resume=True, progress=events.append, **options)
    assert events[0].step == 7 and events[0].epoch == 3  # on from the saved step, not from 0
    assert resumed.step == straight.step == 9
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    state = torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=True)
    assert all(int(s["step"]) == 9 for s in state["optimizer"]["state"].values())  # Adam's moments carried over
    assert state["scheduler"]["last_epoch"] == 9
    # Optimizer moments, schedule position, random state and data order all restored: the same weights as the run
    # that never stopped.
    a = TimesformerForVideoClassification.from_pretrained(str(tmp_path / "straight")).state_dict()
    b = TimesformerForVideoClassification.from_pretrained(str(tmp_path / "resumed")).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5, msg=key)


def test_resume_needs_a_state_and_the_same_labels(dataset, base, tmp_path):
    options = {"model": str(base), "from_scratch": True, "epochs": 1, "val_split": 0.0, **QUICK}
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(dataset / "data", output=tmp_path / "none", resume=True, **options)
    train(dataset / "data", output=tmp_path / "run", **options)
    fewer = _linked(tmp_path / "fewer", dataset / "data", ("red", "blue"))
    with pytest.raises(DatasetError, match="labels differ"):
        train(fewer, output=tmp_path / "run", resume=True, **{**options, "epochs": 2})


def test_fine_tuning_keeps_the_encoder_and_replaces_a_head_for_other_labels(dataset, tmp_path):
    pretrained = tmp_path / "pretrained"
    original = save_tiny_checkpoint(pretrained, num_labels=5)
    (pretrained / "preprocessor_config.json").write_text(json.dumps(TINY_PREPROCESSOR))
    options = {**QUICK, "lr": 0.0}  # no updates: what is kept is exactly the base's
    train(dataset / "data", model=str(pretrained), output=tmp_path / "out", epochs=1, val_split=0, **options)
    tuned = TimesformerForVideoClassification.from_pretrained(str(tmp_path / "out"))
    assert tuned.classifier.weight.shape == (3, TINY_CONFIG["hidden_size"])
    for key, value in original.timesformer.state_dict().items():
        torch.testing.assert_close(tuned.timesformer.state_dict()[key], value, msg=key)


def test_broken_videos_are_skipped_and_reported(dataset, base, tmp_path):
    data = _linked(tmp_path / "data", dataset / "data", COLOURS)
    (data / "red" / "broken.mp4").write_bytes(b"\x00" * 100)
    result = train(data, model=str(base), output=tmp_path / "out", from_scratch=True, epochs=1, val_split=0, **QUICK)
    assert [Path(f.path).name for f in result.skipped] == ["broken.mp4"]
    assert result.skipped[0].error == "VideoError"


# ---------------------------------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def trained(dataset, base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_thread does for each test; this fixture runs before it
    train(dataset / "data", model=str(base), output=out, from_scratch=True, epochs=6, val_split=0, **QUICK)
    torch.set_num_threads(threads)
    return out


class _Count:
    """An observer that notes (videos finished, total) after each record."""

    def __init__(self, done: list):
        self.done, self.total = done, 0

    def loading(self, model):
        from contextlib import nullcontext

        return nullcontext()

    def started(self, total, todo):
        self.total = total

    def finished(self, record):
        self.done.append((len(self.done) + 1, self.total))


def test_evaluate_scores_the_held_out_set(dataset, trained):
    done = []
    result = evaluate(
        dataset / "val",
        model=str(trained),
        device="cpu",
        dtype="fp32",
        workers=0,
        observer=_Count(done),
    )
    assert result.count == 6 and result.top1 == 1.0 and result.top5 == 1.0
    assert result.labels == result.columns == ("blue", "green", "red")
    assert result.confusion == ((2, 0, 0), (0, 2, 0), (0, 0, 2))
    assert [(c.label, c.count, c.accuracy) for c in result.per_class] == [
        ("blue", 2, 1.0),
        ("green", 2, 1.0),
        ("red", 2, 1.0),
    ]
    assert done[-1] == (6, 6)
    file = io.StringIO()
    write_confusion_csv(result, file)
    assert file.getvalue().splitlines() == [
        "true \\ predicted,blue,green,red",
        "blue,2,0,0",
        "green,0,2,0",
        "red,0,0,2",
    ]
    assert json.loads(json.dumps(result.to_dict()))["confusion"]["counts"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_evaluate_counts_predictions_outside_the_set_and_top5(dataset, trained, tmp_path):
    # Only red and blue videos, but the model knows green too; a failing video is listed, not scored.
    data = _linked(tmp_path / "data", dataset / "val", ("red", "blue"))
    (data / "blue" / "green_really.avi").symlink_to(next((dataset / "val" / "green").iterdir()))
    (data / "red" / "broken.mp4").write_bytes(b"")
    result = evaluate(data, model=str(trained), device="cpu", dtype="fp32", workers=0)
    assert result.columns == ("blue", "red", "(other)")
    assert result.confusion == ((2, 0, 1), (0, 2, 0))
    assert result.count == 5 and result.top1 == pytest.approx(4 / 5) and result.top5 == 1.0
    assert [Path(f.path).name for f in result.failures] == ["broken.mp4"]


def test_evaluate_refuses_labels_the_model_does_not_know(dataset, trained, tmp_path):
    (tmp_path / "purple").mkdir()
    (tmp_path / "purple" / "x.mp4").symlink_to(next((dataset / "val" / "red").iterdir()))
    with pytest.raises(DatasetError, match="purple"):
        evaluate(tmp_path, model=str(trained), device="cpu", workers=0)


def test_decoding_runs_in_spawned_worker_processes(dataset, trained):
    result = evaluate(dataset / "val", model=str(trained), device="cpu", dtype="fp32", workers=1, batch_size=2)
    assert result.count == 6 and result.top1 == 1.0


def test_the_rich_display_shows_loss_accuracy_and_time_left():
    from rich.console import Console

    from tsf_cli.cli.display import TrainDisplay
    from tsf_cli.training.loop import TrainProgress

    file = io.StringIO()
    event = {"epochs": 2, "total_steps": 4, "lr": 1e-3, "elapsed": 1.0, "loss": 0.5, "accuracy": 0.75}
    with TrainDisplay(Console(file=file, width=150, force_terminal=False)) as display:
        display(TrainProgress(epoch=1, step=1, remaining=3.0, **event))
        display(TrainProgress(epoch=1, step=2, remaining=2.0, epoch_done=True, val_loss=0.4, val_accuracy=0.9, **event))
    text = file.getvalue()
    assert "epoch 1/2  step 2  loss 0.5000  acc 0.750  held-out loss 0.4000 acc 0.900" in text
    assert "left 00:00:02" in text


def test_from_scratch_temporal_heads_start_as_frame_offsets():
    from tsf_cli.model import TimesformerConfig
    from tsf_cli.training.loop import init_temporal_offsets

    torch.manual_seed(0)
    config = {**TINY_CONFIG, "num_labels": 2}
    config.pop("model_type")
    network = TimesformerForVideoClassification(TimesformerConfig(**config)).eval()
    pixels = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        # transformers' initialisation: zero time embeddings make the network blind to the order of the frames
        torch.testing.assert_close(network(pixels).logits, network(pixels.flip(1)).logits)
        init_temporal_offsets(network)
        assert not torch.allclose(network(pixels).logits, network(pixels.flip(1)).logits, atol=1e-3)
        layer = network.timesformer.encoder.layer[0]
        normed = layer.temporal_layernorm(network.timesformer.embeddings(pixels))
        _, probs = layer.temporal_attention.context(normed, need_weights=True)  # (1, (1 + N) * heads, T, T)
    patch = probs[0, 4 * 5 : 4 * 6]  # the four heads of patch 4
    assert patch[0].argmax(-1)[:3].tolist() == [1, 2, 3]  # offset +1
    assert patch[1].argmax(-1)[1:].tolist() == [0, 1, 2]  # offset -1
    assert patch[2].argmax(-1)[:2].tolist() == [2, 3]  # offset +2
    assert patch[3].argmax(-1)[2:].tolist() == [0, 1]  # offset -2
    assert patch[0].max(-1).values[:3].min() > 0.9
