"""Tests of the Unicorn backend: results, outcome classes, budgets, isolation, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble
from core.executors import open_executor
from core.executors.unicorn.triage import triage
from core.isa import ARM64
from core.outcome import Outcome

MASK = (1 << 64) - 1


def signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


# name -> (arm64 lines, x86-64 lines, reference on unsigned 64-bit ints)
GOOD_FUNCTIONS = {
    "add": (["add x0, x0, x1"], ["mov rax, rdi", "add rax, rsi"], lambda a, b: (a + b) & MASK),
    "sub": (["sub x0, x0, x1"], ["mov rax, rdi", "sub rax, rsi"], lambda a, b: (a - b) & MASK),
    "mul": (["mul x0, x0, x1"], ["mov rax, rdi", "imul rax, rsi"], lambda a, b: (a * b) & MASK),
    "xor": (["eor x0, x0, x1"], ["mov rax, rdi", "xor rax, rsi"], lambda a, b: a ^ b),
    "umulh": (["umulh x0, x0, x1"], ["mov rax, rdi", "mul rsi", "mov rax, rdx"], lambda a, b: (a * b) >> 64),
    "shl": (["lsl x0, x0, x1"], ["mov rax, rdi", "mov rcx, rsi", "shl rax, cl"], lambda a, b: (a << (b & 63)) & MASK),
    "umin": (["cmp x0, x1", "csel x0, x0, x1, lo"], ["mov rax, rdi", "cmp rdi, rsi", "cmovae rax, rsi"],
             lambda a, b: min(a, b)),
    "smax": (["cmp x0, x1", "csel x0, x0, x1, gt"], ["mov rax, rdi", "cmp rdi, rsi", "cmovle rax, rsi"],
             lambda a, b: a if signed(a) > signed(b) else b),
    "avg_floor": (["and x2, x0, x1", "eor x3, x0, x1", "add x0, x2, x3, lsr #1"],
                  ["mov rax, rdi", "and rax, rsi", "mov rdx, rdi", "xor rdx, rsi", "shr rdx, 1", "add rax, rdx"],
                  lambda a, b: (a + b) >> 1),
    "via_scratch": (["str x0, [sp, #8]", "str x1, [sp, #16]", "ldr x2, [sp, #8]", "ldr x3, [sp, #16]",
                     "sub x0, x2, x3"],
                    ["mov qword ptr [rsp - 8], rdi", "mov qword ptr [rsp - 16], rsi", "mov rax, qword ptr [rsp - 8]",
                     "sub rax, qword ptr [rsp - 16]"], lambda a, b: (a - b) & MASK),
    "forward_branch": (["cmp x0, x1", "b.hs #8", "mov x0, x1"],
                       ["mov rax, rdi", "cmp rdi, rsi", "jae 5", "mov rax, rsi"], lambda a, b: max(a, b)),
}


@pytest.mark.parametrize("isa", ["arm64", "x86_64"])
def test_good_functions_on_edge_inputs(isa, edge_inputs):
    """Check known functions against Python on zero, one, all-ones, min/max signed inputs."""
    names = list(GOOD_FUNCTIONS)
    codes = [assemble(GOOD_FUNCTIONS[n][0 if isa == "arm64" else 1], isa) for n in names]
    with open_executor(isa, backend="emulated") as ex:
        res = ex.run(codes, edge_inputs)
    assert res.outputs.shape == (len(names), len(edge_inputs)) and res.outputs.dtype == np.uint64
    assert res.outcomes.dtype == np.uint8
    for row, name in enumerate(names):
        ref = GOOD_FUNCTIONS[name][2]
        expected = [ref(int(a), int(b)) for a, b in edge_inputs]
        assert (res.outcomes[row] == Outcome.OK).all(), name
        assert res.outputs[row].tolist() == expected, name


ARM64_OUTCOMES = [
    ([".word 0x00000000"], Outcome.SIGILL),                          # udf
    (["mrs x0, currentel"], Outcome.SIGILL),                         # EL1 register at EL0
    (["msr sctlr_el1, x0"], Outcome.SIGILL),                         # privileged write
    (["eret"], Outcome.SIGILL),                                      # Unicorn would execute it
    (["mov x9, #0", "ldr x0, [x9]"], Outcome.SIGSEGV),               # null load
    (["mov x9, #0", "br x9"], Outcome.SIGSEGV),                      # jump to 0
    (["adr x9, #0", "str x0, [x9]"], Outcome.SIGSEGV),               # write to its own code
    (["movz x9, #0x6000, lsl #16", "str x0, [x9]"], Outcome.SIGSEGV),  # harness data is read-only
    (["mov x9, sp", "add x9, x9, #8", "mov sp, x9", "ldr x0, [sp]"], Outcome.SIGBUS),  # misaligned SP
    (["add x9, sp, #1", "ldxr x0, [x9]"], Outcome.SIGBUS),            # misaligned exclusive
    (["brk #0"], Outcome.SIGTRAP),
    (["svc #0"], Outcome.SYSCALL),
    (["b #0"], Outcome.TIMEOUT),
    (["mov x30, x0", "ret"], Outcome.SIGSEGV),                       # return to a bad address
    (["sub sp, sp, #16", "str x0, [sp]", "ldr x0, [sp]", "add sp, sp, #16"], Outcome.OK),
    (["mrs x0, tpidr_el0"], Outcome.OK),
    (["mrs x0, nzcv"], Outcome.OK),
    (["wfi"], Outcome.OK),                                           # a hint at EL0 on Linux
    (["udiv x0, x0, xzr"], Outcome.OK),                              # AArch64 division never traps
]
X86_OUTCOMES = [
    (["ud2"], Outcome.SIGILL),
    (["xor eax, eax", "mov rax, qword ptr [rax]"], Outcome.SIGSEGV),
    (["hlt"], Outcome.SIGSEGV),                                      # privileged: #GP at CPL 3
    (["mov qword ptr [rsp], rax"], Outcome.SIGSEGV),                 # clobbered return address
    (["int3"], Outcome.SIGTRAP),
    (["syscall"], Outcome.SYSCALL),
    (["int 0x80"], Outcome.SYSCALL),
    (["xor esi, esi", "mov rax, rdi", "xor edx, edx", "div rsi"], Outcome.SIGFPE),
    (["jmp 0"], Outcome.TIMEOUT),
    (["push rdi", "pop rax"], Outcome.OK),
]


@pytest.mark.parametrize("isa,lines,expected",
                         [("arm64", lines, cls) for lines, cls in ARM64_OUTCOMES]
                         + [("x86_64", lines, cls) for lines, cls in X86_OUTCOMES])
def test_outcome_classes(isa, lines, expected):
    """Check that each snippet ends in its outcome class on every case, with 0 output on a crash."""
    inputs = np.array([[3, 4], [0, 1], [2**63, 7]], dtype=np.uint64)
    with open_executor(isa, backend="emulated", budget=500) as ex:
        res = ex.run([assemble(lines, isa)], inputs)
    assert [Outcome(c) for c in res.outcomes[0]] == [expected] * 3
    if expected is not Outcome.OK:
        assert not res.outputs[0].any()


def test_crash_in_case_3_of_8_only():
    """Check that a genome crashing only on case 3 keeps its other results and its batch-mates'."""
    inputs = np.array([[i, 10 * i] for i in range(8)], dtype=np.uint64)
    crash_on_3 = assemble(["cmp x0, #3", "b.ne #8", ".word 0", "add x0, x0, x1"])
    other = assemble(["sub x0, x1, x0"])
    with open_executor("arm64", backend="emulated") as ex:
        res = ex.run([other, crash_on_3, other], inputs)
    assert [Outcome(c) for c in res.outcomes[1]] == [Outcome.OK] * 3 + [Outcome.SIGILL] + [Outcome.OK] * 4
    assert res.outputs[1].tolist() == [11 * i if i != 3 else 0 for i in range(8)]
    for row in (0, 2):
        assert (res.outcomes[row] == Outcome.OK).all()
        assert res.outputs[row].tolist() == [9 * i for i in range(8)]


@pytest.mark.parametrize("isa", ["arm64", "x86_64"])
def test_mixed_batch_keeps_good_results(isa):
    """Check that good genomes in a batch full of crashing and looping ones are all correct."""
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, 2**64, size=(16, 2), dtype=np.uint64)
    if isa == "arm64":
        good = [assemble(["add x0, x0, x1"]), assemble(["fmov d0, x0", "fmov x0, d0", "eor x0, x0, x1"])]
        bad = [assemble(x) for x in (["b #0"], [".word 0"], ["mov x9, #0", "ldr x0, [x9]"], ["svc #0"],
                                     ["cbz x1, #8", "b #-4"])]
    else:
        good = [assemble(["lea rax, [rdi + rsi]"], isa), assemble(["movq xmm0, rdi", "movq rax, xmm0", "xor rax, rsi"], isa)]
        bad = [assemble(x, isa) for x in (["jmp 0"], ["ud2"], ["xor eax, eax", "mov rax, qword ptr [rax]"], ["syscall"])]
    codes = []
    for i in range(30):
        codes.append(good[i % 2] if i % 3 == 0 else bad[i % len(bad)])
    with open_executor(isa, backend="emulated", budget=300) as ex:
        res = ex.run(codes, inputs)
    a, b = inputs[:, 0].astype(object), inputs[:, 1].astype(object)
    expected = [[(int(x) + int(y)) & MASK for x, y in zip(a, b)], [int(x) ^ int(y) for x, y in zip(a, b)]]
    for i in range(0, 30, 3):
        assert (res.outcomes[i] == Outcome.OK).all()
        assert res.outputs[i].tolist() == expected[i % 2]
    looping = [i for i in range(30) if i % 3 and codes[i] == bad[0]]
    assert looping and all((res.outcomes[i] == Outcome.TIMEOUT).all() for i in looping)


def test_instruction_budget_is_exact_per_case():
    """Check that the budget counts the genome's instructions, return included, case by case."""
    countdown = assemble(["cbz x0, #12", "sub x0, x0, #1", "b #-8"])   # 3n + 2 instructions
    inputs = np.array([[n] for n in (0, 5, 10, 11, 10, 200)], dtype=np.uint64)
    with open_executor("arm64", backend="emulated", budget=32) as ex:
        res = ex.run([countdown], inputs)
    assert [Outcome(c) for c in res.outcomes[0]] == [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.TIMEOUT,
                                                     Outcome.OK, Outcome.TIMEOUT]
    straight = assemble(["add x0, x0, #1"] * 10)
    for budget, expected in ((10, Outcome.TIMEOUT), (11, Outcome.OK)):
        with open_executor("arm64", backend="emulated", budget=budget) as ex:
            assert ex.run([straight], inputs[:1]).outcomes[0, 0] == expected


def test_non_argument_registers_are_random_and_seeded():
    """Check that non-argument registers hold seeded per-batch random values, not zeros."""
    read_x5 = assemble(["mov x0, x5"])
    read_x1 = assemble(["mov x0, x1"])    # x1 is not an argument when there is one input
    inputs = np.array([[1], [2], [3]], dtype=np.uint64)
    with open_executor("arm64", backend="emulated", seed=11) as ex:
        first = ex.run([read_x5, read_x1], inputs)
        again = ex.run([read_x5, read_x1], inputs)
        other = ex.run([read_x5, read_x1], inputs, seed=12)
    with open_executor("arm64", backend="emulated", seed=11) as ex:
        fresh = ex.run([read_x5, read_x1], inputs)
    assert (first.outputs != 0).all()
    assert len(set(first.outputs[0].tolist())) == 1          # the same value on every case
    assert first.outputs[0, 0] != first.outputs[1, 0]
    assert np.array_equal(first.outputs, again.outputs) and np.array_equal(first.outputs, fresh.outputs)
    assert not np.array_equal(first.outputs, other.outputs)


def test_state_does_not_leak_between_cases_or_genomes():
    """Check that registers and scratch written by one case are reset for the next one."""
    dirty = assemble(["mov x5, #7", "str x5, [sp, #8]", "add x0, x0, #1"])
    reader = assemble(["ldr x6, [sp, #8]", "add x0, x5, x6"])
    inputs = np.array([[1], [2], [3], [4]], dtype=np.uint64)
    with open_executor("arm64", backend="emulated") as ex:
        alone = ex.run([reader], inputs)
        after_dirty = ex.run([dirty, reader, dirty, reader], inputs)
    assert len(set(alone.outputs[0].tolist())) == 1
    assert after_dirty.outputs[1].tolist() == alone.outputs[0].tolist()
    assert after_dirty.outputs[3].tolist() == alone.outputs[0].tolist()


def test_rewritten_arena_slots_run_new_code():
    """Check that code written over an evicted slot (same address) runs anew, not stale."""
    inputs = np.array([[0]], dtype=np.uint64)

    def movz(value: int) -> bytes:
        return (0xD2800000 | (value << 5)).to_bytes(4, "little")  # movz x0, #value

    with open_executor("arm64", backend="emulated") as ex:
        n = ex.unicorn._n_slots // 2 + 600
        first = ex.run([movz(i) for i in range(n)], inputs)
        second = ex.run([movz(i) + movz(i + 1) for i in range(n)], inputs)   # evicts ~1200 slots
        third = ex.run([movz(i) for i in range(n)], inputs)
    assert first.outputs[:, 0].tolist() == list(range(n))
    assert second.outputs[:, 0].tolist() == list(range(1, n + 1))
    assert third.outputs[:, 0].tolist() == list(range(n))


def test_slow_lane_genomes_each_run_their_own_code():
    """Check that consecutive slow-lane genomes (sharing one rewritten slot) give their own results."""
    codes = [assemble(["mrs x9, tpidr_el0", f"add x0, x0, #{k}"]) for k in range(5)]
    assert not triage(codes[0], ARM64, 256).fast
    with open_executor("arm64", backend="emulated") as ex:
        res = ex.run(codes, np.array([[100], [200]], dtype=np.uint64))
    assert res.outputs.tolist() == [[100 + k, 200 + k] for k in range(5)]


def test_same_seed_same_outputs_across_executors():
    """Check determinism: a mixed batch gives identical outputs and outcomes in two executors."""
    rng = np.random.default_rng(5)
    inputs = rng.integers(0, 2**64, size=(8, 3), dtype=np.uint64)
    words = rng.integers(0, 2**32, size=(40, 6), dtype=np.uint32)
    codes = [w.tobytes() for w in words] + [assemble(["add x0, x0, x7", "mul x0, x0, x2"])]
    results = []
    for _ in range(2):
        with open_executor("arm64", backend="emulated", seed=9, budget=200) as ex:
            results.append(ex.run(codes, inputs))
    assert np.array_equal(results[0].outputs, results[1].outputs)
    assert np.array_equal(results[0].outcomes, results[1].outcomes)


def test_counts_cover_every_class():
    """Check that Result.counts reports every class, zeros included, summing to all cases."""
    with open_executor("arm64", backend="emulated") as ex:
        res = ex.run([assemble(["nop"]), assemble([".word 0"])], np.zeros((3, 1), dtype=np.uint64))
    counts = res.counts()
    assert set(counts) == {o.name for o in Outcome}
    assert counts["OK"] == 3 and counts["SIGILL"] == 3 and sum(counts.values()) == 6


def _both_lanes(monkeypatch, codes, inputs, **options):
    """Results of the normal run and of the same run with every genome forced to the slow lane."""
    import dataclasses

    from core.executors import tiered
    with open_executor("arm64", backend="emulated", **options) as ex:
        normal = ex.run(codes, inputs)
    with monkeypatch.context() as m:
        m.setattr(tiered, "triage", lambda code, isa, scratch: dataclasses.replace(triage(code, isa, scratch),
                                                                                       fast=False))
        with open_executor("arm64", backend="emulated", **options) as ex:
            slow = ex.run(codes, inputs)
    return normal, slow


CRASHY = [
    [".word 0", "add x0, x0, x1"],                               # udf first: a rewritten trap
    ["add x5, x0, x1", "svc #0", "mov x0, x5"],                  # svc after a clobber
    ["cmp x0, #3", "b.ne #8", "brk #1", "add x0, x0, x1"],        # brk on case 3 only
    ["cbnz x1, #8", ".word 0x0000beef", "eor x0, x0, x1"],       # udf where x1 == 0
    ["and x9, x0, #1", "ldr x0, [x9]"],                          # memory fault on every case
    ["and x9, x0, #0xff0", "ldr x0, [x9, #8]"],                   # memory fault, per input
    ["add x9, sp, x0", "ldxr x0, [x9]"],                 # alignment fault on odd inputs (slow)
    ["and x9, x0, #7", "movz x10, #0x2000, lsl #16", "add x9, x9, x10", "ldxr x0, [x9]"],  # SIGBUS unless aligned
    [".word 0xffffffff"],                                        # undecodable: Unicorn's own UDEF
    ["add x0, x0, x1", "mov x7, x0"],                            # good, clobbers x7
    ["mov x0, x7"],                                              # sees x7's random value again
    ["mov x0, x30"],                                             # x30 as the slow lane sets it
]


def test_crash_heavy_batch_matches_slow_lane(monkeypatch):
    """Check that in-emulation fault recovery attributes every case exactly as the slow lane does."""
    rng = np.random.default_rng(8)
    inputs = rng.integers(0, 2**64, size=(12, 2), dtype=np.uint64)
    inputs[:4, 0] = [0, 1, 2, 3]
    inputs[4:6, 1] = 0
    inputs[6, 0] = 0x2000_0000 - 0x10_0000   # an address-like input
    codes = [assemble(lines) for lines in CRASHY] * 3
    normal, slow = _both_lanes(monkeypatch, codes, inputs, budget=100)
    assert sum(triage(c, ARM64, 256).fast for c in codes) >= 27
    assert np.array_equal(normal.outcomes, slow.outcomes)
    assert np.array_equal(normal.outputs, slow.outputs)
    out = normal.outcomes
    assert (out[0] == Outcome.SIGILL).all() and (out[1] == Outcome.SYSCALL).all()
    assert [Outcome(c) for c in out[2, :4]] == [Outcome.OK] * 3 + [Outcome.SIGTRAP]
    assert (out[3, 4:6] == Outcome.SIGILL).all() and (out[3, 6:] == Outcome.OK).all()
    assert (out[4] == Outcome.SIGSEGV).all() and (out[8] == Outcome.SIGILL).all()
    assert (out[9:12] == Outcome.OK).all()
    assert len(set(normal.outputs[10].tolist())) == 1 and len(set(normal.outputs[11].tolist())) == 1


def test_slot_rewrites_static_traps_only():
    """Check that udf/svc/brk become branches in a fast-lane slot and other words stay as they are."""
    from core.executors.unicorn import harness as H
    code = assemble(["add x0, x0, x1", ".word 0x00001234", "svc #3", "brk #0", ".word 0xffffffff"])
    slot = H.arm64_slot(code, frozenset(), frozenset())
    body = slot[16:16 + len(code)]
    words = [int.from_bytes(body[i:i + 4], "little") for i in range(0, len(body), 4)]
    assert body[:4] == code[:4] and body[16:] == code[16:]
    assert all(w >> 26 == 0b000101 for w in words[1:4])            # b <stub>
    targets = {16 + 4 * i + 4 * (w & 0x3FFFFFF) for i, w in enumerate(words) if 1 <= i <= 3}
    assert len(targets) == 3 and min(targets) >= 16 + len(code)


@pytest.mark.parametrize("clobbered,words", [
    (frozenset({"x4"}), frozenset()),
    (frozenset({"x5", "x6", "x7", "x29"}), frozenset({0, 248})),
    (frozenset({"x0", "x1", "x12", "x13", "x14"}), frozenset({8})),
])
def test_restore_encodings_match_keystone(clobbered, words):
    """Check the bit-level restore encodings against keystone's assembly of the same lines."""
    from core.executors import memory_map as MM
    from core.executors.unicorn import harness as H
    regs = sorted(int(r[1:]) for r in clobbered if 3 < int(r[1:]) < 30)
    lines = [f"movz x1, #{MM.DATA_BASE >> 16}, lsl #16"]
    for w in sorted(words):
        lines += [f"ldr x2, [x1, #{MM.SCRATCH_TMPL_OFF + w}]", f"str x2, [sp, #{w}]"]
    while regs:
        r = regs.pop(0)
        if regs and regs[0] == r + 1:
            lines.append(f"ldp x{r}, x{regs.pop(0)}, [x1, #{MM.RAND_OFF + 8 * r}]")
        else:
            lines.append(f"ldr x{r}, [x1, #{MM.RAND_OFF + 8 * r}]")
    assert H.arm64_restores(clobbered, words) == assemble(lines)


@pytest.mark.parametrize("lines,expected", [
    (["movz x9, #0x1000, lsl #16", "str x0, [x9]"], Outcome.SIGSEGV),     # arena is r-x
    (["movz x9, #0x6000, lsl #16", "ldr x0, [x9, #256]"], Outcome.OK),     # data is readable
    (["movz x9, #0x7000, lsl #16", "str x0, [x9]"], Outcome.SIGSEGV),      # harness is r-x
    (["movz x9, #0x5000, lsl #16", "str x0, [x9]"], Outcome.SIGSEGV),      # unmapped
    (["movz x9, #0x2000, lsl #16", "br x9"], Outcome.SIGSEGV),            # the stack is not executable
])
def test_memory_permissions_in_both_lanes(monkeypatch, lines, expected):
    """Check that the virtual TLB keeps every mapping's permissions, in the fast and slow lanes."""
    inputs = np.array([[1, 2], [3, 4]], dtype=np.uint64)
    normal, slow = _both_lanes(monkeypatch, [assemble(lines)], inputs)
    assert (normal.outcomes == expected).all() and (slow.outcomes == expected).all()


def test_misaligned_acquire_on_an_unmapped_address_is_sigbus():
    """Check that an ordered access checks alignment before translation (SIGBUS, as a Cortex-A72
    under Linux gives), and an aligned one to the same unmapped page is SIGSEGV."""
    from core.asm import assemble
    from core.outcome import Outcome
    code = assemble(["mov x1, x0", "ldarh w0, [x1]"])
    pair = assemble(["mov x1, x0", "ldaxp x2, x3, [x1]"])
    inputs = np.array([[0x10000000001], [0x10000000000], [0x10000000008]], np.uint64)
    with open_executor("arm64", backend="emulated", seed=1) as ex:
        res = ex.run([code, pair], inputs)
    assert res.outcomes[0].tolist() == [Outcome.SIGBUS, Outcome.SIGSEGV, Outcome.SIGSEGV]
    assert res.outcomes[1].tolist() == [Outcome.SIGBUS, Outcome.SIGSEGV, Outcome.SIGBUS]   # pair: 16 bytes


def test_unicorn_memory_stays_within_its_stated_bounds():
    """Check that the translation buffer is ``TCG_BUFFER_BYTES`` and that more distinct fast-lane
    genomes than ``ARENA_SLOTS`` leave the arena's index at ``ARENA_SLOTS``, every result right
    (issue 13: Unicorn's share of a long run's memory reaches its bound and stays there)."""
    from core.executors.unicorn import engine as UE
    n = UE.ARENA_SLOTS + 300
    codes = [(0xD2800000 | (i << 5)).to_bytes(4, "little") for i in range(n)]   # movz x0, #i
    with open_executor("arm64", backend="emulated") as ex:
        ex.interpreter = False               # every genome to Unicorn's fast lane
        res = ex.run(codes, np.array([[0]], dtype=np.uint64))
        assert ex.unicorn.uc.ctl_get_tcg_buffer_size() == UE.TCG_BUFFER_BYTES
        assert len(ex.unicorn._resident) == ex.unicorn._n_slots == UE.ARENA_SLOTS
    assert res.outputs[:, 0].tolist() == list(range(n)) and (res.outcomes == Outcome.OK).all()
