"""Checkpoints: local folders, the Hugging Face cache (offline), transformers' format both ways, each bad case."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import huggingface_hub
import pytest
import torch

import tsf_cli.model as tsf_model
from tests._models import (
    COMMIT,
    OTHER_COMMIT,
    TINY,
    checkpoint_files,
    make_hub_cache,
    pixel_values,
    randomize_,
    save_tiny_checkpoint,
    tiny_base_model,
    tiny_model,
)
from tsf_cli.errors import CheckpointError, ModelNotFoundError
from tsf_cli.model import TimesformerConfig, TimesformerForVideoClassification, TimesformerModel
from tsf_cli.model.convert import convert_original_checkpoint
from tsf_cli.model.hub import is_cached, resolve_file, snapshot_commit
from tsf_cli.model.loading import load_state_dict

REPO = "tsf-tests/tiny-timesformer"


def logits(model, video=None):
    with torch.no_grad():
        return model(pixel_values() if video is None else video).logits


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache, offline (HF_HUB_OFFLINE=1 comes from the conftest). huggingface_hub reads these variables
    at import time, into its constants; tsf reads them on each call, which is what this exercises."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def cached_repo(tmp_path, hub_cache):
    """REPO cached at two commits: main -> model A (COMMIT), tag v1 -> model B (OTHER_COMMIT)."""
    first = save_tiny_checkpoint(tmp_path / "a", seed=1)
    (tmp_path / "a" / "preprocessor_config.json").write_text('{"size": {"shortest_edge": 32}}')
    make_hub_cache(hub_cache, REPO, checkpoint_files(tmp_path / "a"), COMMIT, refs=("main",))
    second = save_tiny_checkpoint(tmp_path / "b", seed=2)
    make_hub_cache(hub_cache, REPO, checkpoint_files(tmp_path / "b"), OTHER_COMMIT, refs=("v1",))
    return first, second


# ------------------------------------------------------------------------------------------------------ local folders


def test_save_then_load_gives_the_same_model(tmp_path):
    model = save_tiny_checkpoint(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "model.safetensors"]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o666 & ~umask}  # a team can read the model
    loaded = TimesformerForVideoClassification.from_pretrained(tmp_path)
    assert not loaded.training and loaded.dtype == torch.float32
    assert all(p.requires_grad and isinstance(p, torch.nn.Parameter) for p in loaded.parameters())
    assert torch.equal(logits(loaded), logits(model))
    assert loaded.config.to_dict() == model.config.to_dict() | {
        "dtype": "float32",
        "architectures": [type(model).__name__],
    }
    assert loaded.config.name_or_path == str(tmp_path) and loaded.config.commit_hash is None
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not {"name_or_path", "_name_or_path", "commit_hash", "_commit_hash"} & set(saved)


def test_from_pretrained_dtype_and_training_state(tmp_path):
    save_tiny_checkpoint(tmp_path)
    loaded = TimesformerForVideoClassification.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    loaded.save_pretrained(tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"


def test_config_json_is_what_transformers_writes(transformers, tmp_path):
    for cls_name in ("TimesformerModel", "TimesformerForVideoClassification"):
        labels = {0: "run", 1: "swim", 2: "jump"}
        # (given both ways: transformers 5 writes "label2id": null when only id2label is given; we derive it)
        maps = {"id2label": labels, "label2id": {name: index for index, name in labels.items()}}
        config = {key: value for key, value in TINY.items() if key != "num_labels"} | maps
        ours = getattr(tsf_model, cls_name)(TimesformerConfig(**config))
        theirs = getattr(transformers, cls_name)(transformers.TimesformerConfig(**config))
        ours.save_pretrained(tmp_path / "ours")
        theirs.save_pretrained(tmp_path / "theirs")
        written = json.loads((tmp_path / "theirs" / "config.json").read_text())
        written.pop("transformers_version")  # we are not transformers
        assert json.loads((tmp_path / "ours" / "config.json").read_text()) == written


def test_unknown_config_keys_survive_a_round_trip(tmp_path):
    save_tiny_checkpoint(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["future_option"] = [1, 2]
    (tmp_path / "config.json").write_text(json.dumps(data))
    TimesformerForVideoClassification.from_pretrained(tmp_path).save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["future_option"] == [1, 2]


def test_transformers_to_tsf_to_transformers(transformers, tmp_path):
    theirs = randomize_(transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**TINY)))
    theirs.eval().save_pretrained(tmp_path / "theirs")
    ours = TimesformerForVideoClassification.from_pretrained(tmp_path / "theirs")
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "ours").eval()
    expected = logits(theirs)
    torch.testing.assert_close(logits(ours), expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(logits(back), expected)


def test_base_model_loads_a_classification_checkpoint_without_its_head(tmp_path):
    model = save_tiny_checkpoint(tmp_path)
    base = TimesformerModel.from_pretrained(tmp_path)
    video = pixel_values()
    with torch.no_grad():
        assert torch.equal(base(video).last_hidden_state, model.timesformer(video).last_hidden_state)


def test_classification_model_from_a_base_checkpoint_gets_a_new_head_and_says_so(tmp_path):
    base = save_tiny_checkpoint(tmp_path, cls=TimesformerModel)
    with pytest.warns(UserWarning, match="no classification head: classifier.weight, classifier.bias newly init"):
        model = TimesformerForVideoClassification.from_pretrained(tmp_path)
    assert model.classifier.weight.device.type == "cpu" and model.classifier.weight.abs().sum() > 0
    video = pixel_values()
    with torch.no_grad():
        assert torch.equal(model.timesformer(video).last_hidden_state, base(video).last_hidden_state)


def test_pytorch_bin_is_the_fallback_and_loads_weights_only(tmp_path):
    model = save_tiny_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    assert torch.equal(logits(TimesformerForVideoClassification.from_pretrained(tmp_path)), logits(model))


# ------------------------------------------------------------------------------------------------------- hub cache


def test_hub_id_loads_from_the_cache_offline(cached_repo):
    first, _ = cached_repo
    model = TimesformerForVideoClassification.from_pretrained(REPO)
    assert torch.equal(logits(model), logits(first))
    assert model.config.name_or_path == REPO and model.config.commit_hash == COMMIT


@pytest.mark.parametrize("revision", ["v1", OTHER_COMMIT])
def test_pinned_revision_loads_that_snapshot(cached_repo, revision):
    _, second = cached_repo
    model = TimesformerForVideoClassification.from_pretrained(REPO, revision=revision)
    assert torch.equal(logits(model), logits(second))
    assert model.config.commit_hash == OTHER_COMMIT


def test_resolver_helpers(cached_repo, hub_cache):
    processor = resolve_file(REPO, "preprocessor_config.json")
    assert json.loads(processor.read_text()) == {"size": {"shortest_edge": 32}}
    assert snapshot_commit(processor) == COMMIT
    assert resolve_file(REPO, "preprocessor_config.json", revision="v1", required=False) is None
    assert is_cached(REPO) and is_cached(REPO, "v1") and is_cached(REPO, OTHER_COMMIT)
    assert not is_cached(REPO, "v2") and not is_cached("tsf-tests/other")
    assert snapshot_commit(Path("/some/folder/config.json")) is None


def test_hf_home_set_after_import_is_obeyed(tmp_path, monkeypatch):
    model = save_tiny_checkpoint(tmp_path / "ckpt")
    make_hub_cache(tmp_path / "home" / "hub", REPO, checkpoint_files(tmp_path / "ckpt"))
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert is_cached(REPO)
    assert torch.equal(logits(TimesformerForVideoClassification.from_pretrained(REPO)), logits(model))


def test_cache_dir_argument_is_used(tmp_path):
    model = save_tiny_checkpoint(tmp_path / "ckpt")
    make_hub_cache(tmp_path / "elsewhere", REPO, checkpoint_files(tmp_path / "ckpt"))
    loaded = TimesformerForVideoClassification.from_pretrained(REPO, cache_dir=tmp_path / "elsewhere")
    assert torch.equal(logits(loaded), logits(model))


# ---------------------------------------------------------------------------------------------------------- errors


def test_hub_id_not_cached_while_offline(hub_cache):
    with pytest.raises(ModelNotFoundError) as error:
        TimesformerForVideoClassification.from_pretrained("facebook/timesformer-base-finetuned-k400")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("facebook/timesformer-base-finetuned-k400: not cached in ")
    assert "offline" in message and "pass a local folder" in message


def test_local_files_only_is_offline_too(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as the import may have read it
    with pytest.raises(ModelNotFoundError, match="not cached in .* offline .*local_files_only"):
        resolve_file(REPO, "config.json", local_files_only=True)


def test_missing_revision_of_a_cached_repo(cached_repo):
    with pytest.raises(ModelNotFoundError, match=f"^{REPO}@v2: not cached in "):
        TimesformerForVideoClassification.from_pretrained(REPO, revision="v2")


def test_missing_file_in_the_cache_is_named(tmp_path, hub_cache):
    save_tiny_checkpoint(tmp_path)
    make_hub_cache(hub_cache, REPO, {"config.json": tmp_path / "config.json"})
    with pytest.raises(ModelNotFoundError, match=f"{REPO}: no model.safetensors or pytorch_model.bin"):
        TimesformerForVideoClassification.from_pretrained(REPO)
    with pytest.raises(ModelNotFoundError, match=f"no preprocessor_config.json in the cached snapshot {COMMIT}"):
        resolve_file(REPO, "preprocessor_config.json")


def test_missing_file_in_a_folder_is_named(tmp_path):
    save_tiny_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="no model.safetensors or pytorch_model.bin"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match=f"^{tmp_path}: no config.json in this folder$"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)


def test_missing_folder_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such folder, and not a Hugging Face hub id"):
        TimesformerForVideoClassification.from_pretrained(str(tmp_path / "nowhere" / "deep" / "model"))
    with pytest.raises(ModelNotFoundError, match="is a file; pass the folder"):
        save_tiny_checkpoint(tmp_path)
        TimesformerForVideoClassification.from_pretrained(tmp_path / "config.json")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_safetensors_is_named(tmp_path, damage):
    save_tiny_checkpoint(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"garbage": b"\x00not a safetensors file" * 10, "truncated": data[: len(data) // 2]}.get(damage, b"")
    )
    with pytest.raises(CheckpointError, match=f"^{weights}: corrupt or truncated safetensors file"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)


def test_corrupt_pytorch_file_is_named(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"a": torch.ones(3)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"^{path}: corrupt, truncated or unsafe PyTorch file"):
        load_state_dict(path)


def test_config_of_another_model_is_named(tmp_path):
    save_tiny_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "videomae", "hidden_size": 32}))
    with pytest.raises(CheckpointError, match="model_type is 'videomae', not a TimeSformer"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)


def test_invalid_config_is_named(tmp_path):
    save_tiny_checkpoint(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(data | {"attention_type": "diagonal"}))
    with pytest.raises(CheckpointError, match="config.json: invalid config: attention_type must be one of"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: unreadable config"):
        TimesformerForVideoClassification.from_pretrained(tmp_path)


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    from safetensors.torch import save_file

    save_tiny_checkpoint(tmp_path)
    state = load_state_dict(tmp_path / "model.safetensors")
    del state["timesformer.encoder.layer.1.temporal_dense.bias"]
    state["timesformer.encoder.layer.9.extra.weight"] = torch.zeros(2)
    state["classifier.weight"] = torch.zeros(7, 32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as error:
        TimesformerForVideoClassification.from_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'model.safetensors'}: does not fit the config; "
        "missing: timesformer.encoder.layer.1.temporal_dense.bias; "
        "unexpected: timesformer.encoder.layer.9.extra.weight; "
        "wrong shape: classifier.weight (7, 32) (expected (5, 32))"
    )


def test_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.torch

    model = save_tiny_checkpoint(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def fail(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        randomize_(model, seed=5).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


# ------------------------------------------------------------------------------------------ original checkpoints

# the module names of facebookresearch/TimeSformer's VisionTransformer, block by block
ORIGINAL_BLOCK = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",
    "attention.output.dense": "attn.proj",
    "temporal_layernorm": "temporal_norm1",
    "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj",
    "temporal_dense": "temporal_fc",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
ORIGINAL_TOP = {
    "timesformer.embeddings.cls_token": "cls_token",
    "timesformer.embeddings.position_embeddings": "pos_embed",
    "timesformer.embeddings.time_embeddings": "time_embed",
    "timesformer.embeddings.patch_embeddings.projection": "patch_embed.proj",
    "timesformer.layernorm": "norm",
    "classifier": "head",
}


def original_state_dict(model) -> dict[str, torch.Tensor]:
    """Our state dict under the original repository's names, as PySlowFast saves them ("model." prefix)."""
    state = {}
    for key, tensor in model.state_dict().items():
        stem, _, kind = key.rpartition(".")
        if stem.startswith("timesformer.encoder.layer."):
            index, _, layer = stem.removeprefix("timesformer.encoder.layer.").partition(".")
            name = f"blocks.{index}.{ORIGINAL_BLOCK[layer]}.{kind}"
        elif key in ORIGINAL_TOP:
            name = ORIGINAL_TOP[key]
        else:
            name = f"{ORIGINAL_TOP[stem]}.{kind}"
        state[f"model.{name}"] = tensor
    return state


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only", "joint_space_time"])
def test_convert_original_checkpoint(transformers, tmp_path, attention_type):
    model = tiny_model(attention_type=attention_type, image_size=48, num_frames=3)
    path = tmp_path / "checkpoint_epoch_00015.pyth"
    torch.save({"epoch": 15, "model_state": original_state_dict(model), "cfg": "TRAIN:\n  ENABLE: True\n"}, path)
    converted = convert_original_checkpoint(path, num_attention_heads=4, id2label={i: f"c{i}" for i in range(5)})
    config = converted.config
    assert (config.attention_type, config.image_size, config.patch_size) == (attention_type, 48, 8)
    assert (config.num_frames if attention_type != "space_only" else 3, config.hidden_size) == (3, 32)
    assert (config.num_hidden_layers, config.intermediate_size, config.num_labels) == (2, 37, 5)
    assert config.id2label[4] == "c4"
    video = pixel_values(frames=3, height=48)
    assert torch.equal(logits(converted, video), logits(model, video))
    converted.save_pretrained(tmp_path / "hf")
    theirs = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "hf")
    assert (theirs.config.attention_type, theirs.config.id2label[4]) == (attention_type, "c4")


def test_convert_rejects_unknown_tensors(tmp_path):
    state = original_state_dict(tiny_model())
    state["model.blocks.0.adapter.weight"] = torch.zeros(3)
    torch.save({"model_state": state}, tmp_path / "odd.pyth")
    with pytest.raises(CheckpointError, match="unknown tensors: model.blocks.0.adapter.weight"):
        convert_original_checkpoint(tmp_path / "odd.pyth")


def test_base_model_checkpoint_is_checked_too(tmp_path):
    tiny_base_model().save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimesformerModel.from_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(data | {"hidden_size": 64}))
    with pytest.raises(CheckpointError, match="wrong shape: embeddings.cls_token \\(1, 1, 32\\) \\(expected"):
        TimesformerModel.from_pretrained(tmp_path)
