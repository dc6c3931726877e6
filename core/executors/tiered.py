"""The emulated backend: the interpreter tier first, then Unicorn's two lanes.

Every genome of a batch goes to the first tier that takes it:

1. the interpreter (:mod:`core.executors.interp`, arm64 only): the decoder's micro-op table of
   the whole population at once, then every genome whose every word is in its subset (integer
   data processing, branches and loops, PC-relative code, loads and stores that hit the scratch
   area or certainly fault: most alphabet genomes, raw words included). It needs no
   translation and agrees with Unicorn bit for bit (``tests/test_a64_interp.py``); Unicorn
   translates each genome it has not seen, and evolution's genomes are nearly all new. A
   genome whose access may reach other mapped memory is deferred to Unicorn, as is every genome
   outside the subset. ``TieredExecutor.interpreter = False`` turns this tier off;
2. Unicorn's fast lane (:meth:`UnicornEngine.run_fast`): genomes that triage
   (:mod:`core.executors.unicorn.triage`) proves to return within their own length and within
   the budget, a chunk of the population per ``emu_start``; a genome that hangs there anyway
   moves to the slow lane;
3. Unicorn's slow lane (:meth:`UnicornEngine.run_slow`): everything else, one ``emu_start`` per
   case bounded by the exact instruction budget.

A case no tier attributed ends as WORKER_LOST (logged); none is silently dropped.
"""
from __future__ import annotations

import logging

import numpy as np

from core.executors.api import ExecutorOptions, Result, validate_batch
from core.executors.batch_state import BatchState
from core.executors.interp import interpret
from core.executors.unicorn.engine import PENDING, UnicornEngine
from core.executors.unicorn.triage import triage
from core.isa import Isa
from core.outcome import Outcome

log = logging.getLogger(__name__)


class TieredExecutor:
    """Emulated backend of the executor API (any host, both ISAs); see the module docstring."""

    backend = "emulated"
    #: arm64: run genomes the interpreter supports there, not in Unicorn (False: Unicorn only)
    interpreter: bool = True

    def __init__(self, isa: Isa, options: ExecutorOptions):
        self.isa = isa
        self.options = options
        self.unicorn = UnicornEngine(isa, options)

    def run(self, codes, inputs, *, seed: int | None = None) -> Result:
        """Run every code on every case; see :func:`core.executors.open_executor`."""
        if self.unicorn.closed:
            raise ValueError("executor is closed")
        codes, inputs = validate_batch(self.isa, self.options, codes, inputs)
        n, n_cases = len(codes), inputs.shape[0]
        outputs = np.zeros((n, n_cases), dtype=np.uint64)
        outcomes = np.full((n, n_cases), PENDING, dtype=np.uint8)
        state = BatchState.from_seed(self.options.seed if seed is None else seed, self.options.scratch)
        uni = self.unicorn
        rest = range(n)
        if self.interpreter and self.isa.name == "arm64":
            done = interpret(codes, state.input_table(self.isa, inputs), state.regs, state.scratch,
                             self.options.budget, outputs, outcomes, simd=state.simd,
                             solo_size=uni.solo_size, post=uni.post)
            rest = np.flatnonzero(~done).tolist()   # refused or deferred: Unicorn's
            if not rest:
                return Result(outputs, outcomes)
        tables = uni.write_state(inputs, state)
        infos = {i: triage(codes[i], self.isa, self.options.scratch) for i in rest}   # cached, bounded
        budget = self.options.budget
        fast = [i for i in rest if infos[i].fast and infos[i].n_insns + 1 <= budget]
        slow = set(rest) - set(fast)
        cap = uni.chunk_capacity(n_cases)
        for start in range(0, len(fast), cap):
            idx = fast[start:start + cap]
            slow.update(uni.run_fast(idx, [(codes[i], infos[i]) for i in idx], n_cases, tables, outputs, outcomes))
        if slow:
            uni.before_slow_lane()
        for i in sorted(slow):
            uni.run_slow(i, codes[i], infos[i], n_cases, tables, outputs, outcomes)
        lost = outcomes == PENDING
        if lost.any():
            log.warning("%d cases left unattributed by the harness: WORKER_LOST", int(lost.sum()))
            outcomes[lost] = Outcome.WORKER_LOST
            outputs[lost] = 0
        return Result(outputs, outcomes)

    def close(self) -> None:
        """Release the emulator; idempotent. ``run`` after close raises ValueError."""
        self.unicorn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
