"""The native backend on arm64 genomes: run on ARM64 hosts, and under qemu user mode by
``scripts/arm64-qemu.sh`` (the CI's ARM64 lane). Code is given as words: keystone has no aarch64
wheel, so nothing here assembles.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.isa import ARM64
from core.outcome import Outcome

pytestmark = pytest.mark.skipif(not ARM64.is_host(), reason="needs an arm64 host or scripts/arm64-qemu.sh")
QEMU = os.environ.get("MELVIN_QEMU") == "1"
needs_hardware = pytest.mark.skipif(QEMU, reason="needs real ARM64 hardware: qemu user mode does not check SP "
                                                 "alignment and does not implement guest seccomp")
INPUTS = np.array([[3, 5], [7, 9], [2**64 - 1, 1]], dtype=np.uint64)
BUDGET = 0.05 if QEMU else 250e-6   # qemu translates code on first use: milliseconds, not microseconds


def w(*words: int) -> bytes:
    return b"".join(x.to_bytes(4, "little") for x in words)


ADD = 0x8B010000                   # add x0, x0, x1
EOR = 0xCA010000                   # eor x0, x0, x1
RET = 0xD65F03C0                   # ret (to x30)


@pytest.fixture(scope="module")
def native():
    from core.executors import open_executor
    with open_executor("arm64", backend="native", workers=1, time_budget=BUDGET) as ex:
        yield ex


@pytest.mark.parametrize("words, expected", [
    ((ADD,), Outcome.OK),
    ((0x00000000,), Outcome.SIGILL),                 # udf #0
    ((0xD2800000, 0xF9400000), Outcome.SIGSEGV),     # mov x0, #0; ldr x0, [x0]
    ((0xD4200000,), Outcome.SIGTRAP),                # brk #0
    ((0x14000000,), Outcome.TIMEOUT),                # b .
    ((0xD2800020, 0xC85F7C00), Outcome.SIGBUS),      # mov x0, #1; ldxr x0, [x0]: misaligned exclusive
])
def test_outcome_classes(native, words, expected):
    """Check that each kind of ending gets its outcome class on every case."""
    res = native.run([w(*words)], INPUTS)
    assert (res.outcomes == expected).all(), res.outcomes
    if expected == Outcome.OK:
        assert res.outputs[0].tolist() == [8, 16, 0]


def test_a_genomes_own_ret_is_the_return(native):
    """Check that a code ending in ``ret``, or returning early after a conditional branch, returns
    to the trampoline as falling through does (the genome is called with ``blr``: its ``ret`` to
    x30 is the return)."""
    early = (0x36000041, RET, ADD)   # tbz w1, #0, #8: odd x1 returns x0, even x1 returns x0 + x1
    res = native.run([w(ADD), w(ADD, RET), w(*early), w(*early, RET)],
                     np.array([[3, 5], [7, 8], [2**64 - 1, 2], [10, 1]], dtype=np.uint64))
    assert (res.outcomes == Outcome.OK).all(), res.outcomes
    assert res.outputs[0].tolist() == res.outputs[1].tolist() == [8, 15, 1, 11]
    assert res.outputs[2].tolist() == res.outputs[3].tolist() == [3, 15, 1, 10]


def test_a_crash_or_timeout_on_some_cases_resumes_at_the_next_case(native):
    """Check that genomes trapping or looping where x1 = 0 (the first, middle and last cases)
    get SIGILL/TIMEOUT there and x0 + x1 elsewhere, in the stub's light loop (no entry flags)
    and its general loop (scratch), next to well-behaved genomes."""
    from core.executors.native.light import HEAVY, MEM, entry_plan
    cbnz = 0xB5000041                              # cbnz x1, #8
    light = w(cbnz, 0x00000000, ADD)               # x1 = 0: udf
    loops = w(cbnz, 0x14000000, ADD)               # x1 = 0: b .
    mem = w(0xF90003E0, cbnz, 0x00000000, 0xF94003E0, ADD)   # str x0, [sp]; ...; ldr x0, [sp]; add
    assert entry_plan("arm64", light) & (MEM | HEAVY) == 0 and entry_plan("arm64", mem) & MEM
    inputs = np.array([[7, 0], [9, 2], [5, 5], [1, 0], [2**64 - 1, 3], [4, 0]], dtype=np.uint64)
    res = native.run([light, w(ADD), mem, loops, light], inputs)
    sums = [(int(a) + int(b)) % 2**64 for a, b in inputs.tolist()]
    for g, bad in ((0, Outcome.SIGILL), (2, Outcome.SIGILL), (3, Outcome.TIMEOUT), (4, Outcome.SIGILL)):
        assert res.outcomes[g].tolist() == [bad, 0, 0, bad, 0, bad], (g, res.outcomes[g])
        assert [v for v, x1 in zip(res.outputs[g].tolist(), inputs[:, 1]) if x1] == [s for s, x1 in zip(sums, inputs[:, 1]) if x1]
    assert res.outcomes[1].tolist() == [0] * 6 and res.outputs[1].tolist() == sums


def test_clobbering_callee_saved_registers_sp_lr_and_tpidr_harms_nobody(native):
    """Check that a genome zeroing x19-x29, SP, LR and TPIDR_EL0 leaves the next genome correct."""
    hostile = w(*[0xD2800000 | r for r in range(19, 30)],   # mov x19..x29, #0
                0xD51BD05F,                                 # msr tpidr_el0, xzr
                0x9100001F,                                 # mov sp, x0
                0xD280003E)                                 # mov x30, #1 (returns to address 1)
    res = native.run([hostile, w(EOR), hostile, w(ADD)], INPUTS)
    assert res.outcomes[1].tolist() == [0, 0, 0] and res.outcomes[3].tolist() == [0, 0, 0]
    assert res.outputs[1].tolist() == [3 ^ 5, 7 ^ 9, (2**64 - 1) ^ 1]
    assert res.outputs[3].tolist() == [8, 16, 0]
    assert (res.outcomes[0] == Outcome.SIGSEGV).all()


@pytest.mark.skipif(QEMU, reason="the emulated backend assembles its harness with keystone, which has no "
                                 "aarch64 wheel; runs on ARM64 hosts")
def test_outputs_agree_with_the_emulator(native):
    """Check that data-processing genomes give the emulator's outputs, random registers and scratch included."""
    from core.executors import open_executor
    codes = [w(0x8B050000),             # add x0, x0, x5
             w(0xF94003E0),             # ldr x0, [sp]
             w(0x9B017C00, 0xCA1D0000),  # mul x0, x0, x1; eor x0, x0, x29
             w(0x4E083C00)]             # mov x0, v0.d[0]
    with open_executor("arm64", backend="emulated", seed=3) as em:
        want = em.run(codes, INPUTS)
    got = native.run(codes, INPUTS, seed=3)
    assert got.outcomes.tolist() == want.outcomes.tolist()
    assert got.outputs.tolist() == want.outputs.tolist()


@needs_hardware
def test_misaligned_sp_access_is_sigbus(native):
    """Check that a load through a misaligned SP raises SIGBUS (real ARM64 only)."""
    res = native.run([w(0xD10007FF, 0xF94003E0)], INPUTS)   # sub sp, sp, #1; ldr x0, [sp]
    assert (res.outcomes == Outcome.SIGBUS).all()


@needs_hardware
def test_svc_is_refused_by_seccomp(native):
    """Check that svc #0 (exit_group) ends as SYSCALL and the worker lives on (real ARM64 only)."""
    res = native.run([w(0xD2800BC8, 0xD4000001), w(ADD)], INPUTS)   # mov x8, #94; svc #0
    assert (res.outcomes[0] == Outcome.SYSCALL).all()
    assert res.outputs[1].tolist() == [8, 16, 0] and native.lost_batches == 0
