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
   the budget (falling through their end, or an arm64 ``ret`` anywhere), a chunk of the population per ``emu_start``; a genome that hangs there anyway
   moves to the slow lane;
3. Unicorn's slow lane (:meth:`UnicornEngine.run_slow`): everything else, one ``emu_start`` per
   case bounded by the exact instruction budget.

A case no tier attributed ends as WORKER_LOST (logged); none is silently dropped.

Per-case states (``run(..., states=...)``): the interpreter reads case i's row of the states;
fast-lane genomes run in per-case slots, whose prologue loads the case's whole state from a
table after the inputs (``harness.arm64_slot``, ``harness.x86_per_case_prologue``); the slow
lane runs one case at a time, the data block rewritten with that case's state before it.
"""
from __future__ import annotations

import logging

import numpy as np

from core.executors.api import ExecutorOptions, Result, validate_batch, validate_states
from core.executors.batch_state import BatchState, CaseStates
from core.executors.interp import interpret
from core.executors.unicorn.engine import PENDING, UnicornEngine
from core.executors.unicorn.triage import triage
from core.isa import Isa
from core.outcome import Outcome

log = logging.getLogger(__name__)

_STATES_BLOCK = 8192      # cases per per-case fast-lane run (their states table: 1 KiB or more each)


class TieredExecutor:
    """Emulated backend of the executor API (any host, both ISAs); see the module docstring."""

    backend = "emulated"
    #: arm64: run genomes the interpreter supports there, not in Unicorn (False: Unicorn only)
    interpreter: bool = True

    def __init__(self, isa: Isa, options: ExecutorOptions):
        self.isa = isa
        self.options = options
        self.unicorn = UnicornEngine(isa, options)
        self._state: BatchState | None = None
        self._state_key: tuple | None = None

    def run(self, codes, inputs, *, seed: int | None = None, states: CaseStates | None = None) -> Result:
        """Run every code on every case; see :func:`core.executors.open_executor` (``states``:
        one entry state per case instead of the seed's batch state)."""
        if self.unicorn.closed:
            raise ValueError("executor is closed")
        codes, inputs = validate_batch(self.isa, self.options, codes, inputs)
        n, n_cases = len(codes), inputs.shape[0]
        outputs = np.zeros((n, n_cases), dtype=np.uint64)
        outcomes = np.full((n, n_cases), PENDING, dtype=np.uint8)
        if states is not None:
            states = validate_states(self.options, states, n_cases)
            state = None
        else:
            state = self._batch_state(self.options.seed if seed is None else seed)
        uni = self.unicorn
        rest = range(n)
        if self.interpreter and self.isa.name == "arm64":
            source = state if states is None else states
            done = interpret(codes, source.input_table(self.isa, inputs), source.regs, source.scratch,
                             self.options.budget, outputs, outcomes, lr=uni.ret_addr, simd=source.simd,
                             solo_size=uni.solo_size, post=uni.post)
            rest = np.flatnonzero(~done).tolist()   # refused or deferred: Unicorn's
            if not rest:
                return Result(outputs, outcomes)
        if states is None:
            self._run_unicorn(rest, codes, inputs, state, outputs, outcomes)
        else:
            self._run_unicorn_per_case(rest, codes, inputs, states, outputs, outcomes)
        lost = outcomes == PENDING
        if lost.any():
            log.warning("%d cases left unattributed by the harness: WORKER_LOST", int(lost.sum()))
            outcomes[lost] = Outcome.WORKER_LOST
            outputs[lost] = 0
        return Result(outputs, outcomes)

    def _batch_state(self, seed: int) -> BatchState:
        """The batch state of ``seed``: the last one made is kept (a run asks for the same seed
        every generation; making one costs a generator's construction, ~0.1 ms). No tier
        writes to it."""
        key = (int(seed), self.options.scratch)
        if self._state_key != key:
            self._state, self._state_key = BatchState.from_seed(*key), key
        return self._state

    def _lanes(self, rest, codes) -> tuple[dict, list]:
        """Triage (cached and bounded in triage itself) of genomes ``rest``, and those of them
        that take the fast lane."""
        infos = {i: triage(codes[i], self.isa, self.options.scratch) for i in rest}
        budget = self.options.budget
        return infos, [i for i in rest if infos[i].fast and infos[i].n_insns + 1 <= budget]

    def _run_unicorn_per_case(self, rest, codes, inputs, states: CaseStates, outputs, outcomes) -> None:
        """Unicorn's lanes under per-case states: fast-lane genomes in per-case slots (each case
        loads its own state), blocks of cases per run; slow-lane ones one case at a time."""
        uni, n, n_cases = self.unicorn, len(codes), inputs.shape[0]
        infos, fast = self._lanes(rest, codes)
        alone = set(rest) - set(fast)
        if fast:
            per_case = {i: (codes[i], infos[i], True) for i in fast}
            for lo in range(0, n_cases, _STATES_BLOCK):
                part = np.arange(lo, min(n_cases, lo + _STATES_BLOCK))
                tables = uni.write_state(inputs[part], states.case(int(part[0])), states.take(part))
                out = np.zeros((n, part.size), np.uint64)
                kind = np.full((n, part.size), PENDING, np.uint8)
                cap = uni.chunk_capacity(part.size)
                for start in range(0, len(fast), cap):
                    idx = fast[start:start + cap]
                    alone.update(uni.run_fast(idx, [per_case[i] for i in idx], part.size, tables, out, kind))
                outputs[np.ix_(fast, part)], outcomes[np.ix_(fast, part)] = out[fast], kind[fast]
        alone = sorted(alone)
        if alone:           # one case at a time, each under its own state
            out1, kind1 = np.zeros((n, 1), np.uint64), np.full((n, 1), PENDING, np.uint8)
            for c in range(n_cases):
                kind1[alone] = PENDING
                self._run_unicorn(alone, codes, inputs[c:c + 1], states.case(c), out1, kind1)
                outputs[alone, c], outcomes[alone, c] = out1[alone, 0], kind1[alone, 0]

    def _run_unicorn(self, rest, codes, inputs, state: BatchState, outputs, outcomes) -> None:
        """Unicorn's lanes for genomes ``rest`` on every case of ``inputs`` under ``state``."""
        uni, n_cases = self.unicorn, inputs.shape[0]
        tables = uni.write_state(inputs, state)
        infos, fast = self._lanes(rest, codes)
        slow = set(rest) - set(fast)
        cap = uni.chunk_capacity(n_cases)
        for start in range(0, len(fast), cap):
            idx = fast[start:start + cap]
            slow.update(uni.run_fast(idx, [(codes[i], infos[i]) for i in idx], n_cases, tables, outputs, outcomes))
        if slow:
            uni.before_slow_lane()
        for i in sorted(slow):
            uni.run_slow(i, codes[i], infos[i], n_cases, tables, outputs, outcomes)

    def close(self) -> None:
        """Release the emulator; idempotent. ``run`` after close raises ValueError."""
        self.unicorn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
