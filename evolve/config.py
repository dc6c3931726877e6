"""Run configuration, shared by single and island runs: the parameters, the command line that
sets them, what a resume may change, and the checks made before a run folder is written.

Both :mod:`evolve.run` and :mod:`evolve.islands` read their arguments through this module, so a
flag means the same thing in both and an error is reported the same way (one line, exit 2).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from evolve import fitness as fit
from evolve import runfolder as rf
from evolve import tasks as T
from evolve.cost import CORE, METRICS


@dataclass
class RunConfig:
    """Every parameter of a run (written to config.json; enough to reproduce it)."""

    task: str = T.DEFAULT_TASK
    cc: str | None = None              # --task file.c:func: the C compiler (None: the host's aarch64 one)
    cflags: str | None = None          # and its flags (None: evolve.ctask.DEFAULT_CFLAGS, -O2)
    isa: str = "arm64"
    backend: str = "auto"
    pop: int = 300
    generations: int | None = 500      # None: no cap (the default when --time-limit is given)
    time_limit: float | None = 60.0
    max_len: int = 16
    init_len: int = 8
    n_regs: int = 4
    seed: int = 0
    workers: int = 1
    brain: bool = True
    brain_from: str | None = None      # a brain file whose gene patterns the run starts from (evolve.prior)
    brain_from_sha256: str | None = None   # that file's SHA-256 when the run was configured
    library: list = field(default_factory=list)   # folders of proven code: macro-genes (evolve.library)
    library_sha256: str | None = None  # their macro-genes' digest when the run was configured
    selection: str = "lexicase"
    tournament_size: int = 4
    cxpb: float = 0.3
    mutpb: float = 0.9
    elite: int = 4
    n_train: int = 64
    n_valid: int = 10_000
    budget: int = 256
    hof_size: int = 10
    counterexamples: int = 8
    proof_timeout: float = 10.0
    checkpoint_every: int = 10
    stop_when_solved: bool = True
    optimize: float = 0.0              # seconds of the optimisation phase (evolve.optimize); 0: none
    cost: str = "length"               # what the optimisation phase minimises (evolve.cost)
    peephole: bool = True              # the optimisation phase's window enumeration (evolve.peephole)
    enumerate: bool = True             # one- and two-instruction programs enumerated alongside (evolve.enumeration)
    synth: bool = False                # SMT synthesis of short programs alongside (evolve.synth_tier; --synth)
    synth_encoding: str = "lines"      # its encoding: per-line forms, or components (multisets from sketches)
    restart_after: int = 0             # generations without better correctness before a fresh population; 0: never
    weights: dict = field(default_factory=lambda: asdict(fit.FitnessWeights()))

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """The configuration a checkpoint recorded; keys this version does not know are ignored
        (a checkpoint of a later version still resumes)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def validate(self) -> None:
        """Raise ValueError with one line for any nonsensical value."""
        checks = [
            (self.pop >= 2, f"--pop must be at least 2, got {self.pop}"),
            (self.generations is None or self.generations >= 1,
             f"--generations must be at least 1, got {self.generations}"),
            (self.time_limit is None or self.time_limit > 0, f"--time-limit must be positive, got {self.time_limit}"),
            (1 <= self.max_len <= 256, f"--max-len must be in [1, 256], got {self.max_len}"),
            (2 <= self.n_regs <= 8, f"--regs must be in [2, 8], got {self.n_regs}"),
            (self.seed >= 0, f"--seed must be non-negative, got {self.seed}"),
            (self.workers >= 1, f"--workers must be at least 1, got {self.workers}"),
            (self.selection in ("tournament", "lexicase"), "--selection must be tournament or lexicase"),
            (0 <= self.elite < self.pop, f"elite must be in [0, pop), got {self.elite}"),
            (self.n_train >= 8, f"n_train must be at least 8, got {self.n_train}"),
            (self.n_valid >= 1, f"n_valid must be at least 1, got {self.n_valid}"),
            (self.budget >= 1, f"budget must be at least 1, got {self.budget}"),
            (self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}"),
            (0 < self.proof_timeout <= 3600, f"--proof-timeout must be in (0, 3600] seconds, got {self.proof_timeout}"),
            (self.optimize >= 0, f"--optimize must be >= 0 seconds, got {self.optimize}"),
            (self.restart_after >= 0, f"--restart-after must be >= 0 generations, got {self.restart_after}"),
            (self.brain or not self.brain_from, "--brain-from needs the brain (not with --no-brain)"),
            (self.brain or not self.library, "--library needs the brain (not with --no-brain)"),
            (self.cost in METRICS, f"--cost must be one of {', '.join(METRICS)}, got {self.cost!r}"),
            (self.cost != "latency" or self.isa == "arm64",
             f"--cost latency models arm64 ({CORE}) only, not {self.isa}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except where there is none to show (None, False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of ``python -m evolve run`` (single and island runs)."""
    d = RunConfig()
    ap.add_argument("--task", default=d.task, help="built-in task name, path/file.py:function "
                    "(1-4 int arguments in [0, 2**64), result taken mod 2**64), or path/file.c:function "
                    "(compiled for aarch64; its machine code is the reference and the proof target; 1-4 "
                    "integer arguments of 8-64 bits, the result type's width is what is compared)")
    ap.add_argument("--cc", default=None, metavar="COMPILER",
                    help="with --task file.c:func: the C compiler (default: aarch64-linux-gnu-gcc on other "
                         "hosts, cc, gcc or clang on aarch64)")
    ap.add_argument("--cflags", default=None, metavar="FLAGS",
                    help="with --task file.c:func: the compiler's flags, one string (--cflags=-O0; default -O2)")
    ap.add_argument("--isa", default=d.isa, choices=["arm64", "x86_64"], help="instruction set to evolve")
    ap.add_argument("--backend", default=d.backend, choices=["auto", "emulated", "native"],
                    help="auto: native when the host runs the ISA, else the Unicorn emulator")
    ap.add_argument("--pop", type=int, default=d.pop, help="population size")
    ap.add_argument("--generations", type=int, default=None,
                    help=f"maximum generations (default: no cap when --time-limit is given, else {d.generations})")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help=f"stop after this much wall time, start to result.json, proofs and checkpoints "
                         f"included (default {d.time_limit:.0f}; 0 = no limit)")
    ap.add_argument("--max-len", type=int, default=d.max_len, help="maximum genome length (instructions)")
    ap.add_argument("--regs", type=int, default=d.n_regs, help="working registers (the first hold the inputs)")
    ap.add_argument("--selection", default=d.selection, choices=["lexicase", "tournament"],
                    help="parent selection: lexicase keeps specialists (shuffled cases), tournament by cost")
    ap.add_argument("--seed", type=int, default=d.seed, help="random seed (same seed, same run)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>_<task>)")
    ap.add_argument("--resume", type=Path, default=None, metavar="DIR", help="continue the run in DIR")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="with --resume: load the pickled checkpoint (checkpoint.pkl, islands.pkl) of an earlier "
                         "Melvin once, converting it; unpickling runs code from the folder: only your own")
    ap.add_argument("--workers", type=int, default=d.workers, help="evaluation worker processes")
    ap.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="K",
                    help="generations between checkpoints (one is also written at the end)")
    ap.add_argument("--proof-timeout", type=float, default=d.proof_timeout, metavar="SECONDS",
                    help="solver time per proof of a solution (independence, equivalence); on a "
                         "timeout the claim stands as tested, and result.json says so")
    ap.add_argument("--optimize", type=float, default=None, metavar="SECONDS",
                    help=f"after the first verified solution, search this long for an equivalent program that "
                         f"is cheaper by --cost; every cheaper one passes the same testing and proofs "
                         f"(default: {OPT_SHARE * 100:.0f}%% of --time-limit when it is given, else {OPT_SECONDS:g} s; 0 = off)")
    ap.add_argument("--cost", default=d.cost, metavar="METRIC",
                    help=f"what --optimize minimises: length (instructions, the return excluded) or latency "
                         f"(estimated {CORE} cycles, the critical path over register dependencies; arm64)")
    ap.add_argument("--restart-after", type=int, default=d.restart_after, metavar="G",
                    help="an unsolved run whose best correctness has not grown for G generations starts a fresh "
                         "random population (cases, counterexamples, hall of fame and brain kept); 0 = never")
    ap.add_argument("--no-enumerate", action="store_true",
                    help="no exhaustive enumeration of one- and two-instruction programs alongside the genetic "
                         "search (arm64; a share of each generation until done)")
    ap.add_argument("--synth", action=argparse.BooleanOptionalAction, default=d.synth,
                    help="SMT synthesis (CEGIS with z3) of straight-line programs of 1-8 instructions alongside "
                         "the genetic search (arm64; a share of each generation; default: %(default)s)")
    ap.add_argument("--synth-encoding", choices=("lines", "components"), default=d.synth_encoding,
                    help="with --synth: each line any of 21 forms (lines), or Gulwani et al.'s location variables "
                         "over multisets of forms sketched from the hall of fame (components); default: %(default)s")
    ap.add_argument("--no-peephole", action="store_true",
                    help="in --optimize, no enumeration of one-instruction replacements for windows of 2-4 "
                         "instructions of the best program (evolutionary search only)")
    ap.add_argument("--no-brain", action="store_true", help="plain DEAP: no brain guidance or reinforcement")
    ap.add_argument("--brain-from", default="auto", metavar="FILE",
                    help="start the brain from another run's gene patterns and their statistics (a brain file, "
                         "e.g. RUN/brain.safetensors or one `python -m evolve brain merge` wrote, or a run "
                         "folder), not its EXEC nodes; auto: the prior shipped for the ISA (evolve/priors/, "
                         "scripts/build_prior.py), if any; none: an empty brain")
    ap.add_argument("--library", default="none", metavar="DIRS",
                    help="macro-genes: proven programs inserted whole by mutation, registers renamed, credited "
                         "by the brain (comma-separated folders of genome records, e.g. genomes/, or of run "
                         "folders); auto: the repository's genomes/; none: no macro-genes")
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


#: --optimize's default: this share of a --time-limit given, else these seconds
OPT_SHARE, OPT_SECONDS = 0.25, 3.0


def _time_limit(seconds: float) -> float | None:
    """``--time-limit``'s value: 0 means no limit."""
    return None if seconds == 0 else seconds


def config_from_args(args) -> RunConfig:
    """The configuration of a new run from its command line (not yet validated).

    A time limit given on the command line is what ends the run: then ``--generations`` has no
    cap unless given, and ``--optimize`` defaults to a share of that limit; without one the
    generation cap and a few seconds of optimisation keep a plain run short."""
    d = RunConfig()
    if args.time_limit is not None and args.time_limit < 0:
        raise ValueError(f"--time-limit must be >= 0, got {args.time_limit}")
    limit = _time_limit(args.time_limit) if args.time_limit is not None else None
    generations = args.generations
    if generations is None:
        generations = None if limit is not None else d.generations
    optimize = getattr(args, "optimize", None)
    if optimize is None:
        optimize = OPT_SHARE * limit if limit is not None else OPT_SECONDS
    return RunConfig(task=args.task, cc=getattr(args, "cc", None), cflags=getattr(args, "cflags", None), isa=args.isa, backend=args.backend, pop=args.pop,
                     generations=generations, optimize=optimize, cost=getattr(args, "cost", d.cost),
                     peephole=not getattr(args, "no_peephole", False),
                     restart_after=getattr(args, "restart_after", d.restart_after),
                     enumerate=not getattr(args, "no_enumerate", False),
                     synth=getattr(args, "synth", d.synth),
                     synth_encoding=getattr(args, "synth_encoding", d.synth_encoding),
                     time_limit=d.time_limit if args.time_limit is None else limit,
                     max_len=args.max_len, n_regs=args.regs, seed=args.seed, workers=args.workers,
                     brain=not args.no_brain, selection=args.selection, stop_when_solved=not args.keep_going,
                     proof_timeout=args.proof_timeout, checkpoint_every=args.checkpoint_every,
                     **_brain_from(args), **_library(args))


def _brain_from(args) -> dict:
    """``--brain-from``'s fields: none, or the file checked (ValueError, one line) and its SHA-256."""
    value = getattr(args, "brain_from", None)
    if value is None or str(value).lower() == "none" or getattr(args, "no_brain", False):
        if value is not None and str(value).lower() not in ("none", "auto"):
            raise ValueError("--brain-from needs the brain (not with --no-brain)")
        return {}
    from evolve import prior
    if str(value).lower() == "auto":     # the shipped prior, when there is a usable one
        value = prior.shipped(args.isa)
        try:
            path, sha = prior.check(value, args.isa) if value is not None else (None, None)
        except ValueError as exc:       # e.g. the alphabet changed since it was built
            logging.getLogger(__name__).warning("shipped prior not used: %s", exc)
            path = sha = None
        return {"brain_from": path, "brain_from_sha256": sha} if path else {}
    path, sha = prior.check(value, args.isa)
    return {"brain_from": path, "brain_from_sha256": sha}


def _library(args) -> dict:
    """``--library``'s fields: the folders (ValueError, one line, for a bad one) and the digest
    of their macro-genes for this ISA; nothing without the brain or with ``none``."""
    from evolve import library
    value = getattr(args, "library", None)
    if getattr(args, "no_brain", False):
        if value is not None and str(value).lower() not in ("none", "auto"):
            raise ValueError("--library needs the brain (not with --no-brain)")
        return {}
    paths = library.resolve(value)
    if not paths:
        return {}
    from evolve.genes import alphabet_for
    lib = library.load(paths, alphabet_for(args.isa, n_regs=args.regs))
    return {"library": paths, "library_sha256": library.digest(lib)} if len(lib) else {}


def apply_resume_overrides(cfg: RunConfig, args) -> None:
    """What a resume may change in a checkpoint's configuration: the generation and time limits
    and the optimisation phase's seconds (everything else would make the continued run differ
    from an uninterrupted one)."""
    if args.generations is not None:
        cfg.generations = args.generations
    if args.time_limit is not None:
        cfg.time_limit = _time_limit(args.time_limit)
    if getattr(args, "optimize", None) is not None:
        cfg.optimize = args.optimize


def new_run_folder(args, task: str) -> Path:
    """The folder a new run writes (``--out`` or ``runs/<date-time>_<task>``); raises
    RunFolderError when it already holds a run, which only ``--resume`` may continue."""
    folder = args.out or rf.default_run_dir(task)
    if folder.exists() and any(folder.iterdir()):
        raise rf.RunFolderError(f"{str(folder)!r} already holds a run; use --resume {folder} or another --out")
    return folder


def fail(message: str) -> int:
    """Report a run that cannot start (or continue) in one line on stderr; the exit status, 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2
