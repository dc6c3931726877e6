"""Proofs about a code's meaning (:mod:`core.symbolic`): independence and equivalence.

A code that is right on every test case can still be wrong as a C function: it may read a
register that is not an argument, or be wrong on inputs no test drew. Two questions settle it
for loop-free code, each one SMT query with a time bound:

* :func:`prove_independence`: the code returns normally in every machine state, and two states
  that agree on the arguments give the same x0 (no other register, entry flag or scratch byte
  matters);
* :func:`prove_equivalence`: for every argument value, x0 (under ``result_mask``) equals the
  specification, a function that builds the expected value from z3 bit-vectors.

A refutation carries a counterexample (arguments, and the machine state that shows it) for the
caller to add to its tests (an independence counterexample starts from the executors' entry
flags where one exists, so its registers and scratch reproduce it when run); a solver timeout or an unknown answer is reported as such, never as
proven.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import z3

from core.symbolic import ENTRY_FLAGS, Program

PROVEN, REFUTED, UNKNOWN = "proven", "refuted", "unknown"
SOLVER = f"z3 {z3.get_version_string()}"


@dataclass(frozen=True)
class Verdict:
    """What one proof established; ``counterexample`` when refuted."""
    status: str                      #: PROVEN, REFUTED or UNKNOWN
    seconds: float
    note: str = ""
    counterexample: dict = field(default_factory=dict)

    @property
    def proven(self) -> bool:
        return self.status == PROVEN


def _value(model: z3.ModelRef, var) -> int:
    v = model.eval(var, model_completion=True)
    return int(z3.is_true(v)) if z3.is_bool(v) else v.as_long()


def _state(model: z3.ModelRef, prog: Program, arity: int, copy=None) -> dict:
    """The machine state of a model, as plain ints: other registers, flags, scratch words."""
    names = prog.state_variables(arity)
    return {str(v): _value(model, copy[i] if copy else v) for i, v in enumerate(names)}


def _solve(query, timeout_ms: int, rlimit: int | None):
    """One check; ``rlimit`` (z3's deterministic resource count) decides where it gives up,
    so the same query gets the same answer on every run; ``timeout_ms`` is the wall-clock stop."""
    s = z3.Solver()
    s.set("timeout", int(timeout_ms))
    if rlimit:
        s.set("rlimit", int(rlimit))
    s.add(query)
    t0 = time.perf_counter()
    answer = s.check()
    return answer, (s.model() if answer == z3.sat else None), time.perf_counter() - t0, s.reason_unknown()


def prove_independence(prog: Program, arity: int, timeout_ms: int = 10_000, rlimit: int | None = None,
                       result_mask: int = (1 << 64) - 1) -> Verdict:
    """Whether x0 (under ``result_mask``: the bits the result type defines) depends on the
    ``arity`` arguments only, and the code never crashes."""
    other = prog.state_variables(arity)
    twin = [z3.FreshConst(v.sort(), str(v)) for v in other]
    result2 = z3.substitute(prog.result, *zip(other, twin))
    crashes2 = z3.substitute(prog.crashes, *zip(other, twin))
    mask = z3.BitVecVal(result_mask, 64)
    query = z3.Or(prog.crashes, crashes2, (prog.result & mask) != (result2 & mask))
    answer, model, seconds, why = _solve(query, timeout_ms, rlimit)
    if answer == z3.unsat:
        return Verdict(PROVEN, seconds)
    if answer != z3.sat:
        return Verdict(UNKNOWN, seconds, f"solver: {why or answer}")
    # Prefer a counterexample whose two states start with the executors' entry flags (NZCV =
    # Z|C): its registers and scratch then show the dependence when run (a training case). The
    # model itself usually does once its flags are replaced; else one more bounded query.
    flags = [(f, z3.BoolVal(bool(b))) for f, b in zip(prog.flags, ENTRY_FLAGS)]
    first = len(prog.registers) - arity                  # the flags' place in ``other`` and ``twin``
    flags += [(t, b) for (_, b), t in zip(flags, twin[first:first + len(prog.flags)])]
    if not z3.is_true(model.eval(z3.substitute(query, *flags), model_completion=True)):
        again, model2, more, _ = _solve(z3.And(query, *(a == b for a, b in flags)), max(1, timeout_ms // 4),
                                        rlimit and max(1, rlimit // 4))
        seconds += more
        if again == z3.sat:
            model = model2
    args = [_value(model, r) for r in prog.registers[:arity]]
    first, second = _state(model, prog, arity), _state(model, prog, arity, twin)
    for crashes, state in ((prog.crashes, first), (crashes2, second)):
        if z3.is_true(model.eval(crashes, model_completion=True)):
            return Verdict(REFUTED, seconds, f"crashes on arguments {[hex(a) for a in args]}",
                           {"args": args, "state": state})
    differ = sorted(k for k in first if first[k] != second[k])
    return Verdict(REFUTED, seconds,
                   f"x0 on arguments {[hex(a) for a in args]} depends on {', '.join(differ[:6])}",
                   {"args": args, "state": first, "other_state": second})


def prove_equivalence(prog: Program, arity: int, spec: Callable[..., z3.BitVecRef],
                      result_mask: int = (1 << 64) - 1, timeout_ms: int = 10_000, rlimit: int | None = None) -> Verdict:
    """Whether x0 & ``result_mask`` equals ``spec(x0, .., x{arity-1})`` for every argument value,
    in every machine state, without a crash (``spec`` takes and returns 64-bit z3 terms)."""
    args = prog.registers[:arity]
    mask = z3.BitVecVal(result_mask, 64)
    expected = spec(*args)
    if not isinstance(expected, z3.BitVecRef) or expected.size() != 64:
        raise TypeError("a symbolic specification must return a 64-bit z3 bit-vector term")
    query = z3.Or(prog.crashes, (prog.result & mask) != (expected & mask))
    answer, model, seconds, why = _solve(query, timeout_ms, rlimit)
    if answer == z3.unsat:
        return Verdict(PROVEN, seconds)
    if answer != z3.sat:
        return Verdict(UNKNOWN, seconds, f"solver: {why or answer}")
    values = [_value(model, a) for a in args]
    got = _value(model, prog.result) & result_mask
    want = _value(model, expected) & result_mask
    crashed = z3.is_true(model.eval(prog.crashes, model_completion=True))
    note = (f"crashes on arguments {[hex(a) for a in values]}" if crashed else
            f"arguments {[hex(a) for a in values]}: x0 = {got:#x}, expected {want:#x}")
    return Verdict(REFUTED, seconds, note, {"args": values, "state": _state(model, prog, arity),
                                            "got": got, "expected": want})
