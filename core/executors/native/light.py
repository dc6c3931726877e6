"""What the native entry must set up for a genome's code (static, capstone, cached).

The full entry loads every register, the scratch area and SIMD/x87/FP state before the call
and restores FP control, DF/AC and the TLS base after it. :func:`entry_plan` finds what a code
can observe: the registers it may read before writing them, the scratch only if it touches
memory, the full state only if it uses anything beyond general registers and flags; the
worker generates the slot's prologue from the plan (:mod:`core.executors.native.prologue`).
"""
from __future__ import annotations

from functools import lru_cache

import capstone

from core.asm import disassembler
from core.executors.batch_state import X86_GPR, X86_RAND_SLOT

# Instructions that change state the native light (not heavy) exit does not restore, whatever capstone
# says about their registers (DF/AC, MXCSR, x87 control, segment bases, extended state).
_X86_HEAVY = {"std", "popf", "popfq", "popfd", "stac", "clac", "ldmxcsr", "fldcw", "fldenv", "frstor",
              "fxrstor", "fxrstor64", "xrstor", "xrstor64", "xrstors", "xrstors64", "wrfsbase",
              "wrgsbase", "fninit", "finit", "emms", "femms", "vzeroupper", "vzeroall"}
_X86_OTHER = {"rflags", "rip", "rsp", "esp", "sp", "spl"}


# ---------------------------------------------------------------- per-genome entry plans
#: plan bits: bit k (k < 32) loads register k (x86-64: ``X86_RAND_SLOT`` order; arm64: x<k>);
#: ``MEM`` refills the scratch area; ``HEAVY``: the full entry (SIMD/x87/FP control, flags
#: image) and the exit fixup, with every register and the scratch
MEM, HEAVY = 1 << 32, 1 << 33
#: ``KEEPS``: the code names none of ``KEPT``'s callee-saved registers (and its prologue loads
#: none): the stub may keep its loop state in them (it checks them after every case all the same)
KEEPS = 1 << 34
_REGS = {"x86_64": (1 << 15) - 1, "arm64": (1 << 30) - 1}   # arm64 x30 is the return address
FULL = {isa: regs | MEM | HEAVY for isa, regs in _REGS.items()}
KEPT = {"x86_64": sum(1 << X86_RAND_SLOT[r] for r in ("rbx", "rbp", "r12", "r13", "r14", "r15")),
        "arm64": sum(1 << k for k in range(19, 29))}
_OUT = {"x86_64": 1 << X86_RAND_SLOT["rax"], "arm64": 1}
_JUMPS = (capstone.CS_GRP_JUMP, capstone.CS_GRP_CALL, capstone.CS_GRP_RET, capstone.CS_GRP_INT,
          capstone.CS_GRP_IRET, capstone.CS_GRP_BRANCH_RELATIVE)
# x86-64 instructions whose explicit destination is only written (a 32/64-bit one replaces the
# whole register); every other write counts as a read too (cmov, setcc, bsf, 8/16-bit writes)
_X86_WRITE_ONLY = {"mov", "movabs", "movzx", "movsx", "movsxd", "lea"}
_X86_FULL_WIDTH = {n for n, full in X86_GPR.items() if n == full or n[0] == "e" or n.endswith("d")}
_A64_GPR = {**{f"x{k}": k for k in range(31)}, **{f"w{k}": k for k in range(31)}, "fp": 29, "lr": 30}
_A64_HARMLESS = {"xzr", "wzr", "nzcv"}
# arm64 instructions that write their first operand (load pairs: both) whole without reading it
_A64_WRITE_ONLY = set("""add adds sub subs and ands orr eor eon orn bic bics mov movz movn mvn neg negs ngc ngcs
    adc adcs sbc sbcs lsl lsr asr ror lslv lsrv asrv rorv mul madd msub mneg smull umull smulh umulh smaddl umaddl
    smsubl umsubl smnegl umnegl udiv sdiv csel csinc csinv csneg cset csetm cinc cinv cneg clz cls rbit rev rev16
    rev32 sxtb sxth sxtw uxtb uxth ubfx sbfx ubfiz sbfiz ubfm sbfm extr adr adrp ldr ldrb ldrh ldrsb ldrsh ldrsw
    ldur ldurb ldurh ldursb ldursh ldursw ldp ldpsw ldnp ldar ldarb ldarh ldxr ldxrb ldxrh ldaxr""".split())
_A64_WRITE_TWO = {"ldp", "ldpsw", "ldnp"}


@lru_cache(maxsize=1 << 16)
def entry_plan(isa: str, code: bytes) -> int:
    """What the native entry must set up for ``code`` (plan bits above): the registers it may
    read before writing them (the output register if it never writes it), the scratch area if
    it touches memory or the stack pointer, the full state if it uses anything beyond general
    registers and flags. Any doubt gives ``FULL[isa]``: undecodable bytes, indirect control
    flow, a branch that leaves the code or lands inside an instruction, writes of the stack
    pointer (x86-64) or x30 (arm64), which make the return go elsewhere. A return (``ret``,
    anywhere) reads the output only. Registers are followed to the first branch or return;
    after a branch everything not yet written counts as read. ``KEEPS`` when no instruction
    names a register of ``KEPT[isa]`` and the prologue loads none."""
    insns = code_insns(isa, code)
    if insns is None:
        return FULL[isa]
    insns = [(address, info) for address, _, info in insns]
    starts = {a for a, _ in insns} | {len(code)}
    plan, written, scanning, named = 0, 0, True, 0
    for address, (reads, full, mem, heavy, branch, rel) in insns:
        if heavy:
            return FULL[isa]
        named |= reads | full
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
    return plan | (KEEPS if (named | plan) & KEPT[isa] == 0 else 0)


def code_insns(isa: str, code: bytes) -> list[tuple[int, bytes, tuple]] | None:
    """(address, bytes, :func:`insn_info`) of every instruction of ``code`` (capstone's
    boundaries), or None when some bytes do not decode, or decode to an instruction that
    cannot be classified."""
    code, insns, end = bytes(code), [], 0
    for address, size, _, _ in disassembler(isa).disasm_lite(code, 0):
        raw = code[address:address + size]
        info = insn_info(isa, raw)
        if info is None:
            return None
        insns.append((address, raw, info))
        end = address + size
    return insns if end == len(code) else None


@lru_cache(maxsize=1 << 18)
def insn_info(isa: str, insn_bytes: bytes):
    """(reads mask, fully written mask, memory, heavy, branch kind, relative target) of one
    instruction decoded at 0, or None when it cannot be classified."""
    insn = next(disassembler(isa, detail=True).disasm(insn_bytes, 0, 1), None)
    if insn is None:
        return None
    try:
        reads, writes = insn.regs_access()
    except capstone.CsError:
        return None
    # capstone's access lists are not trusted alone (arm64 ``cmp x2, x3`` "writes" x2, "reads"
    # only x3): every register operand counts as read, except a destination that the mnemonic
    # is known to write whole without reading; other writes count as reads too
    cap = {insn.reg_name(x) for x in (*reads, *writes)}
    ops = [insn.reg_name(op.reg) if op.type == capstone.CS_OP_REG else None for op in insn.operands]
    mem_regs = {insn.reg_name(r) for op in insn.operands if op.type == capstone.CS_OP_MEM
                for r in (op.mem.base, op.mem.index) if r}
    named = {n for n in ops if n} | mem_regs
    mem = insn.mnemonic != "lea" and any(op.type == capstone.CS_OP_MEM for op in insn.operands)
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
        if insn.mnemonic in _X86_HEAVY or insn.mnemonic.startswith(("f", "v")) \
                or any(n not in X86_GPR and n not in _X86_OTHER for n in cap | named) \
                or any(op.type == capstone.CS_OP_MEM and op.mem.segment for op in insn.operands):
            return 0, 0, False, True, "", 0   # fs:/gs: addressing reads the TLS bases
        stack = {"rsp", "esp", "sp", "spl"}
        # the return's own read of [rsp] is the return address the stub's call wrote
        mem = mem or branch != "ret" and bool(stack & (cap | named))
        if branch != "ret" and stack & ({insn.reg_name(x) for x in writes} | {n for n in ops if n}):
            branch = "indirect"   # the return address may move: the return may go anywhere
        pure = insn.mnemonic in _X86_WRITE_ONLY or insn.mnemonic == "imul" and len(ops) == 3
        dests = {0} if pure and ops and ops[0] in _X86_FULL_WIDTH else set()
        names, slot = X86_GPR, X86_RAND_SLOT
        full = {ops[k] for k in dests}
        read = {n for k, n in enumerate(ops) if n and k not in dests} | mem_regs | (cap - full)
        return (_mask(slot[names[n]] for n in read if n in names), _mask(slot[names[n]] for n in full),
                mem, False, branch, rel)
    if insn.mnemonic in ("mrs", "msr", "sys", "sysl") \
            or any(op.type not in (capstone.CS_OP_REG, capstone.CS_OP_IMM, capstone.CS_OP_MEM) for op in insn.operands) \
            or any(n not in _A64_GPR and n not in _A64_HARMLESS and n not in ("sp", "wsp") for n in cap | named):
        return 0, 0, False, True, "", 0
    mem = mem or bool({"sp", "wsp"} & (cap | named))
    if insn.mnemonic.startswith("bl") or branch != "ret" and (ops and ops[0] in ("x30", "w30", "lr") or (
            insn.mnemonic in _A64_WRITE_TWO and len(ops) > 1 and ops[1] in ("x30", "w30", "lr"))):
        branch = "indirect"   # x30 rewritten: the return may go anywhere
    if branch == "ret" and ops and ops[0] not in ("x30", "lr"):
        branch = "indirect"
    dests = set()
    if insn.mnemonic in _A64_WRITE_ONLY and ops and ops[0] in _A64_GPR:
        dests = {0, 1} if insn.mnemonic in _A64_WRITE_TWO and len(ops) > 1 and ops[1] in _A64_GPR else {0}
    full = {ops[k] for k in dests}
    read = {n for k, n in enumerate(ops) if n and k not in dests} | mem_regs | (cap - full)
    return (_mask(_A64_GPR[n] for n in read if n in _A64_GPR) & _REGS["arm64"],
            _mask(_A64_GPR[n] for n in full) & _REGS["arm64"], mem, False, branch, rel)


def _mask(bits) -> int:
    m = 0
    for b in bits:
        m |= 1 << b
    return m
