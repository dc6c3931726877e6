"""Per-genome entry code: the register loads a genome's plan asks for, as machine code (no execution).

The native stub (:mod:`core.executors.native.trampoline`) calls each arena slot; the slot starts
with the loads of the registers its genome may read before writing them
(:func:`core.executors.native.light.entry_plan`), then sets the entry flags and falls into the
genome's code. Values come from the control block (``RAND``, case c's row when per-case states
are on) and the case's argument row, so the genome sees :mod:`core.executors.batch_state`'s
entry state in every register it can observe; the others keep what the stub left there, which
no path through the code reads. Encoded by hand: the qemu lane has no assembler.

On entry (set by the stub): x86-64 ``rsi`` = the argument row; arm64 ``x16`` = the control
block's ``RAND``, ``x17`` = the argument row.
"""
from __future__ import annotations

import numpy as np

from core.executors.batch_state import X86_RAND_SLOT
from core.executors.memory_map import CTL_BASE, RAND

_X86_HW = {"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rbp": 5, "rsi": 6, "rdi": 7,
           **{f"r{i}": i for i in range(8, 16)}}
_X86_ARGS = ("rdi", "rsi", "rdx", "rcx")     # the row's order (``Isa.arg_regs``)
X86_FLAGS = bytes.fromhex("4839c0")          # cmp rax, rax: ZF|PF, as the emulator's entry
A64_FLAGS = 0xEB1F03FF                       # cmp xzr, xzr: NZCV = Z|C


def _x86_load(reg: str) -> bytes:
    """8 bytes: mov reg, [abs RAND slot], or [rsi + 8 * index] for an argument (SIB, disp32)."""
    hw = _X86_HW[reg]
    if reg in _X86_ARGS:
        disp = 8 * _X86_ARGS.index(reg)
        return bytes((0x48, 0x8B, 0x80 | (hw & 7) << 3 | 4, 0x26)) + disp.to_bytes(4, "little")
    addr = CTL_BASE + RAND + 8 * X86_RAND_SLOT[reg]
    return bytes((0x48 | (4 if hw >= 8 else 0), 0x8B, (hw & 7) << 3 | 4, 0x25)) + addr.to_bytes(4, "little")


def _a64_ldr(t: int, n: int, off: int) -> bytes:
    return (0xF9400000 | (off // 8) << 10 | n << 5 | t).to_bytes(4, "little")


def _units(isa: str) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(plan bit of each load in emission order, their encodings [units, size], the tail)."""
    if isa == "x86_64":
        order = [r for r in X86_RAND_SLOT if r not in _X86_ARGS] + ["rdi", "rdx", "rcx", "rsi"]   # rsi: the base
        bits, pieces, tail = [X86_RAND_SLOT[r] for r in order], [_x86_load(r) for r in order], X86_FLAGS
    else:   # x16 (RAND) and x17 (the row) are the bases: loaded last
        order = [k for k in range(4, 30) if k not in (16, 17)] + [0, 1, 2, 3, 17, 16]
        bits = order
        pieces = [_a64_ldr(k, 17, 8 * k) if k <= 3 else _a64_ldr(k, 16, 8 * k) for k in order]
        tail = A64_FLAGS.to_bytes(4, "little")
    return np.array(bits, np.uint64), np.frombuffer(b"".join(pieces), np.uint8).reshape(len(order), -1), tail


UNITS = {isa: _units(isa) for isa in ("x86_64", "arm64")}
#: where each slot's code starts: the tail (the flags) just before it, the loads before that
#: (the JIT's ``melvin_load`` writes them, right-aligned, padding before them)
CODE_AT = {isa: -(-(u[1].size) // 16) * 16 + len(u[2]) for isa, u in UNITS.items()}


def prologue(isa: str, plan: int) -> bytes:
    """The entry code of a slot whose genome has ``plan`` (what the JIT's ``melvin_load`` writes
    before ``CODE_AT``; tests/test_native_entry.py checks that it does)."""
    bits, pieces, tail = UNITS[isa]
    return b"".join(pieces[u].tobytes() for u, b in enumerate(bits.tolist()) if plan >> b & 1) + tail
