"""``scripts/bench.py --only transfer`` (issue 16): does a prior learnt on some tasks help others?

The built-in tasks split in two halves (sorted, alternating); a prior is built from each half
(``scripts/build_prior.py --tasks HALF``, seed 0) and tested on the other half, seeds 1..S, for
``--no-brain``, a fresh brain (``--brain-from none``) and the prior (``--brain-from PRIOR``),
each run ``python -m evolve run --optimize 0`` in its own process. Figures: solve rate, median
evaluations to solution with the unsolved counted as never (inf), offspring crash rate (every
generation's non-OK executions over all executions). The library arm of the issue (macro-genes)
does not exist yet: not measured.

    python scripts/bench.py --only transfer            # 5 seeds, 60 s runs: hours on 2 cores
    python scripts/bench_transfer.py --quick --json t.json
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

ARMS = {"no-brain": ("--no-brain",), "fresh": ("--brain-from", "none"), "prior": None}


def halves(quick: bool) -> tuple[list[str], list[str]]:
    tasks = sorted(BUILTIN)
    a, b = tasks[0::2], tasks[1::2]
    return (a[:2], b[:2]) if quick else (a, b)


def run_one(task: str, seed: int, seconds: float, folder: Path, extra) -> dict:
    cmd = [sys.executable, "-m", "evolve", "run", "--task", task, "--seed", str(seed), "--time-limit", str(seconds),
           "--optimize", "0", "--quiet", "--out", str(folder), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3 * seconds + 300)
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


def run_transfer_benchmarks(quick: bool, work: Path | None = None) -> list[dict]:
    seeds = [1] if quick else [1, 2, 3, 4, 5]
    seconds = 15.0 if quick else 60.0
    prior_seconds = 10.0 if quick else 30.0
    a, b = halves(quick)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        for name, (train, test) in {"A->B": (a, b), "B->A": (b, a)}.items():
            prior = work / f"prior-{name[0]}.safetensors"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "build_prior.py"), "--tasks", ",".join(train),
                            "--seconds", str(prior_seconds), "--out", str(prior)], cwd=ROOT, check=True,
                           capture_output=True)
            for task in test:
                for seed in seeds:
                    for arm, extra in ARMS.items():
                        extra = extra or ("--brain-from", str(prior))
                        t0 = time.perf_counter()
                        r = run_one(task, seed, seconds, work / f"{name[0]}-{task}-{seed}-{arm}", extra)
                        runs[arm].append(r)
                        print(f"{name} {task} seed {seed} {arm}: solved {r['solved']}, evaluations "
                              f"{r['evaluations']}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    base = summarise(runs["no-brain"])
    rows = []
    for arm, rs in runs.items():
        s = summarise(rs)
        ratio = (s["median_evaluations"] / base["median_evaluations"]
                 if base["median_evaluations"] not in (None, 0, float("inf")) else None)
        rows.append({"name": f"transfer: {arm} median evaluations to solution", "value": s["median_evaluations"],
                     "unit": "evals", "baseline": base["median_evaluations"], "ratio": ratio,
                     "notes": f"solved {s['solved']}/{s['runs']} (no-brain {base['solved']}/{base['runs']}); "
                              f"unsolved = never; {seconds:.0f} s runs"})
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
    ap.add_argument("--work", type=Path, help="keep the runs and priors here")
    args = ap.parse_args()
    rows = run_transfer_benchmarks(args.quick, args.work)
    for r in rows:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
