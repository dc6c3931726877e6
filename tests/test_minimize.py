"""Tests of intron removal (evolve.minimize): planted dead code goes, correctness stays."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble
from core.executors import open_executor
from core.outcome import Outcome
from evolve import tasks as T
from evolve.alphabets.arm64 import OPS as ARM64_ALPHABET
from evolve.genes import alphabet_for
from evolve.minimize import minimize

TASK = T.get_task("clear_lowest")


@pytest.fixture(scope="module")
def ex():
    with open_executor("arm64", backend="emulated", budget=256) as e:
        yield e


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(3)
    return T.training_cases(TASK, rng, 64), T.validation_cases(TASK, rng, 2000)


def correct_everywhere(ex, code: bytes, x: np.ndarray, seed: int) -> bool:
    res = ex.run([code], x, seed=seed)
    return bool(((res.outcomes[0] == Outcome.OK) & (res.outputs[0] == TASK.expected(x))).all())


def op_index(name: str, kind: str) -> int:
    return next(i for i, op in enumerate(ARM64_ALPHABET) if op.name == name and op.kind == kind and op.width == 64)


def test_planted_dead_lines_are_removed(ex, cases):
    """Check that dead instructions around a minimal solution are removed and it stays correct."""
    lines = ["add x9, x10, x11", "sub x1, x0, #1", "eor x5, x5, x1", "and x0, x0, x1", "mul x2, x3, x4"]
    m = minimize(lines, lambda ls: assemble(ls), ex, *cases)
    assert m.units == ["sub x1, x0, #1", "and x0, x0, x1"]
    assert m.removed == [0, 2, 4]
    fresh = T.random_cases(np.random.default_rng(99), 3000, 1)
    assert correct_everywhere(ex, m.code, fresh, seed=12345)


def test_minimal_program_is_kept(ex, cases):
    """Check that a program without introns comes back unchanged."""
    lines = ["sub x1, x0, #1", "and x0, x0, x1"]
    m = minimize(lines, lambda ls: assemble(ls), ex, *cases)
    assert m.units == lines and m.removed == [] and m.code == assemble(lines)


def test_genes_with_a_planted_dead_gene(ex, cases):
    """Check that a dead gene planted inside a gene genome (branch included) is removed."""
    alphabet = alphabet_for("arm64", n_regs=4)
    sub_i, and_r, add_r = op_index("sub", "r2i12"), op_index("and", "r3"), op_index("add", "r3")
    cbz = op_index("cbz", "cbz")
    genes = [(sub_i, 1, 0, 0, 1),        # sub x1, x0, #1
             (add_r, 3, 2, 2, 0),        # add x3, x2, x2   (dead: planted)
             (cbz, 0, 0, 0, 1),          # cbz x0, +1 gene: skips the and when x0 == 0 (x0 & x1 = 0 anyway)
             (and_r, 0, 0, 1, 0)]        # and x0, x0, x1
    assert correct_everywhere(ex, alphabet.encode(genes), cases[1], seed=1)
    m = minimize(genes, alphabet.encode, ex, *cases)
    assert 1 in m.removed and m.length <= 3
    assert alphabet.render(m.units)[-1] == "and x0, x0, x1"
    assert correct_everywhere(ex, m.code, cases[1], seed=777)


def test_register_garbage_is_not_an_intron(ex, cases):
    """Check that the mov clearing x2 is never removed alone (x2's random value would leak into
    x0), while the pair (mov, orr) is removed together by the pair stage."""
    lines = ["mov x2, #0", "sub x1, x0, #1", "and x0, x0, x1", "orr x0, x0, x2"]
    m = minimize(lines, lambda ls: assemble(ls), ex, *cases)
    assert m.units == ["sub x1, x0, #1", "and x0, x0, x1"] and m.removed == [0, 3]
    assert correct_everywhere(ex, m.code, cases[1], seed=4242)


def test_a_proof_keeps_what_register_garbage_hides(ex, cases):
    """Check that a deletion right on every case only because random registers satisfy a
    condition (x1 >= 13 unsigned) is taken without a proof and refused with one."""
    from evolve import verify
    lines = ["mov x1, #20", "cmp x1, #13", "csneg x3, x3, x0, lo", "bic x0, x0, x3"]   # x & (x - 1)
    train, valid = cases
    blind = minimize(lines, assemble, ex, train, valid, isa="arm64")
    assert "mov x1, #20" not in blind.units            # testing cannot tell: the deletion looks fine
    assert isinstance(verify.check(blind.code, TASK, "arm64", len(valid)), verify.Refutation)

    def proven_or_untouched(code: bytes) -> bool:
        return not isinstance(verify.check(code, TASK, "arm64", len(valid)), verify.Refutation)

    kept = minimize(lines, assemble, ex, train, valid, isa="arm64", accept=proven_or_untouched)
    assert "mov x1, #20" in kept.units
    assert verify.check(kept.code, TASK, "arm64", len(valid)).equivalence == "proven"
