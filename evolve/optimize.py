"""The optimisation phase (STOKE's second phase): after the first verified solution, search on
for an equivalent program that is cheaper by ``--cost`` (:mod:`evolve.cost`).

How it runs (``python -m evolve run --optimize SECONDS``):

1. When the engine holds its first solution, :meth:`Optimizer.begin` records it (``first``),
   minimises it (:mod:`evolve.minimize`, intron removal) and re-seeds a quarter of the
   population, its worst rows, with copies of the solution and of its minimised form.
2. From then on the fitness is *correctness on the training cases, then cost*: a genome exact on
   every training case costs less than any genome that is not (its cost is its metric, then its
   length, squeezed below the cheapest inexact cost); inexact genomes keep the engine's cost.
   Parents are chosen by tournament on that cost (lexicase, which sees only case errors, cannot
   tell exact genomes apart).
3. Each generation the exact offspring strictly cheaper than the best verified program go, the
   cheapest first, through the engine's own verification (``Engine._validate``: the flags rule,
   held-out testing under random registers, then :func:`evolve.verify.check`'s proofs or their
   "tested" fallback), exactly what the first solution passed. One that passes becomes the best
   (``engine.solved``, ``engine.verification``); one that fails is refused and its
   counterexamples join the training set, as in the first phase. Nothing costlier than the best,
   and nothing unverified, is ever taken.
4. Alongside, every generation, the enumeration of short programs and the bank of values go on
   with their share, their programs cheaper than the best entering as candidates; and the peephole enumeration (:mod:`evolve.peephole`) runs a share
   of the replacements of the best program's windows (2-4 genes replaced by nothing or by one
   enumerated gene); those exact on the training cases enter the population as children of the
   best and go through step 3 like any other candidate. ``peephole=False`` (``--no-peephole``)
   turns it off. A new best starts its windows afresh, and is first rewritten by the classic
   compiler rewrites (:mod:`evolve.rewrite`); a cheaper rewritten form is a candidate too.
5. The phase ends ``SECONDS`` after it began, when the best is one instruction of one cycle, or
   at the run's own limits (``--time-limit`` is wall time, this phase included). With
   ``--keep-going`` it lasts until those limits.

``result.json`` keeps the first solution (``first``), both costs (``cost``) and the phase's
record (``optimize``); ``best.s`` and ``result.json["best"]`` are the cheapest verified program.
"""
from __future__ import annotations

import logging

import numpy as np

from evolve import cost as K
from evolve import enumeration as EN
from evolve import fitness as fit
from evolve import minimize as mz
from evolve import peephole as PH
from evolve.checkpoint import individual_from_json, individual_to_json
from evolve.engine import FLAG_PENALTY
from evolve.operators import sel_tournament

log = logging.getLogger(__name__)

#: share of the population re-seeded with the solution and its minimised form
RESEED_SHARE = 0.25
#: cheaper candidates verified per generation at most (each costs held-out testing and a proof)
PER_GENERATION = 3
#: validation cases the minimiser screens deletions on (the full verification follows anyway)
MINIMIZE_CASES = 1000
#: peephole replacements screened per generation (a count, not seconds: the run stays
#: reproducible); ~0.1 s at 16 screening cases on one core
PEEPHOLE_PER_GENERATION = 40_000
_SPAN = 1 << 16       # lengths stay far below this: (metric, length) packs into one number


class _Executor:
    """The engine's evaluator with the executor interface :func:`evolve.minimize.minimize` takes."""

    class _Result:
        def __init__(self, outputs, outcomes):
            self.outputs, self.outcomes = outputs, outcomes

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def run(self, codes, inputs, seed=0):
        return self._Result(*self.evaluator.run(list(codes), inputs, seed=seed))


class Optimizer:
    """The optimisation phase of one engine (see the module docstring). Attach it as
    ``engine.optimizer``; the engine calls :meth:`rescore` after each evaluation and
    :meth:`consider` with each generation's offspring once it is :attr:`active`."""

    def __init__(self, engine, metric: str, seconds: float, peephole: bool = True):
        if metric not in K.METRICS:
            raise ValueError(f"--cost must be one of {', '.join(K.METRICS)}, got {metric!r}")
        self.engine, self.metric, self.seconds = engine, metric, float(seconds)
        self.isa = engine.alphabet.isa
        self.first = None               #: the first verified solution (an individual)
        self.first_verification = None  #: what was established about it (verify.Verification)
        self.started: float | None = None   #: the run's wall seconds when the phase began
        self.ended: float | None = None
        self.improvements: list[dict] = []  #: each accepted cheaper program: gen, wall, cost, length
        self.refused = 0                #: cheaper candidates the verification refused
        self.rewrites = 0               #: cheaper rewritten forms of a best program (evolve.rewrite)
        self.searched = 0               #: cheaper programs the enumeration and the bank offered
        self.minimized_length: int | None = None
        self._keys: dict = {}
        self.peephole: PH.Peephole | None = None
        if peephole and self.isa.name == "arm64":
            self.peephole = PH.Peephole(engine.alphabet, engine.evaluator, engine.train_x, engine.train_y,
                                        seed=engine.cfg.seed, exact_fn=self._exact_in_engine,
                                        batch=PEEPHOLE_PER_GENERATION)
        self._peephole_of = None        # the genes whose windows the peephole enumerates

    # ----------------------------------------------------------------- costs
    def key(self, code: bytes) -> tuple[int, int]:
        """``(metric, length)`` of ``code``, cached."""
        return self._info(code)[0]

    def reads_flags(self, code: bytes) -> bool:
        """Whether ``code`` may read the entry flags (never a solution), cached."""
        return self._info(code)[1]

    def _info(self, code: bytes) -> tuple:
        info = self._keys.get(code)
        if info is None:
            if len(self._keys) > 200_000:
                self._keys.clear()
            info = self._keys[code] = (K.key(code, self.metric, self.isa), fit.reads_entry_flags(code, self.isa))
        return info

    def best_key(self) -> tuple[int, int]:
        return self.key(self.engine.alphabet.encode(self.engine.solved))

    @property
    def active(self) -> bool:
        return self.started is not None

    def rescore(self, codes: list, errors: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """Costs of a batch in the phase: an exact genome (no wrong bit on any training case)
        costs ``0.5 / n_cases * s / (s + 1)`` for ``s`` = its packed ``(metric, length)``, below
        any inexact genome's cost (at least ``0.5 / n_cases``); a flag reader, which can never be
        verified (``evolve.fitness.reads_entry_flags``), costs ``FLAG_PENALTY`` more than the
        engine says, as ``Engine._validate`` charges it."""
        costs = np.array(costs, np.float64)
        exact = np.flatnonzero(~errors.any(axis=1))
        scale = 0.5 / errors.shape[1]
        for i in exact.tolist():
            code = codes[i]
            if self.reads_flags(code):
                costs[i] += FLAG_PENALTY
                continue
            metric, length = self.key(code)
            s = metric * _SPAN + min(length, _SPAN - 1)
            costs[i] = scale * s / (s + 1.0)
        return costs

    # ----------------------------------------------------------------- the phase
    def begin(self) -> None:
        """Start the phase from the engine's (first) solution: record it, switch selection to
        tournament on the phase's cost, re-seed the population with it and its minimised form."""
        eng = self.engine
        self.first, self.first_verification = eng.solved, eng.verification
        self.started = eng.wall_seconds()
        self._use_tournament()
        eng._evaluate_rows(eng.rows)           # the population's costs, the phase's way
        genes = list(eng.solved)
        short = self._minimized(genes)
        self.minimized_length = len(short) if short is not None else len(genes)
        seeds = [(genes, "optimize")] + ([(short, "minimize")] if short is not None else [])
        self._reseed(seeds, int(RESEED_SHARE * len(eng.rows)))
        log.info("optimisation phase (%s, %.1f s): first solution costs %s; minimised to %s genes",
                 self.metric, self.seconds, self.best_key(), self.minimized_length)
        self.consider(eng.rows)

    def _minimized(self, genes: list) -> list | None:
        """``genes`` without its introns (:func:`evolve.minimize.minimize`), if that is shorter
        and the time limit leaves a few seconds for it; else None."""
        eng = self.engine
        left = None if eng.cfg.time_limit is None else eng.cfg.time_limit - eng.wall_seconds()
        if len(genes) < 2 or (left is not None and left < 2.0):
            return None
        try:
            m = mz.minimize(genes, eng.alphabet.encode, _Executor(eng.evaluator), eng.train_x,
                            eng.valid_x[:MINIMIZE_CASES], isa=self.isa)
        except ValueError as exc:              # an encoding the minimiser could not make
            log.info("minimisation failed: %s", exc)
            return None
        return list(m.units) if m.units and m.length < len(genes) else None

    def _reseed(self, seeds: list, n: int) -> None:
        """Replace the ``n`` worst rows (at least one per seed) with copies of ``seeds``, pairs
        ``(genes, op)``, recorded as children of the best with that operator ("optimize" for a
        copy, "minimize" for a minimised form)."""
        eng = self.engine
        parent = eng.solved.uid
        n = max(len(seeds), n)
        picks = [seeds[i % len(seeds)] for i in range(n)]
        worst = np.argsort(-eng.rows.cost, kind="stable")[:n]
        newcomers = eng.accept_immigrants([g for g, _ in picks], eng.rows.uid[worst].tolist(), origin="optimize")
        ops = {}
        for ind, (_, op) in zip(newcomers, picks):
            _, _, gen, size = eng.lineage[ind.uid]
            eng.lineage[ind.uid] = ((parent,), op, gen, size)
            ops[ind.uid] = op
        for ind in eng.hof:                  # entered the hall of fame before their record was set
            if ind.uid in ops:
                ind.parents, ind.op = (parent,), ops[ind.uid]

    def _use_tournament(self) -> None:
        eng = self.engine
        size = eng.cfg.tournament_size
        eng.toolbox.register("select", lambda rows, k: sel_tournament(rows.cost, k, eng.rng, size))

    def done(self) -> bool:
        """Whether the phase's time is spent or nothing cheaper can be made (one instruction of
        one cycle left: only the empty program is cheaper, and genomes are never empty)."""
        if not self.active:
            return False
        if self.engine.wall_seconds() >= self.started + self.seconds or self.best_key() <= (1, 1):
            self.ended = self.ended or self.engine.wall_seconds()
            return True
        return False

    def consider(self, rows) -> int:
        """Verify ``rows``' exact genomes that are cheaper than the best, the cheapest first
        (at most :data:`PER_GENERATION`; flag readers, which the verification refuses at once,
        take no place), then a generation's share of the peephole's; returns how many were
        accepted."""
        eng = self.engine
        accepted = self._consider(rows) + self._peephole_step() + self._search_step()
        if rows is not eng.rows and rows.errors.shape[1] != len(eng.train_y):
            # a candidate's counterexamples grew the training set while it was verified as one
            # of the population (the peephole's, a minimised form): this generation's offspring
            # are judged on the grown set too, as the population already is
            eng._evaluate_rows(rows, np.flatnonzero(~np.isnan(rows.cost)))
        return accepted

    def _exact_in_engine(self, codes: list) -> np.ndarray:
        """bool [n]: exact on every training case as the engine evaluates them (pinned states)."""
        eng = self.engine
        out, outcome = eng.evaluator.run_pinned(codes, eng.train_x, eng._exec_seed(), eng.pinned_at, eng.pinned_states)
        return ~fit.case_errors(out, outcome, eng.train_y).any(axis=1)

    def _peephole_step(self) -> int:
        """One generation's share of the peephole enumeration of the best program; its exact
        replacements cheaper than the best join the population and are considered."""
        pp, eng = self.peephole, self.engine
        if pp is None:
            return 0
        best = tuple(eng.solved)
        rewritten = 0
        if self._peephole_of != best:
            self._peephole_of = best
            pp.reset(list(best))
            rewritten = self._rewrite(list(best))
            if tuple(eng.solved) != best:       # the rewrite was cheaper and verified: its windows next
                return rewritten
        if pp.exhausted:
            return rewritten
        pp.train_x, pp.train_y = eng.train_x, eng.train_y
        return rewritten + self._offer(pp.step(float("inf"), limit=PEEPHOLE_PER_GENERATION), "peephole")

    def _offer(self, programs, op: str) -> int:
        """The cheapest :data:`PER_GENERATION` of ``programs`` (gene lists) that are cheaper than
        the best and not refused before join the population as children of the best (operator
        ``op``) and are considered; returns how many were accepted."""
        eng = self.engine
        key, cheaper = self.best_key(), {}
        for genes in programs:
            g = tuple(genes)
            if g not in cheaper and g not in eng.validated_fail:
                k = self.key(eng.alphabet.encode(genes))
                if k < key:
                    cheaper[g] = k
        if not cheaper:
            return 0
        picks = sorted(cheaper, key=lambda g: (cheaper[g], g))[:PER_GENERATION]
        if op == "enumerate":
            self.searched += len(picks)
        self._reseed([(list(g), op) for g in picks], len(picks))
        return self._consider(eng.rows)

    def _search_step(self) -> int:
        """The enumeration of short programs and the bank of values (:mod:`evolve.enumeration`) go
        on in the phase, a generation's share each as before the first solution: the first
        solution often comes from the genetic search before the bank reaches a shorter program
        (Hacker's Delight p11: evolution's five instructions, the bank's three a few seconds
        later). Their programs cheaper than the best join the population as children of the best
        and are considered as the peephole's are."""
        return self._offer(EN.phase_step(self.engine), "enumerate")

    def _rewrite(self, genes: list) -> int:
        """The best program after the classic rewrites (:mod:`evolve.rewrite`: renaming,
        folding, if-conversion, dead code), as genes, when that is cheaper: it joins the
        population as a child of the best and goes through the verification as any candidate."""
        from evolve.lift import lift
        from evolve.rewriter import rewrite
        eng = self.engine
        if eng.alphabet.isa.name != "arm64":
            return 0
        best, short = None, None
        for n in sorted({len(eng.alphabet.regs), 8}):     # beyond the working set: raw words
            code = rewrite(eng.alphabet.encode(genes), eng.task.arity, n_regs=n)
            genes_n = lift(code[:-4], eng.alphabet) if code is not None else None
            if genes_n and tuple(genes_n) not in eng.validated_fail:
                k = self.key(eng.alphabet.encode(genes_n))
                if best is None or k < best:
                    best, short = k, genes_n
        if short is None or best >= self.best_key() or self.reads_flags(eng.alphabet.encode(short)):
            return 0
        self.rewrites += 1
        self._reseed([(short, "rewrite")], 1)
        return self._consider(eng.rows)

    def _consider(self, rows) -> int:
        eng = self.engine
        n_train = len(eng.train_y)
        idx = np.flatnonzero(rows.exact == n_train)
        if idx.size == 0:
            return 0
        codes = eng.alphabet.encode_array(rows.genes[idx], rows.length[idx])
        best = self.best_key()
        seen, order = set(), []
        for i, code in zip(idx.tolist(), codes):
            k = self.key(code)
            genes = tuple(rows.gene_tuples(i))
            if k < best and genes not in seen and genes not in eng.validated_fail and not self.reads_flags(code):
                seen.add(genes)
                order.append((k, i))
        accepted = 0
        for k, i in sorted(order)[:PER_GENERATION]:
            if k >= self.best_key() or rows.exact[i] != len(eng.train_y):
                continue                     # a better one came first, or the cases grew
            ind = rows.individuals([i], eng.lineage)[0]
            if self._verify(ind, rows):
                accepted += 1
            elif len(eng.train_y) != n_train:
                break                        # counterexamples re-evaluated everything
        if accepted:                         # the new best's introns out: a candidate at once
            short = self._minimized(list(eng.solved))
            if short is not None:
                self._reseed([(short, "minimize")], int(RESEED_SHARE * len(eng.rows) / 4))
                accepted += self._consider(eng.rows)
        return accepted

    def _verify(self, ind, rows) -> bool:
        """``ind`` through the engine's verification, exactly as the first solution went; True
        (and it is the new best) when it passes and is cheaper than the best."""
        eng = self.engine
        before, before_v = eng.solved, eng.verification
        before_key = self.best_key()
        eng.solved = None
        try:
            grew = eng._validate([ind], rows if rows is not eng.rows else None, candidates_in_rows=True)
        finally:
            found, verdict = eng.solved, eng.verification
            eng.solved, eng.verification = before, before_v
        if found is None or self.key(eng.alphabet.encode(found)) >= before_key:
            self.refused += 1
            if not grew:                     # e.g. a flag reader: its penalty, back to its row
                hit = np.flatnonzero(rows.uid == ind.uid)
                rows.cost[hit] = ind.fitness.values[0]
            return False
        eng.solved, eng.verification = found, verdict
        k = self.key(eng.alphabet.encode(found))
        self.improvements.append({"gen": eng.gen, "wall": round(eng.wall_seconds(), 3), "cost": k[0],
                                  "length": k[1], "verification": f"{verdict.equivalence}/{verdict.independence}"})
        log.info("optimisation: a cheaper program verified (%s %d, %d instructions)", self.metric, *k)
        return True

    # ----------------------------------------------------------------- records
    def record(self) -> dict:
        """``result.json``'s ``optimize``: what the phase did."""
        end = self.ended if self.ended is not None else self.engine.wall_seconds()
        return {"metric": self.metric, "budget_seconds": self.seconds,
                "seconds": round(end - self.started, 3) if self.active else 0.0,
                "started_at": round(self.started, 3) if self.active else None,
                "minimized_length": self.minimized_length, "improvements": list(self.improvements),
                "candidates_refused": self.refused, "enumerated_candidates": self.searched,
                "peephole": None if self.peephole is None else
                {"replacements_run": self.peephole.tried, "exact_on_training": self.peephole.found,
                 "rewrites": self.rewrites}}

    def state(self) -> dict | None:
        """The phase's part of a checkpoint (JSON); None before it began."""
        if not self.active:
            return None
        return {"metric": self.metric, "seconds": self.seconds, "started": self.started, "ended": self.ended,
                "first": individual_to_json(self.first),
                "first_verification": self.first_verification.to_json() if self.first_verification else None,
                "improvements": self.improvements, "refused": self.refused, "searched": self.searched,
                "minimized_length": self.minimized_length}

    def restore(self, doc: dict | None) -> None:
        """Continue the phase a checkpoint recorded (None: it had not begun)."""
        if not doc:
            return
        from evolve.verify import Verification
        self.first = individual_from_json(doc["first"])
        self.first_verification = Verification(**doc["first_verification"]) if doc["first_verification"] else None
        self.started, self.ended = doc["started"], doc.get("ended")
        self.improvements, self.refused = list(doc["improvements"]), int(doc["refused"])
        self.searched = int(doc.get("searched", 0))
        self.minimized_length = doc.get("minimized_length")
        self._use_tournament()


def cost_record(alphabet, metric: str, first, best) -> dict:
    """``result.json``'s ``cost``: the metric and what the first and the best solution cost."""
    isa = alphabet.isa
    a, b = K.key(alphabet.encode(first), metric, isa), K.key(alphabet.encode(best), metric, isa)
    rec = {"metric": metric, "first": a[0], "best": b[0], "first_length": a[1], "best_length": b[1]}
    if metric == "latency":
        rec["core"] = K.CORE
    return rec
