"""The population as arrays, one row per genome; DEAP individuals made only when asked for.

A generation makes a thousand genomes. As Python objects (a list of gene tuples, a fitness, a
dozen attributes) they cost more to build than evaluating them; as rows of arrays
they cost nothing, and the kernels (variation, encoding, selection, the brain) take arrays
anyway. Individuals (``evolve.toolbox.Individual``) are built for what needs one: the hall of
fame's entrants, validation candidates, emigrants, results, ``Engine.pop``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from core.outcome import N_OUTCOMES
from evolve.genes import genome_array
from evolve.toolbox import Individual, new_individual


#: the columns an evaluation writes (a child identical to its parent copies them)
EVALUATION = ("cost", "errors", "exact", "crashed", "node", "prior", "tally")


class GeneTokens(NamedTuple):
    """Selected genes of some rows (:meth:`Rows.gene_tokens`), one entry per gene."""

    owner: np.ndarray     #: int64 [m]: the gene's row, as a position in the rows asked for
    token: np.ndarray     #: int64 [m]: its operation (what the brain's gene patterns count)


class FreshGenes(NamedTuple):
    """The genes each genome of an evaluated batch introduced (in neither parent), which the
    brain credits, as the n-grams of adjacent genes that hold them, with the genome's executions
    and its improvement over its parents (``Engine._observe_fresh_genes``). Row i: the batch's
    i-th evaluated row."""

    tokens: np.ndarray          #: int64 [n, L]: the genomes' gene operations
    length: np.ndarray          #: int64 [n]
    fresh: np.ndarray           #: bool [n, L]: the gene is in neither parent
    parent_crashed: np.ndarray  #: bool [n]: a parent of it crashed
    parent_cost: np.ndarray     #: float64 [n]: the better parent's cost (nan: no parent)
    macro: np.ndarray | None = None   #: int64 [n]: the macro-gene it inserted (-1: none)


@dataclass
class Rows:
    """Genomes and their evaluation, row i of every array describing genome i."""

    genes: np.ndarray     #: int64 [n, L, 5]: op, a, b, c, imm per gene (zero padding)
    length: np.ndarray    #: int64 [n]
    uid: np.ndarray       #: int64 [n]
    cost: np.ndarray      #: float64 [n] (nan: not evaluated)
    errors: np.ndarray    #: [n, n_cases] wrong bits per training case
    exact: np.ndarray     #: int64 [n]: training cases exactly right
    crashed: np.ndarray   #: bool [n]: some case did not end OK
    node: np.ndarray      #: int64 [n]: the brain's EXEC node (-1: none, or not yet: see below)
    prior: np.ndarray     #: float64 [n, 2]: EXEC node success rate, threshold (nan: none yet)
    #: int64 [n, N_OUTCOMES]: the node's executions per outcome class. An evaluated genome's
    #: rule state (``prior``, ``tally``) lives here until it becomes an EXEC node (when it
    #: lives on: ``Engine._materialize``), which then starts from exactly these values
    tally: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tally is None:          # checkpoints before the column: no executions counted
            self.tally = np.zeros((len(self.length), N_OUTCOMES), np.int64)

    @classmethod
    def new(cls, genes: np.ndarray, length: np.ndarray, uid: np.ndarray, n_cases: int) -> "Rows":
        n = len(length)
        return cls(genes, np.asarray(length, np.int64), np.asarray(uid, np.int64), np.full(n, np.nan),
                   np.zeros((n, n_cases), np.uint8), np.zeros(n, np.int64), np.zeros(n, bool),
                   np.full(n, -1, np.int64), np.full((n, 2), np.nan), np.zeros((n, N_OUTCOMES), np.int64))

    @classmethod
    def from_individuals(cls, inds: list, width: int, n_cases: int) -> "Rows":
        """Rows of evaluated or new individuals (their attributes where set)."""
        genes, length = genome_array(inds, width)
        rows = cls.new(genes, length, [ind.uid for ind in inds], n_cases)
        for i, ind in enumerate(inds):
            # individuals of older checkpoints may lack attributes set since (crashed, ...)
            get = ind.__dict__.get
            if ind.fitness.valid:
                rows.cost[i] = ind.fitness.values[0]
            errors = get("errors")
            if errors is not None and len(errors) == n_cases:
                rows.errors[i] = errors
            rows.exact[i], rows.crashed[i], rows.node[i] = get("exact", 0), get("crashed", False), get("node", -1)
            if get("prior") is not None:
                rows.prior[i] = get("prior")
            if get("tally") is not None:
                rows.tally[i] = get("tally")
        return rows

    def __len__(self) -> int:
        return len(self.length)

    def take(self, idx) -> "Rows":
        idx = np.asarray(idx, np.int64)
        return Rows(*(getattr(self, f.name)[idx] for f in fields(self)))

    def put(self, idx, other: "Rows") -> None:
        """Overwrite rows ``idx`` with ``other``'s rows (same width and cases)."""
        for f in fields(self):
            getattr(self, f.name)[idx] = getattr(other, f.name)

    @staticmethod
    def concat(a: "Rows", b: "Rows") -> "Rows":
        width = max(a.genes.shape[1], b.genes.shape[1])
        out = []
        for f in fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if f.name == "genes" and x.shape[1] != y.shape[1]:
                x, y = (np.pad(v, ((0, 0), (0, width - v.shape[1]), (0, 0))) for v in (x, y))
            out.append(np.concatenate([x, y]))
        return Rows(*out)

    @staticmethod
    def concat_take(a: "Rows", ia, b: "Rows", ib) -> "Rows":
        """``concat(a.take(ia), b.take(ib))`` with one copy of each row instead of two (the
        next population is made of the elite and the best offspring every generation)."""
        if a.genes.shape[1] != b.genes.shape[1]:
            return Rows.concat(a.take(ia), b.take(ib))
        ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
        k = ia.size
        out = []
        for f in fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            z = np.empty((k + ib.size,) + x.shape[1:], np.result_type(x, y))
            # (indices of these rows, so in range: "clip" only spares numpy's buffered copy)
            np.take(x, ia, axis=0, out=z[:k], mode="clip")
            np.take(y, ib, axis=0, out=z[k:], mode="clip")
            out.append(z)
        return Rows(*out)

    def gene_tuples(self, i: int) -> list[tuple]:
        return list(map(tuple, self.genes[i, :self.length[i]].tolist()))

    def gene_tokens(self, idx: np.ndarray, select: np.ndarray) -> GeneTokens:
        """The genes of rows ``idx`` marked in ``select`` (bool [len(idx), L]) and within their
        lengths."""
        within = np.arange(self.genes.shape[1])[None, :] < self.length[idx][:, None]
        owner, pos = np.nonzero(select & within)
        return GeneTokens(owner.astype(np.int64), self.genes[idx[owner], pos, 0])

    def set_evaluation(self, i: int, ind: Individual) -> None:
        """Give ``ind`` row ``i``'s evaluation (fitness, errors, exact, crashed, node, prior, tally)."""
        if not np.isnan(self.cost[i]):
            ind.fitness.values = (float(self.cost[i]),)
        ind.errors = self.errors[i].copy()
        ind.exact, ind.crashed, ind.node = int(self.exact[i]), bool(self.crashed[i]), int(self.node[i])
        ind.prior = None if np.isnan(self.prior[i, 0]) else (float(self.prior[i, 0]), float(self.prior[i, 1]))
        ind.tally = self.tally[i].copy()        # its executions, for the node it may become
        ind.fresh = []      # observed once; a re-evaluation teaches nothing new

    def individual(self, i: int, lineage: dict) -> Individual:
        """Row ``i`` as a DEAP individual (parents and operator from ``lineage``)."""
        uid = int(self.uid[i])
        parents, op = lineage.get(uid, ((), "init"))[:2]
        ind = new_individual(self.gene_tuples(i), uid, parents, op)
        self.set_evaluation(i, ind)
        return ind

    def individuals(self, idx, lineage: dict) -> list[Individual]:
        return [self.individual(int(i), lineage) for i in idx]
