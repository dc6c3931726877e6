"""A generation's gene draw table, built lazily: the rows its draws read, not every context.

``PatternTable.draw_table`` (:func:`core.brain.pattern_kernels.context_cumulative`) fills
``1 + n + k`` rows of ``n`` cumulative weights (arm64: up to 2,304 x 253 float64, 4.7 MB) every
generation, while a generation of 1000 offspring draws a few thousand genes from a few hundred of
those rows. Here the pattern factors are gathered in one pass (unigrams per gene, bigrams per gene
pair, trigrams as a sparse list per pair row) and a row's cumulative weights are computed the
first time a draw reads it (:func:`row`), with the same operations in the same order as the full
table: every row a draw reads is the full table's row bit for bit, so the draws are the same.

The table is a plain tuple (Numba takes it as one argument), see :func:`empty_lazy` for the
order: ``(cum, done, pairs, base, uni, bi, tri_ptr, tri_gene, tri_factor)``; ``done[r]`` says
whether ``cum[r]`` holds its row. A fully built table is ``done`` all ones and empty factors.
"""
from __future__ import annotations

import numpy as np
from numba import njit



def full(cum: np.ndarray, pairs: np.ndarray) -> tuple:
    """A table whose rows are all computed already (``cum`` float64 [rows, n], ``pairs`` int64)."""
    return (np.ascontiguousarray(cum, np.float64), np.ones(cum.shape[0], np.uint8),
            np.ascontiguousarray(pairs, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64),
            np.zeros((0, 0), np.float64), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


@njit(cache=True)
def _bases(length, count, n_improved, n_max):
    """Per pattern length L (index L): the base rate of improvement (``n_improved / count`` over
    the live patterns of length L introduced at least once; 0: none, no improvement factor)."""
    total = np.zeros(n_max + 1, np.float64)
    better = np.zeros(n_max + 1, np.float64)
    for s in range(length.shape[0]):
        L = length[s]
        if L > 0 and L <= n_max and count[s] > 0:
            total[L] += np.float64(count[s])          # integers: exact in any order
            better[L] += np.float64(n_improved[s])
    base = np.zeros(n_max + 1, np.float64)
    for L in range(1, n_max + 1):
        if better[L] > 0 and total[L] > 0:
            base[L] = better[L] / total[L]
    return base


@njit(cache=True, error_model="numpy", inline="always")
def _ratio(s, length, count, n_improved, threshold_ratio, init, base, prior, lo, hi):
    """Live slot ``s``'s draw ratio: ``init / factor`` as float32 (PatternTable.draw_ratios)."""
    v = init / np.float64(threshold_ratio[s])
    factor = v if (v < 1.0 or v != v) else 1.0        # np.minimum(1.0, v): NaN stays NaN
    b = base[length[s]]
    if b > 0 and count[s] > 0:
        rate = (np.float64(n_improved[s]) + prior * b) / (np.float64(count[s]) + prior)
        c = rate / b
        c = c if c > lo else lo                         # np.clip: max with lo, then min with hi
        c = c if c < hi else hi
        factor *= c
    return np.float32(init / factor)


@njit(cache=True, error_model="numpy")
def draw_ratios(length, count, n_improved, threshold_ratio, init_threshold, n_max, prior, lo, hi):
    """``PatternTable.draw_ratios`` compiled (the same float64 operations, so the same float32
    results): ``init / factor`` for live slots, the threshold ratio itself for free ones."""
    init = np.float64(init_threshold)
    base = _bases(length, count, n_improved, n_max)
    out = np.empty(length.shape[0], np.float32)
    for s in range(length.shape[0]):
        if length[s] > 0:
            out[s] = _ratio(s, length, count, n_improved, threshold_ratio, init, base, prior, lo, hi)
        else:
            out[s] = threshold_ratio[s]
    return out


@njit(cache=True, error_model="numpy")
def lazy(n, base, tokens, length, n_ok, n_crash, count, n_improved, rule_ratio, init_threshold, n_max, prior,
         lo, hi, min_exec, max_pairs):
    """The lazy form of ``context_cumulative``'s table (module docstring) from the table's
    statistics: the same pairs and the same factors, no row computed yet, the draw ratios
    (:func:`draw_ratios`) computed for the drawable patterns only (``rule_ratio``: the rule's
    threshold ratios, ``init_threshold``: the table's initial one).

    Two passes over the drawable patterns after finding them: their draw ratios (:func:`_ratio`'s
    operations on gathered columns, branch-free so that LLVM vectorises the divisions, which
    dominated this kernel), then their factors, trigram scores and entries at once."""
    init = np.float64(init_threshold)
    threshold_min = init
    bases = _bases(length, count, n_improved, n_max)
    drawable = np.empty(length.shape[0], np.int64)
    m = 0
    for s in range(length.shape[0]):        # pattern_kernels._drawable, written so that LLVM
        L = length[s]                       # keeps it a plain loop (its vectorised form of
        if L == 0 or L > 3 or n_ok[s] + n_crash[s] < min_exec:      # _drawable ran ~20x slower)
            continue
        ok = True
        for t in range(L):
            if tokens[s, t] < 0 or tokens[s, t] >= n:
                ok = False
        if ok:
            drawable[m] = s
            m += 1
    # the draw ratios (_ratio, the same IEEE operations): columns gathered, then one loop of
    # selects instead of branches; a value computed for a slot without improvement statistics
    # (b == 0 or no count: a division by zero, error_model numpy) is never selected
    thr = np.empty(m, np.float64)
    bs = np.empty(m, np.float64)
    cnt = np.empty(m, np.float64)
    imp = np.empty(m, np.float64)
    for i in range(m):
        s = drawable[i]
        thr[i] = np.float64(rule_ratio[s])
        bs[i] = bases[length[s]]
        cnt[i] = np.float64(count[s])
        imp[i] = np.float64(n_improved[s])
    ratio = np.empty(m, np.float32)
    for i in range(m):
        v = init / thr[i]
        factor = v if (v < 1.0 or v != v) else 1.0        # np.minimum(1.0, v): NaN stays NaN
        b = bs[i]
        c = ((imp[i] + prior * b) / (cnt[i] + prior)) / b
        c = c if c > lo else lo                            # np.clip: max with lo, then min with hi
        c = c if c < hi else hi
        factor = factor * c if (b > 0 and cnt[i] > 0) else factor
        ratio[i] = np.float32(init / factor)
    uni = np.ones(n, np.float64)
    bi = np.ones((n, n), np.float64)
    # unigram and bigram factors in slot order (the full table multiplies them in that order);
    # the pairs that end a trigram with a factor other than 1, each with its trigrams' summed
    # |log factor|: buckets by key (a linear pass; the full table sorts the keys, so a pair's
    # terms may be added in another order there: the sums can differ in the last bit, which
    # could only matter for two pairs tied at the max_pairs cut); trigram entries (key, gene,
    # factor) in slot order, their pair rows known once the pairs are chosen
    score = np.zeros(n * n, np.float64)
    hits = np.zeros(n * n, np.uint8)
    ent_key = np.empty(m, np.int64)
    ent_gene = np.empty(m, np.int64)
    ent_f = np.empty(m, np.float64)
    # |log factor| by the ratio's bits, direct-mapped: a generation's ~15k trigrams hold ~100
    # distinct ratios (a value recomputed on a collision is the same value)
    ratio_bits = ratio.view(np.uint32)
    log_key = np.zeros(1024, np.uint32)
    log_val = np.empty(1024, np.float64)
    log_set = np.zeros(1024, np.uint8)
    e = 0
    for i in range(m):
        s = drawable[i]
        L = length[s]
        r = ratio[i]
        f = threshold_min / r
        g = tokens[s, L - 1]
        if L == 1:
            uni[g] *= f
        elif L == 2:
            bi[tokens[s, 0], g] *= f
        else:
            k = tokens[s, 0] * n + tokens[s, 1]
            if r != threshold_min:
                bits = ratio_bits[i]
                at = (bits ^ (bits >> np.uint32(10)) ^ (bits >> np.uint32(20))) & np.uint32(1023)
                if not (log_set[at] and log_key[at] == bits):
                    log_set[at], log_key[at] = 1, bits
                    log_val[at] = abs(np.log(threshold_min / r))
                score[k] += log_val[at]
                hits[k] = 1
            if f != 1.0:
                ent_key[e] = k
                ent_gene[e] = g
                ent_f[e] = f
                e += 1
    uk = np.flatnonzero(hits)
    if uk.shape[0] > max_pairs:          # the top max_pairs scores, ties to the lower key (as a
        us = score[uk]                   # stable sort of -score would take them), in key order
        cut = np.partition(us, us.shape[0] - max_pairs)[us.shape[0] - max_pairs]
        room = max_pairs - int((us > cut).sum())
        keep = np.zeros(uk.shape[0], np.bool_)
        for i in range(uk.shape[0]):
            if us[i] > cut:
                keep[i] = True
            elif us[i] == cut and room > 0:
                keep[i] = True
                room -= 1
        pairs = uk[keep]
    else:
        pairs = uk
    slot_of = np.full(n * n, -1, np.int64)
    for j in range(pairs.shape[0]):
        slot_of[pairs[j]] = j
    n_pairs = pairs.shape[0]
    # the trigram entries of the chosen pairs grouped by pair row, stably: each (row, gene)'s
    # product keeps its order
    tri_ptr = np.zeros(n_pairs + 1, np.int64)
    for i in range(e):
        j = slot_of[ent_key[i]]
        ent_key[i] = j                   # now the entry's pair row (-1: a pair not kept)
        if j >= 0:
            tri_ptr[j + 1] += 1
    for j in range(n_pairs):
        tri_ptr[j + 1] += tri_ptr[j]
    fill = tri_ptr[:-1].copy()
    tri_gene = np.empty(tri_ptr[n_pairs], np.int64)
    tri_f = np.empty(tri_ptr[n_pairs], np.float64)
    for i in range(e):
        j = ent_key[i]
        if j < 0:
            continue
        at = fill[j]
        tri_gene[at] = ent_gene[i]
        tri_f[at] = ent_f[i]
        fill[j] = at + 1
    rows = 1 + n + n_pairs
    cum = np.empty((rows, n), np.float64)        # untouched pages cost nothing
    done = np.zeros(rows, np.uint8)
    return cum, done, pairs, base.copy(), uni, bi, tri_ptr, tri_gene, tri_f


@njit(cache=True)
def row(tab, r):
    """Row ``r`` of the cumulative table, computed on first use (the full table's operations:
    ``acc += base[g] * (w * uni[g] * bi[b, g])``, ``w`` the product of the row's trigrams)."""
    cum, done, pairs, base, uni, bi, tri_ptr, tri_gene, tri_f = tab
    if done[r]:
        return cum[r]
    n = cum.shape[1]
    w = np.ones(n, np.float64)
    b = -1
    if r > n:
        j = r - 1 - n
        b = pairs[j] % n
        for i in range(tri_ptr[j], tri_ptr[j + 1]):
            w[tri_gene[i]] *= tri_f[i]
    elif r > 0:
        b = r - 1
    acc = 0.0
    out = cum[r]
    for g in range(n):
        v = w[g] * uni[g]
        if b >= 0:
            v = v * bi[b, g]
        acc += base[g] * v
        out[g] = acc
    done[r] = 1
    return out


@njit(cache=True)
def fill_all(tab):
    """Every row computed (tests, and callers that want the whole table): returns ``cum``."""
    for r in range(tab[0].shape[0]):
        row(tab, r)
    return tab[0]
