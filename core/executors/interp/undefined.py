"""Words the decoder refuses that Unicorn's Cortex-A72 certainly rejects: SIGILL at that word.

Random words (the alphabet's raw genes) that survive into a population are mostly encodings
no instruction of the A72 occupies; until they were known here, each such genome went to
Unicorn's slow lane, one ``emu_start`` a case (``scripts/refused_words.py`` counts them in a
real generation loop). :func:`undefined` names them class by class, as Unicorn 2.1.4 (QEMU's
A64 decoder, the Cortex-A72 model: Armv8.0 with CRC32 and the AES/SHA1/SHA256 crypto, no LSE,
LOR, RCPC, PAuth, MTE, FlagM, FP16, SHA512/SHA3/SM) rejects them. The Arm ARM allocates some of
these words in later versions (LSE atomics, PAuth loads, MTE, ...): the interpreter follows
Unicorn, the project's reference, and so does a Jetson's kernel for the features its core
lacks. Words this module does not name stay with Unicorn, and so do the words whose fate
depends on state or on QEMU's leniency (reserved fields it ignores, constrained unpredictable
forms). ``tests/test_interp_undefined.py`` checks every class against a plain Unicorn.

Only words :func:`core.executors.interp.decoder._decode_word` refuses are asked about (see
:func:`core.executors.interp.decoder.decode`), so no decoded word changes meaning here.
Numba's cache of ``decode`` does not notice edits here (as with ``bits.py``): delete
``core/executors/interp/__pycache__/decoder.*nb*`` after editing this module.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def _branch_system(w):
    """bits[28:26] = 101: branches, exception generation, system."""
    hi = w >> 29
    if hi & 3 == 3:                          # op0 = 011, 111: unallocated
        return True
    if hi == 0b010:                          # b.cond's group: o1 (bit 24), o0 (bit 4, BC.cond
        return (w >> 25) & 1 == 1 or (w >> 24) & 1 == 1 or (w >> 4) & 1 == 1   # of FEAT_HBC)
    if hi != 0b110:
        return False
    if (w >> 25) & 1:                        # unconditional branch (register)
        opc = (w >> 21) & 15
        return (w >> 16) & 31 != 31 or opc == 3 or opc == 6 or opc == 7 or opc >= 10
    if (w >> 24) & 1 == 0:                   # exception generation: all but svc, brk and smc
        opc = (w >> 21) & 7                  # (hvc, dcps, hlt at EL0, the rest unallocated; smc
        ll = w & 3                           # traps in Unicorn after the word, not at it)
        op2 = (w >> 2) & 7
        return not (op2 == 0 and ((opc == 0 and ll & 1) or (opc == 1 and ll == 0)))
    return (w >> 22) & 3 != 0                # 1101 0101 with bits 23:22 != 00; the system class
                                             # itself: Linux's EL0 rules, Unicorn's hooks


@njit(cache=True, inline="always")
def _dp_register(w):
    """bits[28:25] = x101 with op1 (bit 28) = 1: the refused forms of the second half."""
    if (w >> 28) & 1 == 0:
        return False
    b24_21 = (w >> 21) & 15
    if b24_21 < 8 and b24_21 & 1:            # 0001, 0011, 0101, 0111: unallocated
        return True
    if b24_21 == 0:                          # adc/sbc with bits 15:10 set: FlagM (rmif, setf)
        return (w >> 10) & 0x3F != 0
    if b24_21 != 0b0110:
        return False
    sf = w >> 31
    opcode = (w >> 10) & 0x3F
    if (w >> 29) & 1:                        # S = 1: MTE's subps, else unallocated
        return True
    if (w >> 30) & 1:                        # 1 source: PAuth (opcode2 != 0), CSSC, rev32 on W
        return (w >> 16) & 31 != 0 or opcode > 5 or (sf == 0 and opcode == 3)
    if opcode == 2 or opcode == 3 or 8 <= opcode <= 11:
        return False
    if 16 <= opcode <= 23:                   # crc32: sf = 1 exactly for the x forms (sz = 11)
        return (sf == 1) != (opcode & 3 == 3)
    return True                              # MTE's subp/irg/gmi, pacga, CSSC, unallocated


@njit(cache=True, inline="always")
def _simd_fp(w):
    """bits[27:25] = 111: the SIMD&FP classes whose top bits alone make them unallocated."""
    t = w >> 28
    if t == 8 or t == 10 or t == 13 or t == 14 or t == 15:
        return True
    if t == 12:                              # SHA512, SHA3, SM3, SM4 (Armv8.2): not on the A72
        return True
    if t == 3 or t == 11:                    # scalar FP with S = 1
        return True
    if t == 9:                               # scalar FP with M = 1: only the conversions
        return (w >> 24) & 1 == 1 or ((w >> 21) & 1 == 1 and (w >> 10) & 0x3F != 0)
    return False


@njit(cache=True, inline="always")
def _bad_size_opc(w):
    """The size/opc pairs no single-register load/store has (V: > 128 bits; general: opc = 11
    with size 32 or 64 bits)."""
    size = w >> 30
    opc = (w >> 22) & 3
    if (w >> 26) & 1:
        return opc >= 2 and size != 0
    return opc == 3 and size >= 2


@njit(cache=True, inline="always")
def _load_store(w):
    """bits[28:25] = x1x0: loads and stores."""
    b29_24 = (w >> 24) & 0x3F
    v = (w >> 26) & 1
    rm = (w >> 16) & 31
    post = (w >> 23) & 1
    if b29_24 == 0x08:                       # exclusive / ordered
        o2, o1, o0 = (w >> 23) & 1, (w >> 21) & 1, (w >> 15) & 1
        if o2 == 0:
            return o1 == 1 and (w >> 31) == 0          # casp (LSE); stxp/ldxp need size 1x
        return o1 == 1 or o0 == 0                       # cas (LSE), stllr/ldlar (LOR)
    if b29_24 == 0x09 or b29_24 == 0x1D:     # unallocated
        return True
    if b29_24 == 0x19:                       # ldapur/stlur (RCPC2), MTE tag loads and stores
        return True
    if b29_24 == 0x1C:                       # ldr (literal) of SIMD&FP registers: opc = 11
        return w >> 30 == 3
    if b29_24 == 0x0C or b29_24 == 0x0D:     # SIMD structures
        if w >> 31 or (post == 0 and rm != 0):
            return True
        if b29_24 == 0x0D:
            return False
        opcode = (w >> 12) & 15
        if (w >> 21) & 1 or not (opcode == 0 or opcode == 2 or opcode == 4 or opcode == 6 or opcode == 7
                                 or opcode == 8 or opcode == 10):
            return True
        one = opcode == 2 or opcode == 6 or opcode == 7 or opcode == 10      # ld1/st1: one element
        return (w >> 10) & 3 == 3 and (w >> 30) & 1 == 0 and not one
    if b29_24 & 0x3A == 0x28:                # pairs (0x28, 0x29, 0x2c, 0x2d)
        opc = w >> 30
        if opc == 3:
            return True
        return v == 0 and opc == 1 and ((w >> 22) & 1 == 0 or (w >> 23) & 3 == 0)   # stgp (MTE), nt ldpsw
    if b29_24 & 0x3A != 0x38:                # not a single register (0x38, 0x39, 0x3c, 0x3d)
        return False
    if _bad_size_opc(w):
        return True
    if (w >> 24) & 1:                        # unsigned immediate: only the size/opc pairs
        return False
    prfm = v == 0 and w >> 30 == 3 and (w >> 22) & 3 == 2
    kind = (w >> 10) & 3
    if (w >> 21) & 1:
        if kind == 0 or kind & 1:            # atomics (LSE, RCPC's ldapr), PAuth's ldraa/ldrab
            return True
        return (w >> 14) & 1 == 0            # register offset: option<1> = 0
    if kind == 0:
        return False
    if kind == 2 and v:                      # unprivileged SIMD&FP
        return True
    return prfm                              # prfm has no writeback or unprivileged form


@njit(cache=True)
def undefined(w):
    """Whether word ``w`` (one the decoder refuses) is UNDEFINED on Unicorn's A72: SIGILL."""
    w = w & 0xFFFFFFFF
    op0 = (w >> 25) & 15
    if op0 & 0b1110 == 0b1010:
        return _branch_system(w)
    if op0 & 0b1110 == 0b1000:               # data processing (immediate): with tags (MTE), CSSC
        return (w >> 23) & 7 == 0b011
    if op0 & 0b0111 == 0b0101:
        return _dp_register(w)
    if op0 & 0b0111 == 0b0111:
        return _simd_fp(w)
    if op0 & 0b0101 == 0b0100:
        return _load_store(w)
    return False
