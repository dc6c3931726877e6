"""The SMT synthesiser (evolve.synth, evolve.synth_ops, evolve.synth_tier): its three views of each
operation agree with each other and with Unicorn called directly, it finds a known short program
deterministically under a fixed resource budget, and a run with it off is unchanged."""
from __future__ import annotations

import random

import numpy as np
import pytest
import z3

from evolve import synth as SY
from evolve import synth_ops as SO
from evolve import synth_tier as ST
from evolve import tasks as T
from evolve.genes import alphabet_for
from scripts.independent_harness import independent_check

A = alphabet_for("arm64", n_regs=8)      # the tier uses the run's working registers (--regs)
M = (1 << 64) - 1
EDGES = (0, 1, 2, 63, 64, M, M - 1, 1 << 63, (1 << 63) - 1, 0x5555555555555555)


def _values(rng: random.Random, w: int, n: int) -> list[int]:
    m = (1 << w) - 1
    return [e & m for e in EDGES] + [rng.getrandbits(w) for _ in range(n)]


@pytest.mark.parametrize("w", [64, 8])
@pytest.mark.parametrize("name", SO.NAMES)
def test_python_and_z3_views_agree(name, w):
    """Check that each form's plain-Python semantics equal its z3 term, at 64 bits and reduced to 8."""
    rng = random.Random(hash((name, w)) & 0xFFFF)
    vals = _values(rng, w, 6)
    cases = [(a, b, t, s) for a in vals[:6] for b in vals[-6:] for t in range(3) for s in (0, 5, w - 1)]
    for a, b, t, s in cases:
        s %= 64
        term = SO.term(name, z3.BitVecVal(a, w), z3.BitVecVal(b, w), z3.BitVecVal(t, 2), z3.BitVecVal(s, w), w)
        got = z3.simplify(term).as_long()
        assert got == SO.apply(name, a, b, t, s, w), (name, a, b, t, s)


def _random_program(rng: random.Random, arity: int, n: int) -> list[tuple]:
    lines = []
    for i in range(n):
        name = rng.choice(SO.NAMES)
        ra, rb, rt, rs = SO.FORMS[name]
        a = rng.randrange(arity + i) if ra else 0
        b = rng.randrange(arity + i) if rb else 0
        t = rng.randrange(3) if rt else 0
        s = rng.choice((0, 1, 2, 7, 31, 32, 63)) if rs else 0
        if name in ("lsli", "lsri", "asri", "addi", "subi") and s == 0:
            s = 1
        lines.append((name, a, b, t, s))
    return lines


def test_emitted_genes_compute_the_lines_under_plain_unicorn():
    """Check that the genes of random programs over every form, run by Unicorn called directly
    (scripts/independent_harness, no Melvin executor), give what synth_ops computes."""
    rng = random.Random(7)
    for k in range(24):
        arity = 1 + k % 3
        program = _random_program(rng, arity, 1 + k % 5)
        genes = SY.program_genes(program, arity, len(A.regs))
        assert genes is not None and len(genes) == len(program)
        wrong, n, first = independent_check(A.encode(genes), lambda *args: SO.evaluate(program, args), arity, n=40,
                                            seed=k)
        assert wrong == 0, (program, A.render(genes), first)


def _task_synth(name: str, reduced: bool, max_lines: int, call_rlimit: int = 4_000_000) -> SY.Synth:
    task = T.get_task(name)
    rng = np.random.default_rng([0, 1])
    x = T.training_cases(task, rng, 256)
    red = ST.reduced_cases(task, 8, 128, rng) if reduced else None
    return SY.Synth(x, task.expected(x), call_rlimit=call_rlimit, max_lines=max_lines, reduced=red)


def _first(synth: SY.Synth, units: int = 60) -> tuple:
    for _ in range(units):
        found = synth.step(1)
        if found:
            return synth.position, found[0]
        if synth.exhausted:
            break
    return synth.position, None


@pytest.mark.parametrize("name, reduced, lines, func", [
    ("clear_lowest", True, 2, lambda x: x & (x - 1) & M),     # solved at 8 bits, lifted, checked at 64
    ("sub", False, 1, lambda x, y: (x - y) & M),              # solved at 64 bits (the slow path: one line)
])
def test_it_finds_a_known_program_deterministically(name, reduced, lines, func):
    """Check that a known shortest program is found, the same calls and program twice (z3 rlimit
    budgets, no wall clock), and is right under Unicorn called directly."""
    a, b = _task_synth(name, reduced, lines), _task_synth(name, reduced, lines)
    (pa, prog), (pb, prog_b) = _first(a), _first(b)
    assert prog is not None and len(prog) == lines
    assert (pa, prog) == (pb, prog_b) and a.spent == b.spent
    arity = T.get_task(name).arity
    genes = SY.program_genes(prog, arity, len(A.regs))
    wrong, _, first = independent_check(A.encode(genes), func, arity, n=300)
    assert wrong == 0, (A.render(genes), first)


def test_the_reduced_problem_needs_a_width_generic_twin():
    """Check that a twin is evaluated at 8 bits when it can be, and refused when it builds 64-bit terms."""
    rng = np.random.default_rng(0)
    red = ST.reduced_cases(T.get_task("clear_lowest"), 8, 32, rng)
    assert red is not None and red[0] == 8 and all(y == x[0] & (x[0] - 1) & 0xFF for x, y in zip(red[1], red[2]))
    assert ST.reduced_cases(T.get_task("suites/hackers_delight.py:p20"), 8, 32, rng) is None


def test_a_tier_resumed_at_its_position_continues_identically():
    """Check that a tier restored from another's position makes the same next calls and finds."""
    task = T.get_task("isolate_lowest")
    a = ST.SynthTier(task, len(A.regs), seed=3)
    for _ in range(3):
        a.step(20_000)
    b = ST.SynthTier(task, len(A.regs), seed=3)
    b.position = a.position
    assert b.position == a.position
    assert [a.step(200_000) for _ in range(4)] == [b.step(200_000) for _ in range(4)]
    assert a.synth.spent == b.synth.spent


def test_a_run_with_it_off_is_unchanged(monkeypatch):
    """Check that the engine with the tier off evolves exactly as with a tier that never runs:
    its hooks draw nothing from the run's random streams."""
    from evolve import engine as EN
    from evolve.config import RunConfig

    def run(synth: bool):
        cfg = RunConfig(task="suites/hackers_delight.py:p20", pop=30, generations=4, seed=5, backend="emulated",
                        time_limit=None, optimize=0.0, synth=synth, enumerate=False, brain=False)
        eng = EN.build(cfg)
        try:
            eng.start()
            for _ in range(4):
                eng.step()
            return eng.rows.genes.tolist(), eng.rows.cost.tolist(), eng.state()["synth"]
        finally:
            eng.evaluator.close()

    off = run(False)
    monkeypatch.setattr(ST, "RLIMIT_PER_GENOME", 0)
    idle = run(True)
    assert off[:2] == idle[:2] and off[2] is None and idle[2] == {"calls": 0, "credit": 0}
