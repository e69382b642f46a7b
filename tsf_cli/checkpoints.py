"""Checkpoint files: where they are (a local folder or the Hugging Face hub and its cache), reading and checking them,
writing them, and converting the original facebookresearch/TimeSformer ones.

A hub id resolves through huggingface_hub, so its cache, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and pinned revisions behave
as everywhere else. Every failure becomes a ``ModelNotFoundError`` (nothing to load) or a ``CheckpointError``
(something there, but unusable) whose one-line message names the file, tensor or setting at fault.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from .model import TimesformerConfig, TimesformerForVideoClassification, TimesformerPreTrainedModel

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
PYTORCH_NAME = "pytorch_model.bin"
BASE_PREFIX = "timesformer."  # where the classification model keeps the encoder

_REPO_ID = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


# ---------------------------------------------------------------------------------------------------------- resolving


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    required: bool = True,
) -> Path | None:
    """The local path of ``filename`` in a checkpoint folder or hub repository, downloading it if need be.

    ``name_or_path`` is a folder, or a hub id (``org/name``) when no such folder exists. ``revision`` pins a hub
    branch, tag or commit (default: main). With ``HF_HUB_OFFLINE=1`` or ``local_files_only`` only the cache is used.
    A file that the folder or repository does not have gives None when ``required`` is false; every other failure
    (no such folder, not cached while offline, unknown repository or revision) raises ``ModelNotFoundError``.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        file = path / filename
        if file.is_file():
            return file
        if required:
            raise ModelNotFoundError(f"{path}: no {filename} in this folder")
        return None
    name = str(name_or_path)
    if path.exists():
        raise ModelNotFoundError(f"{name}: is a file; pass the folder that holds {CONFIG_NAME} and the weights")
    if name.startswith((".", "/", "~")) or not _REPO_ID.match(name):
        raise ModelNotFoundError(f"{name}: no such folder, and not a Hugging Face hub id (org/name)")
    return _resolve_hub_file(name, filename, revision, cache_dir, local_files_only, token, required)


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The hub cache folder: ``cache_dir``, else ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else the default.

    huggingface_hub reads these variables once, when it is imported; reading them on each call lets a program (or a
    test) that sets them later still be obeyed.
    """
    from huggingface_hub import constants

    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline(local_files_only: bool | None = None) -> bool:
    """Whether the hub must not be asked: ``local_files_only``, or ``HF_HUB_OFFLINE`` (read now, see above)."""
    from huggingface_hub import constants

    variable = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(local_files_only) or variable or constants.is_offline_mode()


def _resolve_hub_file(repo_id, filename, revision, cache_dir, local_files_only, token, required) -> Path | None:
    from huggingface_hub import errors, hf_hub_download

    where = repo_id if revision is None else f"{repo_id}@{revision}"
    cache, offline = hub_cache_dir(cache_dir), hub_offline(local_files_only)
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache, local_files_only=offline, token=token
        )
        return Path(path)
    except errors.LocalEntryNotFoundError as exc:
        # offline, or the hub is unreachable, and the file is not in the cache: is the snapshot there at all?
        commit = cached_commit(repo_id, revision, cache_dir=cache)
        if commit is None:
            why = "offline (HF_HUB_OFFLINE=1 or local_files_only)" if offline else "the hub cannot be reached"
            raise ModelNotFoundError(
                f"{where}: not cached in {cache} and {why}; download it once with network access, "
                "or pass a local folder"
            ) from exc
        if required:
            raise ModelNotFoundError(
                f"{where}: no {filename} in the cached snapshot {commit}, and the hub was not asked (offline or "
                "unreachable)"
            ) from exc
        return None
    except errors.RemoteEntryNotFoundError as exc:
        if required:
            raise ModelNotFoundError(f"{where}: the repository has no {filename}") from exc
        return None
    except errors.GatedRepoError as exc:
        raise ModelNotFoundError(f"{where}: gated repository; accept its terms and set HF_TOKEN") from exc
    except errors.RepositoryNotFoundError as exc:
        raise ModelNotFoundError(f"{where}: no such model on the hub (a private one needs HF_TOKEN)") from exc
    except errors.RevisionNotFoundError as exc:
        raise ModelNotFoundError(f"{repo_id}: no revision {revision!r} on the hub") from exc
    except errors.HfHubHTTPError as exc:
        raise ModelNotFoundError(f"{where}: the hub refused {filename}: {exc}".splitlines()[0]) from exc


def cached_commit(
    repo_id: str, revision: str | None = None, *, cache_dir: str | os.PathLike | None = None
) -> str | None:
    """The commit the cache holds a snapshot of for ``repo_id`` at ``revision`` (a branch, tag or commit), or None."""
    from huggingface_hub.file_download import repo_folder_name

    repo = hub_cache_dir(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = revision or "main"
    ref = repo / "refs" / commit
    if not _COMMIT.match(commit) and ref.is_file():
        commit = ref.read_text().strip()
    return commit if (repo / "snapshots" / commit).is_dir() else None


def is_cached(repo_id: str, revision: str | None = None, *, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether the cache holds what ``from_pretrained`` needs for ``repo_id`` at ``revision`` without the network."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir(cache_dir), revision=revision)
        return isinstance(found, str)

    return cached(CONFIG_NAME) and (cached(SAFETENSORS_NAME) or cached(PYTORCH_NAME))


def snapshot_commit(path: str | os.PathLike) -> str | None:
    """The hub commit a file resolved from the cache belongs to (``.../models--org--name/snapshots/<commit>/...``)."""
    parts = Path(path).parts
    for i in range(1, len(parts) - 1):
        if parts[i] == "snapshots" and parts[i - 1].startswith("models--") and _COMMIT.match(parts[i + 1]):
            return parts[i + 1]
    return None


# ------------------------------------------------------------------------------------------------------------ reading


def read_config(path: str | os.PathLike) -> TimesformerConfig:
    """A TimesformerConfig from a config.json file, or a CheckpointError naming the file and what is wrong."""
    from .model import TimesformerConfig

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a config must be a JSON object")
    model_type = data.get("model_type", TimesformerConfig.model_type)
    if model_type != TimesformerConfig.model_type:
        raise CheckpointError(f"{path}: model_type is {model_type!r}, not a TimeSformer ('timesformer')")
    try:
        return TimesformerConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid config: {exc}") from exc


def load_config(name_or_path: str | os.PathLike, revision: str | None = None, **hub: Any) -> TimesformerConfig:
    """Resolve and read config.json; ``name_or_path`` and ``commit_hash`` say where it came from."""
    path = resolve_file(name_or_path, CONFIG_NAME, revision=revision, **hub)
    config = read_config(path)
    config.name_or_path = str(name_or_path)
    config.commit_hash = snapshot_commit(path)
    return config


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a pickled PyTorch file read with ``weights_only=True`` (no code runs)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({_first_line(exc)})") from exc
    state = _torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return state


def _torch_load(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    # a truncated zip is a RuntimeError, a bad or code-carrying pickle an UnpicklingError, an empty file an EOFError
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: corrupt, truncated or unsafe PyTorch file ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def resolve_weights(name_or_path, revision=None, **hub: Any) -> Path:
    """model.safetensors if the checkpoint has one, else pytorch_model.bin."""
    for filename in (SAFETENSORS_NAME, PYTORCH_NAME):
        path = resolve_file(name_or_path, filename, revision=revision, required=False, **hub)
        if path is not None:
            return path
    raise ModelNotFoundError(f"{name_or_path}: no {SAFETENSORS_NAME} or {PYTORCH_NAME}")


def load_pretrained(
    cls: type[TimesformerPreTrainedModel],
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> TimesformerPreTrainedModel:
    """``cls.from_pretrained``: config, weights, key and shape checks, then the model in eval mode."""
    import torch

    hub = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
    config = load_config(name_or_path, **hub)
    weights = resolve_weights(name_or_path, **hub)
    state = load_state_dict(weights)
    dtype = dtype or torch.float32
    device = torch.device(device or "cpu")
    # built on the meta device: no time spent initialising weights that the checkpoint replaces
    with torch.device("meta"):
        model = cls(config)
    state, new = match_state_dict(model, state, weights)
    if new:
        warnings.warn(
            f"{name_or_path} has no classification head: {', '.join(new)} newly initialised; train it before use",
            stacklevel=3,
        )
        model.classifier.to_empty(device=device)
        model.classifier.apply(model._init_weights)
    # copies, not views into the file's buffer: those sit at unaligned addresses, which slows the GEMMs down and
    # changes their rounding
    state = {key: tensor.to(device=device, dtype=dtype, copy=True) for key, tensor in state.items()}
    model.load_state_dict(state, strict=False, assign=True)
    return model.to(dtype=dtype).eval()


def match_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Adapt a state dict to ``model`` as transformers does, then check it.

    A classification checkpoint loads into the base model without its ``timesformer.`` prefix and its head; a base
    checkpoint loads into the classification model under the prefix, and the head's keys are returned as new.
    Anything else missing, unexpected or misshaped raises a CheckpointError that names the tensors.
    """
    from .model import TimesformerModel

    expected = model.state_dict()
    has_prefix = any(key.startswith(BASE_PREFIX) for key in state)
    if isinstance(model, TimesformerModel) and has_prefix:
        state = {k[len(BASE_PREFIX) :]: v for k, v in state.items() if k.startswith(BASE_PREFIX)}
    elif not isinstance(model, TimesformerModel) and not has_prefix:
        state = {BASE_PREFIX + k: v for k, v in state.items()}
    missing = [key for key in expected if key not in state]
    new = [key for key in missing if key.startswith("classifier.") and not has_prefix]
    missing = [key for key in missing if key not in new]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = [
        f"{label}: {_listing(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source}: does not fit the config; " + "; ".join(problems))
    return state, new


def _listing(items: list[str], limit: int = 6) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# ------------------------------------------------------------------------------------------------------------ writing


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary_path)`` next to ``path``, sync, then rename: a reader (or a crash) never sees
    half a file. The file gets the permissions a plain open() would give (mkstemp's 0600 would hide a saved model
    from the rest of a team)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def config_json(config: TimesformerConfig, architecture: str | None = None, dtype: torch.dtype | None = None) -> str:
    data = config.to_dict()
    if architecture is not None:
        data["architectures"] = [architecture]
    if dtype is not None:
        data.pop("torch_dtype", None)  # transformers' older name for the same field
        data["dtype"] = str(dtype).removeprefix("torch.")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def save_config(config: TimesformerConfig, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = config_json(config)
    write_atomically(folder / CONFIG_NAME, lambda path: path.write_text(text, encoding="utf-8"))


def save_pretrained(model: TimesformerPreTrainedModel, folder: str | os.PathLike) -> None:
    """config.json and model.safetensors in the layout transformers writes and reads."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: tensor.detach().contiguous().cpu() for key, tensor in model.state_dict().items()}
    text = config_json(model.config, type(model).__name__, model.dtype)
    write_atomically(folder / SAFETENSORS_NAME, lambda path: save_file(state, str(path), metadata={"format": "pt"}))
    write_atomically(folder / CONFIG_NAME, lambda path: path.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------------------------------------- converting

# original facebookresearch/TimeSformer name -> Hugging Face name, for the keys outside the blocks
_ORIGINAL_TOP = {
    "cls_token": "timesformer.embeddings.cls_token",
    "pos_embed": "timesformer.embeddings.position_embeddings",
    "time_embed": "timesformer.embeddings.time_embeddings",
    "patch_embed.proj.weight": "timesformer.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "timesformer.embeddings.patch_embeddings.projection.bias",
    "norm.weight": "timesformer.layernorm.weight",
    "norm.bias": "timesformer.layernorm.bias",
    "head.weight": "classifier.weight",
    "head.bias": "classifier.bias",
}
# ... and inside block N (the suffix, .weight or .bias, is kept)
_ORIGINAL_BLOCK = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.attention.qkv",
    "attn.proj": "attention.output.dense",
    "temporal_norm1": "temporal_layernorm",
    "temporal_attn.qkv": "temporal_attention.attention.qkv",
    "temporal_attn.proj": "temporal_attention.output.dense",
    "temporal_fc": "temporal_dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")


def convert_original_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename an original TimeSformer state dict (``model.blocks.N.temporal_attn.qkv.weight``, ...) to the Hugging
    Face layout (``timesformer.encoder.layer.N.temporal_attention.attention.qkv.weight``, ...)."""
    converted, unknown = {}, []
    for key, tensor in state.items():
        name = key.removeprefix("module.").removeprefix("model.")
        block = _BLOCK_KEY.match(name)
        if name in _ORIGINAL_TOP:
            converted[_ORIGINAL_TOP[name]] = tensor
        elif block and block.group(2) in _ORIGINAL_BLOCK:
            index, layer, kind = block.groups()
            converted[f"timesformer.encoder.layer.{index}.{_ORIGINAL_BLOCK[layer]}.{kind}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: not an original TimeSformer checkpoint; unknown tensors: {_listing(unknown)}")
    return converted


def convert_original_checkpoint(
    path: str | os.PathLike,
    *,
    num_attention_heads: int | None = None,
    id2label: dict[int, str] | None = None,
) -> TimesformerForVideoClassification:
    """An original facebookresearch/TimeSformer checkpoint (a PySlowFast ``.pyth`` with the tensors under
    ``model_state``) as a TimesformerForVideoClassification; ``.save_pretrained(folder)`` then writes it in the
    Hugging Face layout.

    Sizes, frame count, attention type and label count are read off the tensors. The head count is not in them:
    it defaults to one head per 64 channels, as in every published TimeSformer. ``id2label`` names the classes.
    """
    from .model import TimesformerConfig, TimesformerForVideoClassification

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file")
    checkpoint = _torch_load(path)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no model_state dict of tensors in it")
    state = convert_original_state_dict(state, str(path))
    head = state.get("classifier.weight")
    labels = {"id2label": id2label} if id2label is not None else {"num_labels": 0 if head is None else head.shape[0]}
    try:
        config = TimesformerConfig(**_original_config(state, num_attention_heads), **labels)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the architecture off the tensors ({exc})") from exc
    model = TimesformerForVideoClassification(config)
    match_state_dict(model, state, path)
    model.load_state_dict(state)
    return model.eval()


def _original_config(state: dict[str, torch.Tensor], num_attention_heads: int | None) -> dict[str, Any]:
    hidden = state["timesformer.embeddings.cls_token"].shape[-1]
    patch = state["timesformer.embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = round((state["timesformer.embeddings.position_embeddings"].shape[1] - 1) ** 0.5)
    layers = 1 + max(int(key.split(".")[3]) for key in state if key.startswith("timesformer.encoder.layer."))
    time = state.get("timesformer.embeddings.time_embeddings")
    if time is None:
        attention_type = "space_only"
    elif "timesformer.encoder.layer.0.temporal_dense.weight" in state:
        attention_type = "divided_space_time"
    else:
        attention_type = "joint_space_time"
    return {
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": state["timesformer.embeddings.patch_embeddings.projection.weight"].shape[1],
        "num_frames": time.shape[1] if time is not None else 8,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": num_attention_heads or max(hidden // 64, 1),
        "intermediate_size": state["timesformer.encoder.layer.0.intermediate.dense.weight"].shape[0],
        "qkv_bias": "timesformer.encoder.layer.0.attention.attention.qkv.bias" in state,
        "attention_type": attention_type,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
    }
