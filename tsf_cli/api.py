"""The Python API behind every command: resolve a model, turn videos into views, views into results.

Data flows one way: path -> ``video.sample_clips`` -> ``preprocess.preprocess`` -> the model -> ``results`` (and
``writers`` downstream of that). Decoding can run in worker processes (``workers.WorkerPool``); the model always runs
in this process, on batches of views gathered across videos.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError, DeviceError, ModelNotFoundError, TsfError
from .presets import DEFAULT_MODEL, SAMPLINGS, Preset, all_presets, get_preset
from .results import ClipFrames, ModelInfo, Prediction, VideoEmbedding, VideoFailure, VideoResult

if TYPE_CHECKING:
    import torch

    from .preprocess import PreprocessConfig
    from .synthetic import SyntheticClip

DTYPES = ("auto", "fp32", "bf16", "fp16")
POOLS = ("cls", "mean")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class ViewOptions:
    """How one video becomes model input: which frames, and how many temporal clips and spatial crops."""

    frames: int
    sampling: str = "uniform"
    frame_sample_rate: int = 1
    target_fps: float | None = None
    clips: int = 1
    crops: int = 1
    start: float | None = None  # stride sampling: first window at this second (None: windows centred)
    stream: int | None = None

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.frame_sample_rate < 1:
            raise ValueError(f"stride must be at least 1, got {self.frame_sample_rate}")
        if self.clips < 1:
            raise ValueError(f"clips must be at least 1, got {self.clips}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops}")
        if self.start is not None and self.start < 0:
            raise ValueError(f"start must be a time in seconds >= 0, got {self.start}")
        if self.sampling != "stride" and (self.frame_sample_rate != 1 or self.start is not None):
            raise ValueError(f"stride and start go with --sampling stride, not {self.sampling}")


@dataclass(frozen=True)
class VideoViews:
    """Everything the model needs from one video: its views as one tensor, and the frames they came from."""

    path: str
    pixel_values: torch.Tensor  # (clips * crops, frames, 3, height, width) float32
    clips: tuple[ClipFrames, ...]
    crops: int


def load_views(
    path: str, options: ViewOptions, preprocess_config: PreprocessConfig, timeout: float | None = None
) -> VideoViews:
    """Decode and preprocess one video. Pure and picklable, so it runs the same in a worker process."""
    from .preprocess import preprocess
    from .video import DecodeLimits, sample_clips

    limits = DecodeLimits() if timeout is None else DecodeLimits(timeout_s=timeout)
    clips = sample_clips(
        path,
        options.frames,
        options.sampling,
        clips=options.clips,
        frame_sample_rate=options.frame_sample_rate,
        target_fps=options.target_fps,
        start=options.start,
        stream=options.stream,
        limits=limits,
    )
    pixel_values = preprocess([clip.frames for clip in clips], preprocess_config, crops=options.crops)
    frames = tuple(ClipFrames(tuple(c.indices), tuple(c.timestamps), c.padded) for c in clips)
    return VideoViews(path, pixel_values, frames, options.crops)


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {device} was asked for but {build}; use --device cpu (or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif resolved.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
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


def _dtype_name(dtype: torch.dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def resolve_model(model: str) -> tuple[str, Preset | None]:
    """Map what the user typed to a source that ``from_pretrained`` takes, and the preset behind it if any."""
    preset = get_preset(model)
    if preset is not None and preset.bundled is not None and not (preset.bundled_path / "config.json").is_file():
        raise ModelNotFoundError(
            f"the bundled model {preset.name!r} is missing from this installation ({preset.bundled_path}); "
            f"rebuild it with: python -m tsf_cli.synthetic --build-demo {preset.bundled_path}"
        )
    if preset is not None:
        return preset.source, preset
    if os.path.isdir(model):
        return model, None
    looks_like_path = model.startswith((".", "~", os.sep)) or model.count("/") > 1 or os.sep in model.strip("/")
    if _HUB_ID.match(model) and not os.path.exists(model):
        return model, None
    if looks_like_path or os.path.exists(model):
        raise ModelNotFoundError(f"model folder {model!r} does not exist (or is not a folder)")
    names = ", ".join(all_presets())
    raise ModelNotFoundError(
        f"unknown model {model!r}: not a preset ({names}), an existing folder, or a hub id like "
        "facebook/timesformer-base-finetuned-k400"
    )


class Classifier:
    """A model ready for inference, with its preprocessing and the views its checkpoint was evaluated with."""

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
        import json

        from .checkpoints import resolve_file
        from .model import TimesformerForVideoClassification
        from .preprocess import PreprocessConfig

        source, preset = resolve_model(model)
        if revision is None and preset is not None:
            revision = preset.revision
        hub = {"revision": revision, "local_files_only": local_files_only, "token": token, "cache_dir": cache_dir}
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        processor_file = resolve_file(source, "preprocessor_config.json", required=False, **hub)
        if processor_file is None:
            raise CheckpointError(
                f"{source} has no preprocessor_config.json: tsf needs the checkpoint's own size and "
                "image_mean/image_std, and will not guess them"
            )
        try:
            processor = json.loads(Path(processor_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{processor_file}: not a readable preprocessor config ({exc})") from exc
        self.preprocess_config = PreprocessConfig.from_dict(processor)
        network = TimesformerForVideoClassification.from_pretrained(source, **hub)
        self.model = network.to(device=self.device, dtype=self.dtype).eval()
        self.config = network.config
        self.labels = [self.config.id2label.get(i, f"LABEL_{i}") for i in range(self.config.num_labels)]
        self.info = ModelInfo(
            name=model,
            source=source,
            revision=getattr(self.config, "commit_hash", None) or revision,
            dtype=_dtype_name(self.dtype),
            device=str(self.device),
        )
        if preset is not None:
            self.default_views = ViewOptions(
                frames=preset.frames,
                sampling=preset.sampling,
                frame_sample_rate=preset.frame_sample_rate or 1,
                target_fps=preset.target_fps,
                clips=preset.clips,
                crops=preset.crops,
            )
        else:
            self.default_views = ViewOptions(frames=self.config.num_frames)

    def view_options(self, **overrides) -> ViewOptions:
        """The preset's views with the user's choices (those not None) on top. Choosing a sampling other than
        stride drops the preset's stride settings, which mean nothing to the others."""
        chosen = {k: v for k, v in overrides.items() if v is not None}
        if chosen.get("sampling", "stride") != "stride":
            chosen = {"frame_sample_rate": 1, "target_fps": None, "start": None, **chosen}
        return replace(self.default_views, **chosen)

    def forward(self, pixel_values: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        """One batch of views -> probabilities (views, labels), or with ``pool`` the pooled final-norm tokens
        (views, hidden); fp32, on the CPU. Pooling happens on the device, so only the result crosses over."""
        import torch

        with torch.inference_mode():
            pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
            tokens = self.model.timesformer(pixel_values).last_hidden_state  # (views, 1 + patches, hidden)
            if pool == "cls":
                return tokens[:, 0].float().cpu()
            if pool == "mean":
                return tokens[:, 1:].float().mean(1).cpu()
            return self.model.classifier(tokens[:, 0]).float().softmax(-1).cpu()

    def _result(self, views: VideoViews, probabilities: torch.Tensor, top_k: int) -> VideoResult:
        mean = probabilities.mean(0)  # average over the clips x crops views, as the original test protocol does
        top = mean.topk(min(top_k, mean.numel()))
        predictions = tuple(
            Prediction(self.labels[i], int(i), float(p))
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        return VideoResult(views.path, predictions, views.clips, views.crops, self.info)

    def _embedding(self, views: VideoViews, vectors: torch.Tensor, pool: str) -> VideoEmbedding:
        return VideoEmbedding(views.path, vectors.mean(0).numpy(), pool, views.clips, self.info)

    def run(
        self,
        paths: Iterable[str],
        views: ViewOptions | None = None,
        *,
        top_k: int = 5,
        pool: str | None = None,
        batch_size: int = 4,
        workers: int = 0,
        timeout: float | None = None,
    ) -> Iterator[VideoResult | VideoEmbedding | VideoFailure]:
        """Classify (or, with ``pool``, embed) each path, yielding one record per path as soon as it is known.

        Views of up to ``batch_size`` videos run through the model together. With ``workers`` > 0 decoding runs in
        that many processes, overlapped with the model, and a decoder that crashes or hangs past ``timeout``
        seconds fails only its own file.
        """
        if pool is not None and pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if top_k < 1:
            raise ValueError(f"top-k must be at least 1, got {top_k}")
        if pool is None and self.config.num_labels < 1:
            raise CheckpointError(f"{self.info.source} has no classification head: use it with tsf embed")
        views = views or self.default_views
        batch: list[VideoViews] = []
        for loaded in _load_all(paths, views, self.preprocess_config, workers, timeout):
            if isinstance(loaded, VideoFailure):
                yield loaded
                continue
            batch.append(loaded)
            if len(batch) >= batch_size:
                yield from self._run_batch(batch, top_k, pool)
                batch = []
        if batch:
            yield from self._run_batch(batch, top_k, pool)

    def _run_batch(self, batch: list[VideoViews], top_k: int, pool: str | None):
        import torch

        outputs = self.forward(torch.cat([v.pixel_values for v in batch]), pool)
        start = 0
        for views in batch:
            end = start + views.pixel_values.shape[0]
            if pool is None:
                yield self._result(views, outputs[start:end], top_k)
            else:
                yield self._embedding(views, outputs[start:end], pool)
            start = end


def _load_task(task: tuple[str, ViewOptions, PreprocessConfig, float | None]) -> VideoViews:
    return load_views(*task)


def _failure(path: str, error: str, message: str) -> VideoFailure:
    return VideoFailure(path, error, message if path in message else f"{path}: {message}")


def _load_all(paths, views, preprocess_config, workers, timeout) -> Iterator[VideoViews | VideoFailure]:
    """Each path's views, or its failure: the same outcome in this process as in a worker, where anything that
    goes wrong with one file (a decoder error, an exception from PyAV itself) becomes that file's record."""
    tasks = ((str(path), views, preprocess_config, timeout) for path in paths)
    if workers <= 0:
        for task in tasks:
            try:
                yield _load_task(task)
            except Exception as exc:  # noqa: BLE001 - one file's failure is that file's record, as in the workers
                yield _failure(task[0], type(exc).__name__, str(exc) or repr(exc))
        return
    from .workers import TaskFailure, WorkerPool

    with WorkerPool(_load_task, workers, timeout) as pool:
        for task, outcome in pool.imap_unordered(tasks):
            if isinstance(outcome, TaskFailure):
                yield _failure(task[0], outcome.error, outcome.message)
            else:
                yield outcome


def classify(videos: Sequence[str | os.PathLike], *, model: str = DEFAULT_MODEL, top_k: int = 5, **options):
    """Top-k labels of each video, in the order given; a video that fails gets a VideoFailure, not an exception.

    ``options``: revision, device, dtype (as for ``Classifier``) and frames, sampling, stride, clips, crops, start
    (as for ``Classifier.view_options``, None meaning the model's own).
    """
    classifier, views = _prepare(model, **options)
    paths = [str(v) for v in videos]
    records = {r.path: r for r in classifier.run(paths, views, top_k=top_k)}
    return [records[p] for p in paths]


def embed(videos: Sequence[str | os.PathLike], *, model: str = DEFAULT_MODEL, pool: str = "cls", **options):
    """One vector per video (the final-norm CLS token, or the mean of the patch tokens), in the order given."""
    classifier, views = _prepare(model, **options)
    paths = [str(v) for v in videos]
    records = {r.path: r for r in classifier.run(paths, views, pool=pool)}
    return [records[p] for p in paths]


@dataclass(frozen=True)
class DemoRun:
    """A generated clip, whose motion is the truth, and what the bundled demo model made of it."""

    clip: SyntheticClip
    seed: int
    result: VideoResult | VideoFailure


def run_demo(
    motion: str | None = None, *, seed: int | None = None, output: str | os.PathLike | None = None, top_k: int = 3
) -> DemoRun:
    """Generate a synthetic motion clip (a random motion and seed unless given) and classify it with the demo model
    bundled in the package: no network. ``output`` keeps the clip there, in the container its suffix names; it is
    never written over an existing file, and an error removes what was written of it."""
    import shutil
    import tempfile

    import numpy as np

    from .errors import OutputError
    from .synthetic import DEFAULT_CODECS, MOTIONS, write_clip

    if motion is not None and motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}: use one of {', '.join(MOTIONS)}")
    suffix = ".mp4"
    if output is not None:
        output = Path(output)
        suffix = output.suffix.lower()
        if output.exists():
            raise OutputError(f"{output} already exists: name another file")
        if suffix not in DEFAULT_CODECS:
            raise ValueError(
                f"{output}: cannot write a {output.suffix or 'suffixless'} clip; use {', '.join(DEFAULT_CODECS)}"
            )
        if not output.parent.is_dir():
            raise OutputError(f"{output}: no such folder {output.parent}")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    # Load first: a model that cannot load must not leave a clip behind.
    classifier = Classifier("demo", device="cpu", dtype="fp32")  # a model this small gains nothing from bf16
    with tempfile.TemporaryDirectory(prefix="tsf-demo-") as scratch:
        try:
            clip = write_clip(Path(scratch) / f"{motion or 'demo'}-seed{seed}{suffix}", motion, seed=seed)
        except OSError as exc:
            raise TsfError(f"cannot write the demo clip in {scratch}: {exc.strerror or exc}") from None
        (result,) = classifier.run([str(clip.path)], top_k=top_k)
        if output is not None:
            try:
                with open(clip.path, "rb") as source, open(output, "xb") as kept:  # x: a file made meanwhile stays
                    try:
                        shutil.copyfileobj(source, kept)
                    except BaseException:
                        kept.close()
                        output.unlink()
                        raise
            except FileExistsError:
                raise OutputError(f"{output} already exists: name another file") from None
            except OSError as exc:
                raise OutputError(f"{output}: cannot write the clip: {exc.strerror or exc}") from None
    # The scratch copy is gone: name the clip by where it was kept, or by its bare file name.
    shown = output if output is not None else Path(clip.path.name)
    return DemoRun(clip=replace(clip, path=shown), seed=seed, result=replace(result, path=str(shown)))


def _prepare(
    model: str,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    start: float | None = None,
) -> tuple[Classifier, ViewOptions]:
    classifier = Classifier(model, revision=revision, device=device, dtype=dtype)
    views = classifier.view_options(
        frames=frames, sampling=sampling, frame_sample_rate=stride, clips=clips, crops=crops, start=start
    )
    return classifier, views


def list_inputs(source: str, *, recursive: bool = False, exclude: Iterable[str] = ()) -> list[str]:
    """The files one batch argument names, as absolute paths: a folder (every non-hidden file, sorted), a .txt list
    (one path a line, relative ones from the list's folder, # comments), a glob, or one file.

    Every file in a folder counts, whatever its extension: a text file among videos gets an error record rather
    than silently vanishing from the output. Absolute paths make ``--resume`` match its records whatever the
    working directory. ``exclude`` keeps tsf's own output files out of the list.
    """
    import glob

    excluded = {os.path.abspath(p) for p in exclude}
    path = Path(source).expanduser()
    if path.is_dir():
        walker = path.rglob("*") if recursive else path.glob("*")
        found = [
            str(p)
            for p in walker
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
    elif path.is_file() and path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TsfError(f"{source}: cannot read the list of paths ({exc})") from exc
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        found = [str(path.parent / Path(entry).expanduser()) for entry in entries]
    elif path.is_file():
        found = [str(path)]
    elif glob.has_magic(source):
        found = [p for p in glob.glob(os.path.expanduser(source), recursive=recursive) if os.path.isfile(p)]
        if not found:
            raise TsfError(f"{source}: the pattern matches no file")
    else:
        raise TsfError(f"{source}: no such file, folder or matching glob")
    absolute = (os.path.abspath(p) for p in found)
    return sorted(dict.fromkeys(p for p in absolute if p not in excluded))
