"""tsf: classify videos with TimeSformer.

The public names load lazily, so that ``import tsf_cli`` (and ``tsf --help``) stays fast: torch and PyAV load only
when a name that needs them is first used. The Python API (``tsf_cli.api``) is here too: ``tsf_cli.classify``,
``tsf_cli.batch``, ``tsf_cli.embed``, ``tsf_cli.embed_files``, ``tsf_cli.explain``, ``tsf_cli.timeline``,
``tsf_cli.train``, ``tsf_cli.evaluate``, ``tsf_cli.export``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "TimesformerConfig": "tsf_cli.model",
    "TimesformerModel": "tsf_cli.model",
    "TimesformerForVideoClassification": "tsf_cli.model",
    "convert_original_checkpoint": "tsf_cli.model",
    "TsfError": "tsf_cli.errors",
    "VideoError": "tsf_cli.errors",
    "ModelNotFoundError": "tsf_cli.errors",
    "CheckpointError": "tsf_cli.errors",
    "OutputError": "tsf_cli.errors",
    "DeviceError": "tsf_cli.errors",
    "Explanation": "tsf_cli.results",
    "classify": "tsf_cli.api",
    "embed": "tsf_cli.api",
    "batch": "tsf_cli.api",
    "embed_files": "tsf_cli.api",
    "explain": "tsf_cli.api",
    "timeline": "tsf_cli.api",
    "train": "tsf_cli.api",
    "evaluate": "tsf_cli.api",
    "export": "tsf_cli.api",
    "load_model": "tsf_cli.api",
    "list_inputs": "tsf_cli.api",
    "list_models": "tsf_cli.api",
    "probe": "tsf_cli.api",
    "run_demo": "tsf_cli.api",
    "Observer": "tsf_cli.api",
    "Predictor": "tsf_cli.api",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tsf_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
