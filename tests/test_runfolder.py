"""Tests of the run folder as data: checkpoints that survive SIGKILL at any instant, refusal of
damaged or pickled checkpoints, and metrics.jsonl appended and cut back on resume."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from evolve.__main__ import main
from evolve.runfolder import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TIMING = {"evals_per_s", "seconds"}
COMMON = ["--quiet", "--backend", "emulated", "--time-limit", "0"]
AVG = [*COMMON, "--task", "avg", "--seed", "3", "--pop", "30"]

# One process imports Melvin once and forks a child per trial: the child runs (then resumes) the
# run, checkpointing every generation; after a checkpoint commits, the parent kills it with SIGKILL
# at a random instant, or (every other trial) as soon as the next checkpoint's write has begun, and
# checks that the folder holds a whole checkpoint. The parent never runs a numba kernel, so forking is safe.
KILLER = r"""
import json, os, random, signal, sys, time
from pathlib import Path
import z3  # noqa: F401  (imported once, before the forks)
from evolve import checkpoint as ckpt, runfolder as rf
from evolve.__main__ import main
out, trials = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(0)
args = ["run", "--quiet", "--backend", "emulated", "--time-limit", "0", "--task", "popcount8", "--seed", "1",
        "--pop", "12", "--generations", "100000", "--checkpoint-every", "1", "--out", str(out)]
def committed():
    try:
        return json.loads((out / "checkpoint.json").read_text())["arrays"]["file"]
    except (OSError, ValueError, KeyError):
        return None
gens, mid_write = [], 0
for trial in range(trials):
    before = committed()
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(main(args))
        finally:
            os._exit(99)
    deadline = time.monotonic() + 60
    while committed() in (None, before):
        assert time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0), "no new checkpoint"
        time.sleep(0.002)
    if trial % 2:           # aimed: the moment a checkpoint's write has begun
        while not list(out.glob(".checkpoint*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.0002)
    else:                   # anywhere in the generations that follow
        time.sleep(rng.uniform(0.0, 0.12))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    # a kill inside a checkpoint's write leaves its temporary or its uncommitted arrays file
    mid_write += bool(list(out.glob(".checkpoint*.tmp")) or len(list(out.glob("checkpoint-*"))) > 1)
    doc, arrays = rf.read_checkpoint(out, "checkpoint")     # whole, checksummed
    state, brain = ckpt.decode(doc, arrays)
    assert brain is not None
    gens.append(state["gen"])
    args = ["run", "--quiet", "--backend", "emulated", "--time-limit", "0", "--resume", str(out),
            "--generations", "100000"]
print(json.dumps({"gens": gens, "mid_write": mid_write}))
"""


def metrics(folder: Path) -> list[dict]:
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in TIMING} for m in lines]


def snapshot(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def assert_every_file_parses(folder: Path) -> None:
    from safetensors.numpy import load_file

    from core.brain import Brain
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith((".tmp", ".pkl"))], names
    assert [n for n in names if n.endswith(".safetensors") and n.startswith("checkpoint")] \
        == [json.loads((folder / "checkpoint.json").read_text())["arrays"]["file"]]
    for name in names:
        path = folder / name
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".jsonl"):
            assert path.read_bytes().endswith(b"\n")
            [json.loads(x) for x in path.read_text().splitlines()]
        elif name.endswith(".safetensors"):
            load_file(path)
        elif name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        elif name.startswith("brain"):
            Brain.load(path)


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """8 uninterrupted generations of avg, what every interrupted run below must equal."""
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["run", *AVG, "--generations", "8", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def part(tmp_path) -> Path:
    """The same run stopped after generation 5 (its last checkpoint)."""
    out = tmp_path / "part"
    assert main(["run", *AVG, "--generations", "5", "--checkpoint-every", "2", "--out", str(out)]) == 0
    return out


def resume(folder: Path, *extra: str) -> int:
    return main(["run", *COMMON, "--resume", str(folder), "--generations", "8", *extra])


@pytest.fixture()
def fast_dir(tmp_path):
    """A folder in memory where there is one (fsync costs nothing there: CI-sized kill tests)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="melvin-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_kill_9_at_random_instants_of_checkpoint_writes(fast_dir):
    """Check that 20 SIGKILLs at random instants of a run checkpointing every generation each
    leave a whole checkpoint, and the run then resumes to completion with every file parsing."""
    out = fast_dir / "run"
    done = subprocess.run([sys.executable, "-c", KILLER, str(out), "20"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    gens = report["gens"]
    assert report["mid_write"] >= 3, report       # the aimed kills land inside a write
    assert len(gens) == 20 and gens == sorted(gens) and gens[-1] > gens[0]
    state, brain = load_checkpoint(out)
    assert state["gen"] == gens[-1] and brain is not None
    assert main(["run", *COMMON, "--resume", str(out), "--generations", str(state["gen"] + 2)]) == 0
    assert_every_file_parses(out)
    assert [m["gen"] for m in metrics(out)] == list(range(state["gen"] + 3))
    assert not list(out.glob("brain-*")) and (out / "brain.safetensors").is_file()


def test_torn_metrics_line_then_resume_equals_whole_run(part, whole):
    """Check that lines after the checkpoint's generation and a torn last line (a kill mid-write)
    are cut off on resume, and the resumed run equals the uninterrupted one."""
    lines = (part / "metrics.jsonl").read_text().splitlines()
    extra = json.loads(lines[-1])
    with open(part / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(dict(extra, gen=6, best_cost=-1.0)) + "\n")   # written after the checkpoint
        fh.write('{"gen": 7, "evaluations": 12')                           # torn by the kill
    assert resume(part) == 0
    assert metrics(part) == metrics(whole)
    assert json.loads((part / "result.json").read_text())["best"] == json.loads((whole / "result.json").read_text())["best"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_altered_arrays_file_is_refused(part, capsys, damage):
    """Check that a checkpoint whose arrays file was truncated or altered is refused with one
    line (exit 2) and nothing in the folder is written."""
    name = json.loads((part / "checkpoint.json").read_text())["arrays"]["file"]
    data = bytearray((part / name).read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x01
    (part / name).write_bytes(bytes(data))
    before = snapshot(part)
    capsys.readouterr()
    assert resume(part) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum" in err[0] and name in err[0]
    assert snapshot(part) == before


def _to_pickled_checkpoint(folder: Path) -> None:
    """Turn a folder's checkpoint into an earlier version's: checkpoint.pkl and brain-<gen>.melvin."""
    state, brain = load_checkpoint(folder)
    brain_file = f"brain-{state['gen']:06d}.melvin"
    brain.save(folder / brain_file, {"generation": state["gen"]})
    state = dict(state, version=2, brain_file=brain_file, metrics=metrics(folder), logbook=None)
    (folder / "checkpoint.pkl").write_bytes(pickle.dumps(state))
    (folder / "checkpoint.json").unlink()
    for p in folder.glob("checkpoint-*.safetensors"):
        p.unlink()


def test_pickled_checkpoint_is_refused_without_trust_pickle(part, whole, capsys):
    """Check that an earlier version's checkpoint.pkl is refused with one line naming
    --trust-pickle (nothing written), and with the flag resumes once and converts the folder."""
    _to_pickled_checkpoint(part)
    before = snapshot(part)
    capsys.readouterr()
    assert resume(part) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-pickle" in err[0] and "checkpoint.pkl" in err[0]
    assert snapshot(part) == before
    assert resume(part, "--trust-pickle") == 0
    assert metrics(part) == metrics(whole)
    assert not (part / "checkpoint.pkl").exists() and not list(part.glob("brain-*"))
    assert_every_file_parses(part)


def test_pickled_island_checkpoint_is_refused(tmp_path, capsys):
    """Check that an island folder with only islands.pkl is refused with one line naming
    --trust-pickle, before anything is unpickled or a cluster is started."""
    folder = tmp_path / "isl"
    folder.mkdir()
    (folder / "islands.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")    # would run a command
    assert main(["run", "--quiet", "--resume", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-pickle" in err[0] and "islands.pkl" in err[0]
    assert sorted(p.name for p in folder.iterdir()) == ["islands.pkl"] and not Path("pwned").exists()


def test_copied_folder_without_checkpoint_has_no_pickle(whole, tmp_path):
    """Check that a finished run folder holds no pickle and one checkpoint of JSON + arrays."""
    dst = tmp_path / "copy"
    shutil.copytree(whole, dst)
    assert_every_file_parses(dst)
    for path in dst.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), path.name       # a pickle's protocol byte


def test_sample_metrics_reads_a_bounded_even_sample(tmp_path):
    """Check that a long metrics file is sampled evenly (ends included, a torn line left out)."""
    from evolve.runfolder import sample_metrics
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"gen": g}) + "\n" for g in range(10_001)) + '{"gen": 10001, "to')
    got = [m["gen"] for m in sample_metrics(path, at_most=100)]
    assert got[0] == 0 and got[-1] == 10_000 and 100 <= len(got) <= 102
    assert len(set(b - a for a, b in zip(got[:-2], got[1:-1]))) == 1
    assert sample_metrics(tmp_path / "none.jsonl") == []
