"""Genes: one instruction each, drawn from an ISA's gene alphabet.

A genome is a list of genes; a gene is a tuple ``(op, a, b, c, imm)`` of ints: ``op`` indexes
the alphabet (it is also the token the brain's gene patterns learn from), ``a``, ``b``, ``c``
index the working registers, ``imm`` is the immediate (a condition code, a shift, a scratch slot,
a branch distance in genes, or a raw 32-bit word). Genes render to one assembly line each and are
assembled through :mod:`core.asm` (keystone once per distinct line).

Forward branches jump over ``imm`` genes, clamped to the end of the genome (the return), so every
branch a genome can contain is a forward one that stays inside it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Sequence

import numpy as np

from core.asm import assemble
from core.isa import Isa, get_isa

Gene = tuple  # (op, a, b, c, imm)

CONDITIONS = ("eq", "ne", "hs", "lo", "mi", "pl", "hi", "ls", "ge", "lt", "gt", "le")
ARM64_MASKS = (0x1, 0x3, 0xF, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
               0xFFFFFFFFFFFFFFFE, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0x3333333333333333,
               0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0xFFFFFFFF00000000)
X86_CC = ("e", "ne", "b", "ae", "be", "a", "l", "ge", "le", "g", "s", "ns")


@dataclass(frozen=True)
class Op:
    """One entry of a gene alphabet."""

    name: str
    kind: str                 #: operand shape, see ``_IMM_RANGE`` and the renderers
    weight: float = 1.0       #: base probability of being drawn
    crashes: bool = False     #: may fault by design (the exploratory raw word)
    prefix: int = -1          #: raw words: the fixed top nibble of this token's words


# imm ranges per kind (inclusive); register operands are drawn from the working registers
_IMM_RANGE = {
    "r3": (0, 0), "r2": (0, 0), "r4": (0, 0), "cmp": (0, 0), "raw": (0, 2**32 - 1),
    "r2i12": (0, 4095), "r2sh": (0, 63), "r2mask": (0, len(ARM64_MASKS) - 1), "cmpi": (0, 4095),
    "csel": (0, len(CONDITIONS) - 1), "cset": (0, len(CONDITIONS) - 1), "movw": (0, 4 * 65536 - 1),
    "mem": (0, 1 << 16), "bcond": (1, 4 * len(CONDITIONS)), "cbz": (1, 4),
    "x_r2": (0, 0), "x_r1": (0, 0), "x_sh": (0, 63), "x_imm": (-128, 127), "x_lea": (0, 0),
    "x_cmov": (0, len(X86_CC) - 1), "x_mem": (0, 1 << 16), "x_jcc": (1, 4 * len(X86_CC)),
}

ARM64_ALPHABET = tuple(
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

X86_ALPHABET = tuple(
    [Op(n, "x_r2") for n in ("mov", "add", "sub", "imul", "and", "or", "xor")]
    + [Op(n, "x_r1") for n in ("neg", "not", "inc", "dec")]
    + [Op(n, "x_sh") for n in ("shl", "shr", "sar", "rol", "ror")]
    + [Op(n, "x_imm") for n in ("mov", "add", "sub", "and", "or", "xor")]
    + [Op("lea", "x_lea"), Op("cmp", "x_r2", 0.5), Op("cmov", "x_cmov")]
    + [Op("load", "x_mem", 0.5), Op("store", "x_mem", 0.5), Op("j", "x_jcc", 0.5)]
    + [Op(".word", "raw", 1.0, crashes=True)]
)

ARM64_REGS = tuple(f"x{i}" for i in range(8))
X86_REGS = ("rax", "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10")


@dataclass(frozen=True)
class Alphabet:
    """The genes of one ISA: operations, working registers and scratch slots."""

    isa: Isa
    ops: tuple
    regs: tuple
    scratch_slots: int

    @property
    def n_genes(self) -> int:
        """Number of gene tokens (the brain's pattern alphabet)."""
        return len(self.ops)

    def base_weights(self) -> list[float]:
        return [op.weight for op in self.ops]

    def raw_op(self, word: int) -> int:
        """The token of a raw word (its top nibble's, where the alphabet splits raw words)."""
        for i, op in enumerate(self.ops):
            if op.kind == "raw" and op.prefix in (-1, word >> 28):
                return i
        raise ValueError("alphabet has no raw-word gene")

    def operand_table(self) -> np.ndarray:
        """int64 [n_ops, 5] for the variation kernels, one row per operation: raw word (0/1),
        immediate low, high (inclusive), raw prefix (-1: none), small constants (0: no,
        1: [0, 17) w.p. 0.7, 2: [-2, 17) w.p. 0.7) -- the rules of :meth:`random_operands`."""
        rows = []
        for entry in self.ops:
            lo, hi = _IMM_RANGE[entry.kind]
            small = 1 if entry.kind in ("r2i12", "cmpi") else 2 if entry.kind == "x_imm" else 0
            rows.append((int(entry.kind == "raw"), lo, hi, entry.prefix, small))
        return np.asarray(rows, np.int64)

    def raw_op_table(self) -> np.ndarray:
        """int64 [16]: the token of a raw word by its top nibble (:meth:`raw_op`)."""
        return np.asarray([self.raw_op(k << 28) for k in range(16)], np.int64)

    def random_operands(self, op: int, rng: random.Random) -> Gene:
        """A gene for operation ``op`` with random operands."""
        entry = self.ops[op]
        kind = entry.kind
        lo, hi = _IMM_RANGE[kind]
        if entry.prefix >= 0:
            imm = (entry.prefix << 28) | rng.getrandbits(28)
        elif kind in ("r2i12", "cmpi") and rng.random() < 0.7:
            imm = rng.randrange(17)           # small constants are the useful ones
        elif kind == "x_imm" and rng.random() < 0.7:
            imm = rng.randrange(-2, 17)
        else:
            imm = rng.randint(lo, hi)
        n = len(self.regs)
        return (op, rng.randrange(n), rng.randrange(n), rng.randrange(n), imm)

    def random_gene(self, rng: random.Random, weights: Sequence[float] | None = None) -> Gene:
        ops = range(len(self.ops))
        op = rng.choices(ops, weights=weights or self.base_weights())[0]
        return self.random_operands(op, rng)

    # ---------------------------------------------------------------- rendering
    def render(self, genome: Sequence[Gene]) -> list[str]:
        """One assembly line per gene (branch distances resolved against the genome's end)."""
        if self.isa.name == "arm64":
            n = len(genome)
            return [_render_arm64(g, self.regs, self.scratch_slots, n - i) for i, g in enumerate(genome)]
        return _render_x86_genome(genome, self.regs, self.scratch_slots)

    def encode(self, genome: Sequence[Gene]) -> bytes:
        """Machine code of ``genome`` (b"" for an empty genome: the executor adds the return)."""
        if not genome:
            return b""
        if self.isa.name == "arm64":
            return self.encode_many([genome])[0]
        return _encode_x86_genome(genome, self.regs, self.scratch_slots)

    def encode_many(self, genomes: Sequence[Sequence[Gene]]) -> list[bytes]:
        """Machine code of each genome; arm64 genomes are encoded in one vectorised pass
        (``evolve.arm64_encoding``: keystone-learned templates, no keystone call per gene)."""
        if self.isa.name != "arm64":
            return [_encode_x86_genome(g, self.regs, self.scratch_slots) if g else b"" for g in genomes]
        lens = np.fromiter(map(len, genomes), np.int64, len(genomes))
        total = int(lens.sum())
        if total == 0:
            return [b""] * len(genomes)
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(genomes)), np.int64, 5 * total).reshape(-1, 5)
        return self._encode_flat(flat, lens)

    def encode_array(self, genes: np.ndarray, lengths: np.ndarray) -> list[bytes]:
        """Machine code of genomes given as ``genes`` int64 [n, L, 5] (row k: ``genes[k, :lengths[k]]``)."""
        lengths = np.asarray(lengths, np.int64)
        if self.isa.name != "arm64":
            rows = genes.tolist()
            return self.encode_many([list(map(tuple, rows[k][:n])) for k, n in enumerate(lengths.tolist())])
        mask = np.arange(genes.shape[1])[None, :] < lengths[:, None]
        return self._encode_flat(genes[mask], lengths)

    def _encode_flat(self, flat: np.ndarray, lens: np.ndarray) -> list[bytes]:
        from evolve.arm64_encoding import tables
        total = flat.shape[0]
        if total == 0:
            return [b""] * len(lens)
        ends = np.cumsum(lens)
        remaining = np.repeat(ends, lens) - np.arange(total)
        if self.regs != ARM64_REGS[:len(self.regs)]:
            raise ValueError("arm64 working registers must be x0, x1, ... in order")
        buf = tables(self.scratch_slots).encode(flat, remaining, len(self.regs)).tobytes()
        bounds = (4 * ends).tolist()
        return [buf[a:b] for a, b in zip([0] + bounds[:-1], bounds)]


def _render_arm64(g: Gene, regs: tuple, slots: int, remaining: int) -> str:
    op, a, b, c, imm = g
    entry = ARM64_ALPHABET[op]
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
        return f"{name} {d}, {n}, #{ARM64_MASKS[imm % len(ARM64_MASKS)]:#x}"
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


def _encode_arm64(g: Gene, regs: tuple, slots: int, remaining: int) -> bytes:
    """One gene's word through keystone: the reference ``evolve.arm64_encoding`` is checked against."""
    return assemble([_render_arm64(g, regs, slots, remaining)], "arm64")


def _render_x86_genome(genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
    # Jump distances are in bytes: encode from the end so each jump knows what follows it.
    lines: list[str] = [""] * len(genome)
    sizes: list[int] = [0] * len(genome)
    for i in range(len(genome) - 1, -1, -1):
        g = genome[i]
        line = _render_x86(g, regs, slots, sizes[i + 1:])
        lines[i] = line
        sizes[i] = len(_encode_x86_line(line))
    return lines


def _render_x86(g: Gene, regs: tuple, slots: int, following: Sequence[int]) -> str:
    op, a, b, c, imm = g
    entry = X86_ALPHABET[op]
    d, s, t = regs[a % len(regs)], regs[b % len(regs)], regs[c % len(regs)]
    k, name = entry.kind, entry.name
    if k == "x_r2":
        return f"{name} {d}, {s}"
    if k == "x_r1":
        return f"{name} {d}"
    if k == "x_sh":
        return f"{name} {d}, {imm}"
    if k == "x_imm":
        return f"{name} {d}, {imm}"
    if k == "x_lea":
        return f"lea {d}, [{s} + {t}]"
    if k == "x_cmov":
        return f"cmov{X86_CC[imm % len(X86_CC)]} {d}, {s}"
    if k == "x_mem":
        off = 8 * (1 + imm % slots)
        return f"mov {d}, qword ptr [rsp - {off}]" if name == "load" else f"mov qword ptr [rsp - {off}], {d}"
    if k == "x_jcc":
        skip = min(1 + imm // len(X86_CC), len(following))
        return f"j{X86_CC[imm % len(X86_CC)]} {2 + sum(following[:skip])}"
    if k == "raw":
        return f".word {imm & 0xFFFFFFFF:#010x}"
    raise ValueError(f"unknown gene kind {k!r}")


@lru_cache(maxsize=1 << 16)
def _encode_x86_line(line: str) -> bytes:
    return assemble([line], "x86_64")


_X86_CODE: dict = {}   # (regs, slots) -> {gene: bytes}, genes whose encoding ignores position


def _encode_x86_genome(genome: Sequence[Gene], regs: tuple, slots: int) -> bytes:
    """Machine code of an x86-64 genome, built from the end (a jump's distance is the size of
    the genes it skips); position-independent genes come from a per-gene cache."""
    cache = _X86_CODE.setdefault((regs, slots), {})
    parts: list[bytes] = [b""] * len(genome)
    sizes: list[int] = [0] * len(genome)
    for i in range(len(genome) - 1, -1, -1):
        g = genome[i]
        code = cache.get(g)
        if code is None:
            code = _encode_x86_line(_render_x86(g, regs, slots, sizes[i + 1:]))
            if X86_ALPHABET[g[0]].kind != "x_jcc":
                if len(cache) > 1 << 20:
                    cache.clear()
                cache[g] = code
        parts[i] = code
        sizes[i] = len(code)
    return b"".join(parts)


def genome_array(genomes: Sequence[Sequence[Gene]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Genomes as ``(genes int64 [n, width, 5], lengths int64 [n])``, zero-padded (what the
    variation kernels take); genomes longer than ``width`` widen the array."""
    lens = np.fromiter(map(len, genomes), np.int64, len(genomes))
    width = max(width, int(lens.max(initial=0)))
    out = np.zeros((len(genomes), width, 5), np.int64)
    total = int(lens.sum())
    if total:
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(genomes)), np.int64, 5 * total)
        out[np.arange(width)[None, :] < lens[:, None]] = flat.reshape(-1, 5)
    return out, lens


def alphabet_for(isa: str | Isa, scratch: int | None = None, n_regs: int = 4) -> Alphabet:
    """The gene alphabet of ``isa``: ``n_regs`` working registers (the first ones hold the
    inputs; fewer registers, a smaller search space) and scratch slots for ``scratch`` bytes."""
    isa = get_isa(isa)
    if scratch is None:
        scratch = min(256, isa.max_scratch)
    if not 2 <= n_regs <= 8:
        raise ValueError(f"n_regs must be in [2, 8], got {n_regs}")
    if isa.name == "arm64":
        return Alphabet(isa, ARM64_ALPHABET, ARM64_REGS[:n_regs], max(1, scratch // 8 - 1))
    return Alphabet(isa, X86_ALPHABET, X86_REGS[:n_regs], max(1, scratch // 8))

