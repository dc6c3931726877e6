"""``python -m evolve analyze RUN_DIR [RUN_DIR ...]``: offline analysis of finished runs.

No genome code is executed and no pickle is loaded: the analysis reads ``config.json``,
``metrics.jsonl``, ``hall_of_fame.json``, ``result.json`` and ``brain.safetensors`` (safetensors,
checksummed). Per run it reports instruction frequencies (hall of fame and best), the length
distribution, outcome classes of new evaluations per generation, the brain's EXEC node
thresholds and success rates, its gene patterns (most frequent, and the ones the seed's rule
suppressed: threshold above 1.0, so mutation rarely draws them), and the best genome's lineage
as far as the hall of fame records it. Several runs are compared side by side (e.g. brain vs
``--no-brain``). Output, into ``--out`` (default ``<first RUN_DIR>/analysis``): ``summary.txt``,
``analysis.json``, CSV tables and ``analysis.png``.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from core.outcome import Outcome
from evolve.genes import alphabet_for
from evolve.runfolder import BRAIN_FILE
from evolve.runload import RunData, RunLoadError, load_run

NEEDED = ("config.json", "metrics.jsonl")
CLASSES = [o.name for o in Outcome]


def _gene_name(alphabet, token: int) -> str:
    from evolve.library import MACRO_BASE
    if token >= MACRO_BASE:
        return f"macro:{token - MACRO_BASE:08x}"
    if not 0 <= token < alphabet.n_genes:
        return f"?{token}"
    op = alphabet.ops[token]
    if op.kind == "raw":
        return f".word[{op.prefix:x}]" if op.prefix >= 0 else ".word"
    label = f"{op.name}/{op.kind}" + ("/w" if op.width == 32 else "")
    if op.kind == "neon":                       # one name, several operand shapes
        label += ":" + op.syntax.replace("{", "").replace("}", "").replace(" ", "")
    return label


def brain_tables(run: RunData) -> dict | None:
    """Node and gene-pattern statistics of ``brain.safetensors``; None when the run has no brain file."""
    from core.brain.file import BrainFileError, read
    path = run.folder / BRAIN_FILE
    if not path.is_file():
        return None
    try:
        _, arrays = read(path)
    except (BrainFileError, OSError) as exc:
        raise RunLoadError(f"brain file {str(path)!r} is unusable: {exc}") from None
    alphabet = alphabet_for(run.isa, n_regs=int(run.config.get("n_regs", 4)))
    thr = arrays.get("exec/threshold_ratio", np.zeros(0))
    succ = arrays.get("exec/success_rate", np.zeros(0))
    length = arrays["genes/length"]
    live = np.flatnonzero(length > 0)
    patterns = []
    for s in live:
        tokens = arrays["genes/tokens"][s][:length[s]].tolist()
        patterns.append({"pattern": " ; ".join(_gene_name(alphabet, t) for t in tokens),
                         "tokens": tokens, "count": int(arrays["genes/count"][s]),
                         "n_ok": int(arrays["genes/n_ok"][s]), "n_crash": int(arrays["genes/n_crash"][s]),
                         "n_improved": int(arrays["genes/n_improved"][s]) if "genes/n_improved" in arrays else 0,
                         "success_rate": round(float(arrays["genes/success_rate"][s]), 4),
                         "threshold_ratio": round(float(arrays["genes/threshold_ratio"][s]), 4)})
    suppressed = sorted((p for p in patterns if p["threshold_ratio"] > 1.0), key=lambda p: -p["threshold_ratio"])
    return {"exec_nodes": int(thr.size),
            "threshold_ratio": _describe(thr), "success_rate": _describe(succ),
            "patterns": len(patterns), "suppressed": suppressed,
            "top_patterns": sorted(patterns, key=lambda p: -p["count"])[:20], "all_patterns": patterns,
            "macro_genes": macro_genes(run)}


def macro_genes(run: RunData) -> list:
    """The run's macro-genes (``library.json``, :mod:`evolve.library`), those that helped most
    first: by draw factor (their offspring's rate of improvement against the base rate)."""
    path = run.folder / "library.json"
    try:
        doc = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise RunLoadError(f"{str(path)!r} is unusable: {exc}") from None
    rows = [r for r in doc.get("macro_genes", []) if isinstance(r, dict)]
    return sorted(rows, key=lambda r: (-float(r.get("draw_factor", 1.0)), -int(r.get("improved", 0))))


def _describe(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    q = np.quantile(values, [0.0, 0.5, 1.0])
    return {"n": int(values.size), "mean": round(float(values.mean()), 4), "min": round(float(q[0]), 4),
            "median": round(float(q[1]), 4), "max": round(float(q[2]), 4)}


def lineage(run: RunData) -> list[dict]:
    """The best genome and its ancestors recorded in result.json's lineage and the hall of fame
    (uid, op, parents, length)."""
    best = (run.result or {}).get("best") or (run.hall_of_fame[0] if run.hall_of_fame else None)
    if not best:
        return []
    known = {r.get("uid"): r for r in (run.result or {}).get("lineage") or [] if isinstance(r, dict)}
    known.update({r.get("uid"): r for r in run.hall_of_fame if isinstance(r, dict)})
    known.setdefault(best.get("uid"), best)
    chain, todo, seen = [], [best.get("uid")], set()
    while todo:
        uid = todo.pop(0)
        if uid in seen:
            continue
        seen.add(uid)
        rec = known.get(uid)
        if rec is None:
            chain.append({"uid": uid, "op": None, "parents": None, "length": None, "recorded": False})
            continue
        chain.append({"uid": uid, "op": rec.get("op"), "parents": rec.get("parents"), "length": rec.get("length"),
                      "fitness": rec.get("fitness"), "recorded": True})
        todo += [p for p in rec.get("parents") or [] if p in known]
    return chain


def analyze_run(run: RunData) -> dict:
    """Every table of one run (plain JSON-able data)."""
    genomes = [r for r in run.hall_of_fame if isinstance(r, dict) and isinstance(r.get("asm"), list)]
    mnemonics = Counter(line.split()[0] for r in genomes for line in r["asm"] if line.split())
    outcomes = [{"gen": m["gen"], **{c: int(m.get("outcomes", {}).get(c, 0)) for c in CLASSES},
                 "offspring_crash_rate": m.get("offspring_crash_rate"), "best_cost": m.get("best_cost"),
                 "mean_cost": m.get("mean_cost"), "best_len": m.get("best_len"), "n_train": m.get("n_train")}
                for m in run.metrics]
    crash = [o["offspring_crash_rate"] for o in outcomes[1:] if o["offspring_crash_rate"] is not None]
    res = run.result or {}
    summary = {"folder": str(run.folder), "task": run.config["task"], "isa": run.isa,
               "brain": bool(run.config.get("brain", True)), "seed": run.seed,
               "solved": res.get("solved"), "generations": len(run.metrics),
               "evaluations": run.metrics[-1]["evaluations"] if run.metrics else 0,
               "seconds": run.metrics[-1].get("seconds") if run.metrics else None,
               "final_best_cost": run.metrics[-1]["best_cost"] if run.metrics else None,
               "best_length": (res.get("best") or {}).get("length"),
               "mean_offspring_crash_rate": round(float(np.mean(crash)), 6) if crash else None,
               "total_outcomes": {c: sum(o[c] for o in outcomes) for c in CLASSES}}
    return {"summary": summary, "instructions": dict(mnemonics.most_common()),
            "lengths": dict(sorted(Counter(len(r["asm"]) for r in genomes).items())),
            "outcomes": outcomes, "brain": brain_tables(run), "lineage": lineage(run)}


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def summary_text(results: list[dict]) -> str:
    lines = []
    for i, r in enumerate(results):
        s = r["summary"]
        lines += [f"run {i}: {s['folder']}", f"  task {s['task']} on {s['isa']}, brain {s['brain']}, seed {s['seed']}, "
                  f"solved {s['solved']}, {s['generations']} generations, {s['evaluations']} evaluations",
                  f"  final best cost {s['final_best_cost']}, best length {s['best_length']}, "
                  f"mean offspring crash rate {s['mean_offspring_crash_rate']}",
                  "  outcome classes of new evaluations: "
                  + ", ".join(f"{c} {n}" for c, n in s["total_outcomes"].items() if n),
                  "  instructions (hall of fame): " + ", ".join(f"{k} {v}" for k, v in list(r["instructions"].items())[:12]),
                  "  lengths (hall of fame): " + ", ".join(f"{k}: {v}" for k, v in r["lengths"].items())]
        b = r["brain"]
        if b:
            lines.append(f"  brain: {b['exec_nodes']} EXEC nodes, threshold ratio {b['threshold_ratio']}, "
                         f"success rate {b['success_rate']}; {b['patterns']} gene patterns, {len(b['suppressed'])} suppressed")
            lines += [f"    suppressed {p['pattern']}: threshold ratio {p['threshold_ratio']}, {p['n_crash']} crashes / "
                      f"{p['n_ok']} ok" for p in b["suppressed"][:10]]
            macros = b.get("macro_genes") or []
            if macros:
                lines.append(f"  macro-genes: {len(macros)}, inserted {sum(m.get('inserted', 0) for m in macros)} times; "
                             "most helpful first (draw factor: their offspring's improvement rate over the base rate)")
                lines += [f"    {' ; '.join(m['asm'])}: inserted {m.get('inserted', 0)}, improved {m.get('improved', 0)}, "
                          f"draw factor {m.get('draw_factor')}" for m in macros[:10]]
        lines.append("  lineage of the best: " + " <- ".join(
            f"#{x['uid']} ({x['op']})" if x["recorded"] else f"#{x['uid']}" for x in r["lineage"]))
        lines.append("")
    if len(results) > 1:
        lines.append("comparison:")
        lines.append(f"  {'run':<4} {'brain':<6} {'solved':<7} {'gens':>5} {'evals':>8} {'best cost':>10} {'crash rate':>11}")
        for i, r in enumerate(results):
            s = r["summary"]
            lines.append(f"  {i:<4} {str(s['brain']):<6} {str(s['solved']):<7} {s['generations']:>5} {s['evaluations']:>8} "
                         f"{s['final_best_cost']:>10.4g} {s['mean_offspring_crash_rate'] or 0:>11.4%}")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from evolve.runfolder import atomic_write
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for i, r in enumerate(results):
        gens = [o["gen"] for o in r["outcomes"]]
        label = f"run {i} ({'brain' if r['summary']['brain'] else 'no brain'})"
        axes[0].plot(gens, [o["best_cost"] for o in r["outcomes"]], label=label)
        axes[1].plot(gens, [o["offspring_crash_rate"] for o in r["outcomes"]], label=label)
        axes[2].plot(gens, [o["best_len"] for o in r["outcomes"]], label=label)
    for ax, title in zip(axes, ("best cost", "offspring crash rate", "best length")):
        ax.set_ylabel(title)
        ax.legend(fontsize="small")
    axes[0].set_yscale("symlog", linthresh=1e-3)
    axes[2].set_xlabel("generation")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def analyze(folders: list[Path], out: Path | None = None) -> Path:
    """Analyse ``folders`` and write the report into ``out``; returns ``out``.

    Every folder is loaded and checked before anything is written (RunLoadError otherwise)."""
    from evolve.runfolder import atomic_write, write_json
    runs = [load_run(f, need=NEEDED) for f in folders]
    results = [analyze_run(r) for r in runs]
    out = Path(out) if out is not None else Path(folders[0]) / "analysis"
    if out.exists() and not out.is_dir():
        raise RunLoadError(f"--out {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(results):
        atomic_write(out / f"outcomes_{i}.csv", _csv(r["outcomes"], ["gen", *CLASSES, "offspring_crash_rate",
                                                                     "best_cost", "mean_cost", "best_len", "n_train"]))
        atomic_write(out / f"instructions_{i}.csv", _csv([{"instruction": k, "count": v}
                                                          for k, v in r["instructions"].items()], ["instruction", "count"]))
        if r["brain"]:
            atomic_write(out / f"patterns_{i}.csv", _csv(sorted(r["brain"]["all_patterns"], key=lambda p: -p["count"]),
                                                         ["pattern", "count", "n_ok", "n_crash", "success_rate", "threshold_ratio"]))
            r["brain"].pop("all_patterns")
    atomic_write(out / "comparison.csv", _csv([r["summary"] for r in results],
                                              [k for k in results[0]["summary"] if k != "total_outcomes"]))
    write_json(out / "analysis.json", {"runs": results})
    atomic_write(out / "summary.txt", summary_text(results))
    plot(results, out / "analysis.png")
    return out


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser("analyze", help="offline analysis of run folders (no code is executed)",
                               description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <first RUN_DIR>/analysis)")
    ap.set_defaults(run=run)


def run(args) -> int:
    try:
        out = analyze(args.run_dirs, args.out)
    except (RunLoadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write((out / "summary.txt").read_text())
    print(f"-> {out}")
    return 0
