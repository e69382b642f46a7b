"""The known checkpoints: one JSON file each in configs/, shipped inside the package as ``tsf_cli/configs``.

A preset says where the weights live (a hub id and revision, or a folder bundled in the package) and how the
checkpoint was evaluated (frames, sampling, views), so that ``tsf classify --model base-k400`` needs no other flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "base-k400"
SAMPLINGS = ("uniform", "stride", "segments")


@dataclass(frozen=True)
class Preset:
    name: str
    hub_id: str | None  # None for a model bundled inside the package
    revision: str | None  # a pinned hub commit, or None where no commit could be verified
    dataset: str
    num_labels: int
    frames: int
    image_size: int
    sampling: str
    frame_sample_rate: int | None
    target_fps: float | None
    clips: int
    crops: int
    license: str | None
    notes: str = ""
    bundled: str | None = None  # folder name inside tsf_cli/ for a bundled model
    # How long the clips the checkpoint was trained on lasted, where its sampling does not say (stride sampling
    # does: frames * frame_sample_rate / target_fps); the default window of ``tsf timeline``.
    clip_seconds: float | None = None

    @property
    def trained_clip_seconds(self) -> float | None:
        """The seconds one training clip covered, where the preset knows."""
        if self.clip_seconds is not None:
            return self.clip_seconds
        if self.sampling == "stride" and self.frame_sample_rate and self.target_fps:
            return self.frames * self.frame_sample_rate / self.target_fps
        return None

    @property
    def source(self) -> str:
        """Where the weights come from, as users would type it."""
        return self.hub_id if self.hub_id is not None else str(self.bundled_path)

    @property
    def bundled_path(self) -> Path | None:
        if self.bundled is None:
            return None
        return Path(str(resources.files("tsf_cli").joinpath(self.bundled)))


_FIELDS = set(Preset.__dataclass_fields__)


def _parse(name: str, text: str) -> Preset:
    data = json.loads(text)
    # revision_source, image_mean/std and similar keys document where a fact came from; the runtime reads the
    # checkpoint's own files for those.
    preset = Preset(**{k: v for k, v in data.items() if k in _FIELDS})
    if preset.name != name:
        raise ValueError(f"preset file {name}.json names itself {preset.name!r}")
    if preset.sampling not in SAMPLINGS:
        raise ValueError(f"preset {name}: sampling must be one of {', '.join(SAMPLINGS)}, not {preset.sampling!r}")
    if (preset.hub_id is None) == (preset.bundled is None):
        raise ValueError(f"preset {name}: exactly one of hub_id and bundled must be set")
    return preset


@cache
def all_presets() -> dict[str, Preset]:
    """Every preset, by name, in a stable order (bundled first, then by name)."""
    found = {}
    for entry in resources.files("tsf_cli").joinpath("configs").iterdir():
        if entry.name.endswith(".json"):
            name = entry.name[: -len(".json")]
            found[name] = _parse(name, entry.read_text(encoding="utf-8"))
    return dict(sorted(found.items(), key=lambda item: (item[1].bundled is None, item[0])))


def get_preset(name: str) -> Preset | None:
    return all_presets().get(name)
