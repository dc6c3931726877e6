"""Island-model evolution on Dask distributed, surviving lost workers: the coordinator.

N island engines evolve as Dask tasks (:mod:`evolve.island_task`). Between epochs the
coordinator (this process) moves migrants along a ring with DEAP's ``tools.migRing`` (the best M
of island i replace the emigrants of island i+1, and are re-evaluated there) and hands every
island the deltas of all the others, merged with ``PatternTable.merge``: each observation is
counted once, so what one island learnt to suppress weighs on the others' gene draws.

Fault tolerance: the coordinator keeps every island's last checkpoint. A worker that dies
mid-task (SIGKILL, power loss) makes the scheduler run the task again on another worker; if the
scheduler gives up (``KilledWorker``) the coordinator resubmits it from the same checkpoint. Each
task start is logged as a Dask event, so the record (``islands.json``) says which task ran where
and which ran twice.

Determinism: migrations happen at fixed generations and merges in island order, and a task's
result depends only on its inputs: the same seed gives the same run whatever the number of
workers and whichever worker runs which island.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from evolve import config as C
from evolve import prior
from evolve import results as R
from evolve import runfolder as rf
from evolve import verify
from evolve.config import RunConfig
from evolve.genes import alphabet_for
from evolve.island_task import (EVENT_TOPIC, advance_island, blob_parts, island_config, island_seed, pack_state,
                                parts_blob, unpack_island)
from evolve import taskspec
from evolve.tasks import TaskError

log = logging.getLogger(__name__)

#: Coordinator checkpoint (every island's checkpoint plus the pending migrants and deltas): this
#: JSON document and the arrays file it names (``islands-checkpoint-<gen>-<sha>.safetensors``).
STATE = "islands-checkpoint.json"
#: The pickled coordinator checkpoint of earlier versions (read only with ``--trust-pickle``).
LEGACY_STATE = "islands.pkl"
_STEM = "islands-checkpoint"
_DELTA_ARRAYS = ("tokens", "length", "count", "last_seen", "n_ok", "n_crash", "success_rate", "threshold_ratio",
                 "n_improved")
#: Resubmissions of one island task after the scheduler gave up on it, before the run fails.
MAX_ATTEMPTS = 4


class IslandError(RuntimeError):
    """A scheduler that cannot be reached or a task that keeps failing; one-line message."""


@dataclass
class IslandOptions:
    """How islands are laid out and exchange (written to config.json)."""

    islands: int = 2
    scheduler: str = "local"
    migration_every: int = 5
    migrants: int = 5

    def validate(self, pop: int) -> None:
        """Raise ValueError with one line for a nonsensical value."""
        if self.islands < 1:
            raise ValueError(f"--islands must be at least 1, got {self.islands}")
        if self.migration_every < 1:
            raise ValueError(f"--migration-every must be at least 1, got {self.migration_every}")
        if not 0 <= self.migrants < pop:
            raise ValueError(f"--migrants must be in [0, pop), got {self.migrants}")
        if self.scheduler != "local" and not self.scheduler.startswith(("tcp://", "tls://")):
            raise ValueError(f"--scheduler must be 'local' or tcp://HOST:PORT, got {self.scheduler!r}")


# --------------------------------------------------------------------- the coordinator
def connect(scheduler: str, timeout: float = 8.0, n_workers: int | None = None):
    """``(client, cluster or None)``: a LocalCluster (one single-threaded worker process per core,
    loopback only) for ``"local"``, else a client of the scheduler at ``scheduler``.

    Raises IslandError within ``timeout`` seconds when the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster
    if scheduler == "local":
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, host="127.0.0.1", dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout=timeout), None
    except (OSError, TimeoutError) as exc:
        raise IslandError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:.0f} s "
                          f"({type(exc).__name__}); is `dask scheduler` running there?") from None


@dataclass
class IslandRun:
    """The coordinator's state: enough to resume exactly (:func:`save_state` writes it as JSON
    and arrays; the record's epoch lines are ``metrics.jsonl``'s, per-island lines are only in
    ``island-NN/metrics.jsonl``)."""

    cfg: RunConfig
    opts: IslandOptions
    epoch: int = 0
    gen: int = 0
    blobs: list | None = None
    immigrants: list | None = None       # per island: gene lists arriving at its next task
    replace_uids: list | None = None     # per island: uids those immigrants replace
    deltas: list | None = None           # per island: its last delta, for the others
    solved: list | None = None
    record: dict | None = None
    elapsed: float = 0.0
    pending: list | None = None          # per island: metrics lines of the last epoch, not yet written

    def __post_init__(self) -> None:
        n = self.opts.islands
        self.blobs = self.blobs or [None] * n
        self.immigrants = self.immigrants or [[] for _ in range(n)]
        self.replace_uids = self.replace_uids or [[] for _ in range(n)]
        self.deltas = self.deltas or [None] * n
        self.solved = self.solved or [False] * n
        self.record = self.record or {"epochs": [], "migrations": [], "events": []}
        self.pending = self.pending or [[] for _ in range(n)]

    def finished(self) -> bool:
        """The single run's stop test, once the first epoch has run."""
        return self.epoch > 0 and R.should_stop(self.cfg, any(self.solved), self.gen, self.elapsed)

    def step(self, client) -> dict:
        """One epoch: every island advances to the next migration generation, then migrants move
        and deltas are handed out. Returns the epoch's record line."""
        from deap import tools
        t0 = time.perf_counter()
        n, opts, cfg = self.opts.islands, self.opts, self.cfg
        until = self.gen + opts.migration_every
        if cfg.generations is not None:
            until = min(until, cfg.generations)
        left = None if cfg.time_limit is None else max(0.0, cfg.time_limit - self.elapsed)
        args = []
        for i in range(n):
            peers = [self.deltas[j] for j in range(n) if j != i and self.deltas[j] is not None]
            args.append((island_config(cfg, i), i, self.epoch, self.blobs[i], until, self.immigrants[i],
                         self.replace_uids[i], peers, opts.migrants, left))
        results = _run_tasks(client, args, self.record["events"], self.epoch)
        seen_workers = _task_starts(client, self.epoch, n)
        for i, res in enumerate(results):
            self.blobs[i] = res["blob"]
            self.deltas[i] = res["delta"]
            self.solved[i] = res["solved"]
            self.pending[i] = res["metrics"]
        # DEAP's ring: the best M of island i go to island i+1 in place of that island's own
        # emigrants. migRing works on the lists in place; handing it the emigrant lists gives
        # each island the list it receives.
        outgoing = [list(res["emigrants"]) for res in results]
        arriving = [list(x) for x in outgoing]
        if n > 1 and opts.migrants > 0:
            tools.migRing(arriving, opts.migrants, selection=lambda pop, k: pop[:k])
        for i in range(n):
            if n > 1 and opts.migrants > 0:
                self.immigrants[i] = [genes for genes, _, _ in arriving[i]]
                self.replace_uids[i] = [uid for _, uid, _ in outgoing[i]]
            else:
                self.immigrants[i], self.replace_uids[i] = [], []
        if n > 1 and opts.migrants > 0:
            self.record["migrations"].append({
                "epoch": self.epoch, "after_gen": max(r["gen"] for r in results),
                "moves": [{"from": (i - 1) % n, "to": i, "uids": [u for _, u, _ in arriving[i]],
                           "costs_at_source": [c for _, _, c in arriving[i]],
                           "replaced_uids": self.replace_uids[i]} for i in range(n)]})
        self.gen = max(r["gen"] for r in results)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        line = {"epoch": self.epoch, "gen": self.gen, "seconds": round(dt, 3),
                "task_seconds": [round(r["seconds"], 3) for r in results],
                "evaluations": [r["evaluations"] for r in results],
                "best_cost": [r["metrics"][-1]["best_cost"] if r["metrics"] else None for r in results],
                "solved": list(self.solved), "workers": seen_workers,
                "delta_patterns": [len(r["delta"]) if r["delta"] is not None else 0 for r in results],
                "arrived": [r["arrived"] for r in results]}
        self.record["epochs"].append(line)
        self.epoch += 1
        return line


def _task_starts(client, epoch: int, n: int) -> list:
    """Per island, the workers its task of ``epoch`` started on (two or more: it was re-run)."""
    starts: dict = {}
    for _, msg in client.get_events(EVENT_TOPIC):
        if isinstance(msg, dict) and msg.get("epoch") == epoch:
            starts.setdefault(msg["island"], []).append(msg["worker"])
    return [starts.get(i, []) for i in range(n)]


def _run_tasks(client, args: list, events: list, epoch: int) -> list:
    """Submit one task per island and collect the results, resubmitting a task from the same
    checkpoint when its worker was lost and the scheduler gave up on it."""
    from distributed import wait
    from distributed.client import FutureCancelledError
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:     # pragma: no cover - older layouts
        from distributed import KilledWorker
    lost_types = (KilledWorker, FutureCancelledError, OSError, TimeoutError)
    attempts = [1] * len(args)
    futures = {client.submit(advance_island, *a, pure=False, retries=1,
                             key=f"island-{a[1]}-epoch-{epoch}-try-1"): i for i, a in enumerate(args)}
    results: list = [None] * len(args)
    workers = set(client.scheduler_info()["workers"])
    while futures:
        try:
            done, _ = wait(list(futures), timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:    # nothing finished: a chance to look at the workers
            done = []
        now = set(client.scheduler_info()["workers"])
        for gone in sorted(workers - now):
            events.append({"time": time.time(), "epoch": epoch, "event": "worker_lost", "worker": gone})
            log.warning("worker %s lost during epoch %d", gone, epoch)
        for new in sorted(now - workers):
            events.append({"time": time.time(), "epoch": epoch, "event": "worker_joined", "worker": new})
        workers = now
        for fut in done:
            i = futures.pop(fut)
            try:
                results[i] = fut.result()
            except lost_types as exc:
                attempts[i] += 1
                if attempts[i] > MAX_ATTEMPTS:
                    raise IslandError(f"island {i} failed {MAX_ATTEMPTS} times in epoch {epoch}: {exc}") from None
                events.append({"time": time.time(), "epoch": epoch, "event": "resubmitted", "island": i,
                               "attempt": attempts[i], "reason": type(exc).__name__})
                futures[client.submit(advance_island, *args[i], pure=False, retries=1,
                                      key=f"island-{i}-epoch-{epoch}-try-{attempts[i]}")] = i
    return results


# --------------------------------------------------------------------- run folder and command line
def _island_metrics(folder: Path, i: int) -> Path:
    return folder / f"island-{i:02d}" / rf.METRICS


def _save(run: IslandRun, folder: Path) -> None:
    """Metrics lines appended and fsynced, then the coordinator checkpoint, then the record."""
    for i, lines in enumerate(run.pending):
        (folder / f"island-{i:02d}").mkdir(exist_ok=True)
        with rf.MetricsLog(_island_metrics(folder, i)) as out:
            for line in lines:
                out.append(line)
        run.pending[i] = []
    with rf.MetricsLog(folder / rf.METRICS) as out:
        out.append(run.record["epochs"][-1])
    save_state(run, folder)
    record = dict(run.record)
    # The short answer to "what happened": every island task that started more than once.
    record["reruns"] = [{"epoch": line["epoch"], "island": i, "workers": w}
                        for line in run.record["epochs"] for i, w in enumerate(line["workers"]) if len(w) > 1]
    rf.write_json(folder / "islands.json", dict(record, options=asdict(run.opts), epoch=run.epoch, gen=run.gen,
                                                seeds=[island_seed(run.cfg.seed, i) for i in range(run.opts.islands)]))


def save_state(run: IslandRun, folder: Path) -> None:
    """The coordinator checkpoint: ``islands-checkpoint.json`` (configuration, epoch, migrants,
    the record's migrations and events, each island's checkpoint document) and its arrays
    (``island-NN/<name>``: each island's arrays, ``delta-NN/<name>``: its last pattern delta),
    committed as :func:`evolve.runfolder.write_checkpoint` does."""
    arrays, islands, deltas = {}, [], []
    for i, (blob, delta) in enumerate(zip(run.blobs, run.deltas)):
        doc = None
        if blob is not None:
            doc, parts = blob_parts(blob)
            arrays.update({f"island-{i:02d}/{k}": v for k, v in parts.items()})
        islands.append(doc)
        deltas.append(None if delta is None else {"config": asdict(delta.config)})
        if delta is not None:
            arrays.update({f"delta-{i:02d}/{k}": getattr(delta, k) for k in _DELTA_ARRAYS})
    doc = {"format": "melvin-islands", "version": 1, "config": asdict(run.cfg), "options": asdict(run.opts),
           "epoch": run.epoch, "gen": run.gen, "elapsed": run.elapsed, "solved": run.solved,
           "immigrants": run.immigrants, "replace_uids": run.replace_uids,
           "record": {k: v for k, v in run.record.items() if k != "epochs"}, "islands": islands, "deltas": deltas}
    rf.write_checkpoint(folder, _STEM, doc, arrays, run.gen)


def load_state(folder: Path) -> IslandRun:
    """The :class:`IslandRun` of :func:`save_state`, its metrics files cut back to it
    (:func:`evolve.runfolder.resume_metrics`); RunFolderError with one line on any defect."""
    from core.brain.params import PatternConfig
    from core.brain.patterns import PatternDelta
    doc, arrays = rf.read_checkpoint(folder, _STEM)
    try:
        if doc.get("format") != "melvin-islands" or doc.get("version") != 1:
            raise ValueError("not a Melvin island checkpoint of a known version")
        n = len(doc["islands"])
        blobs = [None if d is None else parts_blob(d, {k.split("/", 1)[1]: v for k, v in arrays.items()
                                                       if k.startswith(f"island-{i:02d}/")})
                 for i, d in enumerate(doc["islands"])]
        deltas = [None if d is None else PatternDelta(PatternConfig(**d["config"]),
                                                      **{k: arrays[f"delta-{i:02d}/{k}"] for k in _DELTA_ARRAYS
                                                         if f"delta-{i:02d}/{k}" in arrays or k != "n_improved"})
                  for i, d in enumerate(doc["deltas"])]
        run = IslandRun(RunConfig.from_dict(doc["config"]), IslandOptions(**doc["options"]), doc["epoch"], doc["gen"],
                        blobs, [[[tuple(g) for g in genome] for genome in isl] for isl in doc["immigrants"]],
                        doc["replace_uids"], deltas, doc["solved"], dict(doc["record"], epochs=[]), doc["elapsed"])
        if n != run.opts.islands:
            raise ValueError(f"{n} island checkpoints for {run.opts.islands} islands")
        gens = [d["gen"] if d is not None else None for d in doc["islands"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise rf.RunFolderError(f"{str(folder / STATE)!r} is unusable ({type(exc).__name__}: {exc})") from None
    _cut_metrics(run, folder, gens)
    return run


def _cut_metrics(run: IslandRun, folder: Path, gens: list) -> None:
    """The record's epoch lines from ``metrics.jsonl`` and every metrics file cut back to the
    checkpoint (lines a killed run wrote after it are written again)."""
    run.record["epochs"] = rf.resume_metrics(folder / rf.METRICS, "epoch", run.epoch - 1)
    for i, gen in enumerate(gens):
        if gen is not None:
            rf.resume_metrics(_island_metrics(folder, i), "gen", gen)


def _load_trusted_pickle(folder: Path) -> IslandRun:
    """An earlier version's ``islands.pkl`` (only with ``--trust-pickle``: unpickling runs
    whatever the file says), its island checkpoints converted to this version's."""
    import pickle
    import zlib
    try:
        old = pickle.loads((folder / LEGACY_STATE).read_bytes())
        blobs = []
        for blob in old.blobs:
            data = pickle.loads(blob) if blob is not None else None
            blobs.append(None if data is None else pack_state(
                data["state"], zlib.decompress(data["brain"]) if data["brain"] is not None else None))
        record = {k: v for k, v in old.record.items() if k != "metrics"}
        run = IslandRun(old.cfg, old.opts, old.epoch, old.gen, blobs, old.immigrants, old.replace_uids, old.deltas,
                        old.solved, record, old.elapsed)
    except Exception as exc:
        raise rf.RunFolderError(f"{str(folder / LEGACY_STATE)!r} is unusable ({type(exc).__name__})") from None
    _cut_metrics(run, folder, [unpack_island(b)[0]["gen"] if b is not None else None for b in blobs])
    return run


def is_island_folder(folder: Path) -> bool:
    """Whether ``folder`` holds an island run's checkpoint (of this version or an earlier one)."""
    return (Path(folder) / STATE).is_file() or (Path(folder) / LEGACY_STATE).is_file()


def finish(run: IslandRun, folder: Path) -> dict:
    """result.json, hall_of_fame.json (all islands), best.s and each island's brain file."""
    alphabet = alphabet_for(run.cfg.isa, n_regs=run.cfg.n_regs)
    task = taskspec.get_task(run.cfg.task, cc=run.cfg.cc, cflags=run.cfg.cflags)
    solved, fame, evaluations, n_train, refuted = [], [], 0, [], 0
    for i, blob in enumerate(run.blobs):
        state, brain = unpack_island(blob)
        evaluations += state["evaluations"]
        n_train.append(int(len(state["train_y"])))
        if state["solved"] is not None:
            solved.append((i, state["solved"], state.get("verification")))
        refuted += state.get("refuted", 0)
        fame.extend((ind.fitness.values[0], i, ind.uid, ind) for ind in state["hof"])
        if brain is not None:
            brain.save(folder / f"island-{i:02d}" / rf.BRAIN_FILE, {"task": task.name, "island": i,
                                                                   **prior.metadata(run.cfg)})
    fame.sort(key=lambda x: x[:3])
    best_island, best, verification = solved[0] if solved else (fame[0][1], fame[0][3], None)
    result = {"task": task.name, "isa": run.cfg.isa, "solved": bool(solved), "solved_by": [i for i, _, _ in solved],
              "best": R.genome_record(alphabet, best, best_island), "evaluations": evaluations,
              "generations": run.gen, "epochs": run.epoch, "seconds": round(run.elapsed, 3), "n_train": n_train,
              "seed": run.cfg.seed, "islands": run.opts.islands, "brain": run.cfg.brain,
              "workers_lost": sum(e["event"] == "worker_lost" for e in run.record["events"]),
              "tasks_rerun": sum(sum(len(w) > 1 for w in line["workers"]) for line in run.record["epochs"]),
              "tasks_resubmitted": sum(e["event"] == "resubmitted" for e in run.record["events"]),
              "verification": verification, "claims_refused_by_proof": refuted}
    header = R.best_header(task, run.cfg, bool(solved), island=best_island, n_islands=run.opts.islands,
                           verification=verification)
    proven = {(i, tuple(ind)): v for i, ind, v in solved}
    R.write_results(folder, result, [R.genome_record(alphabet, ind, i, proven.get((i, tuple(ind))))
                                     for _, i, _, ind in fame[:run.cfg.hof_size]], header)
    lines = [rf.read_metrics(_island_metrics(folder, i)) for i in range(run.opts.islands)]
    for i, own in enumerate(lines):
        if own:
            rf.plot_progress(folder / f"island-{i:02d}", own, f"fitness, island {i}")
    if lines[best_island]:
        rf.plot_progress(folder, lines[best_island], f"fitness, island {best_island} (the best)")
    return result


def run_islands(run: IslandRun, folder: Path, client, quiet: bool = True, stop: list | None = None) -> int:
    """Epochs until the run is finished (or ``stop`` is non-empty); checkpoints after each.
    Returns 0, or 128 + the signal's number when stopped early (130: Ctrl-C, 143: SIGTERM)."""
    stop = stop if stop is not None else []
    while not run.finished() and not stop:
        line = run.step(client)
        t0 = time.perf_counter()
        _save(run, folder)
        run.elapsed += time.perf_counter() - t0      # the limit is wall time: checkpoints count
        if not quiet:
            best = min((c for c in line["best_cost"] if c is not None), default=float("nan"))
            print(f"epoch {line['epoch']}: generation {line['gen']}, best cost {best:.4f}, "
                  f"solved by {[i for i, s in enumerate(line['solved']) if s]}, {line['seconds']:.1f} s",
                  file=sys.stderr)
    return 128 + stop[0] if stop and not run.finished() else 0


def run(args) -> int:
    """``python -m evolve run --islands N ...`` (and ``--resume`` of an island run)."""
    if not getattr(args, "verbose", False):
        # Dask logs every worker start and stop at INFO; the run's own lines are enough.
        logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        verify.require_solver()
        if args.resume is not None:
            folder = Path(args.resume)
            if (folder / STATE).is_file():
                isl = load_state(folder)
            elif not getattr(args, "trust_pickle", False):
                raise rf.RunFolderError(rf.refuse_pickle(folder / LEGACY_STATE))
            else:
                isl = _load_trusted_pickle(folder)
            C.apply_resume_overrides(isl.cfg, args)
            isl.opts.scheduler = args.scheduler
        else:
            cfg = C.config_from_args(args)
            if getattr(args, "optimize", None):
                raise ValueError("--optimize is for single runs, not --islands")
            cfg.optimize = 0.0
            cfg.validate()
            opts = IslandOptions(islands=args.islands, scheduler=args.scheduler,
                                 migration_every=args.migration_every, migrants=args.migrants)
            opts.validate(cfg.pop)
            task = taskspec.get_task(cfg.task, cc=cfg.cc, cflags=cfg.cflags)
            folder = C.new_run_folder(args, cfg.task)
            isl = IslandRun(cfg, opts)
        isl.opts.validate(isl.cfg.pop)
        client, cluster = connect(isl.opts.scheduler)
    except (rf.RunFolderError, TaskError, ValueError, OSError, IslandError, verify.SolverMissing) as exc:
        return C.fail(str(exc))
    try:
        # Ctrl-C: the epoch in progress finishes and checkpoints (a second one interrupts)
        with rf.deferred_interrupt() as stop:
            if args.resume is None:
                folder.mkdir(parents=True, exist_ok=True)
                rf.write_json(folder / "config.json", {"config": asdict(isl.cfg), "islands": asdict(isl.opts),
                                                       "task": {"name": task.name, "arity": task.arity,
                                                                "description": task.description},
                                                       "environment": rf.environment()})
            status = run_islands(isl, folder, client, quiet=args.quiet, stop=stop)
    except IslandError as exc:
        return C.fail(str(exc))
    except (ModuleNotFoundError, RuntimeError) as exc:
        # A scheduler or worker that cannot unpickle the island task (Dask wraps the import
        # error in a RuntimeError about the task graph's deserialization).
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        if not isinstance(missing, ModuleNotFoundError):
            raise
        return C.fail(f"the Dask cluster cannot import Melvin ({missing}); start `dask scheduler` and "
                     f"`dask worker` with this repository on PYTHONPATH")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if status in (130, 143):
        print(f"\ninterrupted at generation {isl.gen}: checkpoint saved; continue with "
              f"python -m evolve run --resume {folder}", file=sys.stderr)
    with rf.deferred_interrupt() as late:         # a signal while the results are written waits
        result = finish(isl, folder)
    status = 128 + late[0] if late and not status else status
    print(R.summary(result, f" on {isl.opts.islands} islands", result["seconds"], folder))
    log.info("record: %s", json.dumps({k: result[k] for k in ("workers_lost", "tasks_rerun", "tasks_resubmitted")}))
    return status
