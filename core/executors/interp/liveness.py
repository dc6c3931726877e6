"""Dead rows: instructions whose result nothing reads, skipped by the interpreter.

Random genomes compute much that never reaches x0: of 16 instructions over a few registers,
many write a register that is overwritten before anyone reads it, or flags no one tests.
:func:`eliminate_dead` turns such rows into K_NOP rows before :func:`execute` runs them, so
each of the 64 cases skips them. Results stay bit for bit the same: only rows that cannot
fault and write nothing but a general register or the flags are removed, only where the
result is provably dead, and only in genomes where every row runs at most once and within
the budget (no backward branch, ``n + 1 <= budget``), so instruction counts never decide a
case there. Liveness over-approximates (memory, SIMD and call rows keep every register they
name alive), which only keeps rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors.interp.decoder import (F_FLAGS, F_KIND, F_O2, F_OP, F_RA, F_RD, F_RM, F_RN, F_RT2, F_TGT,
                                           K_ADC, K_ADDSUB, K_B, K_BFM, K_BL, K_CBZ, K_CCMP, K_CSEL, K_DP1,
                                           K_DP2, K_DP3, K_EXTR, K_LOGIC, K_MOVW, K_NOP, K_RET, K_SIGILL, K_TBZ,
                                           O2_IMM)

FLAGS = np.int64(1) << np.int64(33)     # NZCV, one bit beside the 33 register-file indices
_AT_RETURN = np.int64(1 | (1 << 30))    # x0 (the result) and x30 (where the return goes)


@njit(cache=True, inline="always")
def _bit(r):
    return np.int64(1) << np.int64(r)


@njit(cache=True)
def eliminate_dead(ctl, offsets, rows, budget, live):
    """Replace the dead rows of genomes ``rows`` by K_NOP in ``ctl`` (in place); returns how
    many. ``live``: int64 scratch of at least the longest genome's length + 1."""
    removed = 0
    for gi in range(rows.shape[0]):
        g = rows[gi]
        start, end = offsets[g], offsets[g + 1]
        n = end - start
        if n + 1 > budget:
            continue
        forward = True
        for pc in range(start, end):
            k = ctl[pc, F_KIND]
            if (k == K_B or k == K_CBZ or k == K_TBZ or k == K_BL) and ctl[pc, F_TGT] <= pc:
                forward = False
        if not forward:
            continue
        live[n] = _AT_RETURN                     # the appended return
        for pc in range(end - 1, start - 1, -1):
            i = pc - start
            k = ctl[pc, F_KIND]
            out = live[i + 1]
            if k == K_SIGILL:
                live[i] = 0                      # a fault: the case's output is 0
                continue
            if k == K_RET:
                live[i] = _AT_RETURN
                continue
            if k == K_B or k == K_CBZ or k == K_TBZ or k == K_BL:
                t = ctl[pc, F_TGT] - start       # > i here; past the return: a fault, nothing live
                taken = live[t] if t <= n else np.int64(0)
                if k == K_B:
                    live[i] = taken | out | FLAGS
                elif k == K_BL:
                    live[i] = taken | out        # (the fall-through too, over-approximating)
                else:
                    live[i] = taken | out | _bit(ctl[pc, F_RN])
                continue
            rd = ctl[pc, F_RD]
            gen = np.int64(0)
            writes_flags = False
            alu = True
            if k == K_ADDSUB or k == K_LOGIC or k == K_CCMP:
                gen = _bit(ctl[pc, F_RN])
                if ctl[pc, F_O2] != O2_IMM:
                    gen |= _bit(ctl[pc, F_RM])
                if k == K_CCMP:
                    gen |= FLAGS
                    writes_flags = True
                    rd = 32                      # writes no register
                elif k == K_ADDSUB:
                    writes_flags = ctl[pc, F_FLAGS] != 0
                else:
                    writes_flags = (ctl[pc, F_OP] & 3) == 3
            elif k == K_MOVW:
                if ctl[pc, F_OP] == 3:           # movk keeps the other bits
                    gen = _bit(rd)
            elif k == K_BFM:
                gen = _bit(ctl[pc, F_RN]) | _bit(ctl[pc, F_RA])
            elif k == K_EXTR or k == K_DP2:
                gen = _bit(ctl[pc, F_RN]) | _bit(ctl[pc, F_RM])
            elif k == K_DP1:
                gen = _bit(ctl[pc, F_RN])
            elif k == K_DP3:
                gen = _bit(ctl[pc, F_RN]) | _bit(ctl[pc, F_RM]) | _bit(ctl[pc, F_RA])
            elif k == K_CSEL or k == K_ADC:
                gen = _bit(ctl[pc, F_RN]) | _bit(ctl[pc, F_RM]) | FLAGS
                writes_flags = k == K_ADC and ctl[pc, F_FLAGS] != 0
            elif k == K_NOP:
                live[i] = out
                continue
            else:                                # memory, SIMD: kept, every field named is read
                alu = False
                gen = _bit(ctl[pc, F_RD]) | _bit(ctl[pc, F_RN]) | _bit(ctl[pc, F_RM]) | _bit(ctl[pc, F_RT2])
            if alu:
                needed = (rd < 31 and (out & _bit(rd)) != 0) or (writes_flags and (out & FLAGS) != 0)
                if not needed:
                    ctl[pc, F_KIND] = K_NOP
                    removed += 1
                    live[i] = out
                    continue
                kill = _bit(rd) if rd < 31 else np.int64(0)
                if writes_flags and k != K_CCMP and k != K_ADC:
                    kill |= FLAGS
                live[i] = (out & ~kill) | gen
            else:
                live[i] = out | gen
    return removed
