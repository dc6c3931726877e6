"""``python -m evolve run``: a batch evolution run, the product's main job.

With no arguments it evolves ARM64 code for a built-in Hacker's Delight task on the emulator
(or natively on an ARM64 host) and stops when a validated solution is found, after a few seconds
of searching for a cheaper equivalent (``--optimize``, :mod:`evolve.optimize`), or after a minute.
Everything lands in one run folder (see :mod:`evolve.runfolder`); Ctrl-C (SIGTERM) finishes the
generation, checkpoints and exits 130 (143), ``--resume DIR`` continues exactly where the
checkpoint left off (a folder of an earlier version, with a pickled checkpoint, only with
``--trust-pickle``).
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from evolve import config as C
from evolve import islands
from evolve import optimize as O
from evolve import prior
from evolve import results as R
from evolve import runfolder as rf
from evolve import verify
from evolve.codetask import task_record
from evolve.config import RunConfig
from evolve.engine import build
from evolve.tasks import BUILTIN, TaskError

log = logging.getLogger(__name__)
LIBRARY = Path(__file__).resolve().parent.parent / "genomes"


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser(
        "run", help="evolve code for a task (the main job)",
        description="Evolve machine code computing a task, surviving and learning from every crash. "
                    f"Built-in tasks: {', '.join(sorted(BUILTIN))}.",
        formatter_class=C.HelpFormatter)
    C.add_arguments(ap)
    ap.set_defaults(run=run)


def run(args) -> int:
    """Entry point of ``python -m evolve run``; returns the exit status."""
    started = time.perf_counter()      # --time-limit is the user's clock: it starts here
    if getattr(args, "islands", None) is not None or (
            args.resume is not None and islands.is_island_folder(args.resume)):
        return islands.run(args)
    try:
        verify.require_solver()
        if args.resume is not None:
            folder = args.resume
            state, brain = rf.load_checkpoint(folder, trust_pickle=getattr(args, "trust_pickle", False))
            cfg = RunConfig.from_dict(state["config"])
            C.apply_resume_overrides(cfg, args)
            cfg.validate()
            metrics = rf.resume_metrics(Path(folder) / rf.METRICS, "gen", state["gen"])
            engine = build(cfg)
            engine.restore(state, brain, metrics=metrics)
            engine.clock = started
            _attach_optimizer(engine, state.get("optimize"))
        else:
            cfg = C.config_from_args(args)
            cfg.validate()
            folder = C.new_run_folder(args, cfg.task)
            engine = build(cfg)
            engine.clock = started
            _attach_optimizer(engine)
            folder.mkdir(parents=True, exist_ok=True)
            rf.write_json(folder / "config.json", {"config": asdict(cfg), "task": {
                "name": engine.task.name, "arity": engine.task.arity, "description": engine.task.description,
                **task_record(engine.task)},
                "backend": engine.evaluator.backend, "environment": rf.environment()})
            engine.start()
    except (rf.RunFolderError, TaskError, ValueError, OSError, verify.SolverMissing) as exc:
        return C.fail(str(exc))
    try:
        return _loop(engine, folder, args, written=len(engine.metrics) if args.resume is not None else 0)
    finally:
        engine.evaluator.close()


def _attach_optimizer(engine, recorded: dict | None = None) -> None:
    """``engine.optimizer`` when the run has an optimisation phase (continuing the one a
    checkpoint ``recorded``, if it had begun)."""
    if engine.cfg.optimize > 0:
        engine.optimizer = O.Optimizer(engine, engine.cfg.cost, engine.cfg.optimize, peephole=engine.cfg.peephole)
        engine.optimizer.restore(recorded)


def _state(engine) -> dict:
    """The checkpoint's state: the engine's and the optimisation phase's."""
    state = engine.state()
    if engine.optimizer is not None:
        state["optimize"] = engine.optimizer.state()
    return state


def _loop(engine, folder: Path, args, written: int) -> int:
    """Generations until finished or interrupted: each appends its metrics line (the first
    ``written`` lines of ``engine.metrics`` are in the file already), every
    ``checkpoint_every``-th and the last checkpoint (metrics fsynced first)."""
    cfg = engine.cfg
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=cfg.generations, initial=engine.gen, desc=engine.task.name, unit="gen",
                   file=sys.stderr, dynamic_ncols=True)
    with rf.deferred_interrupt() as stop:      # held to the end: a signal while the results are
        with rf.MetricsLog(folder / rf.METRICS) as out:     # written would leave a half folder
            for line in engine.metrics[written:]:
                out.append(line)
            engine.metrics.clear()       # the file holds the history: memory stays flat in a long run
            try:
                while not _finished(engine) and not stop:
                    line = engine.step()
                    if engine.optimizer is not None and engine.optimizer.active:
                        line["optimize"] = {"best": list(engine.optimizer.best_key()),
                                            "accepted": len(engine.optimizer.improvements),
                                            "refused": engine.optimizer.refused}
                    out.append(line)
                    engine.metrics.clear()
                    if engine.gen % cfg.checkpoint_every == 0:
                        out.sync()
                        rf.save_checkpoint(folder, _state(engine), engine.brain)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(best=f"{line['best_cost']:.4f}", exact=f"{line['best_exact']}/{line['n_train']}",
                                        evals_s=f"{line['evals_per_s'] or 0:.0f}",
                                        crash=f"{100 * line['offspring_crash_rate']:.1f}%")
            finally:
                if bar is not None:
                    bar.close()
        if stop:
            print(f"\ninterrupted at generation {engine.gen}: checkpoint saved; continue with "
                  f"python -m evolve run --resume {folder}", file=sys.stderr)
        rf.save_checkpoint(folder, _state(engine), engine.brain)     # metrics.jsonl closed (fsynced) above
        _finish(engine, folder, args)
    return 128 + stop[0] if stop else 0


def _finished(engine) -> bool:
    """The run's stop test. Once solved with an optimisation phase, the phase begins (if time
    is left) and a run that stops at a solution stops when the phase ends, or at its limits."""
    opt, cfg = engine.optimizer, engine.cfg
    solved, gen, wall = engine.solved is not None, engine.gen, engine.wall_seconds()
    if opt is not None and solved and not opt.active and not R.should_stop(cfg, False, gen, wall):
        opt.begin()     # then at least one generation (its metrics line counts the re-seeding)
        return R.should_stop(cfg, False, gen, engine.wall_seconds())
    if opt is not None and opt.active and cfg.stop_when_solved:
        return opt.done() or R.should_stop(cfg, False, gen, engine.wall_seconds())
    return R.should_stop(cfg, solved, gen, engine.wall_seconds())


def _optimisation_record(engine) -> dict:
    """``first`` (the first verified solution), ``cost`` (both costs) and ``optimize`` (the
    phase's record; seconds 0 when it was off) of a solved run's result.json."""
    opt, cfg, alphabet = engine.optimizer, engine.cfg, engine.alphabet
    active = opt is not None and opt.active
    first = opt.first if active else engine.solved
    verification = opt.first_verification if active else engine.verification
    record = opt.record() if active else {"metric": cfg.cost, "budget_seconds": cfg.optimize, "seconds": 0.0,
                                          "started_at": None, "improvements": [], "candidates_refused": 0}
    return {"first": R.genome_record(alphabet, first, verification=verification.to_json() if verification else None),
            "cost": O.cost_record(alphabet, cfg.cost, first, engine.solved), "optimize": record}


def _finish(engine, folder: Path, args) -> None:
    """result.json, best.s, hall_of_fame.json, progress.png (drawn by a child process), the final
    brain file."""
    alphabet, cfg = engine.alphabet, engine.cfg
    best = engine.solved if engine.solved is not None else engine.hof[0]
    result = {"task": engine.task.name, "isa": cfg.isa, "backend": engine.evaluator.backend,
              "solved": engine.solved is not None, "best": R.genome_record(alphabet, best),
              "evaluations": engine.evaluations, "generations": engine.gen, "seconds": round(engine.wall_seconds(), 3),
              "evolution_seconds": round(engine.elapsed, 3),
              "n_train": int(len(engine.train_y)), "n_valid": int(len(engine.valid_y)), "seed": cfg.seed,
              "brain": engine.brain is not None, "lineage": engine.lineage.ancestry(best.uid),
              "verification": engine.verification.to_json() if engine.verification is not None else None,
              "claims_refused_by_proof": engine.refuted}
    if engine.solved is not None:
        result.update(_optimisation_record(engine))
    header = R.best_header(engine.task, cfg, result["solved"], n_valid=len(engine.valid_y), isa=alphabet.isa,
                           verification=result["verification"])
    solution = tuple(engine.solved) if engine.solved is not None else None
    fame = [R.genome_record(alphabet, ind, verification=result["verification"] if tuple(ind) == solution else None)
            for ind in engine.hof]
    R.write_results(folder, result, fame, header)
    rf.draw_progress(folder)
    if engine.brain is not None:
        engine.brain.save(folder / rf.BRAIN_FILE, {"task": engine.task.name, "generation": engine.gen,
                                                   **prior.metadata(engine.cfg)})
    if engine.library is not None:       # the macro-genes and what the brain learnt of them
        rf.write_json(folder / "library.json", engine.library.report(engine.brain))
    if args.save_to_library and engine.solved is not None:
        LIBRARY.mkdir(exist_ok=True)
        digest = hashlib.sha256(bytes.fromhex(result["best"]["code_hex"])).hexdigest()[:12]
        stem = f"{engine.task.name}_{cfg.isa}_{digest}"
        rf.atomic_write(LIBRARY / f"{stem}.s", R.assembly_text(header, result["best"]["asm"]))
        rf.write_json(LIBRARY / f"{stem}.json", {"task": engine.task.name, "isa": cfg.isa,
                                                 "code_hex": result["best"]["code_hex"],
                                                 "source_run": str(folder), "seed": cfg.seed,
                                                 "generations": engine.gen, "evaluations": engine.evaluations,
                                                 "verification": result["verification"]})
    print(R.summary(result, "", result["seconds"], folder))
