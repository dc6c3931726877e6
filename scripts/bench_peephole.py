"""What the peephole enumeration buys, on programs a search already verified.

For each run folder of a search benchmark (``scripts/bench_search.py``'s output folder) whose
task was solved, the peephole (:mod:`evolve.peephole`) is applied greedily to its best program
outside any run: enumerate every window's replacements, take the shortest replacement exact on
the training cases that then passes held-out testing under per-case random registers and the
proofs (:func:`evolve.verify.check`), repeat until none does. Load-independent: the figure is the
length, not a time. Each result is also run through the plain-Unicorn harness.

    python scripts/bench_peephole.py runs/bench_search/<stamp> [--out peephole.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.executors.batch_state import CaseStates  # noqa: E402
from core.outcome import Outcome  # noqa: E402
from evolve import tasks as T  # noqa: E402
from evolve import verify  # noqa: E402
from evolve.evaluate import Evaluator  # noqa: E402
from evolve.genes import alphabet_for  # noqa: E402
from evolve.peephole import Peephole  # noqa: E402
from scripts.independent_harness import independent_check  # noqa: E402


def improve(genes: list, task, evaluator, alphabet, seed: int = 0, n_valid: int = 10_000) -> tuple[list, list]:
    """``(genes, steps)``: the greedy peephole fixpoint of ``genes`` for ``task``; ``steps``:
    each accepted replacement's length and verification."""
    rng = np.random.default_rng(seed)
    train_x = T.training_cases(task, rng, 64)
    valid_x = T.validation_cases(task, rng, n_valid)
    train_y, valid_y = task.expected(train_x), task.expected(valid_x)
    states = CaseStates.from_seed(seed + 11, len(valid_y), evaluator.scratch)
    steps = []
    while True:
        pp = Peephole(alphabet, evaluator, train_x, train_y, seed=seed)
        pp.reset(genes)
        found = sorted({tuple(g) for g in pp.step(float("inf")) if len(g) < len(genes)}, key=lambda g: (len(g), g))
        taken = None
        for cand in found:
            code = alphabet.encode(list(cand))
            out, outcome = evaluator.run([code], valid_x, seed=0, states=states)
            if not ((outcome[0] == Outcome.OK) & (out[0] == valid_y)).all():
                continue
            v = verify.check(code, task, "arm64", len(valid_y), scratch=evaluator.scratch, timeout=20.0)
            if isinstance(v, verify.Verification):
                taken = (list(cand), v)
                break
        if taken is None:
            return genes, steps
        genes = taken[0]
        steps.append({"length": len(genes), "equivalence": taken[1].equivalence, "tried": pp.tried})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="a search benchmark's output folder (its run folders inside)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    alphabet = alphabet_for("arm64")
    rows = []
    with Evaluator("arm64", backend="emulated") as ev:
        for run in sorted(p for p in args.folder.iterdir() if (p / "result.json").exists()):
            result = json.loads((run / "result.json").read_text())
            if not result.get("solved") or "genes" not in result["best"]:
                continue
            task = T.get_task(result["task"].replace("hackers_delight.", str(ROOT / "suites" / "hackers_delight.py") + ":"))
            genes = [tuple(g) for g in result["best"]["genes"]]
            t0 = time.perf_counter()
            best, steps = improve(genes, task, ev, alphabet)
            code = alphabet.encode(best)
            wrong, n, first = independent_check(code, task.func, task.arity, n=2000)
            rows.append({"run": run.name, "before": len(genes), "after": len(best), "steps": steps,
                         "asm": alphabet.render(best), "seconds": round(time.perf_counter() - t0, 1),
                         "independent_wrong": wrong})
            print(f"{run.name}: {len(genes)} -> {len(best)} {'; '.join(alphabet.render(best))}"
                  f"{'' if wrong == 0 else f'  WRONG on {wrong}/{n}: {first}'}", flush=True)
    total_before, total_after = sum(r["before"] for r in rows), sum(r["after"] for r in rows)
    print(f"{len(rows)} solved programs: {total_before} -> {total_after} instructions; "
          f"{sum(r['after'] < r['before'] for r in rows)} shorter; "
          f"{sum(r['independent_wrong'] > 0 for r in rows)} wrong by the independent harness")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
