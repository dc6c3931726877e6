"""What "solved" means: a genome that passed held-out testing, then the proofs that can be made.

Testing (the engine's held-out cases) comes first: it is cheap and finds most wrong claims.
A genome that passes is then proven, where its code is in the symbolic subset
(:mod:`core.symbolic`, arm64 loop-free code):

* independence: x0 depends on the arguments only and the code never crashes
  (:func:`core.proofs.prove_independence`);
* equivalence, when the task has a symbolic twin (:mod:`evolve.specs`): x0 equals the task for
  every input (:func:`core.proofs.prove_equivalence`).

A refutation refuses the claim and returns the counterexample's arguments for the training set
(CEGIS); an independence refutation also returns its machine states (registers and scratch, as
executor :class:`~core.executors.batch_state.BatchState` values), which join the training set
with it as per-case states. The entry flags cannot: every executor starts a case with NZCV =
Z|C, and code that reads them first is refused statically (``fitness.reads_entry_flags``). A solver timeout, an unknown answer or code outside the subset falls back to testing:
the claim stands, as ``tested``, and :attr:`Verification.note` says why it is not proven.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from core.executors.batch_state import BatchState
from evolve import specs as S

PROVEN, TESTED = "proven", "tested"


class SolverMissing(RuntimeError):
    """z3 cannot be imported: the message names the package to install."""


def require_solver() -> str:
    """The solver's name and version, or SolverMissing naming the package."""
    try:
        from core.proofs import SOLVER
    except ImportError as exc:
        raise SolverMissing(f"the z3 SMT solver is missing or broken ({exc}): pip install z3-solver") from None
    return SOLVER


@dataclass(frozen=True)
class Verification:
    """What was established about a solution (``result.json``'s ``verification``)."""
    equivalence: str        #: PROVEN or TESTED
    independence: str       #: PROVEN or TESTED
    cases: int              #: held-out cases it passed
    solver: str
    seconds: float
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line for ``best.s`` and the end of a run."""
        text = (f"equivalence {self.equivalence}, independence {self.independence} "
                f"({self.cases} held-out cases; {self.solver}, {self.seconds:.2f} s)")
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class Refutation:
    """A claim a proof refused: why, the arguments that show it and, for independence, the
    machine states that show it (one per state of the solver's model; empty: any state)."""
    reason: str
    args: list
    states: tuple = ()


def machine_state(values: dict, scratch: int) -> BatchState:
    """A counterexample's state (``x<k>`` registers, ``m<k>`` scratch words, as
    :func:`core.proofs.prove_independence` reports them) as an executor entry state; what it
    does not name (SIMD registers, other words) is zero."""
    regs = np.zeros(32, np.uint64)
    words = np.zeros(-(-scratch // 8), np.uint64)
    for name, value in values.items():
        if name[0] in "xm" and name[1:].isdigit():
            k, target = int(name[1:]), (regs if name[0] == "x" else words)
            if k < target.size:
                target[k] = value
    return BatchState(regs, bytes(512), words.tobytes()[:scratch])


#: z3 resource units per second of ``--proof-timeout``: the deterministic bound of a proof (the
#: same claim gets the same verdict on every run); calibrated low enough on a 2-core x86-64 VM
#: that the wall-clock timeout rarely decides first
RLIMIT_PER_SECOND = 1_500_000


def check(code: bytes, task, isa: str, cases: int, *, scratch: int = 256, budget: int = 2048,
          timeout: float = 10.0, effort: float | None = None) -> Verification | Refutation:
    """Prove what can be proven about ``code`` (which passed ``cases`` held-out cases) for ``task``.

    ``effort``: the solver's deterministic budget in seconds of ``RLIMIT_PER_SECOND`` (default:
    ``timeout``); ``timeout``: the wall-clock stop of each proof."""
    solver = require_solver()
    t0 = time.perf_counter()

    def tested(note: str) -> Verification:
        return Verification(TESTED, TESTED, cases, solver, round(time.perf_counter() - t0, 3), note)

    if isa != "arm64":
        return tested(f"no symbolic semantics for {isa}")
    import z3

    from core.proofs import REFUTED, prove_equivalence, prove_independence
    from core.symbolic import Unsupported, translate
    try:
        prog = translate(code, scratch=scratch, budget=budget)
    except Unsupported as exc:
        return tested(f"not proven: {exc}")
    except z3.Z3Exception as exc:            # a bug of ours must not end the run: testing stands
        return tested(f"not proven: the symbolic semantics failed ({exc})")
    ms = int(timeout * 1000)
    rlimit = int(RLIMIT_PER_SECOND * (timeout if effort is None else effort))
    notes = []
    mask = getattr(task, "result_mask", (1 << 64) - 1)      # the bits of x0 the task defines
    ind = prove_independence(prog, task.arity, ms, rlimit, result_mask=mask)
    if ind.status == REFUTED:
        cx = ind.counterexample
        states = tuple(machine_state(cx[k], scratch) for k in ("state", "other_state") if k in cx)
        return Refutation(f"independence refuted: {ind.note}", list(cx["args"]), states)
    if not ind.proven:
        notes.append(f"independence not proven ({ind.note})")
    if task.symbolic is None:
        equivalence = TESTED
        notes.append("the task has no symbolic form")
    else:
        try:
            eq = prove_equivalence(prog, task.arity, S.strict(task.symbolic), result_mask=mask, timeout_ms=ms,
                                   rlimit=rlimit)
        except Exception as exc:             # the user's twin failed on variables
            eq = None
            notes.append(f"equivalence not proven: the symbolic form failed ({type(exc).__name__}: {exc})")
        if eq is not None and eq.status == REFUTED:
            return Refutation(f"equivalence refuted: {eq.note}", list(eq.counterexample["args"]))
        equivalence = PROVEN if eq is not None and eq.proven else TESTED
        if equivalence == PROVEN and not ind.proven:
            notes.pop()             # equal to a function of the arguments in every state: independent
        elif eq is not None and not eq.proven:
            notes.append(f"equivalence not proven ({eq.note})")
    independence = PROVEN if ind.proven or equivalence == PROVEN else TESTED
    return Verification(equivalence, independence, cases, solver, round(time.perf_counter() - t0, 3),
                        "; ".join(notes))
