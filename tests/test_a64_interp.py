"""Differential tests of the arm64 interpreter tier against Unicorn (interpreter off).

The interpreter must give the same outputs and outcomes as Unicorn's lanes, bit for bit, for
every genome it claims; and it must keep claiming most genomes (the supported fractions are
asserted, so coverage cannot drop silently)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.asm import assemble
from core.executors import memory_map as MM
from core.executors import open_executor
from core.executors.interp import decoder, execute
from core.outcome import Outcome
from evolve.genes import alphabet_for

MASK = (1 << 64) - 1
EDGE = (0, 1, 2, 3, 31, 32, 63, 64, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63,
        MASK, MASK - 1, 0xFFFFFFFF80000000, 0x5555555555555555)


def _inputs(seed: int, n_cases: int = 64) -> np.ndarray:
    """Random inputs with corner values mixed into every column."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 2**64, (n_cases, 4), dtype=np.uint64)
    small = rng.integers(0, 70, (n_cases, 4), dtype=np.uint64)
    inputs = np.where(rng.random((n_cases, 4)) < 0.3, small, inputs)
    edge = np.array(EDGE, dtype=np.uint64)
    pick = rng.random((n_cases, 4)) < 0.35
    return np.where(pick, edge[rng.integers(0, len(edge), (n_cases, 4))], inputs)


@pytest.fixture(scope="module")
def ex():
    with open_executor("arm64", backend="emulated") as executor:
        yield executor


def _both(ex, codes, inputs, seed=0, states=None):
    """(interpreter tier on, off) results of the same batch (``states``: per-case entry states)."""
    ex.interpreter = True
    fast = ex.run(codes, inputs, seed=seed, states=states)
    ex.interpreter = False
    try:
        ref = ex.run(codes, inputs, seed=seed, states=states)
    finally:
        ex.interpreter = True
    return fast, ref


def _supported(codes, scratch=256, budget=2048) -> np.ndarray:
    words, offsets = execute.flatten(codes)
    return decoder.decode(words, offsets, scratch, budget)[2]


def _assert_same(codes, fast, ref, only=None):
    """``only``: the genomes to compare (deferred ones may read memory whose contents depend
    on what ran before, in Unicorn both times)."""
    differ = ((fast.outputs != ref.outputs) | (fast.outcomes != ref.outcomes)).any(axis=1)
    bad = np.flatnonzero(differ if only is None else differ & only)
    if bad.size:
        i = int(bad[0])
        case = int(np.flatnonzero((fast.outputs[i] != ref.outputs[i]) | (fast.outcomes[i] != ref.outcomes[i]))[0])
        raise AssertionError(f"{bad.size} genomes differ; first: {codes[i].hex()} case {case}: interpreter "
                             f"{fast.outputs[i, case]:#x}/{Outcome(fast.outcomes[i, case]).name}, Unicorn "
                             f"{ref.outputs[i, case]:#x}/{Outcome(ref.outcomes[i, case]).name}")


def _alphabet_genomes(rng: random.Random, n: int, raw: bool) -> list[bytes]:
    codes = []
    for _ in range(n):
        alphabet = alphabet_for("arm64", n_regs=rng.randint(2, 8))
        weights = [0.0 if (op.kind == "raw" and not raw) else op.weight for op in alphabet.ops]
        codes.append(alphabet.encode([alphabet.random_gene(rng, weights) for _ in range(rng.randint(1, 16))]))
    return codes


def test_alphabet_genomes_agree_and_are_supported(ex):
    rng = random.Random(1)
    codes = _alphabet_genomes(rng, 3000, raw=False)
    supported = _supported(codes)
    assert supported.mean() >= 0.95, f"only {supported.mean():.1%} of alphabet genomes are interpreted"
    for seed in (0, 7):
        fast, ref = _both(ex, codes, _inputs(seed), seed=seed)
        _assert_same(codes, fast, ref)


def test_alphabet_genomes_with_raw_words_agree(ex):
    rng = random.Random(2)
    codes = _alphabet_genomes(rng, 1500, raw=True)
    supported = _supported(codes)
    assert supported.mean() >= 0.6, f"only {supported.mean():.1%} of genomes with raw words are interpreted"
    fast, ref = _both(ex, codes, _inputs(3), seed=3)
    _assert_same(codes, fast, ref)


# ------------------------------------------------------------------- encoding classes
def _reg(rng: np.random.Generator) -> int:
    """Mostly registers the output depends on; sometimes any number (x30, XZR/SP included)."""
    return int(rng.integers(0, 4)) if rng.random() < 0.6 else int(rng.integers(0, 32))


def _ops(rng, rd=True, rn=True, rm=True) -> int:
    return (_reg(rng) if rd else 0) | (_reg(rng) << 5 if rn else 0) | (_reg(rng) << 16 if rm else 0)


def _pick(rng, values) -> int:
    return int(values[int(rng.integers(0, len(values)))])


def _bits(rng, n: int) -> int:
    return int(rng.integers(0, 1 << n))


def _class_words(rng: np.random.Generator, name: str, room: int) -> int:
    """A word of encoding class ``name`` with random operands (mostly allocated encodings);
    ``room``: words after it in the genome (branch distances stay near the end)."""
    sf = _bits(rng, 1)
    small = rng.random() < 0.8   # mostly valid forms; sometimes anything in the class
    if name == "addsub_imm":
        return sf << 31 | _bits(rng, 2) << 29 | 0x11000000 | _bits(rng, 1) << 22 | _bits(rng, 12) << 10 | _ops(rng, rm=False)
    if name == "logic_imm":
        n = 0 if not sf else _bits(rng, 1)
        return sf << 31 | _bits(rng, 2) << 29 | 0x12000000 | n << 22 | _bits(rng, 12) << 10 | _ops(rng, rm=False)
    if name == "movw":
        opc = _pick(rng, (0, 2, 3)) if small else _bits(rng, 2)
        hw = _bits(rng, 2 if sf or not small else 1)
        return sf << 31 | opc << 29 | 0x12800000 | hw << 21 | _bits(rng, 16) << 5 | _reg(rng)
    if name == "bitfield":
        opc = _pick(rng, (0, 1, 2)) if small else _bits(rng, 2)
        width = 6 if sf else 5
        n = sf if small else _bits(rng, 1)
        return sf << 31 | opc << 29 | 0x13000000 | n << 22 | _bits(rng, width) << 16 | _bits(rng, width) << 10 \
            | _ops(rng, rm=False)
    if name == "extr":
        return sf << 31 | 0x13800000 | sf << 22 | _bits(rng, 5 + sf) << 10 | _ops(rng)
    if name == "logic_reg":
        return sf << 31 | _bits(rng, 2) << 29 | 0x0A000000 | _bits(rng, 3) << 21 | _bits(rng, 5 + sf) << 10 | _ops(rng)
    if name == "addsub_reg":
        shift = _bits(rng, 2) if not small else _pick(rng, (0, 1, 2))
        return sf << 31 | _bits(rng, 2) << 29 | 0x0B000000 | shift << 22 | _bits(rng, 5 + sf) << 10 | _ops(rng)
    if name == "addsub_ext":
        return sf << 31 | _bits(rng, 2) << 29 | 0x0B200000 | _bits(rng, 3) << 13 | int(rng.integers(0, 5)) << 10 \
            | _ops(rng)
    if name == "adc":
        return sf << 31 | _bits(rng, 2) << 29 | 0x1A000000 | _ops(rng)
    if name == "ccmp":
        return sf << 31 | _bits(rng, 1) << 30 | 0x3A400000 | _bits(rng, 4) << 12 | _bits(rng, 1) << 11 \
            | _reg(rng) << 16 | _reg(rng) << 5 | _bits(rng, 4)
    if name == "csel":
        return sf << 31 | _bits(rng, 1) << 30 | 0x1A800000 | _bits(rng, 4) << 12 | _bits(rng, 1) << 10 | _ops(rng)
    if name == "dp2":
        return sf << 31 | 0x1AC00000 | _pick(rng, (2, 3, 8, 9, 10, 11)) << 10 | _ops(rng)
    if name == "dp1":
        return sf << 31 | 0x5AC00000 | int(rng.integers(0, 6)) << 10 | _ops(rng, rm=False)
    if name == "dp3":
        op = _pick(rng, (0, 1, 2, 3, 4, 10, 11, 12))
        ra = 31 if op in (4, 12) and small else _reg(rng)
        sf = 1 if op > 1 and small else sf
        return sf << 31 | 0x1B000000 | (op >> 1) << 21 | (op & 1) << 15 | ra << 10 | _ops(rng)
    off = int(rng.integers(1, room + 2)) if small else int(rng.integers(-2, room + 3))
    if name == "b":
        return 0x14000000 | (off & 0x3FFFFFF)
    if name == "bcond":
        return 0x54000000 | (off & 0x7FFFF) << 5 | _bits(rng, 4)
    if name == "cbz":
        return sf << 31 | 0x34000000 | _bits(rng, 1) << 24 | (off & 0x7FFFF) << 5 | _reg(rng)
    if name == "tbz":
        return _bits(rng, 1) << 31 | 0x36000000 | _bits(rng, 1) << 24 | _bits(rng, 5) << 19 | (off & 0x3FFF) << 5 \
            | _reg(rng)
    if name in ("ldr", "str"):
        return (0xF94003E0 if name == "ldr" else 0xF90003E0) | int(rng.integers(0, 34)) << 10 | _reg(rng)
    if name == "reserved":
        return _bits(rng, 32) & ~(0xC << 25) if rng.random() < 0.9 else _bits(rng, 16)
    raise ValueError(name)


CLASSES = ("addsub_imm", "logic_imm", "movw", "bitfield", "extr", "logic_reg", "addsub_reg", "addsub_ext",
           "adc", "ccmp", "csel", "dp2", "dp1", "dp3", "b", "bcond", "cbz", "tbz", "ldr", "str", "reserved")
# what each class must keep claiming (of its generated genomes; the rest are reserved forms,
# SP operands, out-of-range branches)
MIN_SUPPORTED = {"logic_imm": 0.6, "bitfield": 0.6, "dp3": 0.6, "b": 0.55, "bcond": 0.55, "cbz": 0.55, "tbz": 0.55}

# Words that expose flags and a register through x0: cset x1, <cond>; add x0, x1, x0, lsl #1
_FLAG_TAIL = [w for cond in (0, 2, 4, 6, 8, 10, 12) for w in (0x9A9F07E1 | (cond ^ 1) << 12, 0x8B000420)]


def _class_genome(rng: np.random.Generator, name: str) -> bytes:
    """One or two class words among a few others, then (often) words folding flags and the
    destination register into x0, so that a wrong flag or register shows in the output."""
    words = []
    for _ in range(int(rng.integers(1, 3))):
        words.append(_class_words(rng, name, 3))
        if rng.random() < 0.5:
            words.append(_class_words(rng, CLASSES[int(rng.integers(0, 14))], 3))
    if rng.random() < 0.7:
        words.append(0xCA000000 | (words[0] & 31) << 16)   # eor x0, x0, x<rd of the first word>
        words += _FLAG_TAIL
    return b"".join(w.to_bytes(4, "little") for w in words)


def _by_class(rng, classes, per_class, make, minimum) -> list[bytes]:
    """``per_class`` genomes ``make(rng, name)`` per class, after checking that the interpreter
    takes at least ``minimum(name)`` of each class (a coverage guard)."""
    codes, names = [], []
    for name in classes:
        for _ in range(per_class):
            codes.append(make(rng, name))
            names.append(name)
    supported = _supported(codes)
    names = np.array(names)
    for name in classes:
        share = supported[names == name].mean()
        assert share >= minimum(name), f"{name}: only {share:.0%} interpreted"
    return codes


def test_encoding_classes_agree(ex):
    codes = _by_class(np.random.default_rng(11), CLASSES, 300, _class_genome,
                      lambda name: MIN_SUPPORTED.get(name, 0.7))
    fast, ref = _both(ex, codes, _inputs(5, 32), seed=5)
    _assert_same(codes, fast, ref)


def test_single_random_words_agree(ex):
    rng = np.random.default_rng(12)
    codes = [w.to_bytes(4, "little") for w in rng.integers(0, 2**32, 4000, dtype=np.uint64).tolist()]
    assert _supported(codes).mean() >= 0.25
    fast, ref = _both(ex, codes, _inputs(6, 8), seed=6)
    _assert_same(codes, fast, ref)


def test_reserved_words_are_sigill(ex):
    """Unicorn (a Cortex-A72) gives SIGILL for every word with bits[28:25] = 00xx, udf included."""
    rng = np.random.default_rng(13)
    words = rng.integers(0, 2**32, 5000, dtype=np.uint64) & ~np.uint64(0xC << 25)
    words[:500] &= np.uint64(0xFFFF)
    codes = [b"\x20\x00\x00\x8b" + int(w).to_bytes(4, "little") for w in words.tolist()]  # add x0, x1, x0 first
    assert _supported(codes).all()
    fast, ref = _both(ex, codes, _inputs(7, 4), seed=7)
    _assert_same(codes, fast, ref)
    assert (fast.outcomes == Outcome.SIGILL).all() and (fast.outputs == 0).all()


def test_unallocated_data_processing_words_are_sigill(ex):
    """Words of the data-processing groups the decoder calls unallocated (imm6 >= 32 on W
    registers, N != sf, reserved bitmasks, opc = 01 move wide, ...) are SIGILL in Unicorn too."""
    rng = np.random.default_rng(14)
    words = rng.integers(0, 2**32, 40000, dtype=np.uint64).astype(np.uint32)
    group = (words >> 25) & 15
    words = words[(group == 5) | (group == 13) | (group == 8) | (group == 9)]
    ctl, _, supported = decoder.decode(words, np.arange(len(words) + 1, dtype=np.int64), 256, 2048)
    undefined = words[supported & (ctl[:, decoder.F_KIND] == decoder.K_SIGILL)][:3000]
    assert len(undefined) >= 2000
    codes = [int(w).to_bytes(4, "little") for w in undefined]
    fast, ref = _both(ex, codes, _inputs(15, 2), seed=15)
    _assert_same(codes, fast, ref)
    assert (ref.outcomes == Outcome.SIGILL).all()


# ------------------------------------------------------------------- edge cases
EDGE_CASES = [
    ["udiv x0, x0, x1"], ["sdiv x0, x0, x1"], ["udiv w0, w0, w1"], ["sdiv w0, w0, w1"],
    ["sdiv x0, x0, x1", "sdiv w2, w1, w0", "add x0, x0, x2"],
    ["adds w0, w0, w1", "cset x1, vs", "cset x2, hs", "add x0, x0, x1, lsl #40", "add x0, x0, x2, lsl #41"],
    ["subs w0, w0, w1", "cset x1, vs", "cset x2, hs", "cset x3, mi", "add x0, x0, x1, lsl #40",
     "add x0, x0, x2, lsl #41", "add x0, x0, x3, lsl #42"],
    ["subs x0, x0, x1", "cset x1, vs", "cset x2, hs", "cset x3, lt", "add x0, x0, x1, lsl #60",
     "add x0, x0, x2, lsl #61", "add x0, x0, x3, lsl #62"],
    ["adcs x0, x0, x1", "adc x0, x0, x1"], ["sbcs w0, w0, w1", "sbc x0, x0, x1"],
    ["negs w0, w1", "cset x0, vs"], ["cmn w0, w1", "cset x0, eq"],
    ["ands w0, w0, w1", "cset x1, mi", "add x0, x0, x1, lsl #33"],
    ["lsl x0, x0, x1"], ["lsr x0, x0, x1"], ["asr x0, x0, x1"], ["ror x0, x0, x1"],
    ["lsl w0, w0, w1"], ["lsr w0, w0, w1"], ["asr w0, w0, w1"], ["ror w0, w0, w1"],
    ["lsl w0, w0, #31"], ["asr w0, w0, #31"], ["ror w0, w0, #1"], ["asr x0, x0, #63"], ["ror x0, x0, #63"],
    ["sxtw x0, w0"], ["sxtb w0, w0"], ["ubfx x0, x0, #60, #4"], ["sbfx w0, w0, #3, #29"], ["bfi x0, x1, #61, #3"],
    ["bfxil w0, w1, #30, #2"], ["extr w0, w0, w1, #31"], ["extr x0, x0, x1, #1"],
    ["rbit w0, w0"], ["rev16 w0, w0"], ["rev w0, w0"], ["rev32 x0, x0"], ["rev16 x0, x0"], ["clz w0, w0"],
    ["cls w0, w0"], ["cls x0, x0"],
    ["smulh x0, x0, x1"], ["umulh x0, x0, x1"], ["smaddl x0, w0, w1, x2"], ["umsubl x0, w0, w1, x2"],
    ["madd w0, w0, w1, w2"], ["msub w0, w0, w1, w2"],
    ["movn w0, #5, lsl #16"], ["movk w0, #0xffff, lsl #16"], ["movk x0, #1, lsl #48"], ["movn x0, #0"],
    ["and w0, w0, #0x80000001"], ["orr x0, xzr, #0x5555555555555555"], ["ands x0, x0, #1", "cset x0, eq"],
    ["cmp x0, x1", "ccmp x0, x2, #0xf, hi", "cset x0, lt"], ["ccmn w0, #31, #2, eq", "cset x0, hs"],
    ["cmp w0, w1", "csneg w0, w0, w1, ge"], ["cmp x0, #0", "csinv x0, x1, x2, ne"],
    ["cmp x0, x1", "b.hs #8", "mov x0, x1"], ["cbz x0, #8", "mov x0, #7"], ["cbnz w0, #8", "mov x0, #7"],
    ["tbz x0, #63, #8", "mov x0, #7"], ["tbnz w0, #31, #8", "mov x0, #7"], ["b #8", "mov x0, #7"],
    ["cmp x0, x1", "b.lo #4"], ["b.al #8", "mov x0, #7"], ["tbz x0, #0, #12", "udiv x0, x0, x1", "mov x0, #3"],
    ["cbnz x1, #8", ".word 0x00000000", "add x0, x0, #1"],
    ["str x1, [sp, #248]", "ldr x0, [sp, #248]"], ["ldr x0, [sp]"], ["ldr x0, [sp, #8]", "str x1, [sp, #8]"],
    ["str xzr, [sp, #16]", "ldr x0, [sp, #16]"], ["ldr xzr, [sp]"],
    ["add x0, x0, x29"], ["mov x0, x18"], ["mov x0, x16"], ["add x0, x17, x9"], ["mov x29, x1", "mov x0, x29"],
    ["add x0, x0, w1, sxtw #2"], ["sub x0, x0, w1, uxtb"], ["adds w0, w0, w1, sxth #4", "cset x1, vs",
                                                            "eor x0, x0, x1, lsl #32"],
    ["mov w0, w0"], ["mov x0, xzr"], ["nop"], [],
]


def test_edge_cases_agree(ex, edge_inputs):
    codes = [assemble(lines, "arm64") if lines else b"" for lines in EDGE_CASES]
    supported = _supported(codes)
    assert supported.all(), [EDGE_CASES[i] for i in np.flatnonzero(~supported)]
    inputs = np.concatenate([np.hstack([edge_inputs, edge_inputs[::-1]]), _inputs(8, 64)])
    fast, ref = _both(ex, codes, inputs, seed=8)
    _assert_same(codes, fast, ref)
    ex.interpreter = True
    res = ex.run(codes[:2], np.array([[5, 0], [1 << 63, MASK], [7, 2]], dtype=np.uint64))
    assert res.outputs.tolist() == [[0, 0, 3], [0, 1 << 63, 3]]   # x/0 = 0, INT_MIN/-1 = INT_MIN


UNSUPPORTED = [
    ["svc #0"], ["mov x0, sp"], ["add sp, sp, #16"], ["fmov d0, x0", "fmov v0.d[1], x1", "fmov x0, d0"],
    ["cnt v0.8b, v0.8b", "addv h0, v0.4h", "umov w0, v0.h[0]"], ["br x1"], ["ret x1"], ["crc32x w0, w0, x1"], ["blr x1"], ["ldaxr x0, [x1]"], ["ldr x0, [sp, #-16]!"],
    [".word 0xf8408421"], [".word 0xa9400020"], ["ldtr x0, [x1]"], ["ldar x0, [x1]"],
]   # (ldadd, 0xf8200041, was here: Unicorn's A72 has no LSE, the interpreter's SIGILL now)


def test_mixed_batch_runs_unsupported_genomes_in_unicorn(ex):
    rng = random.Random(4)
    others = [assemble(lines, "arm64") for lines in UNSUPPORTED]
    assert not _supported(others).any()
    good = _alphabet_genomes(rng, 200, raw=False)
    # deferred at run time: the addresses are mapped (the stack, the control block)
    deferred = [assemble([f"movz x1, #{base >> 16}, lsl #16", "ldr x0, [x1, #8]"], "arm64")
                for base in (0x2000_0000, 0x6000_0000)]
    assert _supported(deferred).all()
    others += deferred
    codes = good[:100] + others + good[100:]
    fast, ref = _both(ex, codes, _inputs(9, 16), seed=9)
    _assert_same(codes, fast, ref)
    alone = ex.run(others, _inputs(9, 16), seed=9)
    assert (fast.outcomes[100:100 + len(others)] == alone.outcomes).all()
    assert (fast.outputs[100:100 + len(others)] == alone.outputs).all()
    assert (alone.outcomes[0] == Outcome.SYSCALL).all() and (alone.outcomes[-2:] == Outcome.OK).all()


@pytest.mark.parametrize("scratch,budget", [(0, 2048), (16, 2048), (4096, 2048), (256, 4)])
def test_options_agree(scratch, budget):
    """Scratch sizes bound the interpreted loads/stores; a genome the budget may cut goes to Unicorn."""
    rng = random.Random(scratch + budget)
    alphabet = alphabet_for("arm64", scratch=max(scratch, 16), n_regs=4)
    codes = [alphabet.encode([alphabet.random_gene(rng) for _ in range(rng.randint(1, 8))]) for _ in range(300)]
    codes.append(assemble(["str x1, [sp, #4088]", "ldr x0, [sp, #4088]"], "arm64"))
    with open_executor("arm64", backend="emulated", scratch=scratch, budget=budget) as executor:
        fast, ref = _both(executor, codes, _inputs(10, 16), seed=10)
    _assert_same(codes, fast, ref)
    if budget == 4:
        assert (fast.outcomes[[i for i, c in enumerate(codes) if len(c) > 12]] != Outcome.OK).any()


# ------------------------------------------------------------------- PC-relative, memory, loops
def _rand_reg(rng) -> int:
    """Base/index registers: inputs, random registers, SP, XZR, x30."""
    return int(rng.integers(0, 4)) if rng.random() < 0.5 else int(rng.integers(0, 32))


def _mem_word(rng: np.random.Generator, form: str) -> int:
    """A random load/store word of addressing ``form`` (all sizes, both register files)."""
    rt, rn, rm = _reg(rng), _rand_reg(rng), _rand_reg(rng)
    if rng.random() < 0.3:
        rn = 31                                            # through SP: the scratch area
    size, v, opc = _bits(rng, 2), _bits(rng, 1), _bits(rng, 2)
    if form == "literal":
        return _bits(rng, 2) << 30 | 0x18000000 | v << 26 | (int(rng.integers(-40, 1100)) & 0x7FFFF) << 5 | rt
    if form == "pair":
        mode = _bits(rng, 2)
        return _bits(rng, 2) << 30 | 0x28000000 | v << 26 | mode << 23 | _bits(rng, 1) << 22 \
            | (int(rng.integers(-8, 40)) & 0x7F) << 15 | _reg(rng) << 10 | rn << 5 | rt
    head = size << 30 | 0x38000000 | v << 26 | opc << 22
    if form == "uimm":
        return head | 1 << 24 | int(rng.integers(0, 80)) << 10 | rn << 5 | rt
    if form == "reg":
        return head | 1 << 21 | rm << 16 | _pick(rng, (2, 3, 6, 7, 3, 0)) << 13 | _bits(rng, 1) << 12 | 2 << 10 \
            | rn << 5 | rt
    kind = {"unscaled": 0, "post": 1, "pre": 3}[form]
    return head | (int(rng.integers(-256, 256)) & 0x1FF) << 12 | kind << 10 | rn << 5 | rt


MEM_FORMS = ("literal", "pair", "uimm", "reg", "unscaled", "post", "pre")
# what each form must keep claiming (statically), and how much of it may be deferred at run time
MEM_MIN_SUPPORTED = {"literal": 0.7, "pair": 0.32, "uimm": 0.55, "reg": 0.4, "unscaled": 0.52, "post": 0.25,
                     "pre": 0.25}


def _near_region_setup(rng) -> list[int]:
    """movz/movk words putting an address close to a mapped region's edge into x1 or x2."""
    base, size = [(MM.SOLO_BASE, 4096), (MM.ARENA_BASE, MM.ARENA_SIZE), (MM.STACK_BASE, MM.STACK_SIZE),
                  (MM.DATA_BASE, MM.DATA_SIZE), (MM.HARNESS_BASE, MM.HARNESS_SIZE),
                  (MM.STATE_BASE, MM.STATE_SIZE)][int(rng.integers(0, 6))]
    edge = base + (size if rng.random() < 0.5 else 0)
    addr = (edge + int(rng.integers(-(1 << 21), 1 << 21))) & MASK
    if rng.random() < 0.2:
        addr |= _pick(rng, (1 << 48, 1 << 56, 0xFF << 56, 1 << 63))   # tagged: Unicorn faults
    rd = int(rng.integers(1, 3))
    return [0xD2800000 | (addr & 0xFFFF) << 5 | rd] + [0xF2800000 | k << 21 | ((addr >> (16 * k)) & 0xFFFF) << 5 | rd
                                                      for k in (1, 2, 3)]


def _mem_genome(rng, form: str) -> bytes:
    words = _near_region_setup(rng) if rng.random() < 0.25 else []
    for _ in range(int(rng.integers(1, 3))):
        words.append(_mem_word(rng, form))
        if rng.random() < 0.5:
            words.append(_class_words(rng, CLASSES[int(rng.integers(0, 14))], 3))
    if rng.random() < 0.5:    # read back what a store may have written
        words.append(0xF94003E0 | int(rng.integers(0, 32)) << 10)     # ldr x0, [sp, #8k]
    if rng.random() < 0.7:
        words.append(0xCA000000 | (words[-1] & 31) << 16)
        words += _FLAG_TAIL[:4]
    return b"".join(w.to_bytes(4, "little") for w in words)


def test_memory_forms_agree(ex):
    """Every addressing form, both register files, addresses random, small, in the scratch area
    and near each mapped region's edges (tagged ones too): faults, deferrals and loads agree."""
    rng = np.random.default_rng(21)
    codes = _by_class(rng, MEM_FORMS, 250, _mem_genome, MEM_MIN_SUPPORTED.__getitem__)
    supported = _supported(codes)
    outs = np.zeros((len(codes), 16), dtype=np.uint64)
    ran = _interpret(ex, codes, _inputs(22, 16), 22, outs)
    assert (ran <= supported).all() and ran.mean() >= 0.75 * supported.mean(), f"only {ran.mean():.0%} run"
    fast, ref = _both(ex, codes, _inputs(22, 16), seed=22)
    _assert_same(codes, fast, ref, only=ran)


def _interpret(ex, codes, inputs, seed, outputs):
    """The interpreter alone, as the executor calls it: the mask of genomes it ran."""
    from core.executors.batch_state import BatchState
    state = BatchState.from_seed(seed, ex.options.scratch)
    outcomes = np.zeros(outputs.shape, dtype=np.uint8)
    return execute.interpret(codes, state.input_table(ex.isa, inputs), state.regs, state.scratch,
                                ex.options.budget, outputs, outcomes, lr=ex.unicorn.ret_addr, simd=state.simd,
                                solo_size=ex.unicorn.solo_size, post=ex.unicorn.post)


def test_wild_addresses_fault_like_unicorn(ex):
    """Thousands of addresses (random, small, tagged, near every region): the interpreter's
    SIGSEGV / deferral split never claims a fault where Unicorn reads memory."""
    rng = np.random.default_rng(23)
    bases = np.array([MM.SOLO_BASE, MM.ARENA_BASE, MM.STACK_BASE, MM.DATA_BASE, MM.HARNESS_BASE, MM.STATE_BASE,
                      MM.STACK_BASE + MM.STACK_SIZE, MM.ARENA_BASE + MM.ARENA_SIZE, MM.DATA_BASE + MM.DATA_SIZE],
                     dtype=np.uint64)
    n = 4000
    near = bases[rng.integers(0, len(bases), n)] + rng.integers(-(1 << 22), 1 << 22, n).astype(np.uint64)
    tags = np.array([0, 0, 1 << 48, 1 << 55, 1 << 56, 0xFF << 56, 0xFFFF << 48], dtype=np.uint64)
    near |= tags[rng.integers(0, len(tags), n)]
    wild = rng.integers(0, 2**64, n, dtype=np.uint64)
    small = rng.integers(0, 1 << 20, n).astype(np.uint64)
    addrs = np.concatenate([near, wild, small])
    inputs = np.stack([np.zeros_like(addrs), addrs], axis=1)
    codes = [assemble(["ldr x0, [x1]"], "arm64"), assemble(["ldp q0, q1, [x1, #-32]", "mov x0, #1"], "arm64"),
             assemble(["strh w0, [x1, #6]!", "mov x0, x1"], "arm64")]
    # the interpreter's verdict per address (a genome is claimed or deferred as a whole)
    claimed = np.zeros((len(addrs), len(codes)), dtype=bool)
    for k in range(len(addrs)):
        outs = np.zeros((len(codes), 1), dtype=np.uint64)
        claimed[k] = _interpret(ex, codes, inputs[k:k + 1], 24, outs)
    ex.interpreter = False
    try:
        ref = [ex.run(codes, inputs[k:k + 2048], seed=24).outcomes for k in range(0, len(addrs), 2048)]
    finally:
        ex.interpreter = True
    ref = np.concatenate(ref, axis=1).T
    assert (ref[claimed] == Outcome.SIGSEGV).all()     # a claimed wild address faults in Unicorn too
    assert claimed[n:].all()                           # random and small addresses: certain faults
    assert (ref[~claimed] == Outcome.OK).any() and (~claimed).mean() < 0.4


def _pcrel_word(rng) -> int:
    rd = _reg(rng)
    kind = rng.random()
    if kind < 0.4:
        return _bits(rng, 1) << 31 | _bits(rng, 2) << 29 | 0x10000000 | _bits(rng, 19) << 5 | rd   # adr/adrp
    if kind < 0.6:
        return _bits(rng, 1) << 31 | _bits(rng, 2) << 29 | 0x10000000 | (int(rng.integers(-600, 600)) & 0x7FFFF) << 5 | rd
    return _mem_word(rng, "literal")


def test_pc_relative_agrees(ex):
    """adr/adrp and literal loads: the slow lane's solo slot (code, return, zeros, its end)."""
    rng = np.random.default_rng(25)
    codes = []
    for _ in range(600):
        words = [_pcrel_word(rng)]
        if rng.random() < 0.5:
            words.insert(int(rng.integers(0, 2)), _class_words(rng, CLASSES[int(rng.integers(0, 14))], 2))
        words += [0xCA000000 | (words[-1] & 31) << 16, 0xCA000000 | (words[0] & 31) << 16]
        codes.append(b"".join(w.to_bytes(4, "little") for w in words))
    codes += [assemble(lines, "arm64") for lines in (
        ["ldr x0, #4088"], ["ldr x0, #4092"], ["ldr w0, #4092"], ["ldr x0, #4096"], ["ldr x0, #-4"], ["ldr q0, #4080", "mov x0, #1"],
        ["ldr q0, #4084", "mov x0, #1"], ["ldrsw x0, #4"], ["ldr x0, #0"], ["adrp x0, #-0x8000000"], ["adr x0, #-1"])]
    supported = _supported(codes)
    assert supported.mean() >= 0.8, f"only {supported.mean():.0%} interpreted"
    fast, ref = _both(ex, codes, _inputs(26, 4), seed=26)
    _assert_same(codes, fast, ref)


def _loop_genome(rng) -> bytes:
    """A counted loop (count from an input or a constant), branches in every direction, out of
    the code (return, padding, the solo page's end, unmapped) and traps at the budget's edge."""
    words = []
    if rng.random() < 0.5:
        words.append(0xD2800000 | int(rng.integers(0, 1100)) << 5 | 5)     # movz x5, #k
    else:
        words.append(0x92402405 | _bits(rng, 2) << 5)                      # and x5, x<0..3>, #0x3ff
    words += [_class_words(rng, CLASSES[int(rng.integers(0, 14))], 2) for _ in range(int(rng.integers(0, 3)))]
    body = len(words)
    words.append(0xF10004A5)                                               # subs x5, x5, #1
    words += [_class_words(rng, CLASSES[int(rng.integers(0, 14))], 2) for _ in range(int(rng.integers(0, 3)))]
    words.append(0xB5000005 | ((body - len(words)) & 0x7FFFF) << 5)        # cbnz x5, body
    r = rng.random()
    if r < 0.6:
        n = len(words)
        target = _pick(rng, (-n - 1, -n, 1, 2, 3, 1024 - n, 1023 - n, 1025 - n, 5000, -300, 0)) \
            if rng.random() < 0.8 else int(rng.integers(-2000, 2000))
        cls = ("b", "bcond", "cbz", "tbz")[int(rng.integers(0, 4))]
        word = _class_words(rng, cls, 3)
        if cls == "b":
            word = 0x14000000 | (target & 0x3FFFFFF)
        elif cls == "tbz":
            word = (word & ~(0x3FFF << 5)) | (target & 0x3FFF) << 5
        else:
            word = (word & ~(0x7FFFF << 5)) | (target & 0x7FFFF) << 5
        words.append(word)
    if rng.random() < 0.5:
        words.append(_pick(rng, (0, 0xF9400020, 0xD4000001)))                 # udf, ldr x0, [x1], svc
    words.append(0xCA050000)                                               # eor x0, x0, x5
    return b"".join(w.to_bytes(4, "little") for w in words)


@pytest.mark.parametrize("budget", [64, 2048])
def test_loops_and_far_branches_agree(budget):
    """Backward and out-of-code branches run in the solo slot; loops end OK, trapped or TIMEOUT
    exactly where the slow lane's instruction count puts them (also after a fast-lane run)."""
    rng = np.random.default_rng(27 + budget)
    codes = [_loop_genome(rng) for _ in range(300)]
    codes += [assemble(lines, "arm64") for lines in (
        ["b #0"], ["b #-4"], ["b #4"], ["b #8"], ["b #4092"], ["b #4096"], ["b #0x7000000"], ["cbz x0, #-8"],
        ["nop", "subs x0, x0, #1", "b.ne #-4", ".word 0"], ["subs x0, x0, #1", "b.ne #-4", "b #0x100000"],
        ["subs x0, x0, #1", "b.ne #-4", "ldr x0, [x1]"], ["add x0, x0, #1", "b #-4"])]
    assert _supported(codes, budget=budget).mean() >= 0.7
    inputs = _inputs(28, 16)
    inputs[:, 0] = np.arange(16, dtype=np.uint64) + np.uint64(budget // 2 - 8)   # loop counts near the budget
    with open_executor("arm64", backend="emulated", budget=budget) as executor:
        executor.interpreter = False
        executor.run([assemble(["ldr x0, [x1]"], "arm64")], inputs)           # the fast lane first
        fast, ref = _both(executor, codes, inputs, seed=29)
    _assert_same(codes, fast, ref)
    assert (ref.outcomes == Outcome.TIMEOUT).any() and (ref.outcomes == Outcome.SIGSEGV).any()


def _ret_genome(rng: np.random.Generator) -> bytes:
    """Alphabet-like words with ``ret`` at the end, in the middle, or after a branch over it."""
    body = [_class_words(rng, CLASSES[int(rng.integers(0, 14))], 3) for _ in range(int(rng.integers(1, 6)))]
    where = rng.random()
    if where < 0.5:
        body.append(0xD65F03C0)                                    # a compiled function's shape
    elif where < 0.8:
        body.insert(int(rng.integers(0, len(body) + 1)), 0xD65F03C0)
    else:
        body[:0] = [0x54000000 | 2 << 5 | int(rng.integers(0, 16)), 0xD65F03C0]   # b.cond over a ret
    return b"".join(w.to_bytes(4, "little") for w in body)


@pytest.mark.parametrize("budget", [2048, 3, 4])
def test_functions_ending_in_ret_are_interpreted_and_agree(budget):
    """Check that code with ``ret`` (the caller's return) is interpreted, not sent to Unicorn,
    and gives Unicorn's results and outcomes, budget edges included."""
    rng = np.random.default_rng(31)
    codes = [_ret_genome(rng) for _ in range(600)]
    assert _supported(codes, budget=budget).mean() >= 0.6
    with open_executor("arm64", backend="emulated", budget=budget) as ex:
        fast, ref = _both(ex, codes, _inputs(8, 16), seed=8)
    _assert_same(codes, fast, ref)


def test_each_case_starts_from_the_entry_registers_and_scratch(ex):
    """Check that what a genome writes (registers through every kind of row, scratch words) is
    reset before its next case, under a batch state and under per-case states: code that reads
    x9, x17, x29 or a scratch word before writing it returns their entry values on every case."""
    from core.executors.batch_state import CaseStates
    codes = [assemble(lines, "arm64") for lines in (
        ["mov x0, x9", "add x9, x1, #1"],                                  # Rd
        ["mov x0, x17", "ldr x17, [sp, #16]", "eor x17, x17, x1"],          # Rd of a load, then of eor
        ["ldr x0, [sp, #8]", "str x1, [sp, #8]"],                           # a scratch word
        ["add x0, x0, x28", "ldp x29, x28, [sp, #64]", "add x28, x28, x1"],   # Rt2 of a pair
        ["mov x0, x13", "fmov d1, x1", "umov w13, v1.b[0]"],                # a SIMD row's general Rd
        ["eor x0, x0, x25", "movk x25, #7, lsl #16", "bfi x25, x1, #3, #9"])]
    assert _supported(codes).all()
    inputs = _inputs(71, 12)
    fast, ref = _both(ex, codes, inputs, seed=71)
    _assert_same(codes, fast, ref)
    assert len(set(fast.outputs[0].tolist())) == 1 and len(set(fast.outputs[2].tolist())) == 1
    _assert_same(codes, *_both(ex, codes, inputs, seed=None, states=CaseStates.from_seed(72, 12, ex.options.scratch)))
