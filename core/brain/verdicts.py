"""Outcome arrays as the brain learns from them: validated once, then handed to the kernels.

Two shapes of verdict reach the brain: one ``Outcome`` per execution (uint8 [n, n_cases]) and
executions per outcome class (int [n, N_OUTCOMES], column 0 = ok, e.g. one genome's test cases).
"""
from __future__ import annotations

import numpy as np

from core.outcome import N_OUTCOMES, Outcome


def outcome_matrix(outcomes: np.ndarray, n: int) -> np.ndarray:
    """``outcomes`` (uint8-able [n] or [n, n_cases] ``Outcome`` values) as uint8 [n, n_cases];
    raises ValueError for another shape or a value that is not an outcome class."""
    out = np.asarray(outcomes)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"outcomes must be [n] or [n, n_cases] with n={n}, "
                         f"got shape {np.shape(outcomes)}")
    if out.size and (out.min() < 0 or out.max() >= N_OUTCOMES):
        raise ValueError(f"outcomes must be Outcome values 0..{N_OUTCOMES - 1}")
    return np.ascontiguousarray(out, np.uint8)


def count_matrix(counts: np.ndarray, n: int) -> np.ndarray:
    """``counts`` as int64 [n, N_OUTCOMES]; raises ValueError for another shape or a negative
    count."""
    cnt = np.ascontiguousarray(counts, np.int64)
    if cnt.shape != (n, N_OUTCOMES) or (cnt.size and cnt.min() < 0):
        raise ValueError(f"counts must be non-negative [n, {N_OUTCOMES}], got {cnt.shape}")
    return cnt


def ok_crash_counts(outcomes: np.ndarray, n_seq: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_ok, n_crash)`` int64 [n_seq] of each sequence's executions.

    ``outcomes`` is uint8 [n_seq, n_cases] (``Outcome`` values), or any other integer dtype
    [n_seq, N_OUTCOMES] (executions per outcome class, column 0 = ok).
    """
    out = np.asarray(outcomes)
    if out.ndim != 2 or out.shape[0] != n_seq:
        raise ValueError(f"outcomes must have one row per sequence ({n_seq})")
    if out.dtype == np.uint8:
        if out.size and out.max() >= N_OUTCOMES:
            raise ValueError("outcomes must be Outcome values")
        n_ok = (out == Outcome.OK).sum(axis=1)
        return n_ok, out.shape[1] - n_ok
    if out.shape[1] != N_OUTCOMES or (out.size and out.min() < 0):
        raise ValueError(f"counts must be non-negative [n_seq, {N_OUTCOMES}]")
    n_ok = out[:, 0]
    return n_ok, out.sum(axis=1) - n_ok
