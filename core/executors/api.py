"""The executor contract: options, results, the protocol every backend meets, batch checks.

What a code may contain: a function body (it falls through its end: the executor appends the
return) or a whole function (it returns with ``ret`` itself, at its end or anywhere, as compiled
code does). A return to the caller's return address (arm64 ``ret``, that is ``ret x30``, the
word 0xD65F03C0; x86-64 ``ret``, 0xC3, to the address at ``[rsp]``) ends the case exactly as
falling through the end does, with the same output and the same budget (the return is the
case's last instruction), and costs what the body costs: in the arm64 interpreter tier (a
``ret`` micro-op), in Unicorn's arm64 fast lane (laid out as a branch to the code's end, see
:func:`core.executors.unicorn.harness.returns_as_branches`) and natively (the genome is
called, so its ``ret`` is the return). Code that writes x30 (or, on x86-64, the return address
or rsp) before returning goes where it points: the emulated backend runs it in the slow lane.
On x86-64 Unicorn's fast lane takes a trailing one-byte ``ret`` (held as a nop before its
epilogue); a code with a ``ret`` elsewhere runs in the slow lane (same results, one
``emu_start`` per case). Other returns (``ret xN``, ``retaa``, ``eret``) are ordinary
instructions with their architectural effect.

Backends (``tiered.py``, ``native/backend.py``) import this module, never the package's
``__init__``, which opens them: that keeps the imports one-way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, Sequence

import numpy as np

from core.codes import Codes
from core.executors.batch_state import CaseStates
from core.isa import Isa
from core.outcome import N_OUTCOMES, Outcome

BACKENDS = ("auto", "emulated", "native")
MAX_CASES = 1 << 20


@dataclass(frozen=True)
class ExecutorOptions:
    """Limits of one executor.

    Attributes
    ----------
    budget : int
        Instructions per case, the appended return included (emulated backend); a case that
        needs more ends as TIMEOUT. Native backends turn it into a time budget.
    scratch : int or None
        Bytes of scratch area reachable through the stack (multiple of 16; None: 256 on arm64,
        the 128-byte red zone on x86-64).
    seed : int
        Seed of the random values placed in non-argument registers and the scratch area.
    max_code_bytes : int
        Largest genome accepted (the arena slot size follows from it).
    time_budget : float
        Native backend: CPU seconds a case may run before it is stopped; a case stopped twice
        in a row ends as TIMEOUT (so a looping case costs two to six budgets). Default 250 us: ~100x what 2048 instructions
        need, small enough that a population of looping genomes costs seconds, not minutes.
    workers : int or None
        Native backend: sandbox worker processes running batches in parallel (None: one per
        core).
    """

    budget: int = 2048
    scratch: int | None = None
    seed: int = 0
    max_code_bytes: int = 1024
    time_budget: float = 250e-6
    workers: int | None = None

    def resolved(self, isa: Isa) -> "ExecutorOptions":
        scratch = min(256, isa.max_scratch) if self.scratch is None else self.scratch
        opts = replace(self, scratch=scratch)
        opts.validate(isa)
        return opts

    def validate(self, isa: Isa) -> None:
        if not isinstance(self.budget, int) or not 1 <= self.budget <= 1 << 24:
            raise ValueError(f"budget must be an int in [1, 2**24] instructions, got {self.budget!r}")
        if not isinstance(self.scratch, int) or self.scratch < 0 or self.scratch % 16 \
                or self.scratch > isa.max_scratch:
            raise ValueError(f"scratch must be a multiple of 16 in [0, {isa.max_scratch}] bytes on "
                             f"{isa.name}, got {self.scratch!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.max_code_bytes, int) or not 1 <= self.max_code_bytes <= 1 << 16:
            raise ValueError(f"max_code_bytes must be an int in [1, 65536], got {self.max_code_bytes!r}")
        if isinstance(self.time_budget, bool) or not isinstance(self.time_budget, (int, float)) \
                or not 1e-5 <= self.time_budget <= 60:
            raise ValueError(f"time_budget must be a number of seconds in [1e-5, 60], got {self.time_budget!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or not 1 <= self.workers <= 256):
            raise ValueError(f"workers must be None or an int in [1, 256], got {self.workers!r}")


@dataclass
class Result:
    """Outputs and outcome classes of one batch."""

    outputs: np.ndarray   #: uint64 [n_genomes, n_cases]
    outcomes: np.ndarray  #: uint8 [n_genomes, n_cases]

    def counts(self) -> dict[str, int]:
        """Number of cases per outcome class name (all classes present, zeros included)."""
        hist = np.bincount(self.outcomes.ravel(), minlength=N_OUTCOMES)
        return {Outcome(i).name: int(hist[i]) for i in range(N_OUTCOMES)}


class Executor(Protocol):
    isa: Isa
    options: ExecutorOptions
    backend: str

    def run(self, codes: Sequence[bytes], inputs: np.ndarray, *, seed: int | None = None,
            states: CaseStates | None = None) -> Result:
        """``seed``: the batch's entry state (default: the options'); ``states``: one entry state
        per case instead (:class:`~core.executors.batch_state.CaseStates`; ``seed`` is then
        ignored). Every backend gives the same results for the same states."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc) -> None: ...


def validate_batch(isa: Isa, options: ExecutorOptions, codes, inputs) -> tuple[Sequence[bytes], np.ndarray]:
    """Check a batch once, before any code runs; ``ValueError`` naming what was expected. The
    codes come back as a list of bytes, or as the ``core.codes.Codes`` they were (one buffer)."""
    if isinstance(codes, (bytes, bytearray, str)) or not isinstance(codes, Sequence):
        raise ValueError("codes must be a sequence of bytes objects, one per genome")
    if len(codes) == 0:
        raise ValueError("codes is empty: expected at least one genome")
    out: list = []
    if isinstance(codes, Codes):
        # one buffer (a population's encoding): checked on its offsets, passed on whole
        bad = (codes.lengths > options.max_code_bytes) | ((codes.lengths % isa.insn_size != 0) if isa.insn_size else False)
        if not bad.any():
            out, codes = codes, ()
    elif set(map(type, codes)) == {bytes}:
        # the usual batch (a population's codes): lengths checked in one numpy pass; with a
        # bad one, the loop below finds and names it
        lengths = np.fromiter(map(len, codes), np.int64, len(codes))
        bad = (lengths > options.max_code_bytes) | ((lengths % isa.insn_size != 0) if isa.insn_size else False)
        if not bad.any():
            out, codes = list(codes), ()
    for i, code in enumerate(codes):
        if not isinstance(code, (bytes, bytearray, memoryview)):
            raise ValueError(f"codes[{i}] must be bytes, got {type(code).__name__}")
        code = bytes(code)
        if len(code) > options.max_code_bytes:
            raise ValueError(f"codes[{i}] is {len(code)} bytes, longer than the arena slot "
                             f"(max_code_bytes={options.max_code_bytes})")
        if isa.insn_size and len(code) % isa.insn_size:
            raise ValueError(f"codes[{i}] is {len(code)} bytes: {isa.name} code must be whole "
                             f"{isa.insn_size}-byte instructions")
        out.append(code)
    return out, validate_inputs(isa, inputs)


def validate_inputs(isa: Isa, inputs) -> np.ndarray:
    """Check a batch's inputs (as :func:`validate_batch` does); C-contiguous ``inputs`` back.
    For a backend that knows the batch's codes already (the same as its last, checked)."""
    if not isinstance(inputs, np.ndarray):
        raise ValueError(f"inputs must be a numpy uint64 array [n_cases, n_inputs], got {type(inputs).__name__}")
    if inputs.dtype != np.uint64:
        raise ValueError(f"inputs must have dtype uint64, got {inputs.dtype}")
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be 2-D [n_cases, n_inputs], got shape {inputs.shape}")
    n_cases, n_inputs = inputs.shape
    if not 1 <= n_inputs <= isa.max_inputs:
        raise ValueError(f"inputs must have 1 to {isa.max_inputs} columns (one per argument), got {n_inputs}")
    if not 1 <= n_cases <= MAX_CASES:
        raise ValueError(f"inputs must have 1 to {MAX_CASES} rows (test cases), got {n_cases}")
    return np.ascontiguousarray(inputs)


def validate_states(options: ExecutorOptions, states, n_cases: int) -> CaseStates:
    """Check per-case states against a batch of ``n_cases``; ``ValueError`` naming what was expected."""
    if not isinstance(states, CaseStates):
        raise ValueError(f"states must be a CaseStates (one entry state per case), got {type(states).__name__}")
    return states.check(n_cases, options.scratch)
