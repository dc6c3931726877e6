"""Acting on a Dask task while it is known to be running: which worker executes which task key
now, and a SIGKILL of a worker process that lands only while a given task is still in flight.

Fault-injection benchmarks and tests (a worker lost mid-task, for island tasks and batch runs
alike) used to sleep a guessed time after a task's start event and then kill; a task faster than
the guess had already finished, the kill hit an idle worker and nothing was recovered. Here the
worker itself is asked: :func:`kill_if_running` runs in the worker's event loop, the only thread
that records a task's completion and tells the scheduler, so while it checks that the task is
still executing and kills its own process, the task cannot be reported finished in between. A
kill it reports is one the scheduler must recover from (the task runs again elsewhere).
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable


def _executing(dask_worker) -> dict:
    """In a worker: its pid and the keys of the tasks it executes now."""
    return {"pid": os.getpid(), "keys": sorted(str(ts.key) for ts in dask_worker.state.executing)}


def executing(client) -> dict[str, dict]:
    """Per worker address, ``{"pid": int, "keys": [task keys it executes now]}``, asked of the
    workers themselves (the scheduler's ``processing`` also counts tasks queued on a worker);
    a worker that cannot answer (it is dying or restarting) is left out."""
    answers = client.run(_executing, on_error="return")
    return {address: info for address, info in answers.items() if isinstance(info, dict)}


def wait_running(client, match: Callable[[str], bool], timeout: float = 120.0,
                 alive: Callable[[], bool] | None = None, poll: float = 0.01) -> tuple[str, str, int]:
    """``(worker address, key, pid)`` of a task whose key satisfies ``match`` once a worker
    executes it; polls every ``poll`` seconds. Raises ``TimeoutError`` after ``timeout``
    seconds, or when ``alive()`` (e.g. the thread that submits the tasks) turns false first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (alive is None or alive()):
        for address, info in executing(client).items():
            key = next((k for k in info["keys"] if match(k)), None)
            if key is not None:
                return address, key, info["pid"]
        time.sleep(poll)
    raise TimeoutError("no matching task was executing " + (f"within {timeout:g} s" if alive is None or alive()
                                                            else "before the submitter ended"))


def _kill_if_executing(key: str, dask_worker) -> bool:
    """In a worker's event loop: SIGKILL this process if it still executes ``key``."""
    if any(str(ts.key) == key for ts in dask_worker.state.executing):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)              # never reached: the signal ends the process here
    return False


def kill_if_running(client, worker: str, key: str) -> bool:
    """SIGKILL the process of ``worker`` if, checked inside it, it still executes task ``key``.

    Returns True when it killed (the worker's connection closed during the check: the
    scheduler then has to run ``key`` again), False when the task had finished (or not
    started) there and the worker was left alone."""
    try:
        answer = client.run(_kill_if_executing, key, workers=[worker], on_error="return").get(worker)
    except (OSError, TimeoutError):       # the connection died with the process
        return True
    if answer is False:
        return False
    if isinstance(answer, (OSError, TimeoutError)):     # CommClosedError is an OSError
        return True
    raise RuntimeError(f"kill_if_running on {worker}: {answer!r}")
