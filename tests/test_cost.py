"""The cost model of the optimisation phase (evolve.cost) on hand-checked sequences."""
from __future__ import annotations

import pytest

from core.asm import assemble
from evolve import cost as K


def code(*lines: str) -> bytes:
    return assemble(list(lines), "arm64")


def test_a_dependency_chain_costs_its_length_independent_instructions_one_cycle():
    """Check the critical path: four adds each reading the previous result take 4 cycles; four
    adds reading only x0 take 1 (the model has no issue-width limit); both are 4 long."""
    chain = code("add x1, x0, #1", "add x2, x1, #1", "add x3, x2, #1", "add x0, x3, #1")
    independent = code("add x1, x0, #1", "add x2, x0, #1", "add x3, x0, #1", "add x4, x0, #1")
    assert (K.latency(chain), K.length(chain)) == (4, 4)
    assert (K.latency(independent), K.length(independent)) == (1, 4)
    # w registers are the x registers they are part of: the chain stays a chain
    assert K.latency(code("add w1, w0, #1", "add x2, x1, #1")) == 2


def test_latencies_add_up_along_the_path_by_class():
    """Check multiply (2), multiply-high (3) and 32-bit divide (12, the guide's upper bound) in
    one chain, and that a trailing ret counts neither as length nor latency."""
    c = code("mul x1, x0, x0", "umulh x2, x0, x1", "udiv w0, w2, w1", "ret")
    assert K.length(c) == 3
    assert [s.done for s in K.schedule(c)] == [2, 5, 17] and K.latency(c) == 17
    assert K.latency(code("sdiv x0, x1, x2")) == K.A78AE["div_x"] == 20


def test_flags_and_scratch_memory_are_dependencies():
    """Check that csel waits for the cmp that sets the flags, a load for the store to its slot
    (and not a store to another slot), and that cmp reads its register (capstone's own access
    lists say it writes it)."""
    assert K.latency(code("cmp x0, #3", "csel x0, x1, x0, eq")) == 2
    assert K.latency(code("add x1, x0, #1", "cmp x1, #3", "cset x0, eq")) == 3
    assert K.latency(code("str x0, [sp, #8]", "ldr x1, [sp, #8]", "add x0, x1, #1")) == 1 + 4 + 1
    assert K.latency(code("str x0, [sp, #8]", "ldr x1, [sp, #16]")) == 4
    assert K.latency(code("adds x1, x0, x0", "adc x0, x2, x2")) == 2     # adc reads the carry


def test_operand_forms_pick_the_guide_class():
    """Check the classes of shifted and extended operands, bitfield moves and inserts, and the
    NEON bit-count idiom (fmov to d, cnt, addv, fmov back: 3 + 2 + 4 + 2)."""
    classes = [s.cls for s in K.schedule(code(
        "add x0, x1, x2, lsl #2", "add x0, x1, x2, lsl #5", "add x0, x1, w2, sxtw", "eor x0, x1, x2, ror #7",
        "ubfx x0, x1, #3, #4", "bfi x0, x1, #3, #4", "lsl x0, x1, x2", "lsl x0, x1, #2", "movk x0, #1, lsl #16",
        "rev w0, w0", "smulh x0, x1, x2", "tbz x0, #3, #8"))]
    assert classes == ["alu", "alu_shift", "alu_extend", "alu", "bitfield", "bitfield_insert", "shift_reg",
                       "bitfield", "movi", "count", "mulh", "branch"]
    popcount = code("fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0")
    assert K.latency(popcount) == 3 + 2 + 4 + 2
    # bfi keeps bits of its destination: it waits for the value it inserts into
    assert K.latency(code("mul x0, x0, x0", "bfi x0, x1, #3, #4")) == 2 + 2


def test_key_breaks_equal_latency_by_length_and_lengths_of_x86():
    """Check "cheaper" under latency (then length), length on x86-64 (its ret excluded) and
    that latency refuses an ISA it has no table for."""
    short, long_ = code("sub x1, x0, #1", "and x0, x0, x1"), code("sub x1, x0, #1", "add x2, x0, #0", "and x0, x0, x1")
    assert K.latency(short) == K.latency(long_) == 2
    assert K.key(short, "latency") < K.key(long_, "latency")
    x86 = assemble(["lea rax, [rdi - 1]", "and rax, rdi", "ret"], "x86_64")
    assert K.length(x86, "x86_64") == 2 and K.cost(x86, "length", "x86_64") == 2
    with pytest.raises(ValueError, match="arm64"):
        K.cost(x86, "latency", "x86_64")
    with pytest.raises(ValueError, match="--cost"):
        K.cost(short, "speed")
