"""tsf: classify videos with TimeSformer.

The public names are imported lazily so that ``import tsf_cli`` (and ``tsf --help``) stays fast: torch and PyAV load
only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "TimesformerConfig": "tsf_cli.model",
    "TimesformerModel": "tsf_cli.model",
    "TimesformerForVideoClassification": "tsf_cli.model",
    "convert_original_checkpoint": "tsf_cli.checkpoints",
    "TsfError": "tsf_cli.errors",
    "VideoError": "tsf_cli.errors",
    "ModelNotFoundError": "tsf_cli.errors",
    "CheckpointError": "tsf_cli.errors",
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
