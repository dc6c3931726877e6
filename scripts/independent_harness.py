"""The independent check of a claimed solution: plain Unicorn, sharing no code with Melvin.

A claim's machine code plus ``ret`` is called as an AAPCS64 function: the arguments in x0.., fresh
random x1..x29 (beyond the arguments), flags, v0-v31 and 512 bytes of stack for every case, SP on
a mapped stack, LR at a stop address. The benchmarks (``bench_search``, ``bench_proofs``) count a
claim wrong when x0 differs from the task's Python function on any case.
"""
from __future__ import annotations

import itertools
import random

MASK = (1 << 64) - 1
RET = 0xD65F03C0


def harness_inputs(rng: random.Random, n: int, arity: int) -> list[tuple[int, ...]]:
    """``n`` random input rows, then every combination of edge values (capped at 512 rows)."""
    def one() -> int:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.getrandbits(64)
        if kind == 1:
            return rng.randrange(256)
        if kind == 2:                               # a random bit length
            bits = rng.randrange(1, 65)
            return rng.getrandbits(bits) | 1 << (bits - 1)
        if kind == 3:                               # a power of two, or next to one
            return ((1 << rng.randrange(64)) + rng.choice((-1, 0, 1))) & MASK
        if kind == 4:                               # sparse or dense bits
            p = rng.choice((0.05, 0.95))
            return sum(1 << b for b in range(64) if rng.random() < p)
        return (rng.choice((0, MASK, 1 << 63)) + rng.randrange(-4, 5)) & MASK
    rows = [tuple(one() for _ in range(arity)) for _ in range(n)]
    edges = (0, 1, 2, 3, 63, 64, MASK, MASK - 1, 1 << 63, (1 << 63) - 1, 0x5555555555555555,
             0xFFFFFFFF, 1 << 32)
    return rows + list(itertools.islice(itertools.product(edges, repeat=arity), 512))


def independent_check(code: bytes, func, arity: int, n: int = 2000, seed: int = 2024) -> tuple[int, int, str]:
    """(wrong cases, cases, the first wrong one) of ``code`` + ``ret`` called as an AAPCS64 function."""
    from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, UC_PROT_ALL, Uc, UcError
    from unicorn import arm64_const as A
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    code_at, stack_at, stop_at = 0x10_0000, 0x20_0000, 0x30_0000
    uc.mem_map(code_at, 0x1_0000, UC_PROT_ALL)
    uc.mem_map(stack_at, 0x1_0000, UC_PROT_ALL)
    uc.mem_map(stop_at, 0x1000, UC_PROT_ALL)
    uc.mem_write(code_at, code + RET.to_bytes(4, "little"))
    xregs = [getattr(A, f"UC_ARM64_REG_X{k}") for k in range(29)] + [A.UC_ARM64_REG_X29]
    vregs = [getattr(A, f"UC_ARM64_REG_Q{k}") for k in range(32)]
    rng = random.Random(seed)
    sp = stack_at + 0x8000
    cases = harness_inputs(rng, n, arity)
    wrong, first = 0, ""
    for args in cases:
        for k, reg in enumerate(xregs):
            uc.reg_write(reg, args[k] if k < arity else rng.getrandbits(64))
        for reg in vregs:
            uc.reg_write(reg, rng.getrandbits(128))
        uc.reg_write(A.UC_ARM64_REG_NZCV, rng.getrandbits(4) << 28)
        uc.mem_write(sp, rng.randbytes(512))
        uc.reg_write(A.UC_ARM64_REG_SP, sp)
        uc.reg_write(A.UC_ARM64_REG_X30, stop_at)
        try:
            uc.emu_start(code_at, stop_at, 0, 100_000)
            got = uc.reg_read(A.UC_ARM64_REG_X0) if uc.reg_read(A.UC_ARM64_REG_PC) == stop_at else None
        except UcError:
            got = None
        want = func(*args) & MASK
        if got != want:
            wrong += 1
            first = first or f"({', '.join(hex(a) for a in args)}): got {got if got is None else hex(got)}, want {want:#x}"
    return wrong, len(cases), first
