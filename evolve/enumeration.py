"""Exhaustive enumeration of one- and two-instruction programs, and a bank of values reaching
three to five (:mod:`evolve.bank`), alongside the genetic search.

Why: many tasks a user brings have a two-instruction answer (``x ^ (x - 1)`` is ``sub x1, x0,
#1; eor x0, x0, x1``) that evolution can miss for a whole run (p04 sat at 58 of 64 exact cases),
while enumerating such programs is cheap when equivalent first instructions are merged: the first
instruction's result on the enumeration's cases is all the second one can see, so one first
instruction per distinct result vector suffices (enumerative synthesis with observational
equivalence, as in Udupa et al., "TRANSIT", PLDI 2013; Massalin's superoptimiser enumerated
without it).

Order: every single gene writing x0 from the arguments (as :mod:`evolve.peephole` enumerates
them); then first genes writing a free register ``t`` from the arguments (the cheap operand
forms: registers, shifts, small immediates, simple masks), merged by their result on
:data:`CASES` cases, each followed by every cheap second gene writing x0 that reads ``t``.
Programs exact on the enumeration's cases are returned to the engine, which evaluates and
verifies them like any genome (held-out testing, proofs): nothing here is taken on trust.

The work is cut into steps of a fixed number of programs (:data:`PER_GENOME` per genome of the
population, one step per generation until done) and of the bank's value-case operations
(:data:`BANK_PER_GENOME`): the run stays reproducible, and both positions are part of the
checkpoint (:attr:`Enumeration.position`).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from core.executors.batch_state import CaseStates
from evolve import bank as BK
from evolve import fitness as fit
from evolve import peephole as PH
from evolve.alphabets.arm64_ops import OPS

#: the enumeration's own cases (its merging and screening; the engine's training set decides)
CASES = 64
#: programs run per generation and genome of the population: a program costs ~10-13 us of the
#: executor's per-code work, a genome's share of a generation ~0.2 ms (pop 300: ~65 ms a
#: generation on one core), so the enumeration takes about 40% of each generation until it is
#: done, whatever the population
PER_GENOME = 12
#: the bank's value-case operations per generation and genome (~15-25 ns each: numpy, one core).
#: With 5,000 the bank took 42 % of the generation loop of an unsolved p20 run (20 s, profiled,
#: on main with the faster interpreter, 7.0 of 16.5 s), the two-instruction programs 7 %; 3,000
#: keeps it near a third while it runs
BANK_PER_GENOME = 3_000
#: at most this many first genes (one per distinct result) and second genes, the most common
#: operations first (the alphabet's weights): 1.5 M pairs at most, ~150 generations
MAX_FIRSTS, MAX_SECONDS = 1000, 1500
#: operand kinds of the cheap forms (first and second genes of two-instruction programs)
CHEAP = {"r3", "r2", "r2i12", "r2sh", "r2mask", "sha", "shl"}
#: shifted-register amounts of the cheap forms
CHEAP_SHIFTS = (1, 2, 3, 4, 8, 16, 32, 63)
#: simple masks of the cheap forms (the first of bitmasks.ORDERED)
CHEAP_MASKS = 64


#: banks kept by a process (64 MB each at most), for the islands' tasks that continue them
BANKS_KEPT = 2
_BANKS: OrderedDict = OrderedDict()


def _cheap(genes: np.ndarray) -> np.ndarray:
    """The rows of ``genes`` in the cheap operand forms."""
    kinds = np.array([OPS[op].kind for op in genes[:, 0]])
    keep = np.isin(kinds, list(CHEAP))
    imm = genes[:, 4]
    shifted = np.isin(kinds, ["sha", "shl"])
    keep &= ~shifted | np.isin(imm % 63 + 1, CHEAP_SHIFTS)
    keep &= (kinds != "r2mask") | (imm < CHEAP_MASKS)
    return genes[keep]


def _reading(genes: np.ndarray, regs: set, n_regs: int) -> np.ndarray:
    """Rows whose register operands are all in ``regs``."""
    uses = PH.OPERANDS[genes[:, 0]]
    allowed = np.isin(np.arange(n_regs), list(regs))
    fourth = (genes[:, 1] + genes[:, 2] + genes[:, 3]) % n_regs
    ok = (~uses[:, 0] | allowed[genes[:, 2] % n_regs]) & (~uses[:, 1] | allowed[genes[:, 3] % n_regs]) \
        & (~uses[:, 2] | allowed[fourth])
    return genes[ok]


def _by_weight(genes: np.ndarray) -> np.ndarray:
    """``genes`` with the operations compilers use most first, small immediates first within one."""
    weight = np.array([OPS[op].weight for op in genes[:, 0]])
    return genes[np.lexsort((genes[:, 4], -weight))]


def _rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [len(a)]: whether each row of ``a`` is a row of ``b`` (int64 [*, 5] both)."""
    view = np.dtype((np.void, 5 * 8))
    return np.isin(np.ascontiguousarray(a).view(view).ravel(), np.ascontiguousarray(b).view(view).ravel())


class Enumeration:
    """The one- and two-instruction programs of a task, a step at a time (:meth:`step`)."""

    def __init__(self, alphabet, evaluator, task, seed: int):
        self.alphabet, self.evaluator, self.task = alphabet, evaluator, task
        rng = np.random.default_rng([seed, 0xE1])
        from evolve import tasks as T
        self.x = T.training_cases(task, rng, CASES)
        self.y = task.expected(self.x)
        self.states = CaseStates.from_seed(seed + 0xE2, CASES, evaluator.scratch)
        n = len(alphabet.regs)
        self.args = set(range(task.arity))
        self.t = task.arity if task.arity < n else None       # the free register of two-gene programs
        self.single = _reading(PH.single_genes(0, n), self.args, n)
        self.done = 0                  #: programs enumerated so far (the checkpointed position)
        self.found = 0
        self._bank_args = (n, seed, getattr(evaluator, "output_mask", (1 << 64) - 1))
        self._bank_at = 0              # the bank's position this enumeration is at
        self._firsts = None            # first genes, one per distinct result of t
        self._seconds = None

    @property
    def total(self) -> int:
        """Programs the whole enumeration runs (known once the first genes are merged)."""
        self._prepare()
        return len(self.single) + len(self._firsts) * len(self._seconds)

    @property
    def exhausted(self) -> bool:
        return self.done >= self.total and self.bank_exhausted

    @property
    def bank_exhausted(self) -> bool:
        return self._bank_at < 0

    @property
    def position(self) -> dict:
        """The checkpointed state: programs enumerated, the bank's units done (-1: all)."""
        return {"programs": self.done, "bank": self._bank_at}

    @position.setter
    def position(self, value) -> None:
        value = value if isinstance(value, dict) else {"programs": value or 0, "bank": 0}   # older checkpoints
        self.done = int(value.get("programs", 0))
        self._bank_at = int(value.get("bank", 0))

    @property
    def bank(self) -> BK.Bank:
        """The bank at this enumeration's position: this process's bank of the same cases and seed
        when it is not past it (an island's next task continues it instead of replaying it), else
        a new one advanced there."""
        n, seed, mask = self._bank_args
        key = (n, seed, mask, hashlib.sha1(self.x.tobytes() + self.y.tobytes()).hexdigest())
        bank = _BANKS.pop(key, None)
        if bank is None or bank.position > self._bank_at:
            bank = BK.Bank(self.x, self.y, n, seed, mask)
        bank.advance(self._bank_at)
        _BANKS[key] = bank
        while len(_BANKS) > BANKS_KEPT:
            _BANKS.popitem(last=False)
        return bank

    def bank_step(self, budget: int) -> list[list]:
        """The bank's next ``budget`` value-case operations; returns the programs it finds that are
        exact on the enumeration's cases when run by the executors (gene lists)."""
        found = []
        by_length: dict = {}
        bank = self.bank
        programs = bank.step(budget)
        self._bank_at = -1 if bank.exhausted else bank.position
        for genes in programs:
            by_length.setdefault(len(genes), []).append(genes)
        for k in sorted(by_length):
            found += self._screen(np.array(by_length[k], np.int64))
        self.found += len(found)
        return found

    def _prepare(self) -> None:
        if self._firsts is not None:
            return
        n = len(self.alphabet.regs)
        if self.t is None:
            self._firsts, self._seconds = np.zeros((0, 5), np.int64), np.zeros((0, 5), np.int64)
            return
        firsts = _cheap(_reading(PH.single_genes(self.t, n), self.args, n))
        probe = np.stack([firsts, np.broadcast_to([PH.MOV, 0, self.t, 0, 0], firsts.shape)], axis=1)
        codes = self.alphabet.encode_array(probe, np.full(len(firsts), 2, np.int64))
        out, outcome = self.evaluator.run(codes, self.x, seed=0, states=self.states)
        ok = (outcome == 0).all(axis=1)
        rows = np.flatnonzero(ok)
        _, first_of = np.unique(out[rows], axis=0, return_index=True)
        self._firsts = _by_weight(firsts[np.sort(rows[first_of])])[:MAX_FIRSTS]
        seconds = _cheap(_reading(PH.single_genes(0, n), self.args | {self.t}, n))
        # a second gene that does not read t is a single gene, enumerated already
        self._seconds = _by_weight(seconds[~_rows_in(seconds, _reading(seconds, self.args, n))])[:MAX_SECONDS]

    def program(self, k: int) -> np.ndarray:
        """int64 [2, 5]: the ``k``-th program (a single gene: its second row is unused)."""
        if k < len(self.single):
            return np.stack([self.single[k], self.single[k]])
        k -= len(self.single)
        return np.stack([self._firsts[k // len(self._seconds)], self._seconds[k % len(self._seconds)]])

    def step(self, limit: int = 10_000) -> list[list]:
        """The next ``limit`` programs; returns those exact on the enumeration's cases (gene lists)."""
        self._prepare()
        if self.done >= self.total:
            return []
        end = min(self.total, self.done + limit)
        found = []
        a = self.done
        if a < len(self.single):                                   # single genes
            b = min(end, len(self.single))
            found += self._screen(self.single[a:b, None, :])
            a = b
        if a < end:                                                # pairs, first-major
            k = np.arange(a, end) - len(self.single)
            pairs = np.stack([self._firsts[k // len(self._seconds)], self._seconds[k % len(self._seconds)]], axis=1)
            found += self._screen(pairs)
        self.done = end
        self.found += len(found)
        return found

    def _screen(self, genes: np.ndarray) -> list[list]:
        n, k = genes.shape[:2]
        codes = self.alphabet.encode_array(genes, np.full(n, k, np.int64))
        s = 16                         # screened under one batch state, then every case under its own
        out, outcome = self.evaluator.run(codes, self.x[:s], seed=0)
        idx = np.flatnonzero(~fit.case_errors(out, outcome, self.y[:s]).any(axis=1))
        if idx.size:
            out, outcome = self.evaluator.run([codes[i] for i in idx], self.x, seed=0, states=self.states)
            idx = idx[~fit.case_errors(out, outcome, self.y).any(axis=1)]
        return [[tuple(int(v) for v in g) for g in genes[i]] for i in idx]


def _share(engine) -> list[list]:
    """One generation's share of ``engine.enumeration``'s work: the programs it found (gene lists)."""
    en = engine.enumeration
    if en is None or en.exhausted:
        return []
    found = en.step(PER_GENOME * engine.cfg.pop) if en.done < en.total else []
    if not en.bank_exhausted:
        found += en.bank_step(BANK_PER_GENOME * engine.cfg.pop)
    return found


def phase_step(engine) -> list[list]:
    """The share of the optimisation phase (:mod:`evolve.optimize`), which keeps what is cheaper."""
    return _share(engine) if engine.solved is not None else []


def generation_step(engine) -> None:
    """One generation's share of ``engine.enumeration`` (None: none) before the first solution:
    the programs it finds replace the population's worst, evaluated and verified by the engine as
    any genome."""
    if engine.solved is not None:
        return
    found = sorted(_share(engine), key=len)[:max(1, engine.cfg.pop // 2)]     # the shortest, if the bank found many
    if found:
        worst = np.argsort(-engine.rows.cost, kind="stable")[:len(found)]
        engine.accept_immigrants(found, engine.rows.uid[worst].tolist(), origin="enumerate")
