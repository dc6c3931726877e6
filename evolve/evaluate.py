"""Batch evaluation: genomes x cases through the executor, optionally over worker processes.

Results depend only on (codes, inputs, seed), never on how the batch is split, so a run gives
the same result for any number of workers (gplearn's rule). Worker processes each own an
executor; the population's state (brain, fitness) stays in the owner process.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
from typing import Sequence

import numpy as np

from core.codes import Codes
from core.executors import open_executor
from core.executors.batch_state import CaseStates

_worker_executor = None


def _worker_init(isa: str, backend: str, options: dict) -> None:
    global _worker_executor
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the owner's to handle
    _worker_executor = open_executor(isa, backend=backend, **options)


def _worker_run(args) -> tuple[np.ndarray, np.ndarray]:
    codes, inputs, seed, states = args
    res = _worker_executor.run(codes, inputs, seed=seed, states=states)
    return res.outputs, res.outcomes


class Evaluator:
    """Runs batches on ``workers`` processes (1: in this process's executor).

    :attr:`output_mask`: the bits of each output kept (the task's ``result_mask``: a C function
    returning ``uint32_t`` defines w0 only, and its upper bits are no error)."""

    output_mask: int = (1 << 64) - 1

    def __init__(self, isa: str, backend: str = "auto", workers: int = 1, **options) -> None:
        self.workers = workers
        self._pool = None
        self._executor = open_executor(isa, backend=backend, **options)
        self.backend = self._executor.backend
        self.scratch = self._executor.options.scratch   #: bytes of scratch a genome may use
        if workers > 1:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(workers, _worker_init, (isa, self.backend, options))

    def run(self, codes: Sequence[bytes], inputs: np.ndarray, seed: int,
            states: CaseStates | None = None) -> tuple[np.ndarray, np.ndarray]:
        """outputs uint64 [n, n_cases], outcomes uint8 [n, n_cases]; ``states``: one entry
        state per case instead of the seed's (``Executor.run``)."""
        codes = codes if isinstance(codes, Codes) else list(codes)   # one buffer stays one
        if self._pool is None or len(codes) < 2 * self.workers:
            res = self._executor.run(codes, inputs, seed=seed, states=states)
            return self._masked(res.outputs), res.outcomes
        bounds = np.linspace(0, len(codes), self.workers + 1).astype(int)
        parts = self._pool.map(_worker_run, [(codes[a:b], inputs, seed, states)
                                             for a, b in zip(bounds[:-1], bounds[1:])])
        return self._masked(np.concatenate([p[0] for p in parts])), np.concatenate([p[1] for p in parts])

    def _masked(self, outputs: np.ndarray) -> np.ndarray:
        if self.output_mask == (1 << 64) - 1:
            return outputs
        return outputs & np.uint64(self.output_mask)

    def run_pinned(self, codes: Sequence[bytes], inputs: np.ndarray, seed: int, at: np.ndarray,
                   states: CaseStates | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run` where cases ``at`` carry their own entry states (``states``, row k for
        case ``at[k]``) and the others the seed's batch state, as they would alone."""
        if states is None or len(at) == 0:
            return self.run(codes, inputs, seed)
        n_cases = inputs.shape[0]
        free = np.setdiff1d(np.arange(n_cases), at)
        outputs = np.zeros((len(codes), n_cases), np.uint64)
        outcomes = np.zeros((len(codes), n_cases), np.uint8)
        if free.size:
            outputs[:, free], outcomes[:, free] = self.run(codes, inputs[free], seed)
        outputs[:, at], outcomes[:, at] = self.run(codes, inputs[at], seed, states=states)
        return outputs, outcomes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._executor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
