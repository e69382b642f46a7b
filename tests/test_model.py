"""The network against transformers' TimeSformer (the reference), number for number, plus what it does beyond it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import tsf_cli.model as tsf_model
from tests._models import (
    TINY,
    pixel_values,
    randomize_,
    tiny_base_model,
    tiny_config,
    tiny_model,
)
from tsf_cli.model import (
    ATTENTION_TYPES,
    BaseModelOutput,
    TimesformerConfig,
    TimesformerForVideoClassification,
    TimesformerModel,
    VideoClassifierOutput,
)
from tsf_cli.model.timesformer import Block

ATOL, RTOL = 1e-5, 1e-4


def assert_close(actual, expected, what=""):
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL, msg=lambda m: f"{what}: {m}")


def reference(cls_name: str, state_dict=None, **overrides):
    """transformers' model with the same config (and weights, when given) as ours."""
    transformers = pytest.importorskip("transformers")
    config = transformers.TimesformerConfig(**{**TINY, **overrides})
    model = getattr(transformers, cls_name)(config).eval()
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def assert_same_outputs(ours, theirs, what=""):
    for i, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states, strict=True)):
        assert_close(a, b, f"{what} hidden state {i}")
    for i, (a, b) in enumerate(zip(ours.attentions, theirs.attentions, strict=True)):
        assert_close(a, b, f"{what} attention map {i}")


# ------------------------------------------------------------------------------------------------------------ config


def test_config_defaults_are_timesformer_base():
    config = TimesformerConfig()
    assert (config.image_size, config.patch_size, config.num_channels, config.num_frames) == (224, 16, 3, 8)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.hidden_act, config.layer_norm_eps) == (3072, "gelu", 1e-6)
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.drop_path_rate) == (0, 0, 0)
    assert (config.initializer_range, config.qkv_bias, config.attention_type) == (0.02, True, "divided_space_time")
    assert config.num_labels == 2 and config.id2label == {0: "LABEL_0", 1: "LABEL_1"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hidden_size", 30, "hidden_size (30) must be divisible by num_attention_heads (4)"),
        ("attention_type", "diagonal", "attention_type must be one of"),
        ("hidden_act", "tanhh", "hidden_act must be one of"),
        ("image_size", 0, "image_size must be a positive integer, got 0"),
        ("patch_size", -8, "patch_size must be a positive integer, got -8"),
        ("num_frames", 0, "num_frames must be a positive integer"),
        ("num_hidden_layers", 2.5, "num_hidden_layers must be a positive integer"),
        ("intermediate_size", 0, "intermediate_size must be a positive integer"),
        ("patch_size", 64, "patch_size (64) must not exceed image_size (32)"),
        ("hidden_dropout_prob", 1.5, "hidden_dropout_prob must be a probability"),
        ("drop_path_rate", -0.1, "drop_path_rate must be a probability"),
        ("layer_norm_eps", 0, "layer_norm_eps must be a positive number"),
        ("qkv_bias", "yes", "qkv_bias must be true or false"),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        tiny_config(**{field: value})


def test_config_keeps_unknown_keys_and_label_maps_through_dicts():
    data = tiny_config(id2label={0: "run", 1: "walk"}).to_dict()
    data["some_future_key"] = {"nested": [1, 2]}
    config = TimesformerConfig.from_dict(json.loads(json.dumps(data)))
    assert config.id2label == {0: "run", 1: "walk"} and config.label2id == {"run": 0, "walk": 1}
    assert config.extra == {"some_future_key": {"nested": [1, 2]}}
    assert config.to_dict() == data
    assert config.to_dict()["id2label"] == {"0": "run", "1": "walk"}


def test_config_num_labels_builds_default_names():
    config = tiny_config(num_labels=3)
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    config.num_labels = 1
    assert config.label2id == {"LABEL_0": 0}


# -------------------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
@pytest.mark.parametrize("cls_name", ["TimesformerModel", "TimesformerForVideoClassification"])
def test_state_dict_keys_and_shapes_are_transformers(cls_name, attention_type):
    ours = getattr(tsf_model, cls_name)(tiny_config(attention_type=attention_type))
    theirs = reference(cls_name, attention_type=attention_type)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]


PARITY_CASES = [
    *[("divided_space_time", act, True) for act in ("gelu", "gelu_new", "relu", "silu", "quick_gelu")],
    *[("joint_space_time", act, True) for act in ("gelu", "gelu_new", "relu", "silu", "quick_gelu")],
    ("divided_space_time", "gelu", False),
    ("joint_space_time", "silu", False),
    ("space_only", "gelu", True),
    ("space_only", "quick_gelu", False),
]


@pytest.mark.parametrize(("attention_type", "hidden_act", "qkv_bias"), PARITY_CASES)
def test_outputs_match_transformers(attention_type, hidden_act, qkv_bias):
    # 36 pixels is not a multiple of the 8-pixel patches: the convolution floors it to 4x4 patches in both models
    config = {"attention_type": attention_type, "hidden_act": hidden_act, "qkv_bias": qkv_bias, "image_size": 36}
    ours = tiny_model(**config)
    theirs = reference("TimesformerForVideoClassification", ours.state_dict(), **config)
    video, labels = pixel_values(batch=3, height=36), torch.tensor([0, 3, 4])
    # transformers' space_only gives a row of logits per frame, which 3 labels do not fit
    reference_labels = labels if attention_type != "space_only" else None
    with torch.no_grad():
        expected = theirs(video, labels=reference_labels, output_hidden_states=True, output_attentions=True)
        actual = ours(video, labels=labels, output_hidden_states=True, output_attentions=True)
        fast = ours(video, labels=labels)  # the fused-attention path, no maps asked for
    assert_same_outputs(actual, expected, attention_type)
    if attention_type != "space_only":  # see test_space_only_averages_frames_like_the_original
        assert_close(actual.logits, expected.logits, "logits")
        assert_close(fast.logits, expected.logits, "logits without maps")
        assert_close(actual.loss, expected.loss, "loss")
        assert_close(fast.loss, expected.loss, "loss without maps")


def test_selu_matches_transformers_with_selu_patched_in():
    ours = tiny_model(hidden_act="selu")
    theirs = reference("TimesformerForVideoClassification", ours.state_dict(), hidden_act="relu")
    for layer in theirs.timesformer.encoder.layer:  # transformers has no "selu" name, but takes any module
        layer.intermediate.intermediate_act_fn = nn.SELU()
    video = pixel_values()
    with torch.no_grad():
        assert_close(ours(video).logits, theirs(video).logits, "selu logits")


def test_regression_loss_matches_transformers():
    ours = tiny_model(num_labels=1)
    theirs = reference("TimesformerForVideoClassification", ours.state_dict(), num_labels=1)
    video, labels = pixel_values(), torch.tensor([0.5, -1.0])
    with torch.no_grad():
        assert_close(ours(video, labels=labels).loss, theirs(video, labels=labels).loss, "mse loss")


def test_base_model_matches_transformers_and_has_the_documented_shape():
    ours = tiny_base_model()
    theirs = reference("TimesformerModel", ours.state_dict())
    video = pixel_values()
    with torch.no_grad():
        expected, actual = theirs(video), ours(video)
    assert actual.last_hidden_state.shape == (2, 1 + 16 * 4, 32)
    assert_close(actual.last_hidden_state, expected.last_hidden_state, "last hidden state")


def test_space_only_averages_frames_like_the_original():
    """Intended deviation: transformers classifies each frame of a space_only model (batch*frames rows of logits).
    The original averages every token over the frames before the final norm and classifies once per video."""
    ours = tiny_model(attention_type="space_only")
    theirs = reference("TimesformerForVideoClassification", ours.state_dict(), attention_type="space_only")
    video = pixel_values(batch=3)
    with torch.no_grad():
        expected = theirs(video, output_hidden_states=True)
        actual = ours(video)
    assert expected.logits.shape == (3 * 4, 5)  # transformers: one row per frame
    assert actual.logits.shape == (3, 5)
    # ours = the reference's pre-norm tokens averaged over the frames, then normed, then classified
    averaged = expected.hidden_states[-1].view(3, 4, 1 + 16, 32).mean(dim=1)
    with torch.no_grad():
        expected_logits = theirs.classifier(theirs.timesformer.layernorm(averaged)[:, 0])
    assert_close(actual.logits, expected_logits, "space_only logits")


# ---------------------------------------------------------------------------------------- inputs beyond the config


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
@pytest.mark.parametrize("frames", [2, 7])
def test_other_frame_counts_resize_time_embeddings_like_the_reference(attention_type, frames):
    ours = tiny_model(attention_type=attention_type)
    # transformers interpolates the time embeddings as we do but reshapes in its layers with config.num_frames:
    # it is right when the config says the input's frame count and the embeddings keep the trained one
    theirs = reference("TimesformerForVideoClassification", attention_type=attention_type, num_frames=frames)
    state = ours.state_dict()
    theirs.timesformer.embeddings.time_embeddings = nn.Parameter(state.pop("timesformer.embeddings.time_embeddings"))
    theirs.load_state_dict(state, strict=False)
    video = pixel_values(frames=frames)
    with torch.no_grad():
        assert_same_outputs(
            ours(video, output_hidden_states=True, output_attentions=True),
            theirs(video, output_hidden_states=True, output_attentions=True),
            f"{frames} frames",
        )


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
@pytest.mark.parametrize(("height", "width"), [(48, 48), (16, 16), (24, 40)])
def test_other_resolutions_resize_position_embeddings_like_the_reference(attention_type, height, width):
    ours = tiny_model(attention_type=attention_type)
    # the reference's layers take the patch-grid width from config.image_size: right when it is the input's width
    theirs = reference("TimesformerForVideoClassification", attention_type=attention_type, image_size=width)
    state = ours.state_dict()
    position = state.pop("timesformer.embeddings.position_embeddings")
    theirs.timesformer.embeddings.position_embeddings = nn.Parameter(position)
    theirs.load_state_dict(state, strict=False)
    video = pixel_values(height=height, width=width)
    with torch.no_grad():
        expected = theirs(video, output_hidden_states=True, output_attentions=True)
        actual = ours(video, output_hidden_states=True, output_attentions=True)
    patches = (height // 8) * (width // 8) * (4 if attention_type != "space_only" else 1)
    assert actual.hidden_states[0].shape[-2] == 1 + patches
    assert_same_outputs(actual, expected, f"{height}x{width}")


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_one_patch_wide_frames_work(attention_type):
    # the reference derives the grid's rows as tokens // columns, counting the class token as a row when the frame
    # is one patch wide, and crashes; we take both from the input
    model = tiny_base_model(attention_type=attention_type)
    with torch.no_grad():
        out = model(pixel_values(height=40, width=8), output_hidden_states=True)
    assert out.hidden_states[0].shape[-2] == 1 + 5 * (4 if attention_type != "space_only" else 1)
    assert out.last_hidden_state.isfinite().all()


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            (2, 4, 3, 30, 32),
            "frame height 30 does not fit the model: use 32 or a positive multiple of the patch size 8",
        ),
        ((2, 4, 3, 32, 20), "frame width 20 does not fit the model"),
        ((2, 4, 3, 32, 4), "frame width 4 does not fit the model"),
        ((2, 4, 1, 32, 32), "pixel_values has 1 channels, the model takes 3"),
        (
            (4, 3, 32, 32),
            r"pixel_values must be \(batch, frames, channels, height, width\), got shape \(4, 3, 32, 32\)",
        ),
    ],
)
def test_rejects_inputs_the_patches_cannot_tile(shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(torch.zeros(shape))


def test_trained_size_that_patches_do_not_tile_is_floored():
    model = tiny_base_model(image_size=36)
    with torch.no_grad():
        assert model(pixel_values(height=36)).last_hidden_state.shape == (2, 1 + 16 * 4, 32)


# ------------------------------------------------------------------------------------------------ outputs, training


def test_outputs_index_like_tuples_and_return_dict_false_gives_tuples():
    model = tiny_model()
    video, labels = pixel_values(), torch.tensor([1, 2])
    with torch.no_grad():
        out = model(video, labels=labels, output_hidden_states=True)
        plain = model(video, labels=labels, output_hidden_states=True, return_dict=False)
        base = model.timesformer(video, return_dict=False)
    assert isinstance(out, VideoClassifierOutput) and out.attentions is None
    assert out[0] is out.loss and out[1] is out.logits and out["logits"] is out.logits
    assert len(out.hidden_states) == 1 + TINY["num_hidden_layers"]
    assert isinstance(plain, tuple) and len(plain) == 3 and torch.equal(plain[1], out.logits)
    assert isinstance(base, tuple) and len(base) == 1
    loss, logits, hidden = out
    assert loss is out.loss and isinstance(model.timesformer(video), BaseModelOutput)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_gradients_reach_every_parameter(attention_type):
    model = tiny_model(attention_type=attention_type).train()
    model(pixel_values(), labels=torch.tensor([1, 4])).loss.backward()
    without = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_training_gradients_match_transformers():
    ours = tiny_model()
    theirs = reference("TimesformerForVideoClassification", ours.state_dict())
    video, labels = pixel_values(), torch.tensor([1, 4])
    ours.train()(video, labels=labels).loss.backward()
    theirs.train()(video, labels=labels).loss.backward()
    reference_grads = {name: p.grad for name, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        assert_close(p.grad, reference_grads[name], f"gradient of {name}")


def test_dropout_and_drop_path_act_in_training_only():
    model = tiny_model(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, drop_path_rate=0.3)
    rates = [layer.drop_path_rate for layer in model.timesformer.encoder.layer]
    assert rates == [0.0, 0.3]  # linear from 0 at the first layer to drop_path_rate at the last
    video = pixel_values()
    with torch.no_grad():
        assert torch.equal(model(video).logits, model(video).logits)
        model.train()
        torch.manual_seed(0)
        first = model(video).logits
        torch.manual_seed(1)
        assert not torch.allclose(first, model(video).logits)


def test_eval_outputs_equal_with_and_without_grad_and_fold_follows_weight_changes():
    model = tiny_model()
    video = pixel_values()
    keys = set(model.state_dict())
    with torch.inference_mode():
        folded = model(video).logits
    assert_close(folded, model(video).logits.detach(), "folded vs unfolded")
    with torch.no_grad():  # an in-place change of a folded weight must reach the next inference pass
        model.timesformer.encoder.layer[0].temporal_dense.weight.mul_(2)
        changed = model(video).logits
    assert not torch.allclose(changed, folded)
    assert_close(changed, model(video).logits.detach(), "refolded")
    assert set(model.state_dict()) == keys


def test_the_fast_kernels_switch_leaves_standard_operators_only(monkeypatch):
    from tsf_cli.model import kernels

    if kernels._ONEDNN_LINEAR is None:
        pytest.skip("this torch build has no oneDNN fused linear")
    model, video = tiny_model(), pixel_values()
    fused, folds = [], []
    real_linear, real_fold = kernels._ONEDNN_LINEAR, Block.folded_temporal_projection
    monkeypatch.setattr(kernels, "_ONEDNN_LINEAR", lambda *args: fused.append(1) or real_linear(*args))
    monkeypatch.setattr(Block, "folded_temporal_projection", lambda self: folds.append(1) or real_fold(self))
    with torch.inference_mode():
        fast = model(video).logits
    assert fused and folds  # the default at inference
    fused.clear(), folds.clear()
    with kernels.fast_kernels(False), torch.inference_mode():
        plain = model(video).logits
    assert fused == [] and folds == []
    assert_close(plain, fast, "fast kernels on vs off")
    with torch.inference_mode():
        model(video)
    assert fused and folds  # the block restored the default


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only", "joint_space_time"])
def test_torch_export_traces_the_model(attention_type):
    from tsf_cli.model.kernels import fast_kernels

    model, video = tiny_model(attention_type=attention_type), pixel_values()
    with fast_kernels(False), torch.no_grad():
        program = torch.export.export(model, (video,))
        assert_close(program.module()(pixel_values(seed=1)).logits, model(pixel_values(seed=1)).logits, "exported")
    with torch.no_grad():  # exporting announces itself, so the fast paths step aside with the switch left on
        torch.export.export(model, (video,))


def test_the_onnx_exporter_writes_the_model(tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    from tsf_cli.model.kernels import fast_kernels

    model = tiny_model()
    with fast_kernels(False):
        program = torch.onnx.export(
            model, (pixel_values(),), dynamo=True, verbose=False, input_names=["pixel_values"], output_names=["logits"]
        )
    program.save(tmp_path / "model.onnx")
    proto = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(proto)
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [2, 5]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions_run_and_stay_close(dtype):
    model = tiny_model()
    video = pixel_values()
    with torch.inference_mode():
        expected = model(video).logits
        actual = model.to(dtype)(video).logits  # pixel values are cast to the weights' dtype
    assert actual.dtype == dtype
    torch.testing.assert_close(actual.float(), expected, atol=0.05, rtol=0.05)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_matches_cpu(dtype):
    model = tiny_model()
    video = pixel_values()
    with torch.inference_mode():
        expected = model(video, output_hidden_states=True).logits
        actual = model.to("cuda", dtype)(video.cuda()).logits.float().cpu()
    tolerance = 1e-4 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(actual, expected, atol=tolerance, rtol=tolerance)


def test_new_models_are_initialised_like_transformers():
    model = TimesformerForVideoClassification(tiny_config())
    assert model.classifier.bias.abs().sum() == 0
    assert model.timesformer.layernorm.weight.eq(1).all()
    assert 0 < model.timesformer.embeddings.cls_token.std() < 0.05
    randomize_(model)
    assert model.timesformer.embeddings.time_embeddings.abs().sum() > 0


def test_base_model_has_no_head():
    assert not any(key.startswith("classifier") for key in TimesformerModel(tiny_config()).state_dict())
