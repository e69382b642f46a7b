"""A model ready for inference: resolved, loaded onto a device in a precision, with the preprocessing and the views
its checkpoint was evaluated with. ``Predictor`` turns a batch of uint8 views into probabilities or embeddings with
PyTorch, normalising on the device, so that only uint8 pixels travel to it. ``BasePredictor`` is what any runtime's
predictor offers (``onnx_predictor.OnnxPredictor`` is the other), and the runner needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError, DeviceError, UsageError
from ..media.preprocess import PreprocessConfig, value_table
from ..model.hub import PREPROCESSOR_NAME, resolve_file, resolve_model
from ..presets import DEFAULT_MODEL, Preset
from ..results import ModelInfo
from .views import ViewOptions

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {device} was asked for but {build}; use --device cpu (or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif resolved.type != "cpu":
        raise UsageError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolved


def _cpu_has_fast_bf16() -> bool:
    # bf16 only pays on CPUs with native bf16 dot products (AVX512-BF16 or AMX); elsewhere it is emulated and slow.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 where the hardware runs it natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX), else
    fp16 on older GPUs and fp32 on other CPUs. bf16 keeps fp32's range, so no overflow surprises."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        if device.type == "cuda":
            # is_bf16_supported() also says yes where bf16 is only emulated (Volta, Turing); Ampere (8.x) and newer
            # run it natively.
            native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8
            return torch.bfloat16 if native_bf16 else torch.float16
        return torch.bfloat16 if _cpu_has_fast_bf16() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def load_preprocess_config(source: str, **hub) -> PreprocessConfig:
    """The checkpoint's own preprocessor_config.json: tsf will not guess sizes or normalisation."""
    return read_preprocess_config(preprocessor_file(source, **hub))


def preprocessor_file(source: str, **hub) -> Path:
    """Where the checkpoint's preprocessor_config.json is (downloaded if need be); a CheckpointError without one."""
    processor_file = resolve_file(source, PREPROCESSOR_NAME, required=False, **hub)
    if processor_file is None:
        raise CheckpointError(
            f"{source} has no {PREPROCESSOR_NAME}: tsf needs the checkpoint's own size and image_mean/image_std, "
            "and will not guess them"
        )
    return processor_file


def read_preprocess_config(path: Path) -> PreprocessConfig:
    return PreprocessConfig.from_dict(read_json_object(path, "preprocessor config"))


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file that must hold an object; a CheckpointError naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable {what} ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a {what} must be a JSON object")
    return data


class BasePredictor:
    """What every runtime's predictor offers the runner: a checkpoint's labels, preprocessing and default views, and
    uint8 views in, probabilities or embeddings out (float32 numpy arrays, whatever ran them)."""

    labels: list[str]
    preprocess_config: PreprocessConfig
    info: ModelInfo
    preset: Preset | None  # the preset the model came from, if any (its training clip sets a timeline's window)
    default_views: ViewOptions  # the views the checkpoint was evaluated with

    def view_options(self, **overrides) -> ViewOptions:
        """The preset's views with the user's choices (those not None) on top. Choosing a sampling other than
        stride drops the preset's stride settings, which mean nothing to the others."""
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if chosen.get("sampling", "stride") != "stride":
            chosen = {"stride": 1, "target_fps": None, "start": None, **chosen}
        return replace(self.default_views, **chosen)

    def ready(self, views: ViewOptions) -> None:
        """Do now whatever the first batch of ``views`` would otherwise wait for (the onnx runtime opens its graph
        for their frame count and size, exporting it on the first run), so that a caller can show it as loading."""

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 views (V, T, h, w, 3) -> each view's probabilities (V, labels), float32."""
        raise NotImplementedError

    def embeddings(self, pixels: np.ndarray, pool: str = "cls") -> np.ndarray:
        """uint8 views (V, T, h, w, 3) -> each view's pooled final-norm tokens (V, hidden), float32: the class token
        (``pool="cls"``) or the mean of the patch tokens (``"mean"``)."""
        raise NotImplementedError


def preset_views(preset: Preset | None, frames: int) -> ViewOptions:
    """The views a checkpoint was evaluated with: its preset's, else ``frames`` (its config's) uniform, one view."""
    if preset is None:
        return ViewOptions(frames=frames)
    return ViewOptions(
        frames=preset.frames,
        sampling=preset.sampling,
        stride=preset.frame_sample_rate or 1,
        target_fps=preset.target_fps,
        clips=preset.clips,
        crops=preset.crops,
    )


class Predictor(BasePredictor):
    """A classification checkpoint on a device, in a precision, run by PyTorch: uint8 views in, probabilities or
    embeddings out.

    ``model`` is a preset name, a folder in the Hugging Face layout or a hub id. ``default_views`` are the views the
    checkpoint was evaluated with (its preset's, else its config's frame count, uniform, one view).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool | None = None,
        token: str | None = None,
        cache_dir: str | None = None,
    ):
        import torch

        from ..model.timesformer import TimesformerForVideoClassification

        source, preset = resolve_model(model)
        self.preset = preset  # None for a folder or hub id that is not a preset
        if revision is None and preset is not None:
            revision = preset.revision
        hub = {"revision": revision, "local_files_only": local_files_only, "token": token, "cache_dir": cache_dir}
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.preprocess_config = load_preprocess_config(source, **hub)
        network = TimesformerForVideoClassification.from_pretrained(source, **hub)
        self.model = network.to(device=self.device, dtype=self.dtype).eval()
        self.config = network.config
        self.labels = [self.config.id2label.get(i, f"LABEL_{i}") for i in range(self.config.num_labels)]
        self.info = ModelInfo(
            name=model,
            source=source,
            revision=getattr(self.config, "commit_hash", None) or revision,
            dtype=dtype_name(self.dtype),
            device=str(self.device),
            runtime="torch",
        )
        self.default_views = preset_views(preset, self.config.num_frames)
        self._table = torch.from_numpy(value_table(self.preprocess_config)).to(self.device)

    def pixel_values(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 views (V, T, h, w, 3) -> pixel_values (V, T, 3, h, w) on the device, in the model's precision. On a
        GPU the uint8 bytes are copied from pinned memory without blocking, and normalised there."""
        import torch

        pixels = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            pixels = pixels.pin_memory().to(self.device, non_blocking=True)
        from ..media.preprocess import normalize

        return normalize(pixels, self._table).to(self.dtype)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        if self.config.num_labels < 1:
            raise CheckpointError(f"{self.info.source} has no classification head: use it with tsf embed")
        with torch.inference_mode():
            features = self.model.forward_features(self.pixel_values(pixels))
            return self.model.forward_head(features).float().softmax(-1).cpu().numpy()

    def embeddings(self, pixels: np.ndarray, pool: str = "cls") -> np.ndarray:
        """Pooling happens on the device, so only the vectors cross over."""
        import torch

        with torch.inference_mode():
            features = self.model.forward_features(self.pixel_values(pixels))
            return self.model.forward_head(features, pool=pool, pre_logits=True).float().cpu().numpy()
