"""Hacker's Delight p01-p25 (without p21), 64-bit forms, as Melvin user tasks.

    python -m evolve run --task suites/hackers_delight.py:p19

The 25 bit-manipulation problems of Gulwani, Jha, Tiwari and Venkatesan, "Synthesis of
loop-free programs" (PLDI 2011), drawn from H. S. Warren's *Hacker's Delight*; written here from
their one-line descriptions, on unsigned 64-bit inputs (``int`` in [0, 2**64)) with results
taken mod 2**64. p21 (cycling through three values a, b, c) is left out: it presumes its
input is one of the three.

Each ``pNN`` is the reference, written from the description (bit lengths, Python's
unbounded ints) where that is plain; ``pNN_symbolic`` is its z3 twin on 64-bit bit-vectors
(the classic branch-free formula where there is one), which the loader probes against the
reference and the proofs use. Booleans are 1/0. Signed problems read the 64 bits as two's
complement. Two choices make formulas total functions of 64-bit words:

* p19 shifts by ``k mod 64`` (what AArch64's register shifts do; C's ``>>`` is undefined past 63);
* p20 defines ``0 / 0`` as 0 (AArch64's ``udiv``), so ``p20(0) == 0``.

``suites/hackers_delight.c`` holds the same 24 functions in C (uint64_t), for gcc's count.
"""
from __future__ import annotations

import z3

MASK = (1 << 64) - 1
TASKS = ("p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10", "p11", "p12",
         "p13", "p14", "p15", "p16", "p17", "p18", "p19", "p20", "p22", "p23", "p24", "p25")
ARITY = {name: 1 for name in TASKS} | {"p10": 2, "p11": 2, "p12": 2, "p14": 2, "p15": 2, "p16": 2,
                                        "p19": 3, "p25": 2}


def _signed(v: int) -> int:
    v &= MASK
    return v - (1 << 64) if v >> 63 else v


def _one(cond) -> z3.BitVecRef:
    return z3.If(cond, z3.BitVecVal(1, 64), z3.BitVecVal(0, 64))


def p01(x):
    """Turn off the rightmost 1 bit."""
    return x & (x - 1) & MASK


def p01_symbolic(x):
    return x & (x - 1)


def p02(x):
    """Test whether x is of the form 2**n - 1: x & (x + 1), zero exactly then."""
    return x & (x + 1) & MASK


def p02_symbolic(x):
    return x & (x + 1)


def p03(x):
    """Isolate the rightmost 1 bit."""
    return x & -x & MASK


def p03_symbolic(x):
    return x & -x


def p04(x):
    """Mask of the rightmost 1 bit and the trailing 0s below it."""
    return (x ^ (x - 1)) & MASK


def p04_symbolic(x):
    return x ^ (x - 1)


def p05(x):
    """Right-propagate the rightmost 1 bit."""
    return (x | (x - 1)) & MASK


def p05_symbolic(x):
    return x | (x - 1)


def p06(x):
    """Turn on the rightmost 0 bit."""
    return (x | (x + 1)) & MASK


def p06_symbolic(x):
    return x | (x + 1)


def p07(x):
    """Isolate the rightmost 0 bit."""
    return ~x & (x + 1) & MASK


def p07_symbolic(x):
    return ~x & (x + 1)


def p08(x):
    """Mask of the trailing 0s."""
    return ~x & (x - 1) & MASK


def p08_symbolic(x):
    return ~x & (x - 1)


def p09(x):
    """Absolute value of a signed integer (|-2**63| wraps to 2**63)."""
    return abs(_signed(x)) & MASK


def p09_symbolic(x):
    s = x >> 63
    return (x ^ s) - s


def p10(x, y):
    """1 if nlz(x) == nlz(y) (same number of leading zeros), else 0."""
    return int(x.bit_length() == y.bit_length())


def p10_symbolic(x, y):
    return _one(z3.ULE(x ^ y, x & y))


def p11(x, y):
    """1 if nlz(x) < nlz(y), else 0."""
    return int(x.bit_length() > y.bit_length())


def p11_symbolic(x, y):
    return _one(z3.UGT(x & ~y, y))


def p12(x, y):
    """1 if nlz(x) <= nlz(y), else 0."""
    return int(x.bit_length() >= y.bit_length())


def p12_symbolic(x, y):
    return _one(z3.ULE(y & ~x, x))


def p13(x):
    """Sign of a signed integer: -1, 0 or 1."""
    s = _signed(x)
    return (1 if s > 0 else -1 if s < 0 else 0) & MASK


def p13_symbolic(x):
    return (x >> 63) | z3.LShR(-x, 63)


def p14(x, y):
    """Floor of the average of two signed integers, without overflow."""
    return ((_signed(x) + _signed(y)) >> 1) & MASK


def p14_symbolic(x, y):
    return (x & y) + ((x ^ y) >> 1)


def p15(x, y):
    """Ceiling of the average of two signed integers, without overflow."""
    return ((_signed(x) + _signed(y) + 1) >> 1) & MASK


def p15_symbolic(x, y):
    return (x | y) - ((x ^ y) >> 1)


def p16(x, y):
    """Maximum of two signed integers."""
    return max(_signed(x), _signed(y)) & MASK


def p16_symbolic(x, y):
    return ((x ^ y) & -_one(x >= y)) ^ y


def p17(x):
    """Turn off the rightmost contiguous run of 1 bits."""
    if x == 0:
        return 0
    bit = (x & -x).bit_length() - 1
    while x >> bit & 1:
        x &= ~(1 << bit)
        bit += 1
    return x


def p17_symbolic(x):
    return ((x | (x - 1)) + 1) & x


def p18(x):
    """1 if x is a power of 2, else 0."""
    return int(bin(x).count("1") == 1)


def p18_symbolic(x):
    return _one(z3.And(x != 0, x & (x - 1) == 0))


def p19(x, m, k):
    """Exchange field B (the bits of mask m) with field A, k bits above it: x, m, k (mod 64)."""
    k &= 63
    t = ((x >> k) ^ x) & m
    return (x ^ t ^ (t << k)) & MASK


def p19_symbolic(x, m, k):
    k = k & 63
    t = (z3.LShR(x, k) ^ x) & m
    return x ^ t ^ (t << k)


def p20(x):
    """Next higher unsigned number with the same number of 1 bits (Warren's formula, p20(0) = 0)."""
    smallest = x & -x
    ripple = (x + smallest) & MASK
    ones = (((x ^ ripple) >> 2) // smallest) if smallest else 0
    return ripple | ones


def p20_symbolic(x):
    smallest = x & -x
    ripple = x + smallest
    ones = z3.If(smallest == 0, z3.BitVecVal(0, 64), z3.UDiv(z3.LShR(x ^ ripple, 2), smallest))
    return ripple | ones


def p22(x):
    """Parity: 1 if x has an odd number of 1 bits, else 0."""
    return bin(x).count("1") & 1


def p22_symbolic(x):
    for shift in (32, 16, 8, 4, 2, 1):
        x = x ^ z3.LShR(x, shift)
    return x & 1


def p23(x):
    """Population count: the number of 1 bits."""
    return bin(x).count("1")


def p23_symbolic(x):
    x = x - (z3.LShR(x, 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + (z3.LShR(x, 2) & 0x3333333333333333)
    x = (x + z3.LShR(x, 4)) & 0x0F0F0F0F0F0F0F0F
    for shift in (8, 16, 32):
        x = x + z3.LShR(x, shift)
    return x & 0x7F


def p24(x):
    """Round up to the next power of 2 (0 stays 0; above 2**63 wraps to 0)."""
    return (1 << ((x - 1) & MASK).bit_length()) & MASK


def p24_symbolic(x):
    x = x - 1
    for shift in (1, 2, 4, 8, 16, 32):
        x = x | z3.LShR(x, shift)
    return x + 1


def p25(x, y):
    """High 64 bits of the unsigned 128-bit product x * y."""
    return (x * y) >> 64


def p25_symbolic(x, y):
    return z3.Extract(127, 64, z3.ZeroExt(64, x) * z3.ZeroExt(64, y))
