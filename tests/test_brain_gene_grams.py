"""Tests of gene n-gram patterns: what an offspring introduced, how the seed's rule credits it,
and how the draw table follows it."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.brain import Brain
from core.brain import gene_grams as gg
from evolve.config import RunConfig
from evolve.engine import build
from evolve.genes import alphabet_for
from test_brain_rule import _reference   # the seed's C rule, one execution at a time

N = 40      # tokens of the toy alphabet
CASES = 16


def _offspring(rng, pair, n=30, length=6):
    """Genomes of random tokens with ``pair`` planted fresh at a random place (its genes only)."""
    tokens = rng.integers(0, 10, (n, length)).astype(np.int64)
    fresh = np.zeros((n, length), bool)
    for q in range(n):
        j = int(rng.integers(0, length - 1))
        tokens[q, j:j + 2] = pair
        fresh[q, j:j + 2] = True
    return tokens, np.full(n, length, np.int64), fresh


def _weight(brain, context, gene):
    w, pairs = brain.gene_patterns.context_table(N)
    return w[1 + context, gene]


def test_introduced_grams_are_the_windows_holding_a_fresh_gene():
    """Check the windows against a brute-force enumeration, each once per genome."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 4, (50, 7)).astype(np.int64)
    length = rng.integers(1, 8, 50)
    fresh = rng.random((50, 7)) < 0.2
    owner, grams, lens = gg.introduced_grams(tokens, length, fresh)
    assert np.all(np.diff(owner) >= 0)
    got = Counter((int(q), tuple(g[:k].tolist())) for q, g, k in zip(owner, grams, lens))
    want = Counter()
    for q in range(50):
        seen = set()
        for k in (1, 2, 3):
            for j in range(int(length[q]) - k + 1):
                if fresh[q, j:j + k].any():
                    seen.add((q, tuple(tokens[q, j:j + k].tolist())))
        want.update(seen)
    assert got == want and max(want.values()) == 1 and len(want) > 100


def test_a_gene_pattern_is_register_free():
    """Check that ``sub x1, x0, #1; and x0, x0, x1`` with other registers is the same bigram."""
    alpha = alphabet_for("arm64")
    sub = next(i for i, o in enumerate(alpha.ops) if o.name == "sub" and o.kind == "r2i12" and o.width == 64)
    and_ = next(i for i, o in enumerate(alpha.ops) if o.name == "and" and o.kind == "r3" and o.width == 64)
    one = [(sub, 1, 0, 0, 1), (and_, 0, 0, 1, 0)]
    two = [(sub, 3, 2, 0, 1), (and_, 2, 2, 3, 0)]
    assert alpha.render(one) != alpha.render(two)
    assert alpha.render(one)[0].startswith("sub x1, x0, #1")
    grams = []
    for genome in (one, two):
        tokens = np.array([[g[0] for g in genome]], np.int64)
        owner, g, k = gg.introduced_grams(tokens, np.array([2]), np.ones((1, 2), bool))
        grams.append(sorted(tuple(r[:n].tolist()) for r, n in zip(g, k)))
    assert grams[0] == grams[1] == sorted([(sub,), (and_,), (sub, and_)])


def test_a_two_gene_pattern_gains_weight_when_its_offspring_improve_more_often():
    """Check that the seed's rule credits every execution exactly (ok = not crashed), and that
    draws follow the rate of improvement, not its count: 7 after 5 (every offspring improved,
    120 of them) is drawn more than after 4, 21 after 20 (600 improvements, but at the base
    rate) as after 4, 8 after 6 (none improved) and 12 after 11 (all crashed) less."""
    rng = np.random.default_rng(1)
    brain = Brain()
    table = brain.gene_patterns
    assert _weight(brain, 5, 7) == 1.0
    clean = np.zeros((30, CASES), bool)
    for _ in range(4):
        tokens, length, fresh = _offspring(rng, (5, 7))
        gg.credit_introduced(table, tokens, length, fresh, clean, gg.improved(np.full(30, 1.0), np.full(30, 2.0)))
        tokens, length, fresh = _offspring(rng, (6, 8))
        gg.credit_introduced(table, tokens, length, fresh, clean, gg.improved(np.full(30, 2.0), np.full(30, 2.0)))
        for _ in range(10):
            tokens, length, fresh = _offspring(rng, (20, 21))
            half = gg.improved(np.where(np.arange(30) % 2 == 0, 1.0, 3.0), np.full(30, 2.0))
            gg.credit_introduced(table, tokens, length, fresh, clean, half)
        tokens, length, fresh = _offspring(rng, (11, 12))
        gg.credit_introduced(table, tokens, length, fresh, np.ones((30, CASES), bool), np.zeros(30, bool))
    slot = table.find([5, 7])
    s, thr = _reference(table.init_success, table.init_threshold, [1.0] * (4 * 30 * CASES))
    assert table.success_rate[slot] == np.float32(s) and table.threshold_ratio[slot] == np.float32(thr)
    assert table.n_ok[slot] == 4 * 30 * CASES and table.n_crash[slot] == 0
    assert table.count[slot] == table.n_improved[slot] == 120
    common = table.find([20, 21])
    assert table.count[common] == 1200 and table.n_improved[common] == 600
    crash = table.find([11, 12])
    assert table.threshold_ratio[crash] > 2.0 and table.n_crash[crash] == 4 * 30 * CASES
    # bigram base rate (120 + 600) / 1560 = 0.46: (5, 7) ~2x, (20, 21) ~1x, (6, 8) the bound 0.5
    assert 1.8 < _weight(brain, 5, 7) / _weight(brain, 4, 7) < 2.2
    assert 0.9 < _weight(brain, 20, 21) / _weight(brain, 4, 21) < 1.15
    assert abs(_weight(brain, 6, 8) / _weight(brain, 4, 8) - 0.5) < 1e-6
    assert _weight(brain, 11, 12) / _weight(brain, 4, 12) < 0.5 / 2.0
    # draws follow: 7 after 5 is drawn more often than after 4
    cum, pairs = table.draw_table(np.ones(N))
    u = rng.random(20000)
    after5 = np.searchsorted(cum[1 + 5], u * cum[1 + 5, -1], side="right")
    after4 = np.searchsorted(cum[1 + 4], u * cum[1 + 4, -1], side="right")
    assert (after5 == 7).mean() > 1.5 * (after4 == 7).mean()


def test_clean_executions_alone_promote_nothing():
    """Check that a pattern whose offspring never crash but never improve, however often drawn,
    is not drawn more than an unknown one (the seed's rule lowers its threshold to 0.1)."""
    rng = np.random.default_rng(2)
    brain = Brain()
    for _ in range(20):
        tokens, length, fresh = _offspring(rng, (5, 7))
        gg.credit_introduced(brain.gene_patterns, tokens, length, fresh, np.zeros((30, CASES), bool),
                             np.zeros(30, bool))
    slot = brain.gene_patterns.find([5, 7])
    assert brain.gene_patterns.threshold_ratio[slot] == np.float32(0.1)
    assert _weight(brain, 5, 7) == 1.0


def test_no_parent_or_no_cost_is_never_an_improvement():
    """Check improved()'s edge cases: no parent or a nan cost is never an improvement."""
    assert gg.improved([1.0, 1.0, np.nan, 3.0], [2.0, np.nan, 2.0, 2.0]).tolist() == [True, False, False, False]


def test_engine_learns_every_bigram_and_trigram_of_the_first_population():
    """Check, by counting the genomes' own windows, that the first population's every 1-, 2-
    and 3-gram of adjacent genes is a pattern credited once per execution of each genome."""
    engine = build(RunConfig(task="avg", pop=40, generations=1, time_limit=None, backend="emulated", seed=3,
                             init_len=6, stop_when_solved=False))
    engine.start()
    rows, table = engine.rows, engine.brain.gene_patterns
    n_cases = rows.errors.shape[1]
    want = Counter()
    for q in range(len(rows)):
        ops = rows.genes[q, :rows.length[q], 0].tolist()
        want.update({tuple(ops[j:j + k]) for k in (1, 2, 3) for j in range(len(ops) - k + 1)})
    assert sum(len(g) == 3 for g in want) > 50
    for gram, genomes in want.items():
        slot = table.find(list(gram))
        assert slot >= 0, gram
        assert table.n_ok[slot] + table.n_crash[slot] == genomes * n_cases, gram
    assert len(table) == len(want)


def _numpy_introduced(tokens, length, fresh, n_max=3):
    """The windows holding a fresh gene written with numpy masks and np.unique (the kernel's
    reference: the same rows in the same order)."""
    n, L = tokens.shape
    within = np.arange(L)[None, :] < length[:, None]
    fresh = fresh & within
    owners, rows, lens = [], [], []
    for k in range(1, min(n_max, L) + 1):
        width = L - k + 1
        hit = np.zeros((n, width), bool)
        for t in range(k):
            hit |= fresh[:, t:t + width]
        q, j = np.nonzero(within[:, k - 1:k - 1 + width] & hit)
        g = np.zeros((q.size, n_max), np.int64)
        for t in range(k):
            g[:, t] = tokens[q, j + t]
        owners.append(q)
        rows.append(g)
        lens.append(np.full(q.size, k, np.int64))
    owner, grams, lens = np.concatenate(owners), np.concatenate(rows), np.concatenate(lens)
    key = np.concatenate([owner[:, None], lens[:, None], grams], axis=1)
    first = np.sort(np.unique(key, axis=0, return_index=True)[1])
    pick = first[np.argsort(owner[first], kind="stable")]
    return owner[pick], grams[pick], lens[pick]


@pytest.mark.parametrize("seed", range(3))
def test_introduced_grams_kernel_equals_numpy(seed):
    """Check the compiled windows against numpy's on random genomes with repeated genes."""
    rng = np.random.default_rng(seed)
    n, L = 300, 12
    tokens = rng.integers(0, 4 + 3 * seed, (n, L))       # few tokens: many repeated windows
    length = rng.integers(1, L + 1, n)
    fresh = rng.random((n, L)) < 0.3
    got = gg.introduced_grams(tokens, length, fresh)
    want = _numpy_introduced(tokens, length, fresh)
    assert len(want[0]) > 500
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
