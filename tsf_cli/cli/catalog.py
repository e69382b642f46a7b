"""``tsf models`` and ``tsf info``: what tsf knows about, and what a video holds."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer

from .. import api
from ..errors import VideoError
from ..results import path_fields
from . import display
from .options import JsonOpt, check_videos_exist


def models(as_json: JsonOpt = False):
    """The known models (presets), and which are already in the local cache."""
    rows = api.list_models()
    if as_json:
        out = [
            {
                "name": p.name,
                "source": p.source,
                "revision": p.revision,
                "dataset": p.dataset,
                "frames": p.frames,
                "image_size": p.image_size,
                "num_labels": p.num_labels,
                "sampling": p.sampling,
                "clips": p.clips,
                "crops": p.crops,
                "license": p.license,
                "available_offline": ok,
                "default": p.name == api.DEFAULT_MODEL,
            }
            for p, ok in rows
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    display.stdout.print(display.models_table(rows, api.DEFAULT_MODEL))


def info(
    video: Annotated[str, typer.Argument(help="A video file, or an http(s) URL.", show_default=False)],
    as_json: JsonOpt = False,
):
    """Streams, codec, size, duration, fps and frame count of a video, as measured (not as the header claims)."""
    if api.is_uri(video):
        raise VideoError(video, "tsf info reads files and http(s) URLs, not objects in a store")
    check_videos_exist([video])
    found = api.probe(video)
    if as_json:
        json.dump({**dataclasses.asdict(found), **path_fields(found.path)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    display.stdout.print(display.info_table(found))
