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

from core.asm import disassembler
from core.executors.native.light import FULL, KEEPS, KEPT, MEM, _OUT, _REGS, code_insns, entry_plan, insn_info

try:
    from numba import njit

    from core.executors.interp.decoder import (
        A_REG, F_KIND, F_MEMF, F_O2, F_OP, F_RA, F_RD, F_RM, F_RN, F_RT2, F_TGT, F_WB, K_ADC, K_ADDSUB, K_B, K_BFM,
        K_CBZ, K_CCMP, K_CSEL, K_DP1, K_DP2, K_DP3, K_EXTR, K_LOGIC, K_MEM, K_MOVW, K_NOP, K_RET, K_SIMD, K_TBZ,
        M_LIT, M_LOAD, M_PAIR, M_PRFM, M_VEC, N_FIELDS, NOP, O2_IMM, RET, _decode_word)
    HAVE_NUMBA = True
except ImportError:   # the qemu lane's userland has no numba: plans per code (capstone), as before
    HAVE_NUMBA = False

    def njit(*_, **__):
        return lambda f: f

_MAX_LEN = 8                     # instructions longer than a uint64 window go through entry_plan
_NONE, _RET, _STOP, _DIRECT, _INDIRECT = range(5)
_KINDS = {"": _NONE, "ret": _RET, "stop": _STOP, "direct": _DIRECT, "indirect": _INDIRECT}


class PlanTable:
    """Known instructions of one ISA (bytes -> ``insn_info``) and bulk plans over them."""

    #: known instructions kept at most (arm64 words of a long run); beyond, the table starts over
    limit = 1 << 20

    def __init__(self, isa: str, decoder: bool = True):
        self.isa = isa
        #: arm64: classify words with the interpreter's decoder first (a safe superset of
        #: capstone's plan: registers it names but may not read count as read), capstone after
        self.decoder = decoder
        self._known: set[bytes] = set()          # x86-64: the instructions learnt, by bytes
        self._tables: dict[int, tuple] = {}      # length -> (keys uint64 sorted, facts [k, 6] int64)
        self._pending: dict[int, list] = {}      # length -> [(keys, facts)] not yet merged
        self._rows: dict[int, list] = {}         # length -> [(key, *facts)] not yet merged
        self._flat: tuple = ()
        self._stale = True

    def learn(self, raw: bytes, info: tuple | None) -> None:
        """Add one classified instruction (None: unclassifiable, never added). x86-64: only if
        capstone decodes the same length with any bytes after it (a complete instruction)."""
        if info is None or not 0 < len(raw) <= _MAX_LEN or raw in self._known:
            return
        if self.isa == "x86_64":
            for tail in (b"\x00", b"\xff"):
                first = next(disassembler(self.isa).disasm_lite(raw + tail * 15, 0, 1), None)
                if first is None or first[1] != len(raw):
                    return
            self._known.add(raw)
        reads, full, mem, heavy, branch, rel = info
        self._rows.setdefault(len(raw), []).append(
            (int.from_bytes(raw, "little"), reads, full, int(mem), int(heavy), _KINDS[branch], rel))
        self._stale = True

    def _add(self, length: int, keys: np.ndarray, facts: np.ndarray) -> None:
        self._pending.setdefault(length, []).append((keys, facts))
        self._stale = True

    def _build(self) -> None:
        """Merge the pending instructions into the sorted tables and the kernel's flat arrays."""
        for length, rows in self._rows.items():
            self._pending.setdefault(length, []).append(
                (np.array([r[0] for r in rows], np.uint64), np.array([r[1:] for r in rows], np.int64).reshape(-1, 6)))
        self._rows = {}
        for length, parts in self._pending.items():
            old = self._tables.get(length, (np.zeros(0, np.uint64), np.zeros((0, 6), np.int64)))
            keys = np.concatenate([old[0]] + [k for k, _ in parts])
            facts = np.concatenate([old[1]] + [f for _, f in parts])
            keys, first = np.unique(keys, return_index=True)
            self._tables[length] = (keys, facts[first])
        self._pending = {}
        if sum(len(t[0]) for t in self._tables.values()) > self.limit:
            self._tables, self._known = {}, set()
        lengths = sorted(self._tables)
        at = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum([len(self._tables[k][0]) for k in lengths], out=at[1:])
        self._flat = (np.array(lengths, np.int64),
                      np.concatenate([self._tables[k][0] for k in lengths] or [np.zeros(0, np.uint64)]), at,
                      np.concatenate([self._tables[k][1] for k in lengths] or [np.zeros((0, 6), np.int64)]))
        self._stale = False

    def plans(self, buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Entry plans (uint64 [n]) of the codes ``buf[offsets[i]:offsets[i + 1]]``: those of
        ``entry_plan``, or (arm64 words the decoder classifies) a safe superset of them."""
        buf = np.ascontiguousarray(buf, np.uint8)
        if not buf.flags.writeable:   # one kernel signature (a read-only array compiles another)
            buf = buf.copy()
        offsets = np.ascontiguousarray(offsets, np.int64)
        if not HAVE_NUMBA:
            raw, off = buf.tobytes(), offsets.tolist()
            return np.array([entry_plan(self.isa, raw[a:b]) for a, b in zip(off, off[1:])], np.uint64)
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
        """arm64: classify each distinct word not yet known, the decoder's in one array, the
        rest with capstone (once per word)."""
        n = len(buf) // 4
        if n == 0:
            return
        words = np.unique(buf[:4 * n].view("<u4")).astype(np.uint64)
        if self._stale:
            self._build()
        table = self._tables.get(4)
        if table is not None and len(table[0]):
            keys = table[0]
            at = np.minimum(np.searchsorted(keys, words), len(keys) - 1)
            words = words[keys[at] != words]
        if not len(words):
            return
        if self.decoder:
            facts, ok = _a64_facts(words)
            self._add(4, words[ok], facts[ok])
            words = words[~ok]
        for w in words.tolist():
            raw = int(w).to_bytes(4, "little")
            self.learn(raw, insn_info(self.isa, raw))

    def _bulk(self, buf: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(plans uint64 [n], unknown bool [n]) by :func:`_plan_kernel`; ``unknown`` codes
        have bytes the table does not know (their plan: to do)."""
        if self._stale:
            self._build()
        return _plan_kernel(buf, offsets, *self._flat, _REGS[self.isa], _OUT[self.isa],
                            np.uint64(FULL[self.isa]), MEM, KEPT[self.isa], KEEPS)


@njit(cache=True)
def _plan_kernel(buf, offsets, lengths, keys, at, facts, regs, out, full_plan, mem_bit, kept, keeps_bit):
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
        plan, written, scanning, full, unk, n_tgt, named = 0, 0, True, False, False, 0, 0
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
            named |= reads | wr
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
        if (named | plan) & kept == 0:
            plan |= keeps_bit
        plans[i] = full_plan if full else np.uint64(plan)
    return plans, unknown


_A64_REGS = (1 << 30) - 1


@njit(cache=True)
def _a64_facts(words):
    """Plan facts of arm64 words from the interpreter's decoder rows: int64 [n, 6] (reads,
    fully written, memory, heavy, branch kind, relative target) and ok bool [n] (False: capstone
    decides). Every register field of a row counts as read unless the kind writes it whole;
    x30 in the destination field gives the full entry (the return may move)."""
    n = words.shape[0]
    facts = np.zeros((n, 6), np.int64)
    ok = np.zeros(n, np.bool_)
    ctl = np.zeros(N_FIELDS, np.int64)
    imm = np.zeros(2, np.uint64)
    for i in range(n):
        w = np.int64(words[i])
        if not _decode_word(w, 0, 0, 1, 0, ctl, imm, False):
            continue
        kind = ctl[F_KIND]
        if kind == K_NOP:
            ok[i] = w == NOP
            continue
        if kind == K_RET:
            if w == RET:
                facts[i, 4] = _RET
                ok[i] = True
            continue
        if kind == K_SIMD:
            facts[i, 3] = 1
            ok[i] = True
            continue
        if (w & 0x1F000000) == 0x10000000:   # adr/adrp: capstone decides
            continue
        rd, rn, rm, ra = ctl[F_RD], ctl[F_RN], ctl[F_RM], ctl[F_RA]
        full, mem, branch, rel = 0, 0, _NONE, 0
        src = (31, 31, 31, 31)   # the registers the row reads (31: none)
        if kind == K_B or kind == K_CBZ or kind == K_TBZ:
            if not ((w & 0xFC000000) == 0x14000000 or (w & 0xFF000010) == 0x54000000
                    or (w & 0x7E000000) == 0x34000000 or (w & 0x7E000000) == 0x36000000):
                continue
            branch, rel = _DIRECT, 4 * ctl[F_TGT]
            src = (rn if kind != K_B else 31, 31, 31, 31)
        elif kind == K_MEM:
            flags = ctl[F_MEMF]
            if flags & (M_VEC | M_LIT | M_PRFM):
                continue
            mem = 1
            pair = flags & M_PAIR != 0
            if flags & M_LOAD:
                full = 1 << rd if rd < 31 else 0
                if pair and ctl[F_RT2] < 31:
                    full |= 1 << ctl[F_RT2]
                if ctl[F_WB] and (rn == rd or pair and rn == ctl[F_RT2]):
                    continue   # writeback into a loaded register: capstone decides
                src = (rn, rm if ctl[F_O2] == A_REG else 31, 31, 31)
            else:
                src = (rn, rm if ctl[F_O2] == A_REG else 31, rd, ctl[F_RT2] if pair else 31)
            if pair and ctl[F_RT2] == 30:
                rd = 30
        elif kind == K_ADDSUB or kind == K_LOGIC:
            full = 1 << rd if rd < 31 else 0
            src = (rn, rm if ctl[F_O2] != O2_IMM else 31, 31, 31)
        elif kind == K_MOVW:
            if ctl[F_OP] == 3:   # movk keeps the other bits
                src = (rd, 31, 31, 31)
            else:
                full = 1 << rd if rd < 31 else 0
        elif kind == K_BFM:
            if ctl[F_OP] == 1:   # bfm keeps the other bits
                src = (rn, rd, 31, 31)
            else:
                full = 1 << rd if rd < 31 else 0
                src = (rn, 31, 31, 31)
        elif kind == K_DP1:
            full = 1 << rd if rd < 31 else 0
            src = (rn, 31, 31, 31)
        elif kind == K_EXTR or kind == K_DP2 or kind == K_CSEL or kind == K_ADC or kind == K_DP3:
            full = 1 << rd if rd < 31 else 0
            src = (rn, rm, ra if kind == K_DP3 else 31, 31)
        elif kind == K_CCMP:
            src = (rn, rm if (w >> 11) & 1 == 0 else 31, 31, 31)
            rd = 31              # the nzcv immediate, not a register
        else:
            continue
        reads = 0
        for r in src:
            if r < 31:
                reads |= 1 << r
        if rd == 30 or kind == K_CBZ and rn == 30 or kind == K_TBZ and rn == 30:
            facts[i, 3] = 1   # x30 rewritten or named first: the full entry
        facts[i, 0] = reads & _A64_REGS
        facts[i, 1] = full & _A64_REGS
        facts[i, 2] = mem
        facts[i, 4] = branch
        facts[i, 5] = rel
        ok[i] = True
    return facts, ok
