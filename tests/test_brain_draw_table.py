"""Tests of the lazy gene draw table (core.brain.draw_kernels) against the full recomputation."""
import random

import numpy as np
import pytest

from core.brain import draw_kernels as dk
from core.brain.params import PatternConfig
from core.brain.patterns import IMPROVEMENT_BOUNDS, IMPROVEMENT_PRIOR, PatternTable
from evolve import operators as ops
from evolve.genes import alphabet_for


def _random_table(seed: int, n: int, cap: int = 4096, sequences: int = 400) -> PatternTable:
    """A gene table learnt from random sequences with random verdicts and improvements, some
    thresholds moved by hand (neutral ones included), some slots evicted and refilled."""
    rng = np.random.default_rng(seed)
    table = PatternTable(PatternConfig(capacity=cap, n_min=1, n_max=3, min_count=1, edges_per_pattern=2))
    for _ in range(3):
        seqs = [rng.integers(0, n, rng.integers(1, 6)).tolist() for _ in range(sequences)]
        tokens = np.concatenate([np.asarray(s, np.int64) for s in seqs])
        ptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
        mptr, mslots = table.scan_sequences((tokens, ptr), True)
        ok = rng.integers(0, 4, sequences)
        table.observe(mptr, mslots, ok, rng.integers(0, 3, sequences) * (ok < 2))
    live = np.flatnonzero(table.length > 0)
    table.count[live] = rng.integers(0, 50, live.size)
    table.n_improved[live] = rng.integers(0, 1 + table.count[live])
    pick = rng.choice(live, live.size // 3, replace=False)
    table.threshold_ratio[pick] = rng.choice([table.init_threshold, 0.05, 0.3, 2.0], pick.size)
    return table


def _numpy_draw_ratios(table: PatternTable) -> np.ndarray:
    """The draw ratios written with numpy masks, independently of the kernel."""
    init = np.float64(table.init_threshold)
    live = table.length > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(live, np.minimum(1.0, init / table.threshold_ratio.astype(np.float64)), 1.0)
        n, k = table.count.astype(np.float64), table.n_improved.astype(np.float64)
        for L in range(1, table.config.n_max + 1):
            at = live & (table.length == L) & (n > 0)
            total, better = n[at].sum(), k[at].sum()
            if better <= 0 or total <= 0:
                continue
            base = better / total
            rate = (k[at] + IMPROVEMENT_PRIOR * base) / (n[at] + IMPROVEMENT_PRIOR)
            factor[at] *= np.clip(rate / base, *IMPROVEMENT_BOUNDS)
        return np.where(live, init / factor, table.threshold_ratio).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_draw_ratios_kernel_equals_numpy(seed):
    """Check that the compiled draw ratios equal the numpy masks' bit for bit."""
    table = _random_table(seed, 12 + 7 * seed)
    got, want = table.draw_ratios(), _numpy_draw_ratios(table)
    np.testing.assert_array_equal(got, want)
    live = table.length > 0
    assert np.unique(got[live]).size > 20       # not a table of neutral ratios


@pytest.mark.parametrize("seed,max_pairs", [(0, 2048), (1, 2048), (2, 5), (3, 40)])
def test_lazy_rows_equal_the_full_table(seed, max_pairs):
    """Check that every row of the lazy table, computed on demand in a random order (some twice),
    equals context_cumulative's full table bit for bit, with the same pair keys."""
    n = 9 + 5 * seed
    table = _random_table(seed, n)
    base = np.random.default_rng(seed).random(n) + 0.01
    cum, pairs = table.draw_table(base, max_pairs=max_pairs)
    lazy = table.lazy_draw_table(base, max_pairs=max_pairs)
    np.testing.assert_array_equal(lazy[2], pairs)
    assert pairs.size > 0 and not lazy[1].any()
    order = np.random.default_rng(seed + 10).permutation(cum.shape[0])
    for r in np.concatenate([order, order[:5]]):
        np.testing.assert_array_equal(dk.row(lazy, r), cum[r])
    assert lazy[1].all()
    assert not np.allclose(cum[1 + n:], cum[1 + pairs % n])   # pair rows differ from their last gene's


def test_draws_from_the_lazy_table_equal_draws_from_the_full_one():
    """Check that mutation and initialisation draw the same genes from the lazy table as from
    the full one, and read only some of its rows."""
    alphabet = alphabet_for("arm64")
    n = alphabet.n_genes
    table = _random_table(5, n, cap=16384, sequences=3000)
    base = np.asarray(alphabet.base_weights(), np.float64)
    full = table.draw_table(base)
    var = ops.Variation(alphabet, 12)
    got = ops.init_genomes(var, 300, 12, table.lazy_draw_table(base), random.Random(3))
    want = ops.init_genomes(var, 300, 12, full, random.Random(3))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    parents, lengths = want
    lazy = table.lazy_draw_table(base)
    a = ops.vary(var, parents, lengths, np.arange(300), 0.5, 0.5, lazy, random.Random(4))
    b = ops.vary(var, parents, lengths, np.arange(300), 0.5, 0.5, full, random.Random(4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert 0 < lazy[1].sum() < lazy[1].size
