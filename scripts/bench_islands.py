#!/usr/bin/env python3
"""Island benchmarks (issue 7): Dask speed-up, scheduler overhead, recovery from a lost worker.

``run_island_benchmarks(quick)`` returns rows for ``scripts/bench.py``:

* evaluations/s of an island run (4 islands, emulated arm64) on a LocalCluster of 1 and of 2
  worker processes; the ratio is the speed-up (target >= 1.7x on a 2-core machine). The first
  epoch (worker start-up, imports, numba loads) is left out of both;
* the scheduler's and coordinator's overhead per generation: on one worker, epoch wall time minus
  the sum of its island tasks (submission, checkpoint transfer, migration, the record), divided
  by the epoch's generations;
* recovery from a worker process killed with SIGKILL mid-task: seconds from the kill to the
  island's task starting again on another worker, and the epoch's extra wall time.
"""
from __future__ import annotations

import os
import signal
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


def _recovery(quick: bool) -> tuple[float, float, float]:
    """(seconds from SIGKILL to the task's restart, extra seconds of that epoch, a normal epoch)."""
    k = 20 if quick else 30     # an epoch's task lasts ~0.5 s or more: the kill lands mid-task
    cfg = _config(quick, 4 * k)
    cluster, client = _cluster(2)
    try:
        run = IslandRun(cfg, IslandOptions(islands=2, scheduler=cluster.scheduler_address, migration_every=k, migrants=3))
        with tempfile.TemporaryDirectory() as tmp:
            thread = threading.Thread(target=run_islands, args=(run, Path(tmp), client), daemon=True)
            thread.start()
            victim, killed_at = None, None
            while victim is None and thread.is_alive():
                victim = next((m for _, m in client.get_events(EVENT_TOPIC) if m["epoch"] == 2), None)
                time.sleep(0.02)
            if victim is None:
                raise RuntimeError("the run ended before epoch 2 started")
            time.sleep(0.3)             # mid-task, not at its first instruction
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.time()
            thread.join(timeout=600)
        restarts = [m["time"] for _, m in client.get_events(EVENT_TOPIC)
                    if m["epoch"] == 2 and m["island"] == victim["island"] and m["time"] > killed_at]
    finally:
        client.close()
        cluster.close()
    if not restarts:
        raise RuntimeError("the killed island's task never restarted")
    seconds = [e["seconds"] for e in run.record["epochs"]]
    normal = statistics.median(seconds[1:2] + seconds[3:])
    return restarts[0] - killed_at, seconds[2] - normal, normal


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
    restart, extra, normal = _recovery(quick)
    rows.append({"name": "islands recovery: SIGKILL to task restart", "value": restart, "unit": "s",
                 "baseline": normal, "ratio": restart / normal,
                 "notes": f"a worker killed mid-task; the island restarts from its checkpoint on another worker; "
                          f"that epoch took {extra:+.2f} s more than a normal one ({normal:.2f} s)"})
    return rows


if __name__ == "__main__":
    for row in run_island_benchmarks("--quick" in sys.argv):
        print(row)
