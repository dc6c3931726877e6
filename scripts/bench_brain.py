"""Benchmarks of the brain (issue 3): propagation against scipy, memory, firing + reinforcement.

``run_brain_benchmarks(quick)`` returns one dict per figure (name, value, unit, baseline,
ratio, notes); ``scripts/bench.py`` collects them. Runnable alone::

    python scripts/bench_brain.py [--quick]

Propagation runs single-threaded (``numba.set_num_threads(1)``); the scipy baseline is a
``csr_matrix @ vector`` product on the same float32 graph, measured in the same run. Each
figure is the best of several repeats after a warm-up (compilation excluded).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.brain import Brain  # noqa: E402
from core.outcome import Outcome  # noqa: E402


def _best(fn, repeats: int) -> float:
    return _best_of({"f": fn}, repeats)["f"]


def _best_of(fns: dict, repeats: int) -> dict[str, float]:
    """Best time of each function; repeats interleave them so load from other processes
    on a shared machine hits both sides of a comparison alike."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _random_graph(n_nodes: int, n_edges: int, rng: np.random.Generator) -> Brain:
    """A brain with uniformly random incoming-edge CSR (built directly, no sort)."""
    brain = Brain(n_nodes)
    counts = rng.multinomial(n_edges, np.full(n_nodes, 1.0 / n_nodes))
    indptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = rng.integers(0, n_nodes, n_edges, dtype=np.int32)
    weights = rng.uniform(-0.1, 0.2, n_edges).astype(np.float32)
    brain.set_csr(indptr, indices, weights)
    brain.activation[:] = rng.random(n_nodes, dtype=np.float32)
    return brain


def bench_propagation(n_nodes: int, n_edges: int, repeats: int) -> list[dict]:
    import numba
    import scipy.sparse as sp

    import core.brain.kernels as bk

    rng = np.random.default_rng(0)
    brain = _random_graph(n_nodes, n_edges, rng)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        out = np.empty(n_nodes, np.float32)
        mat = sp.csr_matrix((brain.weights, brain.indices, brain.indptr),
                            shape=(n_nodes, n_nodes))
        x = brain.activation
        t = _best_of({"ours": lambda: bk.propagate(brain.indptr, brain.indices, brain.weights,
                                                   x, out, np.float32(0.0)),
                      "scipy": lambda: mat @ x}, repeats)
        t_ours, t_scipy = t["ours"], t["scipy"]
        expected = np.maximum(mat @ x, 0.0)
        if not np.allclose(out, expected, rtol=1e-4, atol=1e-4):
            raise AssertionError("propagation and scipy disagree")
        t_step = _best(brain.step, repeats)
    finally:
        numba.set_num_threads(threads)
    ours, base = n_edges / t_ours, n_edges / t_scipy
    size = f"{n_nodes:,} nodes, {n_edges:,} edges"
    nb = brain.nbytes()
    return [
        {"name": "brain.propagate", "value": ours / 1e6, "unit": "M edges/s",
         "baseline": base / 1e6, "ratio": ours / base,
         "notes": f"{size}, 1 thread, float32; baseline scipy.sparse csr @ vector (float32); "
                  f"target >= 300 M edges/s and >= 1x scipy"},
        {"name": "brain.step", "value": n_edges / t_step / 1e6, "unit": "M edges/s",
         "baseline": base / 1e6, "ratio": t_scipy / t_step,
         "notes": f"{size}: propagate + decay + pattern push + buffer swap, "
                  f"{t_step * 1e3:.1f} ms per step"},
        {"name": "brain.bytes_per_edge", "value": nb["edges"] / n_edges, "unit": "B/edge",
         "baseline": 16.0, "ratio": (nb["edges"] / n_edges) / 16.0,
         "notes": "int32 source + float32 weight (CSR of incoming edges); baseline = target"},
        {"name": "brain.bytes_per_node", "value": nb["nodes"] / n_nodes, "unit": "B/node",
         "baseline": None, "ratio": None,
         "notes": "kind u8 + activation f32 + scratch f32 + exec slot i32 + indptr i64"},
    ]


def bench_firing(n_exec: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(1)
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)] * n_exec,
                               threshold_ratio=rng.uniform(0.1, 3.0, n_exec))
    act = rng.exponential(1.0, brain.n_nodes).astype(np.float32)

    def one_step():
        brain.activation[:] = act
        fired = brain.fire()
        outcomes = np.where(fired % 3 == 0, Outcome.SIGILL, Outcome.OK).astype(np.uint8)
        brain.reinforce(fired, outcomes[:, None], link=False)
        return fired.size

    n_fired = one_step()
    t_step = _best(one_step, repeats)
    t_copy = _best(lambda: brain.activation.__setitem__(slice(None), act), repeats)
    batch = np.where(rng.random((n_exec, 64)) < 0.3, Outcome.SIGSEGV, Outcome.OK).astype(np.uint8)
    t_batch = _best(lambda: brain.reinforce(ids, batch, link=False), repeats)
    per_step = t_step - t_copy
    return [
        {"name": "brain.fire_and_reinforce", "value": per_step * 1e3, "unit": "ms/step",
         "baseline": None, "ratio": None,
         "notes": f"{n_exec:,} EXEC nodes, {n_fired:,} fire per step (selection against the "
                  f"mean, spend, seed rule, error flow)"},
        {"name": "brain.reinforce_batch", "value": batch.size / t_batch / 1e6,
         "unit": "M executions/s", "baseline": None, "ratio": None,
         "notes": f"{n_exec:,} nodes x 64 cases outcome matrix, rule per execution"},
    ]


def run_brain_benchmarks(quick: bool) -> list[dict]:
    """All brain figures; ``quick`` shrinks the graph to 100 k nodes / 1 M edges."""
    if quick:
        return bench_propagation(100_000, 1_000_000, 3) + bench_firing(100_000, 3)
    return bench_propagation(1_000_000, 10_000_000, 5) + bench_firing(100_000, 5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 k nodes / 1 M edges")
    ap.add_argument("--json", action="store_true", help="print JSON lines")
    args = ap.parse_args(argv)
    for row in run_brain_benchmarks(args.quick):
        if args.json:
            print(json.dumps(row))
        else:
            base = "" if row["baseline"] is None else f"  (baseline {row['baseline']:.3g}, " \
                                                       f"ratio {row['ratio']:.2f})"
            print(f"{row['name']:<26} {row['value']:>10.3f} {row['unit']}{base}\n"
                  f"{'':<26} {row['notes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
