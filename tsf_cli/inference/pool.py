"""Run one function over many inputs in worker processes, where a crash or a hang costs only its own input.

``concurrent.futures.ProcessPoolExecutor`` marks the whole pool broken when one worker dies, which is exactly what a
segfaulting decoder does on a hostile file. Here each worker owns a pipe and runs one task at a time; the parent
waits on the pipes and the process sentinels together, so a worker that dies or overruns its time is replaced and
only its task is reported as failed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

_STARTUP_TIMEOUT = 300  # seconds a new worker may take to start and import PyAV on a loaded machine


@dataclass(frozen=True)
class TaskFailure:
    """Why a task produced no result: the exception's type name (or WorkerCrash / Timeout) and a one-line message."""

    error: str
    message: str


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
            outcome = ("ok", fn(task))
        except Exception as exc:  # noqa: BLE001 - every failure of one input becomes that input's record
            outcome = ("error", TaskFailure(type(exc).__name__, str(exc) or repr(exc)))
        conn.send(outcome)


class _Worker:
    def __init__(self, context, fn):
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child, fn), daemon=True)
        self.process.start()
        child.close()
        self.task: Any = None
        self.started = 0.0
        self.ready = False

    def assign(self, task) -> None:
        if not self.ready:
            # A worker that cannot even start (no memory, a broken install) is the pool's problem, not the task's.
            try:
                started = self.conn.poll(_STARTUP_TIMEOUT) and self.conn.recv() == "ready"
            except EOFError:
                started = False
            if not started:
                raise RuntimeError(f"a decoding process did not start within {_STARTUP_TIMEOUT} s")
            self.ready = True
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
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the decoding process crashed ({name})"
    return f"the decoding process exited unexpectedly (exit code {exitcode})"


class WorkerPool:
    """``imap_unordered`` over worker processes started with spawn (safe next to torch's threads)."""

    def __init__(self, fn: Callable[[Any], Any], workers: int, timeout: float | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._fn = fn
        self._size = workers
        self._timeout = timeout
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
        """Yield ``(task, result)`` as each finishes; ``result`` is a TaskFailure when the task failed."""
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
