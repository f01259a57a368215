"""The one worker pool: results by job index, and no worker outlives an interrupt or its parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from mnc_core.workers import run_unordered

psutil = pytest.importorskip("psutil", reason="psutil (a dagster dependency) lists child processes")


class StepCancelled(BaseException):
    """Stands for Dagster's DagsterExecutionInterruptedError: a BaseException, not an Exception."""


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still running (not zombies) after waiting up to `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_results_come_back_with_their_job_index() -> None:
    jobs = [(2, 3), (3, 2), (5, 1)]
    assert dict(run_unordered(pow, jobs, 2)) == {i: pow(*job) for i, job in enumerate(jobs)}


def test_an_interrupt_kills_the_workers_instead_of_waiting_for_queued_calls() -> None:
    """As under Dagster: its signal handler raises a BaseException while the caller waits."""

    def cancel(signum, frame):
        raise StepCancelled

    started = time.monotonic()
    results = run_unordered(time.sleep, [(0,), (60,), (60,), (60,)], 2)
    assert next(results)[0] == 0
    workers = [p.pid for p in multiprocessing.active_children()]
    assert len(workers) == 2
    previous = signal.signal(signal.SIGALRM, cancel)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(StepCancelled):
            list(results)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30, "waited for the 60 s calls"
    assert _gone(workers, 5) == []


def test_workers_die_with_a_killed_parent(tmp_path) -> None:
    code = ("import time; from mnc_core.workers import run_unordered\n"
            "list(run_unordered(time.sleep, [(120,), (120,)], 2))\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd())
    try:
        proc = psutil.Process(parent.pid)
        deadline = time.monotonic() + 60
        workers: list = []
        # ready once each worker runs its parent-watch thread (set up after PDEATHSIG)
        while len([w for w in workers if w.num_threads() >= 2]) < 2:
            assert time.monotonic() < deadline, "workers did not start"
            workers = [c for c in proc.children() if "spawn_main" in " ".join(c.cmdline())]
            time.sleep(0.2)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone([w.pid for w in workers], 5) == []
    finally:
        if parent.poll() is None:
            parent.kill()
