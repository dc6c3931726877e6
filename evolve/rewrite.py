"""Classic compiler rewrites of straight-line arm64 code, as seeds and candidates for the search.

Why: ``gcc -O0`` code differs from ``-O2`` code by several simultaneous changes that mutation and
one-gene peephole windows rarely make together: a value kept in a stack slot *and* a register
that is overwritten while the slot still holds it (``mov x1, x0; ldr x0, [sp]`` in p14), an
``mvn`` whose result feeds an ``and`` (``bic``) after the ``mvn``'s operand was overwritten
(p07), a shift feeding an ``orr`` (``orr x0, x0, x0, lsr 1``, p24). Each is one step for a
compiler:

1. value forwarding with register renaming (:func:`rename`): every write goes to a register
   that holds nothing still needed (a fresh one first, so no value is overwritten while another
   instruction may still read it), register moves and loads of a slot whose value a register
   holds disappear into the renaming, and the result is moved into x0 at the end;
2. combining (:func:`combine`): an ``mvn``, ``neg`` or constant shift whose only reader is a
   register-form ``and/orr/eor/add/sub/cmp/cmn/tst`` is folded into that reader as its inverted,
   negated or shifted operand (``bic``, ``orn``, ``eon``, ``sub``, ``add x0, x1, x2, asr #1``);
   ``and t, p, q; cmp t, #0`` is ``tst p, q`` where the carry is unread; a 64-bit shift by
   ``k & 63`` shifts by ``k``; moves, masks and extensions of a 0/1 value (``cset``) are copies;
3. dead code (:func:`dead_code`): instructions whose writes no later instruction reads (stores:
   no later load of those bytes) are dropped, by liveness;
4. coalescing (:func:`coalesce`): a ``mov xd, xs`` whose source has no other reader is removed
   by writing ``xd`` where ``xs`` was written.

Forward branches are first if-converted (:mod:`evolve.ifconvert`). Nothing here is trusted: the
result is a seed or a candidate, and goes through held-out testing and the proofs like any
program. Code with other branches, read-modify-write instructions (``movk``, ``bfi``), memory
outside ``[sp, #k]``, SIMD registers, reads of non-argument registers or flags before they are
set, or not enough free registers is left alone (:func:`rewrite` returns None).
"""
from __future__ import annotations

import re

from core.asm import AsmError, assemble, disassembler

#: working registers the rewrites may use (the arm64 alphabet's x0-x7)
N_REGS = 8
_REG = re.compile(r"^([xw])(\d+)$")
_BRANCHES = {"b", "bl", "br", "blr", "cbz", "cbnz", "tbz", "tbnz", "ret"}
_FLAG_SETTERS = {"cmp", "cmn", "tst", "ccmp", "ccmn", "adds", "subs", "ands", "bics", "negs", "adcs", "sbcs", "ngcs"}
_FLAG_ONLY = {"cmp", "cmn", "tst", "ccmp", "ccmn"}
_FLAG_READERS = {"csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc", "cinv", "cneg", "ccmp", "ccmn",
                 "adc", "adcs", "sbc", "sbcs", "ngc", "ngcs"}
_READS_DST = {"movk", "bfi", "bfxil", "bfm"}
_LOAD_SIZES = {"ldr": 0, "ldur": 0, "ldrb": 1, "ldurb": 1, "ldrh": 2, "ldurh": 2, "ldrsb": 1, "ldursb": 1,
               "ldrsh": 2, "ldursh": 2, "ldrsw": 4, "ldursw": 4}
_STORE_SIZES = {"str": 0, "stur": 0, "strb": 1, "sturb": 1, "strh": 2, "sturh": 2}
#: a load of a slot a register holds, as a move of that register (None: a rename, no code)
_LOAD_AS = {"ldr": None, "ldur": None, "ldrb": "uxtb", "ldurb": "uxtb", "ldrh": "uxth", "ldurh": "uxth",
            "ldrsb": "sxtb", "ldursb": "sxtb", "ldrsh": "sxth", "ldursh": "sxth", "ldrsw": "sxtw", "ldursw": "sxtw"}
_FLAGS = "nzcv"
_MEM = "mem"
_INVERTED = {"and": "bic", "orr": "orn", "eor": "eon", "bic": "and", "orn": "orr", "eon": "eor"}
_NEGATED = {"add": "sub", "sub": "add"}      # not cmp/cmn: their carry differs for a zero operand
_SHIFTABLE = {"add", "sub", "and", "orr", "eor", "bic", "orn", "eon", "cmp", "cmn", "tst"}
_COMMUTATIVE = {"add", "and", "orr", "eor", "cmn", "tst"}


class Unsupported(ValueError):
    """Code outside what the rewrites handle."""


# ----------------------------------------------------------------------------- instructions
class Ins:
    """One instruction as text: mnemonic and operand strings (``[sp, #8]`` is one operand)."""

    __slots__ = ("mn", "ops")

    def __init__(self, mn: str, ops: list[str]):
        self.mn, self.ops = mn, list(ops)

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        return f"{self.mn} {', '.join(self.ops)}".strip()

    # registers by number (x and w halves alike), "nzcv" for the flags, "mem" for memory
    def slot(self) -> tuple[int, int] | None:
        """(offset, bytes) of a ``[sp, #k]`` access, None for no memory operand."""
        mems = [o for o in self.ops if o.startswith("[")]
        if not mems:
            if self.mn in _LOAD_SIZES or self.mn in _STORE_SIZES:
                raise Unsupported(f"a PC-relative load {self.text()!r}")
            return None
        m = re.fullmatch(r"\[sp(?:, #(-?(?:0x)?[0-9a-f]+))?\]", mems[0])
        if m is None or len(mems) != 1 or self.ops[-1] != mems[0]:
            raise Unsupported(f"memory operand {self.text()!r}")
        off = int(m.group(1), 0) if m.group(1) else 0
        table = _LOAD_SIZES if self.mn in _LOAD_SIZES else _STORE_SIZES
        if self.mn not in table:
            raise Unsupported(f"memory instruction {self.text()!r}")
        size = table[self.mn] or (8 if self.ops[0][0] == "x" else 4)
        return off, size

    def is_load(self) -> bool:
        return self.mn in _LOAD_SIZES

    def is_store(self) -> bool:
        return self.mn in _STORE_SIZES

    def dst(self) -> int | None:
        """The working register this instruction writes (its first operand), or None."""
        if self.is_store() or self.mn in _FLAG_ONLY or not self.ops:
            return None
        return reg_number(self.ops[0])

    def reads(self) -> set:
        out = set()
        first = 0 if (self.is_store() or self.mn in _FLAG_ONLY or self.mn in _READS_DST) else 1
        for o in self.ops[first:]:
            r = reg_number(o.split()[0]) if not o.startswith("[") else None
            if r is not None:
                out.add(r)
        if self.mn in _FLAG_READERS:
            out.add(_FLAGS)
        if self.is_load():
            out.add(_MEM)
        return out

    def writes(self) -> set:
        out = set()
        d = self.dst()
        if d is not None:
            out.add(d)
        if self.mn in _FLAG_SETTERS:
            out.add(_FLAGS)
        if self.is_store():
            out.add(_MEM)
        return out

    def reg_positions(self, first: int = 0) -> list[int]:
        """Indices of operands (from ``first``) that are working registers (an extended or
        shifted operand ``x1, lsl #2`` is two operands, the register one of them)."""
        return [i for i in range(first, len(self.ops)) if reg_number(self.ops[i]) is not None]


def reg_number(token: str) -> int | None:
    m = _REG.match(token.strip())
    return int(m.group(2)) if m else None


def _named(token: str, number: int) -> str:
    return f"{token.strip()[0]}{number}"


def decode(code: bytes, branches: bool = False, n_regs: int = N_REGS) -> list[Ins]:
    """The instructions of ``code`` (a trailing ``ret`` dropped); Unsupported for words capstone
    cannot read and, unless ``branches``, for branches (``b``, ``b.cond``: their operand is the
    target's byte offset)."""
    md = disassembler("arm64")
    insns = list(md.disasm(code, 0))
    if len(insns) * 4 != len(code):
        raise Unsupported("undecodable word")
    out = []
    for k, insn in enumerate(insns):
        mn = insn.mnemonic
        if mn == "ret" and k == len(insns) - 1:
            break
        if mn in _BRANCHES or mn.startswith("b."):
            if not (branches and (mn == "b" or mn.startswith("b."))):
                raise Unsupported(f"branch {mn} at {4 * k:#x}")
        if mn in _READS_DST:
            raise Unsupported(f"{mn} reads its destination")
        ops = _split(insn.op_str)
        if any(not _plain(o) for o in ops):
            raise Unsupported(f"{insn.mnemonic} {insn.op_str}: an operand other than x/w registers, "
                              f"immediates, [sp, #k], conditions and shifts (SIMD, system registers)")
        for o in ops:
            r = reg_number(o.split()[0]) if not o.startswith("[") else None
            if r is not None and r >= n_regs:
                raise Unsupported(f"register {o} outside x0-x{n_regs - 1}")
        out.append(Ins(mn, ops))
    return out


_PLAIN = re.compile(r"^(?:[xw]\d+|xzr|wzr|sp|wsp|#-?(?:0x)?[0-9a-f]+|\[.*\]|eq|ne|hs|lo|cs|cc|mi|pl|vs|vc|hi|ls|"
                    r"ge|lt|gt|le|al|nv|(?:lsl|lsr|asr|ror|[us]xt[bhwx])(?: #(?:0x)?[0-9a-f]+)?)$")


def _plain(operand: str) -> bool:
    """Whether an operand is one the rewrites understand (see :func:`decode`)."""
    return bool(_PLAIN.match(operand.strip()))


def _split(op_str: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in op_str:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def encode(insns: list[Ins]) -> bytes:
    """Machine code of ``insns`` with a final ``ret``; AsmError when keystone refuses a line."""
    return assemble([i.text() for i in insns] + ["ret"]) if insns else assemble(["ret"])


# ----------------------------------------------------------------------------- liveness
def live_after(insns: list[Ins], result: int = 0) -> list[set]:
    """Registers (and flags) live after each instruction; at the end only ``result``."""
    live = [set()] * len(insns)
    cur = {result}
    for i in range(len(insns) - 1, -1, -1):
        live[i] = set(cur)
        cur = (cur - insns[i].writes()) | insns[i].reads()
    return live


def _later_loads(insns: list[Ins], i: int, off: int, size: int) -> bool:
    """Whether a load after instruction ``i`` reads a byte of ``[off, off + size)``."""
    for ins in insns[i + 1:]:
        if ins.is_load():
            o, s = ins.slot()
            if o < off + size and off < o + s:
                return True
    return False


def dead_code(insns: list[Ins], result: int = 0) -> list[Ins]:
    """``insns`` without instructions none of whose effects is used later (see the docstring)."""
    while True:
        live = live_after(insns, result)
        keep = []
        for i, ins in enumerate(insns):
            if ins.is_store():
                off, size = ins.slot()
                if _later_loads(insns, i, off, size):
                    keep.append(ins)
            elif ins.writes() & live[i]:
                keep.append(ins)
        if len(keep) == len(insns):
            return keep
        insns = keep


# ----------------------------------------------------------------------------- renaming
def rename(insns: list[Ins], n_args: int, result: int = 0, n_regs: int = N_REGS) -> list[Ins]:
    """Value forwarding with register renaming (step 1 of the module docstring)."""
    live = live_after(insns, result)
    loc = {r: r for r in range(n_regs)}      # logical register -> physical register holding it
    slots: dict = {}                          # offset -> (bytes, physical register)
    used = set(range(n_args))                 # physical registers ever written or holding an argument
    narrow: set = set()                       # physical registers whose upper 32 bits are known zero
    boolean: set = set()                      # physical registers known to hold 0 or 1 (cset)
    out: list[Ins] = []

    def needed(i: int, d: int) -> set:
        """Physical registers whose contents something after instruction ``i`` (which writes
        logical ``d``) still reads."""
        held = {loc[r] for r in live[i] if isinstance(r, int) and r != d}
        for off, (size, p) in slots.items():
            if _later_loads(insns, i, off, size):
                held.add(p)
        return held

    def substitute(ins: Ins, first: int) -> Ins:
        ops = list(ins.ops)
        for k in ins.reg_positions(first):
            ops[k] = _named(ops[k], loc[reg_number(ops[k])])
        return Ins(ins.mn, ops)

    def fresh(i: int, prefer: int) -> int:
        busy = needed(i, prefer)
        free = [p for p in range(n_regs) if p not in busy]
        if not free:
            raise Unsupported("no free register")
        unused = [p for p in free if p not in used]
        pick = prefer if prefer in unused else (unused[0] if unused else (prefer if prefer in free else free[0]))
        used.add(pick)
        return pick

    def clobber(p: int, name: str, mn: str = "") -> None:
        for off in [o for o, (_, q) in slots.items() if q == p]:
            del slots[off]
        narrow.discard(p)
        boolean.discard(p)
        if name[0] == "w":
            narrow.add(p)                     # a W write zeroes the upper half
        if mn == "cset":
            boolean.update({p} & narrow)

    for i, ins in enumerate(insns):
        if ins.is_store():
            off, size = ins.slot()
            new = substitute(ins, 0)
            for o in [o for o, (s, _) in slots.items() if o < off + size and off < o + s]:
                del slots[o]
            src = reg_number(ins.ops[0])
            if src is not None:
                slots[off] = (size, loc[src])
            out.append(new)
            continue
        d = ins.dst()
        if ins.is_load():
            off, size = ins.slot()
            known = slots.get(off)
            if known and known[0] == size:
                move = _LOAD_AS[ins.mn]
                if move is None and (ins.ops[0][0] == "x" or known[1] in narrow):
                    loc[d] = known[1]        # the register holds it (a W load: zero-extended already)
                    continue
                src = known[1]
                p = fresh(i, d)
                clobber(p, ins.ops[0])
                text = Ins(move or "mov", [_named(ins.ops[0], p), f"w{src}"])
                loc[d] = p
                out.append(text)
                continue
        if _is_copy(ins, narrow, boolean, loc):
            loc[d] = loc[reg_number(ins.ops[1])]
            continue
        new = substitute(ins, 0 if d is None else 1)
        if d is not None:
            p = fresh(i, d)
            clobber(p, new.ops[0], new.mn)
            new.ops[0] = _named(new.ops[0], p)
            loc[d] = p
        out.append(new)
    if loc[result] != result:
        out.append(Ins("mov", [f"x{result}", f"x{loc[result]}"]))
    return out


def _is_copy(ins: Ins, narrow: set, boolean: set, loc: dict) -> bool:
    """Whether ``ins`` copies a register whole: ``mov xd, xs``; ``mov wd, ws`` of a register
    whose upper half is zero; ``and wd/xd, s, #m`` with bit 0 in ``m`` of a 0/1 register."""
    if len(ins.ops) < 2 or reg_number(ins.ops[1]) is None or reg_number(ins.ops[0]) is None:
        return False
    src = loc[reg_number(ins.ops[1])]
    if ins.mn == "mov" and len(ins.ops) == 2:
        return ins.ops[0][0] == ins.ops[1][0] and (ins.ops[0][0] == "x" or src in narrow)
    if ins.mn in ("sxtb", "sxth", "sxtw", "uxtb", "uxth", "uxtw") and len(ins.ops) == 2:
        return src in boolean
    if ins.mn == "and" and len(ins.ops) == 3 and ins.ops[2].startswith("#") and src in boolean:
        try:
            return int(ins.ops[2][1:], 0) & 1 == 1
        except ValueError:
            return False
    return False


# ----------------------------------------------------------------------------- combining
def _readers(insns: list[Ins], i: int, t: int) -> list[int]:
    """Indices after ``i`` that read ``t`` before it is written again."""
    out = []
    for j in range(i + 1, len(insns)):
        if t in insns[j].reads():
            out.append(j)
        if t in insns[j].writes():
            break
    return out


def _written_between(insns: list[Ins], i: int, j: int, r: int) -> bool:
    return any(r in insns[k].writes() for k in range(i + 1, j))


def _fold(a: Ins, b: Ins, t: int) -> Ins | None:
    """``b`` with its operand ``t`` (written by ``a``) replaced by ``a``'s operand, or None."""
    if a.ops[0][0] != "x" or any(o[0] == "w" for o in b.ops if reg_number(o) is not None):
        return None
    flag_only = b.mn in _FLAG_ONLY
    regs = b.ops if flag_only else b.ops[1:]
    if len(regs) != 2 or any(reg_number(o) is None for o in regs):
        return None                        # only the plain two-register forms
    first, second = regs
    if reg_number(second) != t:
        if reg_number(first) != t or reg_number(second) == t or b.mn not in _COMMUTATIVE:
            return None
        first, second = second, first      # commutative: t to the second place
    src = a.ops[1]
    if a.mn == "mvn" and len(a.ops) == 2 and b.mn in _INVERTED:
        mn, ops = _INVERTED[b.mn], [first, src]
    elif a.mn == "neg" and len(a.ops) == 2 and b.mn in _NEGATED:
        mn, ops = _NEGATED[b.mn], [first, src]
    elif a.mn in ("lsl", "lsr", "asr") and len(a.ops) == 3 and a.ops[2].startswith("#") and b.mn in _SHIFTABLE:
        mn, ops = b.mn, [first, src, f"{a.mn} {a.ops[2]}"]
    else:
        return None
    return Ins(mn, ops if flag_only else [b.ops[0]] + ops)


def _unmask_amounts(insns: list[Ins], i: int, readers: list[int], t: int, live: list) -> list[Ins] | None:
    """``insns`` with the shifts by register that read ``t = s & m`` (``and`` at ``i``, ``m``
    keeping the low 6 bits) shifting by ``s`` instead: a 64-bit shift by register uses its
    amount modulo 64 (``p19``'s ``k & 63``); None when a reader is anything else, ``t`` is read
    later or ``s`` changes in between."""
    a = insns[i]
    if a.mn != "and" or len(a.ops) != 3 or not a.ops[2].startswith("#") or not readers:
        return None
    try:
        if int(a.ops[2][1:], 0) & 63 != 63:
            return None
    except ValueError:
        return None
    s = reg_number(a.ops[1])
    if s is None or t in live[readers[-1]] and t not in insns[readers[-1]].writes():
        return None
    out = list(insns)
    for j in readers:
        b = insns[j]
        if b.mn not in ("lsl", "lsr", "asr", "ror") or len(b.ops) != 3 or b.ops[0][0] != "x" \
                or reg_number(b.ops[2]) != t or reg_number(b.ops[1]) == t or _written_between(insns, i, j, s):
            return None
        out[j] = Ins(b.mn, b.ops[:2] + [f"x{s}"])
    return out


def _tst(insns: list[Ins], i: int, j: int, t: int) -> Ins | None:
    """``tst p, q`` for ``and t, p, q`` (instruction ``i``) read only by ``cmp t, #0`` (``j``),
    when what reads those flags ignores the carry (``tst`` clears it, ``cmp #0`` sets it), and
    ``p``, ``q`` keep their values in between."""
    a, b = insns[i], insns[j]
    if b.mn != "cmp" or b.ops != [b.ops[0], "#0"] or a.ops[0][0] != b.ops[0][0] or len(a.ops) != 3:
        return None
    if any(_written_between(insns, i, j, r) for r in a.reads() if isinstance(r, int)):
        return None
    for ins in insns[j + 1:]:
        if _FLAGS in ins.reads() and ins.ops[-1] not in ("eq", "ne", "mi", "pl", "vs", "vc", "ge", "lt", "gt", "le"):
            return None
        if _FLAGS in ins.writes():
            break
    return Ins("tst", a.ops[1:])


def combine(insns: list[Ins], result: int = 0) -> list[Ins]:
    """Step 2 of the module docstring, as long as a fold applies (each fold makes its producer
    dead, which :func:`dead_code` then drops)."""
    changed = True
    while changed:
        changed = False
        live = live_after(insns, result)
        for i, a in enumerate(insns):
            t = a.dst()
            if t is None or a.mn not in ("mvn", "neg", "lsl", "lsr", "asr", "and") or a.writes() - {t}:
                continue
            src = reg_number(a.ops[1]) if len(a.ops) > 1 else None
            if src is None:
                continue
            readers = _readers(insns, i, t)
            masked = _unmask_amounts(insns, i, readers, t, live)
            if masked is not None:
                insns = dead_code(masked, result)
                changed = True
                break
            if len(readers) != 1:
                continue
            j = readers[0]
            if t in live[j] and t not in insns[j].writes() or _written_between(insns, i, j, src):
                continue
            new = _fold(a, insns[j], t) if a.mn != "and" else _tst(insns, i, j, t)
            if new is not None:
                insns = insns[:j] + [new] + insns[j + 1:]
                insns = dead_code(insns, result)
                changed = True
                break
    return insns


def coalesce(insns: list[Ins], result: int = 0) -> list[Ins]:
    """Step 4 of the module docstring."""
    changed = True
    while changed:
        changed = False
        live = live_after(insns, result)
        for j, mv in enumerate(insns):
            if not (mv.mn == "mov" and len(mv.ops) == 2 and mv.ops[0][0] == "x" and mv.ops[1][0] == "x"):
                continue
            d, s = reg_number(mv.ops[0]), reg_number(mv.ops[1])
            if d is None or s is None or d == s or s in live[j]:
                continue
            i = next((k for k in range(j - 1, -1, -1) if s in insns[k].writes()), None)
            if i is None or insns[i].dst() != s:
                continue
            if any(d in insns[k].reads() | insns[k].writes() for k in range(i + 1, j)):
                continue
            renamed = []
            for k in range(i, j):
                ins = Ins(insns[k].mn, insns[k].ops)
                first = 1 if k == i else (0 if ins.dst() is None else 1)
                for p in ins.reg_positions(first):
                    if reg_number(ins.ops[p]) == s:
                        ins.ops[p] = _named(ins.ops[p], d)
                if k == i:
                    ins.ops[0] = _named(ins.ops[0], d)
                renamed.append(ins)
            insns = insns[:i] + renamed + insns[j + 1:]
            changed = True
            break
    return insns
