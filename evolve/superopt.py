"""``python -m evolve optimize TARGET``: superoptimise existing ARM64 code (STOKE's use, for ARM).

TARGET is GNU assembly as ``gcc -S`` writes it, an ELF object or shared library, or hex words
(:mod:`evolve.targets`); ``--function`` picks the symbol. The target must be code Melvin models
(:mod:`evolve.frame`: loop-free, no calls, memory only in its own stack frame); anything else is
refused naming the instruction and its offset (exit 2). The target is the reference on every
test case and, as :mod:`core.symbolic` models it, the proof target (:mod:`evolve.codetask`).

Two searches share ``--time-limit``, each a full run of the engine with its own run folder:

1. ``from_target/`` (STOKE's optimisation mode): the population's worst row is replaced by the
   target itself, and beside it the target with its stack slots forwarded into registers
   (:mod:`evolve.forward`) and the target after classic compiler rewrites (:mod:`evolve.rewrite`:
   renaming, folding into ``bic``/shifted operands, dead code), as genes (:mod:`evolve.lift`; branches and words outside the
   alphabet as raw words); the shorter that passes verification is the first solution, and the
   optimisation phase
   (:mod:`evolve.optimize`) then minimises it and searches for cheaper equivalents;
2. ``from_scratch/`` (synthesis): the usual run, then its optimisation phase.

Every program either search accepts passed held-out testing and the proofs; the cheapest whose
equivalence is *proven* (not only tested) is the result: ``best.s`` (GNU assembly ready to paste,
:mod:`evolve.superopt_report`), ``report.md`` and ``report.json`` (before and after, estimated
cycles, the proof). When nothing cheaper is proven the target stands, and the report says so.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict

import numpy as np
from pathlib import Path

from evolve import config as C
from evolve import cost as K
from evolve import frame as F
from evolve import optimize as O
from evolve import runfolder as rf
from evolve import superopt_report as SR
from evolve import targets as TG
from evolve import verify
from evolve.codetask import ReferenceFailure, make_code_task, task_record
from evolve.config import RunConfig
from evolve.forward import simplify
from evolve.lift import lift
from evolve.rewriter import rewrite
from evolve.tasks import MASK, TaskError

log = logging.getLogger(__name__)
#: share of --time-limit the search from the target gets (the search from scratch: the rest)
TARGET_SHARE = 0.5
#: seconds kept for the report after the searches
REPORT_SECONDS = 3.0
#: seconds each search keeps for the final intron removal of its best program (:func:`_polish`)
POLISH_SECONDS = 1.5


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser(
        "optimize", help="superoptimise existing ARM64 code (assembly, ELF object or library, hex)",
        description="Find the cheapest program proven equivalent to an existing ARM64 function: searches "
                    "from the function's own instructions and from scratch, then proves the result "
                    "equivalent to the target machine code with z3.", formatter_class=C.HelpFormatter)
    ap.add_argument("target", metavar="TARGET",
                    help="GNU assembly (gcc -S), an ELF object or shared library, or hex words ('d1000401 8a010000')")
    ap.add_argument("--function", default=None, metavar="NAME", help="the function (symbol); needed when "
                    "the file defines more than one")
    ap.add_argument("--args", type=int, default=None, metavar="N",
                    help="live-in argument registers x0..x(N-1), 1-4 (default: the signature from an ELF's "
                         "debug information, else required)")
    ap.add_argument("--result", default=None, choices=["x0", "w0"],
                    help="what the function returns: x0 (64 bits) or w0 (32 bits; the upper bits are free)")
    ap.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                    help="wall time of both searches together")
    ap.add_argument("--cost", default="length", choices=list(K.METRICS),
                    help=f"what is minimised: length (instructions) or latency (estimated {K.CORE} cycles)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>_optimize_<name>)")
    ap.add_argument("--pop", type=int, default=300, help="population size of each search")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--backend", default="auto", choices=["auto", "emulated", "native"], help="executor backend")
    ap.add_argument("--proof-timeout", type=float, default=10.0, metavar="SECONDS", help="solver time per proof")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.set_defaults(run=run)


def load_task(args):
    """(target, task) for the command line's TARGET; TargetError / NotModelled / TaskError."""
    target = TG.load_target(args.target, args.function)
    n_args, result_bits, arg_types = args.args, None, None
    if target.source.startswith("elf") and (n_args is None or args.result is None):
        try:
            from evolve.ctask import signature
            types, (bits, signed) = signature(Path(target.path), target.name)
            n_args = len(types) if n_args is None else n_args
            result_bits = bits
            arg_types = tuple(types) if len(types) == n_args else None
        except TaskError:
            pass
    if n_args is None:
        raise TaskError("give --args N: how many argument registers (x0..) the function reads")
    if not 1 <= n_args <= 4:
        raise TaskError(f"--args must be 1 to 4, got {n_args}")
    if args.result is not None:
        result_bits = 64 if args.result == "x0" else 32
    result_bits = result_bits or 64
    origin = (("target", args.target), ("function", target.name), ("source", target.source),
              ("address", f"{target.address:#x}"))
    try:
        task = make_code_task(f"optimize_{target.name}", target.code, n_args, arg_types=arg_types,
                              result_bits=result_bits, relocations=target.relocations,
                              description=f"{target.name} of {target.path or 'hex'}", origin=origin)
    except ReferenceFailure as exc:
        raise TaskError(f"{exc} (is --args right?)") from None
    return target, task


class RecordingOptimizer(O.Optimizer):
    """The optimisation phase, keeping every program it accepted with its verification."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.accepted: list = []

    def _verify(self, ind, rows) -> bool:
        ok = super()._verify(ind, rows)
        if ok:
            self.accepted.append((list(self.engine.solved), self.engine.verification))
        return ok


def _search(name: str, task, folder: Path, args, seconds: float, seed_code: bytes | None) -> dict:
    """One engine run in ``folder``; returns its accepted programs ``[(code, verification)]``
    and a summary line."""
    from evolve import run as R
    from evolve.engine import build
    started = time.perf_counter()
    seed_len = len(seed_code) // 4 if seed_code else 0
    seconds = max(1.0, seconds - POLISH_SECONDS)
    cfg = RunConfig(task=task.name, backend=args.backend, pop=args.pop, generations=None,
                    time_limit=seconds, optimize=seconds, cost=args.cost,
                    max_len=max(16, seed_len + 2), seed=args.seed, proof_timeout=args.proof_timeout)
    engine = build(cfg, task=task)
    engine.clock = started
    engine.optimizer = RecordingOptimizer(engine, cfg.cost, cfg.optimize)
    folder.mkdir(parents=True, exist_ok=True)
    rf.write_json(folder / "config.json", {"config": asdict(cfg), "search": name, "task": {
        "name": task.name, "arity": task.arity, "description": task.description, **task_record(task)},
        "backend": engine.evaluator.backend, "environment": rf.environment()})
    try:
        engine.start()
        if seed_code and engine.solved is None:
            alphabet = engine.alphabet
            seeds = []
            # rewritten (renamed, folded, dead code out; in the working registers, and in x0-x7,
            # whose words beyond the working set stay raw), slots forwarded, then as it is
            rewritten = [rewrite(seed_code, task.arity, n_regs=n) for n in sorted({len(alphabet.regs), 8})]
            for code in sorted((c for c in rewritten if c), key=len) + [simplify(seed_code), seed_code]:
                if code is None:
                    continue
                body = code[:-4] if code.endswith(F.RET.to_bytes(4, "little")) else code
                genes = lift(body, alphabet) or [(alphabet.raw_op(F.NOP), 0, 0, 0, F.NOP)]
                if genes not in seeds:
                    seeds.append(genes)
            worst = engine.rows.uid[np.argsort(-engine.rows.cost, kind="stable")[:len(seeds)]].tolist()
            engine.accept_immigrants(seeds, worst, origin="target")
        ns = argparse.Namespace(quiet=args.quiet, save_to_library=False)
        R._loop(engine, folder, ns, written=0)
        opt = engine.optimizer
        found = []
        if opt.first is not None:
            found.append((list(opt.first), opt.first_verification, "first"))
        elif engine.solved is not None:
            found.append((list(engine.solved), engine.verification, "first"))
        found += [(g, v, "optimised") for g, v in opt.accepted]
        polished = _polish(engine, found, args)
        if polished is not None:
            found.append(polished)
    finally:
        engine.evaluator.close()
    found = [(engine.alphabet.encode(g), v, stage) for g, v, stage in found]
    best = min((K.key(c, args.cost) for c, v, _ in found), default=None)
    text = (f"{engine.gen} generations, {engine.evaluations} evaluations, {len(found)} verified program(s)"
            + (f", the cheapest {args.cost} {best[0]} ({best[1]} instructions)" if best else ", none"))
    return {"name": name, "folder": str(folder), "found": found, "summary": text,
            "seconds": round(time.perf_counter() - started, 2)}


def _polish(engine, found: list, args):
    """The cheapest proven program of ``found`` with its introns removed (:mod:`evolve.minimize`,
    each deletion taken only when the proof still holds), tested on the held-out cases under
    per-case states and proven again: ``(genes, verification, "minimised")``, or None when no
    shorter proven form exists. (The optimisation phase minimises each program it accepts, but
    the last one's minimised form may not have been verified before the time ran out.)"""

    from core.executors.batch_state import CaseStates
    from core.outcome import Outcome
    from evolve import minimize as mz
    proven = [(g, v) for g, v, _ in found if v is not None and v.equivalence == verify.PROVEN]
    if not proven:
        return None
    alphabet, task = engine.alphabet, engine.task
    genes = min(proven, key=lambda gv: K.key(alphabet.encode(gv[0]), args.cost))[0]
    if len(genes) < 2:
        return None

    def proof(code: bytes):
        v = verify.check(code, task, "arm64", len(engine.valid_y), scratch=engine.evaluator.scratch,
                         budget=engine.cfg.budget, timeout=args.proof_timeout)
        return v if isinstance(v, verify.Verification) and v.equivalence == verify.PROVEN else None

    code = alphabet.encode(genes)
    units = list(enumerate(int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)))
    try:            # over words, branches re-aimed (a raw branch word of the target keeps its offset)
        m = mz.minimize(units, F.relink, O._Executor(engine.evaluator), engine.train_x,
                        engine.valid_x[:O.MINIMIZE_CASES], isa="arm64", accept=lambda code: proof(code) is not None)
    except ValueError:
        return None
    if not m.units or K.key(m.code, args.cost) >= K.key(code, args.cost):
        return None
    states = CaseStates.from_seed(0x90115, len(engine.valid_y), engine.evaluator.scratch)
    outputs, outcomes = engine.evaluator.run([m.code], engine.valid_x, seed=0, states=states)
    if not ((outcomes[0] == Outcome.OK) & (outputs[0] == engine.valid_y)).all():
        return None
    v = proof(m.code)
    words = [int.from_bytes(m.code[i:i + 4], "little") for i in range(0, len(m.code), 4)]
    return ([(alphabet.raw_op(w), 0, 0, 0, w) for w in words], v, "minimised") if v is not None else None


def run(args) -> int:
    """Entry point of ``python -m evolve optimize``; returns the exit status."""
    started = time.perf_counter()
    try:
        verify.require_solver()
        if args.time_limit <= 0:
            raise ValueError(f"--time-limit must be positive, got {args.time_limit}")
        if args.pop < 2:
            raise ValueError(f"--pop must be at least 2, got {args.pop}")
        target, task = load_task(args)
        folder = args.out or rf.default_run_dir(f"optimize_{target.name}")
        if folder.exists() and any(folder.iterdir()):
            raise rf.RunFolderError(f"{str(folder)!r} already holds a run; choose another --out")
    except (TG.TargetError, F.NotModelled, TaskError, ValueError, OSError, verify.SolverMissing) as exc:
        return C.fail(str(exc))
    folder.mkdir(parents=True, exist_ok=True)
    rf.write_json(folder / "config.json", {"command": "optimize", "target": args.target, "function": target.name,
                                           "args": task.arity, "result_mask": f"{task.result_mask:#x}",
                                           "time_limit": args.time_limit, "cost": args.cost, "pop": args.pop,
                                           "seed": args.seed, "task": task_record(task),
                                           "environment": rf.environment()})
    budget = args.time_limit - REPORT_SECONDS - (time.perf_counter() - started)
    searches = [_search("from_target", task, folder / "from_target", args, budget * TARGET_SHARE, task.model)]
    left = args.time_limit - REPORT_SECONDS - (time.perf_counter() - started)
    searches.append(_search("from_scratch", task, folder / "from_scratch", args, left, None))
    report = _report(target, task, args, searches, time.perf_counter() - started)
    rf.write_json(folder / "report.json", report)
    rf.atomic_write(folder / "report.md", SR.markdown(report))
    rf.atomic_write(folder / "best.s", report["replacement_asm"])
    before, after = report["before"], report["after"]
    print(f"{target.name}: {before['length']} -> {after['length']} instructions, ~{before['cycles']} -> "
          f"~{after['cycles']} cycles ({K.CORE} estimate); equivalence {after['verification']['equivalence']} "
          f"-> {folder}")
    return 0


def _report(target, task, args, searches: list, seconds: float) -> dict:
    """report.json: the cheapest proven program of the searches against the target."""
    before = SR.summary(target.code)
    proven = [(c, v, s["name"]) for s in searches for c, v, _ in s["found"]
              if v is not None and v.equivalence == verify.PROVEN and not SR.clobbers(c)]
    best = min(proven, key=lambda t: K.key(t[0], args.cost), default=None)
    target_key = K.key(target.code, args.cost)
    improved = best is not None and K.key(best[0], args.cost) < target_key
    if improved:
        code, v, where = best
        verification = v.to_json()
    else:
        code, where = target.code, "the target"
        verification = {"equivalence": "the target itself", "independence": "proven for the reference",
                        "cases": 0, "solver": "", "seconds": 0, "note": ""}
    why = "" if improved else (f"no search found a proven-equivalent program{'; ' + task.proof_note if task.proof_note else ''}"
                               if best is None
                               else f"the cheapest proven program costs {K.key(best[0], args.cost)}, "
                                    f"the target {target_key}")
    after = dict(SR.summary(code), verification=verification, found_by=where)
    paste = SR.gnu_function(code, target.name, frame=improved)
    args_text = "x0" if task.arity == 1 else f"x0..x{task.arity - 1}"
    scope = (f"x0{'' if task.result_mask == MASK else f' & {task.result_mask:#x}'} of the replacement against "
             f"the target's machine code for every value of {args_text} (all 64 bits) and every other register, "
             f"flag and scratch byte")
    if task.frame:
        scope += (f"; the target as modelled, its {task.frame}-byte stack frame moved into the scratch area "
                  f"(checked by running both forms)")
    return {"target": {"name": target.name, "path": target.path, "source": target.source,
                       "address": f"{target.address:#x}", "arguments": task.arity,
                       "result": "x0" if task.result_mask == MASK else f"x0 & {task.result_mask:#x}",
                       "modelled": task_record(task)["modelled"], "frame_bytes": task.frame},
            "cost_metric": args.cost, "seconds": round(seconds, 2), "improved": improved, "why": why,
            "before": before, "after": after, "proof_scope": scope,
            "searches": [{k: v for k, v in s.items() if k != "found"} |
                         {"programs": [{"asm": SR.summary(c)["instructions"], "verification": v.to_json() if v else None,
                                        "stage": st} for c, v, st in s["found"]]} for s in searches],
            "replacement_asm": paste, "paste_check": SR.check_paste(paste, code)}
