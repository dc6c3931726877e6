"""Tests of scripts/bench_brain.py: the figures' shape (never their speed)."""
from __future__ import annotations

from scripts import bench_brain


def test_benchmark_rows_are_complete():
    """Check that a tiny benchmark run returns complete rows and checks itself against scipy."""
    rows = bench_brain.bench_propagation(2000, 20000, 1) + bench_brain.bench_firing(1000, 1)
    names = [r["name"] for r in rows]
    assert names == ["brain.propagate", "brain.step", "brain.bytes_per_edge",
                     "brain.bytes_per_node", "brain.fire_and_reinforce", "brain.reinforce_batch"]
    for r in rows:
        assert set(r) == {"name", "value", "unit", "baseline", "ratio", "notes"}
        assert r["value"] > 0
    assert rows[2]["value"] == 8.0 and rows[2]["value"] <= 16.0
