"""Tests of the seed's reinforcement rule as the brain applies it."""
from __future__ import annotations

import numpy as np
import pytest

from core.brain import Brain, BrainParams, RuleParams
from core.outcome import N_OUTCOMES, Outcome


def _brain(n: int = 3, success: float = 0.0, threshold: float = 0.1,
           rule: RuleParams | None = None) -> tuple[Brain, np.ndarray]:
    brain = Brain(params=BrainParams(rule=rule or RuleParams()))
    ids = brain.add_exec_nodes([b"\x00" * 4] * n, success_rate=success, threshold_ratio=threshold)
    return brain, ids


def _reference(s: float, thr: float, oks, r: RuleParams = RuleParams()) -> tuple[float, float]:
    """The seed's C rule, in float32, one execution at a time."""
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


@pytest.mark.parametrize("n", [1, 5, 20, 22, 100, 300, 341])
def test_failures_raise_threshold_geometrically(n):
    """Check that n crashes from threshold 0.1 (success 0) give 0.1 * 1.01**n below the clamp."""
    brain, ids = _brain(1)
    brain.reinforce(ids, np.full((1, n), Outcome.SIGILL, np.uint8))
    t = brain.exec_table()
    assert t["threshold_ratio"][0] == pytest.approx(0.1 * 1.01 ** n, rel=1e-4)
    assert t["success_rate"][0] == 0.0
    assert t["executions"][0] == n


def test_failures_clamp_at_three():
    """Check that enough crashes clamp the threshold at exactly 3.0 and keep it there."""
    brain, ids = _brain(1)
    brain.reinforce(ids, np.full((1, 342), Outcome.SIGSEGV, np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == np.float32(3.0)
    brain.reinforce(ids, np.full((1, 50), Outcome.SIGSEGV, np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == np.float32(3.0)


def test_success_holds_minimum():
    """Check that a working node (success 1.0) stays at threshold 0.1 and success 1.0."""
    brain, ids = _brain(1, success=1.0)
    brain.reinforce(ids, np.zeros((1, 200), np.uint8))
    t = brain.exec_table()
    assert t["threshold_ratio"][0] == np.float32(0.1)
    assert t["success_rate"][0] == pytest.approx(1.0, abs=1e-6)


def test_success_lowers_threshold_and_clamps_at_minimum():
    """Check that successes multiply a high threshold by 0.99 each and stop at 0.1."""
    brain, ids = _brain(1, success=1.0, threshold=3.0)
    brain.reinforce(ids, np.zeros((1, 10), np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == pytest.approx(3.0 * 0.99 ** 10, rel=1e-4)
    brain.reinforce(ids, np.zeros((1, 1000), np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == np.float32(0.1)


def test_middle_band_leaves_threshold():
    """Check that a success rate between 0.3 and 0.7 leaves the threshold unchanged."""
    brain, ids = _brain(1, success=0.5, threshold=1.0)
    brain.reinforce(ids, np.array([[0, 1]], np.uint8))  # s: 0.55, then 0.495
    t = brain.exec_table()
    assert t["threshold_ratio"][0] == np.float32(1.0)
    assert t["success_rate"][0] == pytest.approx(0.495, abs=1e-6)


def test_matches_reference_on_random_outcomes():
    """Check that batch reinforcement equals the one-execution-at-a-time reference."""
    rng = np.random.default_rng(3)
    out = rng.choice([0, 0, 1, 2, 3], size=(40, 30)).astype(np.uint8)
    s0 = rng.random(40).astype(np.float32)
    t0 = rng.uniform(0.05, 3.5, 40).astype(np.float32)
    brain = Brain()
    ids = brain.add_exec_nodes([b"\x00" * 4] * 40, success_rate=s0, threshold_ratio=t0)
    brain.reinforce(ids, out)
    t = brain.exec_table()
    for i in range(40):
        s, thr = _reference(s0[i], t0[i], (out[i] == 0).astype(float))
        assert t["success_rate"][i] == pytest.approx(s, abs=1e-6)
        assert t["threshold_ratio"][i] == pytest.approx(thr, rel=1e-6)
    expected = np.stack([(out == k).sum(axis=1) for k in range(N_OUTCOMES)], axis=1)
    np.testing.assert_array_equal(t["outcomes"], expected)


def test_repeated_ids_apply_in_order():
    """Check that a node listed twice in one batch gets both executions, in order."""
    brain, ids = _brain(1)
    brain.reinforce(np.r_[ids, ids], np.array([[1], [1]], np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == pytest.approx(0.1 * 1.01 ** 2, rel=1e-5)
    assert brain.exec_table()["executions"][0] == 2


def test_constants_are_configurable():
    """Check that the rule's constants come from RuleParams (a faster growth factor)."""
    rule = RuleParams(up=1.1, threshold_max=1.0)
    brain, ids = _brain(1, rule=rule)
    brain.reinforce(ids, np.ones((1, 5), np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == pytest.approx(0.1 * 1.1 ** 5, rel=1e-5)
    brain.reinforce(ids, np.ones((1, 50), np.uint8))
    assert brain.exec_table()["threshold_ratio"][0] == np.float32(1.0)


def test_counts_mode_is_one_step_with_ok_fraction():
    """Check that reinforce_counts makes one rule step with ok = fraction, counting everything."""
    brain, ids = _brain(2, success=0.0)
    counts = np.zeros((2, N_OUTCOMES), np.int64)
    counts[0, Outcome.OK] = 64
    counts[1, Outcome.SIGBUS] = 60
    counts[1, Outcome.OK] = 4
    crashes = brain.reinforce_counts(ids, counts)
    t = brain.exec_table()
    assert crashes == 60
    assert t["success_rate"] == pytest.approx([0.1, 0.1 * 4 / 64], abs=1e-6)
    assert t["threshold_ratio"] == pytest.approx([0.101, 0.101], rel=1e-5)
    np.testing.assert_array_equal(t["executions"], [64, 64])
    np.testing.assert_array_equal(t["outcomes"], counts)


@pytest.mark.parametrize("bad", [np.full((1, 2), N_OUTCOMES, np.uint8), np.zeros((2, 2), np.uint8),
                                 np.zeros((1, 2, 2), np.uint8)])
def test_rejects_bad_outcomes(bad):
    """Check that out-of-range outcome values and wrong shapes raise ValueError."""
    brain, ids = _brain(1)
    with pytest.raises(ValueError):
        brain.reinforce(ids, bad)


def test_rejects_non_exec_nodes():
    """Check that reinforcing a port or unknown node raises ValueError and changes nothing."""
    brain, ids = _brain(1)
    with pytest.raises(ValueError):
        brain.reinforce([5], np.zeros((1, 1), np.uint8))
    with pytest.raises(ValueError):
        brain.reinforce([10**6], np.zeros((1, 1), np.uint8))
    assert brain.exec_table()["executions"][0] == 0


def test_node_stats_follow_requested_order():
    """Check that node_stats returns each requested node's columns in the requested order."""
    brain, ids = _brain(3)
    brain.reinforce(ids[1:2], np.ones((1, 4), np.uint8))
    st = brain.node_stats(ids[::-1])
    assert st["executions"].tolist() == [0, 4, 0]
    assert st["threshold_ratio"][1] == pytest.approx(0.1 * 1.01 ** 4, rel=1e-5)
    assert st["outcomes"][1, Outcome.SIGILL] == 4
