"""Tests of the curated genomes/ library and of scripts/curate_genome.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.asm import assemble
from core.executors import open_executor
from core.outcome import Outcome
from evolve import tasks as T
from evolve.__main__ import main as evolve_main
from evolve.runload import best_s_lines

ROOT = Path(__file__).resolve().parent.parent
SIDECARS = sorted((ROOT / "genomes").glob("*.json"))


def test_library_is_not_empty():
    """Check that the library holds solved genomes for several built-in tasks."""
    tasks = {json.loads(p.read_text())["task"] for p in SIDECARS}
    assert len(tasks) >= 3 and tasks <= set(T.BUILTIN)


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_library_genome_is_correct(sidecar):
    """Check that a library genome's .s, asm and code agree, its provenance is recorded, and it
    computes its task on fresh random and edge inputs with random non-argument registers."""
    meta = json.loads(sidecar.read_text())
    lines = best_s_lines(sidecar.with_suffix(".s").read_text())
    assert lines == meta["asm"] and assemble(lines, meta["isa"]).hex() == meta["code_hex"]
    prov = meta["provenance"]
    assert {"seed", "config", "generations", "evaluations", "original", "minimisation"} <= set(prov)
    assert meta["length"] <= len(prov["original"]["asm"])
    task = T.get_task(meta["task"])
    x = np.concatenate([T.edge_cases(task.arity, 256), T.random_cases(np.random.default_rng(5), 5000, task.arity)])
    with open_executor(meta["isa"], backend="emulated") as ex:
        for seed in (1, 2):
            res = ex.run([bytes.fromhex(meta["code_hex"])], x, seed=seed)
            assert (res.outcomes[0] == Outcome.OK).all()
            assert (res.outputs[0] == task.expected(x)).all()


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_library_genome_claims_hold(sidecar):
    """Check that a library genome says what was established about it, and that what it says
    is proven is proven again now (what is only tested says why)."""
    from evolve import verify
    meta = json.loads(sidecar.read_text())
    claimed = meta["verification"]
    assert f"// verification: {verify.Verification(**claimed).line()}" in sidecar.with_suffix(".s").read_text()
    proven = [k for k in ("equivalence", "independence") if claimed[k] == "proven"]
    assert proven or claimed["note"]
    if claimed["equivalence"] != "proven":
        assert claimed["note"]
        return                               # a proof that timed out once would only time out again
    v = verify.check(bytes.fromhex(meta["code_hex"]), T.get_task(meta["task"]), meta["isa"], claimed["cases"])
    assert isinstance(v, verify.Verification) and all(getattr(v, k) == "proven" for k in proven)


def test_curate_writes_a_minimised_genome(tmp_path):
    """Check that curate_genome.py turns a solved run into a .s + .json pair no longer than the run's best."""
    run = tmp_path / "run"
    assert evolve_main(["run", "--quiet", "--task", "clear_lowest", "--backend", "emulated", "--out", str(run)]) == 0
    lib = tmp_path / "lib"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "curate_genome.py"), str(run), "--library", str(lib)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (meta_path,) = lib.glob("*.json")
    meta = json.loads(meta_path.read_text())
    best = json.loads((run / "result.json").read_text())["best"]
    assert meta["length"] <= best["length"] and meta["provenance"]["original"]["code_hex"] == best["code_hex"]
    assert best_s_lines(meta_path.with_suffix(".s").read_text()) == meta["asm"]
    assert meta["verification"]["equivalence"] == "proven"          # clear_lowest has a symbolic twin


def test_curate_bad_input_exits_2(tmp_path):
    """Check that a missing run folder exits 2 and writes no library."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "curate_genome.py"), str(tmp_path / "none"),
                           "--library", str(tmp_path / "lib")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "lib").exists()


def test_flag_readers_are_detected():
    """Check that code reading the flags before setting them is recognised, and code setting
    them first is not."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("curate_genome", ROOT / "scripts" / "curate_genome.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.reads_flags_first(assemble(["cset x1, pl", "add x0, x0, x1"]), "arm64")
    assert not mod.reads_flags_first(assemble(["cmp x0, #1", "cset x0, ls"]), "arm64")
    assert not mod.reads_flags_first(assemble(["sub x1, x0, #1", "and x0, x0, x1"]), "arm64")
