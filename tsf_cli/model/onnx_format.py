"""What a graph that tsf exports holds, for the exporter that writes it and the runtimes that read it (torch-free).

The graph's one input is ``pixel_values`` (batch, frames, 3, height, width), in the graph's dtype and normalised as the
checkpoint's preprocessor_config.json says; its outputs are some of ``OUTPUTS``. Everything else a program needs to
use the file alone is in its key/value metadata (ONNX ``metadata_props``; ONNX Runtime's
``session.get_modelmeta().custom_metadata_map``), as strings, JSON where structured:

| key | value |
| --- | --- |
| ``tsf.format`` | ``1``: the meaning of these keys |
| ``tsf.frames``, ``tsf.height``, ``tsf.width`` | the input's fixed frame count and size |
| ``tsf.dtype`` | ``fp32`` or ``fp16``, the input's and the weights' precision |
| ``tsf.outputs`` | the outputs, in order, as a JSON list |
| ``tsf.id2label`` | ``{"0": "label", ...}``: the labels of the logits |
| ``tsf.config`` | the checkpoint's config.json |
| ``tsf.preprocessor_config`` | the checkpoint's preprocessor_config.json: resize, crop, mean and std |
| ``tsf.source``, ``tsf.revision`` | where the weights came from (a folder or hub id) and the hub commit |
| ``tsf.opset``, ``tsf.version``, ``tsf.torch_version`` | the ONNX opset, and the tsf and torch that exported it |
| ``tsf.cache_key`` | in tsf's own cache only: what the graph was made from (see ``inference/graphs.py``) |
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import CheckpointError

INPUT = "pixel_values"
OUTPUTS = ("logits", "cls_embedding", "mean_embedding")
EMBEDDING_OUTPUTS = {"cls": "cls_embedding", "mean": "mean_embedding"}  # pool -> the output that holds its vectors
OPSET = 20  # what torch 2.13's exporter picks; ONNX Runtime runs it from 1.17 on
GRAPH_DTYPES = ("fp32", "fp16")  # ONNX Runtime's CPU provider has no bf16 kernels
FORMAT = "1"


def config_labels(config: dict) -> list[str]:
    """The labels of a config.json, in order, as ``TimesformerConfig`` reads them (without importing torch):
    ``id2label`` by index, else ``LABEL_<i>`` for ``num_labels`` (2 when absent, as in transformers)."""
    id2label = config.get("id2label")
    if id2label is None:
        count = config.get("num_labels")
        return [f"LABEL_{i}" for i in range(2 if count is None else count)]
    by_index = {int(key): label for key, label in id2label.items()}
    return [by_index[i] for i in range(len(by_index))]


def config_frames(config: dict) -> int:
    """The frame count of a config.json, as ``TimesformerConfig`` reads it (8 when absent)."""
    return config.get("num_frames", 8)


@dataclass(frozen=True)
class GraphInfo:
    """The metadata of a graph tsf exported."""

    frames: int
    height: int
    width: int
    dtype: str
    outputs: tuple[str, ...]
    config: dict  # config.json
    preprocessor: dict | None = None  # preprocessor_config.json
    source: str | None = None
    revision: str | None = None
    opset: int = OPSET
    tsf_version: str | None = None
    torch_version: str | None = None
    cache_key: str | None = None

    @property
    def labels(self) -> list[str]:
        """The label of each logit, in order."""
        return config_labels(self.config)

    def to_metadata(self) -> dict[str, str]:
        fields = {
            "tsf.format": FORMAT,
            "tsf.frames": str(self.frames),
            "tsf.height": str(self.height),
            "tsf.width": str(self.width),
            "tsf.dtype": self.dtype,
            "tsf.outputs": json.dumps(list(self.outputs)),
            "tsf.id2label": json.dumps(self.config.get("id2label") or {}),
            "tsf.config": json.dumps(self.config, sort_keys=True),
            "tsf.preprocessor_config": json.dumps(self.preprocessor) if self.preprocessor is not None else None,
            "tsf.source": self.source,
            "tsf.revision": self.revision,
            "tsf.opset": str(self.opset),
            "tsf.version": self.tsf_version,
            "tsf.torch_version": self.torch_version,
            "tsf.cache_key": self.cache_key,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], where: str) -> GraphInfo:
        """Read the metadata of the graph at ``where``; a CheckpointError if tsf did not export it, or another format
        of tsf did."""
        if metadata.get("tsf.format") != FORMAT:
            found = metadata.get("tsf.format")
            why = "it has no tsf metadata" if found is None else f"its tsf metadata are format {found}, not {FORMAT}"
            raise CheckpointError(f"{where}: not a graph this tsf exported ({why}); export it with tsf export")
        try:
            preprocessor = metadata.get("tsf.preprocessor_config")
            return cls(
                frames=int(metadata["tsf.frames"]),
                height=int(metadata["tsf.height"]),
                width=int(metadata["tsf.width"]),
                dtype=metadata["tsf.dtype"],
                outputs=tuple(json.loads(metadata["tsf.outputs"])),
                config=json.loads(metadata["tsf.config"]),
                preprocessor=json.loads(preprocessor) if preprocessor is not None else None,
                source=metadata.get("tsf.source"),
                revision=metadata.get("tsf.revision"),
                opset=int(metadata["tsf.opset"]),
                tsf_version=metadata.get("tsf.version"),
                torch_version=metadata.get("tsf.torch_version"),
                cache_key=metadata.get("tsf.cache_key"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{where}: damaged tsf metadata ({type(exc).__name__}: {exc})") from None
