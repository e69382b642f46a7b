"""Run one function over many inputs in worker processes, where a crash or a hang costs only its own input.

``concurrent.futures.ProcessPoolExecutor`` marks the whole pool broken when one worker dies, which is exactly what a
segfaulting decoder does on a hostile file. Here each worker owns a pipe and runs one task at a time; the parent
waits on the pipes and the process sentinels together, so a worker that dies or overruns its time is replaced and
only its task is reported as failed.

A task whose function is a generator sends what it yields as it goes (``Partial``), then its return value as any
task does, so that a long task (every window of a long video) streams its results instead of holding them all; its
time limit then runs from its last message, so it bounds a stall, not the length of the work.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import WorkerStartError
from ..media.limits import as_timeout

_STARTUP_TIMEOUT = 300  # seconds a new worker may take to start and import PyAV on a loaded machine
# Why a worker may exit or stall before it is ready: spawn runs the parent's main script again in every worker (as
# __mp_main__) before any tsf code, so a script that does its work at top level does that work again there, or fails.
_MAIN_GUARD_HINT = (
    'a script that uses tsf with workers must keep its own work under `if __name__ == "__main__":`, which every '
    "worker process runs again otherwise"
)


@dataclass(frozen=True)
class TaskFailure:
    """Why a task produced no result: the exception's type name (or WorkerCrash / Timeout) and a one-line message."""

    error: str
    message: str


@dataclass(frozen=True)
class Partial:
    """One thing a generator task yielded on the way: its task's ``Partial``s arrive in order, before its outcome."""

    value: Any


def _worker_main(conn: Connection, fn: Callable[[Any], Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, even during the imports
    # Decoding threads come from FFmpeg; keep torch, should a task use it, from also spreading each worker over every
    # core (it reads this when it loads). Importing torch here would cost each worker a second and 300 MB, which the
    # onnx runtime never needs, and decoding with Pillow never uses it.
    os.environ["OMP_NUM_THREADS"] = "1"
    conn.send("ready")  # the parent starts a task's clock only now, not while the interpreter was starting
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            result = fn(task)
            if isinstance(result, Generator):
                result = _send_each(result, conn)
            outcome = ("ok", result)
        except Exception as exc:  # noqa: BLE001 - every failure of one input becomes that input's record
            outcome = ("error", TaskFailure(type(exc).__name__, str(exc) or repr(exc)))
        conn.send(outcome)


def _send_each(generator: Generator, conn: Connection) -> Any:
    """Send each item the generator yields as it comes; its return value."""
    while True:
        try:
            item = next(generator)
        except StopIteration as stop:
            return stop.value
        conn.send(("more", item))


class _Worker:
    def __init__(self, context, fn):
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child, fn), daemon=True)
        self.process.start()
        child.close()
        self.task: Any = None
        self.started = 0.0
        self.ready = False

    def wait_ready(self) -> None:
        """Return once the worker says it is ready; a WorkerStartError (one line) as soon as it exits instead, or
        after _STARTUP_TIMEOUT. A worker that cannot start (no memory, a broken install, a script without a main
        guard) is the pool's problem, not a task's."""
        ready = wait([self.conn, self.process.sentinel], timeout=_STARTUP_TIMEOUT)
        message = None
        if self.conn in ready:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                pass  # it exited: its exit status tells how
        if message == "ready":
            self.ready = True
            return
        if ready:
            self.process.join(timeout=5)
        if ready:
            raise WorkerStartError(
                f"a decoding process {_exit_cause(self.process.exitcode)} before it was ready (its own error, if any, "
                f"is above); {_MAIN_GUARD_HINT}"
            )
        raise WorkerStartError(
            f"a decoding process was not ready after {_STARTUP_TIMEOUT} s (a machine out of memory, or swapping?); "
            f"{_MAIN_GUARD_HINT}"
        )

    def assign(self, task) -> None:
        if not self.ready:
            self.wait_ready()
        self.task = task
        self.started = time.monotonic()
        self.conn.send(task)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _describe_exit(exitcode: int | None) -> str:
    return f"the decoding process {_exit_cause(exitcode)}"


def _exit_cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if exitcode == -signal.SIGKILL:
            name += ", as the out-of-memory killer sends"
        return f"crashed ({name})"
    return f"exited unexpectedly (exit code {exitcode})"


class WorkerPool:
    """``imap_unordered`` over worker processes started with spawn (safe next to torch's threads). ``timeout``: the
    seconds a task may run, or with a generator task the seconds between two of its messages."""

    def __init__(self, fn: Callable[[Any], Any], workers: int, timeout: float | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._fn = fn
        self._size = workers
        self._timeout = as_timeout(timeout)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(kill=exc[0] is not None)

    def close(self, kill: bool = False) -> None:
        for worker in self._workers:
            worker.stop(kill=kill or worker.task is not None)
        self._workers = []

    def imap_unordered(self, tasks: Iterable[Any]) -> Iterator[tuple[Any, Any | TaskFailure]]:
        """Yield ``(task, result)`` as each finishes; ``result`` is a TaskFailure when the task failed. A generator
        task also gives ``(task, Partial(item))`` for each item it yields, before its result."""
        pending = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(self._busy()) < self._size:
                task = next(pending, _END)
                if task is _END:
                    exhausted = True
                    break
                self._idle_worker().assign(task)
            busy = self._busy()
            if not busy:
                return
            yield from self._collect(busy)

    def _busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.task is not None]

    def _idle_worker(self) -> _Worker:
        for worker in self._workers:
            if worker.task is None:
                return worker
        worker = _Worker(self._context, self._fn)
        self._workers.append(worker)
        return worker

    def _collect(self, busy: list[_Worker]) -> Iterator[tuple[Any, Any | TaskFailure]]:
        wait_for = None
        if self._timeout is not None:
            now = time.monotonic()
            wait_for = max(0.0, min(w.started + self._timeout - now for w in busy))
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_for))
        now = time.monotonic()
        for worker in busy:
            task = worker.task
            if worker.conn in ready:
                try:
                    status, value = worker.conn.recv()
                except (EOFError, OSError):
                    # The pipe closed before a whole answer arrived: the process died mid-send.
                    worker.process.join(timeout=5)
                    yield task, self._crashed(worker)
                    continue
                if status == "more":
                    worker.started = time.monotonic()  # its clock runs from its last message
                    yield task, Partial(value)
                    continue
                worker.task = None
                yield task, value
            elif worker.process.sentinel in ready:
                worker.process.join(timeout=5)
                yield task, self._crashed(worker)
            elif self._timeout is not None and now - worker.started >= self._timeout:
                yield task, self._replace(worker, TaskFailure("Timeout", f"no result after {self._timeout:g} s"))

    def _crashed(self, worker: _Worker) -> TaskFailure:
        return self._replace(worker, TaskFailure("WorkerCrash", _describe_exit(worker.process.exitcode)))

    def _replace(self, worker: _Worker, failure: TaskFailure) -> TaskFailure:
        worker.stop(kill=True)
        self._workers.remove(worker)
        return failure


_END = object()
