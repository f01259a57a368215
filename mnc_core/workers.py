"""The one worker pool: independent calls spread over spawned processes that never outlive
the work they were started for.

Why a wrapper around ProcessPoolExecutor: leaving its `with` block on an exception
waits for every queued call (minutes of ranker fits after Ctrl-C), and a parent that
dies (SIGTERM, SIGKILL, a cancelled Dagster step) leaves its workers orphaned. Here:

- any BaseException while the calls run (an error, KeyboardInterrupt, SystemExit,
  Dagster's DagsterExecutionInterruptedError, the consumer closing the generator)
  cancels the queued calls and kills the workers before it propagates;
- a worker dies with its parent: PR_SET_PDEATHSIG on Linux, and a thread that
  watches the parent's pid everywhere (also covers a parent that died while the
  worker was still starting);
- workers ignore SIGINT: a Ctrl-C in a terminal reaches the whole process group, and
  it is the parent that decides to stop (and kills them), not each worker printing
  its own traceback. SIGINT stays blocked from spawn until that is set up.

No signal handler is installed in the calling process: that is the CLI's business
(`mnc_core.cli.common.run_or_exit`) or the host's (Dagster).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 0.5
JOIN_TIMEOUT_S = 5.0


def run_unordered(
    function: Callable[..., Any], jobs: Sequence[tuple], workers: int
) -> Iterator[tuple[int, Any]]:
    """Yield `(index into jobs, function(*job))` as the calls finish, in `workers`
    spawned processes (spawn: the parent holds numba/gensim/CatBoost state that fork
    would copy). `function` and the jobs must be picklable.

    Call it from the thread that consumes the results: the workers are tied to it.
    """
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_setup,
        initargs=(os.getpid(),),
    )
    try:
        with _sigint_blocked():  # the workers inherit the mask across spawn
            futures = {pool.submit(function, *job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while workers are spawned, so a Ctrl-C during their
    start-up (seconds of imports, before `_worker_setup` ignores it) stays pending in
    them and is then discarded; the parent handles its own pending SIGINT on exit."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and kill the workers now (their results are not wanted)."""
    processes = list((pool._processes or {}).values())  # shutdown() drops the mapping
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(JOIN_TIMEOUT_S)


def _worker_setup(parent_pid: int) -> None:
    """Runs first in every worker: die with the parent, leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watch thread below still covers it
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone (the worker is reparented)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)
