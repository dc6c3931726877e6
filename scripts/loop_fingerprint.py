#!/usr/bin/env python3
"""Fingerprints of fixed-seed runs of the generation loop, to show a speed change changes nothing.

For each seed: ``--generations`` generations of the benchmark's loop (pop 1000, 64 cases,
emulated arm64, ``--no-enumerate``, not stopping when solved), then a SHA-256 of every array of
the population (``Rows``), of the hall of fame (genes, uid, cost, node), of the metrics lines
(timings left out) and of the brain's EXEC table and gene-pattern arrays. ``--against TREE``
runs the same on another checkout (e.g. main's) and exits 1 if any fingerprint differs; the two
runs share only this script's hashing, not the loop's code.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv[:-1] \
    else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: metrics fields that are timings, not results
TIMING = {"evals_per_s", "seconds"}


def _digest(*arrays) -> str:
    import numpy as np
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def fingerprint(seed: int, generations: int, task: str) -> dict:
    """Digests of one run's state after ``generations`` generations."""
    from dataclasses import fields

    import numpy as np

    from evolve.config import RunConfig
    from evolve.engine import build
    cfg = RunConfig(task=task, pop=1000, generations=generations, time_limit=None, init_len=16,
                    backend="emulated", seed=seed, stop_when_solved=False, enumerate=False)
    engine = build(cfg)
    try:
        engine.start()
        for _ in range(generations):
            engine.step()
    finally:
        engine.evaluator.close()
    out = {f"rows.{f.name}": _digest(getattr(engine.rows, f.name)) for f in fields(engine.rows)}
    hof = list(engine.hof)
    out["hof"] = hashlib.sha256(json.dumps([[list(map(list, ind)), ind.uid, ind.fitness.values[0], ind.node]
                                            for ind in hof]).encode()).hexdigest()[:16]
    lines = [{k: v for k, v in m.items() if k not in TIMING} for m in engine.metrics]
    out["metrics"] = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()[:16]
    if engine.brain is not None:
        table = engine.brain.exec_table()
        out["brain.exec"] = _digest(*(np.asarray(table[k]) for k in sorted(table)))
        gp = engine.brain.gene_patterns
        out["brain.patterns"] = _digest(gp.tokens, gp.length, gp.count, gp.n_ok, gp.n_crash, gp.n_improved,
                                        gp.threshold_ratio, gp.success_rate)
    out["evaluations"] = engine.evaluations
    out["solved"] = engine.solved is not None
    return out


def main() -> int:
    import argparse
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--task", default="avg")
    ap.add_argument("--against", metavar="TREE", help="another checkout: compare its fingerprints, exit 1 on a difference")
    ap.add_argument("--root", metavar="TREE", help="import the project from TREE instead of this checkout")
    ap.add_argument("--json", action="store_true", help="print the fingerprints as one JSON line")
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"--seeds: not a comma-separated list of integers: {args.seeds!r}", file=sys.stderr)
        return 2
    if args.generations < 1:
        print("--generations must be >= 1", file=sys.stderr)
        return 2
    if args.against and not (Path(args.against) / "evolve" / "engine.py").is_file():
        print(f"--against: no checkout of the project at {args.against}", file=sys.stderr)
        return 2
    mine = {str(s): fingerprint(s, args.generations, args.task) for s in seeds}
    if args.json:
        print(json.dumps(mine))
        return 0
    if not args.against:
        print(json.dumps(mine, indent=1))
        return 0
    cmd = [sys.executable, __file__, "--json", "--seeds", args.seeds, "--generations", str(args.generations),
           "--task", args.task, "--root", args.against]
    theirs = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    bad = 0
    for s in mine:
        for key in mine[s]:
            same = mine[s][key] == theirs[s].get(key)
            bad += not same
            if not same:
                print(f"seed {s} {key}: {mine[s][key]} here, {theirs[s].get(key)} in {args.against}")
    print(f"{'identical' if not bad else f'{bad} differences'}: seeds {args.seeds}, {args.generations} generations, "
          f"task {args.task} ({len(mine[seeds and str(seeds[0])])} fingerprints per seed)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
