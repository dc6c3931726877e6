"""What a program costs: the metrics the optimisation phase (:mod:`evolve.optimize`) minimises.

``length``
    Instructions in the code, a trailing ``ret`` excluded (the executors append the return; code
    from a file may carry its own). Any ISA.

``latency``
    Estimated cycles of the code, taken as straight-line code (every instruction runs once, a
    branch is an instruction that reads its operands), on the Arm Cortex-A78AE, the CPU of
    NVIDIA Jetson AGX Orin. arm64 only. The estimate is the **critical path over dependencies**:
    an instruction starts when its last source is ready and its results are ready ``latency``
    cycles later; the program's cost is the cycle its last result is ready. Sources and results
    are the general registers (``wN`` is ``xN``; ``xzr``/``wzr`` carry nothing), the vector
    registers (``b/h/s/d/q/vN`` are ``vN``), the condition flags, and memory: a load depends on
    the last store to the same ``[base, #offset]`` slot and on every store with a register offset
    (whose slot is unknown). Not modelled: issue width, execution-pipeline throughput (four
    independent ``add`` cost 1 cycle, as one does), the operand-forwarding exceptions, branch
    prediction, data-dependent division times (the guide's upper bound is taken). Equal latency
    is broken by length (:func:`key`), so a shorter program of the same latency is cheaper.

Latency figures: *Arm Cortex-A78AE Core Software Optimization Guide*, section 3 "Instruction
characteristics" (its tables of integer, load/store and Advanced SIMD/FP execution latencies).
The search corpora this project was built with held no copy of those tables to check the
figures against; they are the guide's as known to the author, grouped into the classes below,
and :data:`A78AE` is the one place to correct one.

NVIDIA Carmel (Jetson AGX Xavier): NVIDIA has published no optimisation guide or instruction
latency table for Carmel (searched: only third-party reviews with memory-latency measurements),
so there is no Carmel model and ``--cost latency`` means the Cortex-A78AE; no figures were
made up for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.asm import disassembler
from core.isa import Isa, get_isa

#: the metrics ``--cost`` accepts
METRICS = ("length", "latency")
#: the core ``latency`` models
CORE = "Cortex-A78AE"

#: Execution latency in cycles by instruction class (Cortex-A78AE Software Optimization Guide,
#: section 3; see the module docstring).
A78AE = {
    "alu": 1,            # add/sub/logic (immediate, register), adc/sbc, neg, mov, flag-setting forms
    "alu_shift": 2,      # add/sub with a shifted register other than lsl #0-4
    "alu_extend": 2,     # add/sub with an extended register
    "logic_shift_flags": 2,   # ands/bics with a shifted register
    "csel": 1,           # csel/csinc/csinv/csneg and aliases, ccmp/ccmn
    "bitfield": 1,       # ubfm/sbfm (lsl/lsr/asr #imm, ubfx, sbfx, ubfiz, sbfiz, sxt*, uxt*), extr
    "bitfield_insert": 2,  # bfm (bfi, bfxil)
    "shift_reg": 1,      # lslv/lsrv/asrv/rorv
    "count": 1,          # clz, cls, rbit, rev, rev16, rev32
    "movi": 1,           # movz/movn/movk, adr/adrp
    "mul": 2,            # mul/madd/msub/mneg, smull/umull/smaddl/umaddl/smsubl/umsubl
    "mulh": 3,           # smulh/umulh
    "div_w": 12,         # sdiv/udiv, 32-bit: 5 to 12 cycles
    "div_x": 20,         # sdiv/udiv, 64-bit: 5 to 20 cycles
    "branch": 1,         # b, b.cond, cbz/cbnz, tbz/tbnz
    "load": 4,           # ldr/ldur/ldp and sign-extending loads, L1 hit
    "store": 1,          # str/stur/stp (until a later load of the slot can take the data)
    "fmov_to_fp": 3,     # fmov d/s from x/w, ins/dup from a general register
    "fmov_to_gp": 2,     # fmov x/w from d/s, umov/smov
    "simd": 2,           # Advanced SIMD integer basics (cnt, and, add, ...)
    "simd_reduce": 4,    # addv/uaddlv/saddlv and other across-vector reductions
    "other": 1,          # anything unclassified (counted, so a program never becomes free)
}

_ALU = {"add", "adds", "sub", "subs", "adc", "adcs", "sbc", "sbcs", "and", "ands", "orr", "eor",
        "bic", "bics", "orn", "eon", "neg", "negs", "ngc", "ngcs", "mov", "mvn", "cmp", "cmn", "tst"}
_LOGIC = {"and", "ands", "orr", "eor", "bic", "bics", "orn", "eon", "mvn", "tst"}
_CSEL = {"csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc", "cinv", "cneg", "ccmp", "ccmn"}
_BITFIELD = {"ubfm", "sbfm", "ubfx", "sbfx", "ubfiz", "sbfiz", "sxtb", "sxth", "sxtw", "uxtb", "uxth",
             "uxtw", "extr", "ror"}
_INSERT = {"bfm", "bfi", "bfxil", "bfc"}
_COUNT = {"clz", "cls", "rbit", "rev", "rev16", "rev32", "rev64"}
_MOVI = {"movz", "movn", "movk", "adr", "adrp"}
_MUL = {"mul", "madd", "msub", "mneg", "smull", "umull", "smaddl", "umaddl", "smsubl", "umsubl",
        "smnegl", "umnegl"}
_BRANCH = {"b", "bl", "br", "blr", "cbz", "cbnz", "tbz", "tbnz", "ret"}
_REDUCE = {"addv", "uaddlv", "saddlv", "umaxv", "uminv", "smaxv", "sminv", "addp"}
_SHIFTS = {"lsl", "lsr", "asr"}
# no destination: every register operand is read
_NO_DEST = {"cmp", "cmn", "tst", "ccmp", "ccmn", "cbz", "cbnz", "tbz", "tbnz", "b", "br", "ret", "nop",
            "fcmp", "fccmp"}
# the destination keeps bits of its old value: it is also read
_DEST_READ = {"movk", "bfm", "bfi", "bfxil", "ins", "mov_element"}
_READS_CARRY = {"adc", "adcs", "sbc", "sbcs", "ngc", "ngcs"}
_SETS_FLAGS = {"ccmp", "ccmn"}

# capstone's condition code for "always" and "none" (no flags read); 0 is invalid (no condition)
_NO_CONDITION = (0, 15, 16)
_OP_REG, _OP_IMM, _OP_MEM = 1, 2, 3
_ANY_SLOT, _EVERY_SLOT = ("mem", "*"), ("mem", "every")    # a store's unknown slot; a load's


def _register(name: str) -> str | None:
    """The architectural register a capstone name is part of (None: the zero register)."""
    if name in ("xzr", "wzr"):
        return None
    if name in ("sp", "wsp"):
        return "sp"
    head, num = name[0], name[1:]
    if num.isdigit():
        if head in "xw":
            return f"x{num}"
        if head in "bhsdqv":
            return f"v{num}"
    return name


def length(code: bytes, isa: str | Isa = "arm64") -> int:
    """Instructions in ``code``, a trailing ``ret`` excluded (undecodable words count as one each)."""
    isa = get_isa(isa)
    code = bytes(code)
    if isa.insn_size:
        n = -(-len(code) // isa.insn_size)
    else:
        decoded = list(disassembler(isa).disasm(code, 0))
        n = len(decoded) + (sum(i.size for i in decoded) < len(code))
    return n - (n > 0 and code.endswith(isa.ret_bytes))


@dataclass(frozen=True)
class Step:
    """One instruction's part in the latency estimate."""
    text: str
    cls: str
    cycles: int         #: its latency
    start: int          #: cycle its last source is ready
    done: int           #: cycle its results are ready


def latency_class(insn) -> str:
    """The :data:`A78AE` class of a capstone arm64 instruction (with details)."""
    m = insn.mnemonic
    if m.startswith("b.") or m in _BRANCH:
        return "branch"
    regs = [op for op in insn.operands if op.type == _OP_REG]
    if m.startswith("ld"):
        return "load"
    if m.startswith("st"):
        return "store"
    if m in _MUL:
        return "mul"
    if m in ("smulh", "umulh"):
        return "mulh"
    if m in ("sdiv", "udiv"):
        return "div_x" if insn.reg_name(regs[0].reg).startswith("x") else "div_w"
    if m in _CSEL:
        return "csel"
    if m in _INSERT:
        return "bitfield_insert"
    if m in _COUNT and not insn.op_str.count("."):
        return "count"
    if m in _MOVI:
        return "movi"
    if m in _BITFIELD:
        return "bitfield"
    if m in _SHIFTS:     # by immediate: a bitfield move; by register: a variable shift
        return "bitfield" if insn.operands[-1].type == _OP_IMM else "shift_reg"
    if m in ("fmov", "umov", "smov", "ins", "dup", "mov"):
        names = [insn.reg_name(op.reg) for op in regs]
        if len(names) == 2 and m != "mov" or (m == "mov" and "." in insn.op_str):
            dst, src = names[0][0], names[-1][0]
            if dst in "xw" and src not in "xw":
                return "fmov_to_gp"
            if dst not in "xw" and src in "xw":
                return "fmov_to_fp"
            return "simd"
    if m in _ALU:
        last = insn.operands[-1] if insn.operands else None
        if last is not None and last.type == _OP_REG and last.ext:
            return "alu_extend"
        if last is not None and last.type == _OP_REG and last.shift.type and last.shift.value:
            if m in _LOGIC:
                return "logic_shift_flags" if insn.update_flags else "alu"
            lsl = last.shift.type == 1
            return "alu" if lsl and last.shift.value <= 4 else "alu_shift"
        return "alu"
    if m in _REDUCE:
        return "simd_reduce"
    if any(insn.reg_name(op.reg)[0] in "bhsdqv" for op in regs):
        return "simd"
    return "other"


def _effects(insn) -> tuple[set, set]:
    """(sources, results) of an arm64 instruction, decoded from its operands (capstone's own
    read/write lists are wrong for aliases such as ``cmp`` and ``ubfx``)."""
    m = insn.mnemonic
    reads, writes = set(), set()
    regs = []
    for op in insn.operands:
        if op.type == _OP_REG:
            regs.append(_register(insn.reg_name(op.reg)))
        elif op.type == _OP_MEM:
            base = _register(insn.reg_name(op.mem.base)) if op.mem.base else None
            index = _register(insn.reg_name(op.mem.index)) if op.mem.index else None
            reads.update(r for r in (base, index) if r)
            slot = ("mem", base, op.mem.disp) if index is None else _ANY_SLOT
            if m.startswith("st"):
                writes.add(slot)
            elif index is None:
                reads.update({slot, _ANY_SLOT})     # its slot, and stores of unknown slots
            else:
                reads.add(_EVERY_SLOT)              # an unknown slot: every store before it
    if m.startswith("st") or m in _NO_DEST or m.startswith("b."):
        reads.update(regs)
    elif m.startswith("ld"):
        writes.update(regs)       # ldp writes two
    elif regs:
        writes.add(regs[0])
        reads.update(regs[1:])
        if m in _DEST_READ:
            reads.add(regs[0])
    if insn.cc not in _NO_CONDITION or m in _READS_CARRY:
        reads.add("nzcv")
    if insn.update_flags or m in _SETS_FLAGS:
        writes.add("nzcv")
    reads.discard(None)
    writes.discard(None)
    return reads, writes


def schedule(code: bytes, table: dict | None = None) -> list[Step]:
    """Each instruction of arm64 ``code`` with its class, latency and start/done cycles (the
    critical-path model of the module docstring; a trailing ``ret`` is left out)."""
    table = A78AE if table is None else table
    code = bytes(code)
    cs = disassembler("arm64", detail=True)
    ready: dict = {}
    steps = []
    for off in range(0, len(code) - len(code) % 4, 4):
        insn = next(cs.disasm(code[off:off + 4], off, 1), None)
        if insn is None:            # an undecodable word: one unknown instruction, no dependencies
            steps.append(Step(".word", "other", table["other"], 0, table["other"]))
            continue
        if insn.mnemonic == "ret" and off == len(code) - 4:
            break
        reads, writes = _effects(insn)
        cls = latency_class(insn)
        cycles = table[cls]
        start = max((ready.get(r, 0) for r in reads), default=0)
        if _EVERY_SLOT in reads:
            start = max([start] + [t for k, t in ready.items() if isinstance(k, tuple)])
        done = start + cycles
        for w in writes:
            ready[w] = done
        steps.append(Step(f"{insn.mnemonic} {insn.op_str}".strip(), cls, cycles, start, done))
    return steps


@lru_cache(maxsize=65536)
def latency(code: bytes) -> int:
    """Estimated Cortex-A78AE cycles of arm64 ``code``: its critical path (module docstring)."""
    return max((s.done for s in schedule(code)), default=0)


def cost(code: bytes, metric: str, isa: str | Isa = "arm64") -> int:
    """The cost of ``code`` by ``metric`` (one of :data:`METRICS`)."""
    if metric == "length":
        return length(code, isa)
    if metric == "latency":
        if get_isa(isa).name != "arm64":
            raise ValueError(f"--cost latency models arm64 ({CORE}) only, not {get_isa(isa).name}")
        return latency(bytes(code))
    raise ValueError(f"--cost must be one of {', '.join(METRICS)}, got {metric!r}")


def key(code: bytes, metric: str, isa: str | Isa = "arm64") -> tuple[int, int]:
    """What "cheaper" compares: the metric, then length (equal latency, fewer instructions)."""
    return cost(code, metric, isa), length(code, isa)
