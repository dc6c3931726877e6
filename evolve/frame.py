"""Which existing code Melvin can model, and the same code with its stack frame in the scratch area.

A compiled leaf function may keep locals on the stack (``gcc -O0``: ``sub sp, sp, #16``, then
``str``/``ldr`` at ``[sp, #k]``, ``add sp, sp, #16`` before ``ret``). Melvin's semantics
(:mod:`core.symbolic`, the interpreter tier) model memory only as the scratch area at
``[sp, sp + 256)`` with SP fixed, so :func:`check` rewrites such a frame: the SP adjustments are
dropped (branches re-aimed) and every stack access is moved to the same byte of a frame laid at
the bottom of the scratch area. A function that touches only its own frame computes the same x0
either way (the frame is dead after the return); the caller's side of the stack (above the entry
SP) is refused. The rewrite is checked by running both forms (:mod:`evolve.codetask`).

Everything else outside the model is refused with the instruction and its byte offset
(:class:`NotModelled`): calls and tail calls, loops (backward branches), indirect branches,
system instructions, PC-relative addresses and literal loads (globals, constant pools), loads and
stores through any register but SP, SP as a value, and relocations of an object file.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.asm import AsmError, assemble, disassembler

_REG, _IMM, _MEM = 1, 2, 3
NOP = 0xD503201F
RET = 0xD65F03C0
_SYSTEM = {"svc", "hvc", "smc", "brk", "hlt", "mrs", "msr", "sys", "sysl", "isb", "dsb", "dmb", "eret",
           "wfi", "wfe", "sev", "sevl", "yield", "clrex", "udf", "dcps1", "dcps2", "dcps3"}
_CALLS = {"bl", "blr", "blraa", "blrab", "blraaz", "blrabz"}
_INDIRECT = {"br", "braa", "brab", "braaz", "brabz", "retaa", "retab", "eretaa", "eretab"}
_CONDITIONAL = {"cbz", "cbnz", "tbz", "tbnz"}


class NotModelled(ValueError):
    """Code outside what Melvin models; the message names the instruction and its offset."""


@dataclass(frozen=True)
class Modelled:
    """The result of :func:`check`: the code as it runs and as Melvin models it."""
    original: bytes
    code: bytes             #: the function with its frame in the scratch area (ends in ``ret``)
    frame: int              #: bytes of stack frame moved into the scratch area (0: none)
    origin: tuple           #: byte offset in ``original`` of each word of ``code``
    listing: tuple          #: (offset, word, text) of each original instruction


def _name(insn, reg) -> str:
    name = insn.reg_name(reg)
    return {"fp": "x29", "lr": "x30"}.get(name, name)


def _where(off: int, text: str) -> str:
    return f"offset {off:#x} ({text})"


def _branch_target(insn) -> int | None:
    m = insn.mnemonic
    if m == "b" or m.startswith("b.") or m in _CONDITIONAL:
        return int(insn.operands[-1].imm)
    return None


def _sp_immediate(insn) -> int | None:
    """The signed change of SP by ``add/sub sp, sp, #imm`` (None: not that form)."""
    ops = insn.operands
    if insn.mnemonic not in ("add", "sub") or len(ops) != 3 or ops[2].type != _IMM:
        return None
    if not all(o.type == _REG and _name(insn, o.reg) == "sp" for o in ops[:2]):
        return None
    amount = int(ops[2].imm) << (int(ops[2].shift.value) if ops[2].shift.type else 0)
    return amount if insn.mnemonic == "add" else -amount


def _access_size(insn) -> int:
    """Bytes one load/store transfers in all (a pair: both registers)."""
    m = insn.mnemonic
    regs = [o for o in insn.operands if o.type == _REG]
    if m.endswith("b") or m in ("ldrsb", "ldursb"):
        each = 1
    elif m.endswith("h") or m in ("ldrsh", "ldursh"):
        each = 2
    elif m in ("ldrsw", "ldursw", "ldpsw"):
        each = 4
    else:
        first = _name(insn, regs[0].reg)
        each = {"x": 8, "w": 4, "d": 8, "s": 4, "q": 16, "h": 2, "b": 1}.get(first[0], 8)
    return each * len(regs)


def check(code: bytes, relocations: dict | None = None, scratch: int = 256) -> Modelled:
    """``code`` (one function, in memory order) if Melvin can model it, with its frame moved
    into the scratch area; raises :class:`NotModelled` naming the first instruction it cannot."""
    if not code or len(code) % 4:
        raise NotModelled(f"code of {len(code)} bytes is not a whole number of 4-byte instructions")
    relocations = relocations or {}
    cs = disassembler("arm64", detail=True)
    n = len(code) // 4
    insns = []
    for k in range(n):
        word = int.from_bytes(code[4 * k:4 * k + 4], "little")
        insn = next(cs.disasm(code[4 * k:4 * k + 4], 4 * k, 1), None)
        if insn is None:
            raise NotModelled(f"{_where(4 * k, f'.word {word:#010x}')}: not an instruction capstone decodes")
        insns.append((word, insn))
    listing = tuple((4 * k, w, f"{i.mnemonic} {i.op_str}".strip()) for k, (w, i) in enumerate(insns))

    for k, (word, insn) in enumerate(insns):         # what no rewrite can model, first
        _refuse_structure(insn, 4 * k, listing[k][2], relocations, len(code))
    incoming: list[set] = [set() for _ in range(n + 1)]
    incoming[0].add(0)
    plan = []                            # per word: ("keep"|"drop"|"mem", detail)
    deepest = 0
    for k, (word, insn) in enumerate(insns):
        off, text, m = 4 * k, listing[k][2], insn.mnemonic
        where = _where(off, text)
        if len(incoming[k]) > 1:
            raise NotModelled(f"{where}: the stack pointer differs between the paths that meet here")
        d = next(iter(incoming[k])) if incoming[k] else 0
        falls = True
        target = _branch_target(insn)
        if target is not None:
            incoming[target // 4].add(d)
            falls = m != "b"
            plan.append(("keep", None))
        elif m == "ret":
            if d != 0:
                raise NotModelled(f"{where}: returns with the stack pointer {d} bytes below its entry value")
            falls = False
            plan.append(("keep", None))
        elif (change := _sp_immediate(insn)) is not None:
            d -= change
            if d < 0:
                raise NotModelled(f"{where}: moves the stack pointer above its entry value (the caller's frame)")
            plan.append(("drop", None))
        elif any(o.type == _MEM for o in insn.operands):
            mem = next(o for o in insn.operands if o.type == _MEM).mem
            base = _name(insn, mem.base) if mem.base else ""
            if base != "sp":
                raise NotModelled(f"{where}: a load or store through {base or 'an address'} "
                                  f"(memory beyond the stack)")
            if mem.index:
                raise NotModelled(f"{where}: a stack access with a register index")
            regs = [_name(insn, o.reg) for o in insn.operands if o.type == _REG]
            post = [o for o in insn.operands if o.type == _IMM]
            if insn.writeback and not post:          # pre-index: SP moves first
                d -= int(mem.disp)
                at = d
            else:
                at = d - int(mem.disp)
            if post:
                d -= int(post[0].imm)
            if d < 0:
                raise NotModelled(f"{where}: moves the stack pointer above its entry value (the caller's frame)")
            plan.append(("mem", (m, regs, at, _access_size(insn))))
        else:
            if any(o.type == _REG and _name(insn, o.reg) in ("sp", "wsp") for o in insn.operands):
                raise NotModelled(f"{where}: the stack pointer as a value")
            plan.append(("keep", None))
        deepest = max(deepest, d)
        if falls:
            incoming[k + 1].add(d)
    if incoming[n]:
        raise NotModelled(f"{_where(4 * (n - 1), listing[-1][2])}: runs off the end of the function")
    if deepest > scratch:
        raise NotModelled(f"a stack frame of {deepest} bytes; at most {scratch} are modelled")
    modelled = _rewrite(code, insns, listing, plan, deepest)
    modelled = _forward_vector_loads(modelled)
    _require_symbolic(modelled)
    return modelled


def _forward_vector_loads(m: Modelled) -> Modelled:
    """``ldr dN, [sp, #k]`` (``sN``) of a slot a ``str xR`` (``wR``) just wrote, R unchanged since,
    as ``fmov dN, xR`` (``fmov sN, wR``): the same value, and both zero the rest of vN. gcc -O0
    moves a word to the NEON unit this way (``__builtin_popcountll``), and the symbolic semantics
    model no vector loads. Knowledge is dropped where paths meet."""
    from evolve.cost import _effects
    cs = disassembler("arm64", detail=True)
    words = [int.from_bytes(m.code[i:i + 4], "little") for i in range(0, len(m.code), 4)]
    targets = {k + d for k, w in enumerate(words) if (d := branch_distance(w)) is not None}
    held: dict = {}                     # offset -> (bytes, general register)
    changed = False
    for k, word in enumerate(words):
        if k in targets:
            held = {}
        insn = next(cs.disasm(word.to_bytes(4, "little"), 0, 1), None)
        if insn is None:
            continue
        mems = [o.mem for o in insn.operands if o.type == _MEM]
        regs = [_name(insn, o.reg) for o in insn.operands if o.type == _REG]
        plain = len(mems) == 1 and len(regs) == 1 and not insn.writeback and not mems[0].index \
            and mems[0].base and _name(insn, mems[0].base) == "sp"
        if plain and insn.mnemonic in ("str", "stur") and regs[0][0] in "xw" and regs[0][1:].isdigit():
            off, size = int(mems[0].disp), 8 if regs[0][0] == "x" else 4
            held = {o: v for o, v in held.items() if o + v[0] <= off or off + size <= o}
            held[off] = (size, regs[0])
            continue
        if plain and insn.mnemonic in ("ldr", "ldur") and regs[0][0] in "ds":
            off, size = int(mems[0].disp), 8 if regs[0][0] == "d" else 4
            if held.get(off, (0, ""))[0] == size:
                words[k] = int.from_bytes(assemble([f"fmov {regs[0]}, {held[off][1]}"]), "little")
                changed = True
            continue
        _reads, writes = _effects(insn)
        if any(isinstance(w, tuple) for w in writes):      # another store: overlapping slots are stale
            held = {}
        held = {o: v for o, v in held.items() if "x" + v[1][1:] not in writes}
    if not changed:
        return m
    return Modelled(m.original, b"".join(w.to_bytes(4, "little") for w in words), m.frame, m.origin, m.listing)


def _require_symbolic(modelled: Modelled) -> None:
    """NotModelled, naming the instruction, when the rewritten code is outside the symbolic
    semantics (:func:`core.symbolic.translate`: what the interpreter tier decodes, loop-free)."""
    import re

    from core.symbolic import Unsupported, translate
    try:
        translate(modelled.code, scratch=max(256, modelled.frame))
    except Unsupported as exc:
        found = re.search(r"word (0x[0-9a-f]{8})", str(exc))
        words = [int.from_bytes(modelled.code[i:i + 4], "little") for i in range(0, len(modelled.code), 4)]
        if found and int(found.group(1), 16) in words:
            off = modelled.origin[words.index(int(found.group(1), 16))]
            text = next(t for o, _w, t in modelled.listing if o == off)
            raise NotModelled(f"{_where(off, text)}: outside Melvin's semantics ({exc})") from None
        for k, word in enumerate(words):        # the first word the interpreter tier does not decode
            try:
                translate(word.to_bytes(4, "little") + RET.to_bytes(4, "little"))
            except Unsupported:
                off = modelled.origin[k]
                text = next(t for o, _w, t in modelled.listing if o == off)
                raise NotModelled(f"{_where(off, text)}: outside Melvin's semantics") from None
            except Exception:
                continue
        raise NotModelled(f"outside Melvin's semantics: {exc}") from None


def _refuse_structure(insn, off: int, text: str, relocations: dict, size: int) -> None:
    """NotModelled for an instruction no frame rewrite can model: a relocation, a call, an
    indirect or backward branch, a branch out of the function, a system instruction, a
    PC-relative address."""
    where, m = _where(off, text), insn.mnemonic
    if off in relocations:
        kind = relocations[off]
        what = "a call to another function" if "CALL" in kind or "JUMP" in kind else "the address of a symbol"
        raise NotModelled(f"{where}: {what} (relocation {kind}); only self-contained code is modelled")
    if m in _CALLS:
        raise NotModelled(f"{where}: a call to another function")
    if m in _INDIRECT or (m == "ret" and insn.operands and _name(insn, insn.operands[0].reg) != "x30"):
        raise NotModelled(f"{where}: an indirect branch")
    if m in _SYSTEM:
        raise NotModelled(f"{where}: a system instruction")
    if m in ("adr", "adrp") or (m.startswith("ld") and any(o.type == _IMM for o in insn.operands)
                                and not any(o.type == _MEM for o in insn.operands)):
        raise NotModelled(f"{where}: a PC-relative address (a global or a constant pool)")
    target = _branch_target(insn)
    if target is not None and target <= off:
        raise NotModelled(f"{where}: a backward branch (a loop)")
    if target is not None and target >= size:
        raise NotModelled(f"{where}: a branch out of the function (a tail call)")


def _rewrite(code: bytes, insns: list, listing: tuple, plan: list, frame: int) -> Modelled:
    """The words of ``code`` with SP adjustments dropped, stack accesses moved to scratch offset
    ``frame - (bytes below the entry SP)`` and branches re-aimed over the dropped words."""
    keep = [k for k, (what, _) in enumerate(plan) if what != "drop"]
    new_index = {}
    j = 0
    for k in range(len(plan) + 1):
        new_index[k] = j                      # a dropped word's index: the next kept word's
        if k < len(plan) and plan[k][0] != "drop":
            j += 1
    words = []
    for k in keep:
        word, insn = insns[k]
        what, detail = plan[k]
        if what == "mem":
            m, regs, at, size = detail
            offset = frame - at
            if offset < 0 or offset + size > frame:
                raise NotModelled(f"{_where(4 * k, listing[k][2])}: an access beyond the function's own stack "
                                  f"frame (the caller's stack)")
            word = _memory_word(m, regs, offset, 4 * k, listing[k][2])
        elif (target := _branch_target(insn)) is not None:
            word = _retarget(word, insn.mnemonic, new_index[target // 4] - new_index[k])
        words.append(word)
    new_code = b"".join(w.to_bytes(4, "little") for w in words)
    return Modelled(code, new_code, frame, tuple(4 * k for k in keep), listing)


def _memory_word(mnemonic: str, regs: list, offset: int, off: int, text: str) -> int:
    """The load/store ``mnemonic regs, [sp, #offset]`` (no writeback); an unscaled form where the
    offset is not a multiple of the size."""
    names = [mnemonic]
    if mnemonic.startswith(("ldr", "str")) and not mnemonic.startswith(("ldur", "stur")):
        names.append(mnemonic.replace("ldr", "ldur", 1).replace("str", "stur", 1))
    for name in names:
        try:
            return int.from_bytes(assemble([f"{name} {', '.join(regs)}, [sp, #{offset}]"]), "little")
        except AsmError:
            continue
    raise NotModelled(f"{_where(off, text)}: its stack slot cannot be moved to scratch offset {offset}")


def _retarget(word: int, mnemonic: str, distance: int) -> int:
    """Branch ``word`` re-encoded to jump ``distance`` words forward."""
    if mnemonic == "b":
        return (word & ~0x3FFFFFF) | (distance & 0x3FFFFFF)
    if mnemonic in ("tbz", "tbnz"):
        return (word & ~(0x3FFF << 5)) | ((distance & 0x3FFF) << 5)
    return (word & ~(0x7FFFF << 5)) | ((distance & 0x7FFFF) << 5)     # b.cond, cbz, cbnz


def describe(modelled: Modelled) -> list[str]:
    """The original listing as ``offset: text`` lines (for reports)."""
    return [f"{off:#06x}: {text}" for off, _w, text in modelled.listing]


def branch_distance(word: int) -> int | None:
    """The signed distance in words of a direct branch (b, b.cond, cbz/cbnz, tbz/tbnz), decoded
    from its immediate field; None for any other word."""
    if word & 0xFC000000 == 0x14000000:                       # b
        d, bits = word & 0x3FFFFFF, 26
    elif word & 0xFF000010 == 0x54000000 or word & 0x7E000000 == 0x34000000:   # b.cond, cbz/cbnz
        d, bits = (word >> 5) & 0x7FFFF, 19
    elif word & 0x7E000000 == 0x36000000:                     # tbz/tbnz
        d, bits = (word >> 5) & 0x3FFF, 14
    else:
        return None
    return d - (1 << bits) if d >> (bits - 1) else d


def relink(units: list) -> bytes:
    """Code of ``units``, pairs ``(original index, word)`` of a code some words were deleted
    from, with every direct branch re-aimed at the first remaining word at or after its original
    target (the end, past the last): deleting an instruction keeps the branches around it."""
    index = [i for i, _ in units]
    words = []
    for k, (i, word) in enumerate(units):
        d = branch_distance(word)
        if d is not None:
            target = i + d
            new = next((j for j, orig in enumerate(index) if orig >= target), len(units))
            if new <= k and target > i:
                raise ValueError("a forward branch would become a backward one")
            mnemonic = "b" if word & 0xFC000000 == 0x14000000 else "tbz" if word & 0x7E000000 == 0x36000000 else "b.cond"
            word = _retarget(word, mnemonic, new - k)
        words.append(word)
    return b"".join(w.to_bytes(4, "little") for w in words)
