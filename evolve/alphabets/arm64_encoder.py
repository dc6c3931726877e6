"""Encoding arm64 genes in bulk, by templates learned from keystone.

Evolution keeps inventing genes (4,096 immediates of ``add``, 262,144 of ``movz``, 5,334 logical
masks), and assembling each new one cost more than evaluating it. A gene's word is a template:
a base word, the registers entering at fixed bits (a unit word per register operand), and the
immediate entering one of four ways, all *learned from keystone* (keystone stays the reference;
``tests/test_arm64_encoding.py`` compares every operation on random genes):

- ``LINEAR``: ``imm & mask`` (or ``imm % slots``) times a unit word (``#imm12``, ``movz``'s
  imm16:hw, a scratch slot), checked on probes;
- ``TABLE``: one word per immediate. Small spaces (shift amounts, conditions, ``extr``'s lsb)
  are assembled whole, one keystone call per operation; the others (logical masks, bitfield
  lsb/width, shifted and extended operands, ``ccmp``'s cond/nzcv/imm5) are computed from their
  architectural fields (``N:immr:imms``, ``immr``/``imms``, type/amount, option/amount, ...),
  whose unit words are fitted to keystone's words on random probes and then checked on other
  random probes;
- ``BRANCH``: a word per condition or tested bit, plus the distance (clamped to the genome's end)
  times a unit word;
- ``RAW``: the immediate is the word.
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
from numba import njit

from core.asm import assemble, assemble_words
from evolve.alphabets import bitmasks
from evolve.alphabets.arm64_ops import COND_CODES, CONDITIONS, IMM_RANGE, OPS, render_line

NONE, LINEAR, TABLE, BRANCH, RAW = range(5)
_LINEAR_MASK = {"r2i12": 0xFFF, "cmpi": 0xFFF, "movw": 0x3FFFF, "mem": -1}     # -1: imm % slots
_ASSEMBLED = ("r2sh", "csel", "cset", "extr")                                    # whole space, one call
_COMPUTED = ("r2mask", "bfx", "bfi", "ccmpi", "ccmp", "sha", "shl", "ext")       # fitted fields
_BRANCH = {"bcond": (len(CONDITIONS), 1), "cbz": (1, 0), "tbz": (64, 1)}         # kind -> (selectors, lead)
_FAR = 1 << 20                                                                     # "no clamp" distance


def _words(lines: list[str], branches: bool = False) -> np.ndarray:
    """keystone's words for ``lines`` (one instruction each): in one call, or one call per line
    for branches (whose ``#distance`` is relative to their own line)."""
    code = assemble(lines, "arm64") if branches else assemble_words(lines, "arm64")
    if len(code) != 4 * len(lines):
        raise AssertionError("a gene line did not assemble to one word")
    return np.frombuffer(code, "<u4").astype(np.int64)


def _fields(kind: str, imm: np.ndarray, width: int) -> np.ndarray:
    """int64 [len(imm), k]: the architectural fields a computed kind's immediates encode."""
    if kind == "r2mask":
        table = np.asarray(bitmasks.FIELDS if width == 64 else bitmasks.FIELDS32, np.int64)
        return table[imm % len(table)][:, None]
    if kind in ("bfx", "bfi"):
        lsb = imm // 64 % width
        w = 1 + imm % 64 % (width - lsb)
        if kind == "bfx":                               # ubfx/sbfx/bfxil: immr = lsb, imms = lsb + w - 1
            return np.stack([lsb, lsb + w - 1], axis=1)
        return np.stack([(-lsb) % width, w - 1], axis=1)   # ubfiz/sbfiz/bfi: immr = -lsb, imms = w - 1
    codes = np.asarray(COND_CODES, np.int64)
    if kind == "ccmpi":
        return np.stack([codes[imm // 512 % len(codes)], imm // 32 % 16, imm % 32], axis=1)
    if kind == "ccmp":
        return np.stack([codes[imm // 16 % len(codes)], imm % 16], axis=1)
    if kind in ("sha", "shl"):                          # shift type (lsl, lsr, asr, ror), amount
        return np.stack([imm // 63 % (3 if kind == "sha" else 4), 1 + imm % 63 % (width - 1)], axis=1)
    if kind == "ext":                                   # option (uxtb .. sxtx), amount
        return np.stack([imm // 5 % 8, imm % 5], axis=1)
    raise ValueError(kind)


class Tables:
    """Per operation: mode, base word, per-register unit words, immediate unit or table (int64)."""

    def __init__(self, slots: int):
        n = len(OPS)
        self.slots = slots
        self.mode = np.zeros(n, np.int64)
        self.lin_mask = np.zeros(n, np.int64)
        self.base = np.zeros(n, np.int64)
        self.units = np.zeros((n, 4), np.int64)     # d, n, m, 4th register
        self.imm_unit = np.zeros(n, np.int64)
        self.tab_off = np.zeros(n, np.int64)
        self.tab_len = np.ones(n, np.int64)
        self.lead = np.zeros(n, np.int64)
        parts: list[np.ndarray] = []
        size = 0
        rng = random.Random(2024)
        for op, entry in enumerate(OPS):
            if entry.kind == "raw":
                self.mode[op] = RAW
                continue
            table, base = self._learn(op, entry, rng)
            self.base[op] = base
            if table is not None:
                self.tab_off[op], self.tab_len[op] = size, len(table)
                parts.append(table)
                size += len(table)
        self.table = np.concatenate(parts) if parts else np.zeros(1, np.int64)

    def _line(self, entry, imm: int, regs=(0, 0, 0, 0), remaining: int = _FAR) -> str:
        return render_line(entry, *regs, imm, self.slots, remaining)

    def _learn(self, op: int, entry, rng: random.Random):
        """(table or None, base word) of one operation; fills its mode, units and immediate unit."""
        k = entry.kind
        imm0 = 1 if k == "cbz" else 0
        probe = [self._line(entry, imm0)]
        for r in range(4):
            regs = [0, 0, 0, 0]
            regs[r] = 1
            probe.append(self._line(entry, imm0, regs))
            regs[r] = 5      # the field is linear (value times unit, no carries)
            probe.append(self._line(entry, imm0, regs))
        words = _words(probe, k in _BRANCH)
        base = int(words[0])
        for r in range(4):
            unit = int(words[1 + 2 * r]) - base
            if unit < 0 or words[2 + 2 * r] != base + 5 * unit:
                raise AssertionError(f"register field of {entry.name} ({k}) is not linear")
            self.units[op, r] = unit
        if k in _LINEAR_MASK:
            self.mode[op] = LINEAR
            mask = _LINEAR_MASK[k]
            if k == "movw" and entry.width == 32:
                mask = 0x1FFFF
            self.lin_mask[op] = mask
            lo, hi = IMM_RANGE[k]
            tries = [1] + [rng.randint(lo, hi) for _ in range(6)]
            got = _words([self._line(entry, imm) for imm in tries])
            unit = int(got[0]) - base
            for imm, word in zip(tries, got.tolist()):
                value = imm % self.slots if mask < 0 else imm & mask
                if word != base + value * unit:
                    raise AssertionError(f"immediate of {entry.name} ({k}) is not linear")
            self.imm_unit[op] = unit
            return None, base
        if k in _ASSEMBLED:
            self.mode[op] = TABLE
            lo, hi = IMM_RANGE[k]
            return _words([self._line(entry, imm) for imm in range(hi + 1)]), 0
        if k in _COMPUTED:
            self.mode[op] = TABLE
            return self._fit(entry, rng), 0
        if k in _BRANCH:
            self.mode[op] = BRANCH
            n_sel, lead = _BRANCH[k]
            self.lead[op] = lead
            n_sel = min(n_sel, 32) if entry.width == 32 and k == "tbz" else n_sel
            near = _words([self._line(entry, s + n_sel * (1 - lead)) for s in range(n_sel)], True)   # distance 1
            far = _words([self._line(entry, n_sel * (2 - lead)), self._line(entry, n_sel * (4 - lead))], True)
            unit = int(far[0] - near[0])
            if unit <= 0 or unit & (unit - 1) or far[1] != near[0] + 3 * unit:
                raise AssertionError(f"{entry.name}'s distance field not found")
            self.imm_unit[op] = unit
            return near - unit, 0                          # stored at distance 0
        self.mode[op] = NONE
        return None, base

    def _fit(self, entry, rng: random.Random) -> np.ndarray:
        """The whole table of a computed kind: field units fitted on probes, checked on others."""
        k = entry.kind
        lo, hi = IMM_RANGE[k]
        every = np.arange(lo, hi + 1, dtype=np.int64)
        fields = _fields(k, every, entry.width)
        fit = sorted(rng.sample(range(len(every)), 24))
        words = _words([self._line(entry, int(every[i])) for i in fit])
        design = np.column_stack([np.ones(len(fit)), fields[fit]]).astype(np.float64)
        coef = np.rint(np.linalg.lstsq(design, words.astype(np.float64), rcond=None)[0]).astype(np.int64)
        table = coef[0] + fields @ coef[1:]
        check = rng.sample(range(len(every)), 32)
        if not np.array_equal(table[fit], words) or not np.array_equal(
                table[check], _words([self._line(entry, int(every[i])) for i in check])):
            raise AssertionError(f"the fields of {entry.name} ({k}) do not encode linearly")
        return table

    def encode(self, genes: np.ndarray, remaining: np.ndarray, n_regs: int) -> np.ndarray:
        """uint32 words of ``genes`` (int64 [k, 5]: op, a, b, c, imm) given the instructions
        from each gene to its genome's end (``remaining``, a branch's farthest distance)."""
        return _encode(np.ascontiguousarray(genes, np.int64), np.ascontiguousarray(remaining, np.int64),
                       n_regs, self.mode, self.lin_mask, self.base, self.units, self.imm_unit, self.tab_off,
                       self.tab_len, self.lead, self.table, self.slots)


@njit(cache=True)
def _encode(genes, remaining, n_regs, mode, lin_mask, base, units, imm_unit, tab_off, tab_len, lead, table, slots):
    out = np.empty(genes.shape[0], np.uint32)
    for i in range(genes.shape[0]):
        op, a, b, c, imm = genes[i, 0], genes[i, 1], genes[i, 2], genes[i, 3], genes[i, 4]
        k = mode[op]
        if k == RAW:
            out[i] = np.uint32(imm & 0xFFFFFFFF)
            continue
        word = (base[op] + (a % n_regs) * units[op, 0] + (b % n_regs) * units[op, 1]
                + (c % n_regs) * units[op, 2] + ((a + b + c) % n_regs) * units[op, 3])
        if k == TABLE:
            word += table[tab_off[op] + imm % tab_len[op]]
        elif k == LINEAR:
            mask = lin_mask[op]
            word += (imm % slots if mask < 0 else imm & mask) * imm_unit[op]
        elif k == BRANCH:
            n = tab_len[op]
            word += table[tab_off[op] + imm % n] + min(lead[op] + imm // n, remaining[i]) * imm_unit[op]
        out[i] = np.uint32(word)
    return out


@lru_cache(maxsize=8)
def tables(slots: int) -> Tables:
    """The templates for ``slots`` scratch slots (learned once per process)."""
    return Tables(slots)
