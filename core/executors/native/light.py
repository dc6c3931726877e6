"""Which x86-64 code the native trampoline may enter lightly (static, capstone, cached).

The full entry loads SIMD/x87 state before the call and restores FP control, DF/AC and the TLS
base after it; code that provably touches only general registers, flags and memory can change
none of them, so the trampoline skips that work for it (``Machine.run``'s ``light`` array).
"""
from __future__ import annotations

from functools import lru_cache

import capstone

from core.asm import disassembler
from core.executors.batch_state import X86_GPR

# Instructions that change state the native light entry does not restore, whatever capstone
# says about their registers (DF/AC, MXCSR, x87 control, segment bases, extended state).
_X86_HEAVY = {"std", "popf", "popfq", "popfd", "stac", "clac", "ldmxcsr", "fldcw", "fldenv", "frstor",
              "fxrstor", "fxrstor64", "xrstor", "xrstor64", "xrstors", "xrstors64", "wrfsbase",
              "wrgsbase", "fninit", "finit", "emms", "femms", "vzeroupper", "vzeroall"}


@lru_cache(maxsize=1 << 16)
def x86_light(code: bytes) -> int:
    """How the native trampoline may enter x86-64 ``code``: 0 full entry; 1 light entry, the
    code never uses rsp (the red zone need not be refilled); 2 light entry with the red zone.

    Light: the code provably touches only general registers, flags and memory, so the native
    trampoline skips loading SIMD/x87 state before the call and restoring FP control, DF/AC
    and the TLS base after it: such code can read or change none of them. Any doubt (an
    undecodable byte, a register capstone names outside the general set, a listed
    instruction) gives 0. Decided per instruction (cached), as genomes share instructions."""
    kind, decoded = 1, 0
    for address, size, _, _ in disassembler("x86_64").disasm_lite(bytes(code), 0):
        k = _x86_insn_light(bytes(code[address:address + size]))
        if k == 0:
            return 0
        kind = max(kind, k)
        decoded = address + size
    return kind if decoded == len(code) else 0


@lru_cache(maxsize=1 << 18)
def _x86_insn_light(insn_bytes: bytes) -> int:
    insn = next(disassembler("x86_64", detail=True).disasm(insn_bytes, 0, 1), None)
    if insn is None or insn.mnemonic in _X86_HEAVY or insn.mnemonic.startswith(("f", "v")):
        return 0
    try:
        reads, writes = insn.regs_access()
    except capstone.CsError:
        return 0
    kind = 1
    for r in {insn.reg_name(x) for x in (*reads, *writes)}:
        if r in ("rsp", "esp", "sp", "spl"):
            kind = 2
        elif r not in X86_GPR and r not in ("rflags", "rip"):
            return 0
    for op in insn.operands:
        if op.type == capstone.CS_OP_MEM and op.mem.segment:
            return 0   # fs:/gs: addressing reads the TLS bases
    return kind
