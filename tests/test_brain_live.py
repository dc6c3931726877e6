"""Tests of live mode (``python -m evolve live``): learning, checkpoints, Ctrl-C, bad input."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.brain import Brain
from evolve.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
GENOMES = {"add.s": "add x0, x0, x1   // input1 + input2\n",
           "udf.s": "; an undefined instruction\n.word 0x00000000\n",
           "null.s": "mov x1, #0\nldr x0, [x1]\n"}


@pytest.fixture
def work(tmp_path):
    for name, text in GENOMES.items():
        (tmp_path / name).write_text(text)
    data = np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    (tmp_path / "in.bin").write_bytes(data)
    return tmp_path


def _live(work: Path, *extra: str) -> int:
    genomes = [str(work / n) for n in GENOMES]
    return main(["live", *genomes, "--input", str(work / "in.bin"), "--backend", "emulated",
                 "--brain", str(work / "b.brain"), *extra])


def test_live_learns_and_checkpoints(work, capsys):
    """Check that live mode reinforces the working genome, suppresses the others and saves."""
    assert _live(work, "--checkpoint-every", "50") == 0
    out = capsys.readouterr().out
    assert re.search(r"✅ Node \d+ \(.*add\.s\): WORKS \(success=1\.000, threshold=0\.100\)", out)
    assert len(re.findall(r"❌ Node \d+ \(.*(udf|null)\.s\): FAILS \(success=0\.000", out)) == 2
    assert "Bytes: 6000, cycles: 375" in out
    brain = Brain.load(work / "b.brain")
    assert brain.metadata["bytes_seen"] == 6000 and brain.n_exec == 3
    assert sorted(Path(v).name for v in brain.metadata["names"].values()) == sorted(GENOMES)
    assert brain.crashes_handled > 0


def test_live_resume_continues(work, capsys):
    """Check that --resume continues the saved brain and its byte count."""
    assert _live(work, "--max-bytes", "1000") == 0
    before = Brain.load(work / "b.brain").exec_table()["executions"].sum()
    assert main(["live", "--resume", "--brain", str(work / "b.brain"), "--input",
                 str(work / "in.bin"), "--max-bytes", "500", "--backend", "emulated"]) == 0
    brain = Brain.load(work / "b.brain")
    assert brain.metadata["bytes_seen"] == 1500 and brain.n_exec == 3
    assert brain.exec_table()["executions"].sum() > before
    capsys.readouterr()


def test_live_memory_is_bounded(work, capsys):
    """Check that the pattern cap holds and the checkpoint does not grow with the stream: once
    the table is full only the candidate counters vary, stored sparse or dense, never more."""
    assert _live(work, "--max-patterns", "64", "--max-bytes", "1500") == 0
    small = (work / "b.brain").stat().st_size
    for _ in range(2):
        assert main(["live", "--resume", "--brain", str(work / "b.brain"), "--input",
                     str(work / "in.bin"), "--backend", "emulated"]) == 0
        brain = Brain.load(work / "b.brain")
        assert len(brain.byte_patterns) == 64 and brain.byte_patterns.evictions > 0
        bound = small + brain.byte_patterns.candidates.nbytes + 1024  # + index entries
        assert (work / "b.brain").stat().st_size < bound
    capsys.readouterr()


@pytest.mark.parametrize("case", ["missing_genome", "bad_asm", "missing_input", "exists",
                                  "bad_dir", "corrupt_resume", "no_genome", "bad_chunk"])
def test_live_bad_input_exits_2(work, capsys, case):
    """Check that bad arguments exit 2 with one stderr line and write nothing."""
    brain = work / "b.brain"
    args = ["live", str(work / "add.s"), "--input", str(work / "in.bin"), "--brain", str(brain),
            "--backend", "emulated"]
    if case == "missing_genome":
        args[1] = str(work / "nope.s")
    elif case == "bad_asm":
        (work / "bad.s").write_text("frobnicate x0\n")
        args[1] = str(work / "bad.s")
    elif case == "missing_input":
        args[3] = str(work / "nope.bin")
    elif case == "exists":
        brain.write_bytes(b"precious")
    elif case == "bad_dir":
        args[5] = str(work / "no" / "b.brain")
    elif case == "corrupt_resume":
        brain.write_bytes(b"precious")
        args.append("--resume")
    elif case == "no_genome":
        del args[1]
    elif case == "bad_chunk":
        args += ["--chunk", "1"]
    before = sorted(os.listdir(work))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("live: ")
    assert sorted(os.listdir(work)) == before
    if brain.exists():
        assert brain.read_bytes() == b"precious"


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_live_ctrl_c_or_sigterm_saves_and_exits(work, sig, status):
    """Check that SIGINT (SIGTERM) during a stdin stream saves a loadable checkpoint and exits
    130 (143)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "evolve", "live", *(str(work / n) for n in GENOMES),
           "--brain", str(work / "b.brain"), "--backend", "emulated", "--input", "-"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=work, env=env)
    try:
        line = proc.stderr.readline().decode()
        assert line.startswith("live: learning from -"), line
        proc.stdin.write((work / "in.bin").read_bytes()[:2000])
        proc.stdin.flush()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status
    assert "(interrupted)" in out.decode()
    brain = Brain.load(work / "b.brain")
    assert brain.n_exec == 3 and 0 <= brain.metadata["bytes_seen"] <= 2000


def test_a_ctrl_c_that_a_ctypes_callback_swallowed_still_stops_the_stream(work, capsys, monkeypatch):
    """A KeyboardInterrupt raised inside a ctypes callback (Unicorn's hooks) is printed and dropped
    by ctypes: the signal itself must still stop the stream, save, and exit 130 (a fresh clone's CI
    saw exit 0 after reading the stream to its end)."""
    from evolve import live
    real_cycle, calls = live._cycle, []

    def cycle_with_a_swallowed_interrupt(brain, ex, chunk):
        real_cycle(brain, ex, chunk)
        calls.append(1)
        if len(calls) == 3:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):          # the handler runs between bytecodes, here
                    pass
            except KeyboardInterrupt:
                pass                           # what ctypes does to a callback's exception
    monkeypatch.setattr(live, "_cycle", cycle_with_a_swallowed_interrupt)
    assert _live(work) == 130
    out = capsys.readouterr().out
    assert "(interrupted)" in out and "cycles: 3," in out
    assert Brain.load(work / "b.brain").metadata["cycles"] == 3
