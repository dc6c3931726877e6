"""The interpreter's memory model: where a load or store of a genome goes, decided per case.

Most memory words of random genomes use random register values as addresses: Unicorn faults on
them (SIGSEGV), and each fault costs a genome dearly there. The interpreter
(:func:`core.executors.interp.execute.execute`) decides per case, at run time, where an access
goes:

* the scratch area through SP (no writeback): read or written in the interpreter's copy;
* a literal load: the solo slot the slow lane runs PC-relative code in (code, return, zeros);
* every byte certainly unmapped: SIGSEGV, with no side effect. "Certainly" means the low 48
  address bits are more than ``MARGIN`` away from every region Unicorn maps
  (:mod:`core.executors.memory_map`; Unicorn ignores no address bits: a tagged address faults,
  checked by the tests);
* anything else may touch mapped memory whose contents the interpreter does not model (the
  arena, the control block, the stack below the scratch): the genome is DEFERRED to Unicorn.

Which words are loads and stores, and their operands, is the decoder's
(:func:`core.executors.interp.decoder.decode_mem`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors.memory_map import SOLO_BASE, UNICORN_FIXED

MARGIN = 1 << 20
_LOW48 = np.uint64((1 << 48) - 1)
# fixed regions of Unicorn's map: (start, size); the solo slot's size comes from the executor
_FIXED = np.array(UNICORN_FIXED, dtype=np.uint64)


@njit(cache=True)
def maybe_mapped(addr, n, solo_size):
    """Whether any byte of ``[addr, addr + n)`` may be mapped (MARGIN of slack per region)."""
    m = np.uint64(MARGIN)
    for e in range(2):
        a = (addr + np.uint64(e * (n - 1))) & _LOW48
        if a + m >= np.uint64(SOLO_BASE) and a < np.uint64(SOLO_BASE) + np.uint64(solo_size) + m:
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
