"""The SMT synthesiser (:mod:`evolve.synth`) as a search tier the engine drives, a share of each
generation, like the bank (:mod:`evolve.enumeration`).

Why a share by credit: a solver call cannot be cut, and its cost (z3 resource units, counted
deterministically) is known only once it returns. Each generation adds
:data:`RLIMIT_PER_GENOME` x population units of credit; the tier runs calls while its credit is
positive and is charged what each spent, so over a run it takes about that share of the time
(~2.3 M units a CPU second on this machine) and a seeded run makes the same calls in the same
generations. Its position (calls done) is checkpointed; a resumed run replays them.

With ``encoding="components"`` (``--synth-encoding components``) the synthesiser is
:class:`evolve.synth_components.MultisetSynth`, fed each generation with the sketches of the hall
of fame's best genomes and their neighbours (:mod:`evolve.synth_sketch`); the multisets offered
are part of the checkpointed position.

The candidates (exact on :data:`evolve.synth.CHECK_CASES` cases drawn from the task) become genes
and join the population through ``engine.accept_immigrants``: evaluated, validated and proven by
the engine as any genome.
"""
from __future__ import annotations

import logging

import numpy as np
try:
    import z3
except ImportError:      # a run without z3 stops at its start (evolve.verify.require_solver)
    z3 = None

from evolve import synth as SY
from evolve import synth_components as SC
from evolve import synth_sketch as SK

log = logging.getLogger(__name__)

#: solver resource units of credit per generation and genome of the population (z3 spends ~2.3 M a
#: CPU second here): pop 300 gets 150 k (~65 ms) a generation. Measured at load 5-7 (60 s runs): with
#: it p19 ran 33-77 generations against 139-193 without, p24 45-108 against 241-602, so the tier
#: takes more than half of a run, not the third this figure aims at
RLIMIT_PER_GENOME = 500
#: the share of --time-limit after which no call starts (at 5 M units a call, runs of 60 s took up to 78)
LAST_SHARE = 0.9
#: the width of the reduced problem, when the task's symbolic twin can be evaluated there
REDUCED_WIDTH = 8
#: reduced-width cases (each the twin evaluated by z3: ~1 ms)
REDUCED_CASES = 256
#: the component encoding (--synth-encoding components): its width (p19's exact multiset: 7 calls,
#: 12 M units, 4 s at 4 bits; 9 M, 3 s at 8; an encoding without this one's symmetry and operand
#: pinning took over 200 s at 16; scripts/exp_components.py), a call's
#: budget (its rounds at 4 bits took up to 5 M), its credit per genome a generation (at 2,000 p19-p24's
#: 60 s runs got 88-231 generations, at 500 480-683, without the tier 452-1099), and the hall of
#: fame's members sketched each generation (evolve.synth_sketch)
COMPONENT_WIDTH = 4
COMPONENT_CALL_RLIMIT = 8_000_000
COMPONENT_RLIMIT_PER_GENOME = 500
SKETCHED = 3


def reduced_cases(task, width: int, n: int, rng: np.random.Generator) -> tuple | None:
    """``(width, xs, ys)``: the task's symbolic twin on ``n`` random ``width``-bit arguments
    (edge values first), or None when there is no twin or it is written for 64 bits only."""
    if task.symbolic is None or getattr(task, "result_mask", (1 << 64) - 1) != (1 << 64) - 1:
        return None
    m = (1 << width) - 1
    edges = [0, 1, 2, m, m - 1, 1 << (width - 1), (1 << (width - 1)) - 1, 3]
    xs = [tuple(edges[(i + k) % len(edges)] for k in range(task.arity)) for i in range(len(edges))]
    xs += [tuple(int(v) for v in rng.integers(0, m + 1, task.arity)) for _ in range(n - len(xs))]
    ys = []
    try:
        for args in xs:
            v = z3.simplify(task.symbolic(*[z3.BitVecVal(a, width) for a in args]))
            if not z3.is_bv_value(v) or v.size() != width:
                return None
            ys.append(v.as_long())
    except (z3.Z3Exception, TypeError, ValueError, AttributeError):
        return None
    return width, xs, ys


class SynthTier:
    """A task's synthesiser, its credit and the genes of its candidates."""

    def __init__(self, task, n_regs: int, seed: int, encoding: str = "lines"):
        self.task, self.arity, self.n_regs, self.seed = task, task.arity, n_regs, seed
        self.encoding = encoding                 # "lines" (evolve.synth) or "components"
        self._queue: list = []                   # components: the multisets to re-offer once built
        self._synth: SY.Synth | None = None      # built on first use (cases, the reduced problem)
        self._at = 0                             # calls to replay once built (a resumed run)
        self.credit = 0
        self.found = 0

    @property
    def synth(self) -> SY.Synth:
        if self._synth is None:
            from evolve import tasks as T
            rng = np.random.default_rng([self.seed, 0x5E7])
            x = T.training_cases(self.task, rng, SY.CHECK_CASES)
            if self.encoding == "components":
                self._synth = SC.MultisetSynth(x, self.task.expected(x), self.task.result_mask, seed=self.seed,
                                               call_rlimit=COMPONENT_CALL_RLIMIT,
                                               reduced=reduced_cases(self.task, COMPONENT_WIDTH, REDUCED_CASES, rng))
                for multiset in self._queue:
                    self._synth.offer(multiset)
            else:
                self._synth = SY.Synth(x, self.task.expected(x), self.task.result_mask, seed=self.seed,
                                       reduced=reduced_cases(self.task, REDUCED_WIDTH, REDUCED_CASES, rng))
            self._synth.advance(self._at)
        return self._synth

    @property
    def position(self) -> dict:
        """The checkpointed state: solver calls done, the credit left (components: the multisets
        offered, in order)."""
        out = {"calls": self._at if self._synth is None else self._synth.position, "credit": self.credit}
        if self.encoding == "components":
            out["multisets"] = [list(m) for m in (self._queue if self._synth is None else self._synth.queue)]
        return out

    @position.setter
    def position(self, value) -> None:
        value = value or {}
        self._at = int(value.get("calls", 0))
        self.credit = int(value.get("credit", 0))
        self._queue = [tuple(str(c) for c in m) for m in value.get("multisets", [])]
        self._synth = None                       # rebuilt and replayed on next use

    def offer_sketches(self, genomes, alphabet) -> int:
        """Components: queue the sketches of ``genomes`` (the best first) and their neighbours
        (:mod:`evolve.synth_sketch`); returns how many multisets were new."""
        order = SK.prior(alphabet)
        new = 0
        for genome in genomes:
            for multiset in SK.neighbours(SK.sketch(genome, alphabet), order):
                new += self.synth.offer(multiset)
        return new

    def step(self, budget: int) -> list[list]:
        """Add ``budget`` units of credit and spend it; returns the candidates' gene lists."""
        self.credit = min(self.credit + budget, budget)    # no hoard while waiting for work
        found = []
        while self.credit > 0 and not self.synth.exhausted:
            for program in self.synth.step(1):
                genes = SY.program_genes(program, self.arity, self.n_regs)
                if genes is not None:
                    found.append(genes)
            if not self.synth.last_work:
                break                            # components: no multiset waiting
            self.credit -= self.synth.last_work
        self.found += len(found)
        return found


def generation_step(engine) -> None:
    """One generation's share of ``engine.synth`` (None: none): its candidates replace the
    population's worst, evaluated and verified by the engine as any genome."""
    tier = getattr(engine, "synth", None)
    if tier is None or engine.solved is not None or tier.synth.exhausted:
        return
    limit = engine.cfg.time_limit
    if limit is not None and engine.wall_seconds() > LAST_SHARE * limit:
        return                      # a call cannot be cut: none that could overrun --time-limit
    per_genome = RLIMIT_PER_GENOME
    if tier.encoding == "components":
        per_genome = COMPONENT_RLIMIT_PER_GENOME
        tier.offer_sketches([list(ind) for ind in list(engine.hof)[:SKETCHED]], engine.alphabet)
    found = tier.step(per_genome * engine.cfg.pop)
    if found:
        log.info("synth: %d candidate(s), %d lines first", len(found), len(found[0]))
        worst = np.argsort(-engine.rows.cost, kind="stable")[:len(found)]
        engine.accept_immigrants(found, engine.rows.uid[worst].tolist(), origin="synth")
