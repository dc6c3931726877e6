"""The interpreter tier: runs the decoder's micro-op rows of every supported genome on every case.

Unicorn translates every genome it has not seen before, which caps evolution far
below its target rate; random genomes are nearly all new. Most of them use only integer data
processing, forward branches, the scratch loads/stores of the gene alphabet and the SIMD
bit-count idiom (:mod:`core.executors.interp.simd`), and those are
cheap to interpret straight from their decoded words (:mod:`core.executors.interp.decoder`):
:func:`interpret` decodes a population, turns the rows whose results nothing reads into no-ops
(:mod:`core.executors.interp.liveness`) and :func:`execute` runs every supported genome on
every case. Everything else goes to Unicorn (the tier choice is :mod:`core.executors.tiered`'s).

The machine a genome finds is :mod:`core.executors.batch_state`'s: x0-x3 the case's row of
the input table, x4-x29 the batch's random values, x30 the caller's return address (the one
Unicorn's harness calls every genome with: ``lr``), scratch ``[sp, sp + scratch)`` its template,
the SIMD registers the batch's, NZCV = Z|C. PC-relative code runs as in the solo slot: the
slot's bytes (code, ``ret``, zero padding up to the mapped page's end) and the slow lane's
instruction budget (see :func:`execute`). Loads and stores are decided per case at run time
(:mod:`core.executors.interp.memory`); a genome whose access may reach memory the interpreter
does not model is reported back (deferred) and runs in Unicorn. Outcomes are OK, SIGILL,
SIGSEGV or TIMEOUT.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors.interp import memory as MEM
from core.executors.interp.bits import (M32, M64, U0, U1, add_flags, bswap64, clz64, extend, holds, rbit64, rev16,
                                        ror, sext, shift, smulh, umulh)
from core.executors.interp.decoder import (A_REG, F_AMT, F_COND, F_FLAGS, F_KIND, F_MEMF, F_O2, F_OP, F_RA, F_RD,
                                           F_RM, F_RN, F_RT2, F_SF, F_SHT, F_SIZE, F_TGT, F_WB, I_IMM, I_IMM2, K_ADC,
                                           K_ADDSUB, K_B, K_BFM, K_BL, K_CBZ, K_CCMP, K_CSEL, K_DP1, K_DP2, K_DP3,
                                           K_EXTR, K_LOGIC, K_MEM, K_MOVW, K_NOP, K_RET, K_SIGILL, K_SIMD, K_SP64,
                                           K_TBZ, M_LIT, M_LOAD, M_PAIR, M_SIGNED, M_VEC, M_W32, O2_IMM, O2_SHIFT,
                                           WB_NONE, WB_POST, ZR_READ, decode)
from core.executors.interp.liveness import eliminate_dead
from core.executors.interp.simd import S_FROM_V, S_UMOV, simd_step
from core.codes import Codes
from core.executors.memory_map import genome_sp
from core.outcome import Outcome

OK = int(Outcome.OK)
SIGILL = int(Outcome.SIGILL)
SIGSEGV = int(Outcome.SIGSEGV)
TIMEOUT = int(Outcome.TIMEOUT)

DEFER = -1   # a memory access may touch mapped memory the interpreter does not model


@njit(cache=True)
def _mem_op(pc, ctl, imm, regs, vregs, mem, words, start, end, sp_init, solo_size):
    """One load/store: OK, SIGSEGV (nothing changed) or DEFER; see :mod:`core.executors.interp.memory`."""
    flags = ctl[pc, F_MEMF]
    n1 = 1 << ctl[pc, F_SIZE]
    count = 2 if flags & M_PAIR else 1
    n = n1 * count
    load = flags & M_LOAD
    vec = flags & M_VEC
    rn = ctl[pc, F_RN]
    base = U0
    offset = imm[pc, I_IMM]
    lit = flags & M_LIT
    if lit:                                 # the solo slot: this genome, its return, zeros
        at = 4 * ctl[pc, F_TGT] + np.int64(offset)
        if at < 0 or at + n > solo_size:
            return SIGSEGV
    else:
        base = np.uint64(sp_init) if rn == 31 else regs[rn]
        if ctl[pc, F_O2] == A_REG:
            offset = extend(regs[ctl[pc, F_RM]], ctl[pc, F_SHT], ctl[pc, F_AMT], 1)
        addr = base if ctl[pc, F_WB] == WB_POST else base + offset
        d = addr - np.uint64(sp_init)
        if rn == 31 and n <= mem.shape[0] and d <= np.uint64(mem.shape[0] - n):
            at = np.int64(d)
        elif MEM.maybe_mapped(addr, n, solo_size):
            return DEFER
        else:
            return SIGSEGV
    for k in range(count):
        rt = ctl[pc, F_RD] if k == 0 else ctl[pc, F_RT2]
        o = at + k * n1
        if load:
            if vec:
                for b in range(16):
                    vregs[rt, b] = 0
                for b in range(n1):
                    vregs[rt, b] = MEM.solo_byte(words, start, end, o + b) if lit else mem[o + b]
            elif rt != 31:
                if lit:
                    v = U0
                    for b in range(n1 - 1, -1, -1):
                        v = (v << np.uint64(8)) | np.uint64(MEM.solo_byte(words, start, end, o + b))
                else:
                    v = MEM.read_le(mem, o, n1)
                if flags & M_SIGNED:
                    v = sext(v, 8 * n1)
                if flags & M_W32:
                    v &= M32
                regs[rt] = v
        elif vec:
            for b in range(n1):
                mem[o + b] = vregs[rt, b]
        else:
            MEM.write_le(mem, o, n1, regs[rt])
    if ctl[pc, F_WB] != WB_NONE:
        regs[rn] = base + offset
    return OK


@njit(cache=True, inline="always")
def _indirect(target, solo_size):
    """A return to ``target``, not the caller's: SIGSEGV if certainly unmapped, else DEFER."""
    return DEFER if MEM.maybe_mapped(target, 4, solo_size) else SIGSEGV


@njit(cache=True, inline="always")
def _vector_writes(ctl, pc, vdirty, nv):
    """Add the vector registers row ``pc`` writes (a SIMD row's vector destination, a vector
    load's one or two) to ``vdirty[:nv]``; returns the new count."""
    kind = ctl[pc, F_KIND]
    first, second = -1, -1
    if kind == K_SIMD:
        op = ctl[pc, F_OP]
        if op != S_FROM_V and op != S_UMOV:          # those write a general register
            first = ctl[pc, F_RD]
    elif ctl[pc, F_MEMF] & M_LOAD:
        first = ctl[pc, F_RD]
        if ctl[pc, F_MEMF] & M_PAIR:
            second = ctl[pc, F_RT2]
    for v in (first, second):
        if v >= 0:
            seen = False
            for k in range(nv):
                seen = seen or vdirty[k] == v
            if not seen:
                vdirty[nv] = v
                nv += 1
    return nv


@njit(cache=True)
def execute(ctl, imm, words, offsets, rows, table, init_regs, scratch_tmpl, simd_tmpl, budget, post, sp_init,
            solo_size, lr, outputs, outcomes, deferred):
    """Run genomes ``rows`` on every case; fills their rows of ``outputs`` / ``outcomes``.

    ``table``: uint64 [n_cases, 4] argument registers; ``init_regs``: uint64 [k, 32] the
    random register values; ``scratch_tmpl``: uint8 [k, scratch] the scratch template;
    ``simd_tmpl``: uint8 [k, 32, 16] the SIMD registers (the slow lane loads them); k = 1: the
    batch's, for every case; k = n_cases: case i's in row i (per-case states). A genome
    whose memory access may reach modelled-nowhere memory is flagged in ``deferred`` instead.

    Counting follows the slow lane's ``count``: the genome may execute ``budget`` instructions,
    the appended return included, to end OK; an instruction that traps still traps as the
    ``budget + post``-th (``post``: the harness instructions after the return); past that, or
    on a return past ``budget``, the case is TIMEOUT. A branch to unmapped memory faults as
    soon as the branch has executed.

    ``lr``: x30 at entry, the caller's return address. A return (``ret``, or the one appended
    to a body) goes to x30: the caller's return while x30 still holds ``lr``; otherwise an
    indirect branch, which faults (SIGSEGV, as a fetch from unmapped memory, whatever its
    alignment or tag: Unicorn checked) where the address is certainly unmapped, and defers
    the genome to Unicorn where it may be mapped."""
    lr = np.uint64(lr)
    n_cases = table.shape[0]
    stride = 1 if init_regs.shape[0] > 1 else 0     # per-case states: case i reads row i
    regs = np.zeros(33, dtype=np.uint64)
    vregs = simd_tmpl[0].copy()
    n_mem = scratch_tmpl.shape[1] + (-scratch_tmpl.shape[1]) % 8
    tmpl = np.zeros((scratch_tmpl.shape[0], n_mem), dtype=np.uint8)
    tmpl[:, :scratch_tmpl.shape[1]] = scratch_tmpl
    mem = tmpl[0].copy()
    mem64 = mem.view(np.uint64)        # the same bytes, as words (little-endian hosts)
    tmpl64 = tmpl.view(np.uint64)      # [k, n_mem // 8]
    limit = budget + post
    vdirty = np.zeros(32, dtype=np.int64)   # vector registers the current genome may write
    gdirty = np.zeros(32, dtype=np.int64)   # x4-x29 it may write (each row's Rd, Rt2 and Rn)
    for gi in range(rows.shape[0]):
        g = rows[gi]
        start, end = offsets[g], offsets[g + 1]
        n_words = end - start
        memops = False
        stores = False
        vecops = False
        nv = 0
        written = 0
        for pc in range(start, end):
            # every register write of a row goes to its Rd, Rt2 (pairs) or Rn (writeback): the
            # union over-approximates what the genome writes, whatever the row's kind
            written |= (1 << ctl[pc, F_RD]) | (1 << ctl[pc, F_RT2]) | (1 << ctl[pc, F_RN])
            if ctl[pc, F_KIND] == K_MEM or ctl[pc, F_KIND] == K_SP64:
                memops = True
                if (ctl[pc, F_KIND] == K_SP64 and ctl[pc, F_OP] == 0) or \
                        (ctl[pc, F_KIND] == K_MEM and not ctl[pc, F_MEMF] & M_LOAD):
                    stores = True
            if (ctl[pc, F_KIND] == K_MEM and ctl[pc, F_MEMF] & M_VEC) or ctl[pc, F_KIND] == K_SIMD:
                vecops = True
                nv = _vector_writes(ctl, pc, vdirty, nv)
        if vecops and stride == 0:           # every case starts from the batch's vector registers:
            vregs[:, :] = simd_tmpl[0]       # after this, only those the genome writes need a reset
        ng = 0
        for k in range(4, 30):
            if (written >> k) & 1:
                gdirty[ng] = k
                ng += 1
        for case in range(n_cases):
            si = case * stride
            for k in range(4):
                regs[k] = table[case, k]
            if stride or case == 0:          # under one batch state a case after the first
                for k in range(4, 30):       # resets only what the genome may have written
                    regs[k] = init_regs[si, k]
            else:
                for k in range(ng):
                    regs[gdirty[k]] = init_regs[0, gdirty[k]]
            regs[30] = lr
            regs[ZR_READ] = U0
            if memops and (stride or case == 0 or stores):
                mem64[:] = tmpl64[si]
            if vecops:
                if stride:
                    vregs[:, :] = simd_tmpl[si]
                elif case:
                    for k in range(nv):
                        vregs[vdirty[k], :] = simd_tmpl[0, vdirty[k]]
            fn, fz, fc, fv = 0, 1, 1, 0
            status = OK
            pc = start
            steps = 0
            while True:
                if pc < start or pc >= end:
                    rel = pc - start
                    if rel == n_words:               # the appended return
                        if regs[30] != lr:           # to where x30 now points
                            status = TIMEOUT if steps + 1 > limit else _indirect(regs[30], solo_size)
                        elif steps + 1 > budget:
                            status = TIMEOUT
                    elif rel < 0 or 4 * rel >= solo_size:
                        status = SIGSEGV             # fetch from unmapped memory
                    else:                            # the slot's zero padding: udf #0
                        status = TIMEOUT if steps + 1 > limit else SIGILL
                    break
                steps += 1
                if steps > limit:
                    status = TIMEOUT
                    break
                kind = ctl[pc, F_KIND]
                if kind == K_NOP:                    # nop, prfm, and rows liveness removed
                    pc += 1
                    continue
                sf = ctl[pc, F_SF]
                mask = M64 if sf else M32
                nxt = pc + 1
                if kind == K_ADDSUB or kind == K_LOGIC or kind == K_CCMP:
                    o2 = ctl[pc, F_O2]
                    if o2 == O2_IMM:
                        y = imm[pc, I_IMM]
                    elif o2 == O2_SHIFT:
                        y = shift(regs[ctl[pc, F_RM]] & mask, ctl[pc, F_SHT], ctl[pc, F_AMT], sf)
                    else:
                        y = extend(regs[ctl[pc, F_RM]], ctl[pc, F_SHT], ctl[pc, F_AMT], sf)
                    x = regs[ctl[pc, F_RN]] & mask
                    if kind == K_ADDSUB:
                        if ctl[pc, F_OP]:
                            r, n_, z_, c_, v_ = add_flags(x, ~y & mask, 1, sf)
                        else:
                            r, n_, z_, c_, v_ = add_flags(x, y, 0, sf)
                        if ctl[pc, F_FLAGS]:
                            fn, fz, fc, fv = n_, z_, c_, v_
                        regs[ctl[pc, F_RD]] = r
                    elif kind == K_LOGIC:
                        op = ctl[pc, F_OP]
                        if op & 4:
                            y = ~y & mask
                        op &= 3
                        if op == 0 or op == 3:
                            r = x & y
                        elif op == 1:
                            r = x | y
                        else:
                            r = x ^ y
                        if op == 3:
                            fn = np.int64(r >> np.uint64(63 if sf else 31))
                            fz = 1 if r == U0 else 0
                            fc = 0
                            fv = 0
                        regs[ctl[pc, F_RD]] = r
                    else:   # conditional compare
                        if holds(ctl[pc, F_COND], fn, fz, fc, fv):
                            if ctl[pc, F_OP]:
                                r, fn, fz, fc, fv = add_flags(x, ~y & mask, 1, sf)
                            else:
                                r, fn, fz, fc, fv = add_flags(x, y, 0, sf)
                        else:
                            nzcv = ctl[pc, F_FLAGS]
                            fn, fz, fc, fv = (nzcv >> 3) & 1, (nzcv >> 2) & 1, (nzcv >> 1) & 1, nzcv & 1
                elif kind == K_MOVW:
                    op = ctl[pc, F_OP]
                    if op == 2:
                        regs[ctl[pc, F_RD]] = imm[pc, I_IMM]
                    elif op == 0:
                        regs[ctl[pc, F_RD]] = ~imm[pc, I_IMM] & mask
                    else:
                        rd = ctl[pc, F_RD]
                        regs[rd] = ((regs[rd] & ~imm[pc, I_IMM2]) | imm[pc, I_IMM]) & mask
                elif kind == K_B:
                    if holds(ctl[pc, F_COND], fn, fz, fc, fv):
                        nxt = ctl[pc, F_TGT]
                        if nxt == pc:                # "b ." spins, changing nothing, till the budget
                            status = TIMEOUT
                            break
                elif kind == K_CBZ:
                    t = regs[ctl[pc, F_RN]] & mask
                    if (t != U0) == (ctl[pc, F_OP] == 1):
                        nxt = ctl[pc, F_TGT]
                elif kind == K_TBZ:
                    bit = (regs[ctl[pc, F_RN]] >> np.uint64(ctl[pc, F_AMT])) & U1
                    if bit == np.uint64(ctl[pc, F_OP]):
                        nxt = ctl[pc, F_TGT]
                elif kind == K_CSEL:
                    if holds(ctl[pc, F_COND], fn, fz, fc, fv):
                        r = regs[ctl[pc, F_RN]]
                    else:
                        r = regs[ctl[pc, F_RM]]
                        op = ctl[pc, F_OP]
                        if op == 1:
                            r = r + U1
                        elif op == 2:
                            r = ~r
                        elif op == 3:
                            r = U0 - r
                    regs[ctl[pc, F_RD]] = r & mask
                elif kind == K_DP2:
                    x = regs[ctl[pc, F_RN]] & mask
                    y = regs[ctl[pc, F_RM]] & mask
                    op = ctl[pc, F_OP]
                    if op == 2:                      # udiv
                        r = U0 if y == U0 else x // y
                    elif op == 3:                    # sdiv, rounding toward zero
                        if y == U0:
                            r = U0
                        else:
                            bits = 64 if sf else 32
                            xs = sext(x, bits)
                            ys = sext(y, bits)
                            ax = U0 - xs if np.int64(xs) < 0 else xs
                            ay = U0 - ys if np.int64(ys) < 0 else ys
                            q = ax // ay
                            r = (U0 - q if (np.int64(xs) < 0) != (np.int64(ys) < 0) else q) & mask
                    else:
                        amt = np.int64(y & np.uint64(63 if sf else 31))
                        r = shift(x, op - 8, amt, sf)
                    regs[ctl[pc, F_RD]] = r
                elif kind == K_DP3:
                    x = regs[ctl[pc, F_RN]]
                    y = regs[ctl[pc, F_RM]]
                    a = regs[ctl[pc, F_RA]]
                    op = ctl[pc, F_OP]
                    if op <= 1:
                        p = x * y
                    elif op <= 3:
                        p = sext(x, 32) * sext(y, 32)
                    elif op == 4:
                        p = smulh(x, y)
                    elif op <= 11:
                        p = (x & M32) * (y & M32)
                    else:
                        p = umulh(x, y)
                    if op == 4 or op == 12:
                        r = p
                    elif op & 1:
                        r = a - p
                    else:
                        r = a + p
                    regs[ctl[pc, F_RD]] = r & mask
                elif kind == K_SP64:
                    if ctl[pc, F_OP]:
                        regs[ctl[pc, F_RD]] = mem64[ctl[pc, F_AMT]]
                    else:
                        mem64[ctl[pc, F_AMT]] = regs[ctl[pc, F_RD]]
                elif kind == K_MEM:
                    r = _mem_op(pc, ctl, imm, regs, vregs, mem, words, start, end, sp_init, solo_size)
                    if r != OK:
                        status = r
                        break
                elif kind == K_BFM:
                    size = 64 if sf else 32
                    src = regs[ctl[pc, F_RN]] & mask
                    op = ctl[pc, F_OP]
                    dst = regs[ctl[pc, F_RA]] & mask if op == 1 else U0
                    wmask = imm[pc, I_IMM]
                    tmask = imm[pc, I_IMM2]
                    bot = (dst & ~wmask) | (ror(src, ctl[pc, F_SHT] & (size - 1), size) & wmask)
                    if op == 0:
                        top = mask if (src >> np.uint64(ctl[pc, F_AMT] & (size - 1))) & U1 else U0
                    else:
                        top = dst
                    regs[ctl[pc, F_RD]] = ((top & ~tmask) | (bot & tmask)) & mask
                elif kind == K_EXTR:
                    lsb = ctl[pc, F_AMT]
                    lo = regs[ctl[pc, F_RM]] & mask
                    if lsb == 0:
                        r = lo
                    else:
                        hi = regs[ctl[pc, F_RN]] & mask
                        size = 64 if sf else 32
                        r = ((lo >> np.uint64(lsb)) | (hi << np.uint64(size - lsb))) & mask
                    regs[ctl[pc, F_RD]] = r
                elif kind == K_DP1:
                    x = regs[ctl[pc, F_RN]] & mask
                    op = ctl[pc, F_OP]
                    if op == 0:
                        r = rbit64(x)
                        if not sf:
                            r >>= np.uint64(32)
                    elif op == 1:
                        r = rev16(x)
                    elif op == 2:
                        r = bswap64(x)
                        r = (r >> np.uint64(32)) | (r << np.uint64(32)) if sf else r >> np.uint64(32)
                    elif op == 3:
                        r = bswap64(x)
                    elif op == 4:
                        r = np.uint64(clz64(x) - (0 if sf else 32))
                    else:
                        if sf:
                            r = np.uint64(clz64(((x >> U1) ^ x) & (M64 >> U1)) - 1)
                        else:
                            r = np.uint64(clz64(((x >> U1) ^ x) & np.uint64(0x7FFFFFFF)) - 33)
                    regs[ctl[pc, F_RD]] = r & mask
                elif kind == K_ADC:
                    x = regs[ctl[pc, F_RN]] & mask
                    y = regs[ctl[pc, F_RM]] & mask
                    if ctl[pc, F_OP]:
                        y = ~y & mask
                    r, n_, z_, c_, v_ = add_flags(x, y, fc, sf)
                    if ctl[pc, F_FLAGS]:
                        fn, fz, fc, fv = n_, z_, c_, v_
                    regs[ctl[pc, F_RD]] = r
                elif kind == K_SIGILL:
                    status = SIGILL
                    break
                elif kind == K_RET:                  # the return, as the appended one: the ret
                    if regs[30] != lr:               # itself is the budget's last instruction
                        status = _indirect(regs[30], solo_size)
                    elif steps > budget:
                        status = TIMEOUT
                    break
                elif kind == K_SIMD:
                    simd_step(ctl[pc, F_OP], ctl[pc, F_SIZE], ctl[pc, F_RD], ctl[pc, F_RN], ctl[pc, F_AMT], regs, vregs)
                elif kind == K_BL:                   # a call: the return address, then a branch
                    regs[30] = imm[pc, I_IMM]
                    nxt = ctl[pc, F_TGT]
                    if nxt == pc:
                        status = TIMEOUT
                        break
                pc = nxt
            if status == DEFER:
                deferred[g] = True
                break
            outcomes[g, case] = status
            outputs[g, case] = regs[0] if status == OK else U0


def flatten(codes) -> tuple[np.ndarray, np.ndarray]:
    """One flat little-endian ``uint32`` array of every code's words, and CSR offsets (word
    indices); a ``core.codes.Codes`` already is one, and is read in place."""
    if isinstance(codes, Codes):
        return codes.words(), codes.offsets >> 2
    lengths = np.fromiter((len(c) >> 2 for c in codes), dtype=np.int64, count=len(codes))
    offsets = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    words = np.frombuffer(b"".join(codes), dtype="<u4").astype(np.uint32)
    return words, offsets


def interpret(codes, table, regs, scratch, budget: int, outputs, outcomes, *, lr: int, simd=bytes(512),
              solo_size: int = 4096, post: int = 3) -> np.ndarray:
    """Run every supported genome of ``codes``; returns the bool mask of those it ran.

    ``table``: uint64 [n_cases, 4] the input table (``BatchState.input_table``); ``regs``:
    uint64 [32] the batch's register values; ``scratch``, ``simd``: the scratch template's and
    the SIMD registers' bytes. Per-case states (``CaseStates``): ``regs`` uint64 [n_cases, 32],
    ``scratch`` uint8 [n_cases, scratch], ``simd`` uint8 [n_cases, 512]. ``solo_size``: bytes
    mapped at ``memory_map.SOLO_BASE``; ``lr``: x30 at entry, the address Unicorn's harness
    returns to (``UnicornEngine.ret_addr``; ``regs[..., 30]`` is not used); ``post``:
    harness instructions between the genome's return and the end of a slow-lane case. Rows of
    ``outputs`` / ``outcomes`` of unsupported genomes are left untouched; those of deferred ones
    may hold the cases before the deferral (the caller re-runs them elsewhere)."""
    words, offsets = flatten(codes)
    regs = np.ascontiguousarray(regs, dtype=np.uint64).reshape(-1, 32)
    scratch = np.frombuffer(scratch, dtype=np.uint8) if isinstance(scratch, bytes) else scratch
    scratch = np.ascontiguousarray(scratch, dtype=np.uint8).reshape(regs.shape[0], -1)
    simd = np.frombuffer(simd, dtype=np.uint8) if isinstance(simd, bytes) else simd
    simd = np.ascontiguousarray(simd, dtype=np.uint8).reshape(-1, 32, 16)
    if simd.shape[0] != regs.shape[0]:
        simd = np.ascontiguousarray(np.broadcast_to(simd, (regs.shape[0], 32, 16)))
    n_scratch = scratch.shape[1]
    ctl, imm, supported = decode(words, offsets, n_scratch, budget, solo_size)
    rows = np.flatnonzero(supported)
    if rows.size:
        eliminate_dead(ctl, offsets, rows, budget, np.zeros(int(np.diff(offsets).max()) + 1, np.int64))
        deferred = np.zeros(len(codes), dtype=np.bool_)
        execute(ctl, imm, words, offsets, rows, np.ascontiguousarray(table, dtype=np.uint64),
                regs, scratch.copy(), simd.copy(), budget, post,
                genome_sp("arm64", n_scratch), solo_size, np.uint64(lr), outputs, outcomes, deferred)
        supported &= ~deferred
    return supported
