"""Fitness: how far a genome's outputs are from the task, what its crashes cost, how long it is.

The cost (minimised) of a genome evaluated on ``n`` training cases is ::

    cost = 0.5 * hamming / (64 n)          # STOKE's correctness: bits wrong, summed over cases
         + 0.5 * (1 - exact / n)           # plus the share of cases not exactly right
         + w_brain * (threshold - 0.1) / 2.9   # the brain's reinforcement: crashes raise it
         + w_len * length / max_len        # parsimony, only once every case is exact

A crashed case counts as 64 wrong bits. ``threshold`` is the genome's EXEC node threshold ratio
after the seed's rule has seen every one of its executions (and its parents' prior), so code that
crashes, or descends from code that crashed, costs more until it proves itself. Without the brain
(``--no-brain``) that term is 0. Parsimony applies only to genomes exact on every case: earlier,
a longer genome that writes scratch registers without touching x0 is a neutral step towards a
solution, and penalising its length would remove the drift that finds one. A genome is *solved* when it is exact on every training case and
then on the held-out validation set, run with different random values in the non-argument
registers, so a solution cannot depend on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from core.asm import disassembler
from core.isa import Isa
from core.outcome import Outcome

def popcount64(values: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 (uint8, same shape)."""
    v = np.ascontiguousarray(values, dtype=np.uint64)
    return _popcount(v.ravel()).reshape(v.shape)


@njit(cache=True)
def _popcount(v):
    out = np.empty(v.size, np.uint8)
    for i in range(v.size):   # SWAR bit count: ~1 ns a word, no table, no temporaries
        x = v[i]
        x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
        x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
        x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
        out[i] = np.uint8((x * np.uint64(0x0101010101010101)) >> np.uint64(56))
    return out


@dataclass(frozen=True)
class FitnessWeights:
    brain: float = 0.05
    length: float = 0.002


def case_errors(outputs: np.ndarray, outcomes: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """uint8 [n_genomes, n_cases]: wrong bits per case; a crash counts 64."""
    errors = popcount64(outputs ^ expected[None, :])
    errors[outcomes != Outcome.OK] = 64
    return errors


def costs(errors: np.ndarray, thresholds: np.ndarray | None, lengths: np.ndarray, max_len: int,
          weights: FitnessWeights = FitnessWeights()) -> np.ndarray:
    """float64 [n_genomes]: the cost above (thresholds None: no brain term)."""
    n_cases = errors.shape[1]
    hamming = errors.sum(axis=1, dtype=np.int64) / (64.0 * n_cases)
    mismatch = 1.0 - (errors == 0).sum(axis=1) / n_cases
    cost = 0.5 * hamming + 0.5 * mismatch
    cost = cost + np.where(mismatch == 0, weights.length * np.asarray(lengths) / max_len, 0.0)
    if thresholds is not None:
        cost = cost + weights.brain * (np.asarray(thresholds, np.float64) - 0.1) / 2.9
    return cost


_FLAGS = {"arm64": "nzcv", "x86_64": "rflags"}
# capstone lists nzcv as read by these (it is not); x86 inc/dec leave CF as it was
_NOT_FLAG_READERS = {"cbz", "cbnz", "tbz", "tbnz"}
_PARTIAL_FLAG_WRITERS = {"inc", "dec"}


def flag_effects(code: bytes, isa: Isa) -> tuple[bool, bool, bool] | None:
    """``(reads, writes, branches)`` of one instruction's flags, as :func:`reads_entry_flags`
    sees them; None when capstone cannot tell."""
    flags = _FLAGS[isa.name]
    for insn in disassembler(isa, detail=True).disasm(bytes(code), 0):
        try:
            reads, writes = insn.regs_access()
        except Exception:
            return None
        return (insn.mnemonic not in _NOT_FLAG_READERS and flags in {insn.reg_name(r) for r in reads},
                insn.mnemonic not in _PARTIAL_FLAG_WRITERS and flags in {insn.reg_name(r) for r in writes},
                bool(insn.group(1) or insn.group(7)))
    return None


def entry_flag_readers(tokens: np.ndarray, lengths: np.ndarray, table: np.ndarray) -> np.ndarray:
    """bool [n]: genomes (gene tokens int64 [n, L], ``lengths`` [n]) that read the flags before
    setting them, by the operations' flag effects (``table`` bool [n_ops, 3]: reads, writes,
    branches; :meth:`evolve.genes.Alphabet.flag_table`) with :func:`reads_entry_flags`'s rule (a
    write after a branch does not count). Vectorised, for every genome of a batch; operations
    the table does not know (raw words) count as neither, so this guides the search while the
    static check on the code still decides what may be a solution."""
    tokens = np.ascontiguousarray(tokens, np.int64)
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        return np.zeros(tokens.shape[0], bool)
    return _flag_readers(tokens, np.ascontiguousarray(lengths, np.int64), np.ascontiguousarray(table, np.bool_))


@njit(cache=True)
def _flag_readers(tokens, lengths, table):
    """:func:`entry_flag_readers`, a genome at a time: the first read at or before the first
    write that no branch precedes (a read and a write in one instruction reads first)."""
    n, width = tokens.shape
    out = np.zeros(n, np.bool_)
    for i in range(n):
        first_read, first_write, branched = -1, width, False
        for j in range(min(lengths[i], width)):
            t = tokens[i, j]
            if table[t, 0] and first_read < 0:
                first_read = j
            if table[t, 1] and not branched and first_write == width:
                first_write = j
            if table[t, 2]:
                branched = True
        out[i] = first_read >= 0 and first_read <= first_write
    return out


def reads_entry_flags(code: bytes, isa: Isa) -> bool:
    """True if ``code`` may read the condition flags before setting them.

    At a function's entry the flags hold whatever the caller left: the backends start every case
    with the same flags, so only this static check keeps such code from passing as a solution.
    Conservative: a flag write counts only if no branch comes before it."""
    flags = _FLAGS[isa.name]
    written = branched = False
    code = bytes(code)
    seen = 0
    for insn in disassembler(isa, detail=True).disasm(code, 0):
        seen = insn.address + insn.size
        try:
            reads, writes = insn.regs_access()
        except Exception:       # capstone cannot tell: assume the worst
            return True
        if insn.mnemonic not in _NOT_FLAG_READERS and flags in {insn.reg_name(r) for r in reads} \
                and not written:
            return True
        if not branched and insn.mnemonic not in _PARTIAL_FLAG_WRITERS \
                and flags in {insn.reg_name(r) for r in writes}:
            written = True
        if insn.group(1) or insn.group(7):   # CS_GRP_JUMP, CS_GRP_BRANCH_RELATIVE
            branched = True
    # capstone stops at a word it cannot decode: what follows may read the flags (a branch can
    # jump over that word), so code it could not read to the end counts as a reader
    return seen < len(code) and not written
