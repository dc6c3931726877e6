"""Gene n-grams an offspring introduced, credited with its executions and its improvement.

A genome's gene tokens are operations with their operand form (``evolve.genes``: the registers
are separate fields), so an n-gram of tokens is a register-free pattern: ``sub x1, x0, #1;
and x0, x0, x1`` and ``sub x5, x3, #1; and x3, x3, x5`` are the same bigram. An offspring
introduced the windows of 1..``n_max`` adjacent genes that hold a gene in neither parent; each
is one pattern of the brain's gene table, learnt at once (``min_count``), and is credited:

* by the seed's rule, unchanged, one step per execution of the offspring (ok = not crashed):
  crashes raise its threshold, and a pattern whose threshold rose is drawn less (up to 3x);
* with one introduction (``count``) and, when the offspring's cost beat its better parent's, one
  improvement (``n_improved``). Mutation favours patterns whose offspring improve more often
  than the base rate (``PatternTable.draw_ratios``): a rate, so that a pattern is not promoted
  for being drawn often (crediting every improving execution, as a first version did, drove
  frequent patterns to full weight and made runs slower than with no brain at all).

Mutation draws the next gene from the 1-, 2- and 3-gram weights after the genes before it
(``PatternTable.draw_table``).
"""
from __future__ import annotations

import numpy as np

from core.brain import gram_kernels as gk


def introduced_grams(tokens: np.ndarray, length: np.ndarray, fresh: np.ndarray, n_max: int = 3,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct windows of 1..``n_max`` adjacent genes holding a fresh gene, per genome.

    Parameters
    ----------
    tokens : int64 [n, L]  the genomes' gene tokens (operation column)
    length : int64 [n]
    fresh : bool [n, L]    the genes in neither parent

    Returns
    -------
    owner : int64 [m] ascending (the genome), grams : int64 [m, n_max] (zero-padded),
    lens : int64 [m]
    """
    tokens = np.ascontiguousarray(tokens, np.int64)
    fresh = np.ascontiguousarray(fresh, np.bool_)
    return gk.introduced(tokens, np.ascontiguousarray(length, np.int64), fresh, int(n_max))


def improved(cost: np.ndarray, parent_cost: np.ndarray) -> np.ndarray:
    """bool [n]: ``cost`` beat ``parent_cost`` (the better parent's; nan: no parent, never)."""
    cost = np.asarray(cost, np.float64)
    parent_cost = np.asarray(parent_cost, np.float64)
    better = np.zeros(cost.shape, bool)
    np.less(cost, parent_cost, out=better, where=~np.isnan(parent_cost) & ~np.isnan(cost))
    return better


def credit_introduced(table, tokens, length, fresh, crashed, better) -> int:
    """Learn and credit the n-grams each genome introduced (:func:`introduced_grams`) in the
    gene pattern table ``table``: one rule step per execution (``crashed`` bool [n, n_cases]),
    an improvement counted where ``better`` (bool [n], :func:`improved`). Returns patterns
    credited."""
    owner, grams, lens = introduced_grams(np.asarray(tokens, np.int64), np.asarray(length, np.int64),
                                          fresh, table.config.n_max)
    if owner.size == 0:
        return 0
    slots = table.intern(grams, lens, owner)
    table.credit(owner, slots, crashed, better)
    return int(np.count_nonzero(slots >= 0))
