"""What a genome finds in the machine when it is called: the same on every backend.

Backends must agree bit for bit, so that a differential test can compare them and a genome's
fitness does not depend on where it ran. Per batch, from the seed:

* general registers that are not inputs: ``regs[k]`` for arm64 ``x<k>``; x86-64 registers take
  ``regs[X86_RAND_SLOT[name]]``; argument registers beyond the inputs get their slot's value too;
  arm64 x30 is the exception: it holds the caller's return address (emulated: the harness's,
  ``UnicornEngine.ret_addr``, in every lane and the interpreter; native: the trampoline's), and
  ``regs[30]`` is unused. Like the flags it is the same on every case, so only the independence
  proof (x30 is one of its free variables) can reveal code that relies on it;
* SIMD registers: 32 x 16 bytes (arm64 v0-v31; x86-64 xmm0-xmm15 use the first 16);
* the scratch area: ``scratch`` random bytes (arm64 ``[sp, sp + scratch)``, x86-64 the red zone
  ``[rsp - scratch, rsp)`` below the return address);
* flags: arm64 NZCV = Z|C (``cmp x, x``), x86-64 ZF|PF set, the rest clear, DF clear;
  arm64 FPCR = FPSR = TPIDR_EL0 = 0. The flags are the same in every batch, so no test case can
  reveal code that reads them before setting them: ``evolve.fitness.reads_entry_flags`` refuses
  such code statically.

Per case (``Executor.run(..., states=...)``, :class:`CaseStates`): every case gets its own
registers, SIMD registers and scratch, the same fields as above (flags stay fixed). Held-out
validation uses :meth:`CaseStates.from_seed`, a hash of (seed, case index): case ``i``'s state
does not depend on the batch it runs in; a proof's counterexample gives explicit ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class CaseStates:
    """One entry state per case: what :class:`BatchState` is for a whole batch.

    Every backend runs case ``i`` with ``regs[i]``, ``simd[i]`` and ``scratch[i]`` in place of
    the batch's values (see the module docstring); argument registers beyond the inputs take
    ``regs[i]``'s values too."""

    regs: np.ndarray      #: uint64 [n, 32]
    simd: np.ndarray      #: uint8 [n, 512]
    scratch: np.ndarray   #: uint8 [n, scratch]

    def __len__(self) -> int:
        return self.regs.shape[0]

    @classmethod
    def from_seed(cls, seed: int, n_cases: int, scratch: int, first: int = 0) -> "CaseStates":
        """States of cases ``first .. first + n_cases - 1`` of ``seed``: word ``j`` of case ``i``
        is splitmix64 of (seed, i, j), so a case's state is the same in any batch and chunk."""
        words = 32 + 64 + -(-scratch // 8)
        with np.errstate(over="ignore"):
            key = _mix(np.uint64(seed) * _GOLDEN + np.uint64(0x4D454C56))
            case = _mix(key + (np.arange(first, first + n_cases, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)
            table = _mix(case[:, None] ^ (np.arange(words, dtype=np.uint64) * _GOLDEN)[None, :])
        raw = table.view(np.uint8)   # little-endian hosts, as the interpreter assumes
        return cls(table[:, :32].copy(), raw[:, 256:768].copy(), raw[:, 768:768 + scratch].copy())

    @classmethod
    def stack(cls, states: Sequence[BatchState]) -> "CaseStates":
        """One case per :class:`BatchState` (e.g. a proof's counterexample)."""
        return cls(np.stack([s.regs for s in states]).astype(np.uint64),
                   np.stack([np.frombuffer(s.simd, np.uint8) for s in states]),
                   np.stack([np.frombuffer(s.scratch, np.uint8) for s in states]))

    @classmethod
    def concat(cls, parts: Sequence["CaseStates"]) -> "CaseStates":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("regs", "simd", "scratch")))

    def take(self, idx) -> "CaseStates":
        return CaseStates(self.regs[idx], self.simd[idx], self.scratch[idx])

    def case(self, i: int) -> BatchState:
        """Case ``i``'s state as a batch state (the tiers that run one case at a time)."""
        return BatchState(self.regs[i], self.simd[i].tobytes(), self.scratch[i].tobytes())

    def input_table(self, isa: Isa, inputs: np.ndarray) -> np.ndarray:
        """uint64 [n_cases, 4]: the argument registers per case, unused ones the case's values."""
        if isa.name == "arm64":
            slots = [int(r[1:]) for r in isa.arg_regs]
        else:
            slots = [X86_RAND_SLOT[r] for r in isa.arg_regs]
        table = np.ascontiguousarray(self.regs[:, slots[:4]], dtype=np.uint64)
        table[:, :inputs.shape[1]] = inputs
        return table

    def check(self, n_cases: int, scratch: int) -> "CaseStates":
        """ValueError unless these are ``n_cases`` states with ``scratch`` bytes of scratch."""
        want = {"regs": (np.uint64, (n_cases, 32)), "simd": (np.uint8, (n_cases, 512)),
                "scratch": (np.uint8, (n_cases, scratch))}
        for name, (dtype, shape) in want.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
                got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"states.{name} must be {np.dtype(dtype)} {shape} (one row per case), got {got}")
        return CaseStates(*(np.ascontiguousarray(getattr(self, f)) for f in ("regs", "simd", "scratch")))
