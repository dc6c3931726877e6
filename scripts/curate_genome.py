"""Add a run's solved genome to the curated ``genomes/`` library, minimised and re-verified.

Usage::

    python scripts/curate_genome.py RUN_DIR [--library genomes]

The genome is replayed (:mod:`evolve.replay`: reassembled, re-executed on the run's training and
validation cases), its introns removed, and the shortest equivalent program written as
``<task>_<isa>_<sha12>.s`` (assembly) with a ``.json`` sidecar holding its provenance: the source
run's task, seed, configuration, generations, evaluations, host and versions, the original
program and what minimisation verified. Genomes that read the condition flags before setting
them are refused (the executors' initial flags are not random). Exit 0 written, 1 the run does
not reproduce, is not solved or reads the flags first, 2 bad input.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evolve.replay import replay  # noqa: E402
from evolve.runfolder import atomic_write, write_json  # noqa: E402
from evolve.verify import Verification  # noqa: E402
from evolve.runload import RunLoadError, load_run  # noqa: E402


def reads_flags_first(code: bytes, isa: str) -> bool:
    """True when an instruction may read the flags before any instruction has written them
    (the engine's own test, ``evolve.fitness.reads_entry_flags``)."""
    from core.isa import get_isa
    from evolve.fitness import reads_entry_flags
    return reads_entry_flags(code, get_isa(isa))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--library", type=Path, default=ROOT / "genomes")
    args = ap.parse_args(argv)
    try:
        run = load_run(args.run_dir)
        report = replay(run, 0, backend="auto")
        task = run.task()
    except (RunLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (report.ok and run.result.get("solved")):
        print(f"not curated: {args.run_dir} is not a reproducible solved run", file=sys.stderr)
        return 1
    m = report.minimized
    code = bytes.fromhex(m["code_hex"])
    if reads_flags_first(code, run.isa):
        # The executors start every case with the same flags, so validation cannot see that such
        # code is not a function of its inputs when called from C (flags are arbitrary there).
        print(f"not curated: {args.run_dir}'s genome reads the condition flags before setting them",
              file=sys.stderr)
        return 1
    if "refuted" in m["verification"]:
        print(f"not curated: {args.run_dir}'s shortest program is refused by a proof: {m['verification']['refuted']}",
              file=sys.stderr)
        return 1
    stem = f"{task.name}_{run.isa}_{hashlib.sha256(code).hexdigest()[:12]}"
    isa_regs = {"arm64": ("x0 x1 x2 x3".split(), "x0"), "x86_64": ("rdi rsi rdx rcx".split(), "rax")}[run.isa]
    header = [f"// Melvin: {task.name} ({task.description}) on {run.isa}",
              f"// solved by evolution (seed {run.seed}), minimised from {m['original_length']} to "
              f"{m['length']} instructions, verified on {m['verified_on']['validation']} held-out cases",
              f"// verification: {Verification(**m['verification']).line()}",
              f"// inputs {', '.join(isa_regs[0][:task.arity])}; result {isa_regs[1]}; the return "
              f"instruction is appended"]
    best = run.result["best"]
    sidecar = {"task": task.name, "description": task.description, "arity": task.arity, "isa": run.isa,
               "asm": m["asm"], "code_hex": m["code_hex"], "length": m["length"],
               "verification": m["verification"],
               "provenance": {"source_run": run.folder.name, "seed": run.seed, "config": run.config,
                              "generations": run.result.get("generations"),
                              "evaluations": run.result.get("evaluations"),
                              "seconds": run.result.get("seconds"), "backend": run.result.get("backend"),
                              "environment": run.environment,
                              "original": {"asm": best["asm"], "code_hex": best["code_hex"], "uid": best.get("uid"),
                                           "op": best.get("op"), "parents": best.get("parents")},
                              "minimisation": {"removed": m["removed"], "verified_on": m["verified_on"]}}}
    args.library.mkdir(parents=True, exist_ok=True)
    atomic_write(args.library / f"{stem}.s", "\n".join(header + m["asm"]) + "\n")
    write_json(args.library / f"{stem}.json", sidecar)
    print(args.library / f"{stem}.s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
