"""Native backend: genome code runs at hardware speed in sandbox worker processes.

The owner (this process) never executes genome code. It splits a batch into chunks, one per
worker (:mod:`core.executors.native.sandbox`), appends two *sentinel* genomes with known results to each
chunk (one that returns ``in0 ^ in1`` on every case, one that raises SIGILL on its first
``_CRASH_CASES``: the last genome of a chunk runs only those), and checks after the batch that
the worker answered in time, wrote an outcome for every case and got the sentinels right. A chunk
that fails any check is re-run on a fresh worker, split in halves (bisection) until the genome
that breaks workers stands alone; its cases are classified WORKER_LOST. No evaluation is lost,
and none is accepted from a worker that is known to be broken.

Inside a worker the JIT trampoline of :mod:`core.executors.native.jit` loops over genomes and
cases; see that module for the containment of faults, loops and system calls.

Differences from the emulated backend (all explained, tested in ``tests/test_native_agreement.py``):

* TIMEOUT is a CPU-time budget here (``time_budget``), an instruction budget there: a long but
  finite loop may be OK on one and TIMEOUT on the other;
* values that depend on where code sits differ: PC-relative results (``adr``, ``lea [rip]``),
  the return address (arm64 ``x30``, the x86-64 word at ``[rsp]``), anything jumping between slots
  or into padding;
* memory outside the scratch area: the stack below SP keeps what earlier cases wrote here (the
  emulator resets it); other fixed regions of either address space differ;
* timer and ID registers read real values here (``cntvct_el0``, ``rdtsc``, ``cpuid``);
* instructions the emulator does not implement (x86 AVX and other extensions) run here.
"""
from __future__ import annotations

import math
import os
import time
import weakref
from collections import deque
from multiprocessing.connection import wait
from typing import Sequence

import numpy as np

from core.codes import Codes
from core.executors.api import ExecutorOptions, Result, validate_batch, validate_inputs, validate_states
from core.executors.batch_state import BatchState, CaseStates
from core.executors.memory_map import ARENA_SIZE
from core.executors.native.light import FULL, entry_plan
from core.executors.native.plans import PlanTable
from core.executors.native.prologue import CODE_AT
from core.executors.native.sandbox import Worker, WorkerLost, WorkerSpec
from core.isa import Isa
from core.outcome import Outcome

# Sentinels: (code that returns in0 ^ in1, code that raises SIGILL)
_SENTINELS = {
    "x86_64": (bytes.fromhex("4889f84831f0"), bytes.fromhex("0f0b")),
    "arm64": (bytes.fromhex("000001ca"), bytes(4)),
}


#: cases the crash sentinel runs: a crash costs a signal delivery (~6-8 us), n_cases of them a
#: chunk's fixed cost; two show that the worker still recovers after the chunk's genomes and
#: that its loop resumes after a recovery
_CRASH_CASES = 2
_LOST, _SIGILL = int(Outcome.WORKER_LOST), int(Outcome.SIGILL)   # plain ints: numpy compares enums slowly


def _under_qemu() -> bool:
    return os.environ.get("MELVIN_QEMU") == "1"


class NativeExecutor:
    """Native backend of the executor API (host ISA only); see the module docstring.

    Parameters
    ----------
    isa, options
        As for every backend (:func:`core.executors.open_executor`).
    faults : sequence of (bytes, str)
        Test hook: a worker whose batch contains one of these codes exits, hangs or corrupts
        its results (``core.executors.native.sandbox.FAULT_ACTIONS``), to exercise recovery.
    batch_slack : float or None
        Seconds a worker may take beyond its cases' time budgets before it counts as hung.
    """

    backend = "native"

    def __init__(self, isa: Isa, options: ExecutorOptions, *, faults: Sequence[tuple[bytes, str]] = (),
                 batch_slack: float | None = None):
        if not isa.is_host():
            raise ValueError(f"native {isa.name} execution needs a {isa.name} host; use backend='emulated'")
        self.isa, self.options = isa, options
        ret = isa.ret_bytes
        self.slot_size = -(-(CODE_AT[isa.name] + options.max_code_bytes + len(ret) + 16) // 64) * 64
        self._spec = WorkerSpec(isa.name, options.scratch, self.slot_size, isa.pad_bytes, ret, True,
                                tuple((bytes(c), a) for c, a in faults), _CRASH_CASES)
        self._slack = batch_slack if batch_slack is not None else (300.0 if _under_qemu() else 30.0)
        self._start_timeout = 600.0 if _under_qemu() else 60.0
        self.n_workers = options.workers or os.cpu_count() or 1
        self.replacements: list[float] = []   #: seconds each worker replacement took
        self.lost_batches = 0                 #: chunks that failed a check and were re-run
        self._workers: list[Worker] = []
        self._closed = False
        self._states: np.ndarray | None = None   # per-case states of the batch being run (rows of bytes)
        self._last_state: tuple = (None, None)   # (seed, BatchState): the last batch's
        self._last_table: tuple = (None, None, None)   # (seed, shape, inputs bytes), table, xor sentinel's answer
        self._plan_table = PlanTable(isa.name)   # the instructions seen: new codes' plans in bulk
        self._last_codes: tuple | None = None   # the last batch (its list, or a copy of its Codes), buffer, offsets, plans
        sent = _SENTINELS[isa.name]
        self._sentinels = (np.frombuffer(b"".join(sent), np.uint8), np.array([0, len(sent[0]), len(sent[0]) + len(sent[1])]),
                           np.array([entry_plan(isa.name, c) for c in sent], np.uint64))
        self._finalizer = weakref.finalize(self, NativeExecutor._close_workers, self._workers)
        try:
            for _ in range(self.n_workers):
                self._workers.append(Worker(self._spec, self._start_timeout))
        except BaseException:
            self.close()
            raise
        #: True when every worker runs under the seccomp arena filter (False under qemu user mode)
        self.seccomp = all(w.info["seccomp"] for w in self._workers)

    # ----------------------------------------------------------------- public API
    def run(self, codes: Sequence[bytes], inputs: np.ndarray, *, seed: int | None = None,
            states: CaseStates | None = None) -> Result:
        """Run every genome on every case; see :class:`core.executors.Executor` (per-case
        ``states``: the worker runs the trampoline once per case, each under its own state)."""
        if self._closed:
            raise ValueError("this executor is closed")
        known = self._known_codes(codes)   # the last batch's codes again: checked then
        if known is None:
            codes, inputs = validate_batch(self.isa, self.options, codes, inputs)
            known = self._codes(codes)
        else:
            inputs = validate_inputs(self.isa, inputs)
        seed = self.options.seed if seed is None else seed
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if states is not None:
            states = validate_states(self.options, states, inputs.shape[0])
            table = states.input_table(self.isa, inputs)
            ok = (table[:, 0] ^ table[:, 1]).tobytes()
            self._states = np.concatenate([states.regs.view(np.uint8), states.simd, states.scratch], axis=1)
        else:
            table, ok = self._table(seed, inputs)
            self._states = None
        batch = _Batch(*known, table, seed, ok)
        n, n_cases = len(known[1]) - 1, table.shape[0]
        outputs = np.empty((n, n_cases), dtype=np.uint64)    # every row is written below
        outcomes = np.empty((n, n_cases), dtype=np.uint8)
        per_slot_cap = ARENA_SIZE // self.slot_size - 2
        per_case_cap = max(1, (1 << 22) // n_cases)   # keeps one chunk's deadline sane
        size = max(1, min(math.ceil(n / self.n_workers), per_slot_cap, per_case_cap))
        queue = deque((i, min(n, i + size)) for i in range(0, n, size))
        self._schedule(queue, batch, outputs, outcomes)
        return Result(outputs, outcomes)

    def close(self) -> None:
        """Stop every worker and remove the shared files (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "NativeExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (tests and diagnostics)."""
        return [w.proc.pid for w in self._workers]

    # ----------------------------------------------------------------- scheduling
    @staticmethod
    def _close_workers(workers: list[Worker]) -> None:
        for w in workers:
            w.close()
        workers.clear()

    def _deadline(self, n_genomes: int, n_cases: int) -> float:
        return time.monotonic() + self._slack + 4.0 * n_genomes * n_cases * self.options.time_budget

    def _submit(self, w: Worker, chunk: tuple[int, int], batch: "_Batch", mode: str = "stub",
                repeat: int = 1) -> float:
        """Write genomes ``chunk`` = [a, b) and the sentinels into ``w``'s shared file (the codes
        with one copy from the batch's buffer) and start the worker on them."""
        a, b = chunk
        off = batch.offsets
        lo, hi = int(off[a]), int(off[b])
        sent, sent_off, sent_plans = self._sentinels
        m, n_cases = b - a + 2, batch.table.shape[0]
        states = self._states
        v = w.buffer(m, n_cases, hi - lo + len(sent), 0 if states is None else states.shape[1])
        v["inputs"][:] = batch.table
        if states is not None:
            v["states"][:] = states
        offsets = v["offsets"]
        np.subtract(off[a:b + 1], lo, out=offsets[:m - 1], casting="unsafe")
        offsets[m - 1:] = sent_off[1:] + (hi - lo)
        blob = v["blob"]
        blob[:hi - lo] = batch.buf[lo:hi]
        blob[hi - lo:hi - lo + len(sent)] = sent
        v["plans"][:m - 2] = batch.plans[a:b]
        v["plans"][m - 2:] = sent_plans
        v["outcomes"][:] = 0xFF   # "not run": every case must be overwritten
        w.submit(m, n_cases, batch.seed, self.options.time_budget, mode, repeat)
        return self._deadline(m, n_cases) if mode == "stub" else time.monotonic() + 3600

    def _known_codes(self, codes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The last batch's (buffer, offsets, plans) when ``codes`` equal its codes (the same
        population on other cases, as validation, counterexamples and benchmarks run it): two
        array comparisons (a ``Codes``) or one list comparison (by identity first); else None."""
        last = self._last_codes
        if last is None:
            return None
        if isinstance(codes, Codes):
            if isinstance(last[0], Codes) and _same(last[0].offsets, codes.offsets) and _same(last[0].buf, codes.buf):
                return last[1:]
        elif type(codes) is list and type(last[0]) is list and last[0] == codes:
            return last[1:]
        return None

    def _table(self, seed: int, inputs: np.ndarray) -> tuple[np.ndarray, bytes]:
        """The argument table of ``inputs`` under the batch state of ``seed`` and what the xor
        sentinel answers on it (the last one's again for the same seed and inputs)."""
        key = (seed, inputs.shape, inputs.tobytes())
        if self._last_table[0] != key:
            table = self._batch_state(seed).input_table(self.isa, inputs)
            self._last_table = (key, table, (table[:, 0] ^ table[:, 1]).tobytes())
        return self._last_table[1:]

    def _codes(self, codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(buffer uint8, offsets int64 [n + 1], entry plans uint64 [n]) of a checked batch,
        kept as the last batch (:meth:`_known_codes`)."""
        if isinstance(codes, Codes):
            kept = Codes(codes.buf.copy(), codes.offsets.copy())   # the caller may reuse its buffer
            plans = self._plan_table.plans(kept.buf, kept.offsets)
            self._last_codes = (kept, kept.buf, kept.offsets, plans)
            return self._last_codes[1:]
        offsets = np.zeros(len(codes) + 1, np.int64)
        np.cumsum(np.fromiter(map(len, codes), np.int64, len(codes)), out=offsets[1:])
        buf = np.frombuffer(b"".join(codes), np.uint8)
        self._last_codes = (codes, buf, offsets, self._plan_table.plans(buf, offsets))
        return self._last_codes[1:]

    def _batch_state(self, seed: int) -> BatchState:
        if self._last_state[0] != seed:
            self._last_state = (seed, BatchState.from_seed(seed, self.options.scratch))
        return self._last_state[1]

    def _check(self, w: Worker, m: int, batch: "_Batch", outputs: np.ndarray, outcomes: np.ndarray,
               at: slice) -> None:
        """Copy the chunk's results from the shared file into ``outputs[at]``, ``outcomes[at]``,
        then WorkerLost unless the worker's sentinels and outcome table are right (checked on the
        copies and the sentinels' rows: the file is read once, a failed chunk is run again)."""
        v = w.views
        outs, kinds = v["outputs"], v["outcomes"]
        outputs[at], outcomes[at] = outs[:m - 2], kinds[:m - 2]
        sent_outs, sent_kinds = outs[m - 2:], kinds[m - 2:]
        crash = min(_CRASH_CASES, kinds.shape[1])
        if int(outcomes[at].max()) >= _LOST:   # 0xFF: not run
            raise WorkerLost("worker left cases without an outcome")
        # the sentinels' rows against their known answers, as bytes (Outcome.OK is 0)
        n_cases = kinds.shape[1]
        if sent_kinds[0].tobytes() != bytes(n_cases) or sent_outs[0].tobytes() != batch.ok_expected \
                or sent_kinds[1, :crash].tobytes() != bytes([_SIGILL]) * crash \
                or sent_outs[1, :crash].tobytes() != bytes(8 * crash):
            if int(sent_kinds[0].max()) >= _LOST or int(sent_kinds[1, :crash].max()) >= _LOST:
                raise WorkerLost("worker left cases without an outcome")
            raise WorkerLost("worker failed its sentinel check")

    def _replace(self, w: Worker) -> Worker:
        t0 = time.perf_counter()
        w.kill()
        fresh = Worker(self._spec, self._start_timeout)
        self._workers[self._workers.index(w)] = fresh
        self.replacements.append(time.perf_counter() - t0)
        return fresh

    def _schedule(self, queue: deque, batch: "_Batch", outputs, outcomes) -> None:
        idle = list(self._workers)
        busy: dict = {}   # conn -> (worker, chunk, deadline)
        while queue or busy:
            while queue and idle:
                w, chunk = idle.pop(), queue.popleft()
                busy[w.conn] = (w, chunk, self._submit(w, chunk, batch))
            nearest = min(d for _, _, d in busy.values())
            timeout = max(0.0, nearest - time.monotonic())
            if len(busy) == 1:   # (wait() builds a selector per call)
                conn = next(iter(busy))
                ready = [conn] if busy[conn][0].ready(timeout) else []
            else:
                ready = wait(list(busy), timeout=timeout)
            now = time.monotonic()
            for conn in list(busy):
                w, (a, b), deadline = busy[conn]
                if conn not in ready and now < deadline:
                    continue
                del busy[conn]
                try:
                    w.result(deadline)
                    self._check(w, b - a + 2, batch, outputs, outcomes, slice(a, b))
                except WorkerLost:
                    self.lost_batches += 1
                    w = self._replace(w)
                    if b - a == 1:
                        outputs[a] = 0
                        outcomes[a] = Outcome.WORKER_LOST
                    else:
                        half = (a + b) // 2
                        queue.appendleft((half, b))
                        queue.appendleft((a, half))
                idle.append(w)

    # ----------------------------------------------------------------- benchmarks
    def measure(self, codes: Sequence[bytes], inputs: np.ndarray, mode: str, repeat: int = 1,
                seed: int | None = None) -> tuple[float, Result]:
        """Worker-side seconds of ``repeat`` runs of one batch on one worker, and its results.

        ``mode``: "stub" (the protected trampoline), "full" (the same with the full entry for
        every genome: what the per-genome entries save), "bare" (``_setjmp`` + a plain call, no
        entry state, no restoration: only for well-behaved code) or "percall" (one ctypes
        call per case). For benchmarks; genome code still runs in the worker."""
        codes, inputs = validate_batch(self.isa, self.options, codes, inputs)
        seed = self.options.seed if seed is None else seed
        table = BatchState.from_seed(seed, self.options.scratch).input_table(self.isa, inputs)
        self._states = None
        buf, offsets, plans = self._known_codes(codes) or self._codes(codes)
        if mode == "full":
            plans = np.full(len(codes), FULL[self.isa.name], np.uint64)
        batch = _Batch(buf, offsets, plans, table, seed, (table[:, 0] ^ table[:, 1]).tobytes())
        w = self._workers[0]
        deadline = self._submit(w, (0, len(codes)), batch, "stub" if mode == "full" else mode, repeat)
        elapsed = w.result(deadline)
        v = w.views
        return elapsed, Result(v["outputs"][:len(codes)].copy(), v["outcomes"][:len(codes)].copy())

    def replace_one(self) -> float:
        """Replace worker 0 and return how long it took (benchmark of recovery)."""
        self._replace(self._workers[0])
        return self.replacements[-1]


class _Batch:
    """One ``run()``'s codes as one buffer (``buf`` uint8, ``offsets`` int64 [n + 1]), their
    entry plans, the argument table and what the xor sentinel must answer (bytes)."""

    __slots__ = ("buf", "offsets", "plans", "table", "seed", "ok_expected")

    def __init__(self, buf: np.ndarray, offsets: np.ndarray, plans: np.ndarray, table: np.ndarray, seed: int,
                 ok_expected: bytes):
        self.buf, self.offsets, self.plans, self.table, self.seed = buf, offsets, plans, table, seed
        self.ok_expected = ok_expected


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays (dtype, shape, bytes): one memcmp, cheaper than ``np.array_equal``."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
