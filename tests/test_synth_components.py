"""The location-variable encoding (evolve.synth_components) and its multisets (evolve.synth_sketch):
it finds a known program from its multiset deterministically under z3 rlimit budgets, its programs
are right under Unicorn called directly, sketches read a genome's live forms, and the tier with
this encoding resumes identically."""
from __future__ import annotations

import numpy as np
import pytest

from evolve import synth as SY
from evolve import synth_components as SC
from evolve import synth_ops as SO
from evolve import synth_sketch as SK
from evolve import synth_tier as ST
from evolve import tasks as T
from evolve.genes import alphabet_for
from scripts.independent_harness import independent_check

A = alphabet_for("arm64", n_regs=8)
M = (1 << 64) - 1
SUITE = "suites/hackers_delight.py:"


def _p19(x, m, k):
    k &= 63
    t = ((x >> k) ^ x) & m
    return (x ^ t ^ (t << k)) & M


def _synth(name: str, width: int | None, call_rlimit: int) -> SC.MultisetSynth:
    task = T.get_task(name)
    rng = np.random.default_rng([0, 1])
    x = T.training_cases(task, rng, 256)
    red = ST.reduced_cases(task, width, 128, rng) if width else None
    return SC.MultisetSynth(x, task.expected(x), call_rlimit=call_rlimit, reduced=red)


def _first(synth: SC.MultisetSynth, calls: int = 40) -> tuple:
    for _ in range(calls):
        found = synth.step(1)
        if found:
            return synth.position, found[0]
        if not synth.last_work:
            break
    return synth.position, None


@pytest.mark.parametrize("name, width, multiset, func", [
    # the bit-field exchange STOKE did not synthesise: 4 bits, lifted, checked at 64
    (SUITE + "p19", 4, ("lsrv", "eor", "and", "lslv", "eor", "eor"), _p19),
    ("clear_lowest", None, ("subi", "and"), lambda x: x & (x - 1) & M),      # at 64 bits
    ("clear_lowest_run", 8, ("subi", "orr", "addi", "and"), lambda x: ((x | (x - 1)) + 1) & x & M),
])
def test_it_finds_a_known_program_from_its_multiset(name, width, multiset, func):
    """Check that the multiset's program is found with the same calls and units twice (rlimit, no
    wall clock), uses each component once, and is right under Unicorn called directly."""
    a, b = _synth(name, width, 8_000_000), _synth(name, width, 8_000_000)
    for s in (a, b):
        assert s.offer(multiset) and not s.offer(tuple(reversed(multiset)))   # a multiset is queued once
    (pa, prog), (pb, prog_b) = _first(a), _first(b)
    assert prog is not None and (pa, prog) == (pb, prog_b) and a.spent == b.spent
    assert sorted(line[0] for line in prog) == sorted(multiset)
    arity = T.get_task(name).arity
    genes = SY.program_genes(prog, arity, len(A.regs))
    wrong, _, first = independent_check(A.encode(genes), func, arity, n=300)
    assert wrong == 0, (A.render(genes), first)


def test_a_multiset_without_a_program_is_refused_and_the_synth_waits():
    """Check that a multiset that cannot compute the task ends unsat (after a few examples), and
    that an empty queue is no work (a step spends nothing)."""
    s = _synth("clear_lowest", 8, 2_000_000)
    assert s.step(1) == [] and s.last_work == 0 and s.position == 0
    s.offer(("eor", "addi"))                 # x ^ (x + c) is never x & (x - 1)
    assert s.step(10**9) == [] and 1 <= s.position == s.stats.calls <= 4 and s.pending == 0
    assert s.step(10**9) == [] and s.last_work == 0


def test_shifted_components_take_a_shifted_operand():
    """Check that ``orr~`` is a shifted-register orr (``x | x >> 1`` from one component) and that
    a plain ``orr`` cannot shift."""
    task = T.get_task("clear_lowest")
    x = T.training_cases(task, np.random.default_rng(2), 64)
    y = np.array([int(v) | int(v) >> 1 for v in x[:, 0]], np.uint64)
    for multiset, want in ((("orr~",), True), (("orr",), False)):
        s = SC.MultisetSynth(x, y, call_rlimit=4_000_000)
        s.offer(multiset)
        found = s.step(10**9)
        assert bool(found) == want
        if want:
            assert found[0] == [("orr", 0, 0, 1, 1)]


def test_a_sketch_reads_the_live_forms_of_a_genome():
    """Check that the genes of a program sketch back to its multiset, and that a dead
    instruction (its register never read) is left out."""
    program = [("lsrv", 0, 2, 0, 0), ("eor", 0, 3, 0, 0), ("and", 1, 4, 0, 0), ("lslv", 5, 2, 0, 0),
               ("eor", 0, 5, 0, 0), ("eor", 7, 6, 0, 0)]
    genes = SY.program_genes(program, 3, len(A.regs))
    assert sorted(SK.sketch(genes, A)) == sorted(line[0] for line in program)
    dead = SO.gene("orr", 7, 0, 1, 0, 0)     # x7 is not the result and nothing reads it
    assert sorted(SK.sketch([dead] + genes, A)) == sorted(line[0] for line in program)
    shifted = SO.gene("orr", 0, 0, 0, 1, 1)  # orr x0, x0, x0, lsr #1
    assert SK.sketch([shifted], A) == ["orr~"]


def test_neighbours_keep_within_the_size_and_start_with_the_sketch():
    """Check that a sketch's neighbours start with itself, then drops, adds and swaps, all valid."""
    order = SK.prior(A)
    assert order[0] in SO.FORMS and all(SC.valid(c) for c in order)
    out = list(SK.neighbours(["eor", "and"], order, adds=3))
    assert out[0] == ["and", "eor"] and ["eor"] in out and ["and"] in out
    assert all(len(m) == 3 for m in out[3:6]) and all(len(m) == 2 for m in out[6:])
    big = ["add", "sub"] * SK.MAX_COMPONENTS
    assert all(len(m) <= SK.MAX_COMPONENTS for m in SK.neighbours(big, order))


def test_a_components_tier_resumed_at_its_position_continues_identically():
    """Check that a components tier restored from another's position (calls, credit, multisets)
    makes the same next calls and finds."""
    task = T.get_task("clear_lowest_run")
    a = ST.SynthTier(task, len(A.regs), seed=3, encoding="components")
    for m in (("eor", "addi"), ("subi", "orr"), ("subi", "orr", "addi", "and"), ("add", "and")):
        a.synth.offer(m)
    a.step(50_000)
    b = ST.SynthTier(task, len(A.regs), seed=3, encoding="components")
    b.position = a.position
    assert b.position == a.position and len(a.position["multisets"]) == 4
    assert [a.step(3_000_000) for _ in range(4)] == [b.step(3_000_000) for _ in range(4)]
    assert a.synth.spent == b.synth.spent


def test_an_engine_with_the_components_tier_offers_sketches_and_checkpoints_them():
    """Check that a run with --synth-encoding components queues its hall of fame's sketches, that
    its state is plain JSON, and that an engine resumed from it makes the same next generations."""
    import copy
    import json

    from evolve import engine as EN
    from evolve.config import RunConfig

    cfg = RunConfig(task="suites/hackers_delight.py:p19", pop=30, generations=6, seed=5, backend="emulated",
                    time_limit=None, optimize=0.0, synth=True, synth_encoding="components", enumerate=False,
                    brain=False)

    a = EN.build(cfg)
    try:
        a.start()
        for _ in range(2):
            a.step()
        state = a.state()
        synth = json.loads(json.dumps(state["synth"]))
        assert synth["multisets"] and all(SC.valid(c) for m in synth["multisets"] for c in m)
        assert synth["calls"] >= 1
        b = EN.build(cfg)
        try:
            b.restore(copy.deepcopy(state), None, settle=False)
            for _ in range(2):
                a.step()
                b.step()
            assert a.synth.position == b.synth.position
            assert a.rows.genes.tolist() == b.rows.genes.tolist()
        finally:
            b.evaluator.close()
    finally:
        a.evaluator.close()


def test_an_unknown_encoding_is_refused_with_exit_2(capsys):
    """Check that --synth-encoding takes only its two names (argparse: exit 2, one line of reason)."""
    import argparse

    from evolve.config import add_arguments, config_from_args

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    with pytest.raises(SystemExit) as stop:
        ap.parse_args(["--task", "clear_lowest", "--synth-encoding", "loc"])
    assert stop.value.code == 2 and "invalid choice: 'loc'" in capsys.readouterr().err
    cfg = config_from_args(ap.parse_args(["--task", "clear_lowest", "--synth", "--synth-encoding", "components"]))
    assert cfg.synth and cfg.synth_encoding == "components"
