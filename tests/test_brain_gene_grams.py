"""Tests of gene n-gram patterns: what an offspring introduced, how the seed's rule credits it,
and how the draw table follows it."""
from __future__ import annotations

from collections import Counter

import numpy as np

from core.brain import Brain
from core.brain import gene_grams as gg
from core.brain.params import RuleParams
from evolve.config import RunConfig
from evolve.engine import build
from evolve.genes import alphabet_for

N = 40      # tokens of the toy alphabet
CASES = 16


def _reference(s: float, thr: float, oks, r: RuleParams = RuleParams()) -> tuple[float, float]:
    """The seed's C rule, in float32, one execution at a time (as tests/test_brain_rule.py)."""
    f = np.float32
    s, thr = f(s), f(thr)
    for ok in oks:
        s = f(r.ema_keep) * s + f(r.ema_gain) * f(ok)
        if s > f(r.high):
            thr = thr * f(r.down)
        elif s < f(r.low):
            thr = thr * f(r.up)
        thr = min(max(thr, f(r.threshold_min)), f(r.threshold_max))
    return float(s), float(thr)


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


def test_a_two_gene_pattern_gains_weight_when_its_offspring_improve():
    """Check that offspring introducing (5, 7) that beat their parents raise the weight of 7
    after 5, by exactly the seed's rule, while a pattern whose offspring did not improve keeps
    its weight, and a crashing one loses it."""
    rng = np.random.default_rng(1)
    brain = Brain()
    table = brain.gene_patterns
    assert _weight(brain, 5, 7) == 1.0
    cases = np.zeros((30, CASES), bool)
    oks = []
    for _ in range(4):
        tokens, length, fresh = _offspring(rng, (5, 7))
        gain = gg.improvement_gain(np.full(30, 1.0), np.full(30, 2.0))     # all improved
        gg.credit_introduced(table, tokens, length, fresh, cases, gain)
        oks += [gg.IMPROVED] * (30 * CASES)
        tokens, length, fresh = _offspring(rng, (6, 8))
        gain = gg.improvement_gain(np.full(30, 2.0), np.full(30, 2.0))     # equal: not improved
        gg.credit_introduced(table, tokens, length, fresh, cases, gain)
        tokens, length, fresh = _offspring(rng, (11, 12))
        gg.credit_introduced(table, tokens, length, fresh, np.ones((30, CASES), bool), gain)
    slot = table.find([5, 7])
    s, thr = _reference(table.init_success, table.init_threshold, oks)
    assert table.success_rate[slot] == np.float32(s) and table.threshold_ratio[slot] == np.float32(thr)
    assert table.n_ok[slot] == len(oks) and table.n_crash[slot] == 0
    # the weight of 7 after 5: the unigram [7]'s and the bigram [5, 7]'s factors
    assert table.threshold_ratio[slot] == np.float32(0.1)
    assert _weight(brain, 5, 7) > 9.0 * _weight(brain, 4, 7)     # > 9x the context without 5
    assert 0.9 < _weight(brain, 6, 8) / _weight(brain, 4, 8) <= 1.0
    crash = table.find([11, 12])
    assert table.threshold_ratio[crash] > 2.0 and table.n_crash[crash] == 4 * 30 * CASES
    assert _weight(brain, 11, 12) < 0.5 * _weight(brain, 4, 12) and _weight(brain, 11, 12) < 0.2
    # draws follow: 7 after 5 is drawn far more often than after 4
    cum, pairs = table.draw_table(np.ones(N))
    u = rng.random(20000)
    after5 = np.searchsorted(cum[1 + 5], u * cum[1 + 5, -1], side="right")
    after4 = np.searchsorted(cum[1 + 4], u * cum[1 + 4, -1], side="right")
    assert (after5 == 7).mean() > 5 * (after4 == 7).mean()


def test_no_parent_or_no_cost_is_never_an_improvement():
    """Check improvement_gain's edge cases: no parent or a nan cost is never an improvement."""
    g = gg.improvement_gain([1.0, 1.0, np.nan, 3.0], [2.0, np.nan, 2.0, 2.0])
    assert g.tolist() == [gg.IMPROVED, gg.NEUTRAL, gg.NEUTRAL, gg.NEUTRAL]


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
