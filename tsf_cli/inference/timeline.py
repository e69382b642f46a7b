"""``tsf timeline``: labels along a whole video, from windows of it classified one by one.

One pass per video. ``window_views`` plans every window on the video's frame times (``windows.plan_windows``) and
asks ``stream_frames`` for the union of their frames, each decoded once. As a frame arrives it is resized and cropped
once into the model's views (``crop_views``, the same for every window that takes it); a window is handed on as soon
as its last frame is in, and frames that no later window takes are let go. What it holds is the open windows' frames
at the model's size, whatever the length of the video.

Windows then go through the model in batches (``Predictor.probabilities``), each window's probabilities averaged
over its crops as a video's are, and the segment rule (``segments``) makes segments of them. ``timeline_of`` does one
video here and raises its errors; ``run_timelines`` does many through the runner's ``outcomes`` (decoding in worker
processes if asked, each failure a record), for ``tsf batch --timeline``. Both take the same steps.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..io.objects import is_uri, open_object
from ..media.decode import DecodeReport, FrameTimes, stream_frames
from ..media.limits import DEFAULT_MAX_MEMORY, DecodeLimits
from ..media.preprocess import PreprocessConfig, crop_views
from ..results import ClipFrames, ModelInfo, Prediction, Timeline, TimelineWindow, VideoFailure
from .pool import Partial, TaskFailure
from .runner import Observer, failure, outcomes, top_predictions
from .segments import DEFAULT_MIN_PROBABILITY, DEFAULT_SMOOTH, ScoredWindow, check_rule, segment_windows
from .views import ViewOptions
from .windows import WindowPlan, default_window, plan_windows

if TYPE_CHECKING:
    from .predictor import Predictor


@dataclass(frozen=True)
class TimelineOptions:
    """Where the windows go and how the segment rule reads them."""

    window: float  # seconds
    hop: float  # seconds from one window's start to the next
    min_probability: float = DEFAULT_MIN_PROBABILITY  # below it a window votes "uncertain"
    smooth: int = DEFAULT_SMOOTH  # windows in the majority vote (odd; 1: none)
    top_k: int = 5  # labels kept per window

    def __post_init__(self):
        for name in ("window", "hop"):
            seconds = getattr(self, name)
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {seconds}")
        if self.top_k < 1:
            raise ValueError(f"top-k must be at least 1, got {self.top_k}")
        check_rule(self.min_probability, self.smooth)


def timeline_options(
    predictor: Predictor,
    views: ViewOptions,
    *,
    window: float | None,
    hop: float | None,
    min_probability: float,
    smooth: int,
    top_k: int,
) -> TimelineOptions:
    """The user's choices over the model's defaults: the window it was trained on (``windows.default_window``) and
    a hop of half the window. Windows further apart than they are long leave parts of the video unseen: say so."""
    window = window if window is not None else default_window(predictor.preset, views)
    hop = hop if hop is not None else window / 2
    options = TimelineOptions(window, hop, min_probability, smooth, top_k)
    if hop > window:
        warnings.warn(
            f"a hop of {hop:g} s is longer than the {window:g} s window: the windows see {window / hop:.0%} of the "
            "video, and the segments span the gaps between them",
            stacklevel=2,
        )
    return options


# A frame is resized (exactly, with Pillow: for large frames the costly step) in a thread of its own while the next
# ones decode: Pillow and FFmpeg both let go of the GIL in their loops. At most this many frames wait for it, so a
# resize slower than decoding holds decoding back instead of letting full-size frames pile up.
_RESIZING_AHEAD = 4


@dataclass(frozen=True, eq=False)  # an ndarray field has no single truth value, so no == (and no hash)
class WindowViews:
    """The model's views of one window, ready as soon as its last frame was decoded."""

    number: int  # the window's place in its WindowPlan
    pixels: np.ndarray  # (crops, frames, height, width, 3) uint8, resized and cropped, not normalised


def window_views(
    path: str,
    options: TimelineOptions,
    views: ViewOptions,
    preprocess_config: PreprocessConfig,
    limits: DecodeLimits = DecodeLimits(timeout_s=None),
) -> Generator[WindowPlan | WindowViews, None, tuple[str, ...]]:
    """The plan of a video's windows, then each window's views in the plan's order, from one pass of decoding; returns
    the warnings of what the file or its decoding showed missing or damaged.

    A new plan may follow (when decoding finds the video numbered otherwise than its packets said); the windows after
    it are the new plan's, and those before it are void.
    """

    def wanted(times: np.ndarray) -> np.ndarray:
        return _plan(times, options, views).wanted()

    # an object store's video is read in ranged requests (views.decode_clips does the same for clips)
    with (
        open_object(path) if is_uri(path) else nullcontext(path) as source,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsf-resize") as resizer,
    ):
        # full-size frames held at once: those waiting for the resizer, the one being resized, the one decoding
        held = _RESIZING_AHEAD + 2
        report = DecodeReport()
        stream = stream_frames(
            source, wanted, held=held, stream=views.stream, limits=limits, report=report, deadline_per_step=True
        )
        for item in stream:
            if isinstance(item, FrameTimes):
                plan = _plan(item.times, options, views)
                still_needed = plan.still_needed()
                held: dict[int, Future] = {}  # frame index -> its (crops, 1, h, w, 3) uint8 views, being made
                resizing: deque[Future] = deque()
                due = 0
                yield plan
                continue
            index, frame = item
            held[index] = resizing_frame = resizer.submit(
                crop_views, [frame[None]], preprocess_config, crops=views.crops
            )
            resizing.append(resizing_frame)
            while len(resizing) > _RESIZING_AHEAD:
                resizing.popleft().result()
            while due < len(plan) and plan.indices[due].max() <= index:
                yield WindowViews(due, np.concatenate([held[int(i)].result() for i in plan.indices[due]], axis=1))
                due += 1
                if due < len(plan):
                    for gone in [i for i in held if i < still_needed[due]]:
                        del held[gone]
    return tuple(report.warnings())


def _plan(times: np.ndarray, options: TimelineOptions, views: ViewOptions) -> WindowPlan:
    return plan_windows(times, options.window, options.hop, views)


def _window_task(task: tuple) -> Generator[WindowPlan | WindowViews, None, tuple[str, ...]]:
    return window_views(*task)


@dataclass
class _Video:
    """A timeline being put together: its plan and the top-k of each window classified so far."""

    plan: WindowPlan
    predictions: dict[int, tuple[Prediction, ...]] = field(default_factory=dict)


class _Assembler:
    """Windows of any number of videos in, timelines out: windows go through the model in batches of
    ``batch_size``, and a video's timeline is made once its stream has ended and all its windows are classified."""

    def __init__(self, predictor: Predictor, options: TimelineOptions, views: ViewOptions, batch_size: int, observer):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.predictor, self.options, self.views = predictor, options, views
        self.batch_size, self.observer = batch_size, observer
        self.videos: dict[str, _Video] = {}
        self.pending: list[tuple[str, WindowViews]] = []

    def take(self, path: str, item: WindowPlan | WindowViews) -> None:
        if isinstance(item, WindowPlan):  # the first plan, or a new one: what came before it is void
            self.forget(path)
            self.videos[path] = _Video(item)
            return
        self.pending.append((path, item))
        if len(self.pending) >= self.batch_size:
            self._classify()

    def forget(self, path: str) -> None:
        self.videos.pop(path, None)
        self.pending = [(p, item) for p, item in self.pending if p != path]

    def finish(self, path: str, warnings: tuple[str, ...]) -> Timeline:
        if any(p == path for p, _ in self.pending):
            self._classify()
        video = self.videos.pop(path)
        plan = video.plan
        if len(video.predictions) != len(plan):
            raise RuntimeError(f"{path}: {len(plan) - len(video.predictions)} windows never reached the model")
        windows = [
            (
                float(plan.starts[k]),
                float(plan.ends[k]),
                ClipFrames(tuple(int(i) for i in plan.indices[k]), tuple(float(t) for t in plan.timestamps[k])),
                video.predictions[k],
            )
            for k in range(len(plan))
        ]
        info = self.predictor.info
        return build_timeline(path, plan.duration, windows, self.options, self.views.crops, info, warnings)

    def _classify(self) -> None:
        batch, self.pending = self.pending, []
        predictions = classify_windows(self.predictor, [views.pixels for _, views in batch], self.options.top_k)
        for (path, views), top in zip(batch, predictions, strict=True):
            self.videos[path].predictions[views.number] = top
        for path in dict.fromkeys(path for path, _ in batch):
            video = self.videos[path]
            self.observer.windows(path, len(video.predictions), len(video.plan))


def classify_windows(predictor: Predictor, windows: Sequence[np.ndarray], top_k: int) -> list[tuple[Prediction, ...]]:
    """The top-k of each window's views (crops, T, h, w, 3) uint8, in one batch, averaged over its crops."""
    per_view = predictor.probabilities(np.concatenate(windows))  # (windows * crops, labels)
    per_window = per_view.reshape(len(windows), -1, per_view.shape[-1]).mean(1)
    return [top_predictions(predictor.labels, mean, top_k) for mean in per_window]


def build_timeline(
    path: str,
    duration: float,
    windows: Sequence[tuple[float, float, ClipFrames, tuple[Prediction, ...]]],
    options: TimelineOptions,
    crops: int,
    model: ModelInfo,
    warnings: Sequence[str] = (),
) -> Timeline:
    """The Timeline of classified windows (start, end, frames, top-k): the segment rule's segments, and each window
    with the rule's decision, in the rule's order; ``warnings``, what decoding found missing or damaged."""
    scored = [ScoredWindow(start, end, predictions) for start, end, _, predictions in windows]
    order, decisions, segments = segment_windows(
        scored, duration=duration, min_probability=options.min_probability, smooth=options.smooth
    )
    decided = tuple(
        TimelineWindow(*windows[k], decision.label, decision.probability)
        for k, decision in zip(order, decisions, strict=True)
    )
    return Timeline(
        path,
        duration,
        options.window,
        options.hop,
        options.min_probability,
        options.smooth,
        options.top_k,
        crops,
        tuple(segments),
        decided,
        model,
        tuple(warnings),
    )


def timeline_of(
    predictor: Predictor,
    path: str,
    options: TimelineOptions,
    views: ViewOptions,
    *,
    batch_size: int,
    observer: Observer | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> Timeline:
    """The timeline of one video, decoded in this process; errors are raised (a VideoError for a bad file)."""
    assembler = _Assembler(predictor, options, views, batch_size, observer or Observer())
    stream = window_views(path, options, views, predictor.preprocess_config, limits)
    while True:
        try:
            item = next(stream)
        except StopIteration as end:  # its value: the stream's warnings
            return assembler.finish(path, end.value)
        assembler.take(path, item)


def run_timelines(
    predictor: Predictor,
    paths: Iterable[str],
    options: TimelineOptions,
    views: ViewOptions,
    *,
    batch_size: int,
    workers: int = 0,
    timeout: float | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
    observer: Observer | None = None,
) -> Iterator[Timeline | VideoFailure]:
    """The timeline of each path, or its failure, as each finishes. Windows of several videos share model batches;
    with ``workers`` > 0 decoding runs in that many processes, where a decoder that crashes, or that gives no window
    for ``timeout`` seconds, fails only its own file (in this process the decoder's deadline bounds each frame's
    wait)."""
    assembler = _Assembler(predictor, options, views, batch_size, observer or Observer())
    limits = DecodeLimits(timeout_s=None if workers > 0 else timeout, max_memory=max_memory)
    tasks = ((str(path), options, views, predictor.preprocess_config, limits) for path in paths)
    for task, outcome in outcomes(_window_task, tasks, workers, timeout):
        path = task[0]
        if isinstance(outcome, Partial):
            assembler.take(path, outcome.value)
        elif isinstance(outcome, TaskFailure):
            assembler.forget(path)
            yield failure(path, outcome)
        else:
            yield assembler.finish(path, outcome)
