"""The classic rewrites of evolve.rewrite on gcc -O0-style code: each result checked by running
both forms (the executor) and by a z3 proof against the original (deterministic rlimit)."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble, disassemble
from core.proofs import PROVEN, prove_equivalence
from core.symbolic import translate
from evolve import rewrite as RW
from evolve.rewriter import rewrite
from evolve.codetask import make_code_task, run_code

#: -O0 forms (frame already in the scratch area, as evolve.frame models it) and gcc -O2's length
P07 = ["str x0, [sp, #8]", "ldr x0, [sp, #8]", "mvn x1, x0", "ldr x0, [sp, #8]", "add x0, x0, #1",
       "and x0, x1, x0"]
P14 = ["str x0, [sp, #8]", "str x1, [sp]", "ldr x1, [sp, #8]", "ldr x0, [sp]", "and x0, x1, x0",
       "ldr x2, [sp, #8]", "ldr x1, [sp]", "eor x1, x2, x1", "asr x1, x1, #1", "add x0, x0, x1"]
P11 = ["str x0, [sp, #8]", "str x1, [sp]", "ldr x0, [sp]", "mvn x1, x0", "ldr x0, [sp, #8]", "and x0, x1, x0",
       "ldr x1, [sp]", "cmp x1, x0", "cset w0, lo", "and w0, w0, #0xff", "and x0, x0, #0xff"]
P19 = ["str x0, [sp, #0x18]", "str x1, [sp, #0x10]", "str x2, [sp, #8]", "ldr x0, [sp, #8]", "and w0, w0, #0x3f",
       "str w0, [sp, #0x2c]", "ldr w0, [sp, #0x2c]", "ldr x1, [sp, #0x18]", "lsr x1, x1, x0", "ldr x0, [sp, #0x18]",
       "eor x0, x1, x0", "ldr x1, [sp, #0x10]", "and x0, x1, x0", "str x0, [sp, #0x20]", "ldr x1, [sp, #0x18]",
       "ldr x0, [sp, #0x20]", "eor x1, x1, x0", "ldr w0, [sp, #0x2c]", "ldr x2, [sp, #0x20]", "lsl x0, x2, x0",
       "eor x0, x1, x0"]
#: branch operands are offsets (each line is assembled on its own)
P18 = ["str x0, [sp, #8]", "ldr x0, [sp, #8]", "cmp x0, #0", "b.eq #0x24", "ldr x0, [sp, #8]", "sub x1, x0, #1",
       "ldr x0, [sp, #8]", "and x0, x1, x0", "cmp x0, #0", "b.ne #0xc", "mov w0, #1", "b #8", "mov w0, #0",
       "sxtw x0, w0"]
P09 = ["str x0, [sp, #8]", "ldr x0, [sp, #8]", "str x0, [sp, #0x18]", "ldr x0, [sp, #0x18]", "cmp x0, #0", "b.ge #0x10",
       "ldr x0, [sp, #8]", "neg x0, x0", "b #8", "ldr x0, [sp, #8]"]
P13 = ["str x0, [sp, #8]", "ldr x0, [sp, #8]", "str x0, [sp, #0x18]", "ldr x0, [sp, #0x18]", "cmp x0, #0", "b.gt #0x20",
       "ldr x0, [sp, #0x18]", "cmp x0, #0", "b.ge #0xc", "mov x0, #-1", "b #0x10", "mov x0, #0", "b #8", "mov x0, #1"]
P24 = ["str x0, [sp, #8]", "ldr x0, [sp, #8]", "sub x0, x0, #1", "str x0, [sp, #8]"]
for k in (1, 2, 4, 8, 16, 32):
    P24 += ["ldr x0, [sp, #8]", f"lsr x0, x0, #{k}", "ldr x1, [sp, #8]", "orr x0, x1, x0", "str x0, [sp, #8]"]
P24 += ["ldr x0, [sp, #8]", "add x0, x0, #1"]


def _check(lines: list[str], arity: int) -> list[str]:
    """The rewritten form of ``lines`` (in a 48-byte frame, modelled as evolve.frame does), after
    checking it against the function by execution and by proof."""
    code = assemble(["sub sp, sp, #0x30"] + lines + ["add sp, sp, #0x30", "ret"])
    task = make_code_task("rewrite_check", code, arity)
    out = rewrite(task.model, arity)
    assert out is not None
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2**64, (300, arity), dtype=np.uint64)
    x[:30] = rng.integers(0, 70, (30, arity))
    ya, ca = run_code(code, x)
    yb, cb = run_code(out, x)
    assert (ca == 0).all() and (cb == 0).all() and (ya == yb).all()
    verdict = prove_equivalence(translate(out), arity, task.symbolic, rlimit=20_000_000)
    assert verdict.status == PROVEN, verdict
    return disassemble(out)[:-1]


@pytest.mark.parametrize("lines, arity, expected", [
    (P07, 1, ["add x2, x0, #1", "bic x0, x2, x0"]),                     # mvn folded after renaming
    (P14, 2, ["and x2, x0, x1", "eor x3, x0, x1", "add x0, x2, x3, asr #1"]),   # shift folded
    (P11, 2, ["bic x3, x0, x1", "cmp x1, x3", "cset w0, lo"]),           # a 0/1 value's masks are copies
    (P18, 1, ["sub x1, x0, #1", "tst x1, x0", "ccmp x0, #0, #4, eq", "cset w0, ne"]),   # && as ccmp, reordered
    (P09, 1, ["cmp x0, #0", "cneg x0, x0, lt"]),                         # a diamond, csel of a negation
    (P13, 1, ["cmp x0, #0", "csetm x5, lt", "csinc x0, x5, xzr, le"]),   # nested diamonds of constants
])
def test_rewrites_reach_gcc_O2(lines, arity, expected):
    """Check that the rewrites turn -O0 code into gcc -O2's instructions (up to register names)."""
    assert _check(lines, arity) == expected


@pytest.mark.parametrize("lines, arity, length", [(P19, 3, 6), (P24, 1, 8)])
def test_rewrites_reach_gcc_O2_length(lines, arity, length):
    """Check p19 (a W value zero-extended once, ``k & 63`` left to the shifts: one shorter than
    gcc's 7) and p24 (six shifts folded: gcc's 8)."""
    assert len(_check(lines, arity)) == length


def test_coalescing_keeps_a_value_still_read():
    """Check that a move is not coalesced over a reader of its destination's old value."""
    lines = ["add x2, x0, #1", "add x3, x0, x2", "mov x0, x2", "add x0, x0, x3"]
    out = _check(lines, 1)
    assert len(out) <= 3


def test_amount_mask_kept_for_other_readers():
    """Check that ``k & 63`` stays when something other than a 64-bit shift reads it."""
    lines = ["and x2, x1, #0x3f", "lsr x3, x0, x2", "add x0, x3, x2"]
    assert [i.text() for i in RW.combine(RW.decode(assemble(lines + ["ret"])))] == lines
    assert rewrite(assemble(lines + ["ret"]), 2) is None       # nothing shorter: no seed


def test_dead_code_goes_by_liveness():
    """Check that writes nothing reads are dropped and a comparison whose flags are read stays."""
    lines = ["add x3, x0, #5", "cmp x0, #3", "mul x4, x0, x0", "cmp x4, #1", "cmp x0, #3", "cset x0, hi"]
    assert _check(lines, 1) == ["cmp x0, #3", "cset x0, hi"]


def test_a_store_on_one_side_is_not_if_converted():
    """Check that a diamond whose side stores is left with its branches (the store would run on
    both paths), while the same diamond without the store is converted."""
    side_store = ["cmp x0, #0", "b.ge #0xc", "str x1, [sp, #8]", "b #8", "neg x0, x0", "ldr x1, [sp, #8]",
                  "add x0, x0, x1"]
    assert rewrite(assemble(side_store + ["ret"]), 2) is None
    assert _check(["cmp x0, #0", "b.ge #0xc", "add x0, x0, x1", "b #8", "neg x0, x0"], 2) == \
        ["cmp x0, #0", "add x2, x0, x1", "neg x3, x0", "csel x0, x3, x2, ge"]


@pytest.mark.parametrize("lines", [["cbz x0, #8", "add x0, x0, #1"], ["movk x0, #1, lsl #16"],
                                   ["ldr x0, [x1]"], ["add x9, x0, #1", "mov x0, x9"],
                                   ["fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0"],
                                   ["mov x2, x0", "add x0, x2, x3"], ["mov x2, x1", "csel x0, x0, x2, eq"]])
def test_unsupported_code_is_left_alone(lines):
    """Check that branches, read-modify-write instructions, other memory, registers beyond x7
    and SIMD registers (p23's bit count, whose data flow the rewrites do not see) give None, as
    does code reading a register other than the arguments or the flags before it sets them
    (not a function of its arguments: renaming would change which garbage it reads)."""
    assert rewrite(assemble(lines + ["ret"]), 2) is None
