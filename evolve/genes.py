"""Genes: one instruction each, drawn from an ISA's gene alphabet.

A genome is a list of genes; a gene is a tuple ``(op, a, b, c, imm)`` of ints: ``op`` indexes
the alphabet (it is also the token the brain's gene patterns learn from), ``a``, ``b``, ``c``
index the working registers, ``imm`` is the immediate (a condition code, a shift, a scratch slot,
a branch distance in genes, or a raw 32-bit word). Genes render to one assembly line each; what
the operations are and how genes become machine code is the ISA's (:mod:`evolve.alphabets`).

Forward branches jump over ``imm`` genes, clamped to the end of the genome (the return), so every
branch a genome can contain is a forward one that stays inside it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np

from core.codes import Codes
from core.isa import Isa, get_isa
from evolve.alphabets import BY_ISA
from evolve.alphabets.base import Gene, IsaGenes, Op

__all__ = ["Alphabet", "Gene", "Op", "alphabet_for", "genome_array"]


_FLAG_TABLES: dict = {}     # id(alphabet) -> (alphabet, Alphabet.flag_table()): the alphabet held, so its id is not reused


@dataclass(frozen=True)
class Alphabet:
    """The genes of one ISA: operations, working registers and scratch slots.

    Rendering, encoding and the immediates' ranges are the ISA's (``isa_genes``, one module
    per ISA under :mod:`evolve.alphabets`); this class adds what is the same for every ISA.
    """

    isa: Isa
    ops: tuple
    regs: tuple
    scratch_slots: int
    isa_genes: IsaGenes

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
        """int64 [n_ops, 6] for the variation kernels, one row per operation: raw word (0/1),
        immediate low, high (inclusive), raw prefix (-1: none), small constants' low, high
        (inclusive, drawn w.p. 0.7; high < low: none) -- the rules of :meth:`random_operands`."""
        rows = []
        for entry in self.ops:
            lo, hi = self.isa_genes.imm_range[entry.kind]
            small = self.isa_genes.small.get(entry.kind, (0, -1))
            rows.append((int(entry.kind == "raw"), lo, hi, entry.prefix, *small))
        return np.asarray(rows, np.int64)

    def flag_table(self) -> np.ndarray:
        """bool [n_ops, 3]: whether each operation reads, writes (all of) the condition flags
        and branches, as capstone reads one encoding of it (:func:`evolve.fitness.flag_effects`);
        raw words: none of them. Cached."""
        held = _FLAG_TABLES.get(id(self))      # (alphabet, table): holding the alphabet keeps its id
        table = held[1] if held is not None and held[0] is self else None   # from being reused
        if table is None:
            from evolve.fitness import flag_effects
            rows = []
            rng = random.Random(0)
            for op, entry in enumerate(self.ops):
                eff = None if entry.kind == "raw" else flag_effects(self.encode([self.random_operands(op, rng)]), self.isa)
                rows.append(eff or (False, False, False))
            table = np.asarray(rows, bool).reshape(-1, 3)
            _FLAG_TABLES[id(self)] = (self, table)
        return table

    def raw_op_table(self) -> np.ndarray:
        """int64 [16]: the token of a raw word by its top nibble (:meth:`raw_op`)."""
        return np.asarray([self.raw_op(k << 28) for k in range(16)], np.int64)

    def random_operands(self, op: int, rng: random.Random) -> Gene:
        """A gene for operation ``op`` with random operands."""
        entry = self.ops[op]
        lo, hi = self.isa_genes.imm_range[entry.kind]
        small = self.isa_genes.small.get(entry.kind)
        if entry.prefix >= 0:
            imm = (entry.prefix << 28) | rng.getrandbits(28)
        elif small is not None and rng.random() < 0.7:
            imm = rng.randrange(small[0], small[1] + 1)
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
        return self.isa_genes.render(genome, self.regs, self.scratch_slots)

    def encode(self, genome: Sequence[Gene]) -> bytes:
        """Machine code of ``genome`` (b"" for an empty genome: the executor adds the return)."""
        if not genome:
            return b""
        return self.encode_many([genome])[0]

    def encode_many(self, genomes: Sequence[Sequence[Gene]]) -> Sequence[bytes]:
        """Machine code of each genome (arm64: a ``core.codes.Codes``, one buffer)."""
        return self.isa_genes.encode_many(genomes, self.regs, self.scratch_slots)

    def encode_array(self, genes: np.ndarray, lengths: np.ndarray) -> Sequence[bytes]:
        """Machine code of genomes given as ``genes`` int64 [n, L, 5] (row k: ``genes[k, :lengths[k]]``);
        one ``core.codes.Codes`` buffer, which executors and the brain take without splitting it."""
        return Codes.from_list(self.isa_genes.encode_array(genes, np.asarray(lengths, np.int64), self.regs,
                                                           self.scratch_slots))


def upgrade_state(state: dict, alphabet: Alphabet) -> dict:
    """An engine state (:meth:`evolve.engine.Engine.state`) whose genes are of the alphabet
    version it records (none: 1) with genes of ``alphabet``: population, hall of fame, solution,
    refused genomes. ValueError when they cannot be translated."""
    version = state.get("alphabet_version", 1)
    genes = alphabet.isa_genes
    if version == genes.version:
        return state

    def individual(ind):
        if ind is None or not len(ind):
            return ind
        new = type(ind)(map(tuple, genes.upgrade(np.asarray(ind, np.int64), version).tolist()))
        new.__dict__.update(ind.__dict__)
        if ind.fitness.valid:
            new.fitness.values = ind.fitness.values
        return new

    state = dict(state, alphabet_version=genes.version)
    if "rows" in state:
        state["rows"] = dict(state["rows"], genes=genes.upgrade(state["rows"]["genes"], version))
    else:
        state["pop"] = [individual(ind) for ind in state["pop"]]
    state["hof"].items = [individual(ind) for ind in state["hof"].items]
    state["hof"].keys = [ind.fitness for ind in reversed(state["hof"].items)]   # DEAP: ascending keys
    state["solved"] = individual(state["solved"])
    state["validated_fail"] = {tuple(map(tuple, genes.upgrade(np.asarray(g, np.int64).reshape(-1, 5), version).tolist()))
                               for g in state["validated_fail"]}
    return state


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
    genes = BY_ISA[isa.name]
    return Alphabet(isa, genes.ops, genes.regs[:n_regs], genes.scratch_slots(scratch), genes)
