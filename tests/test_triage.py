"""Tests of static triage: the bit-level decoder against capstone, lane choices, and that the
fast lane computes exactly what the (bounded, fully reset) slow lane computes."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from core.asm import assemble, disassemble
from core.executors import open_executor, tiered
from core.executors.interp.decoder import word_facts
from core.executors.interp import decoder, execute
from core.executors.unicorn.harness import returns_as_branches
from core.executors.unicorn.triage import Trap, _arm64_word_capstone, triage
from core.outcome import Outcome
from core.isa import ARM64, X86_64
from evolve.genes import alphabet_for

# Top bytes of the integer classes evolution produces most, to bias random words towards them.
COMMON_TOPS = [0x0A, 0x8A, 0x0B, 0x8B, 0x1A, 0x9A, 0x1B, 0x9B, 0x11, 0x91, 0x12, 0x92, 0x13, 0x93, 0xD2, 0xF2,
               0x52, 0x72, 0x14, 0x54, 0xB4, 0x34, 0x36, 0x37, 0xF9, 0xB9, 0x39, 0x79, 0xF8, 0xA9, 0x29, 0xA8,
               0x6A, 0x2A, 0xAA, 0xEA, 0x4B, 0xCB, 0xEB, 0xDA, 0x5A, 0x3A, 0xBA, 0x1E, 0x9E, 0xD3, 0x93]
ALIAS_QUIRKS = {"cmp", "cmn", "tst"}   # capstone lists the first source of these aliases as written


def _gene_words(rng: random.Random, n: int) -> list[int]:
    """Words of random genomes from the gene alphabet (raw words included)."""
    words = []
    while len(words) < n:
        alphabet = alphabet_for("arm64", n_regs=rng.randint(2, 8))
        code = alphabet.encode([alphabet.random_gene(rng) for _ in range(16)])
        words += [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)]
    return words[:n]


def _agrees_with_capstone(words: list[int]) -> int:
    """Assert capstone's facts for every word word_facts answers; returns how many it answered."""
    accepted = 0
    for w in words:
        known, writes, has_branch, branch, has_sp, disp, store = word_facts(w)
        if not known:
            continue
        accepted += 1
        ref = _arm64_word_capstone(w.to_bytes(4, "little"))
        text = disassemble(w.to_bytes(4, "little"))[0]
        assert not text.startswith(".word") or "//" in text, f"{w:#010x} is not a valid instruction"
        assert ref.trap is None and ref.branch == (branch if has_branch else None), text
        assert sorted(ref.sp_mem) == ([(disp, store)] if has_sp else []), text
        mnemonic = text.split("//")[-1].split()[0]
        if mnemonic not in ALIAS_QUIRKS:
            assert ref.writes <= frozenset(f"x{i}" for i in range(31) if writes >> i & 1), text
    return accepted


def test_decoder_facts_agree_with_capstone():
    """Check that every word the decoder's word_facts answers is decoded alike by capstone."""
    rng = random.Random(11)
    words = [rng.getrandbits(32) for _ in range(20000)]
    words += [(rng.choice(COMMON_TOPS) << 24) | rng.getrandbits(24) for _ in range(40000)]
    assert _agrees_with_capstone(words) > 20000


def test_decoder_facts_agree_with_capstone_on_gene_words():
    """Check the same agreement on the words of random alphabet genomes (raw words included)."""
    assert _agrees_with_capstone(_gene_words(random.Random(12), 20000)) > 15000


def test_triage_reads_the_decoder_where_it_answers():
    """Check that a word's triage facts are the decoder's where it answers, capstone's elsewhere."""
    from core.executors.unicorn.triage import _arm64_word
    rng = random.Random(5)
    for w in _gene_words(rng, 3000) + [rng.getrandbits(32) for _ in range(3000)]:
        word = w.to_bytes(4, "little")
        info, known = _arm64_word(word), word_facts(w)[0]
        assert info.exact == known or info == _arm64_word_capstone(word), f"{w:#010x}"


@pytest.mark.parametrize("lines,fast,reason", [
    (["add x0, x0, x1", "mul x2, x0, x0"], True, ""),
    (["b #8", "nop"], True, ""),
    (["cbz x0, #8", "add x0, x0, #1"], True, ""),
    (["b #-4"], False, "backward"),
    (["b #12", "nop"], False, "out-of-code"),
    (["blr x1"], False, "indirect"),
    (["ret"], True, ""),                                  # the caller's return: a branch to the end
    (["cbz x0, #8", "ret", "add x0, x0, #1", "ret"], True, ""),
    (["crc32x w0, w0, x1", "ret"], True, ""),              # outside the interpreter's subset
    (["ret x1"], False, "return"),
    ([".word 0xd65f0bff"], False, "ret"),                # retaa,
    (["mov x30, x0"], False, "x30"),
    (["mov x30, x0", "ret"], False, "x30"),
    (["mov sp, x1"], False, "sp"),
    (["add x1, sp, #8"], False, "sp"),
    (["fmov d0, x1"], False, "d0"),
    (["umov w0, v1.h[0]"], False, "SIMD&FP"),       # capstone lists no vector register read
    (["mov b10, v27.b[8]"], False, "SIMD&FP"),
    (["adr x0, #0"], False, "PC-relative"),
    ([".word 0x58000000"], False, "PC-relative"),   # ldr x0, <literal>
    (["mrs x0, nzcv"], False, "system"),
    (["ldr x0, [sp, #248]"], False, "scratch"),
    (["ldur x0, [sp, #-8]"], False, "scratch"),
    (["ldr x0, [sp, #240]", "str x1, [sp]"], True, ""),
    ([".word 0x00000000"], True, ""),
])
def test_arm64_lane_choice(lines, fast, reason):
    """Check which arm64 snippets may run in the fast lane, and why the others may not."""
    t = triage(assemble(lines), ARM64, 256)
    assert t.fast is fast
    assert reason in t.reason


def test_arm64_epilogue_facts():
    """Check the registers and scratch words a fast-lane genome must have restored."""
    t = triage(assemble(["add x5, x0, x1", "str x5, [sp, #20]", "ldp x6, x7, [sp, #32]", "cmp x6, x7"]), ARM64, 256)
    assert t.fast and t.clobbered == {"x5", "x6", "x7"}
    assert t.scratch_words == {16, 24, 32}


def test_traps_for_unicorn_gaps():
    """Check the trap points that supply Linux behaviour Unicorn lacks."""
    assert triage(assemble(["wfi"]), ARM64, 256).traps == {0: Trap.SKIP}
    assert triage(assemble(["nop", "eret"]), ARM64, 256).traps == {4: Trap.SIGILL}
    sp = triage(assemble(["sub sp, sp, #8", "ldr x0, [sp]"]), ARM64, 256)
    assert sp.traps == {4: Trap.SP_ALIGN}
    assert triage(assemble(["nop", "hlt"], "x86_64"), X86_64, 128).traps == {1: Trap.SIGSEGV}


@pytest.mark.parametrize("lines,fast", [
    (["mov rax, rdi", "add rax, rsi"], True),
    (["mov qword ptr [rsp - 8], rdi", "mov rax, qword ptr [rsp - 8]"], True),
    (["mov qword ptr [rsp - 136], rdi"], False),
    (["mov rax, rsp"], False),
    (["push rax"], False),
    (["jmp 0"], False),
    (["ret"], True),                                        # a trailing ret: held as a nop
    (["mov rax, rdi", "ret"], True),
    (["ret", "nop"], False),                                # an early one: slow lane
    (["repz ret"], False),
    (["mov eax, 0xc3000000"], True),                        # a c3 byte that is not a ret
    (["movq xmm0, rax"], False),
    (["syscall"], True),
    (["lea rax, [rip]"], False),
])
def test_x86_lane_choice(lines, fast):
    """Check which x86-64 snippets may run in the fast lane."""
    assert triage(assemble(lines, "x86_64"), X86_64, 128).fast is fast


def _alphabet_genomes(rng: random.Random, n: int) -> list[bytes]:
    ops = ["add", "sub", "eor", "orr", "and", "mul", "lsl", "lsr", "asr", "udiv", "sdiv", "umulh", "bic"]
    genomes = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randrange(1, 12)):
            kind = rng.random()
            r = [f"x{rng.randrange(12)}" for _ in range(3)]
            if kind < 0.6:
                lines.append(f"{rng.choice(ops)} {r[0]}, {r[1]}, {r[2]}")
            elif kind < 0.7:
                lines.append(f"str {r[0]}, [sp, #{8 * rng.randrange(30)}]")
            elif kind < 0.8:
                lines.append(f"ldr {r[0]}, [sp, #{8 * rng.randrange(30)}]")
            elif kind < 0.85:
                lines.append(f"cmp {r[0]}, {r[1]}")
                lines.append(f"csel {r[0]}, {r[1]}, {r[2]}, {rng.choice(['eq', 'lo', 'gt'])}")
            elif kind < 0.9:
                lines.append(f"movz {r[0]}, #{rng.randrange(1 << 16)}")
            else:
                lines.append(f".word {rng.getrandbits(32):#010x}")
        genomes.append(assemble(lines))
    return genomes


def test_fast_lane_equals_slow_lane(monkeypatch):
    """Check that the fast lane gives the outputs and outcomes of the fully reset slow lane."""
    rng = random.Random(3)
    codes = _alphabet_genomes(rng, 150)
    inputs = np.random.default_rng(4).integers(0, 2**64, size=(12, 3), dtype=np.uint64)
    with open_executor("arm64", backend="emulated", budget=300, seed=2) as ex:
        fast = ex.run(codes, inputs)
    assert sum(triage(c, ARM64, 256).fast for c in codes) > 60
    monkeypatch.setattr(tiered, "triage",
                        lambda code, isa, scratch: dataclasses.replace(triage(code, isa, scratch), fast=False))
    with open_executor("arm64", backend="emulated", budget=300, seed=2) as ex:
        slow = ex.run(codes, inputs)
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert np.array_equal(fast.outputs, slow.outputs)


def test_returns_become_branches_to_the_code_end():
    """Check the fast-lane layout of ``ret``: ``b <end>`` in the middle, ``nop`` at the end, every
    other word (other returns included) unchanged."""
    code = assemble(["cbz x0, #8", "ret", "ret x1", "add x0, x0, #1", "ret"])
    assert returns_as_branches(code) == assemble(["cbz x0, #8", "b #16", "ret x1", "add x0, x0, #1", "nop"])
    assert returns_as_branches(assemble(["ret", "ret"])) == assemble(["b #8", "nop"])
    body = assemble(["add x0, x0, x1", ".word 0xd65f0bff"])   # retaa
    assert returns_as_branches(body) == body


# Words the interpreter refuses (so that Unicorn runs the genome) and triage admits to the fast lane.
OUTSIDE = [assemble([line]) for line in ("crc32x w0, w0, x1", "crc32cw w3, w2, w1", "crc32b w5, w5, w0",
                                         "ldtr x4, [x1]", "ldaxr x6, [x2]")]


def _function_genomes(rng: random.Random, n: int) -> list[bytes]:
    """Genomes with a word outside the interpreter and ``ret``: at the end (a compiled
    function's shape), in the middle, after a conditional branch over it, or several."""
    codes = []
    for k in range(n):
        body = _alphabet_genomes(rng, 1)[0]
        words = [body[i:i + 4] for i in range(0, len(body), 4)]
        words.insert(rng.randrange(len(words) + 1), rng.choice(OUTSIDE))
        ret = assemble(["ret"])
        shape = k % 4
        if shape == 0:
            words.append(ret)
        elif shape == 1:
            words.insert(rng.randrange(len(words) + 1), ret)
        elif shape == 2:   # b.cond over an early ret, then the rest and a final ret
            at = rng.randrange(len(words) + 1)
            cond = rng.choice(["eq", "ne", "lo", "hs", "mi", "gt"])
            words[at:at] = [assemble([f"b.{cond} #8"]), ret]
            words.append(ret)
        else:              # cbz to the end, past an early ret
            words[:0] = [assemble([f"cbz x{rng.randrange(4)}, #{4 * (len(words) + 2)}"]), ret]
        codes.append(b"".join(words))
    return codes


def _forced_slow(monkeypatch):
    monkeypatch.setattr(tiered, "triage",
                        lambda code, isa, scratch: dataclasses.replace(triage(code, isa, scratch), fast=False))


def _supported(codes) -> np.ndarray:
    words, offsets = execute.flatten(codes)
    return decoder.decode(words, offsets, 256, 300)[2]


def test_functions_outside_the_interpreter_take_the_fast_lane_and_agree(monkeypatch):
    """Check that genomes outside the interpreter that end in (or contain) ``ret`` are triaged
    fast, and that the fast lane gives bit for bit the outputs and outcomes of the slow lane."""
    codes = _function_genomes(random.Random(21), 240)
    assert not _supported(codes).any()
    fast_lane = [triage(c, ARM64, 256).fast for c in codes]
    assert sum(fast_lane) > 0.5 * len(codes)
    assert all(fast_lane[k] for k in range(0, 240, 4) if triage(codes[k][:-4], ARM64, 256).fast)
    inputs = np.random.default_rng(22).integers(0, 2**64, size=(12, 4), dtype=np.uint64)
    inputs[::3] %= 4   # zeros and small values: both sides of the conditional branches
    with open_executor("arm64", backend="emulated", budget=300, seed=5) as ex:
        fast = ex.run(codes, inputs)
    _forced_slow(monkeypatch)
    with open_executor("arm64", backend="emulated", budget=300, seed=5) as ex:
        slow = ex.run(codes, inputs)
    assert (fast.outcomes == Outcome.OK).mean() > 0.5
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert np.array_equal(fast.outputs, slow.outputs)


def test_functions_agree_in_interpreter_fast_lane_and_slow_lane(monkeypatch):
    """Check the same genomes without the outside word, which the interpreter runs: interpreter,
    fast lane and slow lane agree bit for bit."""
    rng = random.Random(23)
    codes = [c.replace(w, b"") for c in _function_genomes(rng, 200) for w in OUTSIDE if w in c]
    codes = [c for c, ok in zip(codes, _supported(codes)) if ok]
    assert len(codes) > 150 and sum(triage(c, ARM64, 256).fast for c in codes) > 100
    inputs = np.random.default_rng(24).integers(0, 2**64, size=(12, 4), dtype=np.uint64)
    inputs[::3] %= 4
    runs = []
    for interpreter in (True, False):
        with open_executor("arm64", backend="emulated", budget=300, seed=6) as ex:
            ex.interpreter = interpreter
            runs.append(ex.run(codes, inputs))
    _forced_slow(monkeypatch)
    with open_executor("arm64", backend="emulated", budget=300, seed=6) as ex:
        ex.interpreter = False
        runs.append(ex.run(codes, inputs))
    for other in runs[1:]:
        assert np.array_equal(runs[0].outcomes, other.outcomes)
        assert np.array_equal(runs[0].outputs, other.outputs)


def test_x86_functions_ending_in_ret_take_the_fast_lane_and_agree(monkeypatch):
    """Check that x86-64 code ending in ``ret`` is triaged fast, held with a nop there, and gives
    the slow lane's outputs and outcomes bit for bit."""
    rng = random.Random(25)
    regs = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r12", "r15"]
    ops = ["add", "sub", "xor", "imul", "and", "or"]
    codes = []
    for _ in range(60):
        lines = [f"{rng.choice(ops)} {rng.choice(regs)}, {rng.choice(regs)}" for _ in range(rng.randrange(1, 8))]
        lines += ["mov qword ptr [rsp - 16], rbx"] if rng.random() < 0.3 else []
        codes.append(assemble(lines + ["mov rax, rdi", "ret"] if rng.random() < 0.2 else lines + ["ret"], "x86_64"))
    infos = [triage(c, X86_64, 128) for c in codes]
    assert all(t.fast and t.trailing_ret for t in infos)
    assert returns_as_branches(codes[0], "x86_64", True) == codes[0][:-1] + b"\x90"
    inputs = np.random.default_rng(26).integers(0, 2**64, size=(8, 4), dtype=np.uint64)
    with open_executor("x86_64", backend="emulated", seed=4) as ex:
        fast = ex.run(codes, inputs)
    _forced_slow(monkeypatch)
    with open_executor("x86_64", backend="emulated", seed=4) as ex:
        slow = ex.run(codes, inputs)
    assert (fast.outcomes == Outcome.OK).all()
    assert np.array_equal(fast.outcomes, slow.outcomes) and np.array_equal(fast.outputs, slow.outputs)


def test_a_function_that_writes_x30_still_returns_where_x30_points():
    """Check that code writing x30 before ``ret`` takes the slow lane and returns there."""
    code = assemble(["crc32x w5, w5, x1", "mov x30, x2", "ret", "add x0, x0, #1"])
    t = triage(code, ARM64, 256)
    assert not t.fast and "x30" in t.reason
    inputs = np.array([[7, 1, 0], [9, 2, 16]], dtype=np.uint64)   # x2 = 0, then a misaligned address
    with open_executor("arm64", backend="emulated") as ex:
        res = ex.run([code], inputs)
    assert res.outcomes[0].tolist() == [Outcome.SIGSEGV, Outcome.SIGSEGV]
    assert res.outputs[0].tolist() == [0, 0]


@pytest.mark.parametrize("lines,kind", [
    (["mov rax, rdi", "add rax, rsi", "ud2"], 1),        # general registers only, no stack
    (["mov qword ptr [rsp - 8], rdi", "mov rax, qword ptr [rsp - 8]"], 2),   # the red zone
    (["pop rax"], 0),                                      # moves rsp: the return goes elsewhere
    (["movq xmm0, rdi"], 0),                               # SIMD
    (["fld1"], 0),                                         # x87
    (["std"], 0),                                          # DF
    (["pushfq", "popfq"], 0),                              # AC/DF through the flags image
    (["mov rax, qword ptr fs:[0]"], 0),                    # the TLS base
    (["xor eax, eax", "mov fs, eax"], 0),
    ([".word 0xffffffff"], 0),                             # undecodable bytes
])
def test_x86_entry_classes(lines, kind):
    """Check which x86-64 code the native trampoline enters lightly (1: registers only, 2: with
    the red zone) and which gets the full entry (0)."""
    from core.executors.native.light import FULL, MEM, entry_plan
    plan = entry_plan("x86_64", assemble(lines, "x86_64"))
    assert (0 if plan == FULL["x86_64"] else 2 if plan & MEM else 1) == kind


def test_triage_caches_stay_within_their_bounds():
    """Check that triaging more distinct genomes and plain words than the caches hold leaves
    each at its bound (issue 13: bounds of 2**16..2**20 filled over hours of a run)."""
    from core.executors.unicorn import triage as TR
    n = TR.PLAIN_CACHED + 1000                 # distinct words: add x<i % 30>, x<n>, x<m>, lsl #k
    words = [0x8B000000 | i << 5 | i % 30 for i in range(n)]
    codes = [np.array(words[k:k + 8], "<u4").tobytes() for k in range(0, n, 8)]
    assert len(codes) > TR.GENOMES_CACHED
    for code in codes:
        assert triage(code, ARM64, 256).fast
    assert 0 < len(TR._PLAIN_MASK) <= TR.PLAIN_CACHED
    assert TR._triage_cached.cache_info().currsize == TR.GENOMES_CACHED
