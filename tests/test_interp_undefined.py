"""Differential tests of the interpreter's UNDEFINED classes (core.executors.interp.undefined).

Every word those classes name must be SIGILL at that word in Unicorn, with the same outputs and
outcomes as the interpreter, alone and inside random alphabet genomes. The reference is a plain
Unicorn written here: one ``emu_start`` a case, every register, the flags, the SIMD registers
and the scratch written before it, no code shared with the executors (only the address map of
``core.executors.memory_map`` that every tier declares)."""
from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from unicorn import (UC_ARCH_ARM64, UC_ERR_FETCH_PROT, UC_ERR_FETCH_UNMAPPED, UC_ERR_READ_PROT,
                     UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_PROT, UC_ERR_WRITE_UNMAPPED, UC_HOOK_INTR, UC_MODE_ARM,
                     UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError)
from unicorn import arm64_const as A

from core.executors import memory_map as MM
from core.executors.interp import decoder as D
from core.executors.interp import interpret
from core.executors.interp.undefined import undefined
from core.isa import ARM64
from core.outcome import Outcome
from evolve.genes import alphabet_for

RET = 0xD65F03C0
SOLO = 4096                       # bytes mapped at SOLO_BASE (the interpreter's solo_size)
SCRATCH = 256
LR = MM.HARNESS_BASE + 0x100      # x30 at entry: where a return stops
BUDGET, POST = 64, 2

#: class -> (fixed-bit mask, value): words drawn with these bits set, the rest random
CLASSES = {
    "branch op0=x11": (0x7C000000, 0x74000000),
    "b.cond o1/o0, 0101 011": (0xFC000000, 0x54000000),
    "branch (register)": (0xFE000000, 0xD6000000),
    "exception generation": (0xFF000000, 0xD4000000),
    "1101 0101 unallocated": (0xFF000000, 0xD5000000),
    "add/sub with tags": (0x1F800000, 0x11800000),
    "DP register op2 odd": (0x1F200000, 0x1A200000),
    "adc/sbc FlagM": (0x1FE00000, 0x1A000000),
    "DP 1 source": (0x7FE00000, 0x5AC00000),
    "DP 2 source": (0x7FE00000, 0x1AC00000),
    "crc32": (0x7FE0E000, 0x1AC04000),
    "DP 1/2 source S=1": (0x7FE00000, 0x3AC00000),
    "SIMD&FP 1xx0/11x1": (0x8E000000, 0x8E000000),
    "FP S=1": (0x7E000000, 0x3E000000),
    "FP M=1": (0xFF000000, 0x9E000000),
    "FP M=1 3 source": (0xFF000000, 0x9F000000),
    "exclusive/ordered": (0x3F000000, 0x08000000),
    "ldst 001001, 011101": (0x3B000000, 0x19000000),
    "ldst 011001": (0x3F000000, 0x19000000),
    "literal SIMD&FP": (0x3F000000, 0x1C000000),
    "SIMD multiple structures": (0x3F000000, 0x0C000000),
    "SIMD single structure": (0x3F000000, 0x0D000000),
    "pairs": (0x3A000000, 0x28000000),
    "single register": (0x3A000000, 0x38000000),
    "register offset, atomics, PAuth": (0x3A200000, 0x38200000),
}


def _newly_undefined(words: np.ndarray) -> np.ndarray:
    """Those of ``words`` the decoder's word rules refuse and undefined() names."""
    ctl = np.zeros(D.N_FIELDS, np.int64)
    imm = np.zeros(2, np.uint64)
    keep = [not D._decode_word(np.int64(w), 0, 0, 1, SOLO, ctl, imm, True) and undefined(np.int64(w))
            for w in words.tolist()]
    return words[np.asarray(keep, dtype=bool)]


def class_words(name: str, n: int, seed: int) -> list[int]:
    mask, value = CLASSES[name]
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**32, 40 * n, dtype=np.uint64) & np.uint64(~mask & 0xFFFFFFFF) | np.uint64(value)
    got = _newly_undefined(np.unique(raw))
    rng.shuffle(got)
    return [int(w) for w in got[:n]]


class PlainUnicorn:
    """A genome + ``ret`` at SOLO_BASE as the slow lane runs it, one ``emu_start`` per case, at EL0."""

    def __init__(self):
        uc = self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        uc.mem_map(MM.SOLO_BASE, SOLO, UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_map(MM.STACK_BASE, MM.STACK_SIZE, UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(MM.HARNESS_BASE, 4096, UC_PROT_ALL)
        # Linux's SCTLR_EL1 for user space (UCI, nTWE, nTWI, UCT, DZE, SA0), then EL0
        uc.cpr_write(3, 0, 1, 0, 0, uc.cpr_read(3, 0, 1, 0, 0) | 0x4000000 | 0x4C000 | 0x10000 | 0x10)
        self.intr = []
        uc.hook_add(UC_HOOK_INTR, self._on_intr)

    def _on_intr(self, uc, intno, _data):
        self.intr.append((intno, uc.reg_read(A.UC_ARM64_REG_PC)))
        uc.emu_stop()

    def run(self, code: bytes, x03, regs, scratch: bytes, simd: bytes):
        """(outcome, x0 or 0, pc of the fault or None) of one case."""
        uc = self.uc
        uc.reg_write(A.UC_ARM64_REG_PSTATE, uc.reg_read(A.UC_ARM64_REG_PSTATE) & ~0xF)   # EL0t
        for k in range(29):
            uc.reg_write(A.UC_ARM64_REG_X0 + k, int(x03[k]) if k < 4 else int(regs[k]))
        uc.reg_write(A.UC_ARM64_REG_X29, int(regs[29]))
        uc.reg_write(A.UC_ARM64_REG_X30, LR)
        sp = MM.STACK_TOP - SCRATCH
        uc.reg_write(A.UC_ARM64_REG_SP, sp)
        uc.reg_write(A.UC_ARM64_REG_NZCV, 0x6 << 28)        # Z and C, as the harness leaves them
        for k in range(32):
            uc.reg_write(A.UC_ARM64_REG_Q0 + k, int.from_bytes(simd[16 * k:16 * k + 16], "little"))
        uc.mem_write(sp, scratch)
        self.intr.clear()
        pc = MM.SOLO_BASE
        for count in (BUDGET, POST):                         # the budget, then the traps after it
            try:
                uc.emu_start(pc, LR, 0, count)
            except UcError as exc:
                if self.intr:
                    break
                if exc.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED, UC_ERR_FETCH_UNMAPPED,
                                 UC_ERR_READ_PROT, UC_ERR_WRITE_PROT, UC_ERR_FETCH_PROT):
                    return Outcome.SIGSEGV, 0, uc.reg_read(A.UC_ARM64_REG_PC)
                return Outcome.WORKER_LOST, 0, None                    # nothing the interpreter gives
            if self.intr:
                break
            pc = uc.reg_read(A.UC_ARM64_REG_PC)
            if pc == LR:
                return (Outcome.OK, uc.reg_read(A.UC_ARM64_REG_X0), None) if count == BUDGET else \
                    (Outcome.TIMEOUT, 0, None)
        if self.intr:
            intno, at = self.intr[0]
            return {1: Outcome.SIGILL, 2: Outcome.SYSCALL, 7: Outcome.SIGTRAP}.get(intno, Outcome.WORKER_LOST), 0, at
        return Outcome.TIMEOUT, 0, None

    def load(self, code: bytes) -> None:
        page = (code + RET.to_bytes(4, "little")).ljust(SOLO, b"\0")
        self.uc.mem_write(MM.SOLO_BASE, page)
        self.uc.ctl_remove_cache(MM.SOLO_BASE, MM.SOLO_BASE + SOLO)


@pytest.fixture(scope="module")
def plain():
    return PlainUnicorn()


def _state(seed: int, n_cases: int):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 2**64, (n_cases, 4), dtype=np.uint64)
    table[:, 1] = rng.integers(0, 64, n_cases, dtype=np.uint64)       # small values too
    regs = rng.integers(0, 2**64, 32, dtype=np.uint64)
    scratch = rng.integers(0, 256, SCRATCH, dtype=np.uint8).tobytes()
    simd = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    return table, regs, scratch, simd


def _compare(plain, codes: list[bytes], seed: int, n_cases: int, sigill_at=None) -> dict:
    """Interpreter against the plain Unicorn on every case of every code the interpreter ran
    (all of them unless a memory access was deferred); ``sigill_at[i]``: the byte offset where
    code i must fault if it gives SIGILL. Returns the outcome counts."""
    table, regs, scratch, simd = _state(seed, n_cases)
    outputs = np.zeros((len(codes), n_cases), np.uint64)
    outcomes = np.full((len(codes), n_cases), 255, np.uint8)
    done = interpret(codes, table, regs, scratch, BUDGET, outputs, outcomes, lr=LR, simd=simd,
                     solo_size=SOLO, post=POST)
    counts: dict = {}
    for i in np.flatnonzero(done):
        plain.load(codes[i])
        for c in range(n_cases):
            want, x0, at = plain.run(codes[i], table[c], regs, scratch, simd)
            got = (Outcome(outcomes[i, c]), int(outputs[i, c]))
            assert got == (want, x0), f"{codes[i].hex()} case {c}: interpreter {got}, Unicorn {(want, x0)}"
            if want == Outcome.SIGILL and sigill_at is not None:     # at the word, or past the
                off = at - MM.SOLO_BASE                               # return: the zero padding
                assert off == sigill_at[i] or off > len(codes[i]), f"{codes[i].hex()}: Unicorn faulted at {at:#x}"
            counts[want.name] = counts.get(want.name, 0) + 1
    return {"done": int(done.sum()), **counts}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_words_alone_are_sigill_at_the_word(plain, name):
    """Check that words of each class alone (then ``ret``) are SIGILL at the word in Unicorn,
    as in the interpreter, and that the class still yields words (coverage cannot drop)."""
    words = class_words(name, 120, seed=sum(map(ord, name)))
    assert len(words) >= 60, (name, len(words))
    codes = [w.to_bytes(4, "little") for w in words]
    counts = _compare(plain, codes, seed=3, n_cases=2, sigill_at=[0] * len(codes))
    assert counts == {"done": len(codes), "SIGILL": 2 * len(codes)}, counts


def test_class_words_inside_alphabet_genomes_agree(plain):
    """Check that alphabet genomes with one word of a class at a random place give the same
    outputs and outcomes in the interpreter and in Unicorn, faulting at that word."""
    rng = random.Random(5)
    pool = [w for i, name in enumerate(sorted(CLASSES)) for w in class_words(name, 40, seed=1000 + i)]
    codes, at = [], []
    for k in range(1200):
        alphabet = alphabet_for("arm64", n_regs=rng.randint(2, 8))
        weights = [0.0 if op.kind == "raw" else op.weight for op in alphabet.ops]
        genes = [alphabet.random_gene(rng, weights) for _ in range(rng.randint(0, 14))]
        words = list(np.frombuffer(alphabet.encode(genes), "<u4")) if genes else []
        pos = rng.randint(0, len(words))
        words.insert(pos, pool[k % len(pool)])
        codes.append(np.asarray(words, "<u4").tobytes())
        at.append(4 * pos)
    counts = _compare(plain, codes, seed=9, n_cases=8, sigill_at=at)
    assert counts["done"] >= 1100, counts                  # a few defer (memory the interpreter leaves)
    assert counts["SIGILL"] >= 8000 and counts.get("OK", 0) >= 50, counts    # branches skip some


def test_calls_agree(plain):
    """Check that ``bl`` (x30 = the next word's address in the solo slot, then the branch) gives
    what Unicorn gives: far calls fault at the target, near ones run on (a later return to
    that x30 is deferred to Unicorn), alone and inside alphabet genomes."""
    rng = np.random.default_rng(21)
    far = rng.integers(0, 1 << 26, 300, dtype=np.int64)
    near = rng.integers(-24, 24, 300, dtype=np.int64) & ((1 << 26) - 1)
    words = [0x94000000 | int(x) for x in np.concatenate([far, near])]
    ctl, _, ok = D.decode(np.asarray(words, np.uint32), np.arange(len(words) + 1, dtype=np.int64), SCRATCH, BUDGET,
                          SOLO)
    assert ok.sum() >= 450 and (ctl[ok, D.F_KIND] == D.K_BL).all()      # refused only into the arena
    codes = [w.to_bytes(4, "little") for w in words]
    counts = _compare(plain, codes, seed=4, n_cases=2)
    assert counts["SIGSEGV"] >= 600 and counts["done"] >= 400, counts
    r = random.Random(8)
    mixed = []
    for w in words[::2]:
        alphabet = alphabet_for("arm64", n_regs=r.randint(2, 8))
        weights = [0.0 if op.kind == "raw" else op.weight for op in alphabet.ops]
        genes = [alphabet.random_gene(r, weights) for _ in range(r.randint(1, 10))]
        body = list(np.frombuffer(alphabet.encode(genes), "<u4"))
        body.insert(r.randint(0, len(body)), w)
        mixed.append(np.asarray(body, "<u4").tobytes())
    mixed.append(np.asarray([0x94000002, 0x8B000000, 0xAA1E03E0, 0xD503201F], "<u4").tobytes())  # bl .+8; mov x0, x30
    counts = _compare(plain, mixed, seed=6, n_cases=4)
    assert counts["SIGSEGV"] >= 400, counts


LANE = Path(__file__).resolve().parent.parent / ".qemu-arm64" / ".ready"


@pytest.mark.skipif(ARM64.is_host() or not LANE.exists(),
                    reason="needs the qemu lane prepared (scripts/arm64-qemu.sh --prepare) on a non-arm64 host")
def test_class_words_are_sigill_natively_on_a_cortex_a72(tmp_path):
    """Check that the native backend under qemu as a Cortex-A72 (the kernel's SIGILL, caught by
    the trampoline) agrees: every word of every class is SIGILL there too. (qemu's default CPU,
    ``max``, has LSE, RCPC, MTE, PAuth...: there the feature classes execute, as they would on
    a core that has them; the interpreter follows Unicorn's A72.)"""
    root = Path(__file__).resolve().parent.parent
    codes = [w.to_bytes(4, "little") for i, name in enumerate(sorted(CLASSES)) for w in class_words(name, 30, 77 + i)]
    offsets = np.cumsum([0] + [len(c) for c in codes], dtype=np.uint64)
    np.savez(tmp_path / "in.npz", blob=np.frombuffer(b"".join(codes), np.uint8), offsets=offsets,
             inputs=np.array([[1, 2], [2**64 - 1, 0]], np.uint64), isa="arm64", seed=5, time_budget=0.05)
    proc = subprocess.run(["bash", str(root / "scripts" / "arm64-qemu.sh"), "--", str(root / "scripts" / "native_batch.py"),
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ, QEMU_CPU="cortex-a72"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcomes = np.load(tmp_path / "out.npz")["outcomes"]
    bad = [codes[i].hex() for i in np.flatnonzero((outcomes != Outcome.SIGILL).any(axis=1))]
    assert len(codes) >= 700 and not bad, bad[:10]
