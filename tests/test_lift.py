"""The target as seeds: words lifted into genes, stack slots forwarded into registers, branches
re-aimed over deleted words; each checked by encoding again or by running both forms."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble, disassemble
from evolve import frame as F
from evolve.codetask import run_code
from evolve.forward import simplify
from evolve.genes import alphabet_for
from evolve.lift import lift

ALPHABET = alphabet_for("arm64", n_regs=4)


@pytest.mark.parametrize("line", [
    "add x0, x1, x2", "sub x3, x0, #12", "lsr x1, x0, #7", "and x0, x0, #0xff", "orr x0, x1, x2, lsr #3",
    "csel x0, x1, x2, lt", "ldr x1, [sp, #24]", "str x0, [sp, #8]", "mov x0, #-1", "movz w0, #1",
    "madd x0, x1, x2, x3", "ubfx x0, x1, #3, #5", "neg w1, w0", "cmp x0, #0", "umulh x0, x0, x1",
    "sxtb w2, w0", "eor w0, w1, w2"])
def test_alphabet_words_lift_to_genes(line):
    """Check that a word of the alphabet lifts to a (non-raw) gene that encodes to it again."""
    word = assemble([line])
    genes = lift(word, ALPHABET)
    assert ALPHABET.ops[genes[0][0]].kind != "raw", line
    assert ALPHABET.encode(genes) == word


@pytest.mark.parametrize("line", ["add x9, x0, x1", "b.ne #8", "ldrb w0, [sp, #15]", "str x19, [sp, #8]"])
def test_other_words_stay_raw(line):
    """Check that branches, registers outside the working set and other loads stay raw words."""
    word = assemble([line])
    genes = lift(word, ALPHABET)
    assert ALPHABET.ops[genes[0][0]].kind == "raw" and ALPHABET.encode(genes) == word


def _same(a: bytes, b: bytes, arity: int = 2):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2**64, (400, arity), dtype=np.uint64)
    x[:40] = rng.integers(0, 300, (40, arity))
    ya, ca = run_code(a, x)
    yb, cb = run_code(b, x)
    return bool((ca == 0).all() and (cb == 0).all() and (ya == yb).all())


def test_forwarding_removes_gcc_O0_slot_traffic():
    """Check store-to-load forwarding and dead stores on -O0-style code, by execution."""
    code = assemble(["str x0, [sp, #8]", "ldr x0, [sp, #8]", "sub x1, x0, #1", "ldr x0, [sp, #8]",
                     "and x0, x1, x0", "ret"])
    short = simplify(code)
    assert disassemble(short) == ["sub x1, x0, #1", "and x0, x1, x0", "ret"]
    assert _same(code, short, 1)
    narrow = assemble(["strb w0, [sp, #15]", "strb w1, [sp, #14]", "ldrb w0, [sp, #15]", "ldrsb w3, [sp, #14]",
                       "sxtb w2, w0", "ldrb w1, [sp, #14]", "cmp w3, w2", "csel w0, w1, w0, ge", "sxtb w0, w0", "ret"])
    short = simplify(narrow)
    assert len(short) < len(narrow) and not any("[sp" in t for t in disassemble(short))
    assert _same(narrow, short)


def test_forwarding_stops_at_branch_targets():
    """Check that knowledge of a slot is dropped where paths meet (a store on one path only)."""
    code = assemble(["str x0, [sp, #8]", "cbz x1, #8", "str x1, [sp, #8]", "ldr x0, [sp, #8]", "ret"])
    short = simplify(code)
    assert "ldr x0, [sp, #8]" in disassemble(short)
    assert _same(code, short)


def test_relink_reaims_branches_over_deleted_words():
    """Check that deleting words between a branch and its target keeps the branch's target."""
    code = assemble(["cmp x0, #5", "b.lo #16", "mov x2, #9", "add x0, x0, #1", "add x0, x0, x0", "neg x0, x0"])
    words = [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)]
    assert F.branch_distance(words[1]) == 4 and F.branch_distance(words[0]) is None
    relinked = F.relink([(i, w) for i, w in enumerate(words) if i != 2])
    assert disassemble(relinked)[1] == "b.lo #0xc"
    assert _same(code, relinked, 1)
