"""The TimeSformer network and its checkpoints.

``timesformer`` is the network (config, embeddings, attention, blocks, heads), ``kernels`` its fast inference paths
and their off switch, ``loading`` reads and writes checkpoints in the Hugging Face layout, ``hub`` finds them (presets,
folders, the hub and its cache), ``convert`` converts the original facebookresearch/TimeSformer ones. The names below
load lazily, so that finding a checkpoint does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TimesformerConfig": "timesformer",
    "TimesformerModel": "timesformer",
    "TimesformerForVideoClassification": "timesformer",
    "TimesformerPreTrainedModel": "timesformer",
    "BaseModelOutput": "timesformer",
    "VideoClassifierOutput": "timesformer",
    "ACTIVATIONS": "timesformer",
    "ATTENTION_TYPES": "timesformer",
    "AttentionProbe": "timesformer",
    "POOLS": "timesformer",
    "convert_original_checkpoint": "convert",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tsf_cli.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
