"""Machine words back to genes: the target's instructions as genes mutation can change.

STOKE's optimisation mode starts from the target's code; for mutation to vary an instruction's
operands (a register, an immediate, a condition) rather than replace it whole, the word must be
a gene of the alphabet. The arm64 bulk encoder is linear by construction
(:mod:`evolve.alphabets.arm64_encoder`: word = base + registers times their field units +
the immediate's table entry or linear part), so a word is inverted per operation: the register
fields are read where the units say, the rest looked up in the immediate's table, and every
candidate is encoded again and kept only if it gives the word exactly. Branches stay raw words
(a gene's branch distance counts genes up to the genome's end; the target's are byte offsets),
as does any word with a register outside the working set.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from evolve.alphabets.arm64_encoder import BRANCH, LINEAR, RAW, TABLE, tables


@lru_cache(maxsize=4)
def _index(slots: int) -> dict:
    """Per operation: {word with register fields cleared, minus base: [imm, ...]} of its table."""
    t = tables(slots)
    out = {}
    for op in range(len(t.mode)):
        if t.mode[op] == TABLE:
            values = t.table[t.tab_off[op]:t.tab_off[op] + t.tab_len[op]]
            index: dict = {}
            for imm, v in enumerate(values.tolist()):
                index.setdefault(int(v), imm)
            out[op] = index
    return out


def _field(word: int, unit: int) -> int | None:
    if unit <= 0:
        return None
    return (word // unit) & 31


def lift_word(word: int, n_regs: int, slots: int) -> tuple | None:
    """A gene ``(op, a, b, c, imm)`` of the arm64 alphabet encoding ``word``, or None."""
    t = tables(slots)
    index = _index(slots)
    for op in range(len(t.mode)):
        mode = int(t.mode[op])
        if mode in (RAW, BRANCH):
            continue
        units = [int(u) for u in t.units[op]]
        fields = [_field(word, u) for u in units]
        if any(f is not None and f >= n_regs for f in fields[:3]):
            continue
        if fields[3] is not None and fields[3] >= n_regs:
            continue
        regs_part = sum((f or 0) * u for f, u in zip(fields, units) if u > 0)
        rest = word - int(t.base[op]) - regs_part
        imms = []
        if mode == TABLE:
            imm = index[op].get(rest)
            if imm is not None:
                imms.append(imm)
        elif mode == LINEAR:
            unit = int(t.imm_unit[op])
            if unit > 0 and rest >= 0 and rest % unit == 0:
                imms.append(rest // unit)
        elif rest == 0:
            imms.append(0)
        for imm in imms:
            a, b, c = (f or 0 for f in fields[:3])
            options = [c]
            if units[3] > 0 and units[2] == 0:        # c is free: it sets the fourth register
                options = [(fields[3] - a - b) % n_regs]
            for c in options:
                gene = (op, a, b, c, imm)
                got = t.encode(np.array([gene], np.int64), np.array([1 << 20], np.int64), n_regs)[0]
                if int(got) == word:
                    return gene
    return None


def lift(code: bytes, alphabet) -> list:
    """Genes of ``code`` (a body): each word lifted where it can be, else a raw-word gene."""
    words = [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)]
    slots, n_regs = alphabet.scratch_slots, len(alphabet.regs)
    out = []
    for w in words:
        gene = lift_word(w, n_regs, slots)
        out.append(gene if gene is not None else (alphabet.raw_op(w), 0, 0, 0, w))
    return out
