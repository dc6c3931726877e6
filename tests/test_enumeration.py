"""The enumeration of one- and two-instruction programs (evolve.enumeration): what it covers,
that its finds are right by a harness sharing no code with it, and that a run using it solves a
two-instruction task at once and resumes exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evolve import enumeration as E
from evolve import peephole as PH
from evolve import tasks as T
from evolve.__main__ import main
from evolve.alphabets.arm64_ops import OPS
from evolve.evaluate import Evaluator
from evolve.genes import alphabet_for
from scripts.independent_harness import independent_check

A = alphabet_for("arm64")


@pytest.fixture(scope="module")
def evaluator():
    ev = Evaluator("arm64", backend="emulated")
    yield ev
    ev.close()


def test_the_orders_of_enumeration(evaluator):
    """Single genes read only the arguments; first genes write the free register from the
    arguments, one per distinct result; second genes write x0 and read the free register."""
    en = E.Enumeration(A, evaluator, T.get_task("lowest_mask"), seed=0)
    total = en.total
    n = len(A.regs)
    assert len(en.single) > 5000 and (en.single[:, 1] == 0).all()
    assert len(E._reading(en.single, {0}, n)) == len(en.single)
    assert en.t == 1 and (en._firsts[:, 1] == 1).all() and len(en._firsts) <= E.MAX_FIRSTS
    assert len(E._reading(en._seconds, {0}, n)) == 0 and (en._seconds[:, 1] == 0).all()
    assert total == len(en.single) + len(en._firsts) * len(en._seconds)
    # one first gene per distinct result: no two firsts leave the same values in x1
    probe = [A.encode([tuple(g), (PH.MOV, 0, 1, 0, 0)]) for g in en._firsts[:300]]
    out, _ = evaluator.run(probe, en.x, seed=0, states=en.states)
    assert len(np.unique(out, axis=0)) == len(probe)
    # the most common operations come first
    weights = [OPS[op].weight for op in en._seconds[:, 0]]
    assert weights == sorted(weights, reverse=True)


@pytest.mark.parametrize("name, func", [
    ("lowest_mask", lambda x: (x ^ (x - 1)) & (2**64 - 1)),
    ("isolate_lowest", lambda x: x & -x & (2**64 - 1)),
])
def test_what_it_finds_is_right_by_an_independent_harness(evaluator, name, func):
    task = T.get_task(name)
    en = E.Enumeration(A, evaluator, task, seed=1)
    found = []
    while not found and not en.exhausted:
        found = en.step(20_000)
    assert found and all(len(g) <= 2 for g in found)
    for genes in found:
        wrong, n, first = independent_check(A.encode(genes), func, 1, n=500)
        assert wrong == 0, (A.render(genes), first)


def test_a_run_solves_a_two_instruction_task_by_enumeration_and_resumes_exactly(tmp_path):
    common = ["run", "--quiet", "--task", "isolate_lowest_zero", "--seed", "4", "--pop", "40", "--time-limit", "0",
              "--backend", "emulated", "--optimize", "0", "--no-brain"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main([*common, "--generations", "40", "--out", str(whole)]) == 0
    result = json.loads((whole / "result.json").read_text())
    assert result["solved"] and result["best"]["op"] == "enumerate" and result["best"]["length"] <= 2
    assert result["verification"]["equivalence"] == "proven"
    gens = result["generations"]
    assert main([*common, "--generations", str(max(1, gens - 2)), "--out", str(part)]) == 0
    assert main(["run", "--quiet", "--resume", str(part), "--generations", "40"]) == 0
    again = json.loads((part / "result.json").read_text())
    assert again["best"]["genes"] == result["best"]["genes"] and again["generations"] == gens
    off = tmp_path / "off"
    assert main([*common, "--generations", str(gens), "--no-enumerate", "--out", str(off)]) == 0
    assert json.loads((off / "result.json").read_text())["best"].get("op") != "enumerate"
