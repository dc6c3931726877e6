"""Tests of the interpreter's dead-row elimination (core.executors.interp.liveness).

Rows whose results nothing reads become K_NOP; the interpreter must still give what a plain
Unicorn gives (the harness of ``test_interp_undefined``), on random alphabet genomes with
flags, forward branches, memory and raw words."""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.asm import assemble
from core.executors.interp import decoder as D
from core.executors.interp.execute import flatten
from core.executors.interp.liveness import eliminate_dead
from evolve.genes import alphabet_for
from test_interp_undefined import PlainUnicorn, _compare


def _kinds_after(lines: list[str], budget: int = 64) -> list[int]:
    words, offsets = flatten([assemble(lines, "arm64")])
    ctl, _imm, ok = D.decode(words, offsets, 256, budget)
    assert ok.all()
    eliminate_dead(ctl, offsets, np.flatnonzero(ok), budget, np.zeros(len(words) + 1, np.int64))
    return [int(k) == D.K_NOP for k in ctl[:, D.F_KIND]]


@pytest.mark.parametrize("lines, dead", [
    (["add x1, x0, #1", "mov x0, x2"], [True, False]),
    (["add x1, x0, #1", "add x0, x1, x1"], [False, False]),
    (["cmp x0, x1", "cset x0, eq"], [False, False]),
    (["cmp x0, x1", "mov x0, #3"], [True, False]),
    (["adds x2, x0, x1", "adc x0, xzr, xzr"], [False, False]),             # the carry is read
    (["cmp x0, #4", "b.lo #8", "mov x0, #1", "add x0, x0, #2"], [False, False, False, False]),
    (["mov x1, #9", "cbz x1, #8", "mov x3, #1"], [False, False, True]),
    (["movz x0, #1", "movk x0, #2, lsl #16"], [False, False]),            # movk reads x0
    (["mov x30, x1", "mov x0, #1"], [False, False]),                      # x30: where the return goes
    (["add x1, x0, #1", "str x1, [sp, #8]", "mov x0, #0"], [False, False, False]),
    (["add x1, x0, #1", ".word 0x00000000", "mov x0, x1"], [True, False, False]),   # a fault: none live
    (["add x1, x0, #1", "b #-4"], [False, False]),                        # a loop: left alone
])
def test_dead_rows(lines, dead):
    """Check which rows of small programs are found dead (and that loops are left alone)."""
    assert _kinds_after(lines) == dead


def test_random_genomes_agree_with_unicorn_after_elimination():
    """Check that random alphabet genomes (raw words included), whose rows are often dead, give
    Unicorn's outputs and outcomes."""
    rng = random.Random(31)
    codes = []
    for _ in range(1500):
        alphabet = alphabet_for("arm64", n_regs=rng.randint(2, 6))
        genes = [alphabet.random_gene(rng) for _ in range(rng.randint(1, 16))]
        codes.append(alphabet.encode(genes))
    words, offsets = flatten(codes)
    ctl, _imm, ok = D.decode(words, offsets, 256, 64)
    removed = eliminate_dead(ctl, offsets, np.flatnonzero(ok), 64, np.zeros(64, np.int64))
    assert removed >= 0.25 * len(words), (removed, len(words))
    counts = _compare(PlainUnicorn(), codes, seed=12, n_cases=6)
    assert counts["done"] >= 1200 and counts["OK"] >= 3000, counts
