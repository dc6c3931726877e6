"""Differential tests of the symbolic semantics against the interpreter tier and Unicorn.

The z3 term of a code, evaluated on a case's concrete machine state (its arguments, the batch's
registers and scratch, the entry flags every executor sets), must equal what the interpreter and
Unicorn return, bit for bit, and crash exactly where they do."""
from __future__ import annotations

import random

import numpy as np
import pytest
import z3

from core.asm import assemble
from core.executors import open_executor
from core.executors.batch_state import BatchState
from core.outcome import Outcome
from core.symbolic import Unsupported, translate
from evolve.genes import alphabet_for
from test_a64_interp import CLASSES, _both, _class_genome, _class_words, _inputs, _ret_genome
from test_a64_simd import IDIOMS, simd_genome

SCRATCH = 256


@pytest.fixture(scope="module")
def ex():
    with open_executor("arm64", backend="emulated") as executor:
        yield executor


def _check(ex, codes, inputs, seed, min_share):
    """Translate ``codes``; every translated one must agree with both tiers on every case."""
    fast, ref = _both(ex, codes, inputs, seed)
    state = BatchState.from_seed(seed, SCRATCH)
    regs = state.regs.copy()
    regs[30] = ex.unicorn.ret_addr          # x30 at entry: the caller's return address
    translated = 0
    for i, code in enumerate(codes):
        try:
            prog = translate(code, scratch=SCRATCH)
        except Unsupported:
            continue
        translated += 1
        for case, args in enumerate(inputs.tolist()):
            got = prog.evaluate(args, regs, state.scratch, simd=state.simd)
            for name, res in (("interpreter", fast), ("Unicorn", ref)):
                outcome = Outcome(int(res.outcomes[i, case]))
                want = int(res.outputs[i, case]) if outcome == Outcome.OK else None
                assert got == want, (f"{code.hex()} case {case} {args}: symbolic {got!r}, "
                                     f"{name} {want!r} ({outcome.name})")
    share = translated / len(codes)
    assert share >= min_share, f"only {share:.0%} of the codes have a symbolic form"


def _alphabet_genomes(rng: random.Random, n: int) -> list[bytes]:
    codes = []
    for _ in range(n):
        alphabet = alphabet_for("arm64", n_regs=rng.randint(2, 8))
        weights = [0.0 if op.kind == "raw" else op.weight for op in alphabet.ops]
        codes.append(alphabet.encode([alphabet.random_gene(rng, weights) for _ in range(rng.randint(1, 16))]))
    return codes


def test_alphabet_genomes_agree(ex):
    """Check that random genomes of the gene alphabet mean the same in z3, the interpreter and Unicorn."""
    codes = _alphabet_genomes(random.Random(4), 300)
    _check(ex, codes, _inputs(21, 4), seed=21, min_share=0.9)


def test_encoding_classes_agree(ex):
    """Check every encoding class the interpreter decodes (W forms, flags, bitfields, branches, ...)."""
    rng = np.random.default_rng(13)
    codes = [_class_genome(rng, name) for name in CLASSES for _ in range(40)]
    _check(ex, codes, _inputs(22, 3), seed=22, min_share=0.5)


def test_single_random_words_agree(ex):
    """Check single random words: undefined encodings crash symbolically too."""
    rng = np.random.default_rng(14)
    codes = [w.to_bytes(4, "little") for w in rng.integers(0, 2**32, 1500, dtype=np.uint64).tolist()]
    _check(ex, codes, _inputs(23, 2), seed=23, min_share=0.2)


def test_returns_agree(ex):
    """Check code with ``ret`` at the end, in the middle and behind a branch (compiled functions)."""
    rng = np.random.default_rng(15)
    _check(ex, [_ret_genome(rng) for _ in range(300)], _inputs(24, 3), seed=24, min_share=0.8)


def _scratch_word(rng: np.random.Generator) -> int:
    """A general-register load or store through SP inside the scratch area: every size, sign
    and width (unsigned-offset, unscaled and signed-offset pair forms)."""
    rt, rt2 = int(rng.integers(0, 5)), int(rng.integers(0, 5))
    form = int(rng.integers(0, 3))
    if form == 2:                                             # ldp/stp/ldpsw, signed offset
        opc, load = int(rng.integers(0, 3)), int(rng.integers(0, 2))
        if opc == 1:
            load = 1
        if load and rt == rt2:
            rt2 = (rt + 1) % 5
        scale = 3 if opc == 2 else 2
        off = int(rng.integers(0, 200 >> scale))
        return opc << 30 | 0x29000000 | load << 22 | off << 15 | rt2 << 10 | 31 << 5 | rt
    size, opc = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    if size == 3 and opc >= 2 or size == 2 and opc == 3:
        opc = 1                                               # (prfm and unallocated forms)
    if form == 0:
        return size << 30 | 0x39000000 | opc << 22 | int(rng.integers(0, 240 >> size)) << 10 | 31 << 5 | rt
    return size << 30 | 0x38000000 | opc << 22 | int(rng.integers(0, 240)) << 12 | 31 << 5 | rt


def test_scratch_memory_agrees(ex):
    """Check loads and stores of scratch bytes, halves, words, doublewords and pairs, signed and
    unsigned, interleaved with data processing and read back into x0."""
    rng = np.random.default_rng(16)
    codes = []
    for _ in range(400):
        words = []
        for _ in range(int(rng.integers(1, 5))):
            words.append(_scratch_word(rng))
            if rng.random() < 0.5:
                words.append(_class_words(rng, CLASSES[int(rng.integers(0, 14))], 3))
        words.append(0xF94003E0 | int(rng.integers(0, 30)) << 10 | int(rng.integers(1, 5)))   # ldr xK, [sp, #8k]
        words.append(0xCA000000 | (words[-1] & 31) << 16)                                    # eor x0, x0, xK
        codes.append(b"".join(w.to_bytes(4, "little") for w in words))
    _check(ex, codes, _inputs(25, 3), seed=25, min_share=0.85)


def test_simd_bit_count_genomes_agree(ex):
    """Check the SIMD bit-count idiom's words mixed with integer words (vector registers as the
    batch sets them: free 128-bit variables, read back into x0) and gcc's idioms themselves."""
    rng = np.random.default_rng(17)
    codes = [simd_genome(rng) for _ in range(600)] + [assemble(lines) for lines in IDIOMS.values()]
    _check(ex, codes, _inputs(26, 4), seed=26, min_share=0.7)
    _check(ex, codes[-len(IDIOMS):], _inputs(27, 64), seed=27, min_share=1.0)


def test_known_program_is_proven_equal():
    """Check that ``sub x1, x0, #1; and x0, x0, x1`` is x & (x - 1) for every x, with no crash."""
    prog = translate(assemble(["sub x1, x0, #1", "and x0, x0, x1"]))
    x = prog.registers[0]
    s = z3.Solver()
    s.add(z3.Or(prog.result != x & (x - 1), prog.crashes))
    assert s.check() == z3.unsat
    s = z3.Solver()
    s.add(prog.result != x & (x - 2))                # and a wrong specification is refuted
    assert s.check() == z3.sat


def test_forward_branches_merge():
    """Check that a forward branch becomes an if-then-else over the path condition."""
    prog = translate(assemble(["cbz x0, #8", "mov x0, #5", "add x0, x0, #1"]))
    regs = np.zeros(32, np.uint64)
    assert prog.evaluate([0], regs, bytes(SCRATCH)) == 1
    assert prog.evaluate([9], regs, bytes(SCRATCH)) == 6


def test_division_by_zero_is_zero():
    """Check AArch64's division by zero (0, no trap) for udiv and sdiv, 64 and 32 bits."""
    for line in ("udiv x0, x0, x1", "sdiv x0, x0, x1", "udiv w0, w0, w1", "sdiv w0, w0, w1"):
        prog = translate(assemble([line]))
        s = z3.Solver()
        s.add(prog.registers[1] == 0, prog.result != 0)
        assert s.check() == z3.unsat, line


@pytest.mark.parametrize("lines, reason", [
    (["sub x0, x0, #1", "cbnz x0, #-4"], "backward"),
    (["adr x0, #0"], "adr"),
    (["ldr x0, [x1]"], "scratch"),                # a register base: an address the proof cannot know
    (["ldr x0, [sp, #-8]"], "scratch"),           # below the scratch area: the stack
])
def test_outside_the_subset_is_refused(lines, reason):
    """Check that loops, PC-relative values and memory other than scratch raise Unsupported."""
    with pytest.raises(Unsupported, match=reason):
        translate(assemble(lines))
