"""The Ray instance a run of ``--engine ray`` uses: one started for the run on this machine and stopped after it, or a
cluster joined at ``--ray-address``, with Ray's own chatter kept off the terminal.

Ray is optional (``pip install "tsf-cli[ray]"``); without it, or without a cluster where one was named, the run
stops with one line (``EngineError``) before any work.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import EngineError, MissingDependencyError, first_line
from ..media.limits import usable_cores

# 2.51 is the first Ray whose Ray Data takes compute=ActorPoolStrategy(...) without a deprecation warning (2.9-2.50
# preferred concurrency=, which 2.51 deprecated in turn) and exports TaskPoolStrategy; 3 may change the API again.
RAY_REQUIREMENT = "ray[data]>=2.51,<3"
PROBE_TIMEOUT_S = 5.0  # a cluster that does not accept a connection in this time is taken for gone

# What object stores need in the workers. Those of an instance tsf starts inherit this process's environment;
# those of a cluster do not, so endpoints and regions travel with the job. Credentials never do: a cluster keeps a
# job's environment in its control store and shows it on its dashboard. Give the nodes their own (an instance role,
# ~/.aws, their environment).
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


@dataclass(frozen=True)
class Cluster:
    """What a run needs to know of the Ray it runs on."""

    cpus: float
    gpus: float
    worker_env: dict[str, str]  # environment the workers may lack, for the operators' runtime_env


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Cluster]:
    """A Ray instance on this machine for the run (``num_cpus``: all of this process's cores), stopped at the end;
    or, with ``address`` (``auto``, ``host:port``), the cluster there, left running. A Ray the caller has already
    initialised (``ray.init`` in their own program) is used as it is, and left running too."""
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # tsf sends nothing over the network of its own accord
    if address is not None:
        _check_address(address)
    # Ray's own INFO lines ("Started a local Ray instance", the token notice) show with --debug only.
    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    if ray.is_initialized():
        with _data_settings(ray, verbose):  # a caller's own Ray Data gets its settings back afterwards
            yield _cluster(ray, dict(_forwarded()))
        return
    settings = {
        "include_dashboard": False,
        "log_to_driver": verbose,  # the workers' stdout and stderr stay in their log files
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    if address is None:
        # "local", not None: None joins the cluster that RAY_ADDRESS or the last `ray start` on this machine names
        # (/tmp/ray/ray_current_cluster), even one long dead, and would then refuse num_cpus.
        settings.update(address="local", num_cpus=num_cpus or usable_cores())
    else:
        settings["address"] = address
    try:
        ray.init(**settings)
    except ConnectionError as exc:
        hint = ""
        if os.environ.get("RAY_AUTH_MODE") != "token":
            # what a cluster with token authentication says to a driver without the token, after about 20 s
            hint = "; if the cluster uses token authentication, set RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN)"
        raise EngineError(f"no Ray cluster at {address}: {first_line(exc)}{hint}") from None
    try:
        with _data_settings(ray, verbose):
            # The workers of an instance started here inherited this environment; those of a cluster did not.
            yield _cluster(ray, {} if address is None else dict(_forwarded()))
    finally:
        ray.shutdown()  # stops an instance started here; only disconnects from a cluster


def require_ray():
    """The ray module, or the one line that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("--engine ray", f"Ray ({RAY_REQUIREMENT})", "ray") from None
    return ray


def _check_address(address: str) -> None:
    """Fail in seconds with one line, not after minutes: ``ray.init(address="auto")`` resolves RAY_ADDRESS or the last
    `ray start` on this machine, and when that cluster is gone it waits for it for minutes."""
    if address.startswith("ray://"):
        # Ray Data's executor needs a core worker, which a Ray Client connection has not (ray-project/ray#48682).
        raise EngineError(
            f"--ray-address {address}: Ray Data does not run through Ray Client (ray://); run tsf on a node of the "
            "cluster with --ray-address auto, or submit it there: ray job submit --address http://HEAD:8265 -- tsf ..."
        )
    from ray._private.services import get_ray_address_from_environment  # private, but what ray.init itself runs

    try:
        resolved = get_ray_address_from_environment(address, None) if address == "auto" else address
    except ConnectionError as exc:  # "Could not find any running Ray instance. Please specify ..."
        raise EngineError(f"no Ray cluster at {address}: {first_line(exc)}") from None
    host, _, port = resolved.rpartition(":")
    if not host:  # Ray's own way of finding a cluster on this machine: let ray.init do it
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except (OSError, ValueError):
        raise EngineError(f"no Ray cluster at {address}: nothing answers at {resolved}") from None


def _forwarded() -> Iterator[tuple[str, str]]:
    return ((name, os.environ[name]) for name in FORWARDED_ENV if name in os.environ)


def _cluster(ray, worker_env: dict[str, str]) -> Cluster:
    resources = ray.cluster_resources()
    return Cluster(resources.get("CPU", 0.0), resources.get("GPU", 0.0), worker_env)


@contextmanager
def _data_settings(ray, verbose: bool) -> Iterator[None]:
    """Ray Data's settings for tsf's runs, the caller's restored at the end (the context is this process's)."""
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.op_resource_reservation_enabled)
    context.enable_progress_bars = False  # tsf shows its own
    # Ray Data reserves a share of the CPUs for each operator. With the model actors' share held back, decoding got one
    # task at a time where two CPUs were free (measured with 3 CPUs: 1 actor, 1 decode task, 1 CPU idle; without the
    # reservation 2 decode tasks, and 1.5x the rate of one, as the local engine's 2 decoding processes give 1.7x).
    # Decoding is what must spread over every free CPU; the actors are asked for when the pool starts, and Ray Data's
    # backpressure on its object store still bounds how far decoding runs ahead.
    context.op_resource_reservation_enabled = False
    if not verbose:
        # also ray.data's "Progress bars disabled" warning and its "Dataset ... execution finished" lines
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.enable_progress_bars, context.op_resource_reservation_enabled = saved
