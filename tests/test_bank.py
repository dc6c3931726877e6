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


def test_the_bank_finds_p18_shorter_than_gcc_by_reusing_a_value():
    """Check that the bank reaches p18 (power of two) in three instructions, one fewer than gcc -O2
    (``neg x1, x0; orr x0, x0, x1; udiv x0, x1, x0``: -x / (x | -x)), a program that reads a
    level-1 value twice (the screen of a value with its own operand, over a level 2 that holds
    binary forms), and that a Unicorn harness sharing no code with Melvin finds it right."""
    bank = _bank("p18")
    short = []
    while not short and not bank.exhausted and bank.spent < 400_000_000:
        short = [g for g in bank.step(5_000_000) if len(g) <= 3]
    assert short
    wrong, n, first = independent_check(A.encode(short[0]), _suite().p18, 1, n=500)
    assert wrong == 0, (A.render(short[0]), first)


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


def _small_bank(x, mask=2**64 - 1) -> BK.Bank:
    """A bank of ``x`` whose level 1 is cut at ~100 values (target: set it afterwards)."""
    bank = BK.Bank(x, np.zeros(len(x), np.uint64), len(A.regs), 0, output_mask=mask, max_values=110)
    for _ in bank._forward(1):
        pass
    assert bank._at_level(1).size > 100
    return bank


def _brute_screen(bank: BK.Bank, level: int) -> set:
    """Every (form, left, right) the screen of ``level`` should report: each screened form on
    each operand pair of levels summing to ``level``, computed on all cases, no screening."""
    solved = {f"{n}{s}" for n in O.SOLVE_SECOND for s in O.OPERAND_SHIFTS} | {"sub"}
    y, out = bank.y & bank.mask, set()
    for fi, f in enumerate(BK.FORMS):
        if f.name in solved or f.name in O.INVERTIBLE_UNARY:
            continue
        if f.arity == 1:
            src = bank._at_level(level)
            ok = ((f.fn(bank.vals[src]) & bank.mask) == y).all(axis=1)
            out |= {(fi, int(e), -1) for e in src[ok]}
            continue
        for la in range(level + 1):
            A, B = bank._at_level(la), bank._at_level(level - la)
            for a in A:
                ok = ((f.fn(bank.vals[a][None, :], bank.vals[B]) & bank.mask) == y).all(axis=1)
                out |= {(fi, int(a), int(b)) for b in B[ok]}
    return out


@pytest.mark.parametrize("form, mask", [("csetls", 2**64 - 1), ("orr,lsr#2", 2**64 - 1), ("csetlt", 1),
                                        ("orn,ror#4", 0xFFFFFFFF)])
def test_the_screen_reports_exactly_what_a_brute_force_check_finds(form, mask):
    """Check that the case-by-case screen (broadcasts while many pairs pass, then the survivors'
    cases, then all cases), in its two passes, reports the same hits as every form on every
    operand pair on all cases: a small bank (its level 1 cut at the cap), a target made by ``form`` from two of its
    level-1 values, so at least one hit exists; 1-bit, 32-bit and 64-bit targets."""
    rng = np.random.default_rng(7)
    x = np.stack([rng.integers(0, 2**64, 64, np.uint64, endpoint=False) for _ in range(2)], 1)
    x[:4] = [[0, 0], [1, 0], [2**64 - 1, 1], [2**63, 3]]
    bank = _small_bank(x, mask)
    a, b = bank._at_level(1)[[3, 77]]
    bank.y = O.BY_NAME[form].fn(bank.vals[a], bank.vals[b]) & np.uint64(mask)
    want = _brute_screen(bank, 2)
    hits = []
    for which in (BK._early, lambda f, la: not BK._early(f, la)):     # the run's two passes
        bank._hits = []
        for _ in bank._screened(2, which):
            pass
        hits += bank._hits
    assert (BK._INDEX[form], int(a), int(b)) in want
    assert set(hits) == want and len(hits) == len(want)


@pytest.mark.parametrize("form", ["eor,lsr#2", "sub", "add,asr#8"])
def test_the_target_search_reports_exactly_what_a_brute_force_check_finds(form):
    """Check that ``t = f(a, g(b))``, looked up first on a prefix of the cases, reports every
    pair whose full values solve it (brute force: each solvable form on every pair of the
    level sets, all cases) and nothing else."""
    rng = np.random.default_rng(11)
    x = np.stack([rng.integers(0, 2**64, 64, np.uint64, endpoint=False) for _ in range(2)], 1)
    bank = _small_bank(x)
    a, b = bank._at_level(1)[[5, 60]]
    bank.y = O.BY_NAME[form].fn(bank.vals[a], bank.vals[b])
    want = set()
    idx = bank._at_level(0).tolist() + bank._at_level(1).tolist()
    for suffix in O.OPERAND_SHIFTS:
        for name in O.SOLVE_SECOND:            # (b - a, "rsub", is sub on the pair (b, a))
            f = O.BY_NAME[name + suffix]
            fi = BK._INDEX[f.name]
            for l in idx:
                ok = (f.fn(bank.vals[l][None, :], bank.vals[idx]) == bank.y).all(axis=1)
                want |= {(fi, int(l), int(r)) for r in np.array(idx)[ok]}
    bank._hits = []
    for _ in bank._solved((0, 1), (0, 1)):
        pass
    assert (BK._INDEX[form], int(a), int(b)) in want
    assert set(bank._hits) == want
