"""The arm64 gene alphabet: operations, their rendering, and their encoding in bulk.

The operations (``OPS``) are integer AArch64 as compilers emit it; a gene renders to one line of
GNU assembly (:func:`render_gene`), which keystone assembles (:func:`encode_gene`, the reference).

Genomes are encoded in bulk, with keystone consulted once per operation: evolution keeps
inventing genes (4,096 immediates of ``add``, 262,144 of ``movz``), and assembling each new one
cost more than evaluating it. A gene's word is a template with fields: the registers and the
linear immediates (``#imm12``, ``movz``'s imm16:hw, a scratch slot, a branch distance) enter at
fixed bits, the rest (shift amounts as bitfield operands, logical masks, condition codes) take
one of a few keystone-made words. The fields are *learned from keystone* by assembling each
operation with different operands and comparing the words, then checked on further values, so
keystone stays the reference (and ``tests/test_arm64_encoding.py`` compares every operation on
random genes).
"""
from __future__ import annotations

from functools import lru_cache
from itertools import chain
from typing import Sequence

import numpy as np
from numba import njit

from core.asm import assemble
from evolve.alphabets.base import Gene, IsaGenes, Op

CONDITIONS = ("eq", "ne", "hs", "lo", "mi", "pl", "hi", "ls", "ge", "lt", "gt", "le")
MASKS = (0x1, 0x3, 0xF, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
         0xFFFFFFFFFFFFFFFE, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0x3333333333333333,
         0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0xFFFFFFFF00000000)
REGS = tuple(f"x{i}" for i in range(8))

# imm ranges per kind (inclusive); register operands are drawn from the working registers
IMM_RANGE = {
    "r3": (0, 0), "r2": (0, 0), "r4": (0, 0), "cmp": (0, 0), "raw": (0, 2**32 - 1),
    "r2i12": (0, 4095), "r2sh": (0, 63), "r2mask": (0, len(MASKS) - 1), "cmpi": (0, 4095),
    "csel": (0, len(CONDITIONS) - 1), "cset": (0, len(CONDITIONS) - 1), "movw": (0, 4 * 65536 - 1),
    "mem": (0, 1 << 16), "bcond": (1, 4 * len(CONDITIONS)), "cbz": (1, 4),
}

OPS = tuple(
    [Op(n, "r3") for n in ("add", "sub", "and", "orr", "eor", "bic", "orn", "eon", "lsl", "lsr", "asr",
                           "ror", "mul", "udiv", "sdiv", "umulh", "smulh")]
    + [Op(n, "r2") for n in ("neg", "mvn", "clz", "rbit", "rev", "mov")]
    + [Op(n, "r2i12") for n in ("add", "sub")]
    + [Op(n, "r2sh") for n in ("lsl", "lsr", "asr", "ror")]
    + [Op(n, "r2mask") for n in ("and", "orr", "eor")]
    + [Op(n, "r4") for n in ("madd", "msub")]
    + [Op("cmp", "cmp"), Op("tst", "cmp"), Op("cmn", "cmp"), Op("cmp", "cmpi")]
    + [Op(n, "csel") for n in ("csel", "csinc", "csinv", "csneg")] + [Op("cset", "cset")]
    + [Op(n, "movw", 0.5) for n in ("movz", "movk", "movn")]
    + [Op("ldr", "mem", 0.5), Op("str", "mem", 0.5)]
    + [Op("b", "bcond", 0.5), Op("cbz", "cbz", 0.25), Op("cbnz", "cbz", 0.25)]
    # Exploration: raw 32-bit words, one token per top nibble, so that the brain can learn which
    # encoding regions crash (reserved/SVE space: always; loads with wild addresses: mostly) and
    # which are harmless, instead of one averaged verdict on "random words".
    + [Op(".word", "raw", 0.125, crashes=True, prefix=k) for k in range(16)]
)


def render_gene(g: Gene, regs: tuple, slots: int, remaining: int) -> str:
    op, a, b, c, imm = g
    entry = OPS[op]
    d, n, m = regs[a % len(regs)], regs[b % len(regs)], regs[c % len(regs)]
    k = entry.kind
    name = entry.name
    if k == "r3":
        return f"{name} {d}, {n}, {m}"
    if k == "r2":
        return f"{name} {d}, {n}"
    if k in ("r2i12", "r2sh"):
        return f"{name} {d}, {n}, #{imm}"
    if k == "r2mask":
        return f"{name} {d}, {n}, #{MASKS[imm % len(MASKS)]:#x}"
    if k == "r4":
        return f"{name} {d}, {n}, {m}, {regs[(a + b + c) % len(regs)]}"
    if k == "cmp":
        return f"{name} {n}, {m}"
    if k == "cmpi":
        return f"{name} {n}, #{imm}"
    if k == "csel":
        return f"{name} {d}, {n}, {m}, {CONDITIONS[imm % len(CONDITIONS)]}"
    if k == "cset":
        return f"cset {d}, {CONDITIONS[imm % len(CONDITIONS)]}"
    if k == "movw":
        return f"{name} {d}, #{imm & 0xFFFF}, lsl #{16 * ((imm >> 16) & 3)}"
    if k == "mem":
        return f"{name} {d}, [sp, #{8 * (imm % slots)}]"
    if k == "bcond":
        dist = min(1 + imm // len(CONDITIONS), remaining)
        return f"b.{CONDITIONS[imm % len(CONDITIONS)]} #{4 * dist}"
    if k == "cbz":
        return f"{name} {n}, #{4 * min(imm, remaining)}"
    if k == "raw":
        return f".word {imm & 0xFFFFFFFF:#010x}"
    raise ValueError(f"unknown gene kind {k!r}")


def encode_gene(g: Gene, regs: tuple, slots: int, remaining: int) -> bytes:
    """One gene's word through keystone: the reference the templates below are checked against."""
    return assemble([render_gene(g, regs, slots, remaining)], "arm64")


# how an operation's immediate enters its word
_LINEAR = {"r2i12": lambda imm, slots: imm, "cmpi": lambda imm, slots: imm,
           "movw": lambda imm, slots: imm & 0x3FFFF, "mem": lambda imm, slots: imm % slots}
_TABLE = {"r2sh": 64, "r2mask": len(MASKS), "csel": len(CONDITIONS), "cset": len(CONDITIONS),
          "bcond": len(CONDITIONS)}
_LINEAR_PROBES = {"r2i12": (1, 4095, 1234), "cmpi": (1, 4095, 77), "movw": (1, 0x3FFFF, 0x2ABCD),
                  "mem": (1, 5, 30)}


def _line(op: int, d: int, n: int, m: int, a: int, imm: int, slots: int, remaining: int) -> str:
    """The renderer's line for operation ``op`` with explicit register numbers."""
    regs = (f"x{d}", f"x{n}", f"x{m}", f"x{a}")
    return render_gene((op, 0, 1, 2, imm), regs, slots, remaining)   # 4th register: regs[3]


def _word(line: str) -> int:
    return int.from_bytes(assemble([line], "arm64"), "little")


# how a gene's word is completed (``_Tables.kind``)
_NONE, _LINEAR_K, _TABLE_K, _BCOND, _CBZ, _RAW = range(6)


class _Tables:
    """Per operation: base word, per-register unit words, immediate unit or table (all int64)."""

    NONE, LINEAR, TABLE, BCOND, CBZ, RAW = _NONE, _LINEAR_K, _TABLE_K, _BCOND, _CBZ, _RAW

    def __init__(self, slots: int):
        ops = OPS
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
                n_cond = len(CONDITIONS)
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
                       self.tab_len, self.table, self.slots, len(CONDITIONS))


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
    """The templates for ``slots`` scratch slots (learned once per process)."""
    return _Tables(slots)


class Arm64Genes(IsaGenes):
    """The arm64 alphabet behind :class:`evolve.genes.Alphabet`."""

    name = "arm64"
    ops = OPS
    regs = REGS
    imm_range = IMM_RANGE
    small = {"r2i12": (0, 16), "cmpi": (0, 16)}

    def scratch_slots(self, scratch: int) -> int:
        return max(1, scratch // 8 - 1)

    def render(self, genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
        n = len(genome)
        return [render_gene(g, regs, slots, n - i) for i, g in enumerate(genome)]

    def encode_many(self, genomes: Sequence[Sequence[Gene]], regs: tuple, slots: int) -> list[bytes]:
        """All genomes in one vectorised pass (no keystone call per gene)."""
        lens = np.fromiter(map(len, genomes), np.int64, len(genomes))
        total = int(lens.sum())
        if total == 0:
            return [b""] * len(genomes)
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(genomes)), np.int64, 5 * total).reshape(-1, 5)
        return self._encode_flat(flat, lens, regs, slots)

    def encode_array(self, genes: np.ndarray, lengths: np.ndarray, regs: tuple, slots: int) -> list[bytes]:
        mask = np.arange(genes.shape[1])[None, :] < lengths[:, None]
        return self._encode_flat(genes[mask], lengths, regs, slots)

    def _encode_flat(self, flat: np.ndarray, lens: np.ndarray, regs: tuple, slots: int) -> list[bytes]:
        total = flat.shape[0]
        if total == 0:
            return [b""] * len(lens)
        ends = np.cumsum(lens)
        remaining = np.repeat(ends, lens) - np.arange(total)
        if regs != REGS[:len(regs)]:
            raise ValueError("arm64 working registers must be x0, x1, ... in order")
        buf = tables(slots).encode(flat, remaining, len(regs)).tobytes()
        bounds = (4 * ends).tolist()
        return [buf[a:b] for a, b in zip([0] + bounds[:-1], bounds)]


GENES = Arm64Genes()
