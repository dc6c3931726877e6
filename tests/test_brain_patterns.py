"""Tests of pattern learning on byte streams and on streams of gene ids."""
from __future__ import annotations

import numpy as np
import pytest

from core.brain import Brain, BrainParams
from core.outcome import N_OUTCOMES, Outcome
from core.brain.params import PatternConfig
from core.brain.patterns import PatternTable


def _stream_with(motif: bytes, copies: int, seed: int = 0, gap: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(copies):
        parts.append(rng.integers(0, 256, gap, dtype=np.uint8).tobytes())
        parts.append(motif)
    return b"".join(parts)


def test_planted_ngrams_are_found():
    """Check that a motif planted in random bytes yields its n-grams as frequent patterns."""
    table = PatternTable(PatternConfig(capacity=1024, n_min=2, n_max=4))
    data = _stream_with(b"MELV", 30)
    for i in range(0, len(data), 17):  # chunks: n-grams must span chunk boundaries
        table.scan_stream(data[i:i + 17])
    for gram in (b"ME", b"EL", b"LV", b"MEL", b"ELV", b"MELV"):
        slot = table.find(gram)
        assert slot >= 0, gram
        assert table.count[slot] >= 30
    st = table.stats()
    top = st["count"].argsort()[::-1][:6]
    tops = {bytes(st["tokens"][i][:st["length"][i]].astype(np.uint8)) for i in top}
    assert b"MELV" in tops


def test_single_occurrence_is_not_a_pattern():
    """Check that an n-gram seen once is not promoted when min_count is 2."""
    table = PatternTable(PatternConfig(n_min=2, n_max=3, min_count=2))
    table.scan_stream(b"abcdefgh")
    assert len(table) == 0
    table.scan_stream(b"xxabc")
    assert table.find(b"abc") >= 0 and table.find(b"fgh") < 0


def test_learn_false_only_matches():
    """Check that scanning without learning matches known patterns but creates none."""
    table = PatternTable(PatternConfig(n_min=2, n_max=2))
    table.scan_stream(b"abab")
    n = len(table)
    matched = table.scan_stream(b"zzabqq", learn=False)
    assert len(table) == n and table.find(b"zz") < 0
    assert table.find(b"ab") in matched.tolist()


def test_capacity_bounds_memory_and_evicts():
    """Check that a small table stays at its cap on a long stream and stays consistent."""
    table = PatternTable(PatternConfig(capacity=64, n_min=2, n_max=3, candidate_bits=8))
    rng = np.random.default_rng(1)
    before = table.nbytes()
    for _ in range(50):
        table.scan_stream(rng.integers(0, 16, 400, dtype=np.uint8).tobytes())
    assert len(table) == 64 and table.evictions > 0
    assert table.nbytes() == before
    st = table.stats()
    for i in range(len(st["slot"])):  # every live pattern is still found through the index
        gram = st["tokens"][i][:st["length"][i]]
        assert table.find(gram.tolist()) == st["slot"][i]


def test_gene_patterns_learn_which_ngram_crashes():
    """Check that a gene bigram present in every crashing genome gets suppressed weights."""
    brain = Brain()
    rng = np.random.default_rng(2)
    for _ in range(60):
        seqs, rows = [], []
        for _ in range(20):
            seq = rng.integers(0, 6, 6).tolist()
            bad = rng.random() < 0.5
            if bad:
                seq[2:4] = [7, 9]
            seqs.append(seq)
            rows.append(np.full(8, Outcome.SIGILL if bad else Outcome.OK, np.uint8))
        brain.observe_genes(None, seqs, np.stack(rows))
    slot = brain.gene_patterns.find([7, 9])
    assert slot >= 0
    st = brain.gene_patterns
    assert st.threshold_ratio[slot] > 1.0 and st.success_rate[slot] < 0.1 and st.n_crash[slot] > 0
    good = brain.gene_patterns.find([1, 2])
    # a new gene pattern starts neutral (1.0, weight 1): crashing ones weigh less; clean
    # executions alone lower the threshold but do not promote (only improvements do)
    assert st.threshold_ratio[good] < 1.0 and st.n_ok[good] > 0
    w = brain.gene_weights([3, 7], 10)
    assert w.shape == (10,) and w[9] < 0.5 and w[2] == 1.0
    assert brain.gene_weights([3, 4], 10)[9] > w[9]


def test_gene_sequences_do_not_cross_boundaries():
    """Check that n-grams are never formed across two genomes."""
    table = PatternTable(PatternConfig(n_min=2, n_max=2, min_count=1))
    ptr, slots = table.scan_sequences([[1, 2], [3, 4]])
    assert table.find([2, 3]) < 0 and table.find([1, 2]) >= 0
    assert ptr.tolist() == [0, 1, 2] and len(slots) == 2


def test_gene_counts_input():
    """Check that per-class counts are accepted in place of an outcome matrix."""
    brain = Brain()
    counts = np.zeros((1, N_OUTCOMES), np.int64)
    counts[0, Outcome.OK] = 3
    counts[0, Outcome.SIGSEGV] = 5
    brain.observe_genes(None, [[4, 5]], counts)
    slot = brain.gene_patterns.find([4, 5])
    assert brain.gene_patterns.n_ok[slot] == 3 and brain.gene_patterns.n_crash[slot] == 5


def test_merge_adds_statistics():
    """Check that merging another table sums counts and imports unknown patterns."""
    a, b = Brain(), Brain()
    a.observe_genes(None, [[1, 2]], np.zeros((1, 4), np.uint8))
    b.observe_genes(None, [[1, 2], [5, 6]], np.ones((2, 4), np.uint8))
    created = a.merge_patterns(b)
    ga = a.gene_patterns
    s12, s56 = ga.find([1, 2]), ga.find([5, 6])
    assert created >= 3 and s56 >= 0
    assert ga.n_ok[s12] == 4 and ga.n_crash[s12] == 4 and ga.n_crash[s56] == 4



def test_delta_since_snapshot_holds_the_increments():
    """Check that a delta holds only what was observed since the snapshot, and merges as such."""
    a, b = Brain(), Brain()
    a.observe_genes(None, [[1, 2], [7, 8]], np.zeros((2, 4), np.uint8))
    before = a.gene_patterns.snapshot()
    a.observe_genes(None, [[1, 2], [5, 6]], np.ones((2, 4), np.uint8))
    delta = a.gene_patterns.delta_since(before)
    rows = {tuple(t[:n].tolist()) for t, n in zip(delta.tokens, delta.length)}
    assert (1, 2) in rows and (5, 6) in rows and (7, 8) not in rows and len(delta) == len(rows)
    b.gene_patterns.merge(delta)
    g = b.gene_patterns
    assert g.n_ok[g.find([1, 2])] == 0 and g.n_crash[g.find([1, 2])] == 4
    assert g.find([7, 8]) < 0

def test_active_patterns_link_to_fired_nodes():
    """Check that active byte patterns get edges strengthened on success, weakened on crash."""
    brain = Brain()
    good, bad = brain.add_exec_nodes([bytes(4)] * 2)
    brain.feed(b"xyxyxy")
    slot = brain.byte_patterns.find(b"xy")
    assert slot >= 0 and brain.byte_patterns.activation[slot] > brain.params.link_eps
    brain.reinforce([good], np.zeros((1, 1), np.uint8))
    brain.reinforce([bad], np.ones((1, 1), np.uint8))
    edge_node = brain.byte_patterns.edge_node[slot].tolist()
    edge_weight = brain.byte_patterns.edge_weight[slot]
    assert edge_weight[edge_node.index(good)] > 0 and edge_weight[edge_node.index(bad)] < 0
    brain.activation[:] = 0.0
    brain.step()  # the active pattern pushes into the good node only
    assert brain.activation[good] > 0 and brain.activation[bad] == 0.0


def test_patterns_forget_removed_nodes():
    """Check that removing an EXEC node drops the learned edges pointing at it."""
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)] * 2)
    brain.feed(b"abababab")
    brain.reinforce(ids, np.zeros((2, 1), np.uint8))
    assert np.isin(ids[0], brain.byte_patterns.edge_node)
    brain.remove_exec_nodes(ids[:1])
    assert not np.isin(ids[0], brain.byte_patterns.edge_node)
    assert np.isin(ids[1], brain.byte_patterns.edge_node)


def test_brain_params_cap_patterns():
    """Check that the brain's byte-pattern cap comes from its parameters."""
    brain = Brain(params=BrainParams(byte_patterns=PatternConfig(capacity=16)))
    brain.feed(np.random.default_rng(0).integers(0, 8, 5000, dtype=np.uint8).tobytes())
    assert len(brain.byte_patterns) == 16


def test_guide_matches_bruteforce():
    """Check that the context index gives the product over every matching known pattern of
    its draw factor (the seed's rule: ``min(1, init / threshold)``; no improvements counted)."""
    brain = Brain()
    rng = np.random.default_rng(4)
    seqs = [rng.integers(0, 9, 5).tolist() for _ in range(300)]
    crash = np.array([4 in s for s in seqs])
    out = np.repeat(np.where(crash, Outcome.SIGILL, Outcome.OK)[:, None], 4, 1).astype(np.uint8)
    for _ in range(3):
        brain.observe_genes(None, seqs, out)
    g = brain.gene_patterns
    guide = brain.gene_guide(min_executions=1)
    prefixes = [[], [3], [1, 4], [2, 2, 0], [0, 1, 2, 3]]
    got = guide.weights(prefixes, 10)
    for i, prefix in enumerate(prefixes):
        for tok in range(10):
            expected = 1.0
            for k in range(0, 3):
                if k > len(prefix):
                    break
                slot = g.find(list(prefix[len(prefix) - k:]) + [tok])
                if slot >= 0:
                    expected *= min(1.0, float(g.init_threshold) / float(g.threshold_ratio[slot]))
            assert got[i, tok] == pytest.approx(expected, rel=1e-6)
    assert np.all(got[:, 9] == 1.0) and got[0, 4] < 0.5 and len(guide) > 0


def test_context_table_equals_guide_weights_for_every_context():
    """Check the one-pass table of draw weights against the guide's per-context search."""
    rng = np.random.default_rng(3)
    n = 12
    table = PatternTable(PatternConfig(capacity=4096, n_min=1, n_max=3, min_count=1, edges_per_pattern=2))
    seqs = [rng.integers(0, n, rng.integers(1, 5)).tolist() for _ in range(150)]
    outcomes = rng.integers(0, 3, (150, 1)).astype(np.uint8)    # one verdict each: the rule moves
    tokens, ptr = np.concatenate([np.asarray(s, np.int64) for s in seqs]), np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    for _ in range(6):
        mptr, mslots = table.scan_sequences((tokens, ptr.astype(np.int64)), True)
        table.observe(mptr, mslots, (outcomes == 0).sum(axis=1), (outcomes != 0).sum(axis=1))
    compact, pairs = table.context_table(n)
    assert 0 < len(pairs) < n * n and np.all(np.diff(pairs) > 0)   # some pairs draw from their last gene
    # the full table: a pair without a row of its own draws from its last token's row
    got = np.concatenate([compact[:1 + n], [compact[1 + n + np.searchsorted(pairs, a * n + b)]
                                            if a * n + b in set(pairs.tolist()) else compact[1 + b]
                                            for a in range(n) for b in range(n)]])
    contexts = [[]] + [[b] for b in range(n)] + [[a, b] for a in range(n) for b in range(n)]
    want = table.guide().weights(contexts, n)
    assert got.shape == want.shape == (1 + n + n * n, n)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (got < 1).sum() > 50      # the test is not comparing all-ones tables


def test_draw_table_is_the_cumulative_context_table_bit_for_bit():
    """Check that draw_table equals numpy's cumsum(base * context_table) exactly, pair rows included."""
    rng = np.random.default_rng(4)
    n = 15
    table = PatternTable(PatternConfig(capacity=4096, n_min=1, n_max=3, min_count=1, edges_per_pattern=2))
    seqs = [rng.integers(0, n, rng.integers(1, 5)).tolist() for _ in range(300)]
    outcomes = rng.integers(0, 3, (300, 1)).astype(np.uint8)
    tokens = np.concatenate([np.asarray(s, np.int64) for s in seqs])
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    for _ in range(6):
        mptr, mslots = table.scan_sequences((tokens, ptr), True)
        table.observe(mptr, mslots, (outcomes == 0).sum(axis=1), (outcomes != 0).sum(axis=1))
    base = rng.random(n) + 0.01
    weights, pairs = table.context_table(n)
    cum, pairs2 = table.draw_table(base)
    assert len(pairs) > 0 and (weights < 1).sum() > 50
    np.testing.assert_array_equal(pairs, pairs2)
    np.testing.assert_array_equal(cum, np.cumsum(base * weights, axis=1))


def test_draw_table_keeps_the_pairs_that_say_most():
    """Check that max_pairs bounds the pair rows, keeping the pairs whose trigrams' factors
    weigh most, and that a trigram at the neutral threshold makes no row."""
    table = PatternTable(PatternConfig(capacity=64, n_min=1, n_max=3, min_count=1), init_threshold=1.0)
    grams = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 5, 9]], np.int64)
    slots = table.intern(grams, np.full(4, 3), np.arange(4))
    table.n_ok[slots] = 10
    table.threshold_ratio[slots] = [2.0, 2.9, 1.0, 1.1]       # |log f|: 0.69, 1.06, 0, 0.10
    w, pairs = table.context_table(10, max_pairs=2)
    assert pairs.tolist() == [1 * 10 + 2, 4 * 10 + 5]
    assert w[1 + 10 + 0, 3] == 0.5 and w[1 + 10 + 1, 6] == pytest.approx(1 / 2.9)
    w, pairs = table.context_table(10)
    assert pairs.tolist() == [12, 15, 45]                     # (7, 8) -> 9 is neutral: no row
