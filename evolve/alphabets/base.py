"""What every ISA's gene alphabet provides: its operations and the interface
:class:`evolve.genes.Alphabet` delegates to (one object per ISA, :class:`IsaGenes`).

A gene is a tuple ``(op, a, b, c, imm)`` of ints (see :mod:`evolve.genes`); what ``a``, ``b``,
``c`` and ``imm`` mean depends on the operation's ``kind``, which only the ISA's module knows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Gene = tuple  # (op, a, b, c, imm)


@dataclass(frozen=True)
class Op:
    """One entry of a gene alphabet."""

    name: str
    kind: str                 #: operand shape, see the ISA module's ``IMM_RANGE`` and renderer
    weight: float = 1.0       #: base probability of being drawn
    crashes: bool = False     #: may fault by design (the exploratory raw word)
    prefix: int = -1          #: raw words: the fixed top nibble of this token's words
    width: int = 64           #: register width of the operation (arm64: 32 for the W forms)
    syntax: str = ""          #: operand template (the ISA module's renderer fills it)


class IsaGenes:
    """One ISA's genes: operations, register names, immediate ranges, rendering and encoding.

    Subclasses set the class attributes and implement the methods; ``regs`` and ``slots`` passed
    to the methods are an alphabet's working registers (a prefix of :attr:`regs`) and scratch
    slots.
    """

    name: str                          #: the ISA (``core.isa`` name)
    ops: tuple                         #: tuple of Op, index = gene token
    regs: tuple                        #: every register a working set may use, in order
    imm_range: dict                    #: kind -> (low, high) of ``imm``, inclusive
    #: kind -> (low, high) of the small constants drawn w.p. 0.7 instead of the whole range:
    #: small constants are the useful ones
    small: dict = {}
    #: what a gene means changes with the version; checkpoints record it (see :meth:`upgrade`)
    version: int = 1

    def upgrade(self, genes: np.ndarray, version: int) -> np.ndarray:
        """Genes (int64 [..., 5]) of alphabet ``version`` as genes of this one (the same
        instructions); ValueError where that cannot be done."""
        if version != self.version:
            raise ValueError(f"genes of {self.name} alphabet version {version}; this Melvin has version {self.version}")
        return genes

    def scratch_slots(self, scratch: int) -> int:
        """Scratch slots (8 bytes each) that fit in ``scratch`` bytes."""
        raise NotImplementedError

    def render(self, genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
        """One assembly line per gene (branch distances resolved against the genome's end)."""
        raise NotImplementedError

    def encode_many(self, genomes: Sequence[Sequence[Gene]], regs: tuple, slots: int) -> list[bytes]:
        """Machine code of each genome (b"" for an empty one)."""
        raise NotImplementedError

    def encode_array(self, genes: np.ndarray, lengths: np.ndarray, regs: tuple, slots: int) -> list[bytes]:
        """Machine code of genomes given as ``genes`` int64 [n, L, 5] (row k: ``genes[k, :lengths[k]]``)."""
        rows = genes.tolist()
        return self.encode_many([list(map(tuple, rows[k][:n])) for k, n in enumerate(lengths.tolist())], regs, slots)
