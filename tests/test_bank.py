"""The bottom-up enumeration (evolve.bank, evolve.bank_ops): its semantics against the
interpreter, three- to five-instruction programs found and checked by a harness sharing no code
with it, a run that solves p14 by it with a proof, and the bank's position across a resume."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from evolve import bank as BK
from evolve import bank_ops as O
from evolve import tasks as T
from evolve.__main__ import main
from evolve.evaluate import Evaluator
from evolve.genes import alphabet_for
from scripts.independent_harness import independent_check

A = alphabet_for("arm64")
SUITE = Path(__file__).resolve().parent.parent / "suites" / "hackers_delight.py"


def _suite():
    spec = importlib.util.spec_from_file_location("hd_suite_test_bank", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bank(name: str, seed: int = 0) -> BK.Bank:
    task = T.get_task(f"{SUITE}:{name}")
    x = T.training_cases(task, np.random.default_rng([seed, 0xE1]), 64)
    return BK.Bank(x, task.expected(x), len(A.regs), seed)


def test_every_form_computes_what_the_interpreter_computes():
    """Check that each form's numpy function equals its genes run by the executor, on edge
    values (powers of two, their neighbours, patterns) and random ones, small shift counts."""
    rng = np.random.default_rng(0)
    pats = np.array(T.PATTERNS, np.uint64)
    x = np.stack([np.concatenate([pats, rng.integers(0, 2**64, 100, np.uint64, endpoint=False)]),
                  np.concatenate([rng.permutation(pats), rng.integers(0, 2**64, 100, np.uint64, endpoint=False)])], 1)
    x[:40, 1] = rng.integers(0, 70, 40).astype(np.uint64)      # register shift amounts, divisors near 0
    x[40:44, 1] = [0, 1, 2**64 - 1, 2**63]
    forms = O.UNARY + O.BINARY
    codes = [A.encode(f.genes(0, (0, 1)[:f.arity])) for f in forms]
    ev = Evaluator("arm64", backend="emulated")
    try:
        out, outcome = ev.run(codes, x, seed=0)
    finally:
        ev.close()
    wrong = [f.name for i, f in enumerate(forms)
             if not ((outcome[i] == 0).all() and (out[i] == f.fn(*[x[:, k] for k in range(f.arity)])).all())]
    assert not wrong and len(forms) > 700


@pytest.mark.parametrize("name, length", [("p14", 3), ("p15", 3), ("p23", 4), ("p22", 5)])
def test_the_bank_finds_the_short_programs_and_an_independent_harness_agrees(name, length):
    """Check that the bank's first finds for the floor and ceiling averages, popcount and parity
    are as short as gcc -O2's (p22: cnt chain and ``and #1``), use only the working registers,
    and are right on 500 inputs of a Unicorn harness sharing no code with Melvin."""
    bank = _bank(name)
    found = []
    while not found and not bank.exhausted:
        found = bank.step(5_000_000)
    assert found and len(found[0]) == length, [A.render(g) for g in found]
    func = getattr(_suite(), name)
    for genes in found[:3]:                  # the shortest (p23's cnt chain comes with 40 padded variants)
        assert all(0 <= r < len(A.regs) for g in genes for r in g[1:4])
        wrong, n, first = independent_check(A.encode(genes), func, _suite().ARITY[name], n=500)
        assert wrong == 0, (A.render(genes), first)


def test_a_replayed_bank_is_the_bank_that_was_stepped():
    """Check that :meth:`Bank.advance` to a position rebuilds the same values and then finds the
    same programs as the bank stepped there (what a resumed run relies on)."""
    stepped = _bank("p15", seed=3)
    for _ in range(3):
        stepped.step(200_000)
    replayed = _bank("p15", seed=3)
    replayed.advance(stepped.position)
    assert replayed.position == stepped.position and replayed.size == stepped.size
    assert (replayed.hash[:replayed.size] == stepped.hash[:stepped.size]).all()
    assert (replayed.left[:replayed.size] == stepped.left[:stepped.size]).all()
    a, b = [], []
    while not a and not stepped.exhausted:
        a, b = stepped.step(1_000_000), replayed.step(1_000_000)
    assert a and a == b


def test_a_run_solves_p14_by_the_bank_with_a_proof_and_resumes_exactly(tmp_path):
    """Check that a run finds gcc's three instructions for p14 through the bank, proven, and that
    one stopped two generations before and resumed ends with the same program at the same
    generation (the bank's position is in the checkpoint)."""
    common = ["run", "--quiet", "--task", f"{SUITE}:p14", "--seed", "0", "--pop", "100", "--time-limit", "0",
              "--backend", "emulated", "--optimize", "0", "--no-brain"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main([*common, "--generations", "60", "--out", str(whole)]) == 0
    result = json.loads((whole / "result.json").read_text())
    assert result["solved"] and result["best"]["op"] == "enumerate" and result["best"]["length"] == 3
    assert result["verification"]["equivalence"] == "proven"
    gens = result["generations"]
    assert main([*common, "--generations", str(max(1, gens - 2)), "--out", str(part)]) == 0
    assert json.loads((part / "checkpoint.json").read_text())["enumerated"]["bank"] > 0
    assert main(["run", "--quiet", "--resume", str(part), "--generations", "60"]) == 0
    again = json.loads((part / "result.json").read_text())
    assert again["best"]["genes"] == result["best"]["genes"] and again["generations"] == gens


def test_a_process_continues_its_bank_and_never_reuses_one_that_is_ahead():
    """Check that an enumeration restored at another's bank position continues that bank (an
    island's next task), and that one at an earlier position gets a bank of its own there."""
    from evolve import enumeration as E
    ev = Evaluator("arm64", backend="emulated")
    try:
        task = T.get_task(f"{SUITE}:p15")
        first = E.Enumeration(A, ev, task, seed=5)
        first.bank_step(2_000_000)
        first.bank_step(2_000_000)
        bank, where = first.bank, first.position
        again = E.Enumeration(A, ev, task, seed=5)
        again.position = where
        assert again.bank is bank and bank.position == where["bank"] > 0
        fresh = E.Enumeration(A, ev, task, seed=5)
        assert fresh.bank is not bank and fresh.bank.position == 0 and fresh.position["bank"] == 0
    finally:
        ev.close()
