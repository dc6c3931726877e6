"""Per-genome native entries: what a code's plan loads and the prologue that loads it (no execution).

The plans (:func:`core.executors.native.light.entry_plan`) are checked against hand-derived
register sets; the prologues (:mod:`core.executors.native.prologue`) are decoded with capstone,
which shares no code with the hand encoder, and each load's source is checked against the
control block layout. Execution is covered by tests/test_native_x86.py, the differential
tests and the qemu lane.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.asm import assemble, disassembler
from core.executors.batch_state import X86_RAND_SLOT
from core.executors.memory_map import CTL_BASE, RAND
from core.executors.native.light import FULL, HEAVY, MEM, entry_plan
from core.executors.native.prologue import prologue
from core.isa import host_isa

ROOT = Path(__file__).resolve().parent.parent

SLOT = {v: k for k, v in X86_RAND_SLOT.items()}


def x86_regs(plan: int) -> set[str]:
    return {SLOT[k] for k in range(15) if plan >> k & 1}


def w(*words: int) -> bytes:
    return b"".join(x.to_bytes(4, "little") for x in words)


@pytest.mark.parametrize("lines, regs, mem", [
    (["mov rax, rdi", "add rax, rsi"], {"rdi", "rsi"}, False),
    (["add rax, rbx"], {"rax", "rbx"}, False),                   # rax read before written
    (["mov eax, 1"], set(), False),                               # 32-bit writes replace rax
    (["mov al, 1"], {"rax"}, False),                              # 8-bit writes keep the rest
    (["cmove rcx, rdx", "mov rax, rcx"], {"rcx", "rdx"}, False),  # cmov may keep rcx
    (["xor r8, r9", "mov rax, rax"], {"r8", "r9", "rax"}, False),
    (["imul rax, rbx, 3"], {"rbx"}, False),
    (["mov rax, qword ptr [rdi]"], {"rdi"}, True),                # memory: the red zone too
    (["mov rax, qword ptr [rsp - 8]"], set(), True),
    (["mov rbx, rdi"], {"rdi", "rax"}, False),                    # never writes rax: the output
    (["mov rax, rdi", "ret"], {"rdi"}, False),                    # the return reads the output only
    (["mul rbx"], {"rax", "rbx", "rdx"}, False),                  # implicit; a write not a mov: read too
])
def test_x86_plans_load_what_the_code_reads_first(lines, regs, mem):
    """Check the registers (and the scratch) planned for straight-line x86-64 code."""
    plan = entry_plan("x86_64", assemble(lines, "x86_64"))
    assert plan & HEAVY == 0
    assert x86_regs(plan) == regs and bool(plan & MEM) == mem


def test_x86_plans_after_a_branch_load_everything_not_yet_written():
    """Check that registers are followed to the first branch only."""
    early = bytes.fromhex("4889f8" "40f6c601" "7401" "c3" "4801f0")   # rax = rdi; test; jz +1; ret; add
    plan = entry_plan("x86_64", early)
    assert x86_regs(plan) == set(X86_RAND_SLOT) - {"rax"} and not plan & MEM


@pytest.mark.parametrize("code", [
    bytes.fromhex("4889f8" "40f6c601" "7402" "c3" "4801f0"),   # jumps into the middle of an instruction
    bytes.fromhex("ebfe"[:2] + "10"),                          # jumps past the code's end
    assemble(["jmp rax"], "x86_64"),                           # indirect
    assemble(["push rax", "ret"], "x86_64"),                   # the return goes where rax points
    assemble(["movq xmm0, rdi"], "x86_64"),                    # SIMD
    assemble(["std", "mov rax, 1"], "x86_64"),                 # DF
    bytes.fromhex("ffff"),                                     # undecodable
])
def test_x86_doubt_gives_the_full_entry(code):
    """Check that x86-64 code the analysis cannot follow gets every register and all state."""
    assert entry_plan("x86_64", code) == FULL["x86_64"]


@pytest.mark.parametrize("words, regs, mem", [
    ((0x8B020020,), {1, 2}, False),                  # add x0, x1, x2
    ((0x0B020020,), {1, 2}, False),                  # add w0, w1, w2: the write replaces x0
    ((0xF2A00023, 0xAA0303E0), {3}, False),          # movk x3, #1, lsl #16 keeps x3; mov x0, x3
    ((0xF94003E0,), set(), True),                    # ldr x0, [sp]
    ((0xF9400020,), {1}, True),                      # ldr x0, [x1]
    ((0xAA0503E1,), {0, 5}, False),                  # mov x1, x5: never writes x0, the output
    ((0x8B020020, 0xD65F03C0), {1, 2}, False),       # add; ret
    ((0xEB03005F, 0xD35AFC40), {2, 3}, False),       # cmp x2, x3 reads x2 (capstone says it writes it); lsr x0, x2
    ((0x8B1C03DD, 0xAA1D03E0), {28}, False),         # add x29, x30, x28; mov x0, x29 (capstone: fp, lr)
])
def test_arm64_plans_load_what_the_code_reads_first(words, regs, mem):
    """Check the registers (and the scratch) planned for straight-line arm64 code."""
    plan = entry_plan("arm64", w(*words))
    assert plan & HEAVY == 0
    assert {k for k in range(30) if plan >> k & 1} == regs and bool(plan & MEM) == mem


@pytest.mark.parametrize("words", [
    (0x1E622820,),               # fadd d0, d1, d2
    (0xD53BD040,),               # mrs x0, tpidr_el0
    (0xAA0003FE, 0xD65F03C0),    # mov x30, x0; ret: the return goes where x0 points
    (0xD61F0000,),               # br x0
    (0x14000002,),               # b past the end
    (0x94000001,),               # bl: writes x30
    (0xA9407BE0, 0xD65F03C0),    # ldp x0, x30, [sp]; ret: x30 loaded as a pair's second register
])
def test_arm64_doubt_gives_the_full_entry(words):
    """Check that arm64 code the analysis cannot follow gets every register and all state."""
    assert entry_plan("arm64", w(*words)) == FULL["arm64"]


def test_x86_prologues_load_each_planned_register_from_its_source():
    """Check, decoding with capstone, that an x86-64 prologue loads exactly the planned registers,
    each from its RAND slot or its argument row word, rsi last, then sets the flags."""
    rng = np.random.default_rng(3)
    cs = disassembler("x86_64", detail=True)
    rows = {"rdi": 0, "rsi": 8, "rdx": 16, "rcx": 24}
    for plan in [0, (1 << 15) - 1, *rng.integers(0, 1 << 15, size=40).tolist()]:
        insns = list(cs.disasm(prologue("x86_64", plan), 0))
        assert [i.mnemonic for i in insns[-1:]] == ["cmp"] and insns[-1].op_str == "rax, rax"
        loaded = []
        for insn in insns[:-1]:
            dst, src = insn.operands
            reg = insn.reg_name(dst.reg)
            loaded.append(reg)
            if reg in rows:
                assert insn.reg_name(src.mem.base) == "rsi" and src.mem.disp == rows[reg]
            else:
                assert src.mem.base == 0 and src.mem.disp == CTL_BASE + RAND + 8 * X86_RAND_SLOT[reg]
        assert set(loaded) == x86_regs(plan) and len(loaded) == len(set(loaded))
        assert "rsi" not in loaded[:-1]


def test_arm64_prologues_load_each_planned_register_from_its_source():
    """The same for arm64: x0-x3 from the row (x17), the others from RAND (x16), bases last."""
    rng = np.random.default_rng(4)
    cs = disassembler("arm64", detail=True)
    for plan in [0, (1 << 30) - 1, *rng.integers(0, 1 << 30, size=40).tolist()]:
        insns = list(cs.disasm(prologue("arm64", plan), 0))
        assert insns[-1].mnemonic == "cmp" and insns[-1].op_str == "xzr, xzr"
        loaded = []
        for insn in insns[:-1]:
            assert insn.mnemonic == "ldr"
            dst, src = insn.operands
            name = insn.reg_name(dst.reg)
            k = 29 if name == "fp" else int(name[1:])
            base = insn.reg_name(src.mem.base)
            assert (base, src.mem.disp) == (("x17", 8 * k) if k <= 3 else ("x16", 8 * k))
            assert "x16" not in [f"x{j}" for j in loaded] and ("x17" not in [f"x{j}" for j in loaded] or k == 16)
            loaded.append(k)
        assert set(loaded) == {k for k in range(30) if plan >> k & 1}


def test_loaded_slots_hold_padding_prologue_code_and_return():
    """Check, in a worker-like subprocess (a Machine, nothing executed), that the JIT's
    melvin_load lays out each slot as padding, prologue(plan) ending at CODE_AT, the code, the
    return and padding again, also over longer codes an earlier batch left; that entries point
    at the prologues; that flags are the plans' bits 32-34; that a code too long is refused."""
    isa = host_isa()
    if isa is None:
        pytest.skip("needs an x86-64 or arm64 host")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import numpy as np
        from core.executors.memory_map import ARENA_BASE
        from core.executors.native.jit import Machine
        from core.executors.native.prologue import CODE_AT, prologue
        from core.isa import get_isa
        isa = get_isa({isa.name!r})
        size, at, ret, pad = 512, CODE_AT[isa.name], isa.ret_bytes, isa.pad_bytes
        m = Machine(isa.name, 128 if isa.name == "x86_64" else 256, size, pad, seccomp=False)
        rng = np.random.default_rng(7)
        row = np.resize(np.frombuffer(pad, np.uint8), size).tobytes()
        last, extent = 0, 0
        for n, longest in ((40, 300), (40, 40), (7, 0), (40, 120)):   # shorter codes over longer ones
            lens = rng.integers(0, longest // 4 + 1, size=n) * 4
            codes = [rng.integers(0, 256, size=k, dtype=np.uint8).tobytes() for k in lens]
            plans = rng.integers(0, 1 << 34, size=n, dtype=np.uint64)
            offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.uint64)
            entries = m.load(np.frombuffer(b"".join(codes) + b"\\0", np.uint8), offs, ret, plans)
            step = m.stride   # the batch's: the power of two from 64 that holds its longest code
            assert step == min(size, max(64, 1 << (at + int(lens.max()) + len(ret) + 15).bit_length()))
            for i, (code, plan) in enumerate(zip(codes, plans.tolist())):
                pro = prologue(isa.name, plan)
                want = row[:at - len(pro)] + pro + code + ret + row[at + len(code) + len(ret):step]
                assert m.arena[i * step:(i + 1) * step].tobytes() == want, (n, i)
                assert int(entries[i]) == ARENA_BASE + i * step + at - len(pro)
                assert int(m.code_entries[i]) == ARENA_BASE + i * step + at
                assert int(m.flags[i]) == plan >> 32 & 7
            if step != last:   # a new stride: what earlier batches wrote beyond is padding again
                beyond = m.arena[n * step:extent].tobytes()
                assert beyond == row[:len(pad)] * (len(beyond) // len(pad)), n
            last, extent = step, max(extent, n * step)
        try:
            m.load(np.zeros(size, np.uint8), np.array([0, size], np.uint64), ret, np.zeros(1, np.uint64))
        except ValueError as exc:
            print("REFUSED", exc)
        print("LAYOUT OK")
        m.close()
    """)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "LAYOUT OK" in proc.stdout, proc.stderr
    assert "REFUSED genome 0 exceeds the arena slot" in proc.stdout
