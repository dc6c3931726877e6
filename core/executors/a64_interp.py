"""A Numba interpreter for a subset of AArch64: the emulated backend's first tier.

Unicorn translates every genome it has not seen before (~45 us), which caps evolution far
below its target rate; random genomes are nearly all new. Most of them use only integer data
processing, forward branches and the scratch loads/stores of the gene alphabet, and those are
cheap to interpret straight from their machine words: :func:`decode` turns the words of a whole
population (one flat ``uint32`` array plus CSR offsets) into a micro-op table and a per-genome
"supported" flag; :func:`execute` runs every supported genome on every case. Everything else
goes to Unicorn, so the subset is conservative: a genome is supported only if every word is in
it and the result provably equals Unicorn's, bit for bit (``tests/test_a64_interp.py`` checks).

The machine a genome finds is :mod:`core.executors.batch_state`'s: x0-x3 the case's row of
the input table, x4-x29 the batch's random values, scratch ``[sp, sp + scratch)`` its template,
the SIMD registers the batch's, NZCV = Z|C. x30 (the harness's return address) and SP as a
value are outside the subset.

PC-relative code (adr/adrp, literal loads), backward branches and branches out of the code
always take triage's slow lane, which runs them in the solo slot at ``harness.SOLO_BASE``: the
interpreter gives them that address, the slot's bytes (code, ``ret``, zero padding up to the
mapped page's end) and the slow lane's instruction budget (see :func:`execute`). Loads and
stores are decided per case at run time (:mod:`core.executors.a64_mem`); a genome whose access
may reach memory the interpreter does not model is reported back (deferred) and runs in Unicorn.
Outcomes are OK, SIGILL, SIGSEGV or TIMEOUT. The reserved, unallocated and SVE encoding groups
(bits[28:25] = 00xx) are UNDEFINED on Unicorn's Cortex-A72 and give SIGILL, as do the
unallocated forms of the data-processing classes decoded here (imm6 >= 32 on W registers,
N != sf, reserved bitmasks, ...); encodings that later architecture versions allocate (FlagM,
PAuth, CSSC, MTE) are left to Unicorn.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.executors import a64_mem as MEM
from core.executors import harness as H
from core.outcome import Outcome

# micro-op kinds
K_SIGILL, K_NOP, K_ADDSUB, K_LOGIC, K_MOVW, K_BFM, K_EXTR, K_DP1, K_DP2, K_DP3, K_CSEL, K_CCMP, \
    K_ADC, K_B, K_CBZ, K_TBZ, K_MEM, K_SP64 = range(18)

# Columns of the int64 control table, one row per word: kind; sub-operation; sf (1: 64-bit);
# destination, first, second and third source registers (indices into the register file, see
# ZR_*); operand-2 form; shift/extend type (bitfield: immr); amount (bitfield: imms, tbz: bit,
# loads/stores: register shift); S (ccmp: the nzcv immediate); branch target (flat word index;
# literal loads: the word's index in its genome); condition; loads/stores: second transfer
# register, a64_mem.M_* flags, log2 of the access size, writeback mode.
F_KIND, F_OP, F_SF, F_RD, F_RN, F_RM, F_RA, F_O2, F_SHT, F_AMT, F_FLAGS, F_TGT, F_COND, \
    F_RT2, F_MEMF, F_SIZE, F_WB = range(17)
N_FIELDS = 17
# columns of the uint64 immediate table
I_IMM, I_IMM2 = 0, 1

# operand-2 forms
O2_IMM, O2_SHIFT, O2_EXT = 0, 1, 2

ZR_READ = 31    # register-file index that always holds 0
ZR_WRITE = 32   # register-file index that absorbs writes to XZR/WZR

OK = int(Outcome.OK)
SIGILL = int(Outcome.SIGILL)
SIGSEGV = int(Outcome.SIGSEGV)
TIMEOUT = int(Outcome.TIMEOUT)

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
M32 = np.uint64(0xFFFFFFFF)
U0 = np.uint64(0)
U1 = np.uint64(1)


# ----------------------------------------------------------------------------- bit helpers
@njit(cache=True, inline="always")
def _ones(n):
    if n >= 64:
        return M64
    return (U1 << np.uint64(n)) - U1


@njit(cache=True, inline="always")
def _mask(sf):
    return M64 if sf else M32


@njit(cache=True, inline="always")
def _ror(v, r, size):
    """Rotate the ``size``-bit value ``v`` right by ``r`` (0 <= r < size)."""
    if r == 0:
        return v
    return ((v >> np.uint64(r)) | (v << np.uint64(size - r))) & _ones(size)


@njit(cache=True, inline="always")
def _sext(v, bits):
    """Sign-extend the low ``bits`` of ``v`` to 64 bits."""
    sh = np.uint64(64 - bits)
    return np.uint64(np.int64(v << sh) >> np.int64(sh))


@njit(cache=True)
def _clz64(v):
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
def _rbit64(v):
    v = ((v >> np.uint64(1)) & np.uint64(0x5555555555555555)) | ((v & np.uint64(0x5555555555555555)) << np.uint64(1))
    v = ((v >> np.uint64(2)) & np.uint64(0x3333333333333333)) | ((v & np.uint64(0x3333333333333333)) << np.uint64(2))
    v = ((v >> np.uint64(4)) & np.uint64(0x0F0F0F0F0F0F0F0F)) | ((v & np.uint64(0x0F0F0F0F0F0F0F0F)) << np.uint64(4))
    return _bswap64(v)


@njit(cache=True, inline="always")
def _rev16(v):
    m = np.uint64(0x00FF00FF00FF00FF)
    return ((v & m) << np.uint64(8)) | ((v >> np.uint64(8)) & m)


@njit(cache=True)
def _bswap64(v):
    v = _rev16(v)
    m = np.uint64(0x0000FFFF0000FFFF)
    v = ((v & m) << np.uint64(16)) | ((v >> np.uint64(16)) & m)
    return (v << np.uint64(32)) | (v >> np.uint64(32))


@njit(cache=True)
def _umulh(a, b):
    lo32 = M32
    a0, a1 = a & lo32, a >> np.uint64(32)
    b0, b1 = b & lo32, b >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & lo32) + (p10 & lo32)
    return p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))


@njit(cache=True)
def _smulh(a, b):
    hi = _umulh(a, b)
    if np.int64(a) < 0:
        hi -= b
    if np.int64(b) < 0:
        hi -= a
    return hi


@njit(cache=True)
def _bitmasks(n, imms, immr, immediate, datasize):
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
    welem = _ror(_ones(s + 1), r, esize)
    telem = _ones(d + 1)
    wmask = U0
    tmask = U0
    for k in range(0, datasize, esize):
        wmask |= welem << np.uint64(k)
        tmask |= telem << np.uint64(k)
    return True, wmask, tmask


@njit(cache=True, inline="always")
def _holds(cond, n, z, c, v):
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
def _shift(v, sht, amt, sf):
    """Shifted-register operand: ``v`` (already reduced to the data size) shifted by ``amt``."""
    if amt == 0:
        return v
    a = np.uint64(amt)
    if sht == 0:
        return (v << a) & _mask(sf)
    if sht == 1:
        return v >> a
    if sht == 2:
        if sf:
            return np.uint64(np.int64(v) >> np.int64(amt))
        return np.uint64(np.int64(_sext(v, 32)) >> np.int64(amt)) & M32
    return _ror(v, amt, 64 if sf else 32)


@njit(cache=True, inline="always")
def _extend(v, opt, amt, sf):
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
        v = _sext(v, bits)
    return (v << np.uint64(amt)) & _mask(sf)


# ----------------------------------------------------------------------------- decoder
@njit(cache=True, inline="always")
def _undefined(ctl):
    """An unallocated encoding of a class the decoder knows: SIGILL when executed."""
    ctl[F_KIND] = K_SIGILL
    return True


@njit(cache=True)
def _decode_word(w, pos, start, end, solo_size, ctl, imm):
    """Fill one micro-op row from word ``w`` at flat index ``pos`` of genome ``[start, end)``.

    Returns False when the word is outside the subset (the genome then goes to Unicorn)."""
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
    # registers the word uses are checked for x30 by each class below
    if (w >> 26) & 7 == 0b100:              # data processing (immediate)
        kind = (w >> 23) & 7
        if kind == 0b010:                   # add/sub (immediate)
            s = (w >> 29) & 1
            if rn == 31 or (rd == 31 and not s) or rn == 30 or rd == 30:
                return False
            ctl[F_KIND] = K_ADDSUB
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = s
            imm[I_IMM] = np.uint64(((w >> 10) & 0xFFF) << (12 * ((w >> 22) & 1)))
            return True
        if kind == 0b100:                   # logical (immediate)
            opc = (w >> 29) & 3
            n = (w >> 22) & 1
            ok, wmask, _t = _bitmasks(n, (w >> 10) & 0x3F, (w >> 16) & 0x3F, True, 64 if sf else 32)
            if (not sf and n) or not ok:
                return _undefined(ctl)
            if (rd == 31 and opc != 3) or rn == 30 or rd == 30:
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
            if rd == 30:
                return False
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
            if rn == 30 or rd == 30:
                return False
            ok, wmask, tmask = _bitmasks(n, imms, immr, False, 64 if sf else 32)
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
            if rn == 30 or rd == 30 or rm == 30:
                return False
            ctl[F_KIND] = K_EXTR
            ctl[F_AMT] = imms
            return True
        if kind <= 0b001:                   # adr/adrp: a constant, as PC-relative code runs in
            if rd == 30:                    # the solo slot (triage's slow lane) at a fixed address
                return False
            pc = H.SOLO_BASE + 4 * (pos - start)
            off = _sext(np.uint64((((w >> 5) & 0x7FFFF) << 2) | ((w >> 29) & 3)), 21)
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
        # x30 in a register field: unsupported, unless the encoding is unallocated anyway
        ccmp_imm = (w >> 21) & 0xFF == 0b11010010 and (w >> 11) & 1
        lr = rd == 30 or rn == 30 or (rm == 30 and not ccmp_imm)
        op1 = (w >> 28) & 1
        b24_21 = (w >> 21) & 15
        if not op1:
            if (w >> 24) & 1 == 0:          # logical (shifted register)
                amt = (w >> 10) & 0x3F
                if not sf and amt >= 32:
                    return _undefined(ctl)
                if lr:
                    return False
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
                if lr:
                    return False
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
            if lr or rn == 31 or (rd == 31 and not s):
                return False
            ctl[F_KIND] = K_ADDSUB
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = s
            ctl[F_O2] = O2_EXT
            ctl[F_SHT] = (w >> 13) & 7
            ctl[F_AMT] = amt
            return True
        if b24_21 == 0b0000:                # adc/sbc(s)
            if (w >> 10) & 0x3F or lr:      # bits 15:10 set: FlagM space, left to Unicorn
                return False
            ctl[F_KIND] = K_ADC
            ctl[F_OP] = (w >> 30) & 1
            ctl[F_FLAGS] = (w >> 29) & 1
            return True
        if b24_21 == 0b0010:                # conditional compare (register / immediate)
            if not (w >> 29) & 1 or (w >> 10) & 1 or (w >> 4) & 1:
                return _undefined(ctl)
            if lr:
                return False
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
            if lr:
                return False
            ctl[F_KIND] = K_CSEL
            ctl[F_OP] = (((w >> 30) & 1) << 1) | ((w >> 10) & 1)
            ctl[F_COND] = (w >> 12) & 15
            return True
        if b24_21 == 0b0110:                # data processing (1 or 2 source)
            if (w >> 29) & 1 or lr:          # (S set: feature spaces, left to Unicorn)
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
            if lr or ra == 30 or (op31 in (2, 6) and ra != 31):   # smulh/umulh: Ra should be 31
                return False
            ctl[F_KIND] = K_DP3
            ctl[F_OP] = (op31 << 1) | o0
            ctl[F_RA] = ra
            return True
        return False
    if (w >> 26) == 0b000101:               # b
        tgt = pos + _sxi(w & 0x3FFFFFF, 26)
        if not _reachable(tgt - start, solo_size):
            return False
        ctl[F_KIND] = K_B
        ctl[F_COND] = 14
        ctl[F_TGT] = tgt
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
        if rd == 30:
            return False
        ctl[F_KIND] = K_CBZ
        ctl[F_OP] = (w >> 24) & 1
        ctl[F_RN] = rd
        ctl[F_TGT] = tgt
        return True
    if (w >> 25) & 0x3F == 0b011011:        # tbz/tbnz
        tgt = pos + _sxi((w >> 5) & 0x3FFF, 14)
        if rd == 30:
            return False
        ctl[F_KIND] = K_TBZ
        ctl[F_OP] = (w >> 24) & 1
        ctl[F_RN] = rd
        ctl[F_AMT] = (sf << 5) | ((w >> 19) & 31)
        ctl[F_TGT] = tgt
        return True
    st, flags, size, wb, rt, rt2, rn, rm, form, opt, amt, off = MEM.decode_mem(w)
    if st != MEM.DECODED:
        return False
    if flags & MEM.M_PRFM:                  # prefetch: a hint, never faults
        ctl[F_KIND] = K_NOP
        return True
    vec = flags & MEM.M_VEC
    if (not vec and (rt == 30 or (flags & MEM.M_PAIR and rt2 == 30))) or rn == 30 or (form == MEM.A_REG and rm == 30):
        return False
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
    return H.SOLO_BASE + 4 * rel < H.ARENA_BASE - MEM.MARGIN


@njit(cache=True)
def decode(words, offsets, scratch, budget, solo_size=4096):
    """Micro-op tables for the genomes ``words[offsets[g]:offsets[g + 1]]``.

    ``scratch`` and ``budget`` are checked at run time (kept for the call's shape).
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
            ok = _decode_word(np.int64(words[pos]), pos, start, end, solo_size, ctl[pos], imm[pos])
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
    if (flags & (MEM.M_VEC | MEM.M_PAIR | MEM.M_LIT | MEM.M_SIGNED | MEM.M_W32 | MEM.M_PRFM)) == 0 \
            and ctl[F_RN] == 31 and ctl[F_O2] == MEM.A_IMM and ctl[F_WB] == MEM.WB_NONE \
            and ctl[F_SIZE] == 3 and off >= 0 and off % 8 == 0 and off + 8 <= scratch:
        ctl[F_KIND] = K_SP64
        ctl[F_OP] = 1 if flags & MEM.M_LOAD else 0
        ctl[F_AMT] = off // 8
        if ctl[F_OP] and ctl[F_RD] == 31:
            ctl[F_RD] = ZR_WRITE


# ----------------------------------------------------------------------------- interpreter
@njit(cache=True, inline="always")
def _add_flags(x, y, carry, sf):
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


DEFER = -1   # a memory access may touch mapped memory the interpreter does not model


@njit(cache=True)
def _mem_op(pc, ctl, imm, regs, vregs, mem, words, start, end, sp_init, solo_size):
    """One load/store: OK, SIGSEGV (nothing changed) or DEFER; see :mod:`core.executors.a64_mem`."""
    flags = ctl[pc, F_MEMF]
    n1 = 1 << ctl[pc, F_SIZE]
    count = 2 if flags & MEM.M_PAIR else 1
    n = n1 * count
    load = flags & MEM.M_LOAD
    vec = flags & MEM.M_VEC
    rn = ctl[pc, F_RN]
    base = U0
    offset = imm[pc, I_IMM]
    lit = flags & MEM.M_LIT
    if lit:                                 # the solo slot: this genome, its return, zeros
        at = 4 * ctl[pc, F_TGT] + np.int64(offset)
        if at < 0 or at + n > solo_size:
            return SIGSEGV
    else:
        base = np.uint64(sp_init) if rn == 31 else regs[rn]
        if ctl[pc, F_O2] == MEM.A_REG:
            offset = _extend(regs[ctl[pc, F_RM]], ctl[pc, F_SHT], ctl[pc, F_AMT], 1)
        addr = base if ctl[pc, F_WB] == MEM.WB_POST else base + offset
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
                if flags & MEM.M_SIGNED:
                    v = _sext(v, 8 * n1)
                if flags & MEM.M_W32:
                    v &= M32
                regs[rt] = v
        elif vec:
            for b in range(n1):
                mem[o + b] = vregs[rt, b]
        else:
            MEM.write_le(mem, o, n1, regs[rt])
    if ctl[pc, F_WB] != MEM.WB_NONE:
        regs[rn] = base + offset
    return OK


@njit(cache=True)
def execute(ctl, imm, words, offsets, rows, table, init_regs, scratch_tmpl, simd_tmpl, budget, post, sp_init,
            solo_size, outputs, outcomes, deferred):
    """Run genomes ``rows`` on every case; fills their rows of ``outputs`` / ``outcomes``.

    ``table``: uint64 [n_cases, 4] argument registers; ``init_regs``: uint64 [32] the batch's
    random register values; ``scratch_tmpl``: uint8 [scratch] the scratch template;
    ``simd_tmpl``: uint8 [32, 16] the SIMD registers (the slow lane loads them). A genome
    whose memory access may reach modelled-nowhere memory is flagged in ``deferred`` instead.

    Counting follows the slow lane's ``count``: the genome may execute ``budget`` instructions,
    the appended return included, to end OK; an instruction that traps still traps as the
    ``budget + post``-th (``post``: the harness instructions after the return); past that, or
    on a return past ``budget``, the case is TIMEOUT. A branch to unmapped memory faults as
    soon as the branch has executed."""
    n_cases = table.shape[0]
    regs = np.zeros(33, dtype=np.uint64)
    vregs = simd_tmpl.copy()
    mem = np.zeros(scratch_tmpl.shape[0] + (-scratch_tmpl.shape[0]) % 8, dtype=np.uint8)
    mem[:scratch_tmpl.shape[0]] = scratch_tmpl
    tmpl = mem.copy()
    mem64 = mem.view(np.uint64)        # the same bytes, as words (little-endian hosts)
    tmpl64 = tmpl.view(np.uint64)
    limit = budget + post
    for gi in range(rows.shape[0]):
        g = rows[gi]
        start, end = offsets[g], offsets[g + 1]
        n_words = end - start
        memops = False
        vecops = False
        for pc in range(start, end):
            if ctl[pc, F_KIND] == K_MEM or ctl[pc, F_KIND] == K_SP64:
                memops = True
            if ctl[pc, F_KIND] == K_MEM and ctl[pc, F_MEMF] & MEM.M_VEC:
                vecops = True
        for case in range(n_cases):
            for k in range(4):
                regs[k] = table[case, k]
            for k in range(4, 31):
                regs[k] = init_regs[k]
            regs[ZR_READ] = U0
            if memops:
                mem64[:] = tmpl64
            if vecops:
                vregs[:, :] = simd_tmpl
            fn, fz, fc, fv = 0, 1, 1, 0
            status = OK
            pc = start
            steps = 0
            while True:
                if pc < start or pc >= end:
                    rel = pc - start
                    if rel == n_words:               # the appended return
                        if steps + 1 > budget:
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
                sf = ctl[pc, F_SF]
                mask = M64 if sf else M32
                nxt = pc + 1
                if kind == K_ADDSUB or kind == K_LOGIC or kind == K_CCMP:
                    o2 = ctl[pc, F_O2]
                    if o2 == O2_IMM:
                        y = imm[pc, I_IMM]
                    elif o2 == O2_SHIFT:
                        y = _shift(regs[ctl[pc, F_RM]] & mask, ctl[pc, F_SHT], ctl[pc, F_AMT], sf)
                    else:
                        y = _extend(regs[ctl[pc, F_RM]], ctl[pc, F_SHT], ctl[pc, F_AMT], sf)
                    x = regs[ctl[pc, F_RN]] & mask
                    if kind == K_ADDSUB:
                        if ctl[pc, F_OP]:
                            r, n_, z_, c_, v_ = _add_flags(x, ~y & mask, 1, sf)
                        else:
                            r, n_, z_, c_, v_ = _add_flags(x, y, 0, sf)
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
                        if _holds(ctl[pc, F_COND], fn, fz, fc, fv):
                            if ctl[pc, F_OP]:
                                r, fn, fz, fc, fv = _add_flags(x, ~y & mask, 1, sf)
                            else:
                                r, fn, fz, fc, fv = _add_flags(x, y, 0, sf)
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
                    if _holds(ctl[pc, F_COND], fn, fz, fc, fv):
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
                    if _holds(ctl[pc, F_COND], fn, fz, fc, fv):
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
                            xs = _sext(x, bits)
                            ys = _sext(y, bits)
                            ax = U0 - xs if np.int64(xs) < 0 else xs
                            ay = U0 - ys if np.int64(ys) < 0 else ys
                            q = ax // ay
                            r = (U0 - q if (np.int64(xs) < 0) != (np.int64(ys) < 0) else q) & mask
                    else:
                        amt = np.int64(y & np.uint64(63 if sf else 31))
                        r = _shift(x, op - 8, amt, sf)
                    regs[ctl[pc, F_RD]] = r
                elif kind == K_DP3:
                    x = regs[ctl[pc, F_RN]]
                    y = regs[ctl[pc, F_RM]]
                    a = regs[ctl[pc, F_RA]]
                    op = ctl[pc, F_OP]
                    if op <= 1:
                        p = x * y
                    elif op <= 3:
                        p = _sext(x, 32) * _sext(y, 32)
                    elif op == 4:
                        p = _smulh(x, y)
                    elif op <= 11:
                        p = (x & M32) * (y & M32)
                    else:
                        p = _umulh(x, y)
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
                    bot = (dst & ~wmask) | (_ror(src, ctl[pc, F_SHT] & (size - 1), size) & wmask)
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
                        r = _rbit64(x)
                        if not sf:
                            r >>= np.uint64(32)
                    elif op == 1:
                        r = _rev16(x)
                    elif op == 2:
                        r = _bswap64(x)
                        r = (r >> np.uint64(32)) | (r << np.uint64(32)) if sf else r >> np.uint64(32)
                    elif op == 3:
                        r = _bswap64(x)
                    elif op == 4:
                        r = np.uint64(_clz64(x) - (0 if sf else 32))
                    else:
                        if sf:
                            r = np.uint64(_clz64(((x >> U1) ^ x) & (M64 >> U1)) - 1)
                        else:
                            r = np.uint64(_clz64(((x >> U1) ^ x) & np.uint64(0x7FFFFFFF)) - 33)
                    regs[ctl[pc, F_RD]] = r & mask
                elif kind == K_ADC:
                    x = regs[ctl[pc, F_RN]] & mask
                    y = regs[ctl[pc, F_RM]] & mask
                    if ctl[pc, F_OP]:
                        y = ~y & mask
                    r, n_, z_, c_, v_ = _add_flags(x, y, fc, sf)
                    if ctl[pc, F_FLAGS]:
                        fn, fz, fc, fv = n_, z_, c_, v_
                    regs[ctl[pc, F_RD]] = r
                elif kind == K_SIGILL:
                    status = SIGILL
                    break
                # K_NOP: nothing
                pc = nxt
            if status == DEFER:
                deferred[g] = True
                break
            outcomes[g, case] = status
            outputs[g, case] = regs[0] if status == OK else U0


def flatten(codes) -> tuple[np.ndarray, np.ndarray]:
    """One flat little-endian ``uint32`` array of every code's words, and CSR offsets."""
    lengths = np.fromiter((len(c) >> 2 for c in codes), dtype=np.int64, count=len(codes))
    offsets = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    words = np.frombuffer(b"".join(codes), dtype="<u4").astype(np.uint32)
    return words, offsets


def interpret(codes, table, regs, scratch: bytes, budget: int, outputs, outcomes, *, simd: bytes = bytes(512),
              solo_size: int = 4096, post: int = 3) -> np.ndarray:
    """Run every supported genome of ``codes``; returns the bool mask of those it ran.

    ``table``: uint64 [n_cases, 4] the input table (``BatchState.input_table``); ``regs``:
    uint64 [32] the batch's register values; ``scratch``, ``simd``: the scratch template's and
    the SIMD registers' bytes; ``solo_size``: bytes mapped at ``harness.SOLO_BASE``; ``post``:
    harness instructions between the genome's return and the end of a slow-lane case. Rows of
    ``outputs`` / ``outcomes`` of unsupported genomes are left untouched; those of deferred ones
    may hold the cases before the deferral (the caller re-runs them elsewhere)."""
    words, offsets = flatten(codes)
    ctl, imm, supported = decode(words, offsets, len(scratch), budget, solo_size)
    rows = np.flatnonzero(supported)
    if rows.size:
        deferred = np.zeros(len(codes), dtype=np.bool_)
        execute(ctl, imm, words, offsets, rows, np.ascontiguousarray(table, dtype=np.uint64),
                np.ascontiguousarray(regs, dtype=np.uint64), np.frombuffer(scratch, dtype=np.uint8).copy(),
                np.frombuffer(simd, dtype=np.uint8).reshape(32, 16).copy(), budget, post,
                H.STACK_TOP - len(scratch), solo_size, outputs, outcomes, deferred)
        supported &= ~deferred
    return supported
