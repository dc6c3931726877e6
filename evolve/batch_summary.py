"""A batch's summary, per task, from its run folders: ``summary.csv``, ``summary.md``, ``summary.png``.

Per task: runs, solved / unsolved / failed / unfinished, the solve rate (solved over all runs of
the task, failed ones included), the median time to a solution (the optimisation phase's start,
``result.json["optimize"]["started_at"]``, when the run had one, else the run's own
``seconds``: its clock from start to result), the cheapest verified length (instructions of
``best.code_hex`` without a final ``ret``, over solved runs whose equivalence is ``proven`` or
``tested``), gcc -O2's length when the task is C (or the spec names a ``c_reference``), and the
proof status (how many solutions were proven equivalent, how many only tested). An ``optimize``
target's run counts as solved when it found a cheaper program proven equivalent
(``report.json``), and its row gives the target's length (``target_length``) to compare with.

Everything is read from the run folders' ``result.json`` and batch.json's states, nothing from
the processes that ran them, so a summary can be redrawn from a copied batch folder.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from evolve import runfolder as rf

log = logging.getLogger(__name__)
COLUMNS = ("task", "runs", "solved", "unsolved", "failed", "unfinished", "solve_rate",
           "median_seconds_to_solution", "cheapest_verified_length", "gcc_O2_length", "proven", "tested",
           "target_length")
_RET = 0xD65F0000


def code_length(code_hex: str) -> int:
    """Instructions of a genome's code, without a final ``ret``."""
    code = bytes.fromhex(code_hex)
    n = len(code) // 4
    if n and int.from_bytes(code[-4:], "little") & 0xFFFFFC1F == _RET:
        n -= 1
    return n


def seconds_to_solution(result: dict) -> float | None:
    opt = result.get("optimize") or {}
    if opt.get("started_at") is not None:
        return float(opt["started_at"])
    return float(result["seconds"]) if result.get("seconds") is not None else None


def run_outcome(folder: Path) -> dict | None:
    """What the summary needs of a run folder, from a run's ``result.json`` or an ``optimize``
    folder's ``report.json``: ``solved`` (for optimize: a cheaper program proven equivalent),
    ``seconds`` (to the solution; optimize: its searches' whole time), ``length`` (the verified
    solution's, None unless its equivalence is proven or tested), ``equivalence`` and
    ``target_length`` (optimize: the target's); None when neither file is readable."""
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        result = None
    if isinstance(result, dict):
        solved = bool(result.get("solved"))
        equivalence = (result.get("verification") or {}).get("equivalence") if solved else None
        verified = solved and equivalence in ("proven", "tested")
        return {"solved": solved, "seconds": seconds_to_solution(result) if solved else None,
                "length": code_length(result["best"]["code_hex"]) if verified else None,
                "equivalence": equivalence, "target_length": None}
    try:
        report = json.loads((folder / "report.json").read_text())
        improved = bool(report["improved"])
        equivalence = report["after"]["verification"]["equivalence"] if improved else None
        return {"solved": improved, "seconds": float(report["seconds"]) if improved else None,
                "length": int(report["after"]["length"]) if improved and equivalence == "proven" else None,
                "equivalence": equivalence, "target_length": int(report["before"]["length"])}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


_GCC_CACHE: dict = {}


def gcc_lengths(c_file: str) -> dict[str, int] | str:
    """Function -> instructions (final ``ret`` and padding ``nop``\\ s left out) of ``c_file`` as
    gcc -O2 compiles it for aarch64; a string saying why not when no such compiler is here."""
    if c_file in _GCC_CACHE:
        return _GCC_CACHE[c_file]
    native = platform.machine() in ("aarch64", "arm64")
    gcc = shutil.which("gcc" if native else "aarch64-linux-gnu-gcc")
    objdump = shutil.which("objdump" if native else "aarch64-linux-gnu-objdump")
    if not (gcc and objdump):
        out: dict | str = "no aarch64 gcc/objdump here"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            obj = Path(tmp) / "o.o"
            proc = subprocess.run([gcc, "-O2", "-c", c_file, "-o", str(obj)], capture_output=True, text=True,
                                  timeout=120)
            if proc.returncode != 0:
                out = f"gcc failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
            else:
                text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(obj)], capture_output=True,
                                      text=True, timeout=120).stdout
                out = _count(text)
    _GCC_CACHE[c_file] = out
    return out


def _count(objdump_text: str) -> dict[str, int]:
    funcs: dict[str, list[str]] = {}
    current = None
    for line in objdump_text.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line.strip())
        if head:
            current = funcs.setdefault(head.group(1), [])
            continue
        insn = re.match(r"^\s*[0-9a-f]+:\s+([a-z][a-z0-9.]*)", line)
        if insn and current is not None:
            current.append(insn.group(1))
    out = {}
    for name, ops in funcs.items():
        while ops and ops[-1] == "nop":
            ops.pop()
        if ops and ops[-1] == "ret":
            ops.pop()
        out[name] = len(ops)
    return out


def _c_source(spec) -> tuple[str, str] | None:
    """(C file, function) whose gcc -O2 length the summary shows for a run spec, or None."""
    path, _, func = spec.target.rpartition(":")
    if spec.kind == "task" and path.endswith(".c"):
        return path, func
    if spec.c_reference is not None:
        return spec.c_reference, func or spec.target
    return None


def group(run_id: str) -> str:
    return run_id.rsplit("-s", 1)[0]


def rows(batch) -> list[dict]:
    """One row per task (in spec order) of the figures the module docstring lists."""
    by_task: dict[str, list] = {}
    for run_id, rec in batch.runs.items():
        by_task.setdefault(group(run_id), []).append((batch.specs[run_id], rec))
    out = []
    for task, runs in by_task.items():
        outcomes = [run_outcome(batch.run_folder(spec.id)) if rec["state"] in ("solved", "unsolved") else None
                    for spec, rec in runs]
        states = [rec["state"] for _, rec in runs]
        solved = [o for o, st in zip(outcomes, states) if st == "solved" and o and o["solved"]]
        equivalence = [o["equivalence"] for o in solved]
        verified = [o["length"] for o in solved if o["length"] is not None]
        times = [o["seconds"] for o in solved if o["seconds"] is not None]
        targets = [o["target_length"] for o in outcomes if o and o["target_length"] is not None]
        gcc = None
        source = _c_source(runs[0][0])
        if source is not None:
            counts = gcc_lengths(source[0])
            gcc = counts.get(source[1]) if isinstance(counts, dict) else None
        out.append({"task": task, "runs": len(runs), "solved": states.count("solved"),
                    "unsolved": states.count("unsolved"), "failed": states.count("failed"),
                    "unfinished": sum(s not in ("solved", "unsolved", "failed") for s in states),
                    "solve_rate": round(states.count("solved") / len(runs), 4),
                    "median_seconds_to_solution": round(statistics.median(times), 3) if times else None,
                    "cheapest_verified_length": min(verified) if verified else None, "gcc_O2_length": gcc,
                    "proven": equivalence.count("proven"), "tested": equivalence.count("tested"),
                    "target_length": targets[0] if targets else None})
    return out


def _csv(table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return buf.getvalue()


def _markdown(batch, table: list[dict]) -> str:
    c = batch.counts()
    lines = [f"# Batch {batch.folder.name}", "",
             f"Spec `{batch.spec.path}` (sha256 {batch.spec.sha256[:12]}), {len(batch.runs)} runs: "
             f"{c['solved']} solved, {c['unsolved']} unsolved, {c['failed']} failed"
             + (f", {len(batch.runs) - sum(c[s] for s in ('solved', 'unsolved', 'failed'))} unfinished"
                if any(c[s] for s in ("pending", "running", "interrupted")) else "") + ".", "",
             "| task | solved | solve rate | median s to solution | cheapest verified length | gcc -O2 (optimize: "
             "the target) | proofs |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in table:
        proofs = f"{r['proven']} proven, {r['tested']} tested" if r["solved"] else "-"
        extra = "".join(f", {r[k]} {k}" for k in ("failed", "unfinished") if r[k])
        lines.append(f"| {r['task']} | {r['solved']}/{r['runs']}{extra} | {100 * r['solve_rate']:.0f}% | "
                     f"{_dash(r['median_seconds_to_solution'])} | {_dash(r['cheapest_verified_length'])} | "
                     f"{_dash(r['gcc_O2_length'] if r['target_length'] is None else r['target_length'])} | {proofs} |")
    failed = [rec for rec in batch.runs.values() if rec["state"] == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{rec['id']}`: {rec['reason']}" for rec in failed]
    return "\n".join(lines) + "\n"


def _dash(value) -> str:
    return "-" if value is None else str(value)


def _plot(table: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r["task"] for r in table]
    x = range(len(names))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6, 0.5 * len(names) + 2), 6), sharex=True)
    ax1.bar(x, [100 * r["solve_rate"] for r in table], color="tab:green")
    ax1.set_ylabel("solved (% of runs)")
    ax1.set_ylim(0, 100)
    ax1.set_title("solve rate per task")
    ax2.bar(x, [r["cheapest_verified_length"] or 0 for r in table], color="tab:blue", label="Melvin, cheapest verified")
    gcc = [(i, r["gcc_O2_length"]) for i, r in enumerate(table) if r["gcc_O2_length"] is not None]
    if gcc:
        ax2.scatter([i for i, _ in gcc], [n for _, n in gcc], color="tab:red", marker="_", s=300, label="gcc -O2")
    ax2.set_ylabel("instructions")
    ax2.set_title("length of the cheapest verified solution")
    ax2.legend(fontsize="small")
    ax2.set_xticks(list(x))
    ax2.set_xticklabels(names, rotation=60, ha="right", fontsize="small")
    fig.tight_layout()
    tmp = path.with_name(".summary.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write(batch) -> list[dict]:
    """summary.csv, summary.md and summary.png of ``batch`` (a picture that fails is logged)."""
    table = rows(batch)
    rf.atomic_write(batch.folder / "summary.csv", _csv(table))
    rf.atomic_write(batch.folder / "summary.md", _markdown(batch, table))
    try:
        _plot(table, batch.folder / "summary.png")
    except Exception as exc:     # the numbers stand without the picture
        log.warning("summary.png not drawn: %s: %s", type(exc).__name__, exc)
    return table
