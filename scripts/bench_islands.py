#!/usr/bin/env python3
"""Island benchmarks (issue 7): Dask speed-up, scheduler overhead, recovery from a lost worker.

``run_island_benchmarks(quick)`` returns rows for ``scripts/bench.py``:

* evaluations/s of an island run (4 islands, emulated arm64) on a LocalCluster of 1 and of 2
  worker processes; the ratio is the speed-up (target >= 1.7x on a 2-core machine). The first
  epoch (worker start-up, imports, numba loads) is left out of both;
* the scheduler's and coordinator's overhead per generation: on one worker, epoch wall time minus
  the sum of its island tasks (submission, checkpoint transfer, migration, the record), divided
  by the epoch's generations;
* recovery from a worker process killed with SIGKILL mid-task (while the task is known to run,
  :mod:`evolve.taskwatch`): seconds from the kill to the island's task starting again on another
  worker, and the epoch's extra wall time.
"""
from __future__ import annotations

import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evolve.config import RunConfig  # noqa: E402
from evolve.islands import EVENT_TOPIC, IslandOptions, IslandRun, run_islands  # noqa: E402
from evolve.taskwatch import kill_if_running, wait_running  # noqa: E402


def _cluster(n_workers: int):
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    return cluster, Client(cluster)


def _config(quick: bool, generations: int) -> RunConfig:
    # popcount8 is not solved in this many generations, so every island runs every generation;
    # populations as large as the engine benchmark's, so that a task is real work (~25 ms a
    # generation), not mostly its checkpoint and the scheduler
    return RunConfig(task="popcount8", seed=1, pop=500 if quick else 1000, generations=generations,
                     time_limit=None, backend="emulated", stop_when_solved=False)


def _island_run(n_workers: int, quick: bool) -> IslandRun:
    # Four islands on two workers: an epoch waits for its slowest island, and islands differ in
    # how many offspring need evaluating; two tasks per worker even that out.
    k, islands = (5, 2) if quick else (10, 4)
    cfg = _config(quick, k * (3 if quick else 4))
    cluster, client = _cluster(n_workers)
    try:
        run = IslandRun(cfg, IslandOptions(islands=islands, scheduler=cluster.scheduler_address,
                                           migration_every=k, migrants=3))
        with tempfile.TemporaryDirectory() as tmp:
            run_islands(run, Path(tmp), client)
    finally:
        client.close()
        cluster.close()
    return run


def _rate(run: IslandRun) -> float:
    """Evaluations/s over the epochs after the first (steady state)."""
    epochs = run.record["epochs"]
    evals = sum(epochs[-1]["evaluations"]) - sum(epochs[0]["evaluations"])
    return evals / sum(e["seconds"] for e in epochs[1:])


def _kill_mid_task(client, epochs: tuple[int, ...], alive) -> tuple[int, int, float]:
    """SIGKILL the worker process running an island task of the first of ``epochs`` whose task
    is caught in flight: ``(epoch, island, time of the kill)``. The kill lands only while the
    task is known to run (:func:`evolve.taskwatch.kill_if_running`, checked inside the worker)
    and after its start event (it is in ``advance_island``, not still receiving its arguments);
    a task that finished first (a fast epoch) passes the turn to the next epoch."""
    for epoch in epochs:
        pattern = re.compile(rf"island-(\d+)-epoch-{epoch}-try-1")
        worker, key, _ = wait_running(client, pattern.fullmatch, timeout=600, alive=alive)
        island = int(pattern.fullmatch(key).group(1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                m["epoch"] == epoch and m["island"] == island for _, m in client.get_events(EVENT_TOPIC)):
            time.sleep(0.005)
        killed_at = time.time()
        if kill_if_running(client, worker, key):
            return epoch, island, killed_at
    raise RuntimeError(f"no island task of epochs {epochs} was still running when it was to be killed")


def _recovery(quick: bool) -> tuple[float, float, float, int]:
    """(seconds from SIGKILL to the task's restart, extra seconds of that epoch, a normal epoch,
    the epoch killed)."""
    k = 20 if quick else 30
    cfg = _config(quick, 5 * k)     # epochs 0-4: a kill in epoch 2 (or 3), normal epochs around it
    cluster, client = _cluster(2)
    try:
        run = IslandRun(cfg, IslandOptions(islands=2, scheduler=cluster.scheduler_address, migration_every=k, migrants=3))
        with tempfile.TemporaryDirectory() as tmp:
            thread = threading.Thread(target=run_islands, args=(run, Path(tmp), client), daemon=True)
            thread.start()
            epoch, island, killed_at = _kill_mid_task(client, (2, 3), thread.is_alive)
            thread.join(timeout=600)
        restarts = [m["time"] for _, m in client.get_events(EVENT_TOPIC)
                    if m["epoch"] == epoch and m["island"] == island and m["time"] > killed_at]
    finally:
        client.close()
        cluster.close()
    if not restarts:
        raise RuntimeError(f"island {island}'s task of epoch {epoch} was killed mid-task and never restarted")
    seconds = [e["seconds"] for e in run.record["epochs"]]
    normal = statistics.median(s for e, s in enumerate(seconds) if e not in (0, epoch))
    return restarts[0] - killed_at, seconds[epoch] - normal, normal, epoch


def run_island_benchmarks(quick: bool) -> list[dict]:
    one, two = _island_run(1, quick), _island_run(2, quick)
    r1, r2 = _rate(one), _rate(two)
    pop = one.cfg.pop
    n, k = one.opts.islands, one.opts.migration_every
    rows = [{"name": f"islands evaluations/s, {n} islands on 1 worker process", "value": r1, "unit": "evals/s",
             "baseline": r1, "ratio": 1.0,
             "notes": f"emulated arm64, pop {pop} per island, migration every {k}, first epoch excluded"},
            {"name": f"islands evaluations/s, {n} islands on 2 worker processes", "value": r2, "unit": "evals/s",
             "baseline": r1, "ratio": r2 / r1, "notes": "speed-up over 1 worker (target >= 1.7x on 2 cores)"}]
    # On one worker the tasks run one after another, so whatever the epoch took beyond the sum
    # of its tasks is the scheduler's and the coordinator's (submission, transfers, migration).
    epochs = one.record["epochs"][1:]
    overhead = statistics.median((e["seconds"] - sum(e["task_seconds"])) / k for e in epochs)
    per_gen = statistics.median(sum(e["task_seconds"]) / (k * n) for e in epochs)
    rows.append({"name": "islands coordinator overhead per generation", "value": overhead * 1e3, "unit": "ms",
                 "baseline": per_gen * 1e3, "ratio": overhead / per_gen,
                 "notes": f"1 worker: epoch wall time minus the sum of its {n} tasks, / {k} generations; "
                          f"baseline: one island generation inside a task ({per_gen * 1e3:.0f} ms, restore and "
                          f"checkpoint included)"})
    restart, extra, normal, epoch = _recovery(quick)
    rows.append({"name": "islands recovery: SIGKILL to task restart", "value": restart, "unit": "s",
                 "baseline": normal, "ratio": restart / normal,
                 "notes": f"a worker killed while its task of epoch {epoch} was known to run; the island restarts "
                          f"from its checkpoint on another worker; that epoch took {extra:+.2f} s more than a "
                          f"normal one ({normal:.2f} s)"})
    return rows


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="scripts/bench.py runs every section; its --json writes the rows.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    quick = ap.parse_args().quick
    for row in run_island_benchmarks(quick):
        print(row)
