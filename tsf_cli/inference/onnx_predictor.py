"""The model through ONNX Runtime: a predictor with ``Predictor``'s interface (``BasePredictor``) that runs a graph
exported from the checkpoint, and never imports torch once that graph is in the cache.

``model`` is what ``Predictor`` takes (a preset, a folder, a hub id), whose graphs come from tsf's cache
(``graphs.py``): one per frame count and frame size, exported from the checkpoint the first time it is needed. Or it is
an .onnx file that ``tsf export`` wrote, which carries its own labels and preprocessing and takes the frames and size
it was exported for.

Devices: ``cpu`` is ONNX Runtime's CPU provider, or where the onnxruntime-openvino package stands in for onnxruntime,
its OpenVINO provider in fp32 (faster on Intel CPUs), with the CPU one behind it. ``cuda``, ``cuda:N``, and ``auto``
where the CUDA provider is installed (it comes with the onnxruntime-gpu package), run on the CUDA provider with the CPU
one behind it; without it, or when it cannot start, the run falls back to the CPU with one warning.

Dtypes: ``auto`` is fp32 on the CPU and fp16 on CUDA; ``fp16`` on the CPU runs, but slower than fp32 (the CPU provider
computes most of it in fp32 behind casts); there is no ``bf16``, which the CPU provider has no kernels for.

Views arrive as uint8 and are normalised here in numpy (``media.preprocess.normalize_array``: the same floats as the
torch runtime's, bit for bit).
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, MissingDependencyError, ModelNotFoundError, UsageError, first_line
from ..media.limits import usable_cores
from ..media.preprocess import PreprocessConfig, normalize_array, value_table
from ..model.hub import resolve_model, snapshot_commit
from ..model.onnx_format import EMBEDDING_OUTPUTS, INPUT, GraphInfo, config_frames, config_labels
from ..presets import DEFAULT_MODEL
from ..results import POOLS, ModelInfo
from .graphs import export_checkpoint, graph_key, graph_path, prune, resolve_checkpoint
from .predictor import BasePredictor, preset_views, read_json_object
from .views import ViewOptions

CUDA = "CUDAExecutionProvider"
OPENVINO = "OpenVINOExecutionProvider"  # in the onnxruntime-openvino package, instead of onnxruntime
CPU = "CPUExecutionProvider"
ONNX_DTYPES = ("auto", "fp32", "fp16")


def onnxruntime():
    """The onnxruntime module, or one line naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("--runtime onnx", "onnxruntime", "onnx") from None
    return onnxruntime


class OnnxPredictor(BasePredictor):
    """A classification checkpoint, or an exported graph, run by ONNX Runtime: uint8 views in, probabilities or
    embeddings out. ``config`` (the checkpoint's ``TimesformerConfig``) is the one attribute that imports torch."""

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
        self._ort = onnxruntime()
        if dtype not in ONNX_DTYPES:
            raise UsageError(f"--runtime onnx runs fp32 or fp16 graphs, not --dtype {dtype} (auto: fp32 on the CPU)")
        self.device, self._providers = choose_providers(self._ort, device)
        self.dtype = dtype if dtype != "auto" else "fp16" if self.device.startswith("cuda") else "fp32"
        self._sessions: dict[tuple[int, int, int], tuple[Any, GraphInfo]] = {}
        self._files = None
        if str(model).endswith(".onnx"):
            source, graph = self._open_file(Path(model), dtype)
            config, preprocessor, revision, preset = graph.config, graph.preprocessor, graph.revision, None
            frames = graph.frames
        else:
            source, preset = resolve_model(model)
            if revision is None and preset is not None:
                revision = preset.revision
            hub = {"revision": revision, "local_files_only": local_files_only, "token": token, "cache_dir": cache_dir}
            self._files = resolve_checkpoint(source, **hub)
            config = read_json_object(self._files.config, "config")
            preprocessor = read_json_object(self._files.preprocessor, "preprocessor config")
            revision = snapshot_commit(self._files.config) or revision
            frames = None
        try:
            self.labels = config_labels(config)
            frames = frames or config_frames(config)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{source}: invalid config ({type(exc).__name__}: {exc})") from None
        if preprocessor is None:
            raise CheckpointError(f"{source}: the graph carries no preprocessing (tsf.preprocessor_config)")
        self._config = config
        self.preprocess_config = PreprocessConfig.from_dict(preprocessor)
        self.preset = preset  # None for a graph file, a folder or hub id that is not a preset
        self.default_views = preset_views(preset, frames)
        self.info = ModelInfo(
            name=str(model), source=source, revision=revision, dtype=self.dtype, device=self.device, runtime="onnx"
        )
        self._table = value_table(self.preprocess_config)

    @functools.cached_property
    def config(self):
        """The checkpoint's ``TimesformerConfig``. Importing it imports torch, which nothing else here needs."""
        from ..model.timesformer import TimesformerConfig

        return TimesformerConfig.from_dict(self._config)

    def ready(self, views: ViewOptions) -> None:
        if self.preprocess_config.do_center_crop:  # else the frame size depends on each video
            self._session(views.frames, *self.preprocess_config.crop_size)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        if not self.labels:
            raise CheckpointError(f"{self.info.source} has no classification head: use it with tsf embed")
        logits = self._run("logits", pixels)
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)

    def embeddings(self, pixels: np.ndarray, pool: str = "cls") -> np.ndarray:
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        return self._run(EMBEDDING_OUTPUTS[pool], pixels)

    def _run(self, output: str, pixels: np.ndarray) -> np.ndarray:
        session, graph = self._session(*pixels.shape[1:4])
        if output not in graph.outputs:
            raise UsageError(
                f"{self.info.name} gives {', '.join(graph.outputs)}, not {output}: export the graph that "
                "gives it (tsf export; --features for the embeddings)"
            )
        values = normalize_array(pixels, self._table)  # float32, cast for an fp16 graph
        values = values.astype(np.float16 if graph.dtype == "fp16" else np.float32, copy=False)
        (result,) = session.run([output], {INPUT: values})
        return result.astype(np.float32, copy=False)

    def _session(self, frames: int, height: int, width: int) -> tuple[Any, GraphInfo]:
        """The session for views of this frame count and size: opened once, from the cache (exported if need be)."""
        shape = (frames, height, width)
        if shape not in self._sessions:
            if self._files is None:  # an exported file, which takes one shape
                (fixed,) = self._sessions
                raise UsageError(
                    f"{self.info.name} takes {fixed[0]} frames of {fixed[1]}x{fixed[2]}, not {frames} of "
                    f"{height}x{width}: export a graph for those (tsf export --frames ... --image-size ...)"
                )
            self._sessions[shape] = self._cached(frames, height, width)
        return self._sessions[shape]

    def _cached(self, frames: int, height: int, width: int) -> tuple[Any, GraphInfo]:
        key = graph_key(self._files, frames, height, width, self.dtype)
        path = graph_path(self._files, frames, height, width, self.dtype, key)
        if path.is_file():
            try:
                opened = self._open(path)
                if opened[1].cache_key == key:
                    return opened
                why = "it was made from other files than its name says"
            except CheckpointError as exc:
                why = str(exc).removeprefix(f"{path}: ")
            warnings.warn(f"the cached graph {path} cannot be used ({why}): exporting it again", stacklevel=2)
        path.parent.mkdir(parents=True, exist_ok=True)
        export_checkpoint(self._files, path, frames=frames, image_size=(height, width), dtype=self.dtype, cache_key=key)
        prune(path)
        return self._open(path)

    def _open_file(self, path: Path, dtype: str) -> tuple[str, GraphInfo]:
        """An exported file as this predictor's one graph; the source it names (else the file) and its metadata."""
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: no such ONNX file")
        session, graph = self._open(path)
        if dtype != "auto" and dtype != graph.dtype:
            raise UsageError(f"{path} is an {graph.dtype} graph, not {dtype}: leave --dtype at auto, or export again")
        self.dtype = graph.dtype
        self._sessions[(graph.frames, graph.height, graph.width)] = (session, graph)
        return graph.source or str(path), graph

    def _open(self, path: Path) -> tuple[Any, GraphInfo]:
        """A session on the graph at ``path`` and its metadata; a CheckpointError if either cannot be read."""
        errors = _session_errors(self._ort)
        try:
            session = self._ort.InferenceSession(
                str(path), _session_options(self._ort), providers=self._providers, enable_fallback=0
            )
        except errors as exc:
            if not self.device.startswith("cuda"):
                raise CheckpointError(f"{path}: not a graph ONNX Runtime can load ({first_line(exc)})") from None
            warnings.warn(
                f"ONNX Runtime's CUDA provider did not start ({first_line(exc)}); running on the CPU", stacklevel=2
            )
            self._providers, self.device = [CPU], "cpu"
            return self._open(path)
        graph = GraphInfo.from_metadata(session.get_modelmeta().custom_metadata_map, str(path))
        if self.device.startswith("cuda") and CUDA not in session.get_providers():
            warnings.warn(
                "ONNX Runtime did not take the CUDA provider for this graph; running on the CPU", stacklevel=2
            )
            self._providers, self.device = [CPU], "cpu"
        return session, graph


def choose_providers(ort, device: str) -> tuple[str, list]:
    """The device that will run, and ONNX Runtime's providers for it, best first."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if device not in ("auto", "cpu") and match is None:
        raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    available = ort.get_available_providers()
    if device == "cpu" or CUDA not in available:
        if match is not None:
            warnings.warn(
                f"--device {device}: this onnxruntime has no CUDA provider (onnxruntime-gpu has it: "
                'pip install "tsf-cli[onnx-gpu]" instead of tsf-cli[onnx]); running on the CPU',
                stacklevel=2,
            )
        if OPENVINO in available:
            # On an AVX-512 Xeon its fp32 kernels ran TimeSformer-base 1.1x to 1.15x faster than the CPU provider's,
            # within 3e-6; its bf16 ("ACCURACY" is fp32 here) would move probabilities by 1e-4, so it is not asked for.
            settings = {"device_type": "CPU", "precision": "FP32", "num_of_threads": str(usable_cores())}
            return "cpu", [(OPENVINO, settings), CPU]
        return "cpu", [CPU]
    index = int(match.group(1) or 0) if match is not None else 0
    return f"cuda:{index}", [(CUDA, {"device_id": index}), CPU]


def _session_options(ort):
    """Options for speed: every graph optimisation (fused GEMM, bias and GELU kernels, constant folding), one thread
    per core this process may run on, and sequential execution (the graph is a chain: parallel branches buy nothing).
    ONNX Runtime's own warnings stay quiet; what matters of them (a provider that did not start) is tsf's warning."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = usable_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return options


def _session_errors(ort) -> tuple[type[Exception], ...]:
    """The exceptions ONNX Runtime raises for a graph it cannot load (its own classes, which derive from Exception)."""
    state = ort.capi.onnxruntime_pybind11_state
    return tuple(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception))
