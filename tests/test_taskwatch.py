"""Tests of evolve.taskwatch on a real Dask LocalCluster (loopback, worker processes): a task seen
executing where it runs, a kill that lands only while the task is in flight, and a task that
runs again elsewhere after it."""
from __future__ import annotations

import os
import time

import pytest

distributed = pytest.importorskip("distributed")

from evolve.taskwatch import executing, kill_if_running, wait_running  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_finished_task_is_not_killed(client):
    """Check that kill_if_running leaves a worker alone once its task has finished."""
    fut = client.submit(time.sleep, 0, key="watch-done-1", pure=False)
    fut.result()
    where = client.who_has(fut)["watch-done-1"][0]
    pid = executing(client)[where]["pid"]
    assert kill_if_running(client, where, "watch-done-1") is False
    assert _alive(pid) and executing(client)[where]["pid"] == pid


def test_nothing_matching_times_out(client):
    """Check that wait_running gives up with TimeoutError when no such task runs."""
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_running(client, lambda key: key.startswith("no-such-task"), timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_a_running_task_is_killed_and_runs_again(client):
    """Check that a task seen executing is killed in flight (its worker process ends) and that
    the scheduler runs it again on another worker to completion."""
    fut = client.submit(time.sleep, 2.0, key="watch-nap-1", pure=False, retries=1)
    worker, key, pid = wait_running(client, lambda k: k == "watch-nap-1", timeout=60)
    assert key == "watch-nap-1" and key in executing(client)[worker]["keys"]
    t0 = time.monotonic()
    assert kill_if_running(client, worker, key) is True
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    fut.result(timeout=60)          # ran again to completion elsewhere: a whole 2 s nap after the kill
    assert time.monotonic() - t0 >= 2.0
