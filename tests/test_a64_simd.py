"""The SIMD bit-count idiom (``core/executors/interp/simd.py``): interpreter == Unicorn, bit for bit.

gcc -O2's popcount and parity (``fmov d0, x0; cnt v0.8b, v0.8b; addv b0, v0.8b; fmov x0, d0``)
and its relatives (``uaddlv``, ``umov``, the S/W and 16b forms) mixed with integer words, on
random inputs and random entry vector registers (the batch's, per seed); their near neighbours
in the encoding space go to Unicorn or, where the decoder takes them, agree too."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble
from core.executors import open_executor
from core.executors.interp import decoder, simd
from core.executors.interp.decoder import word_facts
from core.executors.unicorn.triage import triage
from core.outcome import Outcome
from test_a64_interp import CLASSES, EDGE, _assert_same, _both, _class_words, _inputs, _reg, _supported

MASK = (1 << 64) - 1
IDIOMS = {   # gcc 12 -O2 for __builtin_popcount{l,}, __builtin_parity{l,}, and the uaddlv/umov forms
    "popcount": ["fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0"],
    "popcount32": ["fmov s0, w0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov w0, s0"],
    "parity": ["fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0", "and w0, w0, #1"],
    "uaddlv": ["fmov d0, x0", "cnt v0.8b, v0.8b", "uaddlv h0, v0.8b", "umov w0, v0.h[0]"],
    "umov": ["fmov d1, x0", "cnt v1.8b, v1.8b", "addv b1, v1.8b", "umov w0, v1.b[0]"],
    "popcount128": ["fmov d2, x0", "cnt v2.16b, v2.16b", "uaddlv h2, v2.16b", "fmov w0, s2"],
}
EXPECTED = {"popcount": lambda x: bin(x).count("1"), "popcount32": lambda x: bin(x & 0xFFFFFFFF).count("1"),
            "parity": lambda x: bin(x).count("1") & 1, "uaddlv": lambda x: bin(x).count("1"),
            "umov": lambda x: bin(x).count("1"), "popcount128": lambda x: bin(x).count("1")}


def _vreg(rng) -> int:
    return int(rng.integers(0, 4)) if rng.random() < 0.7 else int(rng.integers(0, 32))


def simd_word(rng: np.random.Generator) -> int:
    """One word of the idiom's forms, random registers and sizes; sometimes an unallocated umov."""
    kind = int(rng.integers(0, 6))
    q = int(rng.integers(0, 2))
    if kind == 0:                                              # fmov d/s <- x/w
        return (0x9E670000 if rng.random() < 0.6 else 0x1E270000) | _reg(rng) << 5 | _vreg(rng)
    if kind == 1:                                              # fmov x/w <- d/s
        return (0x9E660000 if rng.random() < 0.6 else 0x1E260000) | _vreg(rng) << 5 | _reg(rng)
    if kind in (2, 3, 4):                                      # cnt, addv, uaddlv
        return (0x0E205800, 0x0E31B800, 0x2E303800)[kind - 2] | q << 30 | _vreg(rng) << 5 | _vreg(rng)
    size = int(rng.integers(0, 4))                             # umov
    index = int(rng.integers(0, 16 >> size))
    imm5 = (index << (size + 1) | 1 << size) & 31
    if size == 3:
        q = 1
    elif rng.random() < 0.9:
        q = 0
    if rng.random() < 0.05:
        imm5 = int(rng.integers(0, 32))
    return 0x0E003C00 | q << 30 | imm5 << 16 | _vreg(rng) << 5 | _reg(rng)


def _neighbour(rng, word: int) -> int:
    """``word`` with one or two bits flipped outside the register fields (size, Q, opcode...)."""
    for _ in range(int(rng.integers(1, 3))):
        word ^= 1 << int(rng.integers(10, 32))
    return word


def simd_genome(rng: np.random.Generator, neighbours: float = 0.0) -> bytes:
    """SIMD words among integer ones, then a vector register and a general one folded into x0."""
    words = []
    if rng.random() < 0.5:
        words += [0x9E670000 | _reg(rng) << 5, 0x0E205800, 0x0E31B800 if rng.random() < 0.5 else 0x2E303800]
    for _ in range(int(rng.integers(1, 6))):
        w = simd_word(rng)
        words.append(_neighbour(rng, w) if rng.random() < neighbours else w)
        if rng.random() < 0.4:
            words.append(_class_words(rng, CLASSES[int(rng.integers(0, 14))], 3))
    words.insert(int(rng.integers(0, len(words) + 1)), _class_words(rng, CLASSES[int(rng.integers(0, 14))], 2))
    if rng.random() < 0.8:      # read a vector register back: fmov x1, d<k> (or umov x1, v<k>.d[1])
        words.append((0x9E660001 if rng.random() < 0.7 else 0x4E183C01) | _vreg(rng) << 5)
        words.append(0xCA010000 if rng.random() < 0.5 else 0x8B010400 | _reg(rng) << 5)   # eor/add x0, .., x1
    return b"".join(w.to_bytes(4, "little") for w in words)


@pytest.fixture(scope="module")
def ex():
    with open_executor("arm64", backend="emulated") as executor:
        yield executor


def test_idioms_are_interpreted_and_count_bits(ex):
    """Check that gcc's bit-count idioms are interpreted and count bits (the expected values
    from Python, independently of Unicorn) on corner and random inputs, as Unicorn does."""
    codes = [assemble(lines) for lines in IDIOMS.values()]
    assert _supported(codes).all()
    inputs = np.concatenate([np.array([[e, 0] for e in EDGE], dtype=np.uint64), _inputs(40, 48)[:, :2]])
    fast, ref = _both(ex, codes, inputs, seed=40)
    _assert_same(codes, fast, ref)
    for i, name in enumerate(IDIOMS):
        assert (fast.outcomes[i] == Outcome.OK).all()
        assert fast.outputs[i].tolist() == [EXPECTED[name](int(x)) for x in inputs[:, 0]], name


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_random_simd_genomes_agree(ex, seed):
    """Check 1,500 random genomes of the idiom's words mixed with integer words per seed (each
    seed: other inputs and other entry vector registers): the interpreter claims most of them
    and agrees with Unicorn on every case."""
    rng = np.random.default_rng(seed)
    codes = [simd_genome(rng) for _ in range(1500)]
    supported = _supported(codes)
    assert supported.mean() >= 0.7, f"only {supported.mean():.0%} interpreted"
    fast, ref = _both(ex, codes, _inputs(seed, 16), seed=seed)
    _assert_same(codes, fast, ref)
    assert len({int(v) for v in fast.outputs[supported, 0]}) > 500     # the outputs vary: a real test


def test_neighbouring_encodings_agree(ex):
    """Check the idiom's words with bits flipped (other sizes, Q, opcodes, the rest of the SIMD&FP
    space): what the decoder takes agrees with Unicorn, the rest is left to it."""
    rng = np.random.default_rng(44)
    codes = [simd_genome(rng, neighbours=0.7) for _ in range(2000)]
    codes += [_neighbour(rng, simd_word(rng)).to_bytes(4, "little") for _ in range(2000)]
    fast, ref = _both(ex, codes, _inputs(45, 8), seed=45)
    _assert_same(codes, fast, ref)
    supported = _supported(codes)
    assert 0.1 < supported.mean() < 0.9


def _decoded_simd(words) -> np.ndarray:
    words = np.asarray(words, dtype=np.uint32)
    ctl, _, ok = decoder.decode(words, np.arange(len(words) + 1, dtype=np.int64), 256, 2048)
    return ok & (ctl[:, decoder.F_KIND] == decoder.K_SIMD)


def test_only_the_idiom_forms_decode():
    """Check every word of the SIMD&FP space the decoder takes against the listed forms: the
    fmov/cnt/addv/uaddlv encodings with any registers, and umov with an allocated size and Q."""
    rng = np.random.default_rng(46)
    words = rng.integers(0, 2**32, 400000, dtype=np.uint64).astype(np.uint32)
    words = words[(words >> 25) & 7 == 7]
    words = np.concatenate([words, [_neighbour(rng, simd_word(rng)) for _ in range(20000)],
                            [simd_word(rng) for _ in range(5000)]]).astype(np.uint32)
    taken = _decoded_simd(words)
    fixed = {0x9E670000, 0x9E660000, 0x1E270000, 0x1E260000, 0x0E205800, 0x4E205800, 0x0E31B800, 0x4E31B800,
             0x2E303800, 0x6E303800}
    for w in words[taken].tolist():
        if w & 0xFFFFFC00 in fixed:
            continue
        assert w & 0xBFE0FC00 == 0x0E003C00, hex(w)
        imm5, q = (w >> 16) & 31, (w >> 30) & 1
        assert imm5 & 15 and (imm5 & 15 == 8) == (q == 1), hex(w)
    assert taken.sum() > 4000
    # every decoded word is left to capstone by triage (the fast lane has no vector registers)
    assert not any(word_facts(int(w))[0] for w in words[taken][:3000])


@pytest.mark.parametrize("lines", list(IDIOMS.values()) + [
    ["umov w3, v0.b[3]"], ["umov w0, v1.h[0]"], ["mov b10, v27.b[8]"], ["fmov x2, d7"], ["fmov s9, w1"]])
def test_idiom_words_take_the_slow_lane(lines):
    """Check that triage sends the idiom to Unicorn's slow lane, which loads the vector registers
    from the batch (the fast lane keeps its loop state in d24-d31), even where capstone lists no
    vector register (``umov w0, v1.h[0]``)."""
    t = triage(assemble(lines), "arm64", 256)
    assert not t.fast and "state the fast lane does not" in t.reason, t.reason


def test_simd_rows_write_what_they_say():
    """Check the rows: vector registers as numbers, general destinations as register-file
    indices (XZR absorbs; x30 an ordinary register)."""
    for line, op, rd, rn in (("fmov d3, xzr", simd.S_TO_V, 3, 31), ("fmov xzr, d3", simd.S_FROM_V, 32, 3),
                             ("umov w5, v6.h[7]", simd.S_UMOV, 5, 6), ("cnt v1.16b, v2.16b", simd.S_CNT, 1, 2),
                             ("fmov d0, x30", simd.S_TO_V, 0, 30), ("umov w30, v0.b[0]", simd.S_UMOV, 30, 0)):
        w = np.frombuffer(assemble([line]), dtype=np.uint32)
        ctl, _, ok = decoder.decode(w, np.array([0, 1]), 256, 2048)
        assert ok[0] and ctl[0, decoder.F_KIND] == decoder.K_SIMD, line
        assert (ctl[0, decoder.F_OP], ctl[0, decoder.F_RD], ctl[0, decoder.F_RN]) == (op, rd, rn), line


def test_each_case_starts_from_the_entry_vector_registers(ex):
    """Check that a vector register a genome writes is reset before its next case (batch and
    per-case states): code that reads v0, v3, v5 before writing them returns their entry values."""
    from core.executors.batch_state import CaseStates
    codes = [assemble(lines) for lines in (
        ["fmov x0, d0", "fmov d0, x1"],
        ["umov w2, v3.b[1]", "cnt v3.8b, v1.8b", "add x0, x0, x2"],
        ["ldr q5, [sp]", "fmov x9, d5", "eor x0, x0, x9"],
        ["fmov x0, d5", "str x1, [sp]", "ldr q5, [sp]", "addv b5, v5.8b", "umov w1, v5.b[0]", "add x0, x0, x1"])]
    assert _supported(codes).all()
    inputs = _inputs(61, 12)
    fast, ref = _both(ex, codes, inputs, seed=61)
    _assert_same(codes, fast, ref)
    assert len(set(fast.outputs[0].tolist())) == 1            # d0's entry value on every case
    _assert_same(codes, *_both(ex, codes, inputs, seed=None, states=CaseStates.from_seed(62, 12, ex.options.scratch)))
