"""Checkpoints in the Hugging Face layout: reading, checking and writing config.json and the weights.

``PretrainedConfigMixin`` and ``PretrainedModelMixin`` give a config class and a model class their
``from_pretrained`` / ``save_pretrained``, as transformers' PretrainedConfig and PreTrainedModel do. The loading code
knows the models only through what the classes declare (``model_type``, ``config_class``, ``base_model_prefix``,
``_init_weights``), so the network's file imports this one and this one never imports the network.

Every failure becomes a ``ModelNotFoundError`` (nothing to load) or a ``CheckpointError`` (something there, but
unusable) whose one-line message names the file, tensor or setting at fault.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ModelNotFoundError, first_line
from ..io.atomic import atomic_file
from .hub import CONFIG_NAME, PYTORCH_NAME, SAFETENSORS_NAME, resolve_file, snapshot_commit

if TYPE_CHECKING:
    import torch


class PretrainedConfigMixin:
    """``from_pretrained`` / ``save_pretrained`` for a config class with ``model_type``, ``display_name``,
    ``from_dict`` and ``to_dict``, and attributes ``name_or_path`` / ``commit_hash`` that say where it came from."""

    model_type: str
    display_name: str

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, revision: str | None = None, **hub: Any):
        """Read config.json from a local folder or a hub id (``org/name``); ``hub``: cache_dir, local_files_only,
        token, as for ``resolve_file``."""
        path = resolve_file(name_or_path, CONFIG_NAME, revision=revision, **hub)
        config = read_config(cls, path)
        config.name_or_path = str(name_or_path)
        config.commit_hash = snapshot_commit(path)
        return config

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write config.json into ``folder`` (created if needed), atomically."""
        _write_text(Path(folder), CONFIG_NAME, config_json(self))


def read_config(config_class: type, path: str | os.PathLike):
    """A ``config_class`` from a config.json file, or a CheckpointError naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a config must be a JSON object")
    model_type = data.get("model_type", config_class.model_type)
    if model_type != config_class.model_type:
        raise CheckpointError(
            f"{path}: model_type is {model_type!r}, not a {config_class.display_name} ({config_class.model_type!r})"
        )
    try:
        return config_class.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid config: {exc}") from exc


def config_json(config, architecture: str | None = None, dtype: torch.dtype | None = None) -> str:
    """config.json's text as transformers writes it: sorted keys, the architecture and dtype of saved weights."""
    data = config.to_dict()
    if architecture is not None:
        data["architectures"] = [architecture]
    if dtype is not None:
        data.pop("torch_dtype", None)  # transformers' older name for the same field
        data["dtype"] = str(dtype).removeprefix("torch.")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _write_text(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / name) as file:
        file.write(text.encode("utf-8"))


class PretrainedModelMixin:
    """``from_pretrained`` / ``save_pretrained`` for an ``nn.Module`` built from ``config_class`` that initialises new
    modules with ``_init_weights``. A model that holds the base model as ``self.<base_model_prefix>`` (a model with a
    head) also loads a base checkpoint, and the base model loads a checkpoint with a head."""

    config_class: type
    base_model_prefix: str

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        revision: str | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        token: str | bool | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ):
        """Load a checkpoint in the Hugging Face layout from a local folder or a hub id (``org/name``).

        ``revision`` pins a hub branch, tag or commit. The weights load as float32 on the CPU unless ``dtype`` /
        ``device`` say otherwise. A classification checkpoint loads into the base model (the head is dropped); a
        base checkpoint loads into the classification model with a new, untrained head and a warning.
        """
        import torch

        hub = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        config = cls.config_class.from_pretrained(name_or_path, **hub)
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
                stacklevel=2,
            )
            for name in sorted({key.rpartition(".")[0] for key in new}):
                module = model.get_submodule(name)
                module.to_empty(device=device)
                module.apply(model._init_weights)
        # copies, not views into the file's buffer: those sit at unaligned addresses, which slows the GEMMs down and
        # changes their rounding
        state = {key: tensor.to(device=device, dtype=dtype, copy=True) for key, tensor in state.items()}
        model.load_state_dict(state, strict=False, assign=True)
        return model.to(dtype=dtype).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write config.json and model.safetensors into ``folder``, each atomically, in the layout transformers
        writes and reads."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {key: tensor.detach().contiguous().cpu() for key, tensor in self.state_dict().items()}
        with atomic_file(folder / SAFETENSORS_NAME) as file:
            save_file(state, file.name, metadata={"format": "pt"})
        _write_text(folder, CONFIG_NAME, config_json(self.config, type(self).__name__, self.dtype))


def resolve_weights(name_or_path, revision=None, **hub: Any) -> Path:
    """model.safetensors if the checkpoint has one, else pytorch_model.bin."""
    for filename in (SAFETENSORS_NAME, PYTORCH_NAME):
        path = resolve_file(name_or_path, filename, revision=revision, required=False, **hub)
        if path is not None:
            return path
    raise ModelNotFoundError(f"{name_or_path}: no {SAFETENSORS_NAME} or {PYTORCH_NAME}")


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
            raise CheckpointError(
                f"{path}: corrupt or truncated safetensors file ({first_line(exc, named=True)})"
            ) from exc
    state = torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return state


def torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain data (``weights_only``), every failure a CheckpointError."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    # A truncated zip is a RuntimeError, a bad or code-carrying pickle an UnpicklingError, an empty file an EOFError.
    # Damaged bytes reach the weights-only unpickler's own bookkeeping too: 6000 seeded random and bit-flipped files
    # also gave IndexError, KeyError, LookupError (an unknown encoding), UnicodeDecodeError and TypeError.
    except (OSError, RuntimeError, EOFError, ValueError, LookupError, TypeError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"{path}: corrupt, truncated or unsafe PyTorch file ({first_line(exc, named=True)})"
        ) from exc


def match_state_dict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Adapt a state dict to ``model`` as transformers does, then check it.

    A checkpoint with a head loads into the base model without its ``<base_model_prefix>.`` prefix and its head; a
    base checkpoint loads into the model with a head under the prefix, and the head's keys are returned as new.
    Anything else missing, unexpected or misshaped raises a CheckpointError that names the tensors.
    """
    prefix = model.base_model_prefix + "."
    wraps_base = hasattr(model, model.base_model_prefix)
    expected = model.state_dict()
    has_prefix = any(key.startswith(prefix) for key in state)
    if not wraps_base and has_prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    elif wraps_base and not has_prefix:
        state = {prefix + k: v for k, v in state.items()}
    missing = [key for key in expected if key not in state]
    new = [key for key in missing if wraps_base and not has_prefix and not key.startswith(prefix)]
    missing = [key for key in missing if key not in new]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = [
        f"{label}: {listing(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source}: does not fit the config; " + "; ".join(problems))
    return state, new


def listing(items: list[str], limit: int = 6) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
