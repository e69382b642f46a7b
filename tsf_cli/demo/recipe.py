"""The recipe of the bundled demo model: the data set, the architecture and every training setting, and
``build_demo``, which generates the data and trains the model from scratch with ``tsf_cli.training`` (an estimated 40
minutes alone on two CPU cores):

    python -m tsf_cli.demo --build-demo tsf_cli/demo/weights
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..training.loop import train
from .synthetic import generate_dataset

# The bundled demo model: a small divided space-time TimeSformer trained from scratch. 16-pixel patches on 64-pixel
# frames (a 4x4 grid) keep a step fast enough for a CPU; train() names the classes from the data set's folders.
DEMO_SEED = 0
DEMO_TRAIN_PER_CLASS = 500
DEMO_VAL_PER_CLASS = 50
DEMO_CONFIG = {
    "model_type": "timesformer",
    "architectures": ["TimesformerForVideoClassification"],
    "image_size": 64,
    "patch_size": 16,
    "num_channels": 3,
    "num_frames": 8,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "attention_type": "divided_space_time",
    "drop_path_rate": 0.0,
}
DEMO_PREPROCESSOR = {
    "image_processor_type": "VideoMAEImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 64},
    "resample": 2,
    "do_center_crop": True,
    "crop_size": {"height": 64, "width": 64},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.45, 0.45, 0.45],
    "image_std": [0.225, 0.225, 0.225],
}
DEMO_TRAINING = {
    "epochs": 30,
    "batch_size": 32,
    "lr": 3e-4,  # the rate init_temporal_offsets' frame-offset heads were tuned to keep
    "weight_decay": 0.05,
    "warmup": 0.05,
    "min_crop_scale": 0.7,
    "seed": DEMO_SEED,
}


def write_demo_config(folder: str | Path, *, attention_type: str = "divided_space_time") -> Path:
    """Write the demo architecture (config.json and preprocessor_config.json, no weights) for training from scratch."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**DEMO_CONFIG, "attention_type": attention_type}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(DEMO_PREPROCESSOR, indent=2), encoding="utf-8")
    return folder


def build_demo(
    output_dir: str | Path,
    *,
    work_dir: str | Path | None = None,
    attention_type: str = "divided_space_time",
    workers: int = 1,
    progress=None,
):
    """Generate the demo data set, train the demo model from scratch with ``train``, and write its three files to
    ``output_dir``. Returns the ``TrainResult``; the data and the resume state stay in ``work_dir`` if one is given."""
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="tsf-demo-") as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        train_dir, val_dir = work / "data" / "train", work / "data" / "val"
        if not train_dir.exists():
            generate_dataset(train_dir, per_class=DEMO_TRAIN_PER_CLASS, seed=DEMO_SEED)
        if not val_dir.exists():
            generate_dataset(val_dir, per_class=DEMO_VAL_PER_CLASS, seed=DEMO_SEED + 1)
        base = write_demo_config(work / "base", attention_type=attention_type)
        run_dir = work / "run"
        result = train(
            train_dir,
            model=str(base),
            output=run_dir,
            val_dir=val_dir,
            from_scratch=True,
            workers=workers,
            progress=progress,
            **DEMO_TRAINING,
        )
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            shutil.copyfile(run_dir / name, output_dir / name)
    return result
