"""``tsf batch --timeline --engine ray``: the steps of ``timeline.py`` on Ray Data's operators.

    paths --flat_map--> windows: Ray tasks of one CPU, each video's one streaming pass (``window_views``) in the
                        worker's crash-isolating decoding process; a row per window's views as soon as it is due,
                        then a row that closes the video with its plan of windows (or with its error)
          --map_batches--> the model: windows of any videos in batches (``classify_windows``, as the local engine)
          --> here, each video's windows put together once its closing row and every window of its plan are in,
              and its Timeline made by ``build_timeline``, as ``run_timelines`` does

A video's decoding may plan its windows again (when the decoder finds other frames than the packets promised): rows
carry the number of the plan they belong to, and only the closing plan's windows count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import TsfError
from ..media.limits import DecodeLimits
from ..results import ClipFrames, ModelInfo, Prediction, Timeline, VideoFailure
from .pool import Partial, TaskFailure
from .ray_runner import ModelSpec, actor_device, decoding_process
from .ray_session import Cluster, ray_session
from .runner import Observer, failure
from .timeline import TimelineOptions, WindowViews, build_timeline, classify_windows, window_views
from .views import ViewOptions
from .windows import WindowPlan


@dataclass(frozen=True)
class TimelineWork:
    """What every video of a timeline run shares."""

    options: TimelineOptions
    views: ViewOptions
    preprocess_config: object  # media.preprocess.PreprocessConfig
    batch_size: int
    timeout: float | None  # seconds between two windows of a video
    max_memory: int


def _windows(task: tuple) -> Iterator[WindowPlan | WindowViews]:
    return window_views(*task)


class WindowDecoder:
    """The decode step, ``row -> rows``: a video's windows' views as they come, then its closing row."""

    def __init__(self, work: TimelineWork):
        self.work = work
        height, width = work.preprocess_config.crop_size
        self.no_views = np.zeros((0, work.views.frames, height, width, 3), dtype=np.uint8)

    def __call__(self, row: dict) -> Iterator[dict]:
        path, work = str(row["path"]), self.work
        limits = DecodeLimits(timeout_s=None, threads=1, max_memory=work.max_memory)
        task = (path, work.options, work.views, work.preprocess_config, limits)
        plans, plan, warnings = -1, None, ()
        for _, outcome in decoding_process(_windows, work.timeout).imap_unordered([task]):
            if isinstance(outcome, TaskFailure):
                closing = failure(path, outcome)
                yield self._row(path, plans, -1, 0, self.no_views, error=closing.error, message=closing.message)
                return
            if not isinstance(outcome, Partial):
                warnings = outcome  # the task's end: what decoding found missing or damaged
                break
            if isinstance(outcome.value, WindowPlan):
                plans, plan = plans + 1, outcome.value
                continue
            window = outcome.value
            yield self._row(path, plans, window.number, len(plan), window.pixels)
        yield self._row(path, plans, -1, len(plan), self.no_views, plan=_plan_json(plan, warnings))

    @staticmethod
    def _row(path, plan_number, number, total, pixels, *, plan="", error="", message="") -> dict:
        return {
            "path": path,
            "plan_number": plan_number,
            "number": number,  # the window's place in its plan; -1 on a video's closing row
            "total": total,  # windows in the plan
            "pixels": pixels,  # (crops, T, h, w, 3) uint8; none on a closing row
            "plan": plan,
            "error": error,
            "message": message,
        }


def _plan_json(plan: WindowPlan, warnings: tuple[str, ...]) -> str:
    return json.dumps(
        {
            "warnings": list(warnings),
            "duration": plan.duration,
            "starts": plan.starts.tolist(),
            "ends": plan.ends.tolist(),
            "indices": plan.indices.tolist(),
            "timestamps": plan.timestamps.tolist(),
        }
    )


class WindowModelActor:
    """Each window's top-k, as JSON, through the local engine's ``classify_windows``; closing rows pass through."""

    def __init__(self, spec: ModelSpec, top_k: int):
        import torch

        from .predictor import Predictor

        torch.set_num_threads(1)
        self.predictor = Predictor(spec.model, revision=spec.revision, device=spec.device, dtype=spec.dtype)
        self.top_k = top_k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        windows = [i for i, number in enumerate(batch["number"]) if number >= 0]
        pixels = [np.asarray(batch["pixels"][i]) for i in windows]
        tops = classify_windows(self.predictor, pixels, self.top_k) if windows else []  # a batch of closing rows
        predictions = np.full(len(batch["number"]), "", dtype=object)
        for i, top in zip(windows, tops, strict=True):
            predictions[i] = json.dumps([p.to_dict() for p in top])
        columns = ("path", "plan_number", "number", "total", "plan", "error", "message")
        model = np.full(len(predictions), json.dumps(self.predictor.info.to_dict()), dtype=object)
        return {**{c: batch[c] for c in columns}, "predictions": predictions, "model": model}


@dataclass
class _Video:
    """A timeline being put together here: its windows' top-k so far, by (plan, window), and its closing plan."""

    predictions: dict[tuple[int, int], str] = field(default_factory=dict)
    plan_number: int = -1
    plan: dict | None = None
    model: str = ""

    def complete(self) -> bool:
        return self.plan is not None and all(
            (self.plan_number, k) in self.predictions for k in range(len(self.plan["starts"]))
        )


def run(
    paths: list[str], spec: ModelSpec, work: TimelineWork, cluster: Cluster, observer: Observer
) -> Iterator[Timeline | VideoFailure]:
    """Each path's Timeline (with its windows), or its failure, as each completes. Run inside ``ray_session``."""
    from .ray_runner import decode_resources, input_dataset, model_resources

    dataset = input_dataset(paths, cluster).flat_map(WindowDecoder(work), **decode_resources(cluster))
    dataset = dataset.map_batches(
        WindowModelActor,
        fn_constructor_kwargs={"spec": spec, "top_k": work.options.top_k},
        batch_size=work.batch_size,
        batch_format="numpy",
        **model_resources(spec, cluster),
    )
    videos: dict[str, _Video] = {}
    finished: set[str] = set()
    for row in dataset.iter_rows():
        path = str(row["path"])
        if path in finished:  # rows of a task Ray retried after the video was done: never a video twice
            continue
        if row["error"]:
            finished.add(path)
            videos.pop(path, None)
            yield VideoFailure(path, str(row["error"]), str(row["message"]))
            continue
        video = videos.setdefault(path, _Video())
        if row["number"] < 0:
            video.plan_number, video.plan = int(row["plan_number"]), json.loads(row["plan"])
        else:
            video.predictions[(int(row["plan_number"]), int(row["number"]))] = str(row["predictions"])
            video.model = str(row["model"])
            done = sum(plan == row["plan_number"] for plan, _ in video.predictions)
            observer.windows(path, done, int(row["total"]))
        if video.complete():
            finished.add(path)
            yield _timeline(path, videos.pop(path), work)
    lost = len(set(paths)) - len(finished)
    if lost:
        raise TsfError(f"{lost} inputs came back from Ray without a record: run again with --resume")


def _timeline(path: str, video: _Video, work: TimelineWork) -> Timeline:
    plan = video.plan
    windows = [
        (
            plan["starts"][k],
            plan["ends"][k],
            ClipFrames(tuple(plan["indices"][k]), tuple(plan["timestamps"][k])),
            tuple(Prediction(**p) for p in json.loads(video.predictions[(video.plan_number, k)])),
        )
        for k in range(len(plan["starts"]))
    ]
    model = ModelInfo(**json.loads(video.model))
    return build_timeline(path, plan["duration"], windows, work.options, work.views.crops, model, plan["warnings"])


def session_timelines(
    paths: list[str],
    model: str,
    revision: str | None,
    device: str,
    dtype: str,
    work: TimelineWork,
    address: str | None,
    observer: Observer,
) -> Iterator[Timeline | VideoFailure]:
    """``run`` inside a Ray session of its own: what ``runner.record_all`` takes as ``records``."""
    with ray_session(address) as cluster:
        spec = ModelSpec(model, revision, actor_device(device, cluster), dtype)
        yield from run(paths, spec, work, cluster, observer)
