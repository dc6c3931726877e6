"""Per-ISA gene alphabets, one module each behind one interface (:class:`base.IsaGenes`).

:func:`evolve.genes.alphabet_for` looks an ISA up here once; everything after that goes
through the ISA's object, so no code outside its module asks which ISA it is.
"""
from __future__ import annotations

from evolve.alphabets import arm64, x86_64
from evolve.alphabets.base import IsaGenes

#: ISA name -> its alphabet
BY_ISA: dict[str, IsaGenes] = {genes.name: genes for genes in (arm64.GENES, x86_64.GENES)}
