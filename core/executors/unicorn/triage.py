"""Static triage of genome code: which genomes may take the emulator's fast lane.

The emulated backend runs a whole population inside one ``emu_start`` (the fast lane). That is
only safe for code that provably falls through to its slot's epilogue within its own length: no
backward or indirect branch, no return other than arm64's ``ret`` (to x30, the exact word
0xD65F03C0: a compiled function's return, at the end or anywhere; since fast-lane code never
writes x30, it is a forward branch to the code's end, see
:func:`core.executors.unicorn.harness.returns_as_branches`), no write to the link register or the stack pointer,
stack accesses only inside the scratch area, nothing touching state the fast-lane harness does not
restore (SIMD/FP or system registers), nothing Unicorn executes differently from Linux user space.
For such code triage also lists what the epilogue must restore: the registers it writes and the
scratch words it may store to.

Every other genome takes the slow lane, where each case is bounded by an exact instruction budget
and "trap points" apply Linux rules Unicorn lacks (SP alignment, ``eret``, ``wfi``, privileged x86
instructions). Triage only chooses a lane; outcomes always come from execution.

On arm64 each word's facts (registers written, direct branch target, SP-based accesses) come from
the interpreter's decoder (:func:`core.executors.interp.decoder.word_facts`, one Numba call per
new word); capstone (far dearer through its Python binding) decides only the words that
decoder does not answer with certainty. ``tests/test_triage.py`` checks that both agree.
"""
from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

import capstone

from core.asm import disassembler
from core.executors.batch_state import X86_GPR
from core.executors.interp.decoder import RET, word_facts
from core.isa import Isa, get_isa


class Trap(IntEnum):
    """What the emulator does when execution reaches a trap point (before the instruction runs)."""

    SKIP = 0       #: behave as a no-op (arm64 ``wfi``: Linux lets EL0 run it; Unicorn halts)
    SIGILL = 1     #: undefined at EL0 on Linux but executed by Unicorn (``eret``, ``drps``)
    SIGSEGV = 2    #: privileged x86 instruction (#GP at CPL 3)
    SP_ALIGN = 3   #: arm64 access through SP: SIGBUS unless SP is 16-byte aligned


@dataclass(frozen=True)
class Triage:
    """Lane decision for one genome's code (shared through a cache: never mutate)."""

    fast: bool
    #: byte offset in the code -> trap action (slow lane)
    traps: dict = field(default_factory=dict)
    #: why the genome takes the slow lane (first reason found), for diagnostics
    reason: str = ""
    #: instructions decoded (bounds a fast-lane genome's executed instructions)
    n_insns: int = 0
    #: 64-bit names of registers written (fast lane: the epilogue restores them)
    clobbered: frozenset = frozenset()
    #: byte offsets of 8-byte scratch words possibly stored to (fast lane)
    scratch_words: frozenset = frozenset()
    #: may write the stack outside the scratch area (slow lane: reset the stack per case)
    stack_risk: bool = True
    #: may change FP control/status or system registers (slow lane: reset them per case)
    machine_state: bool = True
    #: x86-64: the code ends in a one-byte ``ret``, held as a nop in the fast lane
    #: (:func:`core.executors.unicorn.harness.returns_as_branches`)
    trailing_ret: bool = False


_ARM64_SYSTEM = {"eret", "eretaa", "eretab", "drps", "wfi", "wfit", "wfe", "wfet", "hlt", "hvc", "smc",
                 "mrs", "msr", "sys", "sysl", "dc", "ic", "at", "tlbi", "clrex", "isb", "dsb", "dmb", "sb"}
_ARM64_ATOMIC = ("ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax", "ldumin", "swp", "cas")
_X86_PRIVILEGED = {"hlt", "cli", "sti", "in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd",
                   "lgdt", "lidt", "lldt", "ltr", "wrmsr", "rdmsr", "invd", "wbinvd", "invlpg", "clts",
                   "swapgs", "sysret", "sysexit", "iretq", "iretd", "iret", "rdpmc", "lmsw", "invpcid",
                   "xsetbv", "monitor", "mwait", "vmcall", "vmlaunch", "vmresume", "vmxoff", "int1"}


def _control_flow(insn, m: str) -> tuple[int | None, str]:
    """(relative direct target or None, reason) for a return, branch or call; ("", ...) else.

    A return skips the epilogue; an indirect branch or any call leaves the genome's code."""
    groups = insn.groups
    if capstone.CS_GRP_RET in groups:
        return None, f"return {m!r} would skip the epilogue"
    if capstone.CS_GRP_JUMP in groups or capstone.CS_GRP_CALL in groups:
        target = _direct_target(insn)
        if target is None or capstone.CS_GRP_CALL in groups:
            return None, f"indirect branch or call {m!r}"
        return target, ""
    return None, ""


def _direct_target(insn) -> int | None:
    """Relative target of a direct branch decoded at address 0, else None (indirect).

    The target is the last immediate operand (``tbz w0, #3, #12`` also has the bit number)."""
    targets = [op.imm for op in insn.operands if op.type == capstone.CS_OP_IMM]
    return targets[-1] if targets else None


@dataclass(frozen=True)
class _Word:
    """Position-independent facts about one arm64 instruction word (cached per word)."""

    reason: str = ""            # a reason for the slow lane, whatever the position
    trap: Trap | None = None
    branch: int | None = None   # relative target of a direct branch
    writes: frozenset = frozenset()
    sp_mem: tuple = ()          # (disp, is_store) of each SP-based memory operand
    writes_sp: bool = False
    exact: bool = False         # answered by the decoder's word_facts (writes known exactly)
    plain: bool = False         # exact, and no reason, branch or stack access: only writes matter
    sp_value: bool = False      # reads SP as a value (may then store anywhere on the stack)
    machine_state: bool = False  # system instruction, or SIMD/FP/system registers


#: Cache bounds: each at most ~3 MiB when full (bytes per entry measured: a word ~1.5 KiB, a
#: plain word's mask ~80, a genome's triage ~500), many generations of the genomes that reach
#: Unicorn (the interpreter runs most); bounds of 2**16..2**20 filled over hours and were a long
#: run's slow memory growth (issue 13).
WORDS_CACHED, PLAIN_CACHED, GENOMES_CACHED = 1 << 11, 1 << 15, 1 << 11


@lru_cache(maxsize=WORDS_CACHED)
def _arm64_word(word: bytes) -> _Word:
    known, writes, has_branch, branch, has_sp, disp, store = word_facts(int.from_bytes(word, "little"))
    if known:
        reason = "writes x30" if writes >> 30 & 1 else ""
        sp_mem = ((disp, store),) if has_sp else ()
        branch = branch if has_branch else None
        plain = not reason and branch is None and not sp_mem
        return _Word(reason, None, branch, _names(writes), sp_mem, False, True, plain)
    return _arm64_word_capstone(word)


def _arm64_word_capstone(word: bytes) -> _Word:
    value = int.from_bytes(word, "little")
    if (value & 0x1F000000) == 0x10000000 or (value & 0x3B000000) == 0x18000000:
        # adr/adrp, literal loads: results depend on where the code sits; the slow lane
        # always places code at the same isolated address
        return _Word(reason="PC-relative")
    insn = next(disassembler("arm64", detail=True).disasm(word, 0, 1), None)
    if insn is None:
        return _Word(exact=True)  # undecodable: UDEF -> SIGILL in either lane, writes nothing
    m = insn.mnemonic
    trap = Trap.SKIP if m in ("wfi", "wfit", "wfe", "wfet") else \
        Trap.SIGILL if m in ("eret", "eretaa", "eretab", "drps") else None
    reason = ""
    if m in _ARM64_SYSTEM or m.startswith("dcps"):
        reason = f"system instruction {m!r}"
    groups = set(insn.groups)
    branch, flow = _control_flow(insn, m)
    reason = reason or flow
    state = bool(reason)  # a system instruction
    try:
        reads, writes = insn.regs_access()
    except capstone.CsError:
        reads, writes, state = [], [], True
    if capstone.CS_GRP_INT in groups:
        writes = []  # capstone lists lr as written by svc/brk; they trap, they do not link
    names_w = {insn.reg_name(r) for r in writes}
    names_r = {insn.reg_name(r) for r in reads}
    writes_sp = bool(names_w & {"sp", "wsp"})
    if names_w & {"sp", "wsp", "lr", "x30", "w30"}:
        reason = reason or f"writes {sorted(names_w & {'sp', 'wsp', 'lr', 'x30', 'w30'})[0]}"
    sp_mem = []
    sp_as_base = False
    store = m.startswith("st") or m.startswith(_ARM64_ATOMIC)
    for op in insn.operands:
        if op.type == capstone.CS_OP_MEM and insn.reg_name(op.mem.base) in ("sp", "wsp"):
            sp_as_base = True
            if op.mem.index:
                reason = reason or "register-indexed stack access"
            sp_mem.append((op.mem.disp, store))
    sp_value = bool(names_r & {"sp", "wsp"}) and not sp_as_base
    if sp_value:
        reason = reason or "reads sp as a value"
    clobber = set()
    for r in names_w:
        if r in ("xzr", "wzr", "nzcv"):
            continue
        if r == "fp":
            clobber.add("x29")
        elif r[:1] in ("x", "w") and r[1:].isdigit():
            clobber.add("x" + r[1:])
        else:
            reason = reason or f"writes {r} (state the fast lane does not restore)"
            state = True
    for r in names_r:
        if not (r in ("xzr", "wzr", "nzcv", "fp", "lr", "sp", "wsp") or (r[:1] in ("x", "w") and r[1:].isdigit())):
            reason = reason or f"reads {r} (state the fast lane does not restore)"
            state = True
    if (value >> 25) & 7 == 7 or ((value >> 25) & 5 == 4 and (value >> 26) & 1):
        # SIMD&FP data processing, or a load/store of SIMD&FP registers, known from the encoding:
        # capstone does not list every vector register read (``umov w0, v1.h[0]``: none)
        reason = reason or "SIMD&FP registers (state the fast lane does not load or restore)"
        state = True
    return _Word(reason, trap, branch, frozenset(clobber), tuple(sp_mem), writes_sp, sp_value=sp_value,
                 machine_state=state)


# word value -> bit mask of the x registers a "plain" word writes (see _Word.plain): the inner
# loop of triage, so kept to one dictionary look-up per instruction of a genome.
_PLAIN_MASK: dict[int, int] = {}
_MASK_NAMES: dict[int, frozenset] = {}


def _names(mask: int) -> frozenset:
    names = _MASK_NAMES.get(mask)
    if names is None:
        names = _MASK_NAMES[mask] = frozenset(f"x{i}" for i in range(32) if mask >> i & 1)
    return names


def _triage_arm64(code: bytes, scratch: int) -> Triage:
    traps: dict[int, Trap] = {}
    reason = ""
    mask = 0
    clobbered: set[str] = set()
    words: set[int] = set()
    sp_users: list[int] = []
    writes_sp = sp_value = state = outside = False
    exact = True
    size = len(code)
    plain_mask = _PLAIN_MASK
    values = array("I", code)
    if sys.byteorder != "little":
        values.byteswap()
    for index, value in enumerate(values):
        bits = plain_mask.get(value)
        if bits is not None:
            mask |= bits
            continue  # the common case: an integer instruction with no branch or stack access
        if value == RET:
            # the caller's return: fast-lane code never writes x30, so this is exactly a forward
            # branch to the code's end, and the slot is laid out so (harness.returns_as_branches)
            continue
        off = 4 * index
        known, bits, has_branch, _, has_sp, _, _ = word_facts(value)
        if known and not has_branch and not has_sp and not bits >> 30 & 1:
            # plain (see _Word.plain), decided without building the word's full facts
            if len(plain_mask) >= PLAIN_CACHED:
                plain_mask.clear()
            plain_mask[value] = bits
            mask |= bits
            continue
        info = _arm64_word(code[off:off + 4])
        clobbered |= info.writes
        exact &= info.exact
        if info.trap is not None:
            traps[off] = info.trap
        if info.reason and not reason:
            reason = f"{info.reason} at +{off}"
        if info.branch is not None and not (0 < info.branch and off + info.branch <= size) and not reason:
            reason = f"backward or out-of-code branch at +{off}"
        writes_sp |= info.writes_sp
        sp_value |= info.sp_value
        state |= info.machine_state
        if info.sp_mem:
            sp_users.append(off)
        for disp, store in info.sp_mem:
            if not 0 <= disp <= scratch - 16:
                reason = reason or f"stack access outside the scratch area at +{off}"
                outside = True
            elif store:
                words.update(w for w in range(disp // 8 * 8, disp + 16, 8) if w < scratch)
    if writes_sp:
        for off in sp_users:
            traps.setdefault(off, Trap.SP_ALIGN)
    if reason:
        return Triage(False, traps, reason, size // 4, stack_risk=writes_sp or sp_value or outside,
                      machine_state=state)
    if not exact:
        # capstone's register lists are not reliable enough (aliases, 32-bit forms): restore them all
        return Triage(True, traps, "", size // 4, _ALL_X, frozenset(words))
    if clobbered:
        mask |= sum(1 << int(r[1:]) for r in clobbered)
    return Triage(True, traps, "", size // 4, _names(mask), frozenset(words))


_ALL_X = frozenset(f"x{i}" for i in range(30))


def _triage_x86(code: bytes, scratch: int) -> Triage:
    cs = disassembler("x86_64", detail=True)
    traps: dict[int, Trap] = {}
    reason = ""
    clobbered: set[str] = set()
    words: set[int] = set()
    n = decoded = 0
    trailing = False
    for insn in cs.disasm(code, 0):
        off, m = insn.address, insn.mnemonic
        n += 1
        decoded = off + insn.size
        groups = set(insn.groups)
        if m in _X86_PRIVILEGED or capstone.CS_GRP_PRIVILEGE in groups or capstone.CS_GRP_IRET in groups:
            traps[off] = Trap.SIGSEGV
            reason = reason or f"privileged {m!r} at +{off}"
            continue
        if capstone.CS_GRP_INT in groups or m in ("syscall", "sysenter", "ud2", "ud1", "ud0"):
            continue  # traps in either lane
        if m == "ret" and insn.size == 1 and decoded == len(code):
            trailing = True   # the caller's return, as the appended one (rsp is never written here)
            continue
        target, flow = _control_flow(insn, m)
        if flow:
            reason = reason or f"{flow} at +{off}"
        elif target is not None and not off < target <= len(code):
            reason = reason or f"backward or out-of-code branch {m!r} at +{off}"
        try:
            reads, writes = insn.regs_access()
        except capstone.CsError:
            reads, writes = [], []
        rsp_mem_ok = True
        rsp_base = False
        for op in insn.operands:
            if op.type == capstone.CS_OP_MEM and insn.reg_name(op.mem.base) == "rip":
                reason = reason or f"RIP-relative {m!r} at +{off}"
            if op.type == capstone.CS_OP_MEM and insn.reg_name(op.mem.base) == "rsp":
                rsp_base = True
                # [rsp - k] is the red zone (scratch); anything else may hit the return address
                if op.mem.index or not -scratch <= op.mem.disp <= -op.size:
                    rsp_mem_ok = False
                elif op.access & capstone.CS_AC_WRITE:
                    lo = scratch + op.mem.disp
                    words.update(w for w in range(lo // 8 * 8, lo + op.size, 8))
        for r in {insn.reg_name(x) for x in writes}:
            if r in X86_GPR:
                clobbered.add(X86_GPR[r])
            elif r not in ("rflags", "rip"):
                reason = reason or f"writes {r} at +{off}"
        for r in {insn.reg_name(x) for x in reads}:
            if r == "rsp":
                if not rsp_base:
                    reason = reason or f"reads rsp as a value at +{off}"
            elif r not in X86_GPR and r not in ("rflags", "rip"):
                reason = reason or f"reads {r} at +{off}"
        if not rsp_mem_ok:
            reason = reason or f"stack access outside the red zone at +{off}"
    if decoded < len(code):
        reason = reason or f"undecodable byte at +{decoded}"
    fast = not reason
    return Triage(fast, traps, reason, n, frozenset(clobbered) if fast else frozenset(),
                  frozenset(words) if fast else frozenset(), trailing_ret=fast and trailing)


@lru_cache(maxsize=GENOMES_CACHED)
def _triage_cached(code: bytes, isa_name: str, scratch: int) -> Triage:
    return _triage_arm64(code, scratch) if isa_name == "arm64" else _triage_x86(code, scratch)


def triage(code: bytes, isa: Isa | str, scratch: int) -> Triage:
    """Decide the lane for ``code`` given a scratch area of ``scratch`` bytes (cached)."""
    return _triage_cached(bytes(code), get_isa(isa).name, scratch)
