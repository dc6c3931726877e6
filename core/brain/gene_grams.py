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
    n, L = tokens.shape
    within = np.arange(L)[None, :] < np.asarray(length)[:, None]
    fresh = np.asarray(fresh, bool) & within
    owners, gram_rows, lens = [], [], []
    for k in range(1, min(n_max, L) + 1):
        # window [j, j + k) lies within the genome and holds a fresh gene
        width = L - k + 1
        ok = within[:, k - 1:k - 1 + width].copy()
        hit = np.zeros((n, width), bool)
        for t in range(k):
            hit |= fresh[:, t:t + width]
        q, j = np.nonzero(ok & hit)
        if q.size == 0:
            continue
        g = np.zeros((q.size, n_max), np.int64)
        for t in range(k):
            g[:, t] = tokens[q, j + t]
        owners.append(q)
        gram_rows.append(g)
        lens.append(np.full(q.size, k, np.int64))
    if not owners:
        return np.zeros(0, np.int64), np.zeros((0, n_max), np.int64), np.zeros(0, np.int64)
    owner = np.concatenate(owners).astype(np.int64)
    grams = np.concatenate(gram_rows)
    lens = np.concatenate(lens)
    # once per genome: a pattern introduced twice by one offspring is one verdict's worth
    key = np.concatenate([owner[:, None], lens[:, None], grams], axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    first = np.sort(first)
    order = np.argsort(owner[first], kind="stable")
    pick = first[order]
    return owner[pick], grams[pick], lens[pick]


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
