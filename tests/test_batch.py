"""``python -m evolve batch``: 2 tasks x 2 seeds locally and on a Dask LocalCluster (same results),
kill -9 then --resume, a failing task, the summary against the run folders, and bad specs."""
from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolve.__main__ import main
from evolve.batch_spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parent.parent
IDS = ["clear_lowest-s0", "clear_lowest-s1", "add-s0", "add-s1"]
ENDED = ("solved", "unsolved")         # ended, not failed
# Generation limits and no optimisation phase (time-bound) and no time limit: each run is a
# function of its seed, wherever and however often it is run.
SPEC = """\
seeds = [0, 1]
[defaults]
generations = 30
time_limit = 0
optimize = 0
backend = "emulated"
checkpoint_every = 5
[[task]]
task = "clear_lowest"
pop = 300
[[task]]
task = "add"
pop = 100
"""
#: what differs between two runs of one seed: clocks
TIMING = {"seconds", "evolution_seconds", "evals_per_s"}


def strip(obj):
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def outcome(run: Path) -> dict:
    """A run folder's results without clocks: result.json, every metrics line, the hall of fame."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {"result": strip(json.loads((run / "result.json").read_text())), "metrics": strip(lines),
            "hall_of_fame": strip(json.loads((run / "hall_of_fame.json").read_text()))}


def batch_cli(*args: str) -> int:
    return main(["batch", "--quiet", *args])


def state(folder: Path) -> dict:
    return {r["id"]: r for r in json.loads((folder / "batch.json").read_text())["runs"]}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "two.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def local(spec_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "batch"
    assert batch_cli(str(spec_file), "--out", str(out), "--jobs", "2") == 0
    return out


def test_local_batch_writes_every_run_and_the_summary(local):
    """Check that a local batch ends every run, solved, with its folder, log and the summary files."""
    runs = state(local)
    assert list(runs) == IDS
    # Whether a seed solves within its generations is the search's business: the batch must end each run
    assert all(r["state"] in ENDED and r["attempts"] == 1 and r["exit"] == 0 for r in runs.values())
    assert any(r["state"] == "solved" for r in runs.values()), "no run solved: the summary checks need one"
    for run_id in IDS:
        assert (local / "runs" / run_id / "result.json").is_file() and (local / "logs" / f"{run_id}.log").is_file()
    assert (local / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (local / "spec.toml").read_text() == SPEC
    seeds = {run_id: json.loads((local / "runs" / run_id / "config.json").read_text())["config"]["seed"]
             for run_id in IDS}
    assert seeds == {"clear_lowest-s0": 0, "clear_lowest-s1": 1, "add-s0": 0, "add-s1": 1}


def test_summary_numbers_match_the_run_folders(local):
    """Check summary.csv's figures against result.json of each run, recomputed here."""
    rows = {r["task"]: r for r in csv.DictReader((local / "summary.csv").open())}
    assert list(rows) == ["clear_lowest", "add"]
    for task in rows:
        results = [json.loads((local / "runs" / f"{task}-s{s}" / "result.json").read_text()) for s in (0, 1)]
        solved = [r for r in results if r["solved"]]
        row = rows[task]
        assert int(row["runs"]) == 2 and int(row["solved"]) == len(solved) and int(row["failed"]) == 0
        assert float(row["solve_rate"]) == len(solved) / 2
        lengths = []
        for r in solved:      # the code's words, a final ret (d65f03c0) not counted
            words = [r["best"]["code_hex"][i:i + 8] for i in range(0, len(r["best"]["code_hex"]), 8)]
            lengths.append(len(words) - (words[-1] == "c0035fd6"))
        if not solved:
            assert row["cheapest_verified_length"] == row["median_seconds_to_solution"] == ""
            continue
        assert int(row["cheapest_verified_length"]) == min(lengths)
        assert float(row["median_seconds_to_solution"]) == pytest.approx(
            statistics.median(r["seconds"] for r in solved), abs=1e-3)
        assert int(row["proven"]) == sum(r["verification"]["equivalence"] == "proven" for r in solved)
    md = (local / "summary.md").read_text()
    assert f"| clear_lowest | {rows['clear_lowest']['solved']}/2 |" in md


def _kill_worker_of(client, out: Path, run_id: str, killed: list, deadline: float) -> None:
    """Once ``run_id``'s first checkpoint is on the scheduler, SIGKILL the worker running it."""
    import distributed
    while time.monotonic() < deadline:
        try:
            token = json.loads((out / "batch.json").read_text())["fleet"]["token"]
            snap = distributed.Variable(f"melvin-batch-{token}-{run_id}", client=client).get(timeout=0.2)
        except (OSError, ValueError, KeyError, TypeError, TimeoutError):
            time.sleep(0.05)
            continue
        if snap and "checkpoint.json" in snap:
            starts = [m for _, m in client.get_events("melvin-batch") if m.get("run") == run_id]
            address = starts[-1]["worker"]
            pid = client.run(os.getpid, workers=[address])[address]
            os.kill(pid, signal.SIGKILL)
            killed.append((address, json.loads(snap["checkpoint.json"])["gen"]))
            return
        time.sleep(0.05)


def test_dask_batch_on_two_workers_gives_the_same_runs_after_a_lost_worker(local, spec_file, tmp_path):
    """Check that the batch on a LocalCluster of 2 worker processes, one SIGKILLed in the middle of
    a run, gives the same runs as the local batch, the lost run resumed from its checkpoint."""
    import threading
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    out, killed = tmp_path / "fleet", []
    killer = threading.Thread(target=_kill_worker_of, args=(client, out, "clear_lowest-s1", killed,
                                                            time.monotonic() + 300), daemon=True)
    try:
        killer.start()
        assert batch_cli(str(spec_file), "--out", str(out), "--scheduler", cluster.scheduler_address) == 0
        killer.join(10)
    finally:
        client.close()
        cluster.close()
    assert killed, "no worker was killed"
    runs = state(out)
    assert all(r["state"] in ENDED and r["where"].startswith("tcp://127.0.0.1:") for r in runs.values())
    lost = runs["clear_lowest-s1"]
    assert len(lost["workers"]) >= 2 and lost["workers"][0] == killed[0][0]
    log = (out / "logs" / "clear_lowest-s1.log").read_text()
    assert "--resume" in log, "the lost run started over instead of resuming from its checkpoint"
    for run_id in IDS:
        assert outcome(out / "runs" / run_id) == outcome(local / "runs" / run_id), run_id
    assert (out / "summary.csv").read_text().splitlines()[0] == (local / "summary.csv").read_text().splitlines()[0]


def test_kill_9_then_resume_finishes_only_what_was_unfinished(local, spec_file, tmp_path):
    """Check that a batch killed (-9) in its second run resumes it from its checkpoint, keeps the
    first, runs the rest, and every run equals the uninterrupted batch's."""
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "evolve", "batch", str(spec_file), "--out", str(out),
                             "--jobs", "1", "--quiet"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    second = out / "runs" / "clear_lowest-s1"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (second / "checkpoint.json").is_file():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = state(out)
    assert before["clear_lowest-s0"]["state"] in ENDED
    assert before["clear_lowest-s1"]["state"] == "running" and before["add-s0"]["state"] == "pending"
    first_result = (out / "runs" / "clear_lowest-s0" / "result.json").stat()
    assert batch_cli(str(spec_file), "--out", str(out), "--resume") == 0
    after = state(out)
    assert [after[i]["attempts"] for i in IDS] == [1, 2, 1, 1]
    assert all(r["state"] in ENDED for r in after.values())
    assert (out / "runs" / "clear_lowest-s0" / "result.json").stat().st_mtime_ns == first_result.st_mtime_ns
    log = (out / "logs" / "clear_lowest-s1.log").read_text()
    assert f"--resume {second}" in log, "the interrupted run started over instead of resuming"
    for run_id in IDS:
        assert outcome(out / "runs" / run_id) == outcome(local / "runs" / run_id), run_id


def test_a_failing_task_is_recorded_and_the_others_complete(tmp_path):
    """Check that a task file that does not load fails its runs, with the reason, and the batch goes on."""
    (tmp_path / "broken.py").write_text("def f(x):\n    return x +\n")
    spec = tmp_path / "mixed.toml"
    spec.write_text('seeds = [0]\n[defaults]\npop = 100\ngenerations = 5\ntime_limit = 0\noptimize = 0\n'
                    'backend = "emulated"\n[[task]]\ntask = "broken.py:f"\n[[task]]\ntask = "add"\n')
    out = tmp_path / "batch"
    assert batch_cli(str(spec), "--out", str(out), "--jobs", "2") == 1
    runs = state(out)
    assert runs["add-s0"]["state"] in ENDED
    bad = runs["broken.f-s0"]
    assert bad["state"] == "failed" and bad["exit"] == 2
    assert "cannot be loaded" in bad["reason"] and "SyntaxError" in bad["reason"]
    rows = {r["task"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["broken.f"]["failed"] == "1" and rows["add"]["failed"] == "0"
    assert "broken.f-s0" in (out / "summary.md").read_text()


BAD_SPECS = [
    ("seeds = [0\n[[task]]\ntask = 'add'\n", ":2: not valid TOML"),
    ("[[task]]\ntask = 'add'\npopp = 3\n", ":3: [[task]] 1, 'popp': not an option"),
    ("[defaults]\npop = 20\n[[task]]\ntask = 'add'\n[[task]]\ntask = 'nosuch'\n", ":6: [[task]] 2, 'task': unknown task"),
    ("[[task]]\ntask = 'missing.py:f'\n", ":2: [[task]] 1, 'task': task file"),
    ("[defaults]\npop = 1\n[[task]]\ntask = 'add'\n", ":2: [defaults], 'pop': --pop must be at least 2"),
    ("[defaults]\npop = 'many'\n[[task]]\ntask = 'add'\n", ":2: [defaults], 'pop': expected an integer"),
    ("[[task]]\ntask = 'add'\nseed = 3\n", ":3: [[task]] 1, 'seed': set by the batch itself"),
    ("[[task]]\ntask = 'add'\ntime-limit = -1\n", ":3: [[task]] 1, 'time_limit': --time-limit must be >= 0"),
    ("seeds = []\n[[task]]\ntask = 'add'\n", ":1: top level, 'seeds'"),
    ("[[task]]\noptimize = 'x.s'\n", "optimize"),
]


@pytest.mark.parametrize("text, where", BAD_SPECS)
def test_bad_spec_exits_2_with_one_line_naming_the_place(tmp_path, capsys, text, where):
    """Check that a bad spec exits 2 with one line naming the file and place, writing nothing."""
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    out = tmp_path / "batch"
    assert batch_cli(str(spec), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {spec}") and where in err, err
    assert not out.exists()


def test_existing_folder_or_other_spec_is_refused_untouched(local, spec_file, tmp_path, capsys):
    """Check that an existing batch folder without --resume, or --resume with another spec, exits 2
    and leaves the folder as it was."""
    before = {p: p.stat().st_mtime_ns for p in local.rglob("*")}
    assert batch_cli(str(spec_file), "--out", str(local)) == 2
    assert "already exists; use --resume" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("pop = 100", "pop = 120"))
    assert batch_cli(str(other), "--out", str(local), "--resume") == 2
    assert "differs from" in capsys.readouterr().err
    assert batch_cli(str(spec_file), "--out", str(tmp_path / "none"), "--resume") == 2
    assert "holds no batch" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in local.rglob("*")} == before


def test_resume_of_a_finished_batch_runs_nothing(local, spec_file, capsys):
    """Check that --resume of a batch whose runs all ended starts no run."""
    folders = {p: p.stat().st_mtime_ns for p in (local / "runs").rglob("*")}
    assert batch_cli(str(spec_file), "--out", str(local), "--resume") == 0
    assert [r["attempts"] for r in state(local).values()] == [1, 1, 1, 1]
    assert {p: p.stat().st_mtime_ns for p in (local / "runs").rglob("*")} == folders


@pytest.mark.parametrize("name", ["builtin.toml", "hackers_delight.toml"])
def test_shipped_suites_are_valid_specs(name):
    """Check that the shipped suite specs load: every task known, every option valid."""
    spec = load_spec(ROOT / "suites" / name)
    assert len({r.id for r in spec.runs}) == len(spec.runs) > 0
    if name == "hackers_delight.toml":
        TASKS = [f"p{i:02d}" for i in range(1, 26) if i != 21]
        assert sorted({r.task.split(":")[1] for r in spec.runs}) == sorted(TASKS)
        assert all(r.c_reference and r.c_reference.endswith("hackers_delight.c") for r in spec.runs)


def test_spec_error_is_a_value_error_with_the_file_name(tmp_path):
    """Check that load_spec names the file of a spec it cannot read."""
    with pytest.raises(SpecError, match="nothere.toml"):
        load_spec(tmp_path / "nothere.toml")


def test_sigterm_stops_the_running_run_checkpointed(spec_file, tmp_path):
    """Check that SIGTERM stops a batch in a run: exit 143, the run interrupted with its checkpoint,
    the runs not begun still pending."""
    out = tmp_path / "stopped"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "evolve", "batch", str(spec_file), "--out", str(out),
                             "--jobs", "1", "--quiet"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    first = out / "runs" / "clear_lowest-s0"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not (first / "checkpoint.json").is_file():
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 143, err
    runs = state(out)
    assert runs["clear_lowest-s0"]["state"] in ("interrupted", *ENDED)   # it may have ended meanwhile
    assert [runs[i]["state"] for i in IDS[1:]] == ["pending"] * 3
    if runs["clear_lowest-s0"]["state"] == "interrupted":
        assert runs["clear_lowest-s0"]["exit"] == 143 and (first / "checkpoint.json").is_file()
    assert "--resume" in err and (out / "summary.md").is_file()


def test_a_hung_run_is_killed_at_its_timeout(tmp_path):
    """Check that a run past the spec's timeout is killed and recorded failed, hung."""
    (tmp_path / "slow.py").write_text("import time\n\ndef f(x):\n    time.sleep(60)\n    return x\n")
    spec = tmp_path / "slow.toml"
    spec.write_text('timeout = 2\n[[task]]\ntask = "slow.py:f"\n')
    out = tmp_path / "batch"
    t0 = time.monotonic()
    assert batch_cli(str(spec), "--out", str(out)) == 1
    assert time.monotonic() - t0 < 30
    run = state(out)["slow.f-s0"]
    assert run["state"] == "failed" and run["reason"].startswith("hung: no exit within 2 s")


def test_optimize_entries_follow_the_optimize_command(tmp_path, monkeypatch):
    """Check that an optimize = "target" entry becomes that command's line, checked against its
    parser (a stand-in here, until `python -m evolve optimize` exists)."""
    import argparse

    from evolve import batch_spec
    fake = argparse.ArgumentParser(prog="optimize")
    fake.add_argument("target")
    for flag, kind in (("--seed", int), ("--seconds", float), ("--out", Path), ("--resume", Path)):
        fake.add_argument(flag, type=kind)
    fake.add_argument("--quiet", action="store_true")
    real = batch_spec.subcommand_parser
    monkeypatch.setattr(batch_spec, "subcommand_parser", lambda name: fake if name == "optimize" else real(name))
    (tmp_path / "t.s").write_text("add x0, x0, x1\n")
    spec = tmp_path / "o.toml"
    spec.write_text('seeds = [3]\n[[task]]\noptimize = "t.s"\nseconds = 5\n[[task]]\ntask = "add"\n')
    runs = load_spec(spec).runs
    assert [r.id for r in runs] == ["opt-t-s3", "add-s3"]
    assert runs[0].argv(Path("F")) == ["optimize", str((tmp_path / "t.s").resolve()), "--seconds", "5",
                                      "--seed", "3", "--quiet", "--out", "F"]
    spec.write_text('[[task]]\noptimize = "t.s"\npop = 5\n')
    with pytest.raises(SpecError, match=r"o.toml:3: \[\[task\]\] 1, 'pop': not an option"):
        load_spec(spec)


def test_gcc_lengths_of_the_hackers_delight_c_file():
    """Check gcc -O2's counts against the instructions DESIGN.md lists for p01, p14 and p23."""
    import shutil

    from evolve.batch_summary import gcc_lengths
    if not shutil.which("aarch64-linux-gnu-gcc") and not shutil.which("gcc"):
        pytest.skip("no gcc for aarch64 here")
    counts = gcc_lengths(str(ROOT / "suites" / "hackers_delight.c"))
    if isinstance(counts, str):
        pytest.skip(counts)
    # p01 sub, and; p14 eor, and, add (asr 1); p23 fmov, cnt, addv, fmov
    assert (counts["p01"], counts["p14"], counts["p23"]) == (2, 3, 4)
    assert len(counts) == 24
