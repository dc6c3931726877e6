#!/usr/bin/env python3
"""Proof benchmarks (issue 12): what the claims of many runs are worth, checked independently.

``run_proof_benchmarks(quick)`` returns rows for ``scripts/bench.py``. Every built-in task runs
with several seeds; for each run: the claims made (solutions that passed held-out testing), the
claims a proof refused, the proof time of the final solution and what was proven. Each solution
is then checked by a harness that shares no code with Melvin's executors or tasks' case sets: a
plain Unicorn call per case, fresh random values in every register but the arguments, in the
flags and in the scratch area at ``[sp, sp + 512)``, inputs drawn here (uniform, small, by bit length, powers
of two and their neighbours). Its target is zero wrong solutions.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evolve import results as R  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.engine import build  # noqa: E402
from evolve.tasks import BUILTIN  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from independent_harness import independent_check  # noqa: E402



def _one_run(task: str, seed: int, time_limit: float) -> dict:
    cfg = RunConfig(task=task, seed=seed, time_limit=time_limit, pop=300)
    engine = build(cfg)
    try:
        engine.start()
        while not R.should_stop(cfg, engine.solved is not None, engine.gen, engine.wall_seconds()):
            engine.step()
        out = {"task": task, "seed": seed, "refused": engine.refuted, "solved": engine.solved is not None}
        if engine.solved is not None:
            v = engine.verification
            out.update(verification=v.to_json())
            wrong, _, first = independent_check(engine.alphabet.encode(engine.solved), engine.task.func,
                                                engine.task.arity, n=3000)
            out.update(wrong=wrong, first_wrong=first)
        return out
    finally:
        engine.evaluator.close()


def run_proof_benchmarks(quick: bool) -> list[dict]:
    seeds = (0,) if quick else (0, 1, 2, 3, 4, 5)
    time_limit = 10.0 if quick else 30.0
    tasks = sorted(BUILTIN)
    t0 = time.perf_counter()
    runs = []
    for task in tasks:
        for seed in seeds:
            runs.append(_one_run(task, seed, time_limit))
            r = runs[-1]
            print(f"  {task} seed {seed}: solved {r['solved']}, refused {r['refused']}"
                  + (f", {r['verification']['equivalence']}/{r['verification']['independence']} in "
                     f"{r['verification']['seconds']} s, independent harness: {r['wrong']} wrong"
                     if r["solved"] else ""), file=sys.stderr, flush=True)
    solved = [r for r in runs if r["solved"]]
    claims = sum(r["refused"] for r in runs) + len(solved)
    refused = sum(r["refused"] for r in runs)
    wrong = [r for r in solved if r["wrong"]]
    seconds = sorted(r["verification"]["seconds"] for r in solved)
    proven = [r for r in solved if r["verification"]["equivalence"] == "proven"]
    indep = [r for r in solved if r["verification"]["independence"] == "proven"]
    outside = [r for r in solved if "not proven:" in r["verification"]["note"]]
    note = f"{len(runs)} runs ({len(tasks)} built-in tasks x seeds {list(seeds)}), {time_limit:.0f} s each, pop 300"
    p95 = seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))] if seconds else float("nan")
    rows = [
        {"name": "proofs: proof time per solution, median", "value": statistics.median(seconds) if seconds else
         float("nan"), "unit": "s", "baseline": None, "ratio": None, "notes": note},
        {"name": "proofs: proof time per solution, p95", "value": p95, "unit": "s", "baseline": None,
         "ratio": None, "notes": "independence + equivalence, 10 s solver limit each"},
        {"name": "proofs: claims made (passed held-out testing)", "value": claims, "unit": "claims",
         "baseline": None, "ratio": None, "notes": f"{len(solved)} solved runs"},
        {"name": "proofs: claims refused by a proof", "value": refused, "unit": "claims", "baseline": None,
         "ratio": None, "notes": "each refutation's input joined the training set"},
        {"name": "proofs: solutions wrong under the independent harness", "value": len(wrong), "unit": "runs",
         "baseline": None, "ratio": None,
         "notes": "target 0; " + ("; ".join(f"{r['task']}/{r['seed']} {r['first_wrong']}" for r in wrong[:3])
                                  or "plain Unicorn, 3000 cases, fresh registers, flags and scratch per case")},
        {"name": "proofs: solutions with equivalence proven", "value": len(proven), "unit": "runs", "baseline": None,
         "ratio": len(proven) / len(solved) if solved else None,
         "notes": f"independence proven: {len(indep)}; outside the symbolic subset: {len(outside)}; "
                  f"the rest timed out"},
        {"name": "proofs: benchmark wall time", "value": time.perf_counter() - t0, "unit": "s", "baseline": None,
         "ratio": None, "notes": note},
    ]
    return rows


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="scripts/bench.py runs every section; its --json writes the rows.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    quick = ap.parse_args().quick
    for row in run_proof_benchmarks(quick):
        print(row)
