"""The arm64 gene alphabet behind :class:`evolve.genes.Alphabet`: the operations and their
rendering (:mod:`evolve.alphabets.arm64_ops`), their encoding in bulk
(:mod:`evolve.alphabets.arm64_encoder`), and the translation of older alphabets' genes.
"""
from __future__ import annotations

from itertools import chain
from typing import Sequence

import numpy as np

from core.codes import Codes
from evolve.alphabets.arm64_encoder import tables
from evolve.alphabets.arm64_ops import (CONDITIONS, COND_CODES, EXTENDS, IMM_RANGE, MASKS, MASKS32, OPS, REGS,
                                        SHIFTS, SMALL, encode_gene, op_index, render_gene, render_line)
from evolve.alphabets.base import Gene, IsaGenes

__all__ = ["CONDITIONS", "COND_CODES", "EXTENDS", "GENES", "IMM_RANGE", "MASKS", "MASKS32", "OPS", "REGS", "SHIFTS",
           "SMALL", "Arm64Genes", "encode_gene", "op_index", "render_gene", "render_line", "tables"]

#: version 1's 16 logical masks, which its ``r2mask`` genes indexed (its tokens are this
#: alphabet's first 69, in the same order)
_MASKS_V1 = (0x1, 0x3, 0xF, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
             0xFFFFFFFFFFFFFFFE, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0x3333333333333333,
             0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0xFFFFFFFF00000000)
_V1_TOKENS = 69


class Arm64Genes(IsaGenes):
    """The arm64 alphabet behind :class:`evolve.genes.Alphabet`."""

    name = "arm64"
    ops = OPS
    regs = REGS
    imm_range = IMM_RANGE
    small = SMALL
    version = 2      # 1: 69 tokens, 16 logical masks (checkpoints before the compilers' forms)

    def upgrade(self, genes: np.ndarray, version: int) -> np.ndarray:
        """Version 1's genes: the same tokens, the mask index remapped to :data:`MASKS`."""
        if version != 1:
            return super().upgrade(genes, version)
        genes = np.array(genes, np.int64, copy=True)
        if genes.size and genes[..., 0].max() >= _V1_TOKENS:
            raise ValueError("genes outside alphabet version 1")
        remap = np.asarray([MASKS.index(m) for m in _MASKS_V1], np.int64)
        masked = np.isin(genes[..., 0], [i for i, o in enumerate(OPS[:_V1_TOKENS]) if o.kind == "r2mask"])
        genes[..., 4] = np.where(masked, remap[genes[..., 4] % len(remap)], genes[..., 4])
        return genes

    def scratch_slots(self, scratch: int) -> int:
        return max(1, scratch // 8 - 1)

    def render(self, genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
        n = len(genome)
        return [render_gene(g, regs, slots, n - i) for i, g in enumerate(genome)]

    def encode_many(self, genomes: Sequence[Sequence[Gene]], regs: tuple, slots: int) -> Codes:
        """All genomes in one vectorised pass (no keystone call per gene)."""
        lens = np.fromiter(map(len, genomes), np.int64, len(genomes))
        total = int(lens.sum())
        if total == 0:
            return self._encode_flat(np.zeros((0, 5), np.int64), lens, regs, slots)
        flat = np.fromiter(chain.from_iterable(chain.from_iterable(genomes)), np.int64, 5 * total).reshape(-1, 5)
        return self._encode_flat(flat, lens, regs, slots)

    def encode_array(self, genes: np.ndarray, lengths: np.ndarray, regs: tuple, slots: int) -> Codes:
        # the genes in use, row-major: np.compress on the [n * L, 5] view takes ~0.1 ms for a
        # population of 1,000 x 16, a boolean index of the [n, L, 5] array ~0.35 ms (same rows)
        mask = (np.arange(genes.shape[1])[None, :] < lengths[:, None]).ravel()
        return self._encode_flat(np.compress(mask, genes.reshape(-1, genes.shape[-1]), axis=0), lengths, regs, slots)

    def _encode_flat(self, flat: np.ndarray, lens: np.ndarray, regs: tuple, slots: int) -> Codes:
        """One buffer of every genome's words (``core.codes.Codes``: no bytes object per genome)."""
        total = flat.shape[0]
        offsets = np.zeros(len(lens) + 1, np.int64)
        if total == 0:
            return Codes(np.zeros(0, np.uint8), offsets)
        ends = np.cumsum(lens)
        remaining = np.repeat(ends, lens) - np.arange(total)
        if regs != REGS[:len(regs)]:
            raise ValueError("arm64 working registers must be x0, x1, ... in order")
        words = np.ascontiguousarray(tables(slots).encode(flat, remaining, len(regs)), "<u4")
        offsets[1:] = 4 * ends
        return Codes(words.view(np.uint8), offsets)


GENES = Arm64Genes()
