"""Tests that the rule kernels' shortcut (ok steps at a fixed point counted, not run) changes
nothing: gram_kernels.credit and kernels.reinforce_outcomes against a step-by-step reference."""
import numpy as np
import pytest

from core.brain import gram_kernels as gk
from core.brain import kernels as bk
from core.brain.params import RuleParams

RULE = RuleParams().as_array()


def _step(s, t, ok):
    """One rule step from Python, kept in float32 (the kernel's own types)."""
    s, t = bk.rule_step(np.float32(s), np.float32(t), np.float32(ok), RULE)
    return np.float32(s), np.float32(t)


def _fixed_point(s, t):
    for _ in range(3000):
        s, t = _step(s, t, 1.0)
    assert _step(s, t, 1.0) == (s, t)
    return s, t


def _states(rng, n):
    """Random states, a third of them at the ok step's fixed point (reached from random starts)."""
    s = rng.uniform(0, 1, n).astype(np.float32)
    t = rng.uniform(0.02, 3, n).astype(np.float32)
    for i in range(0, n, 3):
        s[i], t[i] = _fixed_point(s[i], t[i])
    return s, t


def _verdicts(rng, n, cases):
    """Crash patterns: none, only early, only late, scattered."""
    crashed = np.zeros((n, cases), bool)
    for q in range(n):
        kind = q % 4
        if kind == 1:
            crashed[q, :rng.integers(1, 5)] = True
        elif kind == 2:
            crashed[q, -rng.integers(1, 5):] = True
        elif kind == 3:
            crashed[q] = rng.random(cases) < 0.3
    return crashed


def _credit_step_by_step(owner, slots, crashed, improved, s0, t0, cases):
    """The reference: every execution one step of the rule, in order."""
    n = s0.size
    n_ok, n_crash, n_imp, s, t = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                                  s0.copy(), t0.copy())
    for q, k in zip(owner, slots):
        if k < 0:
            continue
        n_imp[k] += improved[q]
        for c in range(cases):
            s[k], t[k] = _step(s[k], t[k], 0.0 if crashed[q, c] else 1.0)
            n_crash[k] += crashed[q, c]
            n_ok[k] += not crashed[q, c]
    return n_ok, n_crash, n_imp, s, t


@pytest.mark.parametrize("seed", range(3))
def test_credit_equals_every_step_run(seed):
    """Check that gram_kernels.credit gives the step-by-step counts and float32 states."""
    rng = np.random.default_rng(seed)
    n_seq, cases, slots_n = 24, 64, 40
    crashed = _verdicts(rng, n_seq, cases)
    improved = rng.random(n_seq) < 0.5
    owner = np.sort(rng.integers(0, n_seq, 120)).astype(np.int64)
    slots = rng.integers(-1, slots_n, 120).astype(np.int32)
    s0, t0 = _states(rng, slots_n)
    arrays = [np.zeros(slots_n, np.int64) for _ in range(3)] + [s0.copy(), t0.copy()]
    gk.credit(owner, slots, crashed, improved, *arrays, RULE)
    n_ok, n_crash, n_imp, s, t = _credit_step_by_step(owner, slots, crashed, improved, s0, t0, cases)
    for got, want in zip(arrays, (n_ok, n_crash, n_imp, s, t)):
        np.testing.assert_array_equal(got, want)
    assert (n_ok > 0).sum() > 10 and (n_crash > 0).sum() > 5


@pytest.mark.parametrize("seed", range(3))
def test_reinforce_outcomes_equals_every_step_run(seed):
    """Check that kernels.reinforce_outcomes gives the step-by-step states, runs, outcome counts
    and crash total (slots repeated included)."""
    rng = np.random.default_rng(10 + seed)
    n_slots, cases = 30, 64
    slots = rng.integers(0, n_slots, 50).astype(np.int64)
    crashed = _verdicts(rng, slots.size, cases)
    outcomes = np.where(crashed, rng.integers(1, 8, crashed.shape), 0).astype(np.uint8)
    s0, t0 = _states(rng, n_slots)
    s, t = s0.copy(), t0.copy()
    runs, counts = np.zeros(n_slots, np.int64), np.zeros((n_slots, 9), np.int64)
    crashes = bk.reinforce_outcomes(slots, outcomes, s, t, runs, counts, RULE)
    ws, wt = s0.copy(), t0.copy()
    wruns, wcounts = np.zeros(n_slots, np.int64), np.zeros((n_slots, 9), np.int64)
    for i, e in enumerate(slots):
        for o in outcomes[i]:
            ws[e], wt[e] = _step(ws[e], wt[e], 1.0 if o == 0 else 0.0)
            wcounts[e, o] += 1
        wruns[e] += cases
    assert crashes == int((outcomes != 0).sum())
    for got, want in ((s, ws), (t, wt), (runs, wruns), (counts, wcounts)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(2))
def test_credit_of_shared_states_equals_every_step_run(seed):
    """Check that gram_kernels.credit gives the step-by-step results when many patterns start
    from the same few states (as a generation's new patterns do: its kept results per state),
    a pattern repeated within the call and crashing sequences mixed in."""
    rng = np.random.default_rng(20 + seed)
    n_seq, cases, slots_n, m = 60, 64, 300, 900
    crashed = _verdicts(rng, n_seq, cases)
    crashed[rng.random(n_seq) < 0.7] = False              # mostly clean sequences
    improved = rng.random(n_seq) < 0.5
    owner = np.sort(rng.integers(0, n_seq, m)).astype(np.int64)
    slots = rng.integers(-1, slots_n, m).astype(np.int32)
    start = [(np.float32(0.5), np.float32(1.0))]          # a path of states from one start
    for _ in range(5):
        s, t = start[-1]
        for _ in range(cases):
            s, t = _step(s, t, 1.0)
        start.append((s, t))
    start.append((np.float32(-0.0), np.float32(1.0)))     # equal to 0.0, other bits
    start.append((np.float32(0.0), np.float32(1.0)))
    pick = rng.integers(0, len(start), slots_n)
    s0 = np.array([start[k][0] for k in pick], np.float32)
    t0 = np.array([start[k][1] for k in pick], np.float32)
    arrays = [np.zeros(slots_n, np.int64) for _ in range(3)] + [s0.copy(), t0.copy()]
    gk.credit(owner, slots, crashed, improved, *arrays, RULE)
    n_ok, n_crash, n_imp, s, t = _credit_step_by_step(owner, slots, crashed, improved, s0, t0, cases)
    for got, want in zip(arrays, (n_ok, n_crash, n_imp, s, t)):
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert (n_crash > 0).sum() > 10 and np.unique(s0).size <= len(start)
