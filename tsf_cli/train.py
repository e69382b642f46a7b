"""Fine-tune a TimeSformer on your own labels (``train``) and measure one on a labelled set (``evaluate``).

A labelled set is a folder with one subfolder of videos per class (the subfolder's name is the label), or a CSV file
of ``path,label`` rows whose paths are relative to the CSV's folder. Only files with a video suffix count, so notes and
annotations may sit beside the videos.

``train`` keeps the base model's encoder and gives it a new classification head when the labels differ from the
base's (the base's own head is kept when they are the same set). With ``from_scratch=True`` the base supplies only
the architecture (config.json) and the preprocessing (preprocessor_config.json): the weights start random, which is
how the bundled demo model was made (see ``tsf_cli.synthetic``).

Every epoch ends with a checkpoint: ``output_dir`` then holds a Hugging Face-layout model (config.json,
model.safetensors, preprocessor_config.json) that ``tsf classify --model OUT_DIR`` and transformers load, and
``training_state.pt`` (weights, optimizer, schedule, step counter, random state) from which ``resume=True``
continues with the next epoch. Decoding runs in DataLoader worker processes started with spawn.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .api import Classifier, ViewOptions, load_views, resolve_device, resolve_model
from .checkpoints import write_atomically
from .errors import CheckpointError, TsfError, VideoError
from .results import ModelInfo, VideoFailure

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv", ".gif"}
)
STATE_FILE = "training_state.pt"


class DatasetError(TsfError):
    """A labelled set that cannot be used: missing, empty, malformed, or with labels the model does not know."""

    exit_code = 2


# --------------------------------------------------------------------------------------------------- labelled sets


@dataclass(frozen=True)
class LabelledVideo:
    path: str
    label: str


def list_labelled_videos(source: str | os.PathLike) -> tuple[LabelledVideo, ...]:
    """The videos of a class-per-subfolder folder or a ``path,label`` CSV, in a stable order."""
    source = Path(source)
    if source.is_dir():
        found = []
        for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(folder.rglob("*")):
                hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
                if path.is_file() and not hidden and path.suffix.lower() in VIDEO_SUFFIXES:
                    found.append(LabelledVideo(str(path), folder.name))
        if not found:
            raise DatasetError(f"{source}: no videos found in class subfolders (expected DIR/<label>/<video>)")
        return tuple(found)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _read_csv(source)
    raise DatasetError(f"{source}: not a folder of class subfolders nor a .csv of path,label rows")


def _read_csv(source: Path) -> tuple[LabelledVideo, ...]:
    found = []
    with source.open(newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.reader(file), start=1):
            if not row or row[0].startswith("#") or (line == 1 and [c.strip() for c in row] == ["path", "label"]):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DatasetError(f"{source}:{line}: expected 'path,label', got {','.join(row)!r}")
            found.append(LabelledVideo(str(source.parent / row[0].strip()), row[1].strip()))
    if not found:
        raise DatasetError(f"{source}: no path,label rows")
    return tuple(found)


def split_held_out(
    videos: Sequence[LabelledVideo], fraction: float, seed: int
) -> tuple[tuple[LabelledVideo, ...], tuple[LabelledVideo, ...]]:
    """Hold out ``fraction`` of each class (at least one video of any class that has two), drawn with ``seed``."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    kept, held = [], []
    rng = np.random.default_rng(seed)
    for label in sorted({v.label for v in videos}):
        members = [v for v in videos if v.label == label]
        count = (
            0 if fraction == 0 or len(members) < 2 else min(max(round(len(members) * fraction), 1), len(members) - 1)
        )
        chosen = set(rng.permutation(len(members))[:count].tolist())
        for i, video in enumerate(members):
            (held if i in chosen else kept).append(video)
    return tuple(kept), tuple(held)


# ----------------------------------------------------------------------------------------------------- data loading


@dataclass(frozen=True)
class Augment:
    """Training-time changes that keep a clip's label: which frames, and which square of the picture."""

    min_crop_scale: float = 0.5  # smallest crop, as a fraction of the area of the picture's central square
    temporal_jitter: bool = True  # a random frame in each of the clip's equal segments, not the evenly spaced ones
    flip: bool = False  # mirror left-right half of the time: only where direction is not part of the label


@dataclass(frozen=True)
class _Item:
    index: int
    pixel_values: torch.Tensor | None  # (views, frames, 3, height, width), None when the video failed
    error: VideoFailure | None = None


class VideoDataset(Dataset):
    """Decodes and preprocesses one video per item, in whichever process asks for it (picklable, spawn-safe).

    Items are ``(index, seed)`` pairs from ``EpochSampler``: with a seed the clip is augmented as that seed says, so
    an epoch's data does not depend on how many workers share it; with ``None`` it is the evaluation view, the same
    one ``tsf classify`` would take.
    """

    def __init__(self, paths: Sequence[str], views: ViewOptions, preprocess_config, augment: Augment | None = None):
        self.paths = list(paths)
        self.views = views
        self.preprocess_config = preprocess_config
        self.augment = augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int | None]) -> _Item:
        index, seed = item
        path = self.paths[index]
        try:
            if seed is None or self.augment is None:
                return _Item(index, load_views(path, self.views, self.preprocess_config).pixel_values)
            return _Item(index, self._augmented(path, np.random.default_rng(seed)))
        except VideoError as exc:
            return _Item(index, None, VideoFailure(path, type(exc).__name__, str(exc)))

    def _augmented(self, path: str, rng: np.random.Generator) -> torch.Tensor:
        from .preprocess import preprocess
        from .video import sample_clips

        augment = self.augment
        clip = sample_clips(
            path,
            self.views.frames,
            self.views.sampling,
            frame_sample_rate=self.views.frame_sample_rate,
            target_fps=self.views.target_fps,
            seed=int(rng.integers(2**31)) if augment.temporal_jitter else None,
            stream=self.views.stream,
        )[0]
        frames = clip.frames  # (T, H, W, 3) uint8
        height, width = frames.shape[1:3]
        side = round(min(height, width) * math.sqrt(rng.uniform(augment.min_crop_scale, 1.0)))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        frames = frames[:, top : top + side, left : left + side]  # (T, side, side, 3), resized by preprocess
        if augment.flip and rng.random() < 0.5:
            frames = frames[:, :, ::-1]
        return preprocess([np.ascontiguousarray(frames)], self.preprocess_config)


class EpochSampler(Sampler):
    """Yields ``(index, seed)`` pairs: a fresh order and fresh augmentation seeds each epoch, all from one seed."""

    def __init__(self, size: int, seed: int, *, shuffle: bool = True, augment: bool = True):
        self.size, self.seed, self.shuffle, self.augment = size, seed, shuffle, augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, 2**63, self.size)
        for i in order.tolist():
            yield i, (int(seeds[i]) if self.augment else None)


def _collate(items: list[_Item]) -> tuple[torch.Tensor, torch.Tensor | None, list[VideoFailure]]:
    """(indices of the decoded videos, their pixel values (B, V, T, 3, H, W) or None, the failures)."""
    good = [item for item in items if item.pixel_values is not None]
    indices = torch.tensor([item.index for item in good], dtype=torch.long)
    pixels = torch.stack([item.pixel_values for item in good]) if good else None
    return indices, pixels, [item.error for item in items if item.error is not None]


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # the workers decode; the main process owns the cores for the model


def _loader(dataset: VideoDataset, sampler: EpochSampler, batch_size: int, num_workers: int, pin: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=_collate,
        num_workers=num_workers,
        multiprocessing_context="spawn" if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        pin_memory=pin,
    )


def _predict(
    forward: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, count: int
) -> tuple[np.ndarray, np.ndarray, list[VideoFailure]]:
    """Probabilities (count, labels) averaged over each video's views, a mask of the videos that decoded, failures."""
    probabilities, decoded, failures = None, np.zeros(count, dtype=bool), []
    for indices, pixels, failed in loader:
        failures.extend(failed)
        if pixels is None:
            continue
        batch, views = pixels.shape[:2]
        scores = forward(pixels.flatten(0, 1)).float().reshape(batch, views, -1).mean(1).cpu().numpy()
        if probabilities is None:
            probabilities = np.zeros((count, scores.shape[1]), dtype=np.float32)
        probabilities[indices.numpy()] = scores
        decoded[indices.numpy()] = True
    if probabilities is None:
        raise DatasetError(f"none of the {count} videos could be decoded; the first failure: {failures[0].message}")
    return probabilities, decoded, failures


# ------------------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class TrainProgress:
    """What a progress display shows: sent after every optimizer step, and once more when an epoch's checkpoint
    is written (then with ``epoch_done`` set and the held-out figures, when there is a held-out set)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # optimizer steps since the start of training, resumed runs included
    total_steps: int
    loss: float  # mean training loss over this epoch so far
    accuracy: float  # training top-1 over this epoch so far (of augmented clips)
    lr: float
    elapsed: float  # seconds in this run
    remaining: float | None  # estimated seconds to the end of training
    epoch_done: bool = False
    val_loss: float | None = None
    val_accuracy: float | None = None
    skipped: int = 0  # videos that failed to decode so far


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    labels: tuple[str, ...]
    step: int
    history: tuple[EpochStats, ...]  # every epoch, those of resumed-from runs included
    train_size: int
    val_size: int
    skipped: tuple[VideoFailure, ...] = field(default=())  # videos that failed to decode in this run

    @property
    def val_accuracy(self) -> float | None:
        return self.history[-1].val_accuracy if self.history else None


def _lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to the full rate, then cosine decay to zero at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def init_temporal_offsets(network) -> None:
    """Start a fresh divided space-time model with temporal attention that already compares frames.

    With transformers' initialisation a TimeSformer trained from scratch is blind to frame order: its time
    embeddings start at zero, which makes the whole network a symmetric function of its frames, and its temporal
    branch (value, output and temporal_dense: three small random projections in a row) adds almost nothing to a
    token. Classes that differ only in order, such as moving left and moving right, then sit at chance for thousands
    of steps. So, as ConViT starts spatial attention as convolutions, each temporal head starts as a fixed frame
    offset (+1, -1, +2, -2, ...), like a temporal convolution: the time embeddings' last ``num_frames`` channels hold
    a one-hot code of the frame (channels the patch and position embeddings leave at zero), each head's first
    ``num_frames`` query and key channels match frame t to frame t + offset, and the temporal value and output
    projections start orthogonal, at unit gain. All of it stays trainable; a learning rate around 3e-4 keeps it.
    """
    config = network.config
    if config.attention_type != "divided_space_time":
        return
    d, heads, frames = config.hidden_size, config.num_attention_heads, config.num_frames
    head_dim = d // heads
    if head_dim < frames:
        raise ValueError(f"temporal offsets need a head size ({head_dim}) of at least the frame count ({frames})")
    amplitude, sharpness = 2.0, 6.0  # the code's size in a token; the matched pair's attention logit
    # A token's variance before the layer norm: patch channels from transformers' initialisation on pixels of unit
    # power, plus the code. The norm divides the code by its square root, and the query scale undoes that.
    patch_variance = config.initializer_range**2 * config.num_channels * config.patch_size**2
    token_variance = ((d - frames) * patch_variance + amplitude**2) / d
    query_scale = sharpness * head_dim**0.5 * token_variance / amplitude**2
    code = slice(d - frames, d)
    embeddings = network.timesformer.embeddings
    with torch.no_grad():
        embeddings.patch_embeddings.projection.weight[code] = 0
        embeddings.patch_embeddings.projection.bias[code] = 0
        embeddings.position_embeddings[..., code] = 0
        embeddings.cls_token[..., code] = 0
        embeddings.time_embeddings.zero_()
        embeddings.time_embeddings[0, :, code] = amplitude * torch.eye(frames)
        for layer in network.timesformer.encoder.layer:
            qkv = layer.temporal_attention.attention.qkv
            for h in range(heads):
                offset = (h // 2 + 1) * (1 if h % 2 == 0 else -1)
                query, key = (
                    slice(h * head_dim, h * head_dim + frames),
                    slice(d + h * head_dim, d + h * head_dim + frames),
                )
                for rows in (query, key):
                    qkv.weight[rows] = 0
                    if qkv.bias is not None:
                        qkv.bias[rows] = 0
                for t in range(frames):
                    qkv.weight[key.start + t, code.start + t] = 1.0  # the key of frame t is its code
                    if 0 <= t + offset < frames:
                        qkv.weight[query.start + t + offset, code.start + t] = query_scale  # frame t asks for t+offset
            torch.nn.init.orthogonal_(qkv.weight[2 * d :])
            torch.nn.init.orthogonal_(layer.temporal_attention.output.dense.weight)
            torch.nn.init.orthogonal_(layer.temporal_dense.weight)


def _base_model(model: str, labels: tuple[str, ...], *, from_scratch: bool, revision: str | None):
    """The network to train (head sized for ``labels``), its preprocessing config, and the label -> class id map."""
    from .checkpoints import resolve_file
    from .model import TimesformerConfig, TimesformerForVideoClassification
    from .preprocess import PreprocessConfig

    source, _preset = resolve_model(model)
    processor_file = resolve_file(source, "preprocessor_config.json", revision=revision)
    preprocess_config = PreprocessConfig.from_dict(json.loads(processor_file.read_text(encoding="utf-8")))
    label2id = {label: i for i, label in enumerate(labels)}
    if from_scratch:
        config = TimesformerConfig.from_pretrained(source, revision=revision)
        config.id2label, config.label2id = dict(enumerate(labels)), label2id
        network = TimesformerForVideoClassification(config)
        init_temporal_offsets(network)
        return network, preprocess_config, label2id
    network = TimesformerForVideoClassification.from_pretrained(source, revision=revision)
    config = network.config
    base_labels = [config.id2label[i] for i in range(config.num_labels)]
    if set(base_labels) == set(labels):
        return network, preprocess_config, {label: i for i, label in enumerate(base_labels)}
    network.classifier = torch.nn.Linear(config.hidden_size, len(labels))
    network.classifier.apply(network._init_weights)
    config.id2label, config.label2id = dict(enumerate(labels)), label2id
    return network, preprocess_config, label2id


def _save_checkpoint(network, preprocess_config, output_dir: Path, state: dict) -> None:
    """The loadable model first, then the resume state; every file is replaced whole, never left half-written."""
    network.save_pretrained(output_dir)
    text = json.dumps(preprocess_config.to_dict(), indent=2) + "\n"
    write_atomically(output_dir / "preprocessor_config.json", lambda p: p.write_text(text, encoding="utf-8"))
    write_atomically(output_dir / STATE_FILE, lambda p: torch.save(state, p))


def train(
    data_dir: str | os.PathLike,
    *,
    model: str,
    output_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    val_split: float = 0.1,
    from_scratch: bool = False,
    epochs: int = 10,
    batch_size: int = 8,
    grad_accum: int = 1,
    lr: float = 5e-5,
    weight_decay: float = 0.05,
    warmup: float = 0.1,
    max_grad_norm: float = 1.0,
    min_crop_scale: float = 0.5,
    flip: bool = False,
    num_workers: int = 2,
    device: str = "auto",
    mixed_precision: bool = True,
    resume: bool = False,
    seed: int = 0,
    revision: str | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train ``model`` on the labelled set ``data_dir`` and write the result to ``output_dir``.

    ``val_dir`` is the held-out set; without one, ``val_split`` of each class is held out (0 for none). ``warmup``
    is the fraction of optimizer steps spent warming up before the cosine decay. ``grad_accum`` batches make one
    optimizer step. On a GPU ``mixed_precision`` runs the forward pass in bf16 (fp16 with loss scaling where bf16
    is missing); on a CPU training is fp32. ``resume`` continues from ``output_dir/training_state.pt`` with the
    next epoch; a larger ``epochs`` than before extends the run (the rest of the schedule stretches to fit).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("grad_accum", grad_accum)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    output_dir = Path(output_dir)
    state = _load_state(output_dir) if resume else None
    if not resume and (output_dir / STATE_FILE).exists():
        raise TsfError(f"{output_dir} already holds a training run: pass resume to continue it, or another folder")

    videos = list_labelled_videos(data_dir)
    if val_dir is not None:
        train_videos, val_videos = videos, list_labelled_videos(val_dir)
    else:
        train_videos, val_videos = split_held_out(videos, val_split, seed)
    labels = tuple(sorted({v.label for v in train_videos}))
    unknown = sorted({v.label for v in val_videos} - set(labels))
    if unknown:
        raise DatasetError(f"{val_dir}: labels with no training videos: {', '.join(unknown)}")
    if state is not None and tuple(state["labels"]) != labels:
        raise DatasetError(f"{data_dir}: its labels differ from those of the run being resumed in {output_dir}")

    torch.manual_seed(seed)
    network, preprocess_config, label2id = _base_model(model, labels, from_scratch=from_scratch, revision=revision)
    target = resolve_device(device)
    network.to(target)
    views = ViewOptions(frames=network.config.num_frames)
    train_targets = torch.tensor([label2id[v.label] for v in train_videos])
    val_targets = np.array([label2id[v.label] for v in val_videos], dtype=np.int64)

    pin = target.type == "cuda"
    augment = Augment(min_crop_scale=min_crop_scale, flip=flip)
    train_sampler = EpochSampler(len(train_videos), seed)
    train_loader = _loader(
        VideoDataset([v.path for v in train_videos], views, preprocess_config, augment),
        train_sampler,
        batch_size,
        num_workers,
        pin,
    )
    val_loader = None
    if val_videos:
        val_sampler = EpochSampler(len(val_videos), seed, shuffle=False, augment=False)
        val_dataset = VideoDataset([v.path for v in val_videos], views, preprocess_config)
        val_loader = _loader(val_dataset, val_sampler, batch_size, num_workers, pin)

    steps_per_epoch = math.ceil(math.ceil(len(train_videos) / batch_size) / grad_accum)
    total_steps = steps_per_epoch * epochs
    decay = [p for n, p in network.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in network.named_parameters() if p.ndim < 2 or "embeddings" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    warmup_steps = round(warmup * total_steps)
    # a plain function: LambdaLR's state then holds no schedule of its own, so a resumed run takes this one
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup_steps, total_steps))
    autocast_dtype = None
    if target.type == "cuda" and mixed_precision:
        autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)

    history: list[EpochStats] = []
    step, first_epoch = 0, 0
    if state is not None:
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        step, first_epoch = state["step"], state["epoch"]
        history = [EpochStats(**h) for h in state["history"]]
    output_dir.mkdir(parents=True, exist_ok=True)

    def forward_probabilities(pixels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(target.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return network(pixels.to(target, non_blocking=pin)).logits.float().softmax(-1)

    skipped: list[VideoFailure] = []
    started, start_step = time.monotonic(), step
    for epoch in range(first_epoch, epochs):
        network.train()
        train_sampler.set_epoch(epoch)
        epoch_started = time.monotonic()
        loss_sum, correct, seen, micro = 0.0, 0, 0, 0
        batches = len(train_loader)
        optimizer.zero_grad(set_to_none=True)
        for batch, (indices, pixels, failed) in enumerate(train_loader):
            skipped.extend(failed)
            if pixels is not None:
                labels_batch = train_targets[indices].to(target)
                with torch.autocast(target.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    output = network(pixels[:, 0].to(target, non_blocking=pin), labels=labels_batch)
                scaler.scale(output.loss / grad_accum).backward()
                loss_sum += output.loss.item() * len(indices)
                correct += (output.logits.argmax(-1) == labels_batch).sum().item()
                seen += len(indices)
                micro += 1
            if micro and ((batch + 1) % grad_accum == 0 or batch + 1 == batches):
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(network.parameters(), max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step, micro = step + 1, 0
                if progress is not None:
                    elapsed = time.monotonic() - started
                    progress(
                        TrainProgress(
                            epoch=epoch + 1,
                            epochs=epochs,
                            step=step,
                            total_steps=total_steps,
                            loss=loss_sum / max(seen, 1),
                            accuracy=correct / max(seen, 1),
                            lr=scheduler.get_last_lr()[0],
                            elapsed=elapsed,
                            remaining=elapsed / (step - start_step) * (total_steps - step),
                            skipped=len(skipped),
                        )
                    )
        if seen == 0:
            raise DatasetError(f"{data_dir}: no training video could be decoded; first failure: {skipped[0].message}")

        val_loss = val_accuracy = None
        if val_loader is not None:
            network.eval()
            with torch.inference_mode():
                probabilities, decoded, failed = _predict(forward_probabilities, val_loader, len(val_videos))
            skipped.extend(failed)
            chosen = probabilities[decoded, val_targets[decoded]]
            val_loss = float(-np.log(np.maximum(chosen, 1e-12)).mean())
            val_accuracy = float((probabilities[decoded].argmax(1) == val_targets[decoded]).mean())
        stats = EpochStats(
            epoch=epoch + 1,
            step=step,
            train_loss=loss_sum / seen,
            train_accuracy=correct / seen,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            seconds=time.monotonic() - epoch_started,
        )
        history.append(stats)
        state = {
            "model": network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "epoch": epoch + 1,
            "labels": list(labels),
            "history": [h.to_dict() for h in history],
        }
        _save_checkpoint(network, preprocess_config, output_dir, state)
        if progress is not None:
            elapsed = time.monotonic() - started
            progress(
                TrainProgress(
                    epoch=epoch + 1,
                    epochs=epochs,
                    step=step,
                    total_steps=total_steps,
                    loss=stats.train_loss,
                    accuracy=stats.train_accuracy,
                    lr=scheduler.get_last_lr()[0],
                    elapsed=elapsed,
                    remaining=elapsed / max(step - start_step, 1) * (total_steps - step),
                    epoch_done=True,
                    val_loss=val_loss,
                    val_accuracy=val_accuracy,
                    skipped=len(skipped),
                )
            )
    return TrainResult(
        output_dir=output_dir,
        labels=labels,
        step=step,
        history=tuple(history),
        train_size=len(train_videos),
        val_size=len(val_videos),
        skipped=tuple(skipped),
    )


def _load_state(output_dir: Path) -> dict:
    path = output_dir / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume (no {STATE_FILE} in {output_dir})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot read the training state: {exc}") from exc


# ---------------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class ClassAccuracy:
    label: str
    count: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")


@dataclass(frozen=True)
class EvalResult:
    """Accuracy of a model on a labelled set. ``confusion[i][j]`` counts videos of ``labels[i]`` predicted as
    ``columns[j]``; ``columns`` is ``labels`` plus ``"(other)"`` when the model predicted a label outside them."""

    model: ModelInfo
    count: int  # videos that decoded and were scored
    top1: float
    top5: float  # top-k with k = min(5, the model's number of labels)
    labels: tuple[str, ...]
    columns: tuple[str, ...]
    per_class: tuple[ClassAccuracy, ...]
    confusion: tuple[tuple[int, ...], ...]
    failures: tuple[VideoFailure, ...]

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "count": self.count,
            "top1": self.top1,
            "top5": self.top5,
            "per_class": [{"label": c.label, "count": c.count, "accuracy": c.accuracy} for c in self.per_class],
            "confusion": {"rows": list(self.labels), "columns": list(self.columns), "counts": self.confusion},
            "failures": [f.to_dict() for f in self.failures],
        }


def evaluate(
    data_dir: str | os.PathLike,
    *,
    model: str,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
    num_workers: int = 2,
    frames: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    clips: int | None = None,
    crops: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Top-1 and top-5 accuracy, per-class accuracy and the confusion matrix of ``model`` on ``data_dir``.

    The views are those ``tsf classify`` takes for the model (its preset's, if it has one), with the same
    overrides. Every label of the set must be one of the model's; videos that fail to decode are listed in
    ``failures`` and left out of the figures. ``progress`` is called with (videos done, total).
    """
    videos = list_labelled_videos(data_dir)
    classifier = Classifier(model, revision=revision, device=device, dtype=dtype)
    views = classifier.view_options(
        frames=frames, sampling=sampling, frame_sample_rate=stride, clips=clips, crops=crops
    )
    model_ids = {label: i for i, label in enumerate(classifier.labels)}
    labels = tuple(sorted({v.label for v in videos}))
    unknown = [label for label in labels if label not in model_ids]
    if unknown:
        raise DatasetError(f"{data_dir}: labels the model does not know: {', '.join(unknown)}")

    sampler = EpochSampler(len(videos), 0, shuffle=False, augment=False)
    dataset = VideoDataset([v.path for v in videos], views, classifier.preprocess_config)
    loader = _loader(dataset, sampler, batch_size, num_workers, classifier.device.type == "cuda")
    done = 0

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        nonlocal done
        probabilities = classifier.forward(pixels)
        done += pixels.shape[0] // (views.clips * views.crops)
        if progress is not None:
            progress(done, len(videos))
        return probabilities

    probabilities, decoded, failures = _predict(forward, loader, len(videos))
    truth = np.array([model_ids[v.label] for v in videos])[decoded]
    probabilities = probabilities[decoded]
    k = min(5, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1)[:, :k]
    predicted = top[:, 0]

    row_of = {model_ids[label]: i for i, label in enumerate(labels)}
    other = any(p not in row_of for p in predicted.tolist())
    columns = labels + (("(other)",) if other else ())
    confusion = np.zeros((len(labels), len(columns)), dtype=np.int64)
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        confusion[row_of[t], row_of.get(p, len(labels))] += 1
    per_class = tuple(
        ClassAccuracy(label, int(confusion[i].sum()), int(confusion[i, i])) for i, label in enumerate(labels)
    )
    count = len(truth)
    return EvalResult(
        model=classifier.info,
        count=count,
        top1=float((predicted == truth).mean()) if count else float("nan"),
        top5=float((top == truth[:, None]).any(1).mean()) if count else float("nan"),
        labels=labels,
        columns=columns,
        per_class=per_class,
        confusion=tuple(tuple(int(c) for c in row) for row in confusion),
        failures=tuple(failures),
    )


def write_confusion_csv(result: EvalResult, file: IO[str]) -> None:
    """The confusion matrix as CSV: a header of predicted labels, then one row per true label."""
    writer = csv.writer(file)
    writer.writerow(["true \\ predicted", *result.columns])
    for label, row in zip(result.labels, result.confusion, strict=True):
        writer.writerow([label, *row])


# ----------------------------------------------------------------------------------------------------- display


class RichTrainDisplay:
    """A ``progress`` callback for ``train`` that draws a Rich progress bar (loss, accuracy, time left) and prints
    one line per finished epoch. Use it as a context manager around ``train``."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[accuracy]:.3f}"),
            TimeElapsedColumn(),
            TextColumn("left {task.fields[remaining]}"),
            console=self.console,
        )
        self._task = None

    def __enter__(self) -> RichTrainDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, event: TrainProgress) -> None:
        remaining = "?" if event.remaining is None else time.strftime("%H:%M:%S", time.gmtime(event.remaining))
        fields = {"epoch": f"{event.epoch}/{event.epochs}", "loss": event.loss, "accuracy": event.accuracy}
        if self._task is None:
            self._task = self._progress.add_task("train", total=event.total_steps, remaining=remaining, **fields)
        self._progress.update(self._task, completed=event.step, remaining=remaining, **fields)
        if event.epoch_done:
            held_out = ""
            if event.val_accuracy is not None:
                held_out = f"  held-out loss {event.val_loss:.4f} acc {event.val_accuracy:.3f}"
            skipped = f"  ({event.skipped} videos skipped)" if event.skipped else ""
            self._progress.console.log(
                f"epoch {event.epoch}/{event.epochs}  step {event.step}  loss {event.loss:.4f}"
                f"  acc {event.accuracy:.3f}{held_out}{skipped}"
            )
