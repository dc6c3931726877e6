"""Loads and stores for the arm64 interpreter tier (:mod:`core.executors.a64_interp`).

Most memory words of random genomes use random register values as addresses: Unicorn faults on
them (SIGSEGV), and each such genome cost ~0.8-2.5 ms there. The interpreter decides per case, at
run time, where an access goes:

* the scratch area through SP (no writeback): read or written in the interpreter's copy;
* a literal load: the solo slot the slow lane runs PC-relative code in (code, return, zeros);
* every byte certainly unmapped: SIGSEGV, with no side effect. "Certainly" means the low 48
  address bits are more than ``MARGIN`` away from every region the executor maps (Unicorn
  ignores no address bits: a tagged address faults, checked by the tests);
* anything else may touch mapped memory whose contents the interpreter does not model (the
  arena, the control block, the stack below the scratch): the genome is DEFERRED to Unicorn.

Only forms whose semantics are plain are decoded: exclusives, atomics, acquire/release,
unprivileged and pointer-authenticated forms, writeback with SP or with the base among the
transferred registers (constrained unpredictable), and unallocated forms are left to Unicorn.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors import harness as H

# decoded memory-op flags
M_LOAD, M_VEC, M_PAIR, M_SIGNED, M_W32, M_LIT, M_PRFM = 1, 2, 4, 8, 16, 32, 64
# writeback modes
WB_NONE, WB_PRE, WB_POST = 0, 1, 2
# access forms
A_IMM, A_REG = 0, 1

MARGIN = 1 << 20
_LOW48 = np.uint64((1 << 48) - 1)
# fixed regions of the harness map: (start, size); the solo slot's size comes from the executor
_FIXED = np.array([(H.ARENA_BASE, H.ARENA_SIZE), (H.STACK_BASE, H.STACK_SIZE), (H.DATA_BASE, H.DATA_SIZE),
                   (H.HARNESS_BASE, H.HARNESS_SIZE), (H.STATE_BASE, H.STATE_SIZE)], dtype=np.uint64)

# decode status
UNSUPPORTED, DECODED = 0, 1


@njit(cache=True, inline="always")
def _sx(v, bits):
    return v - (1 << bits) if (v >> (bits - 1)) & 1 else v


@njit(cache=True)
def decode_mem(w):
    """(status, flags, log2 size, writeback, rt, rt2, rn, rm, form, extend, shift, offset).

    ``offset``: signed byte offset (immediate forms; literal: from the word's own address)."""
    rt = w & 31
    rn = (w >> 5) & 31
    rm = (w >> 16) & 31
    rt2 = (w >> 10) & 31
    v = (w >> 26) & 1
    none = (UNSUPPORTED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    if (w >> 25) & 5 != 4:                              # not the load/store group (x1x0)
        return none
    op27 = (w >> 27) & 7
    if op27 == 0b011 and (w >> 24) & 3 == 0:            # load register (literal)
        opc = w >> 30
        off = _sx((w >> 5) & 0x7FFFF, 19) * 4
        if v:
            if opc == 3:
                return none
            return (DECODED, M_LOAD | M_VEC | M_LIT, 2 + opc, WB_NONE, rt, 0, 0, 0, A_IMM, 0, 0, off)
        if opc == 3:
            return (DECODED, M_PRFM, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if opc == 2:                                    # ldrsw
            return (DECODED, M_LOAD | M_LIT | M_SIGNED, 2, WB_NONE, rt, 0, 0, 0, A_IMM, 0, 0, off)
        return (DECODED, M_LOAD | M_LIT | (0 if opc else M_W32), 2 + opc, WB_NONE, rt, 0, 0, 0, A_IMM, 0, 0, off)
    if op27 == 0b101:                                   # load/store pair
        mode = (w >> 23) & 3
        load = (w >> 22) & 1
        opc = w >> 30
        if opc == 3:
            return none
        if v:
            size = 2 + opc
            flags = M_VEC
        else:
            if opc == 1 and (not load or mode == 0):    # stgp (MTE), or ldpsw's unallocated nt form
                return none
            size = 3 if opc == 2 else 2
            flags = M_SIGNED if opc == 1 else (M_W32 if opc == 0 else 0)
        wb = WB_POST if mode == 1 else (WB_PRE if mode == 3 else WB_NONE)
        if load:
            flags |= M_LOAD
            if rt == rt2:
                return none
        if wb != WB_NONE and (rn == 31 or (not v and (rn == rt or rn == rt2))):
            return none
        off = _sx((w >> 15) & 0x7F, 7) << size
        return (DECODED, flags | M_PAIR, size, wb, rt, rt2, rn, 0, A_IMM, 0, 0, off)
    if op27 != 0b111:
        return none
    size = w >> 30
    opc = (w >> 22) & 3
    # size/opc -> flags, log2 size
    if v:
        if opc >= 2:
            if size != 0:
                return none
            sz = 4
        else:
            sz = size
        flags = M_VEC | (M_LOAD if opc & 1 else 0)
        prfm = False
    else:
        sz = size
        prfm = size == 3 and opc == 2
        if opc == 3 and size >= 2:
            return none
        if size == 2 and opc == 2:
            flags = M_LOAD | M_SIGNED                   # ldrsw
        elif opc == 0:
            flags = M_W32 if size < 3 else 0
        elif opc == 1:
            flags = M_LOAD | (M_W32 if size < 3 else 0)
        elif opc == 2:
            flags = M_LOAD | M_SIGNED
        else:
            flags = M_LOAD | M_SIGNED | M_W32
    if (w >> 24) & 1:                                   # unsigned immediate
        if prfm:
            return (DECODED, M_PRFM, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (DECODED, flags, sz, WB_NONE, rt, 0, rn, 0, A_IMM, 0, 0, ((w >> 10) & 0xFFF) << sz)
    if (w >> 24) & 3:
        return none
    kind = (w >> 10) & 3
    if (w >> 21) & 1:
        if kind != 2:                                   # atomics (00), pointer-auth loads (x1)
            return none
        opt = (w >> 13) & 7
        if not opt & 2:
            return none
        if prfm:
            return (DECODED, M_PRFM, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        amt = sz if (w >> 12) & 1 else 0
        return (DECODED, flags, sz, WB_NONE, rt, 0, rn, rm, A_REG, opt, amt, 0)
    off = _sx((w >> 12) & 0x1FF, 9)
    if kind == 0:                                       # unscaled
        if prfm:
            return (DECODED, M_PRFM, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (DECODED, flags, sz, WB_NONE, rt, 0, rn, 0, A_IMM, 0, 0, off)
    if kind == 2 or prfm:                               # unprivileged; prfm has no writeback form
        return none
    if rn == 31 or (not v and rn == rt):
        return none
    return (DECODED, flags, sz, WB_PRE if kind == 3 else WB_POST, rt, 0, rn, 0, A_IMM, 0, 0, off)


@njit(cache=True)
def maybe_mapped(addr, n, solo_size):
    """Whether any byte of ``[addr, addr + n)`` may be mapped (MARGIN of slack per region)."""
    m = np.uint64(MARGIN)
    for e in range(2):
        a = (addr + np.uint64(e * (n - 1))) & _LOW48
        if a + m >= np.uint64(H.SOLO_BASE) and a < np.uint64(H.SOLO_BASE) + np.uint64(solo_size) + m:
            return True
        for r in range(_FIXED.shape[0]):
            if a + m >= _FIXED[r, 0] and a < _FIXED[r, 0] + _FIXED[r, 1] + m:
                return True
    return False


@njit(cache=True, inline="always")
def read_le(buf, off, n):
    """Little-endian value of ``buf[off:off + n]`` (n <= 8)."""
    r = np.uint64(0)
    for k in range(n - 1, -1, -1):
        r = (r << np.uint64(8)) | np.uint64(buf[off + k])
    return r


@njit(cache=True, inline="always")
def write_le(buf, off, n, value):
    for k in range(n):
        buf[off + k] = np.uint8((value >> np.uint64(8 * k)) & np.uint64(0xFF))


@njit(cache=True)
def solo_byte(words, start, end, off):
    """Byte ``off`` of the solo slot running genome ``words[start:end]``: code, ``ret``, zeros."""
    k = off >> 2
    n = end - start
    if k < n:
        w = np.uint32(words[start + k])
    elif k == n:
        w = np.uint32(0xD65F03C0)
    else:
        return np.uint8(0)
    return np.uint8((w >> np.uint32(8 * (off & 3))) & np.uint32(0xFF))
