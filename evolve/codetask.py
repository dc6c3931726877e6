"""A task whose specification is machine code: a C function compiled for aarch64, or a target
function of ``python -m evolve optimize`` (:mod:`evolve.targets`).

The reference is the code itself, run through the project's executor on every training and
validation case, each case under its own random registers and scratch (a reference that crashes,
loops or returns something that depends on them is reported, never learnt). Its proof target is
the same code as :mod:`core.symbolic` models it (the frame moved into the scratch area by
:mod:`evolve.frame`): at creation Melvin proves that the reference returns normally and that its
result, under the result type's mask, depends on the arguments only; then its term, with the rest
of the machine state fixed, is the task's symbolic form, so a candidate's equivalence proof is
machine code against machine code.

Argument and result widths follow AAPCS64: the callee may not rely on the bits of an argument
register above its type (they are unspecified), nor the caller on those of the result; so
:func:`evolve.tasks.fit_arguments` puts garbage above narrow arguments, the proofs quantify over
all 64 bits of every argument register, and results are compared under :attr:`Task.result_mask`.
"""
from __future__ import annotations

import atexit
from dataclasses import dataclass, field

import numpy as np

from core.executors.batch_state import CaseStates
from core.outcome import Outcome
from evolve import frame as F
from evolve.tasks import MASK, Task, TaskError

#: seed of the per-case machine states the reference runs under
REFERENCE_SEED = 0x5EF
#: deterministic solver budget of the reference's own proofs (z3 resource units)
REFERENCE_RLIMIT = 30_000_000

_executors: dict = {}


def _executor(scratch: int):
    """One executor per process for references (opened on first use, closed at exit)."""
    ex = _executors.get(scratch)
    if ex is None:
        from core.executors import open_executor
        ex = _executors[scratch] = open_executor("arm64", backend="auto", scratch=scratch)
        atexit.register(ex.close)
    return ex


def run_code(code: bytes, inputs: np.ndarray, scratch: int = 256, seed: int = REFERENCE_SEED):
    """(outputs uint64 [n], outcomes uint8 [n]) of ``code`` on ``inputs`` under per-case states."""
    inputs = np.ascontiguousarray(inputs, np.uint64)
    states = CaseStates.from_seed(seed, len(inputs), scratch)
    res = _executor(scratch).run([code], inputs, seed=seed, states=states)
    return res.outputs[0], res.outcomes[0]


class ReferenceFailure(TaskError):
    """The reference itself crashed, looped or depends on more than its arguments."""


@dataclass(frozen=True)
class CodeTask(Task):
    """A :class:`~evolve.tasks.Task` computed by machine code (see the module docstring)."""
    code: bytes = b""                #: the reference as it runs (the compiled or target function)
    model: bytes = b""               #: the same as Melvin models it (frame in the scratch area)
    frame: int = 0                   #: bytes of stack frame moved into the scratch area
    arg_types: tuple = ()            #: (bits, signed) per argument
    result_type: tuple = (64, False)
    proof_note: str = ""             #: why the task has no symbolic form, when it has none
    origin: tuple = field(default=(), compare=False)   #: (key, value) pairs: where the code came from

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        """The reference's x0 under :attr:`result_mask` on each row; ReferenceFailure when it
        does not return normally on one. What runs is the modelled form (the interpreter tier
        runs it; code that moves SP takes Unicorn's slow lane, ~2.5 ms a case): at creation
        both forms ran on the probe cases and agreed (:func:`_check_reference`)."""
        if len(inputs) == 0:
            return np.zeros(0, np.uint64)
        outputs, outcomes = run_code(self.model, inputs)
        bad = np.flatnonzero(outcomes != Outcome.OK)
        if bad.size:
            row = [hex(int(v)) for v in inputs[bad[0]]]
            raise ReferenceFailure(f"the reference {self.name} ends in {Outcome(int(outcomes[bad[0]])).name} "
                                   f"on arguments {row} (a crash or a loop is reported, not learnt)")
        return outputs & np.uint64(self.result_mask)


def _call(code: bytes, mask: int):
    """The reference as a Python function of one case (what ``Task.func`` is for other tasks)."""
    def func(*args):
        outputs, outcomes = run_code(code, np.array([args], np.uint64))
        if outcomes[0] != Outcome.OK:
            raise ReferenceFailure(f"the reference ends in {Outcome(int(outcomes[0])).name} on {list(map(hex, args))}")
        return int(outputs[0]) & mask
    return func


def _symbolic(model: bytes, arity: int, mask: int, frame: int):
    """(the reference's symbolic form, note): proven to return normally and to depend on the
    arguments only, its result with every other state variable fixed at zero; (None, why)
    when that is not proven. ReferenceFailure when it is refuted."""
    import z3

    from core.proofs import PROVEN, REFUTED, prove_independence
    from core.symbolic import ENTRY_FLAGS, translate
    prog = translate(model, scratch=max(256, frame))
    verdict = prove_independence(prog, arity, timeout_ms=60_000, rlimit=REFERENCE_RLIMIT, result_mask=mask)
    if verdict.status == REFUTED:
        raise ReferenceFailure(f"the reference is not a function of its {arity} argument(s): {verdict.note}")
    if verdict.status != PROVEN:
        return None, f"the reference's independence is not proven ({verdict.note})"
    fixed = [(v, z3.BitVecVal(0, v.size())) for v in (*prog.registers[arity:], *prog.scratch, *prog.vectors)]
    fixed += [(f, z3.BoolVal(bool(b))) for f, b in zip(prog.flags, ENTRY_FLAGS)]
    term = z3.simplify(z3.substitute(prog.result, *fixed) & z3.BitVecVal(mask, 64))
    args = prog.registers[:arity]

    def symbolic(*xs):
        return z3.substitute(term, *zip(args, xs))
    return symbolic, ""


def make_code_task(name: str, code: bytes, arity: int, *, arg_types: tuple | None = None,
                   result_bits: int = 64, result_signed: bool = False, relocations: dict | None = None,
                   description: str = "", origin: tuple = ()) -> CodeTask:
    """A validated task computed by ``code``; NotModelled / ReferenceFailure (both one line)
    when Melvin cannot model it or it is not a function of its ``arity`` arguments."""
    if not 1 <= arity <= 4:
        raise TaskError(f"{name}: {arity} arguments; 1 to 4 integer arguments are supported")
    modelled = F.check(code, relocations)
    mask = MASK if result_bits >= 64 else (1 << result_bits) - 1
    arg_types = tuple(arg_types or ((64, False),) * arity)
    symbolic, note = _symbolic(modelled.code, arity, mask, modelled.frame)
    task = CodeTask(name, arity, _call(modelled.code, mask), description or f"machine code of {name}", symbolic,
                    mask, code=code, model=modelled.code, frame=modelled.frame, arg_types=arg_types,
                    result_type=(result_bits, result_signed), proof_note=note, origin=tuple(origin))
    _check_reference(task)
    return task


def _check_reference(task: CodeTask) -> None:
    """Run the reference and its modelled form on probe cases (every combination of edge values,
    then random ones, under per-case random states): both must return normally and agree (the
    frame rewrite, checked by execution), and the symbolic form must give the same values (the
    z3 term against the executor)."""
    from evolve import specs as S
    from evolve.tasks import edge_cases, fit_arguments, random_cases
    rng = np.random.default_rng(1)
    probes = fit_arguments(task, np.concatenate([edge_cases(task.arity, 64), random_cases(rng, 64, task.arity)]), rng)
    want = task.expected(probes)
    got, outcomes = run_code(task.code, probes, seed=REFERENCE_SEED + 1)
    bad = np.flatnonzero(outcomes != Outcome.OK)
    if bad.size:
        raise ReferenceFailure(f"the reference {task.name} ends in {Outcome(int(outcomes[bad[0]])).name} on "
                               f"arguments {[hex(int(v)) for v in probes[bad[0]]]} (a crash or a loop is "
                               f"reported, not learnt)")
    bad = np.flatnonzero((got & np.uint64(task.result_mask)) != want)
    if bad.size:
        raise ReferenceFailure(f"{task.name}: the code with its frame in the scratch area differs from the code "
                               f"on arguments {[hex(int(v)) for v in probes[bad[0]]]} (an internal error, or code "
                               f"that reads memory it did not write)")
    if task.symbolic is not None:
        xs, term = S.term(task.symbolic, task.arity)
        for row, value in zip(probes[:32].tolist(), want[:32].tolist()):
            if S.evaluate(xs, term, row) != value:
                raise ReferenceFailure(f"{task.name}: the symbolic semantics and the executor disagree on "
                                       f"{list(map(hex, row))} (an internal error)")


def task_record(task: Task) -> dict:
    """What config.json and reports say about a machine-code task (empty for other tasks)."""
    if not isinstance(task, CodeTask):
        return {}
    from core.asm import disassemble
    return {"reference_hex": task.code.hex(), "reference": disassemble(task.code),
            "modelled": disassemble(task.model), "frame_bytes": task.frame,
            "arguments": [f"{'int' if s else 'uint'}{b}" for b, s in task.arg_types],
            "result": f"{'int' if task.result_type[1] else 'uint'}{task.result_type[0]}",
            "result_mask": f"{task.result_mask:#x}", "symbolic": task.symbolic is not None,
            "proof_note": task.proof_note, **dict(task.origin)}
