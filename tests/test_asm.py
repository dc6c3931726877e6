"""Tests of core.asm: the keystone cache, errors, and the assemble/disassemble round trip."""
from __future__ import annotations

import random

import pytest

from core import asm
from core.asm import AsmError, assemble, disassemble, listing

# A representative slice of the instructions genomes are made of (arm64), one per operand shape.
ARM64_LINES = [
    "add x0, x0, x1", "sub x3, x4, x5", "adds x1, x2, x3", "subs w1, w2, w3", "and x0, x1, x2",
    "orr x0, x1, x2", "eor x0, x1, x2", "bic x0, x1, x2", "orn x2, x3, x4", "eon x5, x6, x7",
    "lsl x0, x1, x2", "lsr x0, x1, x2", "asr x0, x1, x2", "ror x0, x1, x2", "lsl x0, x1, #3",
    "lsr x0, x1, #63", "asr x2, x3, #7", "ror x1, x2, #17", "mul x0, x1, x2", "madd x0, x1, x2, x3",
    "msub x0, x1, x2, x3", "umulh x0, x1, x2", "smulh x0, x1, x2", "udiv x0, x1, x2", "sdiv x0, x1, x2",
    "neg x0, x1", "mvn x0, x1", "clz x0, x1", "rbit x0, x1", "rev x0, x1", "cmp x0, x1", "cmn x0, #5",
    "tst x0, x1", "csel x0, x1, x2, eq", "csinc x0, x1, x2, ne", "csneg x0, x1, x2, lt", "cset x0, hi",
    "ccmp x0, x1, #4, ne", "mov x0, x1", "movz x0, #0x1234", "movk x0, #0xffff, lsl #16",
    "movn x0, #0", "add x0, x1, #4095", "sub x0, x1, #1, lsl #12", "and x0, x1, #0xff",
    "ldr x0, [sp, #8]", "str x1, [sp, #16]", "ldp x0, x1, [sp, #32]", "stp x2, x3, [sp]",
    "ldrb w0, [sp, #3]", "strh w1, [sp, #6]", "ldur x0, [sp, #1]", "b #8", "b.eq #12", "cbz x0, #8",
    "cbnz x1, #16", "tbz w0, #3, #12", "tbnz x5, #40, #8", "nop", "svc #0", "brk #1", "ret",
    ".word 0x00000000", ".word 0xffffffff",
]
X86_LINES = [
    "mov rax, rdi", "add rax, rsi", "sub rax, rdx", "imul rax, rcx", "xor eax, eax", "and rax, rsi",
    "or rax, rdi", "shl rax, 3", "shr rax, cl", "sar rdx, 1", "neg rax", "not rax", "lea rax, [rdi + rsi*2]",
    "mov qword ptr [rsp - 8], rdi", "mov rax, qword ptr [rsp - 16]", "cmp rdi, rsi", "cmovb rax, rsi",
    "jmp 5", "je 7", "ud2", "int3", "syscall", "ret", "div rsi", "popcnt rax, rdi",
]


def test_cache_hit_gives_identical_bytes():
    """Check that a second assembly is served by the cache and gives the same bytes."""
    lines = ["add x9, x10, x11", "mul x9, x9, x12"]
    first = assemble(lines)
    before = asm._encode_line.cache_info().hits
    second = assemble(lines)
    assert second == first
    assert asm._encode_line.cache_info().hits >= before + 2


def test_keystone_called_once_per_distinct_line(monkeypatch):
    """Check that keystone sees each distinct instruction once, however many genomes use it."""
    asm._encode_line.cache_clear()
    calls = []
    real = asm._engine

    def counting(isa):
        calls.append(isa.name)
        return real(isa)

    monkeypatch.setattr(asm, "_engine", counting)
    for _ in range(5):
        assemble(["add x0, x0, x1", "sub x1, x1, x0", "add x0, x0, x1"])
    assert len(calls) == 2


def test_bad_line_is_named_with_its_index():
    """Check that a line keystone rejects raises an error naming the line and its index."""
    with pytest.raises(AsmError) as err:
        assemble(["add x0, x0, x1", "  frobnicate x9 ", "ret"])
    assert "line 1" in str(err.value) and "frobnicate x9" in str(err.value)


@pytest.mark.parametrize("lines", [[], [""], ["// only a comment", "   "], ""])
def test_empty_input_is_an_error(lines):
    """Check that empty input raises instead of returning empty code."""
    with pytest.raises(AsmError, match="empty"):
        assemble(lines)


def test_raw_words_and_comments():
    """Check that raw words are accepted (keystone has no udf) and comments are ignored."""
    code = assemble([".word 0x00000000  // udf #0", "add x0, x0, x1 ; sum", ".word 0xd65f03c0"])
    assert code == bytes(4) + bytes.fromhex("0000018b") + bytes.fromhex("c0035fd6")


def test_raw_word_out_of_range():
    """Check that a raw word wider than 32 bits is rejected."""
    with pytest.raises(AsmError, match="out of range"):
        assemble([".word 0x100000000"])


def test_unknown_isa():
    """Check that an unknown ISA is a ValueError naming the known ones."""
    with pytest.raises(ValueError, match="arm64"):
        assemble(["nop"], isa="mips")


@pytest.mark.parametrize("line", ARM64_LINES)
def test_round_trip_arm64(line):
    """Check that assemble -> disassemble -> assemble is stable for each arm64 instruction."""
    code = assemble([line])
    text = disassemble(code)
    assert len(text) == 1
    assert assemble(text) == code
    assert disassemble(assemble(text)) == text


@pytest.mark.parametrize("line", X86_LINES)
def test_round_trip_x86(line):
    """Check that assemble -> disassemble -> assemble is stable for each x86-64 instruction."""
    code = assemble([line], isa="x86_64")
    assert assemble(disassemble(code, isa="x86_64"), isa="x86_64") == code


def test_round_trip_random_words():
    """Check that any 32-bit word survives the arm64 round trip (as text or as a raw word)."""
    rng = random.Random(7)
    for _ in range(2000):
        word = rng.getrandbits(32).to_bytes(4, "little")
        assert assemble(disassemble(word)) == word


def test_branches_are_relative():
    """Check Melvin's convention: branch text is relative to the branch, in both directions."""
    code = assemble(["b #8", "cbz x0, #-4"])
    assert disassemble(code) == ["b #8", "cbz x0, #0xfffffffffffffffc"]  # capstone's text for -4
    assert assemble(disassemble(code)) == code
    rows = listing(code, address=0x1000)
    assert rows[0][0] == 0x1000 and rows[0][2] == "b #0x1008"


def test_disassemble_rejects_partial_word():
    """Check that trailing bytes that are not a whole instruction raise."""
    with pytest.raises(ValueError, match="trailing"):
        disassemble(bytes(6))
