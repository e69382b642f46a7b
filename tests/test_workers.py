"""The decoding pool: a crash or a hang in one task costs only that task, and every task gets an outcome."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tsf_cli.inference.pool import Partial, TaskFailure, WorkerPool


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


def _stream(task):
    kind, count = task
    for i in range(count):
        if kind == "slow":
            time.sleep(1.0)
        if kind == "stall" and i == 1:
            time.sleep(60)
        if kind == "crash" and i == 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        yield i
    return f"{kind} done"


def test_a_generator_task_streams_its_items_then_its_result_with_its_clock_counted_from_its_last_message():
    tasks = [("slow", 4), ("stall", 3), ("crash", 4), ("quick", 2)]
    with WorkerPool(_stream, workers=2, timeout=2.5) as pool:
        outcomes = list(pool.imap_unordered(tasks))
    by_task = {task: [outcome for t, outcome in outcomes if t == task] for task in tasks}
    # 4 s of work, but never 2.5 s without a message: it finishes
    assert by_task[("slow", 4)] == [Partial(0), Partial(1), Partial(2), Partial(3), "slow done"]
    assert by_task[("quick", 2)] == [Partial(0), Partial(1), "quick done"]
    assert by_task[("stall", 3)] == [Partial(0), TaskFailure("Timeout", "no result after 2.5 s")]
    assert by_task[("crash", 4)] == [
        Partial(0),
        Partial(1),
        TaskFailure("WorkerCrash", "the decoding process crashed (SIGSEGV)"),
    ]


def test_in_this_process_a_generator_task_gives_the_same_outcomes():
    from tsf_cli.inference.runner import outcomes

    def broken(task):
        yield 1
        raise OSError(f"cannot read {task}")

    assert list(outcomes(_stream, [("quick", 2)], workers=0, timeout=None)) == [
        (("quick", 2), Partial(0)),
        (("quick", 2), Partial(1)),
        (("quick", 2), "quick done"),
    ]
    assert list(outcomes(broken, ["x"], workers=0, timeout=None)) == [
        ("x", Partial(1)),
        ("x", TaskFailure("OSError", "cannot read x")),
    ]
    # here the time limit can only be judged once an item comes: one that came too late fails the task
    assert list(outcomes(_stream, [("slow", 3)], workers=0, timeout=0.5)) == [
        (("slow", 3), TaskFailure("Timeout", "no result after 0.5 s"))
    ]
