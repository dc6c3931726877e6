"""A better seed for the search from the target: its stack slots forwarded into registers.

``gcc -O0`` keeps every variable in its stack slot: ``str x0, [sp, #8]`` ... ``ldr x0, [sp, #8]``
around every use. Removing such a pair by mutation takes several simultaneous changes (the
store, the load, the registers of the instructions between), which neutral drift rarely makes in
a minute. So the seed of ``optimize``'s search from the target is the modelled target
(:mod:`evolve.frame`) after two classic rewrites:

* store-to-load forwarding: within a straight-line run (knowledge is dropped at every branch
  target), a load of a slot whose value a register still holds becomes a register move (the
  same extension the load made: ``mov``, ``uxtb``, ``sxtb``, ...), or nothing for a 64-bit load
  into that very register;
* dead stores: a store to a slot that no remaining load reads is dropped (branches re-aimed).

Nothing here is trusted: the result is only a seed, and joins the population through the same
held-out testing and proofs as any candidate (and the unrewritten target is seeded beside it).
"""
from __future__ import annotations

from core.asm import AsmError, assemble, disassembler
from evolve import cost as K
from evolve import frame as F

_MEM = 3
#: load mnemonic -> (bytes, the move that extends like it; {d}/{s}: registers of the load's width)
_EXTEND = {"ldr": (None, "mov {d}, {s}"), "ldur": (None, "mov {d}, {s}"), "ldrb": (1, "uxtb {d}, {sw}"),
           "ldurb": (1, "uxtb {d}, {sw}"), "ldrh": (2, "uxth {d}, {sw}"), "ldurh": (2, "uxth {d}, {sw}"),
           "ldrsb": (1, "sxtb {d}, {sw}"), "ldursb": (1, "sxtb {d}, {sw}"), "ldrsh": (2, "sxth {d}, {sw}"),
           "ldursh": (2, "sxth {d}, {sw}"), "ldrsw": (4, "sxtw {d}, {sw}"), "ldursw": (4, "sxtw {d}, {sw}")}
_STORES = {"str": None, "stur": None, "strb": 1, "sturb": 1, "strh": 2, "sturh": 2}


def _slot(insn):
    """(offset, bytes, register name) of a single-register ``[sp, #k]`` access, or None."""
    mems = [o for o in insn.operands if o.type == _MEM]
    regs = [insn.reg_name(o.reg) for o in insn.operands if o.type == 1]
    if len(mems) != 1 or len(regs) != 1 or insn.writeback or mems[0].mem.index:
        return None
    if not mems[0].mem.base or insn.reg_name(mems[0].mem.base) != "sp":
        return None
    reg = regs[0]
    if reg[0] not in "xw" or not reg[1:].isdigit():
        return None
    return int(mems[0].mem.disp), reg


def _size(mnemonic: str, reg: str) -> int | None:
    table = _EXTEND if mnemonic.startswith("ld") else _STORES
    if mnemonic not in table:
        return None
    size = table[mnemonic][0] if mnemonic.startswith("ld") else table[mnemonic]
    return size or (8 if reg[0] == "x" else 4)


def simplify(code: bytes) -> bytes:
    """``code`` (a modelled function: SP fixed, stack slots in the scratch area) with its slots
    forwarded and dead stores dropped (see the module docstring); the code itself when nothing
    changes or a rewrite cannot be encoded."""
    try:
        words = _forward(code)
        return _dead_stores(words)
    except (AsmError, ValueError):
        return code


def _forward(code: bytes) -> list:
    cs = disassembler("arm64", detail=True)
    n = len(code) // 4
    insns = [next(cs.disasm(code[4 * k:4 * k + 4], 4 * k, 1), None) for k in range(n)]
    targets = set()
    for k, insn in enumerate(insns):
        d = F.branch_distance(int.from_bytes(code[4 * k:4 * k + 4], "little"))
        if d is not None:
            targets.add(k + d)
    held: dict = {}            # offset -> (bytes, 64-bit register name holding the stored value)
    out = []
    for k, insn in enumerate(insns):
        word = int.from_bytes(code[4 * k:4 * k + 4], "little")
        if k in targets or insn is None:
            held = {}
        if insn is None:
            out.append((k, word))
            continue
        m = insn.mnemonic
        slot = _slot(insn)
        size = _size(m, slot[1]) if slot else None
        if slot and size and m.startswith("st"):
            off, reg = slot
            held = {o: v for o, v in held.items() if o + v[0] <= off or off + size <= o}    # overlapping: stale
            if reg not in ("xzr", "wzr"):
                held[off] = (size, "x" + reg[1:])
            out.append((k, word))
            continue
        if slot and size and m in _EXTEND:
            off, reg = slot
            known = held.get(off)
            if known and known[0] == size:
                src = known[1]
                if m in ("ldr", "ldur") and reg[0] == "x" and src == reg:
                    continue                                      # the register holds it already
                text = _EXTEND[m][1].format(d=reg, s=(reg[0] + src[1:]), sw="w" + src[1:])
                out.append((k, int.from_bytes(assemble([text]), "little")))
                held = _written(insn, held)            # the load's register is overwritten ...
                if src != "x" + reg[1:]:
                    held[off] = known                  # ... the source still holds the slot
                continue
        held = _written(insn, held)
        out.append((k, word))
    return out


def _written(insn, held: dict) -> dict:
    """``held`` without the slots whose register ``insn`` writes."""
    _reads, writes = K._effects(insn)
    regs = {w for w in writes if isinstance(w, str)}
    return {o: v for o, v in held.items() if v[1] not in regs}


def _dead_stores(units: list) -> bytes:
    """The code of ``units`` without the stores to slots no load reads, branches re-aimed."""
    cs = disassembler("arm64", detail=True)
    loads = []
    decoded = []
    for i, word in units:
        insn = next(cs.disasm(word.to_bytes(4, "little"), 0, 1), None)
        decoded.append(insn)
        if insn is None:
            continue
        if insn.mnemonic.startswith("ld") and any(o.type == _MEM for o in insn.operands):
            mem = next(o for o in insn.operands if o.type == _MEM).mem
            loads.append((int(mem.disp), F._access_size(insn)))
    keep = []
    for (i, word), insn in zip(units, decoded):
        slot = _slot(insn) if insn is not None else None
        if slot and insn.mnemonic in _STORES:
            off, size = slot[0], _size(insn.mnemonic, slot[1])
            if not any(o < off + size and off < o + s for o, s in loads):
                continue
        keep.append((i, word))
    return F.relink(keep)
