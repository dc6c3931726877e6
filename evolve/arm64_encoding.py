"""Arm64 genes to machine words in bulk, with keystone consulted once per operation.

Keystone takes ~50 us per new line, and evolution keeps inventing genes (4,096 immediates of
``add``, 262,144 of ``movz``), so assembling each new gene cost more than evaluating it. A gene's
word is a template with fields: the registers and the linear immediates (``#imm12``, ``movz``'s
imm16:hw, a scratch slot, a branch distance) enter at fixed bits, the rest (shift amounts as
bitfield operands, logical masks, condition codes) take one of a few keystone-made words. The
fields are *learned from keystone* by assembling each operation with different operands and
comparing the words, then checked on further values, so keystone stays the reference (and
``tests/test_arm64_encoding.py`` compares every operation on random genes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from core.asm import assemble
from evolve import genes as G

# how an operation's immediate enters its word
_LINEAR = {"r2i12": lambda imm, slots: imm, "cmpi": lambda imm, slots: imm,
           "movw": lambda imm, slots: imm & 0x3FFFF, "mem": lambda imm, slots: imm % slots}
_TABLE = {"r2sh": 64, "r2mask": len(G.ARM64_MASKS), "csel": len(G.CONDITIONS), "cset": len(G.CONDITIONS),
          "bcond": len(G.CONDITIONS)}
_LINEAR_PROBES = {"r2i12": (1, 4095, 1234), "cmpi": (1, 4095, 77), "movw": (1, 0x3FFFF, 0x2ABCD),
                  "mem": (1, 5, 30)}


def _line(op: int, d: int, n: int, m: int, a: int, imm: int, slots: int, remaining: int) -> str:
    """The renderer's line for operation ``op`` with explicit register numbers."""
    regs = (f"x{d}", f"x{n}", f"x{m}", f"x{a}")
    return G._render_arm64((op, 0, 1, 2, imm), regs, slots, remaining)   # 4th register: regs[3]


def _word(line: str) -> int:
    return int.from_bytes(assemble([line], "arm64"), "little")


# how a gene's word is completed (``_Tables.kind``)
_NONE, _LINEAR_K, _TABLE_K, _BCOND, _CBZ, _RAW = range(6)


class _Tables:
    """Per operation: base word, per-register unit words, immediate unit or table (all int64)."""

    NONE, LINEAR, TABLE, BCOND, CBZ, RAW = _NONE, _LINEAR_K, _TABLE_K, _BCOND, _CBZ, _RAW

    def __init__(self, slots: int):
        ops = G.ARM64_ALPHABET
        n = len(ops)
        self.slots = slots
        self.kind = np.zeros(n, np.int64)
        self.lin_mode = np.zeros(n, np.int64)      # LINEAR: 0 imm, 1 imm & 0x3FFFF, 2 imm % slots
        self.base = np.zeros(n, np.int64)
        self.units = np.zeros((n, 4), np.int64)   # d, n, m, 4th register
        self.imm_unit = np.zeros(n, np.int64)
        self.tab_off = np.zeros(n, np.int64)
        self.tab_len = np.ones(n, np.int64)
        table: list[int] = []
        for op, entry in enumerate(ops):
            k = entry.kind
            if k == "raw":
                self.kind[op] = self.RAW
                continue
            branch = k in ("bcond", "cbz")
            imm0 = 1 if k == "cbz" else 0
            rem = 1 << 20 if branch else 1

            def word(imm=imm0, regs=(0, 0, 0, 0)):
                return _word(_line(op, *regs, imm, slots, rem))

            base = word()
            for r in range(4):
                regs = [0, 0, 0, 0]
                regs[r] = 1
                unit = word(regs=regs) - base
                regs[r] = 5   # check: the field is linear (value times unit, no carries)
                if unit < 0 or (unit and word(regs=regs) != base + 5 * unit):
                    raise AssertionError(f"register field of {entry.name} ({k}) is not linear")
                self.units[op, r] = unit
            if k in _LINEAR:
                self.kind[op] = self.LINEAR
                self.lin_mode[op] = {"movw": 1, "mem": 2}.get(k, 0)
                unit = word(1) - base
                for probe in _LINEAR_PROBES[k]:
                    if word(probe) != base + _LINEAR[k](probe, slots) * unit:
                        raise AssertionError(f"immediate of {entry.name} ({k}) is not linear")
                self.imm_unit[op] = unit
            elif k in ("r2sh", "r2mask", "csel", "cset"):
                self.kind[op] = self.TABLE
                words = [word(i) for i in range(_TABLE[k])]
                self.tab_off[op], self.tab_len[op] = len(table), len(words)
                table += words
                base = 0
            elif k == "bcond":
                # imm: condition imm % 12, distance min(1 + imm // 12, remaining) instructions
                self.kind[op] = self.BCOND
                n_cond = len(G.CONDITIONS)
                words = [word(i) for i in range(n_cond)]            # distance 1
                unit = word(n_cond) - words[0]                       # distance 2 - distance 1
                if unit <= 0 or unit & (unit - 1) or word(3 * n_cond) != words[0] + 3 * unit:
                    raise AssertionError("b.cond distance field not found")
                self.imm_unit[op] = unit
                self.tab_off[op], self.tab_len[op] = len(table), n_cond
                table += [w - unit for w in words]                   # stored at distance 0
                base = 0
            elif k == "cbz":
                self.kind[op] = self.CBZ
                unit = word(2) - base
                if unit <= 0 or unit & (unit - 1) or word(4) != base + 3 * unit:
                    raise AssertionError("cbz distance field not found")
                self.imm_unit[op] = unit
                base -= unit                                         # distance 0
            self.base[op] = base
        self.table = np.asarray(table or [0], np.int64)

    def encode(self, genes: np.ndarray, remaining: np.ndarray, n_regs: int) -> np.ndarray:
        """uint32 words of ``genes`` (int64 [k, 5]: op, a, b, c, imm) given the instructions
        from each gene to its genome's end (``remaining``, a branch's farthest distance)."""
        return _encode(np.ascontiguousarray(genes, np.int64), np.ascontiguousarray(remaining, np.int64),
                       n_regs, self.kind, self.lin_mode, self.base, self.units, self.imm_unit, self.tab_off,
                       self.tab_len, self.table, self.slots, len(G.CONDITIONS))


@njit(cache=True)
def _encode(genes, remaining, n_regs, kind, lin_mode, base, units, imm_unit, tab_off, tab_len, table, slots,
            n_cond):
    out = np.empty(genes.shape[0], np.uint32)
    for i in range(genes.shape[0]):
        op, a, b, c, imm = genes[i, 0], genes[i, 1], genes[i, 2], genes[i, 3], genes[i, 4]
        k = kind[op]
        if k == _RAW:
            out[i] = np.uint32(imm & 0xFFFFFFFF)
            continue
        word = (base[op] + (a % n_regs) * units[op, 0] + (b % n_regs) * units[op, 1]
                + (c % n_regs) * units[op, 2] + ((a + b + c) % n_regs) * units[op, 3])
        if k == _TABLE_K:
            word += table[tab_off[op] + imm % tab_len[op]]
        elif k == _LINEAR_K:
            mode = lin_mode[op]
            value = imm & 0x3FFFF if mode == 1 else (imm % slots if mode == 2 else imm)
            word += value * imm_unit[op]
        elif k == _BCOND:
            word += table[tab_off[op] + imm % n_cond] + min(1 + imm // n_cond, remaining[i]) * imm_unit[op]
        elif k == _CBZ:
            word += min(imm, remaining[i]) * imm_unit[op]
        out[i] = np.uint32(word)
    return out


@lru_cache(maxsize=8)
def tables(slots: int) -> _Tables:
    """The templates for ``slots`` scratch slots (built once per process, ~0.1 s)."""
    return _Tables(slots)
