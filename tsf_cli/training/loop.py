"""Fine-tune a TimeSformer on your own labels.

``train`` keeps the base model's encoder and gives it a new classification head when the labels differ from the
base's (the base's own head is kept when they are the same set). With ``from_scratch=True`` the base supplies only
the architecture (config.json) and the preprocessing (preprocessor_config.json): the weights start random, which is
how the bundled demo model was made (see ``tsf_cli.demo``).

Every epoch ends with a checkpoint: the output folder then holds a Hugging Face-layout model (config.json,
model.safetensors, preprocessor_config.json) that ``tsf classify --model OUT_DIR`` and transformers load, and
``training_state.pt`` (weights, optimizer, schedule, step counter, random state) from which ``resume=True``
continues with the next epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import CheckpointError, DatasetError, OutputError, UsageError, first_line
from ..inference.predictor import load_preprocess_config, resolve_device
from ..inference.views import Augment, ViewOptions
from ..io.atomic import atomic_file, check_writable, reporting
from ..media.limits import DEFAULT_MAX_MEMORY, DecodeLimits
from ..media.preprocess import normalize, value_table
from ..model.hub import PREPROCESSOR_NAME, resolve_model
from ..model.loading import torch_load
from ..model.timesformer import TimesformerConfig, TimesformerForVideoClassification
from ..results import VideoFailure
from .data import EpochSampler, VideoDataset, list_labelled_videos, loader, split_held_out

STATE_FILE = "training_state.pt"


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
    source, _preset = resolve_model(model)
    preprocess_config = load_preprocess_config(source, revision=revision)
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
    with reporting(output_dir):
        network.save_pretrained(output_dir)
        with atomic_file(output_dir / PREPROCESSOR_NAME) as file:
            file.write((json.dumps(preprocess_config.to_dict(), indent=2) + "\n").encode("utf-8"))
        with atomic_file(output_dir / STATE_FILE) as file:
            torch.save(state, file)


def train(
    data_dir: str | os.PathLike,
    *,
    model: str,
    output: str | os.PathLike,
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
    workers: int = 2,
    max_memory: int = DEFAULT_MAX_MEMORY,
    device: str = "auto",
    mixed_precision: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    revision: str | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Train ``model`` on the labelled set ``data_dir`` and write the result to the folder ``output``.

    ``val_dir`` is the held-out set; without one, ``val_split`` of each class is held out (0 for none). ``warmup``
    is the fraction of optimizer steps spent warming up before the cosine decay. ``grad_accum`` batches make one
    optimizer step. On a GPU ``mixed_precision`` runs the forward pass in bf16 (fp16 with loss scaling where bf16
    is missing); on a CPU training is fp32. ``resume`` continues from ``output/training_state.pt`` with the
    next epoch; a larger ``epochs`` than before extends the run (the rest of the schedule stretches to fit). A video
    whose decoding would hold more than ``max_memory`` bytes is skipped and counted, as an unreadable one is.
    ``overwrite`` starts a new run in a folder that holds one. The output folder is checked before any work.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("grad_accum", grad_accum)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    output_dir = Path(output)
    check_writable(output_dir, folder=True)
    state = _load_state(output_dir) if resume else None
    if not resume and not overwrite and (output_dir / STATE_FILE).exists():
        raise OutputError(
            f"{output_dir} already holds a training run: use --resume to continue it, --overwrite to start again, "
            "or another folder"
        )

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
    limits = DecodeLimits(max_memory=max_memory)
    augment = Augment(min_crop_scale=min_crop_scale, flip=flip)
    train_sampler = EpochSampler(len(train_videos), seed)
    train_loader = loader(
        VideoDataset([v.path for v in train_videos], views, preprocess_config, augment, limits),
        train_sampler,
        batch_size,
        workers,
        pin,
    )
    val_loader = None
    if val_videos:
        val_sampler = EpochSampler(len(val_videos), seed, shuffle=False, augment=False)
        val_dataset = VideoDataset([v.path for v in val_videos], views, preprocess_config, limits=limits)
        val_loader = loader(val_dataset, val_sampler, batch_size, workers, pin)

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
        try:
            network.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"])
            step, first_epoch = int(state["step"]), int(state["epoch"])
            history = [EpochStats(**h) for h in state["history"]]
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{output_dir / STATE_FILE}: does not fit this run (same --model and --from-scratch as the first "
                f"run?): {first_line(exc, named=True)}"
            ) from exc
    with reporting(output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:  # a crash before the first new checkpoint must not leave the old run to resume
            (output_dir / STATE_FILE).unlink(missing_ok=True)

    table = torch.from_numpy(value_table(preprocess_config)).to(target)

    def pixel_values(pixels: torch.Tensor) -> torch.Tensor:
        return normalize(pixels.to(target, non_blocking=pin), table)  # uint8 crosses over, floats are made there

    def forward_probabilities(pixels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(target.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return network(pixel_values(pixels)).logits.float().softmax(-1)

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
                    output = network(pixel_values(pixels[:, 0]), labels=labels_batch)
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


_STATE_KEYS = {"model", "optimizer", "scheduler", "scaler", "rng", "step", "epoch", "labels", "history"}


def _load_state(output_dir: Path) -> dict:
    """The resume state: tensors and plain data only (``weights_only``), with every part a run needs."""
    path = output_dir / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume (no {STATE_FILE} in {output_dir})")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a training state")
    state = torch_load(path)
    missing = _STATE_KEYS - set(state) if isinstance(state, dict) else _STATE_KEYS
    if missing:
        raise CheckpointError(f"{path}: not a tsf training state (no {', '.join(sorted(missing))})")
    return state
