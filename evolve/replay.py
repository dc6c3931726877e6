"""Replay a run's genome: check it is what the run recorded, show it, run it again, shrink it.

``scripts/replay_best.py RUN_DIR`` (a thin entry point over :func:`main`):

1. reassemble the genome's assembly and compare with its recorded machine code; for the run's
   best, compare ``best.s`` with ``result.json``; where genes are recorded, re-render them;
2. print the capstone listing (address, bytes, instruction);
3. regenerate the run's training and validation cases from its seed and re-execute the genome on
   them (and on ``--inputs``), per case against the task, with outcome classes;
4. where this host has the native backend, run the same cases on the emulator too and compare;
5. for a solved run, prove its claims again (:mod:`evolve.verify`): what ``result.json`` says is
   proven must still be proven;
6. remove introns (:mod:`evolve.minimize`) and print the shortest equivalent program, with what
   the proofs establish about it.

Exit status: 0 when every check reproduces the recorded result, 1 when one does not (the report
names the check and, for executions, the first differing case), 2 on bad input (one line on
stderr, nothing written anywhere).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.asm import AsmError, assemble, listing
from core.executors import native_available, open_executor
from core.isa import get_isa
from core.outcome import Outcome
from evolve import minimize as mz
from evolve import verify
from evolve.genes import alphabet_for
from evolve.runload import Genome, RunData, RunLoadError, load_run

MASK = (1 << 64) - 1
#: Seed of the random non-argument registers during replay; a validated genome ignores them.
REPLAY_SEED = 0x5EB1A7


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    """Everything replay found; :meth:`to_json` for ``--json``."""

    folder: str
    task: str
    isa: str
    rank: int
    backend: str
    checks: list[Check] = field(default_factory=list)
    listing: list[tuple[int, str, str]] = field(default_factory=list)
    cases: dict = field(default_factory=dict)       # set name -> summary (+ rows)
    minimized: dict | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict:
        return {"folder": self.folder, "task": self.task, "isa": self.isa, "rank": self.rank,
                "backend": self.backend, "reproduces": self.ok,
                "checks": [vars(c) for c in self.checks],
                "listing": [{"address": a, "bytes": b, "instruction": t} for a, b, t in self.listing],
                "cases": self.cases, "minimized": self.minimized}


def parse_inputs(items: list[str], arity: int) -> np.ndarray:
    """uint64 [n, arity] from ``["3,5", "0x10,-1"]`` (ints in any base Python reads; negative
    values wrap mod 2**64). Raises ValueError with one line."""
    rows = []
    for item in items:
        try:
            row = [int(v, 0) & MASK for v in item.split(",")]
        except ValueError:
            raise ValueError(f"--inputs {item!r}: expected {arity} comma-separated integers") from None
        if len(row) != arity:
            raise ValueError(f"--inputs {item!r}: the task takes {arity} input(s), got {len(row)}")
        rows.append(row)
    return np.array(rows, dtype=np.uint64).reshape(-1, arity)


def _static_checks(run: RunData, genome: Genome) -> list[Check]:
    isa = run.isa
    checks = []
    try:
        code = assemble(genome.asm, isa)
        same = code == genome.code
        checks.append(Check("assembly reassembles to the recorded code", same,
                            "" if same else _first_diff(code, genome.code)))
    except AsmError as exc:
        checks.append(Check("assembly reassembles to the recorded code", False, str(exc)))
    if genome.rank == 0 and run.best_s is not None:
        same = run.best_s == genome.asm
        detail = ""
        if not same:
            k = next((i for i, (a, b) in enumerate(zip(run.best_s, genome.asm)) if a != b),
                     min(len(run.best_s), len(genome.asm)))
            detail = (f"instruction {k}: best.s has {run.best_s[k] if k < len(run.best_s) else '(end)'!r}, "
                      f"result.json {genome.asm[k] if k < len(genome.asm) else '(end)'!r}")
        checks.append(Check("best.s equals result.json's best", same, detail))
    if genome.genes is not None:
        try:
            alphabet = alphabet_for(isa, n_regs=int(run.config.get("n_regs", 4)))
            same = alphabet.render(genome.genes) == genome.asm and alphabet.encode(genome.genes) == genome.code
            detail = "" if same else "the recorded genes render to other instructions"
        except (IndexError, ValueError, TypeError) as exc:
            same, detail = False, f"genes do not render: {exc}"
        checks.append(Check("genes render to the recorded assembly and code", same, detail))
    return checks


def _first_diff(a: bytes, b: bytes) -> str:
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return (f"assembled {len(a)} bytes vs recorded {len(b)}; first difference at byte {k} "
            f"({a[k:k + 4].hex() or '(end)'} vs {b[k:k + 4].hex() or '(end)'})")


def _rows(x: np.ndarray, want: np.ndarray, out: np.ndarray, cls: np.ndarray) -> list[dict]:
    return [{"inputs": [int(v) for v in xi], "expected": int(w), "output": int(o),
             "outcome": Outcome(int(c)).name, "correct": bool(c == Outcome.OK and o == w)}
            for xi, w, o, c in zip(x, want, out, cls)]


def _summary(name: str, x: np.ndarray, want: np.ndarray, out: np.ndarray, cls: np.ndarray,
             keep_rows: bool) -> dict:
    correct = (cls == Outcome.OK) & (out == want)
    hist = np.bincount(cls, minlength=len(Outcome))
    wrong = np.flatnonzero(~correct)
    first = _rows(x[wrong[:5]], want[wrong[:5]], out[wrong[:5]], cls[wrong[:5]])
    for r, i in zip(first, wrong[:5]):
        r["index"] = int(i)
    summary = {"set": name, "n": int(len(want)), "correct": int(correct.sum()),
               "outcomes": {Outcome(i).name: int(c) for i, c in enumerate(hist) if c},
               "first_wrong": first}
    if keep_rows:
        summary["rows"] = _rows(x, want, out, cls)
    return summary


def replay(run: RunData, rank: int = 0, inputs: np.ndarray | None = None, backend: str = "auto",
           do_minimize: bool = True) -> Report:
    """Run every check on ``run``'s genome of ``rank``; see the module docstring."""
    genome = run.genome(rank)
    task = run.task()
    isa = get_isa(run.isa)
    report = Report(str(run.folder), task.name, isa.name, rank, backend)
    report.checks = _static_checks(run, genome)
    report.listing = [(a, b.hex(), t) for a, b, t in listing(genome.code, isa)]
    train_x, valid_x = run.cases()
    budget = int(run.config.get("budget", 256))
    with open_executor(isa, backend=backend, budget=budget) as ex:
        report.backend = ex.backend
        results = {}
        for name, x, keep in (("training", train_x, True), ("validation", valid_x, False),
                              ("inputs", inputs, True)):
            if x is None or len(x) == 0:
                continue
            res = ex.run([genome.code], x, seed=REPLAY_SEED)
            want = task.expected(x)
            got = res.outputs[0] & np.uint64(task.result_mask)     # the bits the task defines
            results[name] = (x, res.outputs[0], res.outcomes[0])
            report.cases[name] = _summary(name, x, want, got, res.outcomes[0], keep)
        report.checks += _result_checks(run, genome, report.cases, ex, train_x)
        if ex.backend == "native" or native_available(isa):
            report.checks.append(_cross_check(isa, genome.code, ex.backend, budget, results))
        if genome.rank == 0 and run.result and run.result.get("solved"):
            report.checks.append(_proof_check(run, genome.code, task, budget))
        if do_minimize:
            report.minimized = _minimize(run, genome, ex, task, train_x, valid_x)
            m = report.minimized
            v = verify.check(bytes.fromhex(m["code_hex"]), task, isa.name, m["verified_on"]["validation"],
                             budget=budget)
            m["verification"] = v.to_json() if isinstance(v, verify.Verification) else {"refuted": v.reason}
    return report


def _proof_check(run: RunData, code: bytes, task, budget: int) -> Check:
    """The run's verification claims, proven again: a claim once proven must still be."""
    claimed = run.result.get("verification") or {}
    v = verify.check(code, task, run.isa, int(claimed.get("cases", 0)), budget=budget)
    name = "proofs: what result.json claims still holds"
    if isinstance(v, verify.Refutation):
        return Check(name, False, v.reason)
    lost = [k for k in ("equivalence", "independence") if claimed.get(k) == verify.PROVEN and getattr(v, k) != verify.PROVEN]
    if lost and "solver:" in v.note:         # the solver gave up this time: inconclusive, not refuted
        return Check(name, True, f"{' and '.join(lost)} not proven again within the solver's budget: {v.note}")
    if lost:
        return Check(name, False, f"{' and '.join(lost)} no longer proven: {v.note}")
    return Check(name, True, v.line())


def _result_checks(run: RunData, genome: Genome, cases: dict, ex, train_x: np.ndarray) -> list[Check]:
    """Compare the re-execution with what the run recorded about this genome."""
    checks = []
    train, valid = cases["training"], cases["validation"]
    n_init = train["n"]
    solved = bool(run.result and run.result.get("solved"))
    if genome.rank == 0 and solved:
        for s in (train, valid):
            ok = s["correct"] == s["n"]
            detail = "" if ok else _case_text(s["first_wrong"][0])
            checks.append(Check(f"solved: correct on every {s['set']} case ({s['n']})", ok, detail))
        return checks
    recorded = genome.record.get("exact_train")
    if not isinstance(recorded, int):
        return checks
    # The run's final training set is these cases plus counterexamples drawn from the
    # validation set; its exact count bounds the count on the initial cases.
    n_final = int((run.result or {}).get("n_train", n_init))
    lo, hi = max(0, recorded - (n_final - n_init)), min(recorded, n_init)
    detail = (f"exact on {train['correct']} of {n_init} initial training cases; the run recorded "
              f"{recorded} of {n_final}, so expected {lo}..{hi}")
    if lo <= train["correct"] <= hi:
        return checks + [Check("exact training cases match the record", True, detail)]
    # An unvalidated genome may read non-argument registers; the run drew their values anew each
    # generation (seed * 1_000_003 + generation, see the engine), so try the run's own draws.
    want = run.task().expected(train_x)
    for gen in range(int((run.result or {}).get("generations", 0)) + 1):
        seed = (run.seed * 1_000_003 + gen) % (2**31)
        res = ex.run([genome.code], train_x, seed=seed)
        got = res.outputs[0] & np.uint64(run.task().result_mask)
        exact = int(((res.outcomes[0] == Outcome.OK) & (got == want)).sum())
        if lo <= exact <= hi:
            return checks + [Check("exact training cases match the record", True,
                                   f"{detail}; reproduced ({exact}) with the run's register values of "
                                   f"generation {gen}: the genome reads registers that are not inputs")]
    if train["first_wrong"]:
        detail += "; first wrong: " + _case_text(train["first_wrong"][0])
    return checks + [Check("exact training cases match the record", False, detail)]


def _case_text(row: dict) -> str:
    ins = ", ".join(f"{v:#x}" for v in row["inputs"])
    return (f"case {row.get('index', '?')} ({ins}): expected {row['expected']:#x}, got "
            f"{row['output']:#x} [{row['outcome']}]")


def _cross_check(isa, code: bytes, used: str, budget: int, results: dict) -> Check:
    """Run the same cases on the other backend; outcome classes and OK outputs must agree."""
    other = "emulated" if used == "native" else "native"
    with open_executor(isa, backend=other, budget=budget) as ex:
        for name, (x, out, cls) in results.items():
            res = ex.run([code], x, seed=REPLAY_SEED)
            o2, c2 = res.outputs[0], res.outcomes[0]
            bad = np.flatnonzero((c2 != cls) | ((cls == Outcome.OK) & (o2 != out)))
            if bad.size:
                i = int(bad[0])
                return Check(f"{used} and {other} backends agree", False,
                             f"{name} case {i}: {used} {Outcome(int(cls[i])).name} {int(out[i]):#x}, "
                             f"{other} {Outcome(int(c2[i])).name} {int(o2[i]):#x}")
    n = sum(len(v[0]) for v in results.values())
    return Check(f"{used} and {other} backends agree", True, f"on {n} cases")


def _minimize(run: RunData, genome: Genome, ex, task, train_x, valid_x) -> dict:
    """Intron removal over genes when recorded (branch distances stay in genes), else lines."""
    isa = run.isa
    if genome.genes is not None:
        alphabet = alphabet_for(isa, n_regs=int(run.config.get("n_regs", 4)))
        units, encode = genome.genes, alphabet.encode
        render = alphabet.render
    else:
        units, encode = genome.asm, (lambda lines: assemble(lines, isa))
        render = list
    task_budget = int(run.config.get("budget", 256))

    def not_refuted(code: bytes) -> bool:     # testing cannot see register-dependent deletions
        return not isinstance(verify.check(code, task, isa, len(valid_x), budget=task_budget), verify.Refutation)

    m = mz.minimize(units, encode, ex, train_x, valid_x, isa=isa, accept=not_refuted)
    return {"length": m.length, "original_length": len(units), "removed": m.removed,
            "asm": render(m.units), "code_hex": m.code.hex(), "rounds": m.rounds,
            "verified_on": {"training": int(len(train_x)), "validation": int(len(valid_x))}}


# --------------------------------------------------------------------------- text output
def format_report(r: Report) -> str:
    lines = [f"replay {r.folder}: task {r.task} on {r.isa}, "
             f"{'best genome' if r.rank == 0 else f'hall of fame rank {r.rank}'}, backend {r.backend}", ""]
    lines += ["listing:"] + [f"  {a:#06x}  {b:<10}  {t}" for a, b, t in r.listing] + [""]
    for name, s in r.cases.items():
        outs = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
        lines.append(f"{name}: {s['correct']}/{s['n']} correct ({outs})")
        if "rows" in s:
            lines.append(f"  {'inputs':<40} {'expected':>18} {'output':>18}  outcome")
            for row in s["rows"]:
                ins = ",".join(f"{v:#x}" for v in row["inputs"])
                mark = "" if row["correct"] else "  WRONG"
                lines.append(f"  {ins:<40} {row['expected']:>#18x} {row['output']:>#18x}  "
                             f"{row['outcome']}{mark}")
        elif s["first_wrong"]:
            lines += ["  " + _case_text(row) for row in s["first_wrong"]]
    lines.append("")
    if r.minimized is not None:
        m = r.minimized
        lines.append(f"shortest equivalent program: {m['length']} of {m['original_length']} instructions "
                     f"(removed {m['removed'] or 'none'}; verified on {m['verified_on']['training']} "
                     f"training + {m['verified_on']['validation']} validation cases)")
        if "verification" in m:
            v = m["verification"]
            lines.append(f"  refused by a proof: {v['refuted']}" if "refuted" in v else
                         f"  verification: {verify.Verification(**v).line()}")
        lines += [f"    {t}" for t in m["asm"]] + [""]
    for c in r.checks:
        lines.append(f"[{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    lines.append("reproduces the recorded result" if r.ok else
                 "DOES NOT reproduce: " + next(f"{c.name}: {c.detail}" for c in r.checks if not c.ok))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="replay_best.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a run folder written by python -m evolve run")
    ap.add_argument("--rank", type=int, default=0,
                    help="0: the run's best (result.json); K >= 1: hall of fame entry K")
    ap.add_argument("--inputs", nargs="*", default=[], metavar="A,B",
                    help="extra cases, one comma-separated tuple of inputs each (e.g. 3,5 0x10,-1)")
    ap.add_argument("--backend", default="auto", choices=["auto", "emulated", "native"])
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--no-minimize", action="store_true", help="skip intron removal")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 (reproduces), 1 (does not) or 2 (bad input)."""
    args = build_parser().parse_args(argv)
    try:
        run = load_run(args.run_dir)
        genome_arity = int(run.task().arity)
        inputs = parse_inputs(args.inputs, genome_arity) if args.inputs else None
        run.genome(args.rank)        # a bad rank is bad input, before any work
        report = replay(run, args.rank, inputs, args.backend, not args.no_minimize)
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1
