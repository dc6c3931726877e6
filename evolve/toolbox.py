"""DEAP wiring, in one place: fitness and individual classes, and the toolbox of a run.

The fitness and individual classes are defined here at import time (and registered in DEAP's
``creator``), so worker processes and checkpoint loading see the same classes. The engine uses
only the toolbox's aliases: ``init``, ``vary`` and ``select``, on the population's arrays
(``evolve.population.Rows``), so nothing is cloned; evaluation is a batch call through the
executor (``evolve.evaluate``).
"""
from __future__ import annotations

import random
from bisect import bisect_right
from typing import Sequence

import numpy as np
from deap import base, creator, tools

from evolve import operators as ops
from evolve.genes import Alphabet, Gene

class _Fitness(base.Fitness):
    """DEAP's Fitness without its per-instance ``isinstance(weights, Sequence)``: an ABC check
    is slow when the ABC caches are cold, and every offspring creates a fitness."""

    weights = (-1.0,)

    def __init__(self, values=()):
        if len(values) > 0:
            self.values = values


# Made by hand, not by ``creator.create``, whose ``__init__`` wrapper runs on every instance.
# Also published under the creator's name, where DEAP's recipe looks for it. (Checkpoints of
# earlier versions rebuild their own creator classes when loaded; ``Rows.from_individuals``
# reads those too.)
creator.MelvinFitness = _Fitness


class Individual(list):
    """A genome: a list of gene tuples with a DEAP fitness.

    A plain class rather than ``creator.create``'s: the creator's ``__init__`` inspects the
    class attributes on every instance, and a generation makes a thousand of them.
    Attributes set by the engine: uid, parents, op, node (brain EXEC node), prior (success,
    threshold), errors (uint8 per training case), exact, crashed, fresh.
    """

    def __init__(self, genes=()):
        super().__init__(genes)
        self.fitness = creator.MelvinFitness()


creator.MelvinIndividual = Individual     # DEAP's recipe name, as for the fitness above


def new_individual(genes: Sequence[Gene], uid: int, parents: tuple = (), op: str = "init") -> Individual:
    ind = Individual(map(tuple, genes))
    ind.uid, ind.parents, ind.op = uid, tuple(parents), op
    ind.node, ind.prior, ind.errors, ind.exact = -1, None, None, 0
    ind.crashed, ind.fresh = False, None
    return ind


def make_toolbox(alphabet: Alphabet, rng: random.Random, max_len: int, init_len: int,
                 selection: str, tournament_size: int, cxpb: float, mutpb: float) -> base.Toolbox:
    """The toolbox of one run; the engine passes each generation's draw ``table`` (cumulative
    gene weights per context, see ``evolve.operators``).

    * ``init(n, table)`` -> (genes int64 [n, max_len, 5], lengths): random genomes;
    * ``vary(genes, lengths, first, table, macros=None)`` -> ``evolve.operators.Offspring``:
      children of the parents ``first`` by crossover and/or mutation (``macros``: an
      ``evolve.operators.MacroTable`` for the macro mutation);
    * ``select(rows, k)`` -> indices of the selected rows (``evolve.population.Rows``).
    """
    tb = base.Toolbox()
    var = ops.Variation(alphabet, max_len)

    def init(n: int, table: np.ndarray):
        return ops.init_genomes(var, n, init_len, table, rng)

    def vary(genes: np.ndarray, lengths: np.ndarray, first: np.ndarray, table: np.ndarray, macros=None):
        return ops.vary(var, genes, lengths, first, cxpb, mutpb, table, rng, macros)

    def select(rows, k: int) -> list:
        if selection == "lexicase":
            return ops.sel_lexicase(rows.errors, k, rng)
        return ops.sel_tournament(rows.cost, k, rng, tournament_size)

    tb.register("init", init)
    tb.register("vary", vary)
    tb.register("select", select)
    return tb


def same_genes(a, b) -> bool:
    """Hall-of-fame identity: the same genes (a module-level function, so it pickles)."""
    return list(a) == list(b)


class HallOfFame(tools.HallOfFame):
    """DEAP's hall of fame without its deep copy per entrant: the engine's entrants are
    individuals made for it from the population's rows (``Rows.individuals``), shared with
    nothing, and copying them (genes, errors, attributes) cost more than choosing them."""

    def insert(self, item) -> None:
        i = bisect_right(self.keys, item.fitness)
        self.items.insert(len(self) - i, item)
        self.keys.insert(i, item.fitness)

    def would_insert(self, costs, genes) -> list[int]:
        """Positions of the candidates (``costs``: float, one objective; ``genes``: each one's
        genes as bytes, ``int64`` rows of 5) that :meth:`update` with them in this order would
        insert, found by replaying its steps on costs alone: the others change nothing there,
        so updating with the inserted ones only ends the same (and builds no individual for the
        rest). An empty hall of fame: every position (``update``'s first-entry rule)."""
        if len(self) == 0:
            return list(range(len(costs)))
        wv = [k.wvalues[0] for k in self.keys]          # ascending, as self.keys
        held = [np.asarray(ind, np.int64).tobytes() for ind in self.items]   # best first
        out = []
        for j, (cost, key) in enumerate(zip(costs, genes)):
            w = float(cost) * self.items[0].fitness.weights[0]
            if not (w > wv[0] or len(held) < self.maxsize) or key in held:
                continue
            if len(held) >= self.maxsize:                # remove(-1): the worst item, the first key
                del wv[0]
                del held[-1]
            i = bisect_right(wv, w)
            held.insert(len(held) - i, key)
            wv.insert(i, w)
            out.append(j)
        return out


def hall_of_fame(size: int) -> tools.HallOfFame:
    return HallOfFame(size, similar=same_genes)


def logbook() -> tools.Logbook:
    book = tools.Logbook()
    book.header = ["gen", "evals", "best", "mean", "crash_rate"]
    return book
