"""Island runs on a real Dask LocalCluster (loopback, worker processes): solving, migration,
a worker killed mid-run, determinism across worker counts, resume and bad input."""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from evolve.__main__ import main  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.islands import IslandOptions, IslandRun, finish, run_islands  # noqa: E402
from evolve.taskwatch import kill_if_running, wait_running  # noqa: E402

TIMING = {"evals_per_s", "seconds"}


def start_cluster(n_workers: int):
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def two_workers():
    cluster, client = start_cluster(2)
    yield cluster, client
    client.close()
    cluster.close()


def run_cli(*args: str) -> int:
    return main(["run", "--quiet", "--backend", "emulated", "--time-limit", "0", *args])


def island_metrics(folder: Path, n: int) -> list:
    out = []
    for i in range(n):
        lines = [json.loads(x) for x in (folder / f"island-{i:02d}" / "metrics.jsonl").read_text().splitlines()]
        out.append([{k: v for k, v in m.items() if k not in TIMING} for m in lines])
    return out


def test_island_run_solves_clear_lowest_and_migrates(tmp_path, two_workers):
    """Check that 2 islands on 2 worker processes solve clear_lowest by evolution and migrants
    arrive."""
    cluster, _ = two_workers
    out = tmp_path / "run"
    assert run_cli("--task", "clear_lowest", "--pop", "300", "--generations", "300", "--islands", "2",
                   "--migration-every", "3", "--migrants", "4", "--scheduler", cluster.scheduler_address,
                   "--no-enumerate", "--out", str(out)) == 0      # (the bank finds it in epoch 0)
    for name in ("config.json", "islands.json", "islands-checkpoint.json", "metrics.jsonl", "result.json",
                 "hall_of_fame.json", "best.s", "island-00/metrics.jsonl", "island-01/metrics.jsonl",
                 "progress.png", "island-00/progress.png", "island-01/progress.png"):
        assert (out / name).is_file(), name
    assert (out / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "result.json").read_text())
    assert result["solved"] is True and result["islands"] == 2 and result["solved_by"]
    record = json.loads((out / "islands.json").read_text())
    assert record["migrations"], "no migration recorded"
    first = record["migrations"][0]["moves"]
    assert [(m["from"], m["to"]) for m in first] == [(1, 0), (0, 1)]
    assert all(len(m["uids"]) == 4 and len(m["replaced_uids"]) == 4 for m in first)
    # the migrants were re-evaluated on the receiving island: they got new uids there
    arrived = record["epochs"][1]["arrived"]
    assert [len(a) for a in arrived] == [4, 4]
    metrics = island_metrics(out, 2)
    assert [m["gen"] for m in metrics[0]][:4] == [0, 1, 2, 3]
    assert len({s for s in record["seeds"]}) == 2


def test_same_seed_same_result_with_one_and_two_workers(tmp_path, two_workers):
    """Check that an island run is the same with 1 worker process and with 2."""
    common = ["--task", "avg", "--seed", "7", "--pop", "50", "--generations", "6", "--islands", "3",
              "--migration-every", "2", "--migrants", "3"]
    cluster2, _ = two_workers
    one, two = tmp_path / "one", tmp_path / "two"
    cluster1, client1 = start_cluster(1)
    try:
        assert run_cli(*common, "--scheduler", cluster1.scheduler_address, "--out", str(one)) == 0
    finally:
        client1.close()
        cluster1.close()
    assert run_cli(*common, "--scheduler", cluster2.scheduler_address, "--out", str(two)) == 0
    assert island_metrics(one, 3) == island_metrics(two, 3)
    a, b = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert a["best"] == b["best"] and a["evaluations"] == b["evaluations"]
    ra, rb = (json.loads((d / "islands.json").read_text()) for d in (one, two))
    assert ra["migrations"] == rb["migrations"]


def test_resume_of_an_island_run_equals_the_whole_run(tmp_path, two_workers):
    """Check that an island run stopped at generation 4 and resumed to 8 equals running 8 at once."""
    cluster, _ = two_workers
    common = ["--task", "avg", "--seed", "2", "--pop", "40", "--islands", "2", "--migration-every", "2",
              "--migrants", "2", "--scheduler", cluster.scheduler_address]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_cli(*common, "--generations", "8", "--out", str(whole)) == 0
    assert run_cli(*common, "--generations", "4", "--out", str(part)) == 0
    old = tmp_path / "old"
    shutil.copytree(part, old)
    assert run_cli("--resume", str(part), "--generations", "8", "--scheduler", cluster.scheduler_address) == 0
    assert island_metrics(part, 2) == island_metrics(whole, 2)
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole, part))
    assert a["best"] == b["best"] and a["generations"] == b["generations"] == 8
    # the same folder as an earlier version wrote it (islands.pkl) resumes once with --trust-pickle
    _to_pickled_checkpoint(old)
    assert run_cli("--resume", str(old), "--generations", "8", "--scheduler", cluster.scheduler_address) == 2
    assert run_cli("--resume", str(old), "--generations", "8", "--scheduler", cluster.scheduler_address,
                   "--trust-pickle") == 0
    assert island_metrics(old, 2) == island_metrics(whole, 2)
    assert not (old / "islands.pkl").exists() and (old / "islands-checkpoint.json").is_file()


def _to_pickled_checkpoint(folder: Path) -> None:
    """Turn an island run's checkpoint into an earlier version's islands.pkl (pickled blobs)."""
    import pickle
    import zlib

    from evolve.islands import load_state
    from evolve.island_task import unpack_island
    run = load_state(folder)
    blobs = []
    for state, brain in map(unpack_island, run.blobs):
        blobs.append(pickle.dumps({"state": dict(state, version=2, metrics=[], logbook=None),
                                   "brain": zlib.compress(brain.to_bytes({}), 1)}))
    run.blobs = blobs
    run.record["metrics"] = [[json.loads(x) for x in (folder / f"island-{i:02d}" / "metrics.jsonl").read_text().splitlines()]
                             for i in range(2)]
    (folder / "islands.pkl").write_bytes(pickle.dumps(run))
    for p in folder.glob("islands-checkpoint*"):
        p.unlink()


def test_a_worker_killed_mid_run_loses_no_island(tmp_path):
    """Check that SIGKILL of a worker process running an island task does not lose the island."""
    cluster, client = start_cluster(2)
    try:
        # epochs of 4 generations at pop 150 (about a second each): the kill lands mid-task
        cfg = RunConfig(task="avg", seed=4, pop=150, generations=12, time_limit=None, backend="emulated",
                        enumerate=False)           # (the bank would end the run in epoch 0)
        run = IslandRun(cfg, IslandOptions(islands=2, scheduler=cluster.scheduler_address,
                                           migration_every=4, migrants=2))
        folder = tmp_path / "killed"
        folder.mkdir()
        status: list = []
        thread = threading.Thread(target=lambda: status.append(run_islands(run, folder, client)), daemon=True)
        thread.start()
        # the kill lands while the task is known to run (checked inside the worker): a task of
        # epoch 1, or of epoch 2 should epoch 1's end first
        victim = None
        for epoch in (1, 2):
            worker, key, _ = wait_running(client, re.compile(rf"island-\d-epoch-{epoch}-try-1").fullmatch,
                                          timeout=120, alive=thread.is_alive)
            if kill_if_running(client, worker, key):
                victim = {"worker": worker, "island": int(key.split("-")[1]), "epoch": epoch}
                break
        assert victim is not None, "no island task was caught running"
        thread.join(timeout=180)
        assert not thread.is_alive() and status == [0]
        assert run.gen == 12 and all(blob is not None for blob in run.blobs)
        events = run.record["events"]
        assert any(e["event"] == "worker_lost" and e["worker"] == victim["worker"] for e in events)
        starts = run.record["epochs"][victim["epoch"]]["workers"][victim["island"]]
        resubmitted = [e for e in events if e["event"] == "resubmitted" and e["island"] == victim["island"]]
        assert len(starts) >= 2 or resubmitted, "the killed island's task was not run again"
        record = json.loads((folder / "islands.json").read_text())
        assert any(r["island"] == victim["island"] and r["epoch"] == victim["epoch"]
                   for r in record["reruns"]) or resubmitted
        result = finish(run, folder)
        assert result["generations"] == 12 and result["workers_lost"] >= 1
        assert [m["gen"] for m in island_metrics(folder, 2)[0]] == list(range(13))   # generations 0..12, once
        assert [m["gen"] for m in island_metrics(folder, 2)[1]] == list(range(13))
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("args, needle", [
    (["--islands", "0"], "--islands must be at least 1"),
    (["--islands", "2", "--migrants", "500"], "--migrants"),
    (["--islands", "2", "--scheduler", "bogus:1"], "--scheduler"),
])
def test_bad_island_options_exit_2(tmp_path, capsys, args, needle):
    """Check that nonsensical island options exit 2 with one line naming the option."""
    assert run_cli("--out", str(tmp_path / "x"), *args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_unreachable_scheduler_fails_fast(tmp_path, capsys):
    """Check that a scheduler nobody listens at gives a clear error, exit 2, within 10 s."""
    t0 = time.monotonic()
    assert run_cli("--islands", "2", "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "x")) == 2
    assert time.monotonic() - t0 < 10
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err
    assert not (tmp_path / "x").exists()


def test_time_limit_stops_island_tasks_within_an_epoch(tmp_path, two_workers):
    """Check that --time-limit ends a run whose first epoch alone would take far longer: each
    island task stops after the generation that exhausts the limit."""
    cluster, _ = two_workers
    out = tmp_path / "run"
    t0 = time.perf_counter()
    # run_cli passes --time-limit 0; a later --time-limit wins (argparse keeps the last)
    assert run_cli("--task", "popcount8", "--pop", "200", "--generations", "100000", "--islands", "2",
                   "--migration-every", "100000", "--scheduler", cluster.scheduler_address,
                   "--time-limit", "3", "--out", str(out)) == 0
    took = time.perf_counter() - t0
    result = json.loads((out / "result.json").read_text())
    assert not result["solved"] and 1 <= result["generations"] < 100000
    assert took < 40, f"the run took {took:.1f} s for a 3 s limit"
    assert result["epochs"] == 1
