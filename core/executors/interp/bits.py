"""Bit-level helpers of the AArch64 pseudocode (Arm ARM, shared/functions), as Numba kernels.

Pure functions on ``uint64`` values for the decoder (:func:`bitmasks`) and the interpreter
(shifts, extends, condition codes, AddWithCarry, multiply-high, bit reversal and counting).
"""
from __future__ import annotations

import numpy as np
from numba import njit

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
M32 = np.uint64(0xFFFFFFFF)
U0 = np.uint64(0)
U1 = np.uint64(1)


@njit(cache=True, inline="always")
def ones(n):
    if n >= 64:
        return M64
    return (U1 << np.uint64(n)) - U1


@njit(cache=True, inline="always")
def mask(sf):
    return M64 if sf else M32


@njit(cache=True, inline="always")
def ror(v, r, size):
    """Rotate the ``size``-bit value ``v`` right by ``r`` (0 <= r < size)."""
    if r == 0:
        return v
    return ((v >> np.uint64(r)) | (v << np.uint64(size - r))) & ones(size)


@njit(cache=True, inline="always")
def sext(v, bits):
    """Sign-extend the low ``bits`` of ``v`` to 64 bits."""
    sh = np.uint64(64 - bits)
    return np.uint64(np.int64(v << sh) >> np.int64(sh))


@njit(cache=True)
def clz64(v):
    if v == U0:
        return 64
    n = 0
    if v >> np.uint64(32) == U0:
        n += 32
        v <<= np.uint64(32)
    if v >> np.uint64(48) == U0:
        n += 16
        v <<= np.uint64(16)
    if v >> np.uint64(56) == U0:
        n += 8
        v <<= np.uint64(8)
    if v >> np.uint64(60) == U0:
        n += 4
        v <<= np.uint64(4)
    if v >> np.uint64(62) == U0:
        n += 2
        v <<= np.uint64(2)
    if v >> np.uint64(63) == U0:
        n += 1
    return n


@njit(cache=True)
def rbit64(v):
    v = ((v >> np.uint64(1)) & np.uint64(0x5555555555555555)) | ((v & np.uint64(0x5555555555555555)) << np.uint64(1))
    v = ((v >> np.uint64(2)) & np.uint64(0x3333333333333333)) | ((v & np.uint64(0x3333333333333333)) << np.uint64(2))
    v = ((v >> np.uint64(4)) & np.uint64(0x0F0F0F0F0F0F0F0F)) | ((v & np.uint64(0x0F0F0F0F0F0F0F0F)) << np.uint64(4))
    return bswap64(v)


@njit(cache=True, inline="always")
def rev16(v):
    m = np.uint64(0x00FF00FF00FF00FF)
    return ((v & m) << np.uint64(8)) | ((v >> np.uint64(8)) & m)


@njit(cache=True)
def bswap64(v):
    v = rev16(v)
    m = np.uint64(0x0000FFFF0000FFFF)
    v = ((v & m) << np.uint64(16)) | ((v >> np.uint64(16)) & m)
    return (v << np.uint64(32)) | (v >> np.uint64(32))


@njit(cache=True)
def umulh(a, b):
    lo32 = M32
    a0, a1 = a & lo32, a >> np.uint64(32)
    b0, b1 = b & lo32, b >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & lo32) + (p10 & lo32)
    return p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))


@njit(cache=True)
def smulh(a, b):
    hi = umulh(a, b)
    if np.int64(a) < 0:
        hi -= b
    if np.int64(b) < 0:
        hi -= a
    return hi


@njit(cache=True)
def bitmasks(n, imms, immr, immediate, datasize):
    """DecodeBitMasks of the Arm ARM: (ok, wmask, tmask); ok False for a reserved pattern."""
    combined = (n << 6) | (~imms & 0x3F)
    length = -1
    for b in range(7):
        if combined >> b & 1:
            length = b
    if length < 1:
        return False, U0, U0
    levels = (1 << length) - 1
    if immediate and (imms & levels) == levels:
        return False, U0, U0
    s = imms & levels
    r = immr & levels
    d = (s - r) & levels
    esize = 1 << length
    welem = ror(ones(s + 1), r, esize)
    telem = ones(d + 1)
    wmask = U0
    tmask = U0
    for k in range(0, datasize, esize):
        wmask |= welem << np.uint64(k)
        tmask |= telem << np.uint64(k)
    return True, wmask, tmask


@njit(cache=True, inline="always")
def holds(cond, n, z, c, v):
    base = cond >> 1
    if base == 0:
        r = z == 1
    elif base == 1:
        r = c == 1
    elif base == 2:
        r = n == 1
    elif base == 3:
        r = v == 1
    elif base == 4:
        r = c == 1 and z == 0
    elif base == 5:
        r = n == v
    elif base == 6:
        r = n == v and z == 0
    else:
        return True
    if cond & 1:
        return not r
    return r


@njit(cache=True, inline="always")
def shift(v, sht, amt, sf):
    """Shifted-register operand: ``v`` (already reduced to the data size) shifted by ``amt``."""
    if amt == 0:
        return v
    a = np.uint64(amt)
    if sht == 0:
        return (v << a) & mask(sf)
    if sht == 1:
        return v >> a
    if sht == 2:
        if sf:
            return np.uint64(np.int64(v) >> np.int64(amt))
        return np.uint64(np.int64(sext(v, 32)) >> np.int64(amt)) & M32
    return ror(v, amt, 64 if sf else 32)


@njit(cache=True, inline="always")
def extend(v, opt, amt, sf):
    """Extended-register operand (UXTB..SXTX, then LSL #amt)."""
    size = opt & 3
    if size == 0:
        v &= np.uint64(0xFF)
        bits = 8
    elif size == 1:
        v &= np.uint64(0xFFFF)
        bits = 16
    elif size == 2:
        v &= M32
        bits = 32
    else:
        bits = 64
    if opt & 4 and bits < 64:
        v = sext(v, bits)
    return (v << np.uint64(amt)) & mask(sf)


@njit(cache=True, inline="always")
def add_flags(x, y, carry, sf):
    """AddWithCarry: (result, n, z, c, v) for operands already reduced to the data size."""
    if sf:
        r1 = x + y
        r = r1 + np.uint64(carry)
        c = 1 if (r1 < x or r < r1) else 0
        v = np.int64(((~(x ^ y)) & (x ^ r)) >> np.uint64(63))
        n = np.int64(r >> np.uint64(63))
    else:
        s = x + y + np.uint64(carry)
        r = s & M32
        c = np.int64(s >> np.uint64(32))
        v = np.int64((((~(x ^ y)) & (x ^ r)) >> np.uint64(31)) & U1)
        n = np.int64(r >> np.uint64(31))
    return r, n, 1 if r == U0 else 0, c, v
