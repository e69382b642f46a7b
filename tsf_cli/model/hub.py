"""Where a model's files are: a preset, a local folder, or a repository on the Hugging Face hub and its cache.

A hub id resolves through huggingface_hub, so its cache, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and pinned revisions behave
as everywhere else. Every failure to find something is a ``ModelNotFoundError`` whose one line names what is missing
and where it was looked for.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ModelNotFoundError
from ..presets import Preset, all_presets, get_preset

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
PYTORCH_NAME = "pytorch_model.bin"
PREPROCESSOR_NAME = "preprocessor_config.json"

# A hub repository id: an organisation (or user) and a name, of the characters the hub allows.
HUB_ID = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Without network, huggingface_hub retries each file for about 25 s before it gives up; the hub is asked only when it
# answers a connection within this time.
PROBE_TIMEOUT_S = 3.0


def resolve_model(model: str) -> tuple[str, Preset | None]:
    """Map what the user typed to a source that ``from_pretrained`` takes, and the preset behind it if any."""
    preset = get_preset(model)
    if preset is not None and preset.bundled is not None and not (preset.bundled_path / CONFIG_NAME).is_file():
        raise ModelNotFoundError(
            f"the bundled model {preset.name!r} is missing from this installation ({preset.bundled_path}); "
            f"rebuild it with: python -m tsf_cli.demo --build-demo {preset.bundled_path}"
        )
    if preset is not None:
        return preset.source, preset
    if os.path.isdir(model):
        return model, None
    looks_like_path = model.startswith((".", "~", os.sep)) or model.count("/") > 1 or os.sep in model.strip("/")
    if HUB_ID.match(model) and not os.path.exists(model):
        return model, None
    if os.path.isfile(model) and model.lower().endswith(".onnx"):
        raise ModelNotFoundError(f"{model} is an exported ONNX graph: run it with --runtime onnx")
    if looks_like_path or os.path.exists(model):
        raise ModelNotFoundError(f"model folder {model!r} does not exist (or is not a folder)")
    names = ", ".join(all_presets())
    raise ModelNotFoundError(
        f"unknown model {model!r}: not a preset ({names}), an existing folder, or a hub id like "
        "facebook/timesformer-base-finetuned-k400"
    )


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
    if name.startswith((".", "/", "~")) or not HUB_ID.match(name):
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
    unreachable = None if offline else hub_endpoint_unreachable()
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache,
            local_files_only=offline or unreachable is not None,
            token=token,
        )
        return Path(path)
    except errors.LocalEntryNotFoundError as exc:
        # offline, or the hub is unreachable, and the file is not in the cache: is the snapshot there at all?
        commit = cached_commit(repo_id, revision, cache_dir=cache)
        if commit is None:
            if offline:
                why, hint = "offline (HF_HUB_OFFLINE=1 or local_files_only)", ""
            else:
                why, hint = (
                    f"the hub cannot be reached ({unreachable or 'it gave no answer'})",
                    "; HF_HUB_OFFLINE=1 skips the hub",
                )
            raise ModelNotFoundError(
                f"{where}: not cached in {cache} and {why}; download it once with network access, or pass a local "
                f"folder (--model demo runs the bundled model{hint})"
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


def hub_endpoint_unreachable() -> str | None:
    """Why the hub cannot be reached (its host does not resolve, or does not accept a connection within
    ``PROBE_TIMEOUT_S``), or None when it can, or when a proxy is configured (the proxy decides what is reachable)."""
    from huggingface_hub import constants

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    return _connection_failure(endpoint.hostname or "", port)


@functools.cache
def _connection_failure(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except socket.gaierror:
        return f"{host} does not resolve"
    except TimeoutError:
        return f"no answer from {host} within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


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
