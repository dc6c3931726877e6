"""The operations of the bottom-up enumeration (:mod:`evolve.bank`): the alphabet's cheap
operand forms as numpy functions on value vectors, each with the genes that compute it.

Why a second semantics: the bank combines hundreds of thousands of banked values with every
form, which one executor run per program could not afford (~12 us a program against ~0.1 us
a vector here). Nothing computed here is trusted: a program the bank hands over is run by the
executors on the enumeration's cases and then verified by the engine like any genome, and
``tests/test_bank.py`` checks every form against the interpreter on edge and random inputs.

A form is ``Form(name, arity, cost, fn, genes)``: ``fn`` maps uint64 arrays (``arity`` of them,
any equal shape) to one; ``genes(d, srcs)`` gives the genes that compute it into register ``d``
from registers ``srcs`` (``cost`` genes: compare-and-select forms are two, the NEON bit count
four, ``fmov d; cnt; addv; fmov x``). All forms are 64-bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from evolve.alphabets.arm64_ops import CONDITIONS, MASKS, OPS, SHIFTS, op_index

U = np.uint64
ONE, M64 = U(1), U(0xFFFFFFFFFFFFFFFF)
#: shift amounts of the shifted-register forms (every amount for the plain shifts)
SHIFTED_AMOUNTS = (1, 2, 3, 4, 8, 16, 32, 63)
#: 12-bit immediates of add/sub
IMM12 = tuple(range(1, 17))
#: logical masks: the first of bitmasks.ORDERED
N_MASKS = 64


@dataclass(frozen=True)
class Form:
    name: str
    arity: int
    cost: int
    fn: Callable
    genes: Callable


# ----------------------------------------------------------------------------- bit kernels
def lsl(a, s):
    return a << (s & U(63))


def lsr(a, s):
    return a >> (s & U(63))


def asr(a, s):
    return (a.view(np.int64) >> (s & U(63)).astype(np.int64)).view(U)


def ror(a, s):
    s = s & U(63)
    return np.where(s == 0, a, (a >> s) | (a << ((U(64) - s) & U(63))))


def popcount(v):
    v = v - ((v >> U(1)) & U(0x5555555555555555))
    v = (v & U(0x3333333333333333)) + ((v >> U(2)) & U(0x3333333333333333))
    v = (v + (v >> U(4))) & U(0x0F0F0F0F0F0F0F0F)
    return (v * U(0x0101010101010101)) >> U(56)


def clz(v):
    n = np.zeros(v.shape, U)
    x = v.copy()
    for s in (32, 16, 8, 4, 2, 1):
        top = x >> U(64 - s) == 0
        n += np.where(top, U(s), U(0))
        x = np.where(top, x << U(s), x)
    return n + (x == 0).astype(U)


def cls(v):
    return clz(v ^ asr(v, U(1))) - ONE


def rbit(v):
    for s, m in ((1, 0x5555555555555555), (2, 0x3333333333333333), (4, 0x0F0F0F0F0F0F0F0F)):
        v = ((v >> U(s)) & U(m)) | ((v & U(m)) << U(s))
    return rev(v)


def rev(v):
    return v.byteswap()


def rev16(v):
    m = U(0x00FF00FF00FF00FF)
    return ((v >> U(8)) & m) | ((v & m) << U(8))


def rev32(v):
    return rev16(((v >> U(16)) & U(0x0000FFFF0000FFFF)) | ((v & U(0x0000FFFF0000FFFF)) << U(16)))


def umulh(a, b):
    lo32 = U(0xFFFFFFFF)
    a0, a1, b0, b1 = a & lo32, a >> U(32), b & lo32, b >> U(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> U(32)) + (p01 & lo32) + (p10 & lo32)
    return p11 + (p01 >> U(32)) + (p10 >> U(32)) + (mid >> U(32))


def smulh(a, b):
    neg_a, neg_b = a >> U(63) == ONE, b >> U(63) == ONE
    return umulh(a, b) - np.where(neg_a, b, U(0)) - np.where(neg_b, a, U(0))


def udiv(a, b):
    return np.where(b == 0, U(0), a // np.where(b == 0, ONE, b))


def sdiv(a, b):
    neg_a, neg_b = a >> U(63) == ONE, b >> U(63) == ONE
    q = udiv(np.where(neg_a, U(0) - a, a), np.where(neg_b, U(0) - b, b))    # magnitudes, unsigned
    return np.where(neg_a ^ neg_b, U(0) - q, q)


def _signed(v):
    return v.view(np.int64)


#: condition -> predicate on (a, b) after ``cmp a, b`` (64-bit)
COMPARE = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "hs": lambda a, b: a >= b, "lo": lambda a, b: a < b,
    "hi": lambda a, b: a > b, "ls": lambda a, b: a <= b, "ge": lambda a, b: _signed(a) >= _signed(b),
    "lt": lambda a, b: _signed(a) < _signed(b), "gt": lambda a, b: _signed(a) > _signed(b),
    "le": lambda a, b: _signed(a) <= _signed(b),
}


# ----------------------------------------------------------------------------- genes
def _tok(name: str, kind: str, syntax: str | None = None) -> int:
    return op_index(name, kind, 64, syntax)


def _one(op: int, imm: int = 0):
    """genes(d, srcs) of one gene ``op d, srcs[0], srcs[1]`` with immediate ``imm``."""
    def genes(d, s):
        return [(op, d, s[0], s[1] if len(s) > 1 else 0, imm)]
    return genes


def _build() -> tuple[list[Form], list[Form]]:
    unary, binary = [], []
    for name, fn in (("neg", lambda a: U(0) - a), ("mvn", lambda a: ~a), ("clz", clz), ("rbit", rbit),
                     ("rev", rev), ("cls", cls), ("rev16", rev16), ("rev32", rev32)):
        unary.append(Form(name, 1, 1, fn, _one(_tok(name, "r2"))))
    for name, fn in (("lsl", lsl), ("lsr", lsr), ("asr", asr), ("ror", ror)):
        tok = _tok(name, "r2sh")
        for s in range(1, 64):
            unary.append(Form(f"{name}#{s}", 1, 1, lambda a, f=fn, s=s: f(a, U(s)), _one(tok, s)))
    for name, sign in (("add", 1), ("sub", -1)):
        tok = _tok(name, "r2i12")
        for k in IMM12:
            unary.append(Form(f"{name}#{k}", 1, 1, lambda a, k=k * sign: a + U(k % 2**64), _one(tok, k)))
    for name, fn in (("and", np.bitwise_and), ("orr", np.bitwise_or), ("eor", np.bitwise_xor)):
        tok = _tok(name, "r2mask")
        for k in range(N_MASKS):
            unary.append(Form(f"{name}#{MASKS[k]:#x}", 1, 1, lambda a, f=fn, m=U(MASKS[k]): f(a, m), _one(tok, k)))
    # compare with zero, then select: abs (cneg lt = csneg ge), booleans x != 0, x == 0
    cmpi, csneg, cset = _tok("cmp", "cmpi"), _tok("csneg", "csel"), _tok("cset", "cset")
    unary.append(Form("abs", 1, 2, lambda a: np.where(_signed(a) < 0, U(0) - a, a),
                      lambda d, s: [(cmpi, 0, s[0], 0, 0), (csneg, d, s[0], s[0], CONDITIONS.index("ge"))]))
    for cond in ("ne", "eq"):
        unary.append(Form(f"cset{cond}0", 1, 2, lambda a, c=cond: COMPARE[c](a, U(0)).astype(U),
                          lambda d, s, c=cond: [(cmpi, 0, s[0], 0, 0), (cset, d, 0, 0, CONDITIONS.index(c))]))
    # the NEON bit count of gcc's popcount: fmov d, x; cnt v.8b; addv b, v.8b; fmov x, d
    fx = _tok("fmov", "neon", "d{vd}, {xn}")
    cnt, addv = _tok("cnt", "neon", "v{vd}.8b, v{vn}.8b"), _tok("addv", "neon", "b{vd}, v{vn}.8b")
    xf = _tok("fmov", "neon", "{xd}, d{vn}")
    unary.append(Form("popcount", 1, 4, popcount,
                      lambda d, s: [(fx, d, s[0], 0, 0), (cnt, d, d, 0, 0), (addv, d, d, 0, 0), (xf, d, d, 0, 0)]))

    plain = {"add": np.add, "sub": np.subtract, "and": np.bitwise_and, "orr": np.bitwise_or, "eor": np.bitwise_xor,
             "bic": lambda a, b: a & ~b, "orn": lambda a, b: a | ~b, "eon": lambda a, b: a ^ ~b}
    for name, fn in plain.items():
        binary.append(Form(name, 2, 1, fn, _one(_tok(name, "r3"))))
    for name, fn in (("lsl", lsl), ("lsr", lsr), ("asr", asr), ("ror", ror), ("mul", np.multiply),
                     ("umulh", umulh), ("smulh", smulh), ("udiv", udiv), ("sdiv", sdiv)):
        binary.append(Form(f"{name}r", 2, 1, fn, _one(_tok(name, "r3"))))
    shift_fns = (lsl, lsr, asr, ror)
    for name, fn in plain.items():
        kind = "sha" if name in ("add", "sub") else "shl"
        tok = _tok(name, kind)
        for t in range(3 if kind == "sha" else 4):
            for s in SHIFTED_AMOUNTS:
                binary.append(Form(f"{name},{SHIFTS[t]}#{s}", 2, 1,
                                   lambda a, b, f=fn, g=shift_fns[t], s=U(s): f(a, g(b, s)), _one(tok, 63 * t + s - 1)))
    cmp, csel = _tok("cmp", "cmp"), _tok("csel", "csel")
    for cond in ("lt", "gt", "lo", "hi"):               # min and max, signed and unsigned
        binary.append(Form(f"csel{cond}", 2, 2, lambda a, b, c=cond: np.where(COMPARE[c](a, b), a, b),
                           lambda d, s, c=cond: [(cmp, 0, s[0], s[1], 0), (csel, d, s[0], s[1], CONDITIONS.index(c))]))
    for cond in ("eq", "ne", "lo", "hi", "lt", "gt", "hs", "ls", "ge", "le"):
        binary.append(Form(f"cset{cond}", 2, 2, lambda a, b, c=cond: COMPARE[c](a, b).astype(U),
                           lambda d, s, c=cond: [(cmp, 0, s[0], s[1], 0), (cset, d, 0, 0, CONDITIONS.index(c))]))
    return unary, binary


UNARY, BINARY = _build()

#: unary forms with an inverse (their preimage of a target is one value): name -> inverse
INVERTIBLE_UNARY = {"neg": lambda t: U(0) - t, "mvn": lambda t: ~t, "rbit": rbit, "rev": rev}
for _s in range(1, 64):
    INVERTIBLE_UNARY[f"ror#{_s}"] = lambda t, s=U(_s): ror(t, (U(64) - s) & U(63))
for _k in IMM12:
    INVERTIBLE_UNARY[f"add#{_k}"] = lambda t, k=U(_k): t - k
    INVERTIBLE_UNARY[f"sub#{_k}"] = lambda t, k=U(_k): t + k
for _k in range(N_MASKS):
    INVERTIBLE_UNARY[f"eor#{MASKS[_k]:#x}"] = lambda t, m=U(MASKS[_k]): t ^ m

#: binary forms ``t = f(a, g(b))`` solvable for ``g(b)`` given ``a``: name -> (g(b) from t and a)
SOLVE_SECOND = {"add": lambda t, a: t - a, "sub": lambda t, a: a - t, "eor": lambda t, a: t ^ a,
                "eon": lambda t, a: ~(t ^ a)}
#: the operand transforms ``g`` of the shifted-register forms, by suffix ("" is the register itself)
OPERAND_SHIFTS = {"": lambda b: b} | {f",{SHIFTS[t]}#{s}": (lambda b, g=g, s=U(s): g(b, s))
                                      for t, g in enumerate((lsl, lsr, asr)) for s in SHIFTED_AMOUNTS}
BY_NAME = {f.name: f for f in UNARY + BINARY}
assert len(BY_NAME) == len(UNARY) + len(BINARY)
assert all(OPS[g[0]].kind != "raw" for f in UNARY for g in f.genes(1, (0,)))
