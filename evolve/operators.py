"""Variation and selection operators on linear genomes (lists of gene tuples).

Families as DEAP names them: ``mut_*`` (one parent), ``cx_*`` (two parents), ``sel_*``. Every
random choice comes from the ``rng`` passed in (one ``random.Random`` per run, checkpointed), so
runs are reproducible and independent of the number of workers. Mutation draws new genes through
``draw(prefix)``, which the engine backs with the brain's gene-pattern weights (suppressed
patterns are rarely produced) or with the alphabet's base weights (``--no-brain``).
"""
from __future__ import annotations

import bisect
import itertools
import random
from typing import Callable, Sequence

import numpy as np
from numba import njit

from evolve.genes import Alphabet, Gene

Draw = Callable[[Sequence[Gene]], Gene]   # prefix -> a new gene to follow it


# ----------------------------------------------------------------------------- mutation
def mut_replace(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Replace one gene by a newly drawn one."""
    i = rng.randrange(len(genes))
    genes[i] = draw(genes[:i])
    return genes


def mut_tweak(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Change one operand (a register or the immediate) of one gene."""
    i = rng.randrange(len(genes))
    fresh = alphabet.random_operands(genes[i][0], rng)
    field = rng.randrange(1, 5)
    gene = list(genes[i])
    gene[field] = fresh[field]
    genes[i] = tuple(gene)
    return genes


def mut_insert(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Insert a newly drawn gene (if below the length limit)."""
    if len(genes) < max_len:
        i = rng.randrange(len(genes) + 1)
        genes.insert(i, draw(genes[:i]))
    return genes


def mut_delete(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Delete one gene (never the last one)."""
    if len(genes) > 1:
        del genes[rng.randrange(len(genes))]
    return genes


def mut_swap(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Exchange two genes."""
    if len(genes) > 1:
        # two distinct positions (not rng.sample: its isinstance(..., Sequence) is an ABC check
        # that costs ~0.3 ms whenever the ABC caches are cold)
        i = rng.randrange(len(genes))
        j = rng.randrange(len(genes) - 1)
        j += j >= i
        genes[i], genes[j] = genes[j], genes[i]
    return genes


def mut_flip(genes: list, rng: random.Random, draw: Draw, alphabet: Alphabet, max_len: int) -> list:
    """Flip 1-3 bits of a raw-word gene (falls back to an operand tweak without one)."""
    raw = [i for i, g in enumerate(genes) if alphabet.ops[g[0]].kind == "raw"]
    if not raw:
        return mut_tweak(genes, rng, draw, alphabet, max_len)
    i = rng.choice(raw)
    op, a, b, c, word = genes[i]
    for _ in range(rng.randint(1, 3)):
        word ^= 1 << rng.randrange(32)
    genes[i] = (alphabet.raw_op(word), a, b, c, word)   # the token follows the word's nibble
    return genes


MUTATIONS = {"replace": (mut_replace, 3.0), "tweak": (mut_tweak, 3.0), "insert": (mut_insert, 2.0),
             "delete": (mut_delete, 2.0), "swap": (mut_swap, 1.0), "flip": (mut_flip, 0.5)}


# ----------------------------------------------------------------------------- crossover
def cx_one_point(a: list, b: list, rng: random.Random, max_len: int) -> list:
    """Head of ``a`` up to a random cut, tail of ``b`` from its own random cut."""
    child = a[:rng.randint(1, len(a))] + b[rng.randint(0, len(b) - 1):]
    return child[:max_len]


def cx_two_point(a: list, b: list, rng: random.Random, max_len: int) -> list:
    """``a`` with a random segment replaced by a random segment of ``b``."""
    i, j = sorted(rng.randint(0, len(a)) for _ in range(2))
    k, m = sorted(rng.randint(0, len(b)) for _ in range(2))
    child = a[:i] + b[k:m] + a[j:]
    return (child or a[:1])[:max_len]


def cx_homologous(a: list, b: list, rng: random.Random, max_len: int) -> list:
    """Cut both parents at the same position (aligned genes stay aligned)."""
    cut = rng.randint(1, max(1, min(len(a), len(b))))
    return (a[:cut] + b[cut:])[:max_len]


CROSSOVERS = {"one_point": (cx_one_point, 1.0), "two_point": (cx_two_point, 1.0),
              "homologous": (cx_homologous, 1.0)}


# ----------------------------------------------------------------------------- selection
def sel_tournament(costs: np.ndarray, k: int, rng: random.Random, size: int = 4) -> list[int]:
    """Indices of ``k`` tournament winners (lowest cost among ``size`` random entrants)."""
    n = len(costs)
    winners = []
    for _ in range(k):
        entrants = [rng.randrange(n) for _ in range(size)]
        winners.append(min(entrants, key=lambda i: (costs[i], i)))
    return winners


def sel_lexicase(errors: np.ndarray, k: int, rng: random.Random) -> list[int]:
    """Indices of ``k`` lexicase picks: filter on shuffled cases, keep the best on each in turn.

    ``errors`` is [n_individuals, n_cases] (lower is better). Specialists that are right on cases
    the others get wrong survive, which keeps diversity for program synthesis. The case orders and
    tie-breaks come from one draw of ``rng``; the filtering runs in a Numba kernel."""
    n, n_cases = errors.shape
    gen = np.random.default_rng(rng.getrandbits(64))
    orders = np.argsort(gen.random((k, n_cases)), axis=1)
    ties = gen.random(k)
    return _lexicase_kernel(np.ascontiguousarray(errors, np.int64), orders, ties).tolist()


@njit(cache=True)
def _lexicase_kernel(errors, orders, ties):
    n = errors.shape[0]
    k, n_cases = orders.shape
    picks = np.empty(k, np.int64)
    pool = np.empty(n, np.int64)
    for s in range(k):
        size = n
        for i in range(n):
            pool[i] = i
        for j in range(n_cases):
            case = orders[s, j]
            best = errors[pool[0], case]
            for i in range(1, size):
                if errors[pool[i], case] < best:
                    best = errors[pool[i], case]
            kept = 0
            for i in range(size):
                if errors[pool[i], case] == best:
                    pool[kept] = pool[i]
                    kept += 1
            size = kept
            if size == 1:
                break
        picks[s] = pool[min(int(ties[s] * size), size - 1)]
    return picks


def weighted_choice(table: dict, rng: random.Random):
    """A (name, function) drawn from ``{name: (function, weight)}``."""
    names, cum = _cumulative(id(table), table)
    name = names[bisect.bisect_right(cum, rng.random() * cum[-1])]
    return name, table[name][0]


_CUM: dict = {}


def _cumulative(key: int, table: dict) -> tuple[list, list]:
    entry = _CUM.get(key)
    if entry is None:
        names = list(table)
        entry = _CUM[key] = (names, list(itertools.accumulate(table[n][1] for n in names)))
    return entry
