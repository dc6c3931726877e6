"""Superoptimising compiled code (``scripts/bench.py --only superopt``; issue 17's benchmark).

The Hacker's Delight functions in C (``suites/hackers_delight.c``) are compiled by
``aarch64-linux-gnu-gcc`` at -O0 and at -O2; ``python -m evolve optimize`` runs on each -O0
object's function (its own process, one core, ``--time-limit`` 60 s; ``--quick``: 20 s on a
subset). Per function: the -O0, -O2 and Melvin instruction counts and estimated Cortex-A78AE
cycles (:mod:`evolve.cost`), the proof status, and a check that shares no code with Melvin: the
replacement run under plain Unicorn (``scripts/independent_harness.py``) against the suite's
Python function on 2,000 cases with random registers. Target: at most -O2's count everywhere,
each proven. A function ``optimize`` refuses (outside what Melvin models) is a miss, with why.

    python scripts/bench_superopt.py [--quick] [--tasks p01,p03] [--seconds 60] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
C_SUITE = ROOT / "suites" / "hackers_delight.c"
QUICK_TASKS = ("p01", "p03", "p09", "p13", "p16", "p18", "p23", "p24")


def compile_suite(workdir: Path) -> dict:
    """{level: object path} for -O0 and -O2 (with debug information, for the signatures)."""
    gcc = shutil.which("aarch64-linux-gnu-gcc")
    if not gcc:
        raise SystemExit("aarch64-linux-gnu-gcc not installed (apt-get install gcc-aarch64-linux-gnu)")
    out = {}
    for level in ("-O0", "-O2"):
        obj = workdir / f"hackers_delight{level}.o"
        subprocess.run([gcc, level, "-g", "-c", str(C_SUITE), "-o", str(obj)], check=True, capture_output=True)
        out[level] = obj
    return out


def measure(obj: Path, name: str) -> dict:
    """Instructions (the final ret excluded) and estimated cycles of one compiled function."""
    from evolve import cost as K
    from evolve.targets import load_target
    code = load_target(str(obj), name).code
    return {"length": K.length(code), "cycles": K.latency(code)}


def optimize_one(obj: Path, name: str, seconds: float, folder: Path) -> dict:
    """One ``python -m evolve optimize`` process on ``name`` of ``obj``; its report, or why not."""
    cmd = [sys.executable, "-m", "evolve", "optimize", str(obj), "--function", name, "--time-limit", str(seconds),
           "--backend", "emulated", "--quiet", "--out", str(folder)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3 * seconds + 300)
    out = {"exit": proc.returncode, "process_seconds": round(time.perf_counter() - t0, 1), "folder": str(folder)}
    report = folder / "report.json"
    if proc.returncode == 0 and report.exists():
        out["report"] = json.loads(report.read_text())
    else:
        out["error"] = ((proc.stderr or proc.stdout).strip().splitlines() or ["no report.json"])[-1]
    return out


def independent(report: dict, name: str, suite) -> str:
    """'ok (n cases)' or the first wrong case of the replacement under plain Unicorn."""
    from independent_harness import independent_check
    code = bytes.fromhex(report["after"]["code_hex"])
    wrong, n, first = independent_check(code, getattr(suite, name), suite.ARITY[name])
    return f"ok ({n} cases)" if wrong == 0 else f"WRONG on {wrong} of {n}: {first}"


def benchmark(tasks: list[str], seconds: float, out: Path | None = None) -> tuple[dict, Path]:
    from bench_search import load_suite
    suite = load_suite()
    folder = out or ROOT / "runs" / f"bench_superopt_{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    objs = compile_suite(folder)
    rows = []
    for name in tasks:
        o0, o2 = measure(objs["-O0"], name), measure(objs["-O2"], name)
        run = optimize_one(objs["-O0"], name, seconds, folder / name)
        row = {"task": name, "O0": o0, "O2": o2, "exit": run["exit"], "seconds": run["process_seconds"]}
        if "report" in run:
            r = run["report"]
            row.update(melvin={"length": r["after"]["length"], "cycles": r["after"]["cycles"]},
                       proof=r["after"]["verification"]["equivalence"], improved=r["improved"],
                       found_by=r["after"]["found_by"], why=r["why"], independent=independent(r, name, suite),
                       asm=r["after"]["instructions"])
        else:
            row.update(melvin=None, proof=None, why=run["error"])
        rows.append(row)
        print(f"{name}: {json.dumps({k: row[k] for k in ('O0', 'O2', 'melvin', 'proof')})}", file=sys.stderr, flush=True)
    summary = {"meta": {"seconds": seconds, "tasks": tasks, "date": f"{datetime.now():%Y-%m-%d %H:%M}",
                        "load": os.getloadavg(), "cores": os.cpu_count()}, "rows": rows}
    summary["totals"] = totals(rows)
    (folder / "superopt.json").write_text(json.dumps(summary, indent=2))
    (folder / "superopt.md").write_text(markdown(summary))
    return summary, folder


def totals(rows: list[dict]) -> dict:
    done = [r for r in rows if r.get("melvin")]
    proven = [r for r in done if r["proof"] == "proven"]
    return {"functions": len(rows), "optimised": len(done), "proven": len(proven),
            "at_most_O2": sum(r["melvin"]["length"] <= r["O2"]["length"] for r in proven),
            "shorter_than_O2": [r["task"] for r in proven if r["melvin"]["length"] < r["O2"]["length"]],
            "independent_ok": sum(r.get("independent", "").startswith("ok") for r in done)}


def markdown(summary: dict) -> str:
    m, t = summary["meta"], summary["totals"]
    lines = [f"# Superoptimising gcc -O0 code ({m['seconds']:g} s a function, {m['date']}, load {m['load'][0]:.1f} "
             f"on {m['cores']} cores)", "",
             "| function | -O0 insns / cycles | -O2 insns / cycles | Melvin insns / cycles | proof | independent | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["rows"]:
        mel = f"{r['melvin']['length']} / {r['melvin']['cycles']}" if r.get("melvin") else "-"
        note = r.get("why", "")
        if r.get("melvin") and r["melvin"]["length"] > r["O2"]["length"]:
            note = ("longer than -O2; " + note).rstrip("; ")
        lines.append(f"| {r['task']} | {r['O0']['length']} / {r['O0']['cycles']} | {r['O2']['length']} / "
                     f"{r['O2']['cycles']} | {mel} | {r.get('proof') or 'refused'} | {r.get('independent', '-')} | "
                     f"{note} |")
    lines += ["", f"{t['proven']} of {t['functions']} proven; {t['at_most_O2']} at most -O2's count; shorter than "
              f"-O2: {', '.join(t['shorter_than_O2']) or 'none'}; independent check ok for {t['independent_ok']} "
              f"of {t['optimised']}.", ""]
    return "\n".join(lines)


def rows_for_bench(summary: dict) -> list[dict]:
    t = summary["totals"]
    out = []
    for r in summary["rows"]:
        if r.get("melvin"):
            out.append({"name": f"superopt {r['task']} Melvin instructions", "value": r["melvin"]["length"],
                        "unit": "insns", "ratio": None,
                        "notes": f"-O0 {r['O0']['length']}, -O2 {r['O2']['length']}; cycles {r['melvin']['cycles']} "
                                 f"(-O2 {r['O2']['cycles']}); {r['proof']}; {r.get('independent')}"})
        else:
            out.append({"name": f"superopt {r['task']} refused", "value": 0, "unit": "", "ratio": None,
                        "notes": r.get("why", "")})
    out.append({"name": "superopt at most -O2's count, proven", "value": t["at_most_O2"], "unit": "functions",
                "ratio": None, "notes": f"of {t['functions']}; shorter: {', '.join(t['shorter_than_O2']) or 'none'}"})
    return out


def run_superopt_benchmarks(quick: bool) -> list[dict]:
    from bench_search import load_suite
    tasks, seconds = (list(QUICK_TASKS), 20.0) if quick else (list(load_suite().TASKS), 60.0)
    summary, folder = benchmark(tasks, seconds)
    print(f"superopt benchmark: {folder / 'superopt.md'}", file=sys.stderr)
    return rows_for_bench(summary)


def main(argv: list[str] | None = None) -> int:
    from bench_search import load_suite
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{len(QUICK_TASKS)} functions, 20 s each")
    ap.add_argument("--tasks", help="comma-separated subset (default: all 24)")
    ap.add_argument("--seconds", type=float, help="time limit per function (default 60, quick: 20)")
    ap.add_argument("--out", type=Path, help="output folder")
    args = ap.parse_args(argv)
    tasks = args.tasks.split(",") if args.tasks else list(QUICK_TASKS if args.quick else load_suite().TASKS)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    summary, folder = benchmark(tasks, seconds, args.out)
    print((folder / "superopt.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
