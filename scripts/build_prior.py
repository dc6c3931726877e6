"""Build the prior brain Melvin ships (``evolve/priors/<isa>.safetensors``, ``--brain-from auto``).

One short run per task (``python -m evolve run --brain-from none``, each in its own process),
each brain cut to the patterns that carry information (executed at least ``--min-executions``
times and drawn other than neutral: suppressed by crashes, or improving more or less often than
the base rate), the cuts merged (each run's
observations once, as ``python -m evolve brain merge`` does), and the ``--keep`` most executed
of the result kept. Only gene patterns
and their statistics go in the file (no EXEC nodes, no byte patterns): a few hundred KB at most.

    python scripts/build_prior.py                        # every built-in task, 20 s each, seed 0
    python scripts/build_prior.py --tasks abs,add,max --seconds 60 --out /tmp/half.safetensors

The transfer benchmark (``scripts/bench.py --only transfer``, issue 16) builds a prior from half
the tasks this way and tests it on the other half.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.brain import Brain  # noqa: E402
from core.brain.patterns import PatternDelta  # noqa: E402
from evolve import prior  # noqa: E402
from evolve.tasks import BUILTIN  # noqa: E402


def run_tasks(tasks, seconds: float, seed: int, isa: str, work: Path) -> list[Path]:
    """One run per task; the run folders that wrote a brain file."""
    folders = []
    for task in tasks:
        out = work / task
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "evolve", "run", "--task", task, "--isa", isa, "--time-limit", str(seconds),
               "--seed", str(seed), "--brain-from", "none", "--out", str(out), "--quiet"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        ok = (out / prior.BRAIN_FILE).is_file()
        print(f"{task}: exit {done.returncode}, {time.perf_counter() - t0:.1f} s, brain {'yes' if ok else 'no'}",
              file=sys.stderr)
        if ok:
            folders.append(out)
    return folders


def cut(brain: Brain, min_executions: int, keep: int) -> Brain:
    """A new brain with the informative gene patterns of ``brain`` only."""
    g = brain.gene_patterns
    s = g.stats()
    execs = s["n_ok"] + s["n_crash"]
    moved = np.abs(np.log(g.draw_ratios()[s["slot"]] / g.init_threshold)) > 0.05   # drawn other than neutral
    pick = np.flatnonzero((execs >= min_executions) & moved)
    pick = pick[np.argsort(-execs[pick], kind="stable")[:keep]]
    slots = s["slot"][pick]
    out = Brain()
    out.gene_patterns.merge(PatternDelta(g.config, g.tokens[slots], g.length[slots], g.count[slots],
                                         g.last_seen[slots], g.n_ok[slots], g.n_crash[slots],
                                         g.success_rate[slots], g.threshold_ratio[slots], g.n_improved[slots]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(sorted(BUILTIN)), help="comma-separated built-in tasks")
    ap.add_argument("--seconds", type=float, default=20.0, help="--time-limit of each run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--isa", default="arm64")
    ap.add_argument("--min-executions", type=int, default=256)
    ap.add_argument("--keep", type=int, default=1000, help="at most this many patterns")
    ap.add_argument("--out", type=Path, default=None, help="default: evolve/priors/<isa>.safetensors")
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="use the runs already in --work (TASK folders) instead of running")
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in BUILTIN]
    if unknown or not tasks:
        print(f"error: unknown tasks {unknown}" if unknown else "error: no tasks", file=sys.stderr)
        return 2
    out = args.out or prior.SHIPPED / f"{args.isa}.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.reuse and args.work is not None:
            folders = [work / t for t in tasks if (work / t / prior.BRAIN_FILE).is_file()]
        else:
            folders = run_tasks(tasks, args.seconds, args.seed, args.isa, work)
        if not folders:
            print("error: no run wrote a brain", file=sys.stderr)
            return 1
        # each run's informative patterns first (a merge of whole brains would fill the table and
        # evict by age), merged (each run's observations once: they start empty), then cut again
        merged = Brain()
        for folder in folders:
            brain, _, _ = prior.read(folder)
            merged.gene_patterns.merge(cut(brain, args.min_executions, 8 * args.keep).gene_patterns)
        summary = {"patterns": len(merged.gene_patterns)}
    small = cut(merged, args.min_executions, args.keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.save(out, {"isa": args.isa, "alphabet": prior.alphabet_id(args.isa),
                     "built_by": "scripts/build_prior.py", "tasks": tasks, "seconds": args.seconds,
                     "seed": args.seed, "min_executions": args.min_executions})
    print(json.dumps({"out": str(out), "bytes": out.stat().st_size, "runs": len(folders),
                      "merged_patterns": summary["patterns"], "kept": len(small.gene_patterns)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
