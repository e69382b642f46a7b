"""The decoding pool: a crash or a hang in one task costs only that task, and every task gets an outcome."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tsf_cli.inference.pool import TaskFailure, WorkerPool


def _work(task):
    kind, value = task
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "exit":
        os._exit(3)
    if kind == "hang":
        time.sleep(60)
    if kind == "raise":
        raise OSError(f"cannot read {value}")
    return value * 2


def test_every_task_gets_one_outcome_despite_crashes_hangs_and_errors():
    tasks = [("ok", 1), ("segfault", 2), ("ok", 3), ("hang", 4), ("raise", 5), ("exit", 6), ("ok", 7)]
    started = time.monotonic()
    with WorkerPool(_work, workers=2, timeout=3) as pool:
        outcomes = dict(pool.imap_unordered(tasks))
    assert time.monotonic() - started < 30
    assert set(outcomes) == set(tasks)
    assert [outcomes[("ok", n)] for n in (1, 3, 7)] == [2, 6, 14]
    assert outcomes[("segfault", 2)] == TaskFailure("WorkerCrash", "the decoding process crashed (SIGSEGV)")
    assert outcomes[("hang", 4)] == TaskFailure("Timeout", "no result after 3 s")
    assert outcomes[("raise", 5)] == TaskFailure("OSError", "cannot read 5")
    assert outcomes[("exit", 6)] == TaskFailure("WorkerCrash", "the decoding process exited unexpectedly (exit code 3)")


def test_no_tasks_starts_no_process_and_yields_nothing():
    with WorkerPool(_work, workers=4) as pool:
        assert list(pool.imap_unordered([])) == []
        assert pool._workers == []


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        WorkerPool(_work, workers=0)
