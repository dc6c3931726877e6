"""Tests of the seed's rule on statistics kept outside the brain (a population's arrays), and of
code buffers going into the brain whole."""
from __future__ import annotations

import numpy as np
import pytest

from core.brain import Brain, BrainParams
from core.brain.state import ERROR_PORT, NEGATIVE_PORT
from core.codes import Codes
from core.outcome import N_OUTCOMES, Outcome


def _outcomes(rng, n: int, n_cases: int, crash_share: float) -> np.ndarray:
    crash = rng.random((n, n_cases)) < crash_share
    kinds = rng.integers(1, N_OUTCOMES, (n, n_cases))
    return np.where(crash, kinds, Outcome.OK).astype(np.uint8)


@pytest.mark.parametrize("crash_share", [0.0, 0.05, 0.5, 0.97, 1.0])
def test_detached_state_then_node_equals_a_node_all_along(crash_share):
    """Check that reinforce_stats, then add_exec_nodes with its result, gives each node the
    state (success, threshold, executions, outcomes) of a node made first and reinforced."""
    rng = np.random.default_rng(int(crash_share * 100))
    n, n_cases = 300, 64
    # priors as the engine makes them: float64 means of float32 values, the clamps included
    success = rng.random(n)
    threshold = np.concatenate([rng.uniform(0.1, 3.0, n - 4), [0.1, 3.0, 0.1000001, 2.9999]])
    outcomes = _outcomes(rng, n, n_cases, crash_share)
    codes = [bytes(rng.integers(0, 256, 4 * int(k), dtype=np.uint8)) for k in rng.integers(0, 9, n)]

    along = Brain()
    ids = along.add_exec_nodes(codes, success_rate=success, threshold_ratio=threshold)
    along.reinforce(ids, outcomes, link=False)

    later = Brain()
    s, t, counts = later.reinforce_stats(success, threshold, outcomes)
    assert s.dtype == np.float32 and t.dtype == np.float32 and counts.shape == (n, N_OUTCOMES)
    ids2 = later.add_exec_nodes(Codes.from_list(codes), success_rate=s, threshold_ratio=t, outcomes=counts)

    a, b = along.node_stats(ids), later.node_stats(ids2)
    for key in ("success_rate", "threshold_ratio", "executions", "outcomes"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert along.codes(ids) == later.codes(ids2)
    # crash energy reaches the error ports the same way
    assert along.crashes_handled == later.crashes_handled == int((outcomes != Outcome.OK).sum())
    np.testing.assert_array_equal(along.activation[[ERROR_PORT, NEGATIVE_PORT]],
                                  later.activation[[ERROR_PORT, NEGATIVE_PORT]])


def test_a_codes_buffer_goes_into_the_blob_as_separate_codes_would():
    """Check that a Codes buffer and the list of its codes give the same blob, offsets, codes."""
    rng = np.random.default_rng(3)
    codes = [bytes(rng.integers(0, 256, 4 * int(k), dtype=np.uint8)) for k in rng.integers(0, 12, 50)]
    one, two = Brain(), Brain()
    one.add_exec_nodes([b"\x01" * 12])
    two.add_exec_nodes([b"\x01" * 12])
    a = one.add_exec_nodes(codes)
    b = two.add_exec_nodes(Codes.from_list(codes))
    assert bytes(one.code_blob) == bytes(two.code_blob)
    np.testing.assert_array_equal(one.exec_table()["offset"], two.exec_table()["offset"])
    assert one.codes(a) == two.codes(b) == codes


def test_codes_index_take_and_refuse_bad_offsets():
    """Check that Codes indexes as a list of bytes, takes rows in order and checks its offsets."""
    codes = [b"abcd", b"", b"efghijkl", b"mnop"]
    c = Codes.from_list(codes)
    assert list(c) == codes and len(c) == 4 and c[-1] == b"mnop"
    assert list(c.take([3, 1, 2, 2])) == [b"mnop", b"", b"efghijkl", b"efghijkl"]
    assert list(c[1:3]) == codes[1:3]
    with pytest.raises(IndexError):
        c[4]
    with pytest.raises(ValueError):
        Codes(np.zeros(4, np.uint8), np.array([0, 3, 2, 4]))
    with pytest.raises(ValueError, match="outcome|counts"):
        Brain().add_exec_nodes(c, outcomes=np.zeros((3, N_OUTCOMES)))
    assert BrainParams().rule.ema_keep == 0.9      # the seed's rule, unchanged
