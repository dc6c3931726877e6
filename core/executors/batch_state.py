"""What a genome finds in the machine when it is called: the same on every backend.

Backends must agree bit for bit, so that a differential test can compare them and a genome's
fitness does not depend on where it ran. Per batch, from the seed:

* general registers that are not inputs: ``regs[k]`` for arm64 ``x<k>``; x86-64 registers take
  ``regs[X86_RAND_SLOT[name]]``; argument registers beyond the inputs get their slot's value too;
* SIMD registers: 32 x 16 bytes (arm64 v0-v31; x86-64 xmm0-xmm15 use the first 16);
* the scratch area: ``scratch`` random bytes (arm64 ``[sp, sp + scratch)``, x86-64 the red zone
  ``[rsp - scratch, rsp)`` below the return address);
* flags: arm64 NZCV = Z|C (``cmp x, x``), x86-64 ZF|PF set, the rest clear, DF clear;
  arm64 FPCR = FPSR = TPIDR_EL0 = 0. The flags are the same in every batch, so no test case can
  reveal code that reads them before setting them: ``evolve.fitness.reads_entry_flags`` refuses
  such code statically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.isa import Isa

#: x86-64 register -> index of its random value in ``BatchState.regs``
X86_RAND_SLOT = {name: i for i, name in enumerate(
    ("rdi", "rsi", "rdx", "rcx", "rax", "rbx", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"))}


def _x86_gpr_table() -> dict[str, str]:
    table = {}
    legacy = {"rax": "eax ax al ah", "rbx": "ebx bx bl bh", "rcx": "ecx cx cl ch", "rdx": "edx dx dl dh",
              "rsi": "esi si sil", "rdi": "edi di dil", "rbp": "ebp bp bpl"}
    for full, parts in legacy.items():
        table[full] = full
        table.update({p: full for p in parts.split()})
    for i in range(8, 16):
        table.update({f"r{i}{s}": f"r{i}" for s in ("", "d", "w", "b")})
    return table


#: x86-64 general register name (any width, as capstone names it) -> its 64-bit name: what
#: Unicorn's triage and the native light entry count as general-register state
X86_GPR = _x86_gpr_table()


@dataclass(frozen=True)
class BatchState:
    regs: np.ndarray   #: uint64 [32]
    simd: bytes        #: 512 bytes
    scratch: bytes     #: ``scratch`` bytes

    @classmethod
    def from_seed(cls, seed: int, scratch: int) -> "BatchState":
        rng = np.random.default_rng([seed, 0x4D454C56])
        regs = rng.integers(0, 2**64, size=32, dtype=np.uint64, endpoint=False)
        return cls(regs, rng.bytes(512), rng.bytes(scratch))

    def register(self, isa: Isa, name: str) -> int:
        """The value a non-argument register ``name`` holds at entry."""
        if isa.name == "arm64":
            return int(self.regs[int(name[1:])])
        return int(self.regs[X86_RAND_SLOT[name]])

    def input_table(self, isa: Isa, inputs: np.ndarray) -> np.ndarray:
        """uint64 [n_cases, 4]: the four argument registers per case, unused ones random."""
        table = np.empty((inputs.shape[0], 4), dtype=np.uint64)
        table[:] = [self.register(isa, r) for r in isa.arg_regs]
        table[:, :inputs.shape[1]] = inputs
        return table
