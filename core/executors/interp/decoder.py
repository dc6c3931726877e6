"""The one AArch64 decoder: machine words -> the micro-op table every consumer reads.

:func:`decode` turns the words of a whole population (one flat ``uint32`` array plus CSR
offsets) into a control table (one int64 row per word: kind, registers, operand form, branch
target, memory flags, see ``F_*``), an immediate table and a per-genome "supported" flag. The
interpreter (:mod:`core.executors.interp.execute`) runs those rows; Unicorn's triage reads the
same rows through :func:`word_facts` (registers written, branch target, stack accesses) and
asks capstone only about words outside it.

A genome is supported only if every word is in the subset and the result provably equals
Unicorn's, bit for bit (``tests/test_a64_interp.py`` checks): integer data processing, forward
branches and loops, PC-relative code, loads and stores of plain semantics, the SIMD bit-count
idiom (:mod:`core.executors.interp.simd`). The reserved,
unallocated and SVE encoding groups (bits[28:25] = 00xx) are UNDEFINED on Unicorn's Cortex-A72
and give SIGILL, as do the unallocated forms of the data-processing classes decoded here (imm6 >=
32 on W registers, N != sf, reserved bitmasks, ...); the words of other classes that Unicorn's
A72 certainly rejects (:mod:`core.executors.interp.undefined`, asked only about words refused
here, in :func:`decode`) are SIGILL rows too. SP as a value is outside the subset;
x30 is an ordinary register (the caller's return address at entry, see
:func:`core.executors.interp.execute.execute` for ``ret``). Loads and stores (:func:`decode_mem`): exclusives, atomics,
acquire/release, unprivileged and pointer-authenticated forms, writeback with SP or with the base
among the transferred registers (constrained unpredictable), and unallocated forms are left to
Unicorn.

PC-relative code (adr/adrp, literal loads, ``bl``'s return address), backward branches and
branches out of the code always take triage's slow lane, which runs them in the solo slot at
``memory_map.SOLO_BASE``: the decoder gives them that address.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors.interp.bits import U0, bitmasks, sext
from core.executors.interp.memory import MARGIN
from core.executors.interp.simd import S_FROM_V, S_UMOV, decode_simd
from core.executors.interp.undefined import undefined
from core.executors.memory_map import ARENA_BASE, SOLO_BASE

# micro-op kinds
K_SIGILL, K_NOP, K_ADDSUB, K_LOGIC, K_MOVW, K_BFM, K_EXTR, K_DP1, K_DP2, K_DP3, K_CSEL, K_CCMP, \
    K_ADC, K_B, K_CBZ, K_TBZ, K_MEM, K_SP64, K_RET, K_SIMD, K_BL = range(21)
RET = 0xD65F03C0   # ret (to x30): a compiled function's return, anywhere in the code

# Columns of the int64 control table, one row per word: kind; sub-operation; sf (1: 64-bit);
# destination, first, second and third source registers (indices into the register file, see
# ZR_*); operand-2 form; shift/extend type (bitfield: immr); amount (bitfield: imms, tbz: bit,
# loads/stores: register shift); S (ccmp: the nzcv immediate); branch target (flat word index;
# literal loads: the word's index in its genome); condition; loads/stores: second transfer
# register, M_* flags, log2 of the access size, writeback mode. K_SIMD rows (the bit-count
# idiom, :mod:`core.executors.interp.simd`): F_OP its S_* op, F_SIZE its width, F_AMT umov's
# lane; F_RD/F_RN vector register numbers, or register-file indices where general.
F_KIND, F_OP, F_SF, F_RD, F_RN, F_RM, F_RA, F_O2, F_SHT, F_AMT, F_FLAGS, F_TGT, F_COND, \
    F_RT2, F_MEMF, F_SIZE, F_WB = range(17)
N_FIELDS = 17
# columns of the uint64 immediate table
I_IMM, I_IMM2 = 0, 1

# operand-2 forms
O2_IMM, O2_SHIFT, O2_EXT = 0, 1, 2

ZR_READ = 31    # register-file index that always holds 0
ZR_WRITE = 32   # register-file index that absorbs writes to XZR/WZR

# decoded memory-op flags
M_LOAD, M_VEC, M_PAIR, M_SIGNED, M_W32, M_LIT, M_PRFM = 1, 2, 4, 8, 16, 32, 64
# writeback modes
WB_NONE, WB_PRE, WB_POST = 0, 1, 2
# access forms
A_IMM, A_REG = 0, 1

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


@njit(cache=True, inline="always")
def _undefined(ctl):
    """An unallocated encoding of a class the decoder knows: SIGILL when executed."""
    ctl[F_KIND] = K_SIGILL
    return True


@njit(cache=True)
def _decode_word(w, pos, start, end, solo_size, ctl, imm, strict):
    """Fill one micro-op row from word ``w`` at flat index ``pos`` of genome ``[start, end)``.

    Returns False when the word is outside the subset (the genome then goes to Unicorn).
    ``strict`` False (triage, see :func:`word_facts`): also decode the words the interpreter
    refuses only for what they would need at run time (a far branch, smulh with Ra != 31),
    so that their registers and targets are known. x30 is an ordinary register here: it holds
    the caller's return address at entry, and the interpreter checks at each return that it
    still does (see :func:`core.executors.interp.execute.execute`)."""
    rd = w & 31
    rn = (w >> 5) & 31
    rm = (w >> 16) & 31
    sf = w >> 31
    ctl[F_SF] = sf
    ctl[F_RD] = ZR_WRITE if rd == 31 else rd
    ctl[F_RN] = rn
    ctl[F_RM] = rm
    ctl[F_RA] = ZR_READ
    ctl[F_O2] = O2_IMM
    ctl[F_SHT] = 0
    ctl[F_AMT] = 0
    ctl[F_FLAGS] = 0
    ctl[F_TGT] = 0
    ctl[F_COND] = 0
    ctl[F_RT2] = 0
    ctl[F_MEMF] = 0
    ctl[F_SIZE] = 0
    ctl[F_WB] = 0
    imm[I_IMM] = U0
    imm[I_IMM2] = U0
    group = (w >> 25) & 15
    if group <= 3:                          # reserved / unallocated / SVE: UNDEFINED on A72
        ctl[F_KIND] = K_SIGILL
        return True
    if w == 0xD503201F:
        ctl[F_KIND] = K_NOP
        return True
    if w == RET:                            # a return while x30 holds the caller's return address,
        ctl[F_KIND] = K_RET                 # else an indirect branch (decided at run time)
        return True
    if (w >> 26) & 7 == 0b100:              # data processing (immediate)
        kind = (w >> 23) & 7
        if kind == 0b010:                   # add/sub (immediate)
            s = (w >> 29) & 1
            if rn == 31 or (rd == 31 and not s):
                return False
            ctl[F_KIND] = K_ADDSUB
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = s
            imm[I_IMM] = np.uint64(((w >> 10) & 0xFFF) << (12 * ((w >> 22) & 1)))
            return True
        if kind == 0b100:                   # logical (immediate)
            opc = (w >> 29) & 3
            n = (w >> 22) & 1
            ok, wmask, _t = bitmasks(n, (w >> 10) & 0x3F, (w >> 16) & 0x3F, True, 64 if sf else 32)
            if (not sf and n) or not ok:
                return _undefined(ctl)
            if rd == 31 and opc != 3:
                return False
            ctl[F_KIND] = K_LOGIC
            ctl[F_OP] = opc
            imm[I_IMM] = wmask
            return True
        if kind == 0b101:                   # move wide
            opc = (w >> 29) & 3
            hw = (w >> 21) & 3
            if opc == 1 or (not sf and hw >= 2):
                return _undefined(ctl)
            ctl[F_KIND] = K_MOVW
            ctl[F_OP] = opc
            imm[I_IMM] = np.uint64(((w >> 5) & 0xFFFF) << (16 * hw))
            imm[I_IMM2] = np.uint64(0xFFFF << (16 * hw))
            return True
        if kind == 0b110:                   # bitfield
            opc = (w >> 29) & 3
            n = (w >> 22) & 1
            immr = (w >> 16) & 0x3F
            imms = (w >> 10) & 0x3F
            if opc == 3 or n != sf or (not sf and (immr >= 32 or imms >= 32)):
                return _undefined(ctl)
            ok, wmask, tmask = bitmasks(n, imms, immr, False, 64 if sf else 32)
            if not ok:
                return False
            ctl[F_KIND] = K_BFM
            ctl[F_OP] = opc
            ctl[F_RA] = rd                   # BFM keeps bits of the destination: read it
            ctl[F_SHT] = immr
            ctl[F_AMT] = imms
            imm[I_IMM] = wmask
            imm[I_IMM2] = tmask
            return True
        if kind == 0b111:                   # extract
            imms = (w >> 10) & 0x3F
            if (w >> 22) & 1 != sf or (w >> 29) & 3 or (w >> 21) & 1 or (not sf and imms >= 32):
                return _undefined(ctl)
            ctl[F_KIND] = K_EXTR
            ctl[F_AMT] = imms
            return True
        if kind <= 0b001:                   # adr/adrp: a constant, as PC-relative code runs in
            pc = SOLO_BASE + 4 * (pos - start)   # the solo slot (triage's slow lane) at a fixed address
            off = sext(np.uint64((((w >> 5) & 0x7FFFF) << 2) | ((w >> 29) & 3)), 21)
            if sf:
                value = np.uint64(pc & ~0xFFF) + (off << np.uint64(12))
            else:
                value = np.uint64(pc) + off
            ctl[F_KIND] = K_MOVW
            ctl[F_OP] = 2
            ctl[F_SF] = 1
            imm[I_IMM] = value
            return True
        return False                        # add/sub with tags
    if (w >> 25) & 15 == 0b0101 or (w >> 25) & 15 == 0b1101:   # data processing (register)
        op1 = (w >> 28) & 1
        b24_21 = (w >> 21) & 15
        if not op1:
            if (w >> 24) & 1 == 0:          # logical (shifted register)
                amt = (w >> 10) & 0x3F
                if not sf and amt >= 32:
                    return _undefined(ctl)
                ctl[F_KIND] = K_LOGIC
                ctl[F_OP] = ((w >> 29) & 3) | (((w >> 21) & 1) << 2)
                ctl[F_O2] = O2_SHIFT
                ctl[F_SHT] = (w >> 22) & 3
                ctl[F_AMT] = amt
                return True
            if (w >> 21) & 1 == 0:          # add/sub (shifted register)
                amt = (w >> 10) & 0x3F
                if (w >> 22) & 3 == 3 or (not sf and amt >= 32):
                    return _undefined(ctl)
                ctl[F_KIND] = K_ADDSUB
                ctl[F_OP] = (w >> 30) & 1
                ctl[F_FLAGS] = (w >> 29) & 1
                ctl[F_O2] = O2_SHIFT
                ctl[F_SHT] = (w >> 22) & 3
                ctl[F_AMT] = amt
                return True
            # add/sub (extended register): Rn and (without S) Rd are SP
            s = (w >> 29) & 1
            amt = (w >> 10) & 7
            if (w >> 22) & 3 or amt > 4:
                return _undefined(ctl)
            if rn == 31 or (rd == 31 and not s):
                return False
            ctl[F_KIND] = K_ADDSUB
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = s
            ctl[F_O2] = O2_EXT
            ctl[F_SHT] = (w >> 13) & 7
            ctl[F_AMT] = amt
            return True
        if b24_21 == 0b0000:                # adc/sbc(s)
            if (w >> 10) & 0x3F:            # bits 15:10 set: FlagM space, left to Unicorn
                return False
            ctl[F_KIND] = K_ADC
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = (w >> 29) & 1
            return True
        if b24_21 == 0b0010:                # conditional compare (register / immediate)
            if not (w >> 29) & 1 or (w >> 10) & 1 or (w >> 4) & 1:
                return _undefined(ctl)
            if (w >> 11) & 1:
                ctl[F_O2] = O2_IMM
                imm[I_IMM] = np.uint64(rm)
            else:
                ctl[F_O2] = O2_SHIFT
            ctl[F_KIND] = K_CCMP
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_COND] = (w >> 12) & 15
            ctl[F_FLAGS] = w & 15            # nzcv when the condition fails
            return True
        if b24_21 == 0b0100:                # conditional select
            if (w >> 29) & 1 or (w >> 11) & 1:
                return _undefined(ctl)
            ctl[F_KIND] = K_CSEL
            ctl[F_OP] = (((w >> 30) & 1) << 1) | ((w >> 10) & 1)
            ctl[F_COND] = (w >> 12) & 15
            return True
        if b24_21 == 0b0110:                # data processing (1 or 2 source)
            if (w >> 29) & 1:                # (S set: feature spaces, left to Unicorn)
                return False
            opcode = (w >> 10) & 0x3F
            if (w >> 30) & 1:               # 1 source
                if rm != 0 or opcode > 5 or (not sf and opcode == 3):
                    return False
                ctl[F_KIND] = K_DP1
                ctl[F_OP] = opcode
                return True
            if opcode not in (2, 3, 8, 9, 10, 11):
                return False
            ctl[F_KIND] = K_DP2
            ctl[F_OP] = opcode
            return True
        if (w >> 24) & 1:                   # data processing (3 source)
            ra = (w >> 10) & 31
            op31 = (w >> 21) & 7
            o0 = (w >> 15) & 1
            if (w >> 29) & 3 or op31 in (3, 4, 7) or (op31 in (2, 6) and o0) or (not sf and op31):
                return _undefined(ctl)
            if (strict and op31 in (2, 6) and ra != 31):   # smulh/umulh: Ra should be 31
                return False
            ctl[F_KIND] = K_DP3
            ctl[F_OP] = (op31 << 1) | o0
            ctl[F_RA] = ra
            return True
        return False
    if (w >> 26) == 0b000101:               # b
        tgt = pos + _sxi(w & 0x3FFFFFF, 26)
        if strict and not _reachable(tgt - start, solo_size):
            return False
        ctl[F_KIND] = K_B
        ctl[F_COND] = 14
        ctl[F_TGT] = tgt
        return True
    if (w >> 26) == 0b100101 and strict:    # bl as the slow lane runs it: x30 = the address of
        tgt = pos + _sxi(w & 0x3FFFFFF, 26)  # the next word in the solo slot (non-strict, as triage
        if not _reachable(tgt - start, solo_size):   # and the native plans read words: refused)
            return False
        ctl[F_KIND] = K_BL
        ctl[F_TGT] = tgt
        imm[I_IMM] = np.uint64(SOLO_BASE + 4 * (pos - start + 1))
        return True
    if (w >> 24) == 0b01010100:             # b.cond
        tgt = pos + _sxi((w >> 5) & 0x7FFFF, 19)
        if (w >> 4) & 1:
            return False
        ctl[F_KIND] = K_B
        ctl[F_COND] = w & 15
        ctl[F_TGT] = tgt
        return True
    if (w >> 25) & 0x3F == 0b011010:        # cbz/cbnz
        tgt = pos + _sxi((w >> 5) & 0x7FFFF, 19)
        ctl[F_KIND] = K_CBZ
        ctl[F_OP] = (w >> 24) & 1
        ctl[F_RN] = rd
        ctl[F_TGT] = tgt
        return True
    if (w >> 25) & 0x3F == 0b011011:        # tbz/tbnz
        tgt = pos + _sxi((w >> 5) & 0x3FFF, 14)
        ctl[F_KIND] = K_TBZ
        ctl[F_OP] = (w >> 24) & 1
        ctl[F_RN] = rd
        ctl[F_AMT] = (sf << 5) | ((w >> 19) & 31)
        ctl[F_TGT] = tgt
        return True
    if (w >> 25) & 7 == 0b111:              # SIMD&FP: the bit-count idiom only
        ok, op, width, vd, vn, lane = decode_simd(w)
        general_rd = op == S_FROM_V or op == S_UMOV
        if not ok:
            return False
        ctl[F_KIND] = K_SIMD
        ctl[F_OP] = op
        ctl[F_SIZE] = width
        ctl[F_AMT] = lane
        ctl[F_RD] = ZR_WRITE if general_rd and vd == 31 else vd
        ctl[F_RN] = vn
        return True
    st, flags, size, wb, rt, rt2, rn, rm, form, opt, amt, off = decode_mem(w)
    if st != DECODED:
        return False
    if flags & M_PRFM:                  # prefetch: a hint, never faults
        ctl[F_KIND] = K_NOP
        return True
    ctl[F_KIND] = K_MEM
    ctl[F_RD] = rt
    ctl[F_RT2] = rt2
    ctl[F_RN] = rn
    ctl[F_RM] = rm
    ctl[F_O2] = form
    ctl[F_SHT] = opt
    ctl[F_AMT] = amt
    ctl[F_MEMF] = flags
    ctl[F_SIZE] = size
    ctl[F_WB] = wb
    ctl[F_TGT] = pos - start
    imm[I_IMM] = np.uint64(off)
    return True


@njit(cache=True, inline="always")
def _sxi(v, bits):
    return v - (1 << bits) if (v >> (bits - 1)) & 1 else v


@njit(cache=True, inline="always")
def _reachable(rel, solo_size):
    """Whether a branch to word ``rel`` of the solo slot stays clear of the arena (nothing else
    is mapped between the solo page and the arena; below the solo page nothing is mapped)."""
    return SOLO_BASE + 4 * rel < ARENA_BASE - MARGIN


@njit(cache=True)
def decode(words, offsets, scratch, budget, solo_size=4096):
    """Micro-op tables for the genomes ``words[offsets[g]:offsets[g + 1]]``.

    ``scratch``: bytes of the scratch area (aligned 64-bit SP accesses inside it become K_SP64
    rows); ``budget`` and ``solo_size`` are checked at run time (kept for the call's shape).
    Returns (ctl int64 [n_words, N_FIELDS], imm uint64 [n_words, 2], supported bool [n])."""
    n = offsets.shape[0] - 1
    total = words.shape[0]
    ctl = np.zeros((total, N_FIELDS), dtype=np.int64)
    imm = np.zeros((total, 2), dtype=np.uint64)
    supported = np.zeros(n, dtype=np.bool_)
    for g in range(n):
        start, end = offsets[g], offsets[g + 1]
        ok = True
        for pos in range(start, end):
            if not ok:
                break
            ok = _decode_word(np.int64(words[pos]), pos, start, end, solo_size, ctl[pos], imm[pos], True)
            if not ok and undefined(np.int64(words[pos])):   # refused, but certainly UDEF on the A72
                ctl[pos, F_KIND] = K_SIGILL
                ok = True
            if ok and ctl[pos, F_KIND] == K_MEM:
                _narrow_scratch_access(ctl[pos], imm[pos], scratch)
        supported[g] = ok
    return ctl, imm, supported


@njit(cache=True, inline="always")
def _narrow_scratch_access(ctl, imm, scratch):
    """``ldr/str Xt, [sp, #8k]`` inside the scratch area (the gene alphabet's own memory genes,
    most of the accesses evolution makes) becomes K_SP64: one aligned word, no address checks."""
    flags = ctl[F_MEMF]
    off = np.int64(imm[I_IMM])
    if (flags & (M_VEC | M_PAIR | M_LIT | M_SIGNED | M_W32 | M_PRFM)) == 0 \
            and ctl[F_RN] == 31 and ctl[F_O2] == A_IMM and ctl[F_WB] == WB_NONE \
            and ctl[F_SIZE] == 3 and off >= 0 and off % 8 == 0 and off + 8 <= scratch:
        ctl[F_KIND] = K_SP64
        ctl[F_OP] = 1 if flags & M_LOAD else 0
        ctl[F_AMT] = off // 8
        if ctl[F_OP] and ctl[F_RD] == 31:
            ctl[F_RD] = ZR_WRITE


NOP = 0xD503201F
#: kinds whose row writes the register in F_RD (loads: see word_facts)
_WRITES_RD = (K_ADDSUB, K_LOGIC, K_MOVW, K_BFM, K_EXTR, K_DP1, K_DP2, K_DP3, K_CSEL, K_ADC)


@njit(cache=True)
def word_facts(w):
    """What static triage needs about word ``w``, read from its decoded row.

    Returns (known, writes, has_branch, branch, has_sp, sp_disp, sp_store): ``writes`` the bit
    mask of the general registers x0-x30 written; ``branch`` the relative byte target of a
    direct branch; ``sp_disp``/``sp_store`` the displacement and direction of an SP-based
    access (a pair counts once). ``known`` is False where the answer is not certain from the
    row alone, and capstone decides: words outside the decoder, unallocated encodings (SIGILL
    here, but capstone may name registers they touch), PC-relative words, prefetches, SIMD/FP
    words (K_SIMD: the fast lane neither loads nor restores vector registers, so capstone sends
    them to the slow lane) and register-offset or writeback accesses, pairs other than the
    signed-offset form."""
    ctl = np.zeros(N_FIELDS, dtype=np.int64)
    imm = np.zeros(2, dtype=np.uint64)
    unknown = (False, 0, False, 0, False, 0, False)
    if not _decode_word(np.int64(w), 0, 0, 1, 0, ctl, imm, False):
        return unknown
    kind = ctl[F_KIND]
    if kind == K_SIGILL or kind == K_RET or kind == K_SIMD or (kind == K_NOP and w != NOP) \
            or (w & 0x1F000000) == 0x10000000:
        return unknown
    writes = 0
    rd = ctl[F_RD]
    if kind in _WRITES_RD and rd < 31:
        writes = 1 << rd
    if kind == K_B or kind == K_CBZ or kind == K_TBZ:
        return (True, writes, True, 4 * ctl[F_TGT], False, 0, False)
    if kind != K_MEM:
        return (True, writes, False, 0, False, 0, False)
    flags = ctl[F_MEMF]
    if flags & (M_VEC | M_LIT | M_PRFM) or ctl[F_WB] != WB_NONE or ctl[F_O2] == A_REG \
            or (flags & M_PAIR and (w >> 23) & 3 != 2):
        return unknown
    load = flags & M_LOAD != 0
    if load:
        if rd < 31:
            writes |= 1 << rd
        if flags & M_PAIR and ctl[F_RT2] < 31:
            writes |= 1 << ctl[F_RT2]
    if ctl[F_RN] == 31:
        return (True, writes, False, 0, True, np.int64(imm[I_IMM]), not load)
    return (True, writes, False, 0, False, 0, False)
