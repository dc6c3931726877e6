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

from functools import lru_cache

from core.executors.batch_state import X86_RAND_SLOT
from core.executors.memory_map import CTL_BASE, RAND

_X86_HW = {"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rbp": 5, "rsi": 6, "rdi": 7,
           **{f"r{i}": i for i in range(8, 16)}}
_X86_ARGS = ("rdi", "rsi", "rdx", "rcx")     # the row's order (``Isa.arg_regs``)
_X86_NAME = {slot: name for name, slot in X86_RAND_SLOT.items()}
X86_FLAGS = bytes.fromhex("4839c0")          # cmp rax, rax: ZF|PF, as the emulator's entry
A64_FLAGS = 0xEB1F03FF                       # cmp xzr, xzr: NZCV = Z|C


def _x86_load_abs(reg: str, addr: int) -> bytes:
    hw = _X86_HW[reg]
    return bytes((0x48 | (4 if hw >= 8 else 0), 0x8B, (hw & 7) << 3 | 4, 0x25)) + addr.to_bytes(4, "little")


def _x86_load_row(reg: str, index: int) -> bytes:
    hw = _X86_HW[reg]
    return bytes((0x48, 0x8B, 0x40 | (hw & 7) << 3 | 6, 8 * index))   # mov reg, [rsi + 8 * index]


@lru_cache(maxsize=1 << 16)
def x86_prologue(plan: int) -> bytes:
    """mov of each planned register (arguments from ``[rsi]``, ``rsi`` last), then the flags."""
    regs = [_X86_NAME[k] for k in range(15) if plan >> k & 1]
    out = [_x86_load_abs(r, CTL_BASE + RAND + 8 * X86_RAND_SLOT[r]) for r in regs if r not in _X86_ARGS]
    out += [_x86_load_row(r, _X86_ARGS.index(r)) for r in ("rdi", "rdx", "rcx", "rsi") if r in regs]
    return b"".join(out) + X86_FLAGS


def _a64_ldr(t: int, n: int, off: int) -> int:
    return 0xF9400000 | (off // 8) << 10 | n << 5 | t


def _a64_ldp(t: int, t2: int, n: int, off: int) -> int:
    return 0xA9400000 | ((off // 8) & 0x7F) << 15 | t2 << 10 | n << 5 | t


def _a64_loads(regs: list[int], base: int, offset) -> list[int]:
    """ldp for consecutive pairs, ldr for the rest."""
    words, i = [], 0
    while i < len(regs):
        k = regs[i]
        if i + 1 < len(regs) and regs[i + 1] == k + 1 and offset(k) % 8 == 0 and offset(k) < 504:
            words.append(_a64_ldp(k, k + 1, base, offset(k)))
            i += 2
        else:
            words.append(_a64_ldr(k, base, offset(k)))
            i += 1
    return words


@lru_cache(maxsize=1 << 16)
def arm64_prologue(plan: int) -> bytes:
    """ldr/ldp of each planned register (x0-x3 from ``[x17]``, x17 then x16 last), then the flags."""
    regs = [k for k in range(30) if plan >> k & 1]
    words = _a64_loads([k for k in regs if k > 3 and k not in (16, 17)], 16, lambda k: 8 * k)
    words += _a64_loads([k for k in regs if k <= 3], 17, lambda k: 8 * k)
    words += [_a64_ldr(k, 16, 8 * k) for k in (17, 16) if k in regs]
    words.append(A64_FLAGS)
    return b"".join(w.to_bytes(4, "little") for w in words)


def prologue(isa: str, plan: int) -> bytes:
    """The entry code of a slot whose genome has ``plan``."""
    return x86_prologue(plan) if isa == "x86_64" else arm64_prologue(plan)


#: the longest prologue of each ISA (every register): slots make room for it
MAX_PROLOGUE = {"x86_64": len(x86_prologue((1 << 15) - 1)), "arm64": len(arm64_prologue((1 << 30) - 1))}
