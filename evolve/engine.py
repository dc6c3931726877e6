"""The generation loop: vary, evaluate in batches, reinforce the brain, validate, select.

One explicit loop (as DEAP's ``eaSimple`` is), owning checkpoints. Per generation:

1. parents are selected (tournament or lexicase); each offspring is a crossover and/or a
   mutation whose new genes are drawn with the brain's gene-pattern weights;
2. every offspring that is not a copy of its first parent is evaluated in one batch through the
   executor; the seed's rule sees every execution (starting from its parents' mean success and
   threshold), in the offspring's rows, and the genes the offspring introduced are credited with
   them. Offspring that live on (the next population, the hall of fame, the solution) become
   EXEC nodes, starting from exactly the state their rows hold; the others never cost a node;
3. genomes exact on every training case are tested on the held-out set (every case under its
   own random registers and scratch), then proven (:mod:`evolve.verify`); a failing case or a
   proof's counterexample joins the training set (an independence counterexample with its
   machine states: those cases run under them in every generation, the others under the
   generation's random state);
4. the next population is the parents' elite plus the cheapest offspring.

The population is kept as arrays (``evolve.population.Rows``) and every step above is a batch
call on them: Python never loops over genes, and DEAP individuals are made only where one is
needed (the README gives the figures).

State (population, hall of fame, random states, cases, lineage, brain) is checkpointed so that a
resumed run continues exactly as if it had not stopped; the metrics lines (and the logbook made
of them) are read back from the run's ``metrics.jsonl``.
"""
from __future__ import annotations

import gc
import logging
import random
import time
from dataclasses import asdict

import numpy as np

from core.brain import Brain, gene_grams
from core.executors.batch_state import CaseStates
from core.outcome import N_OUTCOMES, Outcome
from evolve import cegis, enumeration, synth_tier
from evolve import fitness as fit
from evolve import library, nodes, prior, restarts
from evolve import tasks as T
from evolve import taskspec
from evolve import verify
# RunConfig is also the name older island checkpoints (islands.pkl) pickled it under
from evolve.config import RunConfig
from evolve.evaluate import Evaluator
from evolve.genes import Alphabet, alphabet_for, upgrade_state
from evolve.lineage import Lineage
from evolve.operators import op_index, op_labels
from evolve.population import EVALUATION, FreshGenes, Rows
from evolve.toolbox import hall_of_fame, logbook, make_toolbox, new_individual

log = logging.getLogger(__name__)

#: generations of ancestry kept for lineage reports (older ancestors are forgotten)
LINEAGE_GENERATIONS = 500
#: generations of DEAP's logbook kept in memory (the whole history is in metrics.jsonl)
LOGBOOK_KEPT = 1000
#: cost added to an exact genome that the static check on its code says reads the flags before
#: setting them (_validate): it can never be a solution
FLAG_PENALTY = 0.25
#: cost added at every evaluation to a genome whose genes say it reads the flags before setting them
#: (fitness.entry_flag_readers): about a wrong case of 64, so such genomes lose ties without leaving
#: the population (charged FLAG_PENALTY, clear_lowest needed ~3x the generations, seeds 0-3)
FLAG_READER_CHARGE = 0.01


class Engine:
    """One evolution run's state and loop. Use :meth:`start` or :meth:`restore`.

    The population lives in :attr:`rows` (arrays, see ``evolve.population``); :attr:`pop`
    gives it as DEAP individuals when something needs them.
    """

    def __init__(self, cfg: RunConfig, task: T.Task, alphabet: Alphabet, evaluator: Evaluator):
        self.cfg, self.task, self.alphabet, self.evaluator = cfg, task, alphabet, evaluator
        self.rng = random.Random(cfg.seed)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.brain = Brain() if cfg.brain else None
        self.library = library.for_run(cfg, alphabet) if cfg.brain else None   # macro-genes, if any
        self.weights = fit.FitnessWeights(**cfg.weights)
        self.gen = 0
        self.uid = 0
        self.evaluations = 0
        self.elapsed = 0.0          # seconds spent in generations (evolution only)
        self.wall = 0.0             # wall seconds of the run before this process took it up
        self.clock = time.perf_counter()   # when this process took it up (run: the command's start)
        self.solved = None          # the validated individual, once found
        self.verification = None    # what was established about it (verify.Verification)
        self.refuted = 0            # claims that passed testing and a proof refused
        self.optimizer = None       # the optimisation phase (evolve.optimize.Optimizer), if any
        self.rows: Rows | None = None
        self._pop_view: list | None = None
        self.hof = hall_of_fame(cfg.hof_size)
        self.logbook = logbook()
        self.metrics: list[dict] = []
        self.train_x = self.train_y = self.valid_x = self.valid_y = None
        self.pinned_at = np.zeros(0, np.int64)     # training cases that carry their own entry state,
        self.pinned_states: CaseStates | None = None   # and those states (row k: case pinned_at[k])
        self.validated_fail: set = set()
        self.lineage = Lineage()    # uid -> (parents, operator, generation, length), as arrays
        # restarts (cfg.restart_after): the best correctness seen, generations since it last grew
        self.restart = restarts.fresh_state()
        # the one- and two-instruction programs, a share each generation (cfg.enumerate; arm64)
        self.enumeration = enumeration.Enumeration(alphabet, evaluator, task, cfg.seed) \
            if getattr(cfg, "enumerate", False) and cfg.isa == "arm64" else None
        # SMT synthesis of short programs, a share each generation (cfg.synth; arm64)
        self.synth = synth_tier.SynthTier(task, len(alphabet.regs), cfg.seed, getattr(cfg, "synth_encoding", "lines")) \
            if getattr(cfg, "synth", False) and cfg.isa == "arm64" else None
        self.toolbox = make_toolbox(alphabet, self.rng, cfg.max_len, cfg.init_len, cfg.selection,
                                    cfg.tournament_size, cfg.cxpb, cfg.mutpb)

    # ----------------------------------------------------------------- the population
    @property
    def pop(self) -> list:
        """The population as DEAP individuals (built on first use after each change)."""
        if self._pop_view is None:
            self._pop_view = [] if self.rows is None else self.rows.individuals(range(len(self.rows)), self.lineage)
        return self._pop_view

    def _set_rows(self, rows: Rows) -> None:
        self.rows, self._pop_view = rows, None

    # ----------------------------------------------------------------- set-up
    def start(self) -> None:
        """Cases, initial population, first evaluation."""
        self.train_x = T.training_cases(self.task, self.np_rng, self.cfg.n_train)
        self.train_y = self.task.expected(self.train_x)
        self.valid_x = T.validation_cases(self.task, self.np_rng, self.cfg.n_valid)
        self.valid_y = self.task.expected(self.valid_x)
        if self.brain is not None and self.cfg.brain_from:
            self.brain = prior.initial_brain(self.cfg)     # --brain-from: another run's gene patterns
        t0 = time.perf_counter()
        genes, lengths = self.toolbox.init(self.cfg.pop, self._draw_table())
        uids = self._register(lengths, None, "init")
        rows = Rows.new(genes, lengths, uids, len(self.train_y))
        fresh = self._all_fresh(rows)
        batch = self._evaluate_rows(rows, fresh=fresh)
        self._set_rows(rows)
        self._validate_rows(rows)
        self._after_generation(len(rows), t0, batch)
        _settle()

    def _register(self, lengths: np.ndarray, parents, ops) -> np.ndarray:
        """New uids for genomes born now, with their lineage records: ``parents`` int64 [n, 2]
        uids (-1: none; None: no parents; or a list of parent tuples), ``ops`` one operator
        label for all (str), each one's code (``Lineage.codes``) or a list of labels."""
        n = len(lengths)
        first = self.uid + 1
        self.uid += n
        if parents is None or isinstance(parents, list):
            listed, parents = parents, np.full((n, 2), -1, np.int64)
            for i, p in enumerate(listed or ()):
                parents[i, :len(p)] = p
        if isinstance(ops, str):
            ops = np.repeat(self.lineage.codes([ops]), n)
        elif isinstance(ops, list):
            ops = self.lineage.codes(ops)
        self.lineage.add(first, parents, ops, self.gen, lengths)
        return np.arange(first, self.uid + 1, dtype=np.int64)

    def _prune_lineage(self, alive_uids) -> None:
        """Keep only the records of living genomes and their ancestors born in the last
        ``LINEAGE_GENERATIONS`` generations: every living genome's whole ancestry would grow with
        the run (memory and checkpoints of a long run), and ``Lineage.ancestry`` reports the nearest."""
        self.lineage.prune(np.asarray(list(alive_uids), np.int64), self.gen - LINEAGE_GENERATIONS)

    # ----------------------------------------------------------------- genes
    def _draw_table(self):
        """Cumulative weights for a new gene: base weights times the brain's pattern weights after
        every context of up to two genes, a row built on its first draw (``lazy_draw_table``)."""
        base = np.asarray(self.alphabet.base_weights(), np.float64)
        if self.brain is None or len(self.brain.gene_patterns) == 0:   # (a --brain-from prior: from gen 0)
            return np.cumsum(base)[None, :]
        return self.brain.gene_patterns.lazy_draw_table(base)     # rows = cumsum(base * context_table)

    # ----------------------------------------------------------------- evaluation
    def _evaluate_rows(self, rows: Rows, idx: np.ndarray | None = None, fresh: FreshGenes | None = None,
                       codes=None) -> dict:
        """Evaluate rows ``idx`` (default: all) in one batch, writing cost, errors, exact,
        crashed, prior and tally (node: -1); returns the batch's outcome counts.

        The seed's rule sees every execution, starting from each row's prior (nan: the brain's
        initial values), on the rows' arrays: a row becomes an EXEC node only when it lives on
        (``evolve.nodes``). ``fresh`` credits the genes each genome introduced
        (:meth:`_observe_fresh_genes`); None: nothing is credited. ``codes``: the rows' machine
        code if the caller has it (one ``core.codes.Codes`` buffer)."""
        idx = np.arange(len(rows)) if idx is None else np.asarray(idx, np.int64)
        if idx.size == 0:
            return {"cases": 0, "crashed": 0, "outcomes": [0] * N_OUTCOMES}
        n_cases = len(self.train_y)
        if rows.errors.shape[1] != n_cases:
            rows.errors = np.zeros((len(rows), n_cases), np.uint8)
        if codes is None:
            codes = self.alphabet.encode_array(rows.genes[idx], rows.length[idx])
        outputs, outcomes = self.evaluator.run_pinned(codes, self.train_x, self._exec_seed(), self.pinned_at,
                                                      self.pinned_states)
        errors = fit.case_errors(outputs, outcomes, self.train_y)
        crashed = (outcomes != Outcome.OK).any(axis=1)
        thresholds = None
        if self.brain is not None:
            p = self.brain.params
            prior = rows.prior[idx]
            prior = np.where(np.isnan(prior), [p.initial_success, p.initial_threshold], prior)
            success, thresholds, tally = self.brain.reinforce_stats(prior[:, 0], prior[:, 1], outcomes)
            rows.node[idx] = -1          # a new state: a node again only if the row lives on
            rows.prior[idx, 0] = success
            rows.prior[idx, 1] = thresholds
            rows.tally[idx] = tally
        rows.cost[idx] = fit.costs(errors, thresholds, rows.length[idx], self.cfg.max_len, self.weights)
        # code that reads the entry flags can never be a solution (see _validate), but the backends'
        # fixed entry flags let it look exact: charged here, every genome, not only the exact ones
        # (without it, the average tasks' populations fill with adcs on the entry carry)
        readers = fit.entry_flag_readers(rows.genes[idx, :, 0], rows.length[idx], self.alphabet.flag_table())
        rows.cost[idx] += np.where(readers, FLAG_READER_CHARGE, 0.0)
        if self.optimizer is not None and self.optimizer.active:     # correctness, then --cost
            rows.cost[idx] = self.optimizer.rescore(codes, errors, rows.cost[idx])
        if self.brain is not None and fresh is not None:
            self._observe_fresh_genes(fresh, outcomes, crashed, rows.cost[idx])
        rows.errors[idx] = errors
        rows.exact[idx] = (errors == 0).sum(axis=1)
        rows.crashed[idx] = crashed
        self.evaluations += int(idx.size)
        if rows is self.rows:
            self._pop_view = None
        hist = np.bincount(outcomes.ravel(), minlength=N_OUTCOMES)
        return {"cases": int(outcomes.size), "crashed": int(outcomes.size - hist[0]),
                "outcomes": hist.tolist()}

    def _evaluate(self, inds: list) -> dict:
        """Evaluate individuals (migrants, tests): their attributes are set from the rows."""
        if not inds:
            return {"cases": 0, "crashed": 0, "outcomes": [0] * N_OUTCOMES}
        rows = Rows.from_individuals(inds, self.cfg.max_len, len(self.train_y))
        fresh = self._all_fresh(rows, [i for i, ind in enumerate(inds) if ind.fresh is None])
        batch = self._evaluate_rows(rows, fresh=fresh)
        for i, ind in enumerate(inds):
            rows.set_evaluation(i, ind)
        return batch

    @staticmethod
    def _all_fresh(rows: Rows, which=None) -> FreshGenes:
        """``fresh`` for genomes with no parents here (the first population, ``which`` rows of
        a batch of migrants): all their genes."""
        n = len(rows)
        which = np.arange(n) if which is None else np.asarray(which, np.int64)
        mask = np.zeros(rows.genes.shape[:2], bool)
        mask[which] = True
        return FreshGenes(rows.genes[:, :, 0], rows.length, mask, np.zeros(n, bool), np.full(n, np.nan))

    def _observe_fresh_genes(self, fresh: FreshGenes, outcomes: np.ndarray, crashed: np.ndarray,
                             cost: np.ndarray) -> None:
        """Credit the n-grams (n <= 3) of adjacent genes, and the macro-gene, each genome
        introduced with its executions (one step of the seed's rule each, as for its EXEC node)
        and its improvement over its parents (``core.brain.gene_grams``, ``evolve.library``).
        Blame goes where the change was: a child of crash-free parents that crashes points at
        its new genes; a crashing child of a crashing parent says nothing about them."""
        keep, bad = ~(fresh.parent_crashed & crashed), outcomes != Outcome.OK
        better = gene_grams.improved(cost, fresh.parent_cost)
        gene_grams.credit_introduced(self.brain.gene_patterns, fresh.tokens, fresh.length,
                                     fresh.fresh & keep[:, None], bad, better)
        if self.library and fresh.macro is not None:
            self.library.credit(self.brain, np.where(keep, fresh.macro, -1), bad, better)

    def _exec_seed(self) -> int:
        # New random register values every generation: code that leans on them cannot settle.
        return (self.cfg.seed * 1_000_003 + self.gen) % (2**31)

    # ----------------------------------------------------------------- one generation
    def step(self) -> dict:
        """Run one generation; returns its metrics line."""
        t0 = time.perf_counter()
        cfg, tb, pop = self.cfg, self.toolbox, self.rows
        self.gen += 1
        picks = np.asarray(tb.select(pop, cfg.pop), np.int64)
        off = tb.vary(pop.genes, pop.length, picks, self._draw_table(), self.library and self.library.table(self.brain))
        second = off.second
        parents = np.stack([pop.uid[picks], np.where(second >= 0, pop.uid[np.maximum(second, 0)], -1)], axis=1)
        ops = self.lineage.codes(op_labels())[op_index(off.cx, off.mut)]
        kids = Rows.new(off.genes, off.length, self._register(off.length, parents, ops), len(self.train_y))
        # a child equal to its first parent inherits its evaluation; the others are evaluated
        inherit = off.same & ~np.isnan(pop.cost[picks])
        for name in EVALUATION:
            getattr(kids, name)[inherit] = getattr(pop, name)[picks[inherit]]
        todo = np.flatnonzero(~inherit)
        if self.brain is not None:
            # an offspring's EXEC node starts from its parents' mean success and threshold
            other = np.where(second >= 0, second, picks)
            kids.prior[todo] = (pop.prior[picks[todo]] + pop.prior[other[todo]]) / 2
        parent_crashed = pop.crashed[picks] | ((second >= 0) & pop.crashed[np.maximum(second, 0)])
        pcost = np.where(second >= 0, np.fmin(pop.cost[picks], pop.cost[np.maximum(second, 0)]), pop.cost[picks])
        fresh = FreshGenes(kids.genes[todo, :, 0], kids.length[todo], off.fresh[todo], parent_crashed[todo], pcost[todo],
                           off.macro[todo])
        codes = self.alphabet.encode_array(kids.genes[todo], kids.length[todo])
        batch = self._evaluate_rows(kids, todo, fresh, codes)
        self._validate_rows(kids)
        elite = np.argsort(self.rows.cost, kind="stable")[:cfg.elite]
        best = np.argsort(kids.cost, kind="stable")[:cfg.pop - len(elite)]
        nodes.materialize_survivors(self, kids, best, todo, codes)   # those that live on: EXEC nodes
        self._set_rows(Rows.concat_take(self.rows, elite, kids, best))
        if restarts.stagnant(self):
            batch = restarts.restart(self, batch)
        enumeration.generation_step(self)
        synth_tier.generation_step(self)
        return self._after_generation(int(todo.size), t0, batch)

    # ----------------------------------------------------------------- validation
    def _validate_rows(self, rows: Rows) -> None:
        """:meth:`_validate` for the exact genomes among ``rows``; penalties and re-evaluations
        are written back to the rows. Once solved, the optimisation phase's candidates instead."""
        if self.solved is not None:
            if self.optimizer is not None and self.optimizer.active:
                self.optimizer.consider(rows)
            return
        n_train = len(self.train_y)
        idx = np.flatnonzero(rows.exact == n_train)
        if idx.size == 0:
            return
        cands = rows.individuals(idx, self.lineage)
        grew = self._validate(cands, rows if rows is not self.rows else None, candidates_in_rows=True)
        nodes.materialize_solution(self, rows)
        if not grew:
            for i, ind in zip(idx.tolist(), cands):
                rows.cost[i] = ind.fitness.values[0]     # a flag penalty, if any
            if rows is self.rows:
                self._pop_view = None

    def _validate(self, candidates: list, batch: Rows | None = None, candidates_in_rows: bool = False) -> bool:
        """Held-out testing, then proofs, of exact genomes; counterexamples (failing held-out cases,
        the arguments of a proof's refutation) join the training set.

        On a counterexample the population, ``batch`` (offspring rows) and the candidates are
        re-evaluated on the grown set (the candidates not again when they are rows of those,
        ``candidates_in_rows``). Returns whether the training set grew."""
        n_train = len(self.train_y)
        todo, seen = [], set()
        exact = [ind for ind in candidates if ind.exact == n_train]
        for ind in sorted(exact, key=lambda ind: (len(ind), ind.fitness.values[0])):
            key = tuple(ind)
            if key not in self.validated_fail and key not in seen:
                seen.add(key)
                todo.append(ind)
        if not todo or self.solved is not None:
            return False
        # Flags are undefined at a function's entry: code that reads them first is no solution
        # (every backend starts a case with the same flags, so no test case can show it).
        for ind in [ind for ind in todo if fit.reads_entry_flags(self.alphabet.encode(ind), self.alphabet.isa)]:
            self.validated_fail.add(tuple(ind))
            ind.fitness.values = (ind.fitness.values[0] + FLAG_PENALTY,)
            todo.remove(ind)
        if not todo:
            return False
        todo = todo[:4]
        codes = self.alphabet.encode_many(todo)
        # Every held-out case runs with its own random values in the non-argument registers and
        # scratch: code that is right only for some values of them fails somewhere, even where
        # the arguments repeat (the same input under many states).
        states = CaseStates.from_seed((self._exec_seed() + 7919) % 2**31, len(self.valid_y), self.evaluator.scratch)
        outputs, outcomes = self.evaluator.run(codes, self.valid_x, seed=0, states=states)
        good = (outcomes == Outcome.OK) & (outputs == self.valid_y[None, :])
        refuted = []
        for ind, code, row in zip(todo, codes, good):
            if not row.all():
                continue
            verdict = verify.check(code, self.task, self.cfg.isa, len(self.valid_y), scratch=self.evaluator.scratch,
                                   budget=self.cfg.budget, timeout=self._proof_timeout(),
                                   effort=self.cfg.proof_timeout)
            if isinstance(verdict, verify.Refutation):
                log.info("a proof refused a claim that passed testing: %s", verdict.reason)
                self.refuted += 1
                refuted.append(verdict)
                continue
            self.solved, self.verification = ind, verdict
            return False
        self.validated_fail.update(tuple(ind) for ind in todo)
        wrong = np.flatnonzero(~good.all(axis=0))[:self.cfg.counterexamples]
        cegis.grow_training(self, wrong, states, refuted)
        # fitness on the old set is stale
        self._evaluate_rows(self.rows)
        if batch is not None:
            self._evaluate_rows(batch, np.flatnonzero(~np.isnan(batch.cost)))
        if not candidates_in_rows:
            self._evaluate(candidates)
        return True

    def _proof_timeout(self) -> float:
        """Solver seconds per proof: the configured bound, within what the time limit leaves
        (two proofs per claim; the user's clock wins over a proof)."""
        if self.cfg.time_limit is None:
            return self.cfg.proof_timeout
        return max(0.05, min(self.cfg.proof_timeout, (self.cfg.time_limit - self.wall_seconds()) / 2))

    def wall_seconds(self) -> float:
        """Wall time of the run so far, every process that ran it included."""
        return self.wall + time.perf_counter() - self.clock

    # ----------------------------------------------------------------- book-keeping
    def _update_hof(self) -> None:
        """DEAP's ``HallOfFame.update`` with the population, given only the rows that can change
        its outcome: those cheaper than its worst member, one per distinct genome, none beyond
        the ``maxsize``-th cost (such a row would be evicted again). Rows without an EXEC node
        get theirs first (``evolve.nodes.materialize_population``)."""
        nodes.materialize_population(self)
        rows, costs = self.rows, self.rows.cost
        if len(self.hof) == self.hof.maxsize:
            entrants = np.flatnonzero(costs < self.hof[-1].fitness.values[0])
        else:
            entrants = np.arange(len(rows))
        if entrants.size > 1:   # a later copy of the same genes never enters: skip copies
            flat = np.concatenate([rows.genes[entrants].reshape(entrants.size, -1), rows.length[entrants, None]], axis=1)
            keys = np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1] * 8))).ravel()
            entrants = entrants[np.sort(np.unique(keys, return_index=True)[1])]
        if entrants.size > self.hof.maxsize:
            cut = np.sort(costs[entrants])[self.hof.maxsize - 1]
            entrants = entrants[costs[entrants] <= cut]
        if entrants.size:   # individuals only for those DEAP's update inserts (the rest change nothing)
            entrants = entrants[self.hof.would_insert(costs[entrants].tolist(),
                                                      [rows.genes[i, :rows.length[i]].tobytes() for i in entrants.tolist()])]
        if entrants.size:
            self.hof.update(rows.individuals(entrants, self.lineage))

    def best_individuals(self, k: int) -> list:
        """The ``k`` cheapest individuals (ties: lower uid first), e.g. an island's emigrants."""
        order = np.lexsort((self.rows.uid, self.rows.cost))[:k]
        return self.rows.individuals(order, self.lineage)

    def _after_generation(self, evaluated: int, t0: float, batch: dict | None = None) -> dict:
        """Hall of fame, brain clean-up, metrics line, logbook."""
        batch = batch or {"cases": 0, "crashed": 0, "outcomes": [0] * N_OUTCOMES}
        rows = self.rows
        costs = rows.cost
        self._update_hof()
        extra = [ind.uid for ind in self.hof] + ([self.solved.uid] if self.solved is not None else [])
        if len(self.lineage) > 8 * len(rows) + 1000:    # bounded, amortised
            self._prune_lineage(rows.uid.tolist() + extra)
        if self.brain is not None:
            alive = np.concatenate([rows.node, [ind.node for ind in self.hof],
                                    [self.solved.node] if self.solved is not None else []]).astype(np.int64)
            table = self.brain.exec_table()["node"]
            dead = table[~np.isin(table, alive)]
            if dead.size:
                self.brain.remove_exec_nodes(dead)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        b = int(np.argmin(costs))
        line = {
            "gen": self.gen, "evaluations": self.evaluations, "new_evaluations": evaluated,
            "evals_per_s": round(evaluated / dt, 1) if dt > 0 else None, "seconds": round(self.elapsed, 3),
            "best_cost": float(costs[b]), "mean_cost": float(costs.mean()), "best_exact": int(rows.exact[b]),
            "n_train": int(len(self.train_y)), "best_len": int(rows.length[b]),
            "outcomes": {Outcome(i).name: c for i, c in enumerate(batch["outcomes"])},
            "offspring_crash_rate": batch["crashed"] / batch["cases"] if batch["cases"] else 0.0,
            "solved": self.solved is not None, "restarts": self.restart["count"],
        }
        if self.brain is not None:
            gp = self.brain.gene_patterns          # live patterns' ratios only (not stats(): every column)
            ratio = gp.threshold_ratio[gp.length > 0]
            line["brain"] = {"exec_nodes": int(self.brain.n_exec), "gene_patterns": int(len(gp)),
                             "suppressed_patterns": int((ratio > 1.0).sum()), "proven_patterns": int((ratio < 1.0).sum()),
                             "mean_pattern_threshold_ratio": float(ratio.mean()) if ratio.size else None,
                             "crashes_handled": int(self.brain.crashes_handled)}
        self.metrics.append(line)
        self._log(line)
        return line

    def _log(self, line: dict) -> None:
        """DEAP's logbook, keeping the last ``LOGBOOK_KEPT`` generations: a long run's history
        is its ``metrics.jsonl``, not memory that grows with every generation."""
        self.logbook.record(gen=line["gen"], evals=line["new_evaluations"], best=line["best_cost"],
                            mean=line["mean_cost"], crash_rate=line["offspring_crash_rate"])
        if len(self.logbook) > 2 * LOGBOOK_KEPT:      # (DEAP's Logbook cannot delete a slice)
            kept, self.logbook = list(self.logbook)[-LOGBOOK_KEPT:], logbook()
            for record in kept:
                self.logbook.record(**record)

    # ----------------------------------------------------------------- islands
    def accept_immigrants(self, genomes: list, replace: list[int], origin: str = "migrant") -> list:
        """Put genomes from another island into the population, evaluated here.

        Parameters
        ----------
        genomes : list of gene lists
            The immigrants' genes (their fitness on another island's cases means nothing here).
        replace : list of int
            uids of the individuals they replace, in order (DEAP's ``migRing`` default: the
            island's own emigrants); a uid no longer present falls back to the worst individual.
        origin : str
            The ``op`` recorded on the new individuals.

        Returns
        -------
        list
            The new individuals (new uids, ``parents`` empty: lineage stays on its own island).
        """
        if not genomes:
            return []
        lengths = np.fromiter(map(len, genomes), np.int64, len(genomes))
        uids = self._register(lengths, None, origin).tolist()
        newcomers = [new_individual(genes, uid, (), origin) for genes, uid in zip(genomes, uids)]
        for ind in newcomers:
            ind.fresh = []           # not this island's variation: its genes earn no credit here
        self._evaluate(newcomers)
        self._validate(newcomers)
        rows = self.rows
        by_uid = {uid: i for i, uid in enumerate(rows.uid.tolist())}
        taken: set = set()
        for ind, uid in zip(newcomers, list(replace) + [None] * len(newcomers)):
            slot = by_uid.get(uid) if uid is not None else None
            if slot is None or slot in taken:
                free = [i for i in range(len(rows)) if i not in taken]
                slot = max(free, key=lambda i: rows.cost[i])
            taken.add(slot)
            rows.put([slot], Rows.from_individuals([ind], rows.genes.shape[1], rows.errors.shape[1]))
        self._set_rows(rows)
        self._update_hof()
        return newcomers

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        """Everything needed to continue exactly (the brain travels separately, as its file's
        bytes; :mod:`evolve.checkpoint` turns both into JSON and arrays). The metrics lines and
        the logbook are history, not state: they stay in ``metrics.jsonl``."""
        return {"version": 3, "config": asdict(self.cfg), "gen": self.gen, "uid": self.uid,
                "evaluations": self.evaluations, "elapsed": self.elapsed, "wall": self.wall_seconds(),
                "rows": asdict(self.rows),
                "hof": self.hof, "rng": self.rng.getstate(), "np_rng": self.np_rng.bit_generator.state,
                "train_x": self.train_x, "train_y": self.train_y, "valid_x": self.valid_x,
                "valid_y": self.valid_y, "validated_fail": self.validated_fail, "solved": self.solved,
                "verification": self.verification.to_json() if self.verification else None,
                "refuted": self.refuted, "lineage": self.lineage, "pinned_at": self.pinned_at,
                "pinned_states": self.pinned_states, "alphabet_version": self.alphabet.isa_genes.version,
                "restart": dict(self.restart),
                "enumerated": None if self.enumeration is None else self.enumeration.position,
                "synth": None if self.synth is None else self.synth.position}

    def restore(self, state: dict, brain: Brain | None, settle: bool = True, metrics: list | None = None) -> None:
        """Continue from :meth:`state` (and its brain). ``metrics``: the run's lines so far (from
        its ``metrics.jsonl``), which :attr:`metrics` and the logbook start from (None: from
        nothing, as an island task does). ``settle``: collect, then freeze what is alive out of
        the collector's full passes, once for a run's process; island tasks (many per worker,
        each a few generations) skip that full collection."""
        state = upgrade_state(state, self.alphabet)
        for key in ("gen", "uid", "evaluations", "elapsed", "hof", "train_x", "train_y", "valid_x", "valid_y",
                    "validated_fail", "solved"):
            setattr(self, key, state[key])
        self.metrics = list(metrics or [])
        for line in self.metrics[-LOGBOOK_KEPT:]:
            self._log(line)
        self.lineage = Lineage(state.get("lineage", {}))
        self.wall = state.get("wall", self.elapsed)        # checkpoints before the wall clock: evolution time
        self.clock = time.perf_counter()
        recorded = state.get("verification")
        self.verification = verify.Verification(**recorded) if recorded else None
        self.refuted = state.get("refuted", 0)
        self.pinned_at = np.asarray(state.get("pinned_at", np.zeros(0, np.int64)), np.int64)
        self.pinned_states = state.get("pinned_states")
        self.restart = dict(state.get("restart") or restarts.fresh_state())
        if self.enumeration is not None:
            self.enumeration.position = state.get("enumerated")
        if self.synth is not None:
            self.synth.position = state.get("synth")
        for ind in list(self.hof) + ([self.solved] if self.solved is not None else []):
            for name, default in (("crashed", False), ("fresh", [])):
                if name not in ind.__dict__:     # checkpoints of earlier versions
                    setattr(ind, name, default)
        if "rows" in state:
            self._set_rows(Rows(**state["rows"]))
        else:                                    # version 1: a list of individuals
            self._set_rows(Rows.from_individuals(state["pop"], self.cfg.max_len, len(self.train_y)))
        self.rng.setstate(state["rng"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.brain = brain
        if settle:
            _settle()


def _settle() -> None:
    """Move everything alive now (modules, compiled kernels, cases) out of the collector's
    reach: it lives for the whole run, and each full collection would re-scan it every few
    generations. Garbage made later is collected as usual."""
    gc.collect()
    gc.freeze()


def build(cfg: RunConfig, evaluator: Evaluator | None = None, task: T.Task | None = None) -> Engine:
    """An engine for ``cfg`` (task resolved and validated, or ``task`` itself; executor opened)."""
    cfg.validate()
    if task is None:
        task = taskspec.get_task(cfg.task, cc=cfg.cc, cflags=cfg.cflags)
    alphabet = alphabet_for(cfg.isa, n_regs=cfg.n_regs)
    if evaluator is None:
        evaluator = Evaluator(cfg.isa, cfg.backend, cfg.workers, budget=cfg.budget)
    evaluator.output_mask = task.result_mask    # only the bits the task defines are compared
    return Engine(cfg, task, alphabet, evaluator)
