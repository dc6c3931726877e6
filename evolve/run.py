"""``python -m evolve run``: a batch evolution run, the product's main job.

With no arguments it evolves ARM64 code for a built-in Hacker's Delight task on the emulator
(or natively on an ARM64 host) and stops when a validated solution is found or after a minute.
Everything lands in one run folder (see :mod:`evolve.runfolder`); Ctrl-C (SIGTERM) finishes the
generation, checkpoints and exits 130 (143), ``--resume DIR`` continues exactly where the
checkpoint left off.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path

from evolve import runfolder as rf
from evolve.engine import RunConfig, build
from evolve.tasks import BUILTIN, TaskError

log = logging.getLogger(__name__)
LIBRARY = Path(__file__).resolve().parent.parent / "genomes"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except where there is none to show (None, False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser(
        "run", help="evolve code for a task (the main job)",
        description="Evolve machine code computing a task, surviving and learning from every crash. "
                    f"Built-in tasks: {', '.join(sorted(BUILTIN))}.",
        formatter_class=_HelpFormatter)
    d = RunConfig()
    ap.add_argument("--task", default=d.task, help="built-in task name, or path/file.py:function "
                    "(1-4 int arguments in [0, 2**64), result taken mod 2**64)")
    ap.add_argument("--isa", default=d.isa, choices=["arm64", "x86_64"], help="instruction set to evolve")
    ap.add_argument("--backend", default=d.backend, choices=["auto", "emulated", "native"],
                    help="auto: native when the host runs the ISA, else the Unicorn emulator")
    ap.add_argument("--pop", type=int, default=d.pop, help="population size")
    ap.add_argument("--generations", type=int, default=None, help=f"maximum generations (default {d.generations})")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help=f"stop after this much evolution time (default {d.time_limit:.0f}; 0 = no limit)")
    ap.add_argument("--max-len", type=int, default=d.max_len, help="maximum genome length (instructions)")
    ap.add_argument("--regs", type=int, default=d.n_regs, help="working registers (the first hold the inputs)")
    ap.add_argument("--selection", default=d.selection, choices=["lexicase", "tournament"],
                    help="parent selection: lexicase keeps specialists (shuffled cases), tournament by cost")
    ap.add_argument("--seed", type=int, default=d.seed, help="random seed (same seed, same run)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>_<task>)")
    ap.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run in DIR")
    ap.add_argument("--workers", type=int, default=d.workers, help="evaluation worker processes")
    ap.add_argument("--no-brain", action="store_true", help="plain DEAP: no brain guidance or reinforcement")
    ap.add_argument("--keep-going", action="store_true", help="do not stop at the first validated solution")
    ap.add_argument("--save-to-library", action="store_true", help="add a solved genome to genomes/")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    isl = ap.add_argument_group("islands (Dask distributed; see evolve/islands.py)")
    isl.add_argument("--islands", type=int, default=None, metavar="N",
                     help="evolve N island populations of --pop each as Dask tasks")
    isl.add_argument("--scheduler", default="local", metavar="ADDR",
                     help="tcp://HOST:8786 (a running `dask scheduler`) or local (a LocalCluster, "
                          "one worker process per core)")
    isl.add_argument("--migration-every", type=int, default=5, metavar="K",
                     help="generations between migrations (and island checkpoints)")
    isl.add_argument("--migrants", type=int, default=5, metavar="M", help="individuals per migration (ring)")
    ap.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _config_from_args(args) -> RunConfig:
    d = RunConfig()
    time_limit = d.time_limit if args.time_limit is None else (None if args.time_limit == 0 else args.time_limit)
    if args.time_limit is not None and args.time_limit < 0:
        raise ValueError(f"--time-limit must be >= 0, got {args.time_limit}")
    return RunConfig(task=args.task, isa=args.isa, backend=args.backend, pop=args.pop,
                     generations=d.generations if args.generations is None else args.generations,
                     time_limit=time_limit, max_len=args.max_len, n_regs=args.regs, seed=args.seed,
                     workers=args.workers, brain=not args.no_brain, selection=args.selection,
                     stop_when_solved=not args.keep_going)


def run(args) -> int:
    """Entry point of ``python -m evolve run``; returns the exit status."""
    islands = getattr(args, "islands", None)
    if islands is not None or (args.resume is not None and (Path(args.resume) / "islands.pkl").is_file()):
        from evolve import islands as isl
        return isl.run(args)
    try:
        if args.resume is not None:
            folder = args.resume
            state, brain = rf.load_checkpoint(folder)
            known = {f.name for f in fields(RunConfig)}
            cfg = RunConfig(**{k: v for k, v in state["config"].items() if k in known})
            if args.generations is not None:
                cfg.generations = args.generations
            if args.time_limit is not None:
                cfg.time_limit = None if args.time_limit == 0 else args.time_limit
            engine = build(cfg)
            engine.restore(state, brain)
        else:
            cfg = _config_from_args(args)
            cfg.validate()
            folder = args.out or rf.default_run_dir(cfg.task)
            if folder.exists() and any(folder.iterdir()):
                return _fail(f"{str(folder)!r} already holds a run; use --resume {folder} or another --out")
            engine = build(cfg)
            folder.mkdir(parents=True, exist_ok=True)
            rf.write_json(folder / "config.json", {"config": asdict(cfg), "task": {
                "name": engine.task.name, "arity": engine.task.arity, "description": engine.task.description},
                "backend": engine.evaluator.backend, "environment": rf.environment()})
            engine.start()
    except (rf.RunFolderError, TaskError, ValueError, OSError) as exc:
        return _fail(str(exc))
    try:
        return _loop(engine, folder, args)
    finally:
        engine.evaluator.close()


def _loop(engine, folder: Path, args) -> int:
    cfg = engine.cfg
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=cfg.generations, initial=engine.gen, desc=engine.task.name, unit="gen",
                   file=sys.stderr, dynamic_ncols=True)
    status = 0
    with rf.deferred_interrupt() as stop:
        try:
            while not _finished(engine) and not stop:
                line = engine.step()
                rf.atomic_write(folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in engine.metrics))
                if engine.gen % cfg.checkpoint_every == 0:
                    rf.save_checkpoint(folder, engine.state(), engine.brain)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(best=f"{line['best_cost']:.4f}", exact=f"{line['best_exact']}/{line['n_train']}",
                                    evals_s=f"{line['evals_per_s'] or 0:.0f}",
                                    crash=f"{100 * line['offspring_crash_rate']:.1f}%")
        finally:
            if bar is not None:
                bar.close()
    if stop:
        status = 128 + stop[0]
        print(f"\ninterrupted at generation {engine.gen}: checkpoint saved; continue with "
              f"python -m evolve run --resume {folder}", file=sys.stderr)
    rf.save_checkpoint(folder, engine.state(), engine.brain)
    _finish(engine, folder, args)
    return status


def _finished(engine) -> bool:
    cfg = engine.cfg
    if engine.solved is not None and cfg.stop_when_solved:
        return True
    if engine.gen >= cfg.generations:
        return True
    return cfg.time_limit is not None and engine.elapsed >= cfg.time_limit


def _finish(engine, folder: Path, args) -> None:
    """result.json, best.s, hall_of_fame.json, progress.png, the final brain file."""
    alphabet = engine.alphabet
    best = engine.solved if engine.solved is not None else engine.hof[0]

    def record(ind) -> dict:
        code = alphabet.encode(ind)
        return {"asm": alphabet.render(ind), "code_hex": code.hex(), "fitness": ind.fitness.values[0],
                "length": len(ind), "exact_train": int(ind.exact), "uid": ind.uid,
                "parents": list(ind.parents), "op": ind.op, "genes": [list(g) for g in ind]}

    result = {"task": engine.task.name, "isa": engine.cfg.isa, "backend": engine.evaluator.backend,
              "solved": engine.solved is not None, "best": record(best), "evaluations": engine.evaluations,
              "generations": engine.gen, "seconds": round(engine.elapsed, 3), "n_train": int(len(engine.train_y)),
              "n_valid": int(len(engine.valid_y)), "seed": engine.cfg.seed, "brain": engine.brain is not None,
              "lineage": engine.ancestry(best)}
    rf.write_json(folder / "result.json", result)
    rf.write_json(folder / "hall_of_fame.json", [record(ind) for ind in engine.hof])
    header = [f"// Melvin: {engine.task.name} ({engine.task.description}) on {engine.cfg.isa}",
              f"// solved: {result['solved']} (validated on {len(engine.valid_y)} held-out cases)"
              if result["solved"] else "// not solved: best genome found",
              f"// inputs {', '.join(alphabet.isa.arg_regs[:engine.task.arity])}; result "
              f"{alphabet.isa.ret_reg}; the return instruction is appended"]
    rf.atomic_write(folder / "best.s", "\n".join(header + result["best"]["asm"]) + "\n")
    if engine.metrics:
        rf.plot_progress(folder, engine.metrics)
    if engine.brain is not None:
        engine.brain.save(folder / "brain.melvin", {"task": engine.task.name, "generation": engine.gen})
    if args.save_to_library and engine.solved is not None:
        LIBRARY.mkdir(exist_ok=True)
        digest = hashlib.sha256(bytes.fromhex(result["best"]["code_hex"])).hexdigest()[:12]
        stem = f"{engine.task.name}_{engine.cfg.isa}_{digest}"
        rf.atomic_write(LIBRARY / f"{stem}.s", "\n".join(header + result["best"]["asm"]) + "\n")
        rf.write_json(LIBRARY / f"{stem}.json", {"task": engine.task.name, "isa": engine.cfg.isa,
                                                 "code_hex": result["best"]["code_hex"],
                                                 "source_run": str(folder), "seed": engine.cfg.seed,
                                                 "generations": engine.gen, "evaluations": engine.evaluations})
    print(f"{'solved' if result['solved'] else 'not solved'}: {engine.task.name} in {engine.gen} generations, "
          f"{engine.evaluations} evaluations, {engine.elapsed:.1f} s -> {folder}")
    for line in result["best"]["asm"]:
        print(f"    {line}")
