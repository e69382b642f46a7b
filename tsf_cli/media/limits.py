"""What one video may cost before tsf refuses it: ``DecodeLimits``, checked while a file is opened, indexed and
decoded, each limit named in the error that it raises."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DecodeLimits:
    """What one video may cost before it is refused; each limit's error message names it."""

    max_pixels: int = 8192 * 8192  # per frame (8K UHD is 7680x4320); FFmpeg's decoder enforces it too
    max_frames: int = 2_000_000  # frames in the stream (18.5 h at 30 fps); indexing reads every packet
    max_seconds: float = 24 * 3600.0  # duration of the stream
    # wall clock for one call, checked between packets; None where something else enforces a time limit (the worker
    # pool, which can stop a decoder that never returns to the check)
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    # FFmpeg's decoding threads per video: 0 lets FFmpeg choose (about one per core); 1 where a scheduler gave the
    # task one CPU (a Ray task), so that many decoders side by side do not each spread over every core
    threads: int = 0

    def deadline(self) -> float:
        """When a call starting now must give up, on the ``time.monotonic()`` clock."""
        return time.monotonic() + (math.inf if self.timeout_s is None else self.timeout_s)
