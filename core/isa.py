"""ISA descriptors: everything Melvin needs to know about one instruction set.

``arm64`` is the product (AArch64 / AAPCS64, Jetson). ``x86_64`` exists so that the native path
can run and be tested at full speed on x86-64 machines.

The calling convention every backend applies (DESIGN.md, "Calling convention"):

* a genome is the body of a function; the executor appends a return instruction, so code
  that never returns explicitly still returns, and code that returns early is fine too;
* inputs arrive in ``arg_regs`` (x0..x3 / rdi, rsi, rdx, rcx), the result is ``ret_reg``
  (x0 / rax);
* every other general-purpose (and on arm64, SIMD) register holds a per-batch random value that
  the genome must not rely on; so does the scratch area (per case instead, on request:
  ``core.executors.batch_state.CaseStates``);
* the scratch area is reachable through the stack only: on arm64 ``[sp, sp + scratch)``
  (the caller reserved it, as an exported wrapper does), on x86-64 the System V red zone
  ``[rsp - scratch, rsp)`` (so ``scratch <= 128`` there).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

import capstone
import keystone
import unicorn

# Capstone 6 renamed ARM64 to AArch64: alias it here, once.
CS_ARCH_ARM64 = getattr(capstone, "CS_ARCH_AARCH64", None)
if CS_ARCH_ARM64 is None:
    CS_ARCH_ARM64 = capstone.CS_ARCH_ARM64


@dataclass(frozen=True)
class Isa:
    """Static facts about one ISA. Instances are immutable and shared."""

    name: str
    #: registers that carry the inputs, in order (1..4 inputs)
    arg_regs: tuple[str, ...]
    #: register that carries the result
    ret_reg: str
    #: general-purpose registers the genome alphabet may name
    gp_regs: tuple[str, ...]
    #: stack pointer name in assembly
    sp_name: str
    #: fixed instruction size in bytes, or 0 for variable-length encodings
    insn_size: int
    #: encoding of the return instruction the executor appends
    ret_bytes: bytes
    #: byte pattern that fills unused slot space; jumping into it faults
    pad_bytes: bytes
    #: largest scratch area the calling convention allows
    max_scratch: int
    #: stack alignment required at function entry
    stack_align: int
    ks_arch: int
    ks_mode: int
    cs_arch: int
    cs_mode: int
    uc_arch: int
    uc_mode: int
    #: ``platform.machine()`` names of hosts that run this ISA natively
    host_machines: tuple[str, ...]

    @property
    def max_inputs(self) -> int:
        return len(self.arg_regs)

    def is_host(self) -> bool:
        """True when this machine executes the ISA natively."""
        return platform.machine().lower() in self.host_machines


ARM64 = Isa(
    name="arm64",
    arg_regs=("x0", "x1", "x2", "x3"),
    ret_reg="x0",
    # x18 is the platform register on some ABIs; Linux leaves it free, but exported code may
    # run elsewhere, so the alphabet avoids it. x29/x30 are frame pointer and link register.
    gp_regs=tuple(f"x{i}" for i in range(18)),
    sp_name="sp",
    insn_size=4,
    ret_bytes=bytes.fromhex("c0035fd6"),      # ret
    pad_bytes=bytes(4),                       # 0x00000000 = udf #0 -> SIGILL
    max_scratch=4096,
    stack_align=16,
    ks_arch=keystone.KS_ARCH_ARM64,
    ks_mode=keystone.KS_MODE_LITTLE_ENDIAN,
    cs_arch=CS_ARCH_ARM64,
    cs_mode=capstone.CS_MODE_ARM,
    uc_arch=unicorn.UC_ARCH_ARM64,
    uc_mode=unicorn.UC_MODE_ARM,
    host_machines=("aarch64", "arm64"),
)

X86_64 = Isa(
    name="x86_64",
    arg_regs=("rdi", "rsi", "rdx", "rcx"),
    ret_reg="rax",
    gp_regs=("rax", "rcx", "rdx", "rbx", "rsi", "rdi", "r8", "r9", "r10", "r11"),
    sp_name="rsp",
    insn_size=0,
    ret_bytes=bytes.fromhex("c3"),            # ret
    pad_bytes=bytes.fromhex("cc"),            # int3 -> SIGTRAP
    max_scratch=128,                          # the System V red zone
    stack_align=16,
    ks_arch=keystone.KS_ARCH_X86,
    ks_mode=keystone.KS_MODE_64,
    cs_arch=capstone.CS_ARCH_X86,
    cs_mode=capstone.CS_MODE_64,
    uc_arch=unicorn.UC_ARCH_X86,
    uc_mode=unicorn.UC_MODE_64,
    host_machines=("x86_64", "amd64"),
)

ISAS: dict[str, Isa] = {isa.name: isa for isa in (ARM64, X86_64)}


def get_isa(name: str | Isa) -> Isa:
    """Return the descriptor for ``name``; a clear ``ValueError`` for an unknown ISA."""
    if isinstance(name, Isa):
        return name
    try:
        return ISAS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown ISA {name!r}: expected one of {sorted(ISAS)}") from None


def host_isa() -> Isa | None:
    """The descriptor of this machine's own ISA, or None if Melvin has none for it."""
    for isa in ISAS.values():
        if isa.is_host():
            return isa
    return None
