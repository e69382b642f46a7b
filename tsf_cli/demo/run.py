"""``tsf demo``: generate a motion clip whose truth is known, and classify it with the bundled model, offline."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import OutputError, TsfError
from ..inference.predictor import Predictor
from ..inference.runner import run
from ..results import VideoFailure, VideoResult
from .synthetic import DEFAULT_CODECS, MOTIONS, SyntheticClip, write_clip


@dataclass(frozen=True)
class DemoRun:
    """A generated clip, whose motion is the truth, and what the bundled demo model made of it."""

    clip: SyntheticClip
    seed: int
    result: VideoResult | VideoFailure
    kept: Path | None  # where the clip was kept (``output``), None where it was not

    @property
    def correct(self) -> bool | None:
        if isinstance(self.result, VideoFailure):
            return None
        return self.result.predictions[0].label == self.clip.motion

    def to_dict(self) -> dict:
        """What the run was about, beside the result: the truth, the seed, and where the clip is (if anywhere)."""
        kept = None if self.kept is None else str(self.kept)
        return {"truth": self.clip.motion, "seed": self.seed, "clip": kept, "correct": self.correct}


def run_demo(
    motion: str | None = None, *, seed: int | None = None, output: str | os.PathLike | None = None, top_k: int = 3
) -> DemoRun:
    """Generate a synthetic motion clip (a random motion and seed unless given) and classify it with the demo model
    bundled in the package: no network. ``output`` keeps the clip there, in the container its suffix names; it is
    never written over an existing file, and an error removes what was written of it."""
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
    predictor = Predictor("demo", device="cpu", dtype="fp32")  # a model this small gains nothing from bf16
    with tempfile.TemporaryDirectory(prefix="tsf-demo-") as scratch:
        try:
            clip = write_clip(Path(scratch) / f"{motion or 'demo'}-seed{seed}{suffix}", motion, seed=seed)
        except OSError as exc:
            raise TsfError(f"cannot write the demo clip in {scratch}: {exc.strerror or exc}") from None
        (result,) = run(predictor, [str(clip.path)], top_k=top_k)
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
    return DemoRun(clip=replace(clip, path=shown), seed=seed, result=replace(result, path=str(shown)), kept=output)
