"""The island task: what one Dask task does to one island, and the checkpoint it carries.

A task advances one island K generations from its checkpoint (bytes: :mod:`evolve.checkpoint`'s
safetensors form of the engine state with its brain, zlib-compressed; no pickle) and returns the
new checkpoint, its emigrants and the gene-pattern statistics it learnt in those
K generations (a delta, :class:`core.brain.patterns.PatternDelta`). The coordinator (:mod:`evolve.islands`) submits
:func:`advance_island` by reference, so a worker process imports it from this module: it must
stay importable as ``evolve.island_task.advance_island`` with Melvin on the worker's path.

Determinism: an island's seed derives from the run seed and its index (:func:`island_seed`) and
a task's result depends only on its arguments, whichever worker runs it and however often.
"""
from __future__ import annotations

import os
import time
import zlib
from dataclasses import replace

import numpy as np

from core.brain import Brain
from evolve import checkpoint as ckpt
from evolve.config import RunConfig
from evolve.engine import Engine, build

#: Dask event topic of task starts (the coordinator reads which task ran where, and how often)
EVENT_TOPIC = "melvin-islands"


def island_seed(seed: int, index: int) -> int:
    """The seed of island ``index``: independent streams from (run seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] % (2**31))


def island_config(cfg: RunConfig, index: int) -> RunConfig:
    """Island ``index``'s configuration: its own seed, evaluation in the worker process."""
    return replace(cfg, seed=island_seed(cfg.seed, index), workers=1)


# --------------------------------------------------------------------- checkpoints as bytes
def pack_island(engine: Engine) -> bytes:
    """An island checkpoint: engine state and its brain, as one byte string."""
    brain = engine.brain.to_bytes({"generation": engine.gen}) if engine.brain is not None else None
    return pack_state(engine.state(), brain)


def pack_state(state: dict, brain: bytes | None) -> bytes:
    """The island checkpoint of an engine state and its brain file's bytes."""
    # Pattern tables are mostly zeros: compressed, a checkpoint is far smaller on the wire.
    return zlib.compress(ckpt.to_bytes(*ckpt.encode(state, brain)), 1)


def blob_parts(blob: bytes) -> tuple[dict, dict]:
    """``(document, arrays)`` of an island checkpoint (what the run folder stores of it)."""
    return ckpt.from_bytes(zlib.decompress(blob))


def parts_blob(doc: dict, arrays: dict) -> bytes:
    """The island checkpoint of :func:`blob_parts`' parts."""
    return zlib.compress(ckpt.to_bytes(doc, arrays), 1)


def unpack_island(blob: bytes):
    """``(state, brain or None)`` of an island checkpoint."""
    state, brain = ckpt.decode(*blob_parts(blob))
    if brain is not None:
        brain = Brain.from_bytes(brain, "island checkpoint")
    return state, brain


_EVALUATORS: dict = {}


def _engine(cfg: RunConfig) -> Engine:
    """An engine in a worker process; the executor is opened once per process and reused."""
    import numba

    from evolve.evaluate import Evaluator
    # A worker process is one core's worth of work (one thread per process): numba's parallel
    # kernels must not compete with the neighbouring workers for the other cores.
    numba.set_num_threads(1)
    key = (cfg.isa, cfg.backend, cfg.budget)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(cfg.isa, cfg.backend, 1, budget=cfg.budget)
    return build(cfg, evaluator=_EVALUATORS[key])


def _log_start(index: int, epoch: int) -> None:
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return          # run outside a Dask worker (tests of the task function itself)
    worker.log_event(EVENT_TOPIC, {"island": index, "epoch": epoch, "worker": worker.address,
                                   "pid": os.getpid(), "time": time.time()})


def advance_island(cfg: RunConfig, index: int, epoch: int, blob: bytes | None, until_gen: int,
                   immigrants: list, replace_uids: list, deltas: list, n_emigrants: int,
                   seconds_left: float | None = None) -> dict:
    """The island task: advance island ``index`` to generation ``until_gen``.

    Parameters
    ----------
    cfg : RunConfig
        The island's configuration (:func:`island_config`).
    index, epoch : int
        Island index and epoch number (for the record).
    blob : bytes or None
        The island's last checkpoint (:func:`pack_island`); None starts the island.
    until_gen : int
        Stop after this generation (or earlier, once solved when the run stops at a solution).
    immigrants : list of gene lists
        Migrants arriving now; they replace the individuals whose uids are ``replace_uids``.
    deltas : list of core.brain.patterns.PatternDelta
        Other islands' gene-pattern deltas, merged before evolving, in island order.
    n_emigrants : int
        How many of the best leave at the end (their uids are the next replacement slots).
    seconds_left : float or None
        What remains of the run's ``--time-limit``: the task stops after the generation that
        exhausts it, even before ``until_gen`` (None: no limit).

    Returns
    -------
    dict
        ``blob`` (the new checkpoint), ``emigrants`` (genes, uid, cost), ``delta`` (what this
        task learnt), ``metrics`` (this task's generation lines), ``gen``, ``solved``,
        ``evaluations``, ``seconds``, ``pid``.
    """
    t0 = time.perf_counter()
    _log_start(index, epoch)
    engine = _engine(cfg)
    if blob is None:
        engine.start()              # a new island reports its generation 0 too
    else:
        engine.restore(*unpack_island(blob), settle=False)
    arrived = engine.accept_immigrants(immigrants, replace_uids) if immigrants else []
    if engine.brain is not None:
        for delta in deltas:
            if len(delta):
                engine.brain.gene_patterns.merge(delta)
        before = engine.brain.gene_patterns.snapshot()
    while engine.gen < until_gen and not (engine.solved is not None and cfg.stop_when_solved) \
            and (seconds_left is None or time.perf_counter() - t0 < seconds_left):
        engine.step()
    best = engine.best_individuals(n_emigrants)
    return {"blob": pack_island(engine), "gen": engine.gen, "solved": engine.solved is not None,
            "emigrants": [([tuple(g) for g in ind], ind.uid, float(ind.fitness.values[0])) for ind in best],
            "arrived": [ind.uid for ind in arrived],
            "delta": engine.brain.gene_patterns.delta_since(before) if engine.brain is not None else None,
            "metrics": engine.metrics, "evaluations": engine.evaluations,
            "seconds": time.perf_counter() - t0, "pid": os.getpid()}

