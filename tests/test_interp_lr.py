"""Differential tests of x30 (the caller's return address) in the interpreter, Unicorn and z3.

x30 holds the caller's return address at entry, in every lane; code may read it, write it, save
and restore it. A return (``ret``, or the one appended to a body) goes where x30 points: the
caller only while x30 still holds that address, else an indirect branch (a fault where nothing
is mapped, Unicorn's business where something may be)."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble
from core.executors import memory_map as MM
from core.executors import open_executor
from core.executors.batch_state import BatchState
from core.outcome import Outcome
from core.proofs import prove_independence
from core.symbolic import Unsupported, free_variables, translate
from test_a64_interp import CLASSES, _assert_same, _both, _class_words, _inputs, _interpret, _supported

RET = 0xD65F03C0
LR = 30


@pytest.fixture(scope="module")
def ex():
    with open_executor("arm64", backend="emulated") as executor:
        yield executor


def _with_x30(rng: np.random.Generator, word: int, name: str) -> int:
    """``word`` with x30 in one of its register fields (Rd, Rn, Rm; Rt/Rn for loads and stores)."""
    fields = (0, 5) if name in ("ldr", "str", "cbz", "tbz", "logic_imm", "addsub_imm", "movw", "bitfield") \
        else (0, 5, 16)
    at = fields[int(rng.integers(0, len(fields)))]
    return (word & ~(31 << at)) | LR << at


def _lr_genome(rng: np.random.Generator) -> bytes:
    """A few class words, some naming x30, then (often) x30 folded into x0, and (often) a ``ret``
    at the end or in the middle; sometimes x30 saved and restored around a write."""
    words = []
    for _ in range(int(rng.integers(1, 5))):
        name = CLASSES[int(rng.integers(0, len(CLASSES) - 1))]           # no reserved words
        w = _class_words(rng, name, 3)
        words.append(_with_x30(rng, w, name) if rng.random() < 0.6 else w)
    if rng.random() < 0.25:                                              # save, clobber, restore
        words[:0] = [0xAA1E03E9]                                         # mov x9, x30
        words += [0xAA0103FE, 0xAA0903FE]                                # mov x30, x1; mov x30, x9
    if rng.random() < 0.5:
        words.append(0xCA1E0000 | int(rng.integers(0, 64)) << 10)       # eor x0, x0, x30, lsl #k
    where = rng.random()
    if where < 0.45:
        words.append(RET)
    elif where < 0.65:
        words.insert(int(rng.integers(0, len(words) + 1)), RET)
    return b"".join(w.to_bytes(4, "little") for w in words)


def _lr_inputs(ex, seed: int, n: int) -> np.ndarray:
    """Inputs as usual, with x1 (the value ``mov x30, x1`` writes) sometimes the caller's return
    address itself, an address in the solo slot or the arena, or a small number."""
    inputs = _inputs(seed, n)
    rng = np.random.default_rng(seed)
    picks = [ex.unicorn.ret_addr, ex.unicorn.ret_addr, MM.SOLO_BASE + 8, MM.ARENA_BASE + 4, 0, 8, 0x1002]
    rows = rng.random(n) < 0.4
    inputs[rows, 1] = np.array(picks, dtype=np.uint64)[rng.integers(0, len(picks), int(rows.sum()))]
    return inputs


def test_x30_is_decoded_as_an_ordinary_register():
    """Check that words reading or writing x30 are in the interpreter's subset (no longer Unicorn's)."""
    lines = [["mov x0, x30"], ["add x0, x0, x30, lsr #2"], ["mov x30, x0"], ["str x30, [sp, #8]", "ldr x0, [sp, #8]"],
             ["ldr x30, [sp]"], ["cbz x30, #8", "mov x0, #1"], ["tbnz w30, #2, #8", "mov x0, #1"], ["ubfx x0, x30, #2, #9"],
             ["madd x0, x30, x1, x30"], ["csel x0, x30, x1, eq"], ["mov x9, x30", "mov x30, x1", "mov x30, x9", "ret"]]
    assert _supported([assemble(l) for l in lines]).all()


@pytest.mark.parametrize("budget", [2048, 4])
def test_genomes_using_x30_agree_with_unicorn(ex, budget):
    """Check interpreter == Unicorn on random genomes that read and write x30, with ``ret`` after
    writes, and that the interpreter runs most of them itself (budget edges included)."""
    rng = np.random.default_rng(41)
    codes = [_lr_genome(rng) for _ in range(900)]
    assert _supported(codes, budget=budget).mean() >= 0.7
    if budget == 2048:
        inputs = _lr_inputs(ex, 42, 24)
        fast, ref = _both(ex, codes, inputs, seed=42)
        outs = np.zeros((len(codes), inputs.shape[0]), dtype=np.uint64)
        ran = _interpret(ex, codes, inputs, 42, outs)
    else:
        with open_executor("arm64", backend="emulated", budget=budget) as small:
            inputs = _lr_inputs(small, 43, 12)
            fast, ref = _both(small, codes, inputs, seed=43)
            outs = np.zeros((len(codes), inputs.shape[0]), dtype=np.uint64)
            ran = _interpret(small, codes, inputs, 43, outs)
    _assert_same(codes, fast, ref)
    assert ran.mean() >= 0.6, f"the interpreter ran only {ran.mean():.0%}"
    assert (ref.outcomes == Outcome.SIGSEGV).any() and (ref.outcomes == Outcome.OK).any()


def test_return_after_writing_x30(ex):
    """Check each case of ``mov x30, x1; ret``: the caller's address returns, unmapped faults
    in the interpreter itself, a mapped address defers to Unicorn (its results stand)."""
    lr = ex.unicorn.ret_addr
    codes = [assemble(["mov x30, x1", "add x0, x0, #1", "ret"]), assemble(["mov x30, x1", "add x0, x0, #1"])]
    targets = [lr, 0, 0x1002, (1 << 56) | 0x1000, 0xDEAD_0000]
    inputs = np.array([[5, t] for t in targets], dtype=np.uint64)
    outs = np.zeros((2, len(targets)), dtype=np.uint64)
    assert _interpret(ex, codes, inputs, 1, outs).all()
    fast, ref = _both(ex, codes, inputs, seed=1)
    _assert_same(codes, fast, ref)
    assert fast.outcomes.tolist() == [[Outcome.OK] + [Outcome.SIGSEGV] * 4] * 2
    assert fast.outputs[:, 0].tolist() == [6, 6]
    mapped = np.array([[5, MM.SOLO_BASE + 8], [5, (1 << 56) | lr]], dtype=np.uint64)
    assert not _interpret(ex, codes, mapped, 1, np.zeros((2, 2), dtype=np.uint64)).any()   # deferred
    fast, ref = _both(ex, codes, mapped, seed=1)
    _assert_same(codes, fast, ref)


def test_x30_reads_the_callers_return_address_in_every_lane(ex):
    """Check that ``mov x0, x30`` gives the harness's return address, in the interpreter and in
    Unicorn's lanes, with batch and with per-case states (whose x30 entries are unused)."""
    from core.executors.batch_state import CaseStates
    code = [assemble(["mov x0, x30"]), assemble(["mov x0, x30", "ret"])]
    inputs = _inputs(3, 6)
    fast, ref = _both(ex, code, inputs, seed=3)
    assert (fast.outputs == ex.unicorn.ret_addr).all() and (ref.outputs == ex.unicorn.ret_addr).all()
    states = CaseStates.from_seed(5, 6, ex.options.scratch)
    for interp in (True, False):
        ex.interpreter = interp
        try:
            res = ex.run(code, inputs, states=states)
        finally:
            ex.interpreter = True
        assert (res.outputs == ex.unicorn.ret_addr).all()


def test_symbolic_x30_agrees_with_the_interpreter(ex):
    """Check z3 == interpreter == Unicorn on genomes that use x30: x30 a free variable that the
    executors set to the caller's return address; a return after a write is refused."""
    rng = np.random.default_rng(44)
    codes = [_lr_genome(rng) for _ in range(300)]
    inputs = _lr_inputs(ex, 45, 4)
    fast, ref = _both(ex, codes, inputs, seed=45)
    state = BatchState.from_seed(45, ex.options.scratch)
    regs = state.regs.copy()
    regs[30] = ex.unicorn.ret_addr
    translated = reads = 0
    for i, code in enumerate(codes):
        try:
            prog = translate(code, scratch=ex.options.scratch)
        except Unsupported:
            continue
        translated += 1
        reads += any(str(v) == "x30" for v in free_variables(prog.result, prog.crashes))
        for case, args in enumerate(inputs.tolist()):
            got = prog.evaluate(args, regs, state.scratch, simd=state.simd)
            for res in (fast, ref):
                ok = res.outcomes[i, case] == Outcome.OK
                assert got == (int(res.outputs[i, case]) if ok else None), (code.hex(), case)
    assert translated >= 0.4 * len(codes) and reads >= 30, (translated, reads)


@pytest.mark.parametrize("lines, ok", [
    (["mov x9, x30", "mov x30, x1", "mov x30, x9"], True),     # restored: the return is the caller's
    (["mov x30, x1"], False),                                  # an indirect branch
    (["cbz x0, #8", "mov x30, x1", "ret"], False),             # on one path
    (["str x30, [sp]", "ldr x30, [sp]", "ret"], True),
])
def test_symbolic_return_needs_x30_unchanged(lines, ok):
    """Check that translate refuses code that may reach its return with x30 changed."""
    code = assemble(lines)
    if ok:
        translate(code)
    else:
        with pytest.raises(Unsupported, match="x30"):
            translate(code)


def test_independence_treats_x30_as_a_non_argument_register():
    """Check that a result depending on x30 is refuted (x30 named), one ignoring it proven."""
    v = prove_independence(translate(assemble(["add x0, x0, x30"])), 1, rlimit=2_000_000)
    assert v.status == "refuted" and "x30" in v.note
    assert prove_independence(translate(assemble(["add x5, x30, #1", "add x0, x0, #1"])), 1,
                              rlimit=2_000_000).proven
