"""Per-case entry states (``Executor.run(..., states=...)``): every tier runs case i under row i,
and the tiers still agree bit for bit: the interpreter, Unicorn's fast and slow lanes, and the
native backend on x86-64 host code."""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.asm import assemble
from core.executors import native_available, open_executor
from core.executors.batch_state import BatchState, CaseStates
from core.executors.unicorn.triage import triage
from core.isa import X86_64
from core.outcome import Outcome

DP = ("add", "sub", "eor", "orr", "and", "mul", "udiv", "lsl", "lsr", "bic")


def _arm64_genome(rng: random.Random) -> bytes:
    """Random code over x0-x15 (most of them non-argument registers) and the scratch area."""
    reg = lambda: f"x{rng.randrange(16)}"   # noqa: E731
    lines = []
    for _ in range(rng.randint(1, 10)):
        kind = rng.random()
        if kind < 0.5:
            lines.append(f"{rng.choice(DP)} {reg()}, {reg()}, {reg()}")
        elif kind < 0.65:
            lines.append(f"ldr {reg()}, [sp, #{8 * rng.randrange(32)}]")
        elif kind < 0.75:
            lines.append(f"str {reg()}, [sp, #{8 * rng.randrange(32)}]")
        elif kind < 0.8:
            lines.append(f"ldrb w{rng.randrange(16)}, [sp, #{rng.randrange(256)}]")
        elif kind < 0.85:   # traps or faults in some states only: the lanes' recovery per case
            lines += [f"tbz x{rng.randrange(4, 16)}, #{rng.randrange(64)}, #8",
                      rng.choice((".word 0", "brk #1", f"ldr x1, [x{rng.randrange(4, 16)}]"))]
        else:
            lines += [f"cmp {reg()}, {reg()}", f"csel {reg()}, {reg()}, {reg()}, {rng.choice(('lo', 'eq', 'gt'))}"]
    lines.append(f"eor x0, x0, x{rng.randrange(1, 16)}")
    return assemble(lines)


@pytest.fixture(scope="module")
def genomes() -> list[bytes]:
    rng = random.Random(1212)
    return [_arm64_genome(rng) for _ in range(300)]


def _inputs(n_cases: int) -> np.ndarray:
    """Few distinct argument rows, each repeated: the states alone must tell the cases apart."""
    rows = np.random.default_rng(3).integers(0, 2**64, size=(4, 2), dtype=np.uint64)
    return rows[np.arange(n_cases) % 4]


def _slow_only(ex) -> None:
    """Send every genome Unicorn takes to its slow lane (one emu_start per case)."""
    ex.interpreter = False
    ex._lanes = lambda rest, codes: ({i: triage(codes[i], ex.isa, ex.options.scratch) for i in rest}, [])


def test_states_are_a_hash_of_seed_and_case():
    """Check that a case's state does not depend on its batch, and that cases and seeds differ."""
    a = CaseStates.from_seed(9, 50, 256)
    b = CaseStates.from_seed(9, 10, 256, first=20)
    for field in ("regs", "simd", "scratch"):
        assert (getattr(a, field)[20:30] == getattr(b, field)).all()
    assert len(set(a.regs[:, 5].tolist())) == 50 and len({bytes(r) for r in a.scratch}) == 50
    assert not (CaseStates.from_seed(10, 50, 256).regs == a.regs).any()
    assert a.scratch.shape == (50, 256) and a.simd.shape == (50, 512) and a.regs.dtype == np.uint64


def test_arm64_tiers_agree_on_per_case_states(genomes):
    """Check that interpreter, Unicorn fast lane and Unicorn slow lane give identical outputs and
    outcomes under per-case states, and that the states reach the code (same arguments, other
    results)."""
    inputs = _inputs(24)
    states = CaseStates.from_seed(77, len(inputs), 256)
    with open_executor("arm64", backend="emulated") as ex:
        interp = ex.run(genomes, inputs, states=states)
        ex.interpreter = False
        fast = ex.run(genomes, inputs, states=states)
    with open_executor("arm64", backend="emulated") as ex:
        _slow_only(ex)
        slow = ex.run(genomes, inputs, states=states)
    for name, other in (("fast lane", fast), ("slow lane", slow)):
        differ = np.flatnonzero(((interp.outputs != other.outputs) | (interp.outcomes != other.outcomes)).any(axis=1))
        assert differ.size == 0, (name, [genomes[i].hex() for i in differ[:3]])
    ok = (interp.outcomes == Outcome.OK).all(axis=1)
    assert ok.sum() > 150
    mixed = (interp.outcomes == Outcome.OK).any(axis=1) & ~ok     # crash in some states only
    assert mixed.sum() > 10
    # cases 0, 4, 8, ... share their arguments: genomes reading other registers or scratch differ
    same_args = interp.outputs[:, ::4]
    varies = (same_args != same_args[:, :1]).any(axis=1) & ok
    assert varies.sum() > 100


def test_per_case_states_equal_to_the_batch_state_give_the_batch_result(genomes):
    """Check that the per-case path with every row the seed's batch state is the batch path."""
    inputs = _inputs(8)
    same = CaseStates.stack([BatchState.from_seed(5, 256)] * len(inputs))
    with open_executor("arm64", backend="emulated") as ex:
        for interpreter in (True, False):
            ex.interpreter = interpreter
            a, b = ex.run(genomes, inputs, seed=5), ex.run(genomes, inputs, states=same)
            assert (a.outputs == b.outputs).all() and (a.outcomes == b.outcomes).all()


def test_bad_states_are_refused():
    """Check that states of the wrong shape or type raise ValueError naming the field."""
    inputs = _inputs(4)
    with open_executor("arm64", backend="emulated") as ex:
        with pytest.raises(ValueError, match="states.regs"):
            ex.run([assemble(["mov x0, x4"])], inputs, states=CaseStates.from_seed(1, 3, 256))
        with pytest.raises(ValueError, match="states.scratch"):
            ex.run([assemble(["mov x0, x4"])], inputs, states=CaseStates.from_seed(1, 4, 128))
        with pytest.raises(ValueError, match="CaseStates"):
            ex.run([assemble(["mov x0, x4"])], inputs, states="per case")


@pytest.mark.skipif(not (X86_64.is_host() and native_available(X86_64)), reason="needs the native x86-64 backend")
def test_native_x86_agrees_with_unicorn_on_per_case_states():
    """Check that native x86-64 code and both Unicorn lanes agree under per-case states, on
    random genomes that read non-argument registers and the red zone."""
    from test_native_agreement import explained, random_valid
    rng = random.Random(4242)
    codes = [random_valid(rng) for _ in range(300)]
    codes = [c for c in codes if not explained(c)]
    inputs = _inputs(12)
    states = CaseStates.from_seed(31, len(inputs), 128)
    with open_executor("x86_64", backend="emulated") as em:
        want = em.run(codes, inputs, states=states)
    with open_executor("x86_64", backend="emulated") as em:
        _slow_only(em)
        slow = em.run(codes, inputs, states=states)
    with open_executor("x86_64", backend="native", workers=2) as nat:
        got = nat.run(codes, inputs, states=states)
        batch = nat.run(codes, inputs, seed=3)
    for name, other in (("native", got), ("slow lane", slow)):
        bad = np.flatnonzero(((other.outputs != want.outputs) | (other.outcomes != want.outcomes)).any(axis=1))
        assert bad.size == 0, (name, [codes[i].hex() for i in bad[:3]])
    ok = (want.outcomes == Outcome.OK).all(axis=1)
    assert len(codes) > 200 and ok.sum() > 150
    varies = (want.outputs[:, ::4] != want.outputs[:, :1]).any(axis=1) & ok
    assert varies.sum() > 50
    assert not ((batch.outputs[:, ::4] != batch.outputs[:, :1]).any(axis=1) & ok).any()   # one batch state
