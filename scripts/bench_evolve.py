#!/usr/bin/env python3
"""Evolution benchmarks (issue 4, 15): end-to-end evaluations/s, where they go, the brain ablation.

``run_evolve_benchmarks(quick)`` returns rows for ``scripts/bench.py``:

* evaluations/s of the engine (population 1000, genomes of up to 16 instructions, 64 cases,
  emulated, one core) against plain DEAP evaluating one genome at a time with one ``emu_start``
  per case, measured in the same run: the generation loop alone (``--no-enumerate``), and with
  the search work the engine runs beside it until a solution (``evolve.enumeration``: one- and
  two-instruction programs, the value bank), whose own cost per generation is a row apart;
* the same loop natively on x86-64 (sandbox worker), where the host can;
* a profile of a generation: CPU microseconds per evaluated genome by part (selection,
  variation, executor tiers, brain, book-keeping; :func:`profile_rows`), which
  ``python scripts/bench_evolve.py --profile N --against TREE`` also measures for another
  checkout (e.g. main's worktree: a "before" figure in the same run); ``scripts/bench.py``
  adds the other tree's loop rate and profile when ``BENCH_BEFORE=TREE`` is set;
* brain vs ``--no-brain`` over several seeds and built-in tasks: offspring crash rate and
  evaluations to a validated solution.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

# ``--root TREE``: profile another checkout (e.g. main's, for a "before" figure in the same run)
ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv[:-1] \
    else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from evolve.config import RunConfig  # noqa: E402
from evolve.engine import build  # noqa: E402


def _plain_deap_rate(n: int) -> float:
    """Evaluations/s of DEAP's usual shape: evaluate(individual) -> one emu_start per case."""
    import random

    from deap import base, creator, tools
    from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, UC_PROT_ALL, Uc, UcError
    from unicorn import arm64_const as A

    from evolve.genes import alphabet_for
    from evolve.tasks import get_task, training_cases

    alphabet = alphabet_for("arm64")
    task = get_task("avg")
    xs = training_cases(task, np.random.default_rng(0), 64)
    ys = task.expected(xs)
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    code_addr, stack, ret = 0x1000_0000, 0x2000_0000, 0x3000_0000
    for addr in (code_addr, stack, ret):
        uc.mem_map(addr, 1 << 16, UC_PROT_ALL)
    if not hasattr(creator, "BenchFitness"):
        creator.create("BenchFitness", base.Fitness, weights=(-1.0,))
        creator.create("BenchIndividual", list, fitness=creator.BenchFitness)
    rng = random.Random(0)

    def evaluate(ind):
        code = alphabet.encode(ind) + bytes.fromhex("c0035fd6")
        uc.mem_write(code_addr, code)
        uc.ctl_remove_cache(code_addr, code_addr + len(code))
        err = 0
        for (x, y), want in zip(xs.tolist(), ys.tolist()):
            uc.reg_write(A.UC_ARM64_REG_X0, x)
            uc.reg_write(A.UC_ARM64_REG_X1, y)
            uc.reg_write(A.UC_ARM64_REG_SP, stack + 0x8000)
            uc.reg_write(A.UC_ARM64_REG_X30, ret)
            try:
                uc.emu_start(code_addr, ret, 0, 10_000)
                err += bin(uc.reg_read(A.UC_ARM64_REG_X0) ^ want).count("1")
            except UcError:
                err += 64
        return (err,)

    tb = base.Toolbox()
    tb.register("evaluate", evaluate)
    pop = [creator.BenchIndividual(alphabet.random_gene(rng) for _ in range(rng.randint(8, 16))) for _ in range(n)]
    tb.evaluate(pop[0])   # warm-up: first-call costs (the encoder's JIT load) are not DEAP's
    t0 = time.perf_counter()
    for ind, fit in zip(pop, map(tb.evaluate, pop)):
        ind.fitness.values = fit
    tools.selTournament(pop, len(pop), 3)
    return n / (time.perf_counter() - t0)


def _engine_rate(generations: int, isa: str = "arm64", backend: str = "emulated", enum: bool = True) -> dict:
    """The engine as ``python -m evolve run`` drives it: start-up (cases, first population and
    its evaluation) then ``generations`` generations, on one core (emulated arm64 by default);
    ``enum``: with the enumeration and bank's share of each generation (the default of a
    run; it stops once a solution is proven). ``search``: CPU seconds of that share."""
    from evolve import enumeration
    cfg = RunConfig(task="avg", pop=1000, generations=generations, time_limit=None, init_len=16, isa=isa,
                    backend=backend, seed=0, stop_when_solved=False, enumerate=enum)
    engine = build(cfg)
    search = [0.0]
    step = enumeration.generation_step

    def timed_step(eng):
        c0 = time.thread_time()
        try:
            return step(eng)
        finally:
            search[0] += time.thread_time() - c0
    enumeration.generation_step = timed_step
    try:
        t0 = time.perf_counter()
        engine.start()
        t1, c1 = time.perf_counter(), time.thread_time()
        first = engine.evaluations
        search[0] = 0.0
        for _ in range(generations):
            engine.step()
        t2, c2 = time.perf_counter(), time.thread_time()
    finally:
        enumeration.generation_step = step
        engine.evaluator.close()
    return {"end_to_end": engine.evaluations / (t2 - t0), "steady": (engine.evaluations - first) / (t2 - t1),
            "cpu": (engine.evaluations - first) / (c2 - c1), "search": search[0],
            "solved_at": next((m["gen"] for m in engine.metrics if m["solved"]), None),
            "mean_len": float(engine.rows.length.mean()), "generations": generations}


def _other_tree(args: list[str], other: str) -> dict:
    """This script's JSON mode (``--rate-json``, ``--profile-json``) run on checkout ``other``."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, __file__, *args, "--root", other],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


#: (label, module, owner, function): what the profile times; each part's time excludes the
#: parts it calls, so the parts add up to the generation (the parts in :data:`INCLUSIVE` take
#: in what they call instead). Absent functions (another tree) are skipped.
PARTS = (
    ("gene draw table (brain patterns)", "evolve.engine", "Engine", "_draw_table"),
    ("lineage records", "evolve.engine", "Engine", "_register"),
    ("encoding", "evolve.genes", "Alphabet", "encode_array"),
    ("executor: interpreter", "core.executors.tiered", None, "interpret"),
    ("executor: Unicorn triage", "core.executors.tiered", "TieredExecutor", "_lanes"),
    ("executor: Unicorn fast lane", "core.executors.unicorn.engine", "UnicornEngine", "run_fast"),
    ("executor: Unicorn slow lane", "core.executors.unicorn.engine", "UnicornEngine", "run_slow"),
    ("executor: other", "core.executors.tiered", "TieredExecutor", "run"),
    ("fitness", "evolve.fitness", None, "case_errors"),
    ("fitness", "evolve.fitness", None, "costs"),
    ("brain: the rule", "core.brain.graph", "Brain", "reinforce"),
    ("brain: the rule", "core.brain.graph", "Brain", "reinforce_stats"),
    ("brain: the rule", "core.brain.graph", "Brain", "node_stats"),
    ("brain: gene patterns", "evolve.engine", "Engine", "_observe_fresh_genes"),
    ("brain: add EXEC nodes", "core.brain.graph", "Brain", "add_exec_nodes"),
    ("brain: remove EXEC nodes", "core.brain.graph", "Brain", "remove_exec_nodes"),
    ("validation", "evolve.engine", "Engine", "_validate_rows"),
    ("hall of fame", "evolve.engine", "Engine", "_update_hof"),
    ("generation end (metrics, clean-up)", "evolve.engine", "Engine", "_after_generation"),
    ("search: enumeration and bank (its executor calls included)", "evolve.enumeration", None, "generation_step"),
    ("generation (the rest: rows, copies)", "evolve.engine", "Engine", "step"),
)


#: labels timed with everything they call (the search work runs the executor too: its own share)
INCLUSIVE = {"search: enumeration and bank (its executor calls included)"}


def profile_generations(generations: int, seed: int = 0, enum: bool = False) -> dict:
    """Seconds per part (:data:`PARTS`) over ``generations`` generations after the first
    population and two more, pop 1000, 64 cases, emulated arm64, one core (``enum``: with
    the search work beside the loop, as a run has it until a solution); ``{"parts", "evaluations",
    "seconds", "wall"}``. Timers wrap the functions (~1 us a call, a few dozen calls a generation)
    and read the thread's CPU clock, which other jobs on a shared machine inflate far less than
    the wall clock (``wall``: the generations' wall seconds)."""
    import importlib

    totals: dict[str, float] = {}
    stack: list[list[float]] = []       # per active timer: [time of its children]

    folding = [0]                       # inside an INCLUSIVE part: its callees are its own

    def timed(label, fn):
        inclusive = label in INCLUSIVE

        def wrapper(*args, **kw):
            if folding[0]:
                return fn(*args, **kw)
            folding[0] += inclusive
            stack.append([0.0])
            t0 = time.thread_time()
            try:
                return fn(*args, **kw)
            finally:
                dt = time.thread_time() - t0
                folding[0] -= inclusive
                children = stack.pop()[0]
                totals[label] = totals.get(label, 0.0) + dt - children
                if stack:
                    stack[-1][0] += dt
        return wrapper

    cfg = RunConfig(task="avg", pop=1000, generations=generations, time_limit=None, init_len=16,
                    backend="emulated", seed=seed, stop_when_solved=False, enumerate=enum)
    engine = build(cfg)
    engine.start()
    for _ in range(2):        # warm-up: kernels a tree has not compiled yet (its Numba cache)
        engine.step()
    undo = []
    for label, module, owner, name in PARTS:
        mod = importlib.import_module(module)
        obj = getattr(mod, owner) if owner else mod
        if name in vars(obj):
            undo.append((obj, name, vars(obj)[name]))
            setattr(obj, name, timed(label, vars(obj)[name]))
    # the toolbox's select/vary are set on the instance (DEAP registers partials)
    for name, label in (("select", "selection"), ("vary", "variation")):
        setattr(engine.toolbox, name, timed(label, getattr(engine.toolbox, name)))
    try:
        n0, t0, w0 = engine.evaluations, time.thread_time(), time.perf_counter()
        for _ in range(generations):
            engine.step()
        seconds, wall = time.thread_time() - t0, time.perf_counter() - w0
    finally:
        for obj, name, fn in undo:
            setattr(obj, name, fn)
        engine.evaluator.close()
    return {"parts": totals, "evaluations": engine.evaluations - n0, "seconds": seconds, "wall": wall,
            "solved": engine.solved is not None}


def profile_rows(generations: int, other: str | None = None, enum: bool = False) -> list[dict]:
    """The profile as bench rows (microseconds per evaluated genome, the biggest parts first);
    with ``other`` (a checkout, e.g. main's worktree) its profile too, measured in this run."""
    flag = ["--enumerate"] if enum else []
    runs = [("", profile_generations(generations, enum=enum))]
    if other:
        runs.append((f" [{Path(other).name}]", _other_tree(["--profile-json", str(generations), *flag], other)))
    rows = []
    for tag, prof in runs:
        n = prof["evaluations"]
        rate = n / prof["seconds"]
        rows.append({"name": f"evolve profile{tag}: generations timed (CPU)", "value": rate, "unit": "evals/s",
                     "baseline": None, "ratio": None,
                     "notes": f"{generations} generations after the third, {n} evaluations, "
                              f"{1e6 * prof['seconds'] / n:.2f} us CPU per genome in all (timers included); "
                              f"wall {n / prof['wall']:,.0f} evals/s; search work "
                              f"{'on' if enum else 'off (--no-enumerate)'}"})
        for label, sec in sorted(prof["parts"].items(), key=lambda kv: -kv[1]):
            rows.append({"name": f"evolve profile{tag}: {label}", "value": 1e6 * sec / n, "unit": "us CPU/genome",
                         "baseline": None, "ratio": None,
                         "notes": f"{100 * sec / prof['seconds']:.1f}% of the generation time"})
    if other:       # after against before, same run
        rows[0]["baseline"], rows[0]["ratio"] = runs[1][1]["evaluations"] / runs[1][1]["seconds"], None
        rows[0]["ratio"] = rows[0]["value"] / rows[0]["baseline"]
    return rows


def _ablation(tasks, seeds, time_limit: float, generations: int = 400) -> list[dict]:
    rows = []
    for brain in (True, False):
        crash, evals, solved = [], [], 0
        for task in tasks:
            for seed in seeds:
                cfg = RunConfig(task=task, pop=300, generations=generations, time_limit=time_limit, seed=seed,
                                brain=brain, backend="emulated")
                engine = build(cfg)
                engine.start()
                while engine.solved is None and engine.gen < cfg.generations and engine.elapsed < time_limit:
                    engine.step()
                engine.evaluator.close()
                rates = [m["offspring_crash_rate"] for m in engine.metrics[1:]]
                crash.append(float(np.mean(rates)) if rates else 0.0)
                if engine.solved is not None:
                    solved += 1
                # an unsolved run counts as never solving (a censored median, not one of the
                # solved runs only, which would favour the side that solves fewer)
                evals.append(engine.evaluations if engine.solved is not None else float("inf"))
        label = "brain" if brain else "no brain"
        rows.append({"name": f"evolve ablation {label}: offspring crash rate", "value": 100 * statistics.mean(crash),
                     "unit": "%", "baseline": None, "ratio": None,
                     "notes": f"mean over {len(crash)} runs ({', '.join(tasks)}; seeds {list(seeds)})"})
        rows.append({"name": f"evolve ablation {label}: evaluations to solution (median, unsolved = inf)",
                     "value": statistics.median(evals) if evals else float("nan"), "unit": "evals",
                     "baseline": None, "ratio": None,
                     "notes": f"{solved}/{len(crash)} runs solved within {generations} generations and {time_limit:.0f} s; per run: "
                              + ", ".join("-" if e == float("inf") else f"{e:.0f}" for e in evals)})
    for metric in (0, 1):
        with_brain, without = rows[metric], rows[metric + 2]
        if without["value"] and without["value"] == without["value"] and without["value"] != float("inf"):
            with_brain["baseline"] = without["value"]
            with_brain["ratio"] = with_brain["value"] / without["value"]
    return rows


def run_evolve_benchmarks(quick: bool) -> list[dict]:
    import os
    before = os.environ.get("BENCH_BEFORE")      # another checkout (e.g. main's): its figures too
    # the baseline is short and noisy (one emu_start per case): the median of three
    plain = statistics.median(_plain_deap_rate(60 if quick else 400) for _ in range(3))
    # 30 generations of pop 1000 take ~1 s: enough for the start-up (Numba loading its cached
    # kernels, ~1 s once per process) to weigh as it does in a short run, not to dominate
    gens = 4 if quick else 30
    loop = _engine_rate(gens, enum=False)
    eng = _engine_rate(gens)
    note = (f"emulated arm64, mean genome length {loop['mean_len']:.1f}; baseline: DEAP evaluate() per "
            f"individual with one emu_start per case ({plain:,.0f} evals/s)")
    rows = [{"name": "evolve end-to-end evaluations/s, the generation loop (pop 1000, 64 cases, 1 core)",
             "value": loop["steady"], "unit": "evals/s", "baseline": plain, "ratio": loop["steady"] / plain,
             "notes": note + f"; --no-enumerate: selection, variation, evaluation, brain, validation, "
                             f"book-keeping over {gens} generations (CPU: {loop['cpu']:,.0f} evals/s)"}]
    if before:
        old = _other_tree(["--rate-json", str(gens)], before)
        rows.append({"name": f"evolve end-to-end evaluations/s, the generation loop [{Path(before).name}]",
                     "value": old["steady"], "unit": "evals/s", "baseline": None, "ratio": None,
                     "notes": f"the same loop on {before}, this run (CPU: {old['cpu']:,.0f} evals/s); "
                              f"after/before x{loop['steady'] / old['steady']:.2f} (CPU x{loop['cpu'] / old['cpu']:.2f})"})
    rows += [{"name": "evolve evaluations/s with the search work beside the loop (enumeration, bank)",
              "value": eng["steady"], "unit": "evals/s", "baseline": loop["steady"], "ratio": eng["steady"] / loop["steady"],
              "notes": f"a run's default over {gens} generations (solved at generation {eng['solved_at']}: the "
                       f"search stops there; the solution's held-out tests and z3 proofs are in it); baseline: the loop"},
             {"name": "evolve search work per generation (enumeration + bank, executor included)",
              "value": 1e3 * eng["search"] / gens, "unit": "ms CPU", "baseline": None, "ratio": None,
              "notes": f"{100 * eng['search'] / (eng['generations'] * 1000 / eng['cpu']):.0f}% of those generations' CPU "
                       f"({eng['search']:.2f} s over {gens}); search, not the loop's cost per genome"},
             {"name": f"evolve evaluations/s with the process start-up, over {eng['generations']} generations",
              "value": eng["end_to_end"], "unit": "evals/s", "baseline": plain, "ratio": eng["end_to_end"] / plain,
              "notes": note + "; start-up: cases, first population, Numba loading its cached kernels (~1 s), search on"}]
    from core.executors import native_available
    from core.isa import get_isa
    if native_available(get_isa("x86_64")):
        nat = _engine_rate(gens, "x86_64", "native", enum=False)
        rows.append({"name": "evolve evaluations/s natively, x86-64 (pop 1000, 64 cases, 1 worker)",
                     "value": nat["steady"], "unit": "evals/s", "baseline": loop["steady"],
                     "ratio": nat["steady"] / loop["steady"],
                     "notes": f"mean genome length {nat['mean_len']:.1f}; --no-enumerate; baseline: the emulated arm64 loop above"})
    # where a generation's time per genome goes (issue 15): this tree's profile (and the other's)
    rows += profile_rows(4 if quick else 10, before)
    tasks = ("clear_lowest", "max") if quick else ("clear_lowest", "max", "isolate_lowest", "propagate_lowest")
    seeds = range(2) if quick else range(4)
    return rows + _ablation(tasks, seeds, 20.0 if quick else 45.0)


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="scripts/bench.py runs every section; its --json writes the rows.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    ap.add_argument("--enumerate", action="store_true", help="profile and rate with the search on")
    ap.add_argument("--profile", type=int, metavar="G", help="only the profile rows, over G generations")
    ap.add_argument("--against", metavar="TREE", help="with --profile: that checkout's profile too, same run")
    ap.add_argument("--profile-json", type=int, metavar="G", help="one profile as JSON (what --against runs)")
    ap.add_argument("--rate-json", type=int, metavar="G", help="the loop's rate as JSON")
    ap.add_argument("--root", metavar="TREE", help="import the project from TREE instead of this checkout")
    args = ap.parse_args()
    if args.profile_json is not None:
        print(json.dumps(profile_generations(args.profile_json, enum=args.enumerate)))
    elif args.rate_json is not None:
        print(json.dumps(_engine_rate(args.rate_json, enum=args.enumerate)))
    elif args.profile is not None:
        for row in profile_rows(args.profile, args.against, args.enumerate):
            ratio = f" x{row['ratio']:.2f} of [{Path(args.against).name}]" if row.get("ratio") else ""
            print(f"{row['name']:<66} {row['value']:>10,.2f} {row['unit']:<10} {row['notes']}{ratio}")
    else:
        for row in run_evolve_benchmarks(args.quick):
            print(row)
