"""Many videos -> records on Ray Data: the engine beside ``runner.py`` for a cluster (or a Ray instance on this
machine), on Ray Data's own operators.

    paths --from_items--> decode: Ray tasks of one CPU, each row a video's uint8 views (``load_views``, one FFmpeg
                          thread) or its error, never an exception
          --map_batches--> the model: an actor pool (one actor per GPU when the device is CUDA), batches across
                          videos, normalised on the device by the same ``Predictor`` and ``predict`` as the local run
          --> records as JSON (``VideoResult.to_dict()`` ...): streamed back to this process, which writes them
              (``run``), or written by Ray's Parquet writer, one file per block under a folder (``write_parquet``)

A decoder that crashes (a segfault in FFmpeg) or hangs would kill or stall its Ray task, and Ray Data retries a dead
task forever. So each Ray worker that decodes keeps one decoding process of tsf's own ``WorkerPool``, which turns a
crash or a hang past ``timeout`` into that file's failure, as on one machine; the Ray task never dies, and Ray's
retries are left for what they are for (a lost node).

Only the API imports this module, and only for ``--engine ray``; ``ray`` is imported inside functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import DeviceError, OutputError, TsfError, UsageError
from ..io.record_tables import has_records, recorded, remove_records
from ..media.limits import DEFAULT_MAX_MEMORY, DecodeLimits
from ..media.preprocess import PreprocessConfig
from ..results import BatchSummary, ClipFrames, VideoFailure, record_from_dict
from .pool import TaskFailure, WorkerPool
from .ray_session import Cluster, ray_session
from .views import VideoViews, ViewOptions, load_views

# Memory Ray reserves per decode task: what decoding takes for a usual video (a 1080p clip of base-k400's views holds
# well under this; DecodeLimits.max_memory, 2 GiB by default, is the most one video may take, which few come near).
# It also keeps Ray Data from fusing the decode map into the model's actor pool, where decoding would run inside the
# actors one video at a time: Ray Data fuses a task map into the actor map that follows when their resource requests
# agree, and this one makes them differ.
DECODE_MEMORY = 512 << 20
# Blocks of the input list per CPU of the cluster: one video per block while there are few, so that decoding spreads
# over every CPU at once; past that, blocks of several videos, so that a million inputs are not a million blocks.
BLOCKS_PER_CPU = 16


@dataclass(frozen=True)
class ModelSpec:
    """What a model actor loads for itself where it runs: weights never travel through Ray."""

    model: str
    revision: str | None
    device: str  # "cpu" or "cuda": each actor gets one GPU of its own
    dtype: str


@dataclass(frozen=True)
class Work:
    """What every video of a run shares: how it is decoded and cut, and what the model makes of it."""

    views: ViewOptions
    preprocess_config: PreprocessConfig
    top_k: int = 5
    pool: str | None = None  # embeddings with this pooling; None: probabilities
    batch_size: int = 4
    timeout: float | None = None
    max_memory: int = DEFAULT_MAX_MEMORY  # what one video's decoding may hold (DecodeLimits.max_memory)
    strict: bool = False


# --- Decoding: a Ray task per block of videos, each video in this worker's own decoding process ------------------


def _load(task: tuple[Callable, str, ViewOptions, PreprocessConfig, DecodeLimits]) -> VideoViews:
    load, *arguments = task
    return load(*arguments)


_decoding_processes: dict[tuple, WorkerPool] = {}  # per Ray worker process, which Ray reuses across tasks


def decoding_process(fn: Callable, timeout: float | None) -> WorkerPool:
    """This Ray worker's one decoding process for ``fn``: a crash or a hang past ``timeout`` fails only its task."""
    if (fn, timeout) not in _decoding_processes:
        _decoding_processes[(fn, timeout)] = WorkerPool(fn, 1, timeout)
    return _decoding_processes[(fn, timeout)]


class Decoder:
    """The decode step, ``row -> row``: a video's uint8 views, or its error in the row instead of an exception.
    ``load`` is ``load_views`` or a stand-in with its signature (tests make one crash)."""

    def __init__(self, work: Work, load: Callable = load_views):
        self.work, self.load = work, load
        height, width = work.preprocess_config.crop_size
        # A failed row's views: none, in an array of the same rank, so that the column stays one tensor type.
        self.no_views = np.zeros((0, work.views.frames, height, width, 3), dtype=np.uint8)

    def __call__(self, row: dict) -> dict:
        path = str(row["path"])
        # the decoding process enforces the timeout; one FFmpeg thread for the task's one CPU
        limits = DecodeLimits(timeout_s=None, threads=1, max_memory=self.work.max_memory)
        task = (self.load, path, self.work.views, self.work.preprocess_config, limits)
        ((_, outcome),) = decoding_process(_load, self.work.timeout).imap_unordered([task])
        if isinstance(outcome, TaskFailure):
            message = outcome.message if path in outcome.message else f"{path}: {outcome.message}"
            return {**self._row(path, self.no_views, (), 0, ()), "error": outcome.error, "message": message}
        return self._row(path, outcome.pixels, outcome.clips, outcome.crops, outcome.warnings)

    @staticmethod
    def _row(path: str, pixels: np.ndarray, clips, crops: int, warnings) -> dict:
        return {
            "path": path,
            "pixels": pixels,  # (views, T, h, w, 3) uint8: a quarter of the bytes of the floats they become
            "clips": json.dumps([clip.to_dict() for clip in clips]),
            "crops": crops,
            "warnings": json.dumps(list(warnings)),
            "error": "",
            "message": "",
        }


# --- The model: an actor per replica, batches of rows from several videos -----------------------------------------


class ModelActor:
    """Loads the model once where it runs, then turns batches of decoded rows into records (JSON), through the
    local engine's ``predict``: the same batching of views, averaging, top-k and ``strict``."""

    def __init__(self, spec: ModelSpec, work: Work):
        import torch

        from .predictor import Predictor

        torch.set_num_threads(1)  # one CPU reserved; on a GPU, the host only feeds it
        self.predictor = Predictor(spec.model, revision=spec.revision, device=spec.device, dtype=spec.dtype)
        self.work = work

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .runner import predict

        paths = [str(path) for path in batch["path"]]
        loaded = [self._loaded(batch, i) for i in range(len(paths))]
        work = self.work
        records = {
            r.path: json.dumps(r.to_dict())
            for r in predict(
                self.predictor, loaded, top_k=work.top_k, pool=work.pool, batch_size=len(paths), strict=work.strict
            )
        }
        return {"path": np.array(paths, dtype=object), "record": np.array([records[p] for p in paths], dtype=object)}

    @staticmethod
    def _loaded(batch: dict[str, np.ndarray], i: int) -> VideoViews | VideoFailure:
        path = str(batch["path"][i])
        if batch["error"][i]:
            return VideoFailure(path, str(batch["error"][i]), str(batch["message"][i]))
        clips = tuple(
            ClipFrames(tuple(c["indices"]), tuple(c["timestamps"]), c["padded"]) for c in json.loads(batch["clips"][i])
        )
        # Rows of one shape arrive as one (rows, views, ...) array, rows of several as an object array of arrays.
        pixels = np.asarray(batch["pixels"][i], dtype=np.uint8)
        return VideoViews(path, pixels, clips, int(batch["crops"][i]), tuple(json.loads(batch["warnings"][i])))


# --- The pipeline ------------------------------------------------------------------------------------------------


def build_dataset(paths: list[str], spec: ModelSpec, work: Work, cluster: Cluster, *, load: Callable = load_views):
    """The lazy Ray Dataset of records (columns ``path`` and ``record``, a JSON record): nothing runs until it is
    read."""
    dataset = input_dataset(paths, cluster)
    dataset = dataset.map(Decoder(work, load), **decode_resources(cluster))
    return dataset.map_batches(
        ModelActor,
        fn_constructor_kwargs={"spec": spec, "work": work},
        batch_size=work.batch_size,
        batch_format="numpy",
        **model_resources(spec, cluster),
    )


def input_dataset(paths: list[str], cluster: Cluster):
    """The paths as a dataset of rows ``{"path": ...}``, in blocks (see BLOCKS_PER_CPU)."""
    import ray

    blocks = min(len(paths), max(1, int(cluster.cpus)) * BLOCKS_PER_CPU)
    return ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)


def decode_resources(cluster: Cluster) -> dict:
    """What each decode task asks of Ray: a CPU, its memory (DECODE_MEMORY), and the environment it may lack."""
    return {"num_cpus": 1, "memory": DECODE_MEMORY, "runtime_env": _runtime_env(cluster)}


def model_resources(spec: ModelSpec, cluster: Cluster) -> dict:
    """The model's actor pool: one actor per GPU of the cluster on CUDA, each holding its GPU. On CPUs the model
    dominates a video's cost, so Ray Data adds actors (up to all CPUs but one) while decoded rows wait for them; a
    one-CPU instance keeps its CPU for decoding, or nothing would ever be decoded."""
    import ray

    if spec.device == "cuda":
        compute, resources = ray.data.ActorPoolStrategy(size=max(1, int(cluster.gpus))), {"num_gpus": 1}
    else:
        most = max(1, int(cluster.cpus) - 1)
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=most)
        resources = {"num_cpus": 1 if cluster.cpus >= 2 else 0}
    return {"compute": compute, "runtime_env": _runtime_env(cluster), **resources}


def _runtime_env(cluster: Cluster) -> dict | None:
    return {"env_vars": cluster.worker_env} if cluster.worker_env else None


def run(paths: list[str], spec: ModelSpec, work: Work, cluster: Cluster, *, load: Callable = load_views) -> Iterator:
    """Yield one record per path (VideoResult, VideoEmbedding or VideoFailure) as each arrives, in any order. Run
    inside ``ray_session``."""
    seen: set[str] = set()
    for row in build_dataset(paths, spec, work, cluster, load=load).iter_rows():
        path = str(row["path"])
        if path in seen:  # a task Ray retried after its first output had arrived: never a video twice
            continue
        seen.add(path)
        yield record_from_dict(json.loads(row["record"]))
    lost = len(set(paths)) - len(seen)
    if lost:
        raise TsfError(f"{lost} inputs came back from Ray without a record: run again with --resume")


def write_parquet(
    paths: list[str], spec: ModelSpec, work: Work, cluster: Cluster, folder: str, *, load: Callable = load_views
) -> None:
    """The records of ``paths`` into ``folder`` (a local folder or an object store's prefix) by Ray's Parquet writer,
    one file per block, with the columns of ``io.record_tables.record_table``. Run inside ``ray_session``."""
    from ..io.objects import is_uri, portable_filesystem

    dataset = build_dataset(paths, spec, work, cluster, load=load)
    dataset = dataset.map_batches(_as_table, batch_format="pyarrow", batch_size=None, zero_copy_batch=True)
    filesystem, target = portable_filesystem(folder) if is_uri(folder) else (None, folder)
    remote_args = {"runtime_env": _runtime_env(cluster)} if cluster.worker_env else None
    dataset.write_parquet(target, filesystem=filesystem, ray_remote_args=remote_args)


def _as_table(batch):
    from ..io.record_tables import record_table

    return record_table([json.loads(r) for r in batch.column("record").to_pylist()])


# --- A run: the session around the pipeline -----------------------------------------------------------------------


def check_actor_device(device: str) -> None:
    """Each model actor takes a GPU of its own, so a GPU index means nothing to Ray."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device {device} with --engine ray: use auto, cpu or cuda (each model actor gets a GPU)")


def actor_device(device: str, cluster: Cluster) -> str:
    """Where the model actors run: ``auto`` is CUDA where the cluster has GPUs."""
    check_actor_device(device)
    if device == "auto":
        return "cuda" if cluster.gpus >= 1 else "cpu"
    if device == "cpu":
        return "cpu"
    if cluster.gpus < 1:
        raise DeviceError("--device cuda was asked for but the Ray cluster has no GPU; use --device cpu (or auto)")
    return "cuda"


def session_records(
    paths: list[str], model: str, revision: str | None, device: str, dtype: str, work: Work, address: str | None
) -> Iterator:
    """``run`` inside a Ray session of its own (``ray_session``): what ``runner.record_all`` takes as ``records``.
    Ray starts only once there is something to do, and stops when the records end."""
    with ray_session(address) as cluster:
        spec = ModelSpec(model, revision, actor_device(device, cluster), dtype)
        yield from run(paths, spec, work, cluster)


def record_folder(
    paths: list[str],
    folder: str,
    model: str,
    revision: str | None,
    device: str,
    dtype: str,
    work: Work,
    address: str | None,
    *,
    resume: bool,
    overwrite: bool,
    observer,
) -> BatchSummary:
    """Write the records of ``paths`` into a folder of Parquet files, skipping (``resume``) those it has: what
    ``runner.record_all`` does for a record file. The observer hears when the run starts; Ray's writer reports no
    record until the end."""
    if not resume and not overwrite and has_records(folder):
        raise OutputError(f"{folder} already holds records: use --resume to continue it or --overwrite to replace it")
    if overwrite:
        remove_records(folder)
    before = recorded(folder) if resume else {}
    todo = [p for p in paths if p not in before]
    observer.started(len(paths), len(todo))
    if todo:
        with ray_session(address) as cluster:
            spec = ModelSpec(model, revision, actor_device(device, cluster), dtype)
            write_parquet(todo, spec, work, cluster, folder)
    after = recorded(folder)
    failed = sum(after.get(p, False) for p in todo)
    return BatchSummary(folder, len(paths), len(paths) - len(todo), failed, sum(before.get(p, False) for p in paths))
