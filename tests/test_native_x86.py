"""The native backend on x86-64 hosts: outcomes, containment, system calls, recovery, bad input.

Genome code only ever runs in the executor's worker processes; tests that need a hostile
process environment run in a subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.asm import assemble
from core.executors import ExecutorOptions, open_executor
from core.isa import X86_64
from core.outcome import Outcome

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not X86_64.is_host(), reason="needs an x86-64 host (tests/test_native_arm64.py covers arm64)")

INPUTS = np.array([[3, 5], [7, 9], [2**64 - 1, 1]], dtype=np.uint64)


def x86(*lines: str) -> bytes:
    return assemble(list(lines), "x86_64")


@pytest.fixture(scope="module")
def native():
    with open_executor("x86_64", backend="native", workers=2) as ex:
        yield ex


def string_at_red_zone(text: bytes, reg: str) -> list[str]:
    """Lines that write ``text`` (NUL-terminated) into the red zone and point ``reg`` at it."""
    data = text + b"\0" * (8 - len(text) % 8)
    lines = []
    for k in range(0, len(data), 8):
        lines += [f"movabs rax, {int.from_bytes(data[k:k + 8], 'little'):#x}",
                  f"mov qword ptr [rsp - {len(data) - k + 8}], rax"]
    return lines + [f"lea {reg}, [rsp - {len(data) + 8}]"]


@pytest.mark.parametrize("lines, expected", [
    (["mov rax, rdi", "add rax, rsi"], Outcome.OK),
    (["ud2"], Outcome.SIGILL),
    (["xor eax, eax", "mov rax, qword ptr [rax]"], Outcome.SIGSEGV),
    (["xor ecx, ecx", "div rcx"], Outcome.SIGFPE),
    (["int3"], Outcome.SIGTRAP),
    ([".byte 0xeb, 0xfe"], Outcome.TIMEOUT),
    (["mov eax, 39", "syscall"], Outcome.SYSCALL),
    (["mov eax, 20", "int 0x80"], Outcome.SYSCALL),
    (["hlt"], Outcome.SIGSEGV),
    ([".byte 0xe8, 0xfb, 0xff, 0xff, 0xff"], Outcome.SIGSEGV),   # runs off the genome stack into its guard page
    (["pushfq", "or qword ptr [rsp], 0x40000", "popfq", "mov rax, qword ptr [rsp - 3]"], Outcome.SIGBUS),
])
def test_outcome_classes(native, lines, expected):
    """Check that each kind of ending gets its outcome class on every case."""
    res = native.run([x86(*lines)], INPUTS)
    assert (res.outcomes == expected).all(), res.outcomes
    if expected == Outcome.OK:
        assert list(res.outputs[0]) == [8, 16, 0]
    else:
        assert not res.outputs.any()


def test_outputs_agree_with_the_emulator_on_edge_inputs(native, edge_inputs):
    """Check that straight-line code gives the emulator's outputs bit for bit, random registers included."""
    codes = [x86("mov rax, rdi", "imul rax, rsi", "xor rax, rbx"), x86("lea rax, [rdi + rsi*4]", "sub rax, r12"),
             x86("mov rax, qword ptr [rsp - 16]", "add rax, rdx"), x86("movq rax, xmm3", "add rax, rcx"),
             x86("mov rax, r15", "shl rax, cl", "adc rax, rbp")]
    with open_executor("x86_64", backend="emulated", seed=5) as em:
        expected = em.run(codes, edge_inputs)
    got = native.run(codes, edge_inputs, seed=5)
    assert (got.outcomes == 0).all()
    assert (got.outputs == expected.outputs).all()


def test_a_genomes_own_ret_is_the_return(native):
    """Check that a code ending in ``ret``, or returning early after a conditional branch, returns
    to the trampoline as falling through does (the genome is called: its ``ret`` is the return),
    with the emulator's outputs, random registers included."""
    body = x86("mov rax, rdi", "imul rax, rsi", "xor rax, rbx")
    early = bytes.fromhex("4889f8" "40f6c601" "7401" "c3" "4801f0")   # rax = rdi; odd rsi: ret; rax += rsi
    codes = [body, body + X86_64.ret_bytes, early, early + X86_64.ret_bytes]
    inputs = np.array([[3, 5], [7, 8], [2**64 - 1, 2], [10, 1]], dtype=np.uint64)
    got = native.run(codes, inputs, seed=7)
    assert (got.outcomes == 0).all()
    assert got.outputs[0].tolist() == got.outputs[1].tolist()
    assert got.outputs[2].tolist() == got.outputs[3].tolist() == [3, 15, 1, 10]
    with open_executor("x86_64", backend="emulated", seed=7) as em:
        assert em.run(codes, inputs).outputs.tolist() == got.outputs.tolist()


def test_a_crash_or_timeout_on_some_cases_resumes_at_the_next_case(native):
    """Check that genomes crashing or looping on some cases only (the first, middle and last)
    get the emulator's classes and outputs on every case, in the stub's light loop (no entry
    flags), its general loop (scratch, heavy) and next to well-behaved genomes."""
    from core.executors.native.light import FULL, HEAVY, MEM, entry_plan
    light = x86("mov rax, rdi", "xor edx, edx", "div rsi")                   # SIGFPE where rsi = 0
    mem = x86("mov qword ptr [rsp - 16], rdi", "xor edx, edx", "mov rax, qword ptr [rsp - 16]", "div rsi")
    heavy = x86("movq xmm0, rdi", "movq rax, xmm0", "xor edx, edx", "div rsi")
    loops = bytes.fromhex("4885f6" "7502" "ebfe") + x86("mov rax, rdi")   # test rsi, rsi; jnz +2; jmp .
    fine = x86("lea rax, [rdi + rsi]")
    plans = [entry_plan("x86_64", c) for c in (light, mem, heavy)]
    assert plans[0] & (MEM | HEAVY) == 0 and plans[1] & MEM and plans[2] == FULL["x86_64"]
    codes = [light, fine, mem, heavy, fine, loops, light]
    inputs = np.array([[7, 0], [9, 2], [5, 5], [1, 0], [2**64 - 1, 3], [4, 0]], dtype=np.uint64)
    res = native.run(codes, inputs)
    with open_executor("x86_64", backend="emulated") as emu:
        ref = emu.run(codes, inputs)
    assert np.array_equal(res.outcomes, ref.outcomes) and np.array_equal(res.outputs, ref.outputs)
    assert res.outcomes[0].tolist() == [Outcome.SIGFPE, 0, 0, Outcome.SIGFPE, 0, Outcome.SIGFPE]
    assert res.outcomes[5].tolist() == [Outcome.TIMEOUT, 0, 0, Outcome.TIMEOUT, 0, Outcome.TIMEOUT]
    assert res.outputs[0, 1] == 9 // 2 and res.outputs[2, 4] == (2**64 - 1) // 3


def test_clobbering_every_register_and_flags_leaves_next_cases_intact(native):
    """Check that a genome trashing callee-saved registers, SP, AC, MXCSR, x87 and the TLS base harms nobody."""
    hostile = [
        x86("xor ebx, ebx", "xor ebp, ebp", "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d",
            "xor r15d, r15d", "mov rax, 42"),
        x86("xor esp, esp", "mov rax, 1"),                       # returns through address 0
        x86("pushfq", "or qword ptr [rsp], 0x40400", "popfq", "mov rax, 7"),   # AC and DF left set
        x86("mov dword ptr [rsp - 8], 0", "ldmxcsr dword ptr [rsp - 8]", "fldz", "fldz", "mov rax, 3"),
        x86("xor eax, eax", "mov fs, eax", "mov rax, 5"),
        x86("xor eax, eax", "wrfsbase rax", "mov rax, 6"),
        x86("xor eax, eax", "wrfsbase rax", "ud2"),
    ]
    probe = x86("mov rax, qword ptr [rsp - 3]", "movsd xmm0, qword ptr [rsp - 16]", "divsd xmm0, xmm1",
                "mov rax, rdi", "add rax, rsi")
    codes = [c for h in hostile for c in (h, probe)]
    res = native.run(codes, INPUTS)
    assert list(res.outcomes[:, 0]) == [0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    for i in range(1, len(codes), 2):
        assert list(res.outputs[i]) == [8, 16, 0], i
    assert native.lost_batches == 0


@pytest.fixture
def lone():
    with open_executor("x86_64", backend="native", workers=1) as ex:
        yield ex


def test_syscalls_are_refused_and_take_no_effect(lone, tmp_path, capfd):
    """Check that exit_group, kill, unlinkat, execve, clone and writes to fd 1/2 end as SYSCALL and do nothing."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        codes = [
            x86("mov eax, 231", "xor edi, edi", "syscall"),                                   # exit_group
            x86("mov eax, 62", f"mov edi, {sleeper.pid}", "mov esi, 9", "syscall"),            # kill
            x86(*string_at_red_zone(str(victim).encode(), "rsi"), "mov eax, 263", "mov edi, -100",
                "xor edx, edx", "syscall"),                                                     # unlinkat
            x86(*string_at_red_zone(b"/bin/true", "rdi"), "xor esi, esi", "xor edx, edx", "mov eax, 59",
                "syscall"),                                                                     # execve
            x86("mov eax, 56", "mov edi, 17", "xor esi, esi", "xor edx, edx", "xor r10d, r10d", "syscall"),  # clone
            x86(*string_at_red_zone(b"PWNED1\n", "rsi"), "mov eax, 1", "mov edi, 1", "mov edx, 7", "syscall"),
            x86(*string_at_red_zone(b"PWNED2\n", "rsi"), "mov eax, 1", "mov edi, 2", "mov edx, 7", "syscall"),
            x86("mov eax, 231", "xor ebx, ebx", "int 0x80"),
        ]
        pid = lone.worker_pids[0]
        res = lone.run(codes, INPUTS[:1])
        assert (res.outcomes == Outcome.SYSCALL).all(), res.outcomes
        assert victim.read_text() == "keep me"
        assert sleeper.poll() is None
        assert lone.worker_pids == [pid] and lone.lost_batches == 0
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children == []
        out, err = capfd.readouterr()
        assert "PWNED" not in out + err
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_genome_that_breaks_its_worker_is_isolated_as_worker_lost(lone):
    """Check that a genome zeroing the worker's jmp_buf, then faulting, is the only WORKER_LOST."""
    from core.executors.memory_map import CTL_BASE, JMPBUF
    killer = x86(f"mov eax, {CTL_BASE + JMPBUF:#x}", *[f"mov qword ptr [rax + {8 * k}], 0" for k in range(8)], "ud2")
    good = [x86("mov rax, rdi", f"add rax, {k}") for k in range(7)]
    codes = good[:3] + [killer] + good[3:]
    res = lone.run(codes, INPUTS)
    assert (res.outcomes[3] == Outcome.WORKER_LOST).all()
    others = np.delete(np.arange(len(codes)), 3)
    assert (res.outcomes[others] == Outcome.OK).all()
    assert [list(res.outputs[i]) for i in others] == [[3 + k, 7 + k, (2**64 - 1 + k) % 2**64] for k in range(7)]
    assert lone.lost_batches >= 1 and len(lone.replacements) >= 1
    assert (lone.run(good, INPUTS).outcomes == 0).all()   # the replacement works


@pytest.mark.parametrize("action", ["exit", "hang", "corrupt"])
def test_dead_hung_or_lying_workers_are_replaced_and_the_culprit_bisected(action):
    """Check that a worker that dies, hangs or fails its sentinel costs only the culprit's cases."""
    from core.executors.native.backend import NativeExecutor
    culprit = x86("nop", "nop", "mov rax, rsi")
    good = [x86("mov rax, rdi", f"xor rax, {k}") for k in range(9)]
    codes = good[:6] + [culprit] + good[6:]
    opts = ExecutorOptions(workers=2).resolved(X86_64)
    with NativeExecutor(X86_64, opts, faults=[(culprit, action)], batch_slack=1.0) as ex:
        res = ex.run(codes, INPUTS)
        assert (res.outcomes[6] == Outcome.WORKER_LOST).all()
        keep = [i for i in range(len(codes)) if i != 6]
        assert (res.outcomes[keep] == Outcome.OK).all()
        assert [int(res.outputs[i, 0]) for i in keep] == [3 ^ k for k in range(9)]
        assert ex.lost_batches >= 2 and len(ex.replacements) == ex.lost_batches


def test_parallel_workers_split_a_batch_and_keep_genome_order():
    """Check that three workers return every genome's results in order, as one worker does."""
    codes = [x86("mov rax, rdi", f"imul rax, rax, {k}", "add rax, rsi") for k in range(50)]
    with open_executor("x86_64", backend="native", workers=3) as ex:
        assert len(set(ex.worker_pids)) == 3
        res = ex.run(codes, INPUTS)
    expected = [[(a * k + b) % 2**64 for a, b in INPUTS.tolist()] for k in range(50)]
    assert res.outputs.tolist() == expected


def test_close_is_idempotent_and_stops_workers():
    """Check that close() twice is fine, stops the workers and refuses later runs."""
    ex = open_executor("x86_64", backend="native", workers=1)
    pid = ex.worker_pids[0]
    ex.close()
    ex.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    with pytest.raises(ValueError, match="closed"):
        ex.run([x86("nop")], INPUTS)


def test_bad_input_is_refused_before_anything_runs(native):
    """Check that a foreign ISA names the emulated fallback and oversize code is a ValueError."""
    with pytest.raises(ValueError, match="backend='emulated'"):
        open_executor("arm64", backend="native")
    with pytest.raises(ValueError, match="max_code_bytes"):
        native.run([b"\x90" * 1025], INPUTS)
    with pytest.raises(ValueError, match="time_budget"):
        open_executor("x86_64", backend="native", time_budget=0)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_host_forbidding_executable_memory_gets_a_preflight_error():
    """Check that a process where shared executable mappings are refused gets an error saying why."""
    proc = run_python("""
        from core.executors import open_executor
        from core.executors.native import jit as J
        # mmap(prot & PROT_EXEC, flags & MAP_SHARED) -> EPERM: what SELinux's execmem policy does
        nr_mmap = 9
        prog = J.bpf_program([
            (J.BPF_LD_W_ABS, 0, 0, 0), (J.BPF_JEQ_K, 0, 5, nr_mmap),
            (J.BPF_LD_W_ABS, 0, 0, 32), (J.BPF_JSET_K, 0, 3, J.PROT_X),
            (J.BPF_LD_W_ABS, 0, 0, 40), (J.BPF_JSET_K, 0, 1, J.MAP_SHARED),
            (J.BPF_RET_K, 0, 0, J.SECCOMP_RET_ERRNO | 1), (J.BPF_RET_K, 0, 0, J.SECCOMP_RET_ALLOW)])
        J.install_seccomp(prog)
        try:
            open_executor("x86_64", backend="native", workers=1)
        except J.PreflightError as exc:
            print("PREFLIGHT", exc)
    """)
    assert "PREFLIGHT this host forbids executable memory" in proc.stdout, proc.stderr
    assert "backend='emulated'" in proc.stdout


def test_machine_installs_handlers_once_and_close_restores_the_hosts():
    """Check that a worker's handlers use SA_ONSTACK|SA_NODEFER and close() restores faulthandler's."""
    proc = run_python("""
        import faulthandler, signal
        from core.executors.native import jit as J
        faulthandler.enable()
        sigs = [signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGTRAP]
        before = [J.get_sigaction(s) for s in sigs]
        m = J.Machine("x86_64", 128, 1088, b"\\xcc", seccomp=False)
        during = [J.get_sigaction(s) for s in sigs]
        print("OURS", all(h == m.handler_addr and f & J.SA_ONSTACK and f & J.SA_NODEFER for h, f in during))
        m.close(); m.close()
        after = [J.get_sigaction(s) for s in sigs]
        print("RESTORED", [h for h, _ in after] == [h for h, _ in before], before[1][0] != 0)
    """)
    assert "OURS True" in proc.stdout, proc.stderr
    assert "RESTORED True True" in proc.stdout, proc.stderr


def test_light_entries_see_the_same_state_as_full_ones(native):
    """Check that light-entry genomes after state-changing full-entry ones get the emulator's results."""
    from core.executors.native.light import FULL, MEM, entry_plan

    def x86_light(code):
        plan = entry_plan("x86_64", code)
        return 0 if plan == FULL["x86_64"] else 2 if plan & MEM else 1
    dirty = [x86("mov qword ptr [rsp - 16], rdi", "std", "mov rax, 1"),         # red zone and DF
             x86("mov dword ptr [rsp - 8], 0", "ldmxcsr dword ptr [rsp - 8]", "mov rax, 2"),
             x86("movq xmm3, rdi", "mov rbx, rsi", "mov rax, 3")]
    readers = [x86("mov rax, qword ptr [rsp - 16]", "add rax, rsi"),           # light, red zone
               x86("lea rax, [rdi + rsi]", "imul rax, rbx")]                     # light, no stack
    assert [x86_light(c) for c in dirty] == [0, 0, 0] and [x86_light(c) for c in readers] == [2, 1]
    codes = [c for d in dirty for c in (d, *readers)]
    res = native.run(codes, INPUTS)
    with open_executor("x86_64", backend="emulated") as emu:
        ref = emu.run(codes, INPUTS)
    assert np.array_equal(res.outcomes, ref.outcomes) and (res.outcomes == Outcome.OK).all()
    assert np.array_equal(res.outputs, ref.outputs)


def test_specialised_entries_see_the_emulators_state_after_hostile_genomes(native):
    """Check that genomes whose prologue loads only some registers read the batch's values in
    them after genomes that overwrote every register, the red zone and the control state (the
    red zone's top word is left out: the emulator's harness leaves its entry address there)."""
    hostile = [x86(*[f"mov {r}, -1" for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10",
                                              "r11", "r12", "r13", "r14", "r15")]),
               x86("mov qword ptr [rsp - 16], -1", "mov qword ptr [rsp - 128], -1", "mov rax, 1"),
               x86("mov dword ptr [rsp - 8], 0", "ldmxcsr dword ptr [rsp - 8]", "movq xmm5, rdi", "mov rax, 2")]
    probes = [x86("mov rax, rbx", "add rax, r12"), x86("lea rax, [rbp + r15]"), x86("imul rax, r9"),
              x86("mov rax, qword ptr [rsp - 16]", "xor rax, qword ptr [rsp - 128]"), x86("mov rcx, rdx")]
    codes = [c for h in hostile for c in (h, *probes)]
    res = native.run(codes, INPUTS, seed=3)
    with open_executor("x86_64", backend="emulated", seed=3) as emu:
        ref = emu.run(codes, INPUTS)
    assert (res.outcomes == Outcome.OK).all() and np.array_equal(res.outputs, ref.outputs)


def test_a_batch_again_after_genomes_that_wrote_memory_sees_its_state_afresh(native):
    """Check that a worker keeps a batch's slots and entry state between batches only while no
    genome that may write memory ran: after genomes that wrote below the scratch area and
    over the control block's entry values, the same batch gets its first results again."""
    from core.executors.batch_state import X86_RAND_SLOT
    from core.executors.memory_map import CTL_BASE, RAND
    light = [x86("lea rax, [rdi + rsi]"), x86("imul rax, rbx"), x86("mov rax, r12")]
    below = x86("mov rax, qword ptr [rsp - 2048]", "mov qword ptr [rsp - 2048], 77")
    state = [x86(f"mov rcx, {CTL_BASE + RAND + 8 * X86_RAND_SLOT[r]:#x}", "mov qword ptr [rcx], -1")
             for r in ("rbx", "r12")]
    first = native.run(light, INPUTS, seed=5)
    with open_executor("x86_64", backend="emulated", seed=5) as emu:
        assert np.array_equal(first.outputs, emu.run(light, INPUTS).outputs)
    for _ in range(2):   # a light batch again: kept; after the writers: written again
        again = native.run(light, INPUTS, seed=5)
        assert np.array_equal(again.outputs, first.outputs) and (again.outcomes == Outcome.OK).all()
        wrote = native.run([below, *state], INPUTS, seed=5)
        assert wrote.outputs[0].tolist() == [0, 77, 77] and (wrote.outcomes == Outcome.OK).all()


def _random_codes(rng: np.random.Generator, n: int) -> list[bytes]:
    """Register and red-zone genomes over every general register but rsp, some crashing."""
    regs = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
    light = ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
    codes = []
    for i in range(n):
        pool = light if i % 2 else regs   # half of them leave the callee-saved registers alone
        lines = []
        for _ in range(int(rng.integers(1, 12))):
            a, b = (str(rng.choice(pool)) for _ in range(2))
            k = int(rng.integers(0, 10))
            lines.append([f"add {a}, {b}", f"sub {a}, {b}", f"xor {a}, {b}", f"imul {a}, {b}", f"mov {a}, {b}",
                          f"cmovz {a}, {b}", f"lea {a}, [{a} + 2 * {b} + 7]", f"mov qword ptr [rsp - 24], {a}",
                          f"mov {a}, qword ptr [rsp - 24]", "ud2" if rng.random() < 0.3 else f"ror {a}, 3"][k])
        codes.append(x86(*lines))
    return codes


def test_specialised_entries_equal_the_full_entry_bit_for_bit():
    """Check the per-genome entries (prologues, the loops that keep their state in registers)
    against the full entry for every genome, on random and hostile codes: outputs and outcomes."""
    from core.executors.native.light import KEEPS, entry_plan
    rng = np.random.default_rng(11)
    hostile = [x86(*[f"mov {r}, -1" for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r12", "r15")]),
               x86("xor ecx, ecx", "div rcx"), x86("mov rax, qword ptr [rsp]"), x86("ud2")]
    codes = [c for k, c in enumerate(_random_codes(rng, 120)) for c in ((c, hostile[k % 4]) if k % 5 == 0 else (c,))]
    keeps = [bool(entry_plan("x86_64", c) & KEEPS) for c in codes]
    assert 20 < sum(keeps) < len(codes) - 20
    inputs = rng.integers(0, 2**64, size=(17, 2), dtype=np.uint64)
    with open_executor("x86_64", backend="native", workers=1, seed=4) as ex:
        res = ex.run(codes, inputs)
        _, full = ex.measure(codes, inputs, "full")
    assert {Outcome.OK, Outcome.SIGILL, Outcome.SIGFPE} <= set(np.unique(res.outcomes).tolist())
    assert np.array_equal(res.outcomes, full.outcomes) and np.array_equal(res.outputs, full.outputs)


@pytest.mark.parametrize("lines", [["mov r14, rsi", "mov rax, rdi"], ["xor r12d, r12d"], ["xchg rbx, rbp"]])
def test_a_genome_that_writes_a_kept_register_against_its_plan_is_caught(lines):
    """Check that a genome given the KEEPS bit although it writes a register the stub keeps its
    loop state in (a wrong plan, forged here) is caught: its worker is replaced, it alone ends
    as WORKER_LOST, and the batch's other genomes get their results."""
    from core.executors.native.light import KEEPS
    codes = [x86("lea rax, [rdi + rsi]"), x86(*lines), x86("mov rax, rsi")]
    with open_executor("x86_64", backend="native", workers=1) as ex:
        first = ex.run(codes, INPUTS)
        ex._last_codes[3][1] |= np.uint64(KEEPS)   # the plans of the batch run last (run again below)
        pid = ex.worker_pids[0]
        res = ex.run(codes, INPUTS)
        assert ex.worker_pids[0] != pid and ex.lost_batches >= 1
    assert (res.outcomes[1] == Outcome.WORKER_LOST).all() and (first.outcomes[1] == Outcome.OK).all()
    assert np.array_equal(res.outputs[[0, 2]], first.outputs[[0, 2]]) and (res.outcomes[[0, 2]] == Outcome.OK).all()
