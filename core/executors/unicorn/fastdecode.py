"""Bit-level facts about the AArch64 encodings evolution produces most, without capstone.

Triage needs, per instruction word, the registers it writes, its stack accesses and whether it
branches. Capstone's Python binding costs ~70 us per new word; a population of random genomes
has thousands of new words per generation, so the common integer classes are decoded here from
the encoding tables of the Arm ARM (C4.1), in a few microseconds. Anything not recognised with
certainty returns None and goes to capstone; ``tests/test_triage.py`` checks that both agree.

Register number 31 means XZR in the classes accepted below except where noted (SP for add/sub
immediate and extended register, logical immediate, and load/store bases): those forms are
either rejected here (left to capstone) or reported as SP accesses.
"""
from __future__ import annotations

from typing import NamedTuple


class WordFacts(NamedTuple):
    writes: frozenset          # 64-bit names ("x5") of general registers written
    branch: int | None         # relative target of a direct conditional/unconditional branch
    sp_mem: tuple              # ((disp, is_store), ...) for accesses based on SP


_XS = tuple(frozenset((f"x{n}",)) for n in range(31)) + (frozenset(),)   # shared: decode runs per new word


def _x(n: int) -> frozenset:
    return _XS[n]


_NONE = frozenset()
_DP2_OPS = {0b000010, 0b000011, 0b001000, 0b001001, 0b001010, 0b001011}  # udiv sdiv lslv lsrv asrv rorv
_DP3_OPS = {(0b000, 0), (0b000, 1), (0b001, 0), (0b001, 1), (0b010, 0), (0b101, 0), (0b101, 1), (0b110, 0)}


def _sext(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def decode(word: int) -> WordFacts | None:
    """Facts about ``word`` (little-endian instruction value), or None if not certain."""
    rd, rn = word & 31, (word >> 5) & 31
    sf = word >> 31
    op = (word >> 25) & 0xF
    # ---------------------------------------------------------------- data processing (register)
    if op in (0b0101, 0b1101):
        b28_24 = (word >> 24) & 0x1F
        if b28_24 == 0b01010:                                   # logical (shifted register)
            if not sf and (word >> 15) & 1:
                return None                                     # imm6 >= 32 unallocated for W
            return WordFacts(_x(rd), None, ())
        if b28_24 == 0b01011:
            if (word >> 21) & 1:                                # add/sub (extended register)
                if rn == 31 or (rd == 31 and not (word >> 29) & 1):
                    return None                                 # SP forms: capstone decides
                if ((word >> 22) & 3) or ((word >> 10) & 7) > 4:
                    return None
                return WordFacts(_x(rd), None, ())
            if ((word >> 22) & 3) == 3 or (not sf and (word >> 15) & 1):
                return None                                     # reserved shift / imm6 >= 32
            return WordFacts(_x(rd), None, ())                  # add/sub (shifted register)
        b28_21 = (word >> 21) & 0xFF
        if b28_21 == 0b11010000 and ((word >> 10) & 0x3F) == 0:  # adc/sbc(s)
            return WordFacts(_x(rd), None, ())
        if b28_21 == 0b11010010 and (word >> 29) & 1 and not (word >> 10) & 1 and not (word >> 4) & 1:
            return WordFacts(_NONE, None, ())                   # ccmp/ccmn (reg/imm)
        if b28_21 == 0b11010100 and not (word >> 29) & 1 and not (word >> 11) & 1:
            return WordFacts(_x(rd), None, ())                  # csel/csinc/csinv/csneg
        if b28_21 == 0b11010110 and not (word >> 29) & 1:
            opcode = (word >> 10) & 0x3F
            if not (word >> 30) & 1:                            # data-processing (2 source)
                return WordFacts(_x(rd), None, ()) if opcode in _DP2_OPS else None
            if ((word >> 16) & 0x1F) == 0 and opcode <= 5 and (sf or opcode != 3):
                return WordFacts(_x(rd), None, ())              # rbit rev16 rev32/rev clz cls
            return None
        if b28_24 == 0b11011 and ((word >> 29) & 3) == 0:       # data-processing (3 source)
            key = ((word >> 21) & 7, (word >> 15) & 1)
            if key in _DP3_OPS and (sf or key[0] == 0):
                return WordFacts(_x(rd), None, ())
        return None
    # ---------------------------------------------------------------- data processing (immediate)
    if (word >> 26) & 7 == 0b100:
        kind = (word >> 23) & 7
        if kind == 0b010:                                       # add/sub (immediate)
            if rn == 31 or (rd == 31 and not (word >> 29) & 1):
                return None
            return WordFacts(_x(rd), None, ())
        if kind == 0b100:                                       # logical (immediate)
            opc, n, imms = (word >> 29) & 3, (word >> 22) & 1, (word >> 10) & 0x3F
            if (rd == 31 and opc != 3) or (not sf and n):
                return None
            length = ((n << 6) | (~imms & 0x3F)).bit_length() - 1
            if length < 1 or (imms & ((1 << length) - 1)) == (1 << length) - 1:
                return None                                     # reserved bitmask pattern
            return WordFacts(_x(rd), None, ())
        if kind == 0b101:                                       # move wide
            opc, hw = (word >> 29) & 3, (word >> 21) & 3
            if opc == 1 or (not sf and hw >= 2):
                return None
            return WordFacts(_x(rd), None, ())
        if kind == 0b110:                                       # bitfield (sbfm bfm ubfm)
            if (word >> 22) & 1 != sf or (word >> 29) & 3 == 3 or (not sf and ((word >> 21) | (word >> 15)) & 1):
                return None
            return WordFacts(_x(rd), None, ())
        if kind == 0b111:                                       # extract (extr)
            if (word >> 22) & 1 != sf or (word >> 29) & 3 or (word >> 21) & 1 or (not sf and (word >> 15) & 1):
                return None
            return WordFacts(_x(rd), None, ())
        return None
    # ---------------------------------------------------------------- branches
    if (word >> 26) == 0b000101:                                # b
        return WordFacts(_NONE, 4 * _sext(word & 0x3FFFFFF, 26), ())
    if (word >> 24) == 0b01010100 and not (word >> 4) & 1:      # b.cond
        return WordFacts(_NONE, 4 * _sext((word >> 5) & 0x7FFFF, 19), ())
    if (word >> 25) & 0x3F == 0b011010:                         # cbz/cbnz
        return WordFacts(_NONE, 4 * _sext((word >> 5) & 0x7FFFF, 19), ())
    if (word >> 25) & 0x3F == 0b011011:                         # tbz/tbnz
        return WordFacts(_NONE, 4 * _sext((word >> 5) & 0x3FFF, 14), ())
    if word == 0xD503201F:                                      # nop
        return WordFacts(_NONE, None, ())
    # ---------------------------------------------------------------- loads and stores (integer)
    rt = rd
    if (word >> 27) & 7 == 0b111 and not (word >> 26) & 1:
        size, opc = word >> 30, (word >> 22) & 3
        if (word >> 24) & 3 == 0b01:                            # unsigned immediate offset
            if opc == 3 and size >= 2 or (size == 3 and opc == 2):
                return None                                     # unallocated / prfm
            store = opc == 0
            disp = ((word >> 10) & 0xFFF) << size
        elif (word >> 24) & 3 == 0 and not (word >> 21) & 1 and (word >> 10) & 3 == 0:
            if opc == 3 and size >= 2 or (size == 3 and opc == 2):
                return None                                     # unallocated / prfum
            store = opc == 0                                    # ldur/stur (unscaled)
            disp = _sext((word >> 12) & 0x1FF, 9)
        else:
            return None
        writes = _NONE if store else _x(rt)
        return WordFacts(writes, None, ((disp, store),) if rn == 31 else ())
    if (word >> 27) & 7 == 0b101 and not (word >> 26) & 1 and (word >> 23) & 3 == 0b10:
        opc, load = word >> 30, (word >> 22) & 1                # ldp/stp, signed offset
        if opc == 3 or (opc == 1 and not load):
            return None
        rt2 = (word >> 10) & 31
        if load and rt == rt2:
            return None                                         # constrained unpredictable
        scale = 3 if opc == 2 else 2
        disp = _sext((word >> 15) & 0x7F, 7) << scale
        writes = (_x(rt) | _x(rt2)) if load else _NONE
        return WordFacts(writes, None, ((disp, not load),) if rn == 31 else ())
    return None
