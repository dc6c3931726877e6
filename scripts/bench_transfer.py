"""``scripts/bench.py --only transfer`` (issue 16): does a prior learnt on some tasks help others?

The built-in tasks split in two halves (sorted, alternating); a prior is built from each half
(``scripts/build_prior.py --tasks HALF``, seed 0, its runs kept) and tested on the other half,
seeds 1..S, for ``--no-brain``, a fresh brain (``--brain-from none``), the prior
(``--brain-from PRIOR``) and the prior with the library (``--library``: the prior's own solved
runs, whose best programs become macro-genes), each run ``python -m evolve run --optimize 0
--no-enumerate`` in its own process (the enumeration of short programs solves some tasks
whatever the brain does). Figures: solve rate, median evaluations to solution with the
unsolved counted as never (inf), offspring crash rate (every generation's non-OK executions
over all executions). ``--generations G`` caps runs by generations instead of seconds (no time
limit): evaluations then do not depend on the machine's load.

    python scripts/bench.py --only transfer            # 5 seeds, 60 s runs: hours on 2 cores
    python scripts/bench_transfer.py --quick --json t.json
    python scripts/bench_transfer.py --seeds 3 --generations 300 --jobs 2
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evolve.tasks import BUILTIN  # noqa: E402

ARMS = ("no-brain", "fresh", "prior", "prior+library")


def halves(quick: bool) -> tuple[list[str], list[str]]:
    tasks = sorted(BUILTIN)
    a, b = tasks[0::2], tasks[1::2]
    return (a[:2], b[:2]) if quick else (a, b)


def arm_options(arm: str, prior: Path, runs: Path) -> tuple:
    """The ``run`` options of an arm."""
    return {"no-brain": ("--no-brain",), "fresh": ("--brain-from", "none"),
            "prior": ("--brain-from", str(prior)),
            "prior+library": ("--brain-from", str(prior), "--library", str(runs))}[arm]


def run_one(task: str, seed: int, budget: tuple, folder: Path, extra) -> dict:
    cmd = [sys.executable, "-m", "evolve", "run", "--task", task, "--seed", str(seed), *budget,
           "--optimize", "0", "--no-enumerate", "--quiet", "--out", str(folder), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    if not (folder / "result.json").is_file():      # (a --work folder's finished runs are kept)
        subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=4 * 3600)
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return {"task": task, "seed": seed, "solved": False, "evaluations": None, "crash_rate": None}
    bad = total = 0
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if "outcomes" in m and "gen" in m:
            n = sum(m["outcomes"].values())
            total += n
            bad += n - m["outcomes"].get("OK", 0)
    return {"task": task, "seed": seed, "solved": bool(result.get("solved")),
            "evaluations": result.get("evaluations"), "crash_rate": bad / total if total else None}


def summarise(runs: list[dict]) -> dict:
    evals = [r["evaluations"] if r["solved"] else float("inf") for r in runs]
    crash = [r["crash_rate"] for r in runs if r["crash_rate"] is not None]
    return {"runs": len(runs), "solved": sum(r["solved"] for r in runs),
            "median_evaluations": statistics.median(evals) if evals else None,
            "crash_rate": statistics.mean(crash) if crash else None}


def run_transfer_benchmarks(quick: bool, work: Path | None = None, seeds: int | None = None,
                            generations: int | None = None, jobs: int = 1) -> list[dict]:
    seeds = list(range(1, 1 + (seeds or (1 if quick else 5))))
    seconds = 15.0 if quick else 60.0
    budget = ("--generations", str(generations), "--time-limit", "0") if generations else ("--time-limit", str(seconds))
    prior_seconds = 10.0 if quick else 30.0
    a, b = halves(quick)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        todo = []
        for name, (train, test) in {"A->B": (a, b), "B->A": (b, a)}.items():
            prior, prior_runs = work / f"prior-{name[0]}.safetensors", work / f"prior-{name[0]}-runs"
            if not prior.is_file():
                subprocess.run([sys.executable, str(ROOT / "scripts" / "build_prior.py"), "--tasks", ",".join(train),
                                "--seconds", str(prior_seconds), "--out", str(prior), "--work", str(prior_runs)],
                               cwd=ROOT, check=True, capture_output=True)
            todo += [(name, task, seed, arm, arm_options(arm, prior, prior_runs))
                     for task in test for seed in seeds for arm in ARMS]

        def one(item):
            name, task, seed, arm, extra = item
            t0 = time.perf_counter()
            r = run_one(task, seed, budget, work / f"{name[0]}-{task}-{seed}-{arm}", extra)
            print(f"{name} {task} seed {seed} {arm}: solved {r['solved']}, evaluations "
                  f"{r['evaluations']}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            return arm, r

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max(1, jobs)) as ex:
            for arm, r in ex.map(one, todo):
                runs[arm].append(r)
    base = summarise(runs["no-brain"])
    limit = f"{generations} generations" if generations else f"{seconds:.0f} s runs"
    rows = []
    for arm, rs in runs.items():
        s = summarise(rs)
        ratio = (s["median_evaluations"] / base["median_evaluations"]
                 if base["median_evaluations"] not in (None, 0, float("inf")) else None)
        rows.append({"name": f"transfer: {arm} median evaluations to solution", "value": s["median_evaluations"],
                     "unit": "evals", "baseline": base["median_evaluations"], "ratio": ratio,
                     "notes": f"solved {s['solved']}/{s['runs']} (no-brain {base['solved']}/{base['runs']}); "
                              f"unsolved = never; {limit}; target for prior+library <= 0.7x"})
        rows.append({"name": f"transfer: {arm} offspring crash rate", "value": s["crash_rate"], "unit": "share",
                     "baseline": base["crash_rate"],
                     "ratio": s["crash_rate"] / base["crash_rate"] if s["crash_rate"] is not None and base["crash_rate"] else None,
                     "notes": "target <= 0.5x no-brain for the prior"})
    return rows


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, help="keep the runs and priors here (priors already there are reused)")
    ap.add_argument("--seeds", type=int, help="seeds 1..S per task (default 5; --quick 1)")
    ap.add_argument("--generations", type=int, help="cap runs by generations, no time limit (load-independent)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (one core each)")
    args = ap.parse_args()
    rows = run_transfer_benchmarks(args.quick, args.work, args.seeds, args.generations, args.jobs)
    for r in rows:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
