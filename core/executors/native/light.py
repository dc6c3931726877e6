"""Which x86-64 code the native trampoline may enter lightly (static, capstone, cached).

The full entry loads SIMD/x87 state before the call and restores FP control, DF/AC and the TLS
base after it; code that provably touches only general registers, flags and memory can change
none of them, so the trampoline skips that work for it (``Machine.run``'s ``light`` array).
"""
from __future__ import annotations

from functools import lru_cache

import capstone

from core.asm import disassembler
from core.executors.batch_state import X86_GPR, X86_RAND_SLOT

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


# ---------------------------------------------------------------- per-genome entry plans
#: plan bits: bit k (k < 32) loads register k (x86-64: ``X86_RAND_SLOT`` order; arm64: x<k>);
#: ``MEM`` refills the scratch area; ``HEAVY``: the full entry (SIMD/x87/FP control, flags
#: image) and the exit fixup, with every register and the scratch
MEM, HEAVY = 1 << 32, 1 << 33
_REGS = {"x86_64": (1 << 15) - 1, "arm64": (1 << 30) - 1}   # arm64 x30 is the return address
FULL = {isa: regs | MEM | HEAVY for isa, regs in _REGS.items()}
_OUT = {"x86_64": 1 << X86_RAND_SLOT["rax"], "arm64": 1}
_JUMPS = (capstone.CS_GRP_JUMP, capstone.CS_GRP_CALL, capstone.CS_GRP_RET, capstone.CS_GRP_INT,
          capstone.CS_GRP_IRET, capstone.CS_GRP_BRANCH_RELATIVE)
# x86-64 instructions whose explicit destination is only written (a 32/64-bit one replaces the
# whole register); every other write counts as a read too (cmov, setcc, bsf, 8/16-bit writes)
_X86_WRITE_ONLY = {"mov", "movabs", "movzx", "movsx", "movsxd", "lea"}
_X86_FULL_WIDTH = {n for n, full in X86_GPR.items() if n == full or n[0] == "e" or n.endswith("d")}
_A64_GPR = {**{f"x{k}": k for k in range(31)}, **{f"w{k}": k for k in range(31)}}
_A64_HARMLESS = {"xzr", "wzr", "nzcv"}
_A64_READS_DEST = {"movk", "bfi", "bfxil", "bfm", "bfc"}


@lru_cache(maxsize=1 << 16)
def entry_plan(isa: str, code: bytes) -> int:
    """What the native entry must set up for ``code`` (plan bits above): the registers it may
    read before writing them (the output register if it never writes it), the scratch area if
    it touches memory or the stack pointer, the full state if it uses anything beyond general
    registers and flags. Any doubt gives ``FULL[isa]``: undecodable bytes, indirect control
    flow, a branch that leaves the code or lands inside an instruction, writes of the stack
    pointer (x86-64) or x30 (arm64), which make the return go elsewhere. A return (``ret``,
    anywhere) reads the output only. Registers are followed to the first branch or return;
    after a branch everything not yet written counts as read."""
    insns, end = [], 0
    for address, size, _, _ in disassembler(isa).disasm_lite(bytes(code), 0):
        info = _insn_info(isa, bytes(code[address:address + size]))
        if info is None:
            return FULL[isa]
        insns.append((address, info))
        end = address + size
    if end != len(code):
        return FULL[isa]
    starts = {a for a, _ in insns} | {len(code)}
    plan, written, scanning = 0, 0, True
    for address, (reads, full, mem, heavy, branch, rel) in insns:
        if heavy:
            return FULL[isa]
        if mem:
            plan |= MEM
        if branch == "indirect" or branch == "direct" and address + rel not in starts:
            return FULL[isa]
        if scanning:
            plan |= reads & ~written
            written |= full
            if branch == "ret":      # the return: only the output is read there
                plan |= _OUT[isa] & ~written
                scanning = False
            elif branch:
                plan |= _REGS[isa] & ~written
                scanning = False
    if scanning:
        plan |= _OUT[isa] & ~written
    return plan


@lru_cache(maxsize=1 << 18)
def _insn_info(isa: str, insn_bytes: bytes):
    """(reads mask, fully written mask, memory, heavy, branch kind, relative target) of one
    instruction decoded at 0, or None when it cannot be classified."""
    insn = next(disassembler(isa, detail=True).disasm(insn_bytes, 0, 1), None)
    if insn is None:
        return None
    try:
        reads, writes = insn.regs_access()
    except capstone.CsError:
        return None
    reads = {insn.reg_name(x) for x in reads}
    writes = {insn.reg_name(x) for x in writes}
    for op in insn.operands:
        if op.type == capstone.CS_OP_REG:
            (writes if op.access & capstone.CS_AC_WRITE else reads).add(insn.reg_name(op.reg))
    mem = any(op.type == capstone.CS_OP_MEM for op in insn.operands)
    branch, rel = "", 0
    if any(insn.group(g) for g in _JUMPS):
        imm = [op.imm for op in insn.operands if op.type == capstone.CS_OP_IMM]
        if insn.group(capstone.CS_GRP_RET):
            branch = "ret"
        elif insn.group(capstone.CS_GRP_INT) or insn.group(capstone.CS_GRP_IRET):
            branch = "stop"
        elif insn.group(capstone.CS_GRP_BRANCH_RELATIVE) and imm:
            branch, rel = "direct", imm[-1]
        else:
            branch = "indirect"
    if isa == "x86_64":
        if _x86_insn_light(insn_bytes) == 0:
            return 0, 0, False, True, "", 0
        # the return's own read of [rsp] is the return address the stub's call wrote
        mem = mem or branch != "ret" and bool({"rsp", "esp", "sp", "spl"} & (reads | writes))
        if {"rsp", "esp", "sp", "spl"} & writes and branch != "ret":
            branch = "indirect"   # the return address moves: the return may go anywhere
        names = X86_GPR
        slot = X86_RAND_SLOT
        pure = insn.mnemonic in _X86_WRITE_ONLY or insn.mnemonic == "imul" and len(insn.operands) == 3
        full = {n for n in writes if n in names and pure and n in _X86_FULL_WIDTH}
        rmask = _mask(slot[names[n]] for n in reads | (writes - full) if n in names)
        fmask = _mask(slot[names[n]] for n in full)
        return rmask, fmask, mem, False, branch, rel
    heavy = insn.mnemonic in ("mrs", "msr", "sys", "sysl") or any(
        op.type not in (capstone.CS_OP_REG, capstone.CS_OP_IMM, capstone.CS_OP_MEM) for op in insn.operands)
    for n in reads | writes:
        if n not in _A64_GPR and n not in _A64_HARMLESS and n not in ("sp", "wsp"):
            heavy = True
    if heavy:
        return 0, 0, False, True, "", 0
    mem = mem or bool({"sp", "wsp"} & (reads | writes))
    if 30 in {_A64_GPR[n] for n in writes if n in _A64_GPR}:
        branch = "indirect"   # x30 rewritten: the return may go anywhere
    if branch == "ret" and insn.operands and insn.reg_name(insn.operands[0].reg) != "x30":
        branch = "indirect"
    dest_read = insn.mnemonic in _A64_READS_DEST
    rmask = _mask(_A64_GPR[n] for n in reads if n in _A64_GPR)
    wmask = _mask(_A64_GPR[n] for n in writes if n in _A64_GPR)
    if dest_read:
        rmask |= wmask
    return rmask & _REGS["arm64"], wmask & _REGS["arm64"], mem, False, branch, rel


def _mask(bits) -> int:
    m = 0
    for b in bits:
        m |= 1 << b
    return m
