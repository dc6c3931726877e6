"""The interpreter tier's SIMD&FP words: the scalar bit-count idiom compilers emit.

gcc and clang -O2 count bits (popcount, parity) through the vector unit::

    fmov d0, x0; cnt v0.8b, v0.8b; addv b0, v0.8b; fmov x0, d0      (or uaddlv h0 / umov w0)

These words, and nothing else of the SIMD&FP space, are decoded here (:func:`decode_simd`, called
by :mod:`core.executors.interp.decoder` for one ``K_SIMD`` row) and run by :func:`simd_step`
(called by :mod:`core.executors.interp.execute`); :mod:`core.symbolic` translates the same rows.

* ``fmov Dd, Xn`` (``0x9E670000``), ``fmov Sd, Wn`` (``0x1E270000``): ``V[d]`` = the general
  register's 64 / 32 bits, every bit above zero;
* ``fmov Xd, Dn`` (``0x9E660000``), ``fmov Wd, Sn`` (``0x1E260000``): the low 64 / 32 bits of
  ``V[n]``, zero-extended;
* ``cnt Vd.8b/16b, Vn`` (``0x0E205800``, Q = bit 30): the popcount of each of the low 8 / 16
  bytes, the bytes above zero;
* ``addv Bd, Vn.8b/16b`` (``0x0E31B800``): the sum of the bytes mod 256 into byte 0;
  ``uaddlv Hd, Vn.8b/16b`` (``0x2E303800``): their sum into bits 15:0; everything above zero;
* ``umov Wd, Vn.B/H/S[i]``, ``umov Xd, Vn.D[i]`` (``0x0E003C00 | imm5 << 16``): the lane,
  zero-extended.

In the general-register fields (Rd of fmov to X/W and umov, Rn of fmov from X/W) 31 is XZR/WZR.
Other element sizes of cnt/addv/uaddlv, fmov's other types (half precision, ``v.d[1]``), smov,
ins, dup and every arithmetic form are left to Unicorn, as are the unallocated umov forms.

The vector registers are the interpreter's ``vregs``: uint8 [32, 16], byte ``b`` of ``v<r>``
at ``vregs[r, b]`` (little endian, as the harness loads them from ``BatchState.simd``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# SIMD micro-ops (the row's F_OP)
S_TO_V, S_FROM_V, S_CNT, S_ADDV, S_UADDLV, S_UMOV = range(6)


@njit(cache=True)
def decode_simd(w):
    """(decoded, op, width, rd, rn, lane) of word ``w``; ``rd``/``rn`` raw register numbers.

    ``width``: log2 of the bytes moved or read (fmov: 3 for X/D, 2 for W/S; cnt/addv/uaddlv:
    3 for 8b, 4 for 16b; umov: log2 of the element size); ``lane``: umov's element index."""
    rd = w & 31
    rn = (w >> 5) & 31
    q = (w >> 30) & 1
    if (w >> 25) & 7 != 0b111:             # bits 27:25 = x111: data processing, SIMD&FP
        return False, 0, 0, 0, 0, 0
    if w & 0xFFFFFC00 == 0x9E670000 or w & 0xFFFFFC00 == 0x9E660000:
        return True, S_TO_V if w & 0x10000 else S_FROM_V, 3, rd, rn, 0
    if w & 0xFFFFFC00 == 0x1E270000 or w & 0xFFFFFC00 == 0x1E260000:
        return True, S_TO_V if w & 0x10000 else S_FROM_V, 2, rd, rn, 0
    m = w & 0xBFFFFC00
    if m == 0x0E205800:
        return True, S_CNT, 3 + q, rd, rn, 0
    if m == 0x0E31B800:
        return True, S_ADDV, 3 + q, rd, rn, 0
    if m == 0x2E303800:
        return True, S_UADDLV, 3 + q, rd, rn, 0
    if w & 0xBFE0FC00 == 0x0E003C00:
        imm5 = (w >> 16) & 31
        size = 0
        while size < 4 and not (imm5 >> size) & 1:
            size += 1
        if size == 4 or (size == 3) != (q == 1):   # unallocated (imm5 = x0000, Q against the size)
            return False, 0, 0, 0, 0, 0
        return True, S_UMOV, size, rd, rn, imm5 >> (size + 1)
    return False, 0, 0, 0, 0, 0


@njit(cache=True, inline="always")
def popcount8(b):
    b = b - ((b >> 1) & 0x55)
    b = (b & 0x33) + ((b >> 2) & 0x33)
    return (b + (b >> 4)) & 0x0F


@njit(cache=True)
def simd_step(op, width, rd, rn, lane, regs, vregs):
    """Run one decoded SIMD row: ``rd``/``rn`` as the row holds them (register-file indices for
    general registers: 31 reads zero, 32 absorbs a write), ``regs`` uint64 [33], ``vregs`` uint8 [32, 16]."""
    if op == S_TO_V:
        x = regs[rn]
        n = 1 << width
        for b in range(16):
            vregs[rd, b] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(0xFF)) if b < n else np.uint8(0)
    elif op == S_FROM_V or op == S_UMOV:
        n = 1 << width
        at = n * lane
        v = np.uint64(0)
        for b in range(n - 1, -1, -1):
            v = (v << np.uint64(8)) | np.uint64(vregs[rn, at + b])
        regs[rd] = v
    elif op == S_CNT:
        n = 1 << width
        for b in range(16):
            vregs[rd, b] = np.uint8(popcount8(np.int64(vregs[rn, b]))) if b < n else np.uint8(0)
    else:                                  # addv / uaddlv: the sum of the bytes
        n = 1 << width
        s = 0
        for b in range(n):
            s += np.int64(vregs[rn, b])
        if op == S_ADDV:
            s &= 0xFF
        for b in range(16):
            vregs[rd, b] = np.uint8(0)
        vregs[rd, 0] = np.uint8(s & 0xFF)
        vregs[rd, 1] = np.uint8(s >> 8)
