"""Peephole enumeration for the optimisation phase: every window of 2-4 consecutive genes of the
best verified program is replaced by nothing and by each gene of an enumerated set, and the
replacements are screened on the training cases in executor batches.

Why: evolution rarely finds that several instructions collapse into one (the default run's
``movn x3, #239; rbit x2, x3; orr x3, x2, x3; add x3, x3, x0`` is ``sub x3, x0, #1``), while
enumerating one instruction for a window is cheap: tens of thousands of programs, run by the
same executors on a few cases first. This is the windowed form of exhaustive superoptimisation
(Massalin 1987 enumerated whole programs; Bansal and Aiken, "Automatic generation of peephole
superoptimizers", ASPLOS 2006, enumerated replacements for windows of compiled code).

Only screening happens here: a replacement exact on every training case goes back to the
optimisation phase (:mod:`evolve.optimize`) as a candidate, which verifies it exactly as it
verifies the genetic search's candidates (held-out testing, proofs); nothing is accepted here.

The enumerated genes write one register, the window's live-out: every data-processing operation
of the alphabet with registers from the working set and immediates from small sets (all shift
and rotate amounts and bit-field positions, the 12-bit immediates 0-16 and the window's own
constants with their neighbours, the simple logical masks, the constant the window computes
when it computes one: constant folding); no loads, stores, branches, raw words or NEON.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.asm import disassembler
from core.executors.batch_state import CaseStates
from evolve import fitness as fit
from evolve.alphabets.arm64_ops import CONDITIONS, MASKS, MASKS32, OPS, bitmasks

#: window lengths tried, the longest (the biggest saving) first
WINDOWS = (4, 3, 2)
#: training cases a replacement is screened on before it runs on all of them
SCREEN_CASES = 16
#: shift amounts of the shifted-register forms (all 63 for the plain shifts)
SHIFT_AMOUNTS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 31, 32, 33, 40, 48, 56, 60, 61, 62, 63)
#: bit-field widths tried at every position
FIELD_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 31, 32, 48, 63)
_FLAG_ONLY = {"cmp", "cmpi", "ccmp", "ccmpi"}
_SKIP = {"mem", "bcond", "cbz", "tbz", "raw", "neon"}
_FLAGS_ONLY_MNEMONICS = {"cmp", "cmn", "tst", "ccmp", "ccmn"}
#: bool [n_ops, 3]: whether an operation's syntax reads its n, m and fourth register
OPERANDS = np.array([[any(f in op.syntax for f in ("{n}", "{wn}", "{xn}")),
                      any(f in op.syntax for f in ("{m}", "{wm}", "{em}")), "{a}" in op.syntax] for op in OPS], bool)
#: the token of ``mov xd, xn`` (a register's value read out as the result)
MOV = next(i for i, e in enumerate(OPS) if e.name == "mov" and e.kind == "r2" and e.width == 64)
_FLAGS = 64           # the flags' index in the register sets below (x0..x30 are 0..30)
_OTHER = 65           # memory, SIMD, SP: anything that is not a working register or the flags


@dataclass(frozen=True)
class Window:
    """Genes ``[start, stop)`` of a program, whose only live-out register is ``dst`` (x0-x30; the
    flags: ``_FLAGS``; nothing: -1)."""

    start: int
    stop: int
    dst: int


# ----------------------------------------------------------------------------- dataflow
def effects(code: bytes) -> list[tuple[frozenset, frozenset]]:
    """Per instruction of arm64 ``code``: (registers read, registers written) as numbers (x0-x30
    and their w halves: 0-30, the flags: 64, anything else: 65). capstone's access lists, with
    its compare family fixed (it lists ``cmp x0, #3`` as writing x0 and reading nothing); an
    instruction capstone cannot decode reads and writes everything."""
    out = []
    md = disassembler("arm64", detail=True)
    decoded = {insn.address: insn for insn in md.disasm(code, 0)}
    for at in range(0, len(code), 4):
        insn = decoded.get(at)
        if insn is None:
            everything = frozenset(range(31)) | {_FLAGS, _OTHER}
            out.append((everything, everything))
            continue
        reads, writes = insn.regs_access()
        r = {_number(insn.reg_name(x)) for x in reads}
        w = {_number(insn.reg_name(x)) for x in writes}
        if insn.mnemonic in _FLAGS_ONLY_MNEMONICS:
            r |= {_number(t.strip().split()[0]) for t in insn.op_str.split(",") if t.strip()[:1] in "xw"}
            w = {_FLAGS}
        out.append((frozenset(r - {None}), frozenset(w - {None})))
    return out


def _number(name: str) -> int | None:
    if name in ("xzr", "wzr"):
        return None
    if name[:1] in "xw" and name[1:].isdigit():
        return int(name[1:])
    return _FLAGS if name == "nzcv" else _OTHER


def live_after(effs: list, result: int = 0, branches: bool = False) -> list[frozenset]:
    """Registers live after each instruction (the result register at the end). With
    ``branches`` (forward branches anywhere), conservatively everything read later counts."""
    live = [frozenset()] * len(effs)
    cur = {result, _OTHER}
    later_reads: set = set(cur)
    for i in range(len(effs) - 1, -1, -1):
        live[i] = frozenset(later_reads if branches else cur)
        reads, writes = effs[i]
        cur = (cur - writes) | reads
        later_reads |= reads
    return live


def windows(code: bytes, n_genes: int, branch_at: set, result: int = 0) -> list[Window]:
    """The windows of a program worth enumerating, the longest first: no branch inside, and
    exactly one working register written in it that is live after it (the flags and memory
    are not written, or not live)."""
    effs = effects(code)
    if len(effs) != n_genes:
        return []
    live = live_after(effs, result, branches=bool(branch_at))
    out = []
    for k in WINDOWS:
        for start in range(0, n_genes - k + 1):
            stop = start + k
            if any(i in branch_at for i in range(start, stop)):
                continue
            written = set().union(*(effs[i][1] for i in range(start, stop)))
            out_live = written & live[stop - 1]
            regs = [r for r in out_live if r < 31]
            if len(regs) == 1 and not out_live - set(regs):
                out.append(Window(start, stop, regs[0]))
            elif out_live == {_FLAGS}:
                out.append(Window(start, stop, _FLAGS))  # a comparison: the flags alone are live-out
            elif not out_live:
                out.append(Window(start, stop, -1))      # dead code: deleting it is the candidate
    return out


# ----------------------------------------------------------------------------- candidates
def _imm_values(kind: str, width: int, consts: tuple) -> list[int]:
    """The immediates enumerated for a kind (see ``IMM_RANGE`` in ``arm64_ops``); with
    ``consts``, only those the constants add (the kinds that take constants)."""
    if consts:
        if kind == "r2i12":
            return sorted({v for c in consts for v in (c - 1, c, c + 1, -c) if 16 < v < 4096})
        if kind == "r2mask":
            masks = MASKS if width == 64 else MASKS32
            index = {m: i for i, m in enumerate(masks)}
            return sorted({index[c & (2**width - 1)] for c in consts if c & (2**width - 1) in index} - set(range(bitmasks.SIMPLE)))
        if kind != "movw":
            return []
    if kind in ("r3", "r2", "r4"):
        return [0]
    if kind == "r2i12":
        return list(range(17))
    if kind == "r2sh":
        return list(range(width))
    if kind == "r2mask":
        return list(range(bitmasks.SIMPLE))
    if kind in ("sha", "shl"):
        types = 3 if kind == "sha" else 4
        amounts = [a for a in SHIFT_AMOUNTS if a < width]
        return [t * 63 + a - 1 for t in range(types) for a in amounts]
    if kind == "ext":
        return list(range(40))
    if kind in ("csel", "cset"):
        return list(range(len(CONDITIONS)))
    if kind in ("bfx", "bfi"):
        return [lsb * 64 + (w - 1) for lsb in range(width) for w in FIELD_WIDTHS if lsb + w <= width]
    if kind == "extr":
        return list(range(1, width))
    if kind == "movw":          # the constant's 16-bit pieces, as movz and movn would take them
        out = []
        for c in consts:
            for hw in range(4 if width == 64 else 2):
                out += [hw * 65536 + ((c >> (16 * hw)) & 0xFFFF), hw * 65536 + ((~c >> (16 * hw)) & 0xFFFF)]
        return sorted(set(out))
    return []


@lru_cache(maxsize=64)
def single_genes(dst: int, n_regs: int, consts: tuple = ()) -> np.ndarray:
    """int64 [n, 5]: every enumerated gene writing register ``dst`` (see the module docstring);
    with ``consts``, only the genes those constants add to the set without them."""
    parts = []
    regs = np.arange(n_regs)
    for op, entry in enumerate(OPS):
        kind = entry.kind
        if kind in _SKIP or kind in _FLAG_ONLY or entry.name in _FLAGS_ONLY_MNEMONICS:
            continue
        if kind == "movw" and entry.name == "movk":
            continue
        imms = np.asarray(_imm_values(kind, entry.width, consts), np.int64)
        if not imms.size:
            continue
        reads_n, reads_m = OPERANDS[op, 0], OPERANDS[op, 1]
        ns = regs if reads_n else np.zeros(1, np.int64)
        if kind == "r4":               # the fourth register is (d + n + m) % n_regs: every one of them
            n, a = (g.ravel() for g in np.meshgrid(ns, regs, indexing="ij"))
            m, imm = (a - dst - n) % n_regs, np.zeros_like(n)
        else:
            ms = regs if reads_m else np.zeros(1, np.int64)
            n, m, imm = (g.ravel() for g in np.meshgrid(ns, ms, imms, indexing="ij"))
        parts.append(np.stack([np.full_like(n, op), np.full_like(n, dst), n, m, imm], axis=1))
    if not parts:
        return np.zeros((0, 5), np.int64)
    genes = np.concatenate(parts).astype(np.int64)      # no two alike: one row per operand choice
    return genes[np.lexsort(genes.T[::-1])]


@lru_cache(maxsize=8)
def flag_genes(n_regs: int) -> np.ndarray:
    """int64 [n, 5]: the enumerated comparisons (genes that write the flags and no register):
    cmp/cmn/tst over registers, shifted and extended registers, the 12-bit immediates 0-16, the
    simple masks; ccmp/ccmn with every condition and flag value (immediates 0-4, 8, 16, 31)."""
    rows = []
    regs = range(n_regs)
    for op, entry in enumerate(OPS):
        kind, syntax = entry.kind, entry.syntax
        if not (kind in _FLAG_ONLY or entry.name in _FLAGS_ONLY_MNEMONICS):
            continue
        if kind == "cmp":
            imms = [0]
        elif kind == "cmpi":
            imms = list(range(17))
        elif kind == "ccmp":
            imms = list(range(16 * len(CONDITIONS)))
        elif kind == "ccmpi":
            imms = [c * 512 + nzcv * 32 + i for c in range(len(CONDITIONS)) for nzcv in range(16)
                    for i in (0, 1, 2, 3, 4, 8, 16, 31)]
        else:
            imms = _imm_values(kind, entry.width, ())
        two = "{m}" in syntax or "{em}" in syntax
        rows.extend((op, 0, n, m, imm) for n in regs for m in (regs if two else (0,)) for imm in imms)
    return np.unique(np.asarray(rows, np.int64).reshape(-1, 5), axis=0)


def replacement_genes(dst: int, n_regs: int, consts: tuple) -> np.ndarray:
    """The base set for ``dst`` and what ``consts`` add to it."""
    base = single_genes(dst, n_regs)
    return np.concatenate([single_genes(dst, n_regs, tuple(sorted(set(consts)))), base]) if consts else base


def window_constants(genes: list, start: int, stop: int) -> tuple:
    """Small immediates the window's genes carry (their ``imm`` for the 12-bit kinds)."""
    out = set()
    for g in genes[start:stop]:
        if OPS[g[0]].kind in ("r2i12", "cmpi"):
            out.add(int(g[4]))
    return tuple(sorted(out))


# ----------------------------------------------------------------------------- the search
class Peephole:
    """The windows of one program, enumerated a batch at a time (:meth:`step`)."""

    def __init__(self, alphabet, evaluator, train_x: np.ndarray, train_y: np.ndarray, seed: int,
                 exact_fn=None, batch: int = 20_000):
        self.alphabet, self.evaluator = alphabet, evaluator
        self.train_x, self.train_y, self.seed = train_x, train_y, seed
        self.exact_fn = exact_fn          # codes -> bool [n]: exact on the caller's own terms
        self.batch = batch
        self.genes: list | None = None
        self._queue: list = []
        self.tried = 0                    #: replacements run
        self.found = 0                    #: replacements exact on every training case

    def reset(self, genes: list) -> None:
        """Enumerate the windows of ``genes`` (a new best) from the start."""
        self.genes = [tuple(int(v) for v in g) for g in genes]
        code = self.alphabet.encode(self.genes)
        branch_at = {i for i, g in enumerate(self.genes) if OPS[g[0]].kind in ("bcond", "cbz", "tbz")}
        self._queue = []
        for w in windows(code, len(self.genes), branch_at):
            self._queue.append((w, None))

    @property
    def exhausted(self) -> bool:
        return not self._queue

    def _replacements(self, w: Window, consts: tuple) -> np.ndarray:
        if w.dst < 0:
            return np.zeros((1, 0, 5), np.int64)
        if w.dst == _FLAGS:
            return flag_genes(len(self.alphabet.regs))[:, None, :]
        cands = replacement_genes(w.dst, len(self.alphabet.regs), consts)
        return cands[:, None, :]

    def step(self, seconds: float, limit: int | None = None) -> list[list]:
        """Enumerate for about ``seconds`` or ``limit`` replacements, whichever comes first;
        returns the replacements' programs (gene lists) that are exact on every training case."""
        t_end = time.perf_counter() + seconds
        found, done = [], 0
        while self._queue and time.perf_counter() < t_end and (limit is None or done < limit):
            w, state = self._queue.pop(0)
            if state is None:
                consts = window_constants(self.genes, w.start, w.stop)
                if 0 <= w.dst < 31:
                    consts = consts + self._constant(w)
                state = (self._replacements(w, consts), 0)
            reps, at = state
            size = self.batch if limit is None else max(1, min(self.batch, limit - done))
            part = reps[at:at + size]
            if at + size < len(reps):
                self._queue.insert(0, (w, (reps, at + size)))
            done += len(part)
            found += self._screen(w, part)
        return found

    def _constant(self, w: Window) -> tuple:
        """``(v,)`` when the window leaves the same value ``v`` in its live-out register on every
        training case (under two draws of the other registers), else ``()``."""
        probe = self.genes[:w.stop] + [(MOV, 0, w.dst, 0, 0)]
        code = self.alphabet.encode(probe)
        vals = []
        for seed in (self.seed, self.seed + 1):
            out, outcome = self.evaluator.run([code], self.train_x, seed=seed)
            if outcome.any():
                return ()
            vals.append(out[0])
        v = np.concatenate(vals)
        return (int(v[0]),) if (v == v[0]).all() else ()

    def _screen(self, w: Window, reps: np.ndarray) -> list[list]:
        n, k = reps.shape[0], reps.shape[1]
        prefix = np.asarray(self.genes[:w.start], np.int64).reshape(-1, 5)
        suffix = np.asarray(self.genes[w.stop:], np.int64).reshape(-1, 5)
        length = len(prefix) + k + len(suffix)
        if length == 0:
            return []
        genes = np.concatenate([np.broadcast_to(prefix, (n,) + prefix.shape), reps,
                                np.broadcast_to(suffix, (n,) + suffix.shape)], axis=1)
        lengths = np.full(n, length, np.int64)
        codes = self.alphabet.encode_array(genes, lengths)
        s = min(SCREEN_CASES, len(self.train_y))
        out, outcome = self.evaluator.run(codes, self.train_x[:s], seed=self.seed)
        ok = ~fit.case_errors(out, outcome, self.train_y[:s]).any(axis=1)
        self.tried += n
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return []
        # every training case under its own random registers and scratch: a replacement that is
        # right only for one draw of the registers it should not read fails here, not in the
        # phase's held-out testing (whose counterexamples would re-evaluate the population)
        states = CaseStates.from_seed(self.seed + 1, len(self.train_y), self.evaluator.scratch)
        out, outcome = self.evaluator.run([codes[i] for i in idx], self.train_x, seed=0, states=states)
        idx = idx[~fit.case_errors(out, outcome, self.train_y).any(axis=1)]
        if idx.size and self.exact_fn is not None:
            idx = idx[self.exact_fn([codes[i] for i in idx])]
        self.found += int(idx.size)
        return [[tuple(int(v) for v in g) for g in genes[i]] for i in idx]
