"""Entry plans of a whole batch at once: numpy over the instructions, capstone once per instruction.

:func:`core.executors.native.light.entry_plan` walks one code with capstone (~0.1-3 ms a code:
disassembly, a Python loop). A new generation of offspring is mostly new codes made of the
same instructions, so :class:`PlanTable` keeps every instruction capstone has classified
(:func:`light.insn_info`) in sorted arrays, one per instruction length, and plans all codes
of a batch in lock step: at step ``k`` every code's ``k``-th instruction is found by looking up
the bytes at its position under each known length, and the plan rules of ``entry_plan`` are
applied with array operations. Finding instructions this way is exact: an x86-64 decoder reads
an instruction's bytes from its first one and stops at its end whatever follows, so known bytes
at a position are the instruction there (no known instruction is a proper prefix of another).
A code with bytes the table does not know goes through ``entry_plan`` (capstone), which
teaches the table its instructions; arm64 words unknown to the table are classified one by
one (its boundaries are fixed). ``tests/test_native_plans.py`` checks both give the same plans.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.asm import disassembler
from core.executors.native.light import FULL, MEM, _OUT, _REGS, code_insns, entry_plan, insn_info

_MAX_LEN = 8                     # instructions longer than a uint64 window go through entry_plan
_NONE, _RET, _STOP, _DIRECT, _INDIRECT = range(5)
_KINDS = {"": _NONE, "ret": _RET, "stop": _STOP, "direct": _DIRECT, "indirect": _INDIRECT}


class PlanTable:
    """Known instructions of one ISA (bytes -> ``insn_info``) and bulk plans over them."""

    def __init__(self, isa: str):
        self.isa = isa
        self._known: dict[bytes, tuple] = {}
        self._tables: dict[int, tuple] = {}    # length -> (keys uint64 sorted, facts [k, 6] int64)
        self._stale = True
        self._flat: tuple = ()

    def learn(self, raw: bytes, info: tuple | None) -> None:
        """Add one classified instruction (None: unclassifiable, never added). x86-64: only if
        capstone decodes the same length with any bytes after it (a complete instruction)."""
        if info is None or not 0 < len(raw) <= _MAX_LEN or raw in self._known:
            return
        if self.isa == "x86_64":
            for tail in (b"\x00", b"\xff", b"\x0f", b"\x66"):
                first = next(disassembler(self.isa).disasm_lite(raw + tail * 15, 0, 1), None)
                if first is None or first[1] != len(raw):
                    return
        self._known[raw] = info
        self._stale = True

    def _build(self) -> None:
        by_len: dict[int, list] = {}
        for raw, (reads, full, mem, heavy, branch, rel) in self._known.items():
            by_len.setdefault(len(raw), []).append(
                (int.from_bytes(raw, "little"), reads, full, int(mem), int(heavy), _KINDS[branch], rel))
        self._tables = {}
        for length, rows in by_len.items():
            keys = np.array([r[0] for r in rows], np.uint64)
            facts = np.array([r[1:] for r in rows], np.int64)
            order = np.argsort(keys)
            self._tables[length] = (keys[order], facts[order])
        lengths = sorted(self._tables)
        at = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum([len(self._tables[k][0]) for k in lengths], out=at[1:])
        self._flat = (np.array(lengths, np.int64),
                      np.concatenate([self._tables[k][0] for k in lengths] or [np.zeros(0, np.uint64)]), at,
                      np.concatenate([self._tables[k][1] for k in lengths] or [np.zeros((0, 6), np.int64)]))
        self._stale = False

    def plans(self, buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Entry plans (uint64 [n]) of the codes ``buf[offsets[i]:offsets[i + 1]]``; equal to
        ``entry_plan`` of each code."""
        buf = np.ascontiguousarray(buf, np.uint8)
        offsets = np.asarray(offsets, np.int64)
        if self.isa == "arm64":
            self._learn_words(buf)
        plans, unknown = self._bulk(buf, offsets)
        for i in np.flatnonzero(unknown):
            code = buf[offsets[i]:offsets[i + 1]].tobytes()
            plans[i] = entry_plan(self.isa, code)
            for _, raw, info in code_insns(self.isa, code) or ():
                self.learn(raw, info)
        return plans

    def _learn_words(self, buf: np.ndarray) -> None:
        """arm64: classify each distinct word not yet known (capstone, once per word)."""
        n = len(buf) // 4
        if n == 0:
            return
        words = np.unique(buf[:4 * n].view("<u4"))
        if self._stale:
            self._build()
        table = self._tables.get(4)
        if table is not None:
            keys = table[0]
            at = np.minimum(np.searchsorted(keys, words), len(keys) - 1)
            words = words[keys[at] != words]
        for w in words.tolist():
            raw = int(w).to_bytes(4, "little")
            self.learn(raw, insn_info(self.isa, raw))

    def _bulk(self, buf: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plans uint64 [n], unknown bool [n]) by :func:`_plan_kernel`; ``unknown`` codes
        have bytes the table does not know (their plan: to do)."""
        if self._stale:
            self._build()
        return _plan_kernel(buf, offsets, *self._flat, _REGS[self.isa], _OUT[self.isa],
                            np.uint64(FULL[self.isa]), MEM)


@njit(cache=True)
def _plan_kernel(buf, offsets, lengths, keys, at, facts, regs, out, full_plan, mem_bit):
    """``entry_plan``'s rules per code over the table's instructions (``keys[at[j]:at[j + 1]]``
    sorted, of ``lengths[j]`` bytes; ``facts`` their reads, writes, memory, heavy, kind, rel)."""
    n = offsets.shape[0] - 1
    plans = np.zeros(n, np.uint64)
    unknown = np.zeros(n, np.bool_)
    longest = 0
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    stamp = np.full(longest + 1, -1, np.int64)    # stamp[o] == i: code i has an instruction at o
    targets = np.zeros(longest + 1, np.int64)
    for i in range(n):
        s, e = offsets[i], offsets[i + 1]
        plan, written, scanning, full, unk, n_tgt = 0, 0, True, False, False, 0
        p = s
        while p < e:
            window = np.uint64(0)
            for k in range(min(8, e - p)):
                window |= np.uint64(buf[p + k]) << np.uint64(8 * k)
            hit, size = -1, 0
            for j in range(lengths.shape[0]):
                ln = lengths[j]
                if p + ln > e:
                    continue
                key = window if ln == 8 else window & ((np.uint64(1) << np.uint64(8 * ln)) - np.uint64(1))
                lo, hi = at[j], at[j + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if keys[mid] < key:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < at[j + 1] and keys[lo] == key:
                    if hit >= 0:    # cannot happen for decodings: capstone decides
                        unk = True
                    hit, size = lo, ln
            if hit < 0 or unk:
                unk = True
                break
            reads, wr, mem, heavy, kind = facts[hit, 0], facts[hit, 1], facts[hit, 2], facts[hit, 3], facts[hit, 4]
            stamp[p - s] = i
            if heavy or kind == _INDIRECT:
                full = True
                break
            if mem:
                plan |= mem_bit
            if kind == _DIRECT:
                targets[n_tgt] = p - s + facts[hit, 5]
                n_tgt += 1
            if scanning:
                plan |= reads & ~written
                written |= wr
                if kind == _RET:
                    plan |= out & ~written
                    scanning = False
                elif kind != _NONE:
                    plan |= regs & ~written
                    scanning = False
            p += size
        if unk:
            unknown[i] = True
            continue
        if scanning:
            plan |= out & ~written
        for t in range(n_tgt):   # a direct branch lands on an instruction start or the end
            tgt = targets[t]
            if tgt < 0 or tgt > e - s or tgt < e - s and stamp[tgt] != i:
                full = True
        plans[i] = full_plan if full else np.uint64(plan)
    return plans, unknown
