"""The generation loop: vary, evaluate in batches, reinforce the brain, validate, select.

One explicit loop (as DEAP's ``eaSimple`` is), owning checkpoints. Per generation:

1. parents are selected (tournament or lexicase); each offspring is a crossover and/or a
   mutation whose new genes are drawn with the brain's gene-pattern weights;
2. every offspring with an invalid fitness is evaluated in one batch through the executor; each
   becomes an EXEC node (prior: its parents' success and threshold), the seed's rule sees every
   execution, and the genome's gene n-grams are credited with its verdict;
3. genomes exact on every training case are validated on the held-out set with other random
   register values; a failure adds its counterexamples to the training set;
4. the next population is the elite of parents and offspring plus the offspring.

State (population, hall of fame, logbook, random states, cases, brain) is checkpointed so that a
resumed run continues exactly as if it had not stopped.
"""
from __future__ import annotations

import bisect
import logging
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from core.brain import Brain
from core.outcome import N_OUTCOMES, Outcome
from evolve import fitness as fit
from evolve import tasks as T
from evolve.evaluate import Evaluator
from evolve.genes import Alphabet, alphabet_for, genome_array
from evolve.operators import op_names
from evolve.toolbox import hall_of_fame, logbook, make_toolbox, new_individual

log = logging.getLogger(__name__)

#: distinct register seeds the held-out validation runs under
VALIDATION_SEEDS = 16
#: cost added to an exact genome that reads the flags before setting them (see _validate)
FLAG_PENALTY = 0.25


@dataclass
class RunConfig:
    """Every parameter of a run (written to config.json; enough to reproduce it)."""

    task: str = T.DEFAULT_TASK
    isa: str = "arm64"
    backend: str = "auto"
    pop: int = 300
    generations: int = 500
    time_limit: float | None = 60.0
    max_len: int = 16
    init_len: int = 8
    n_regs: int = 4
    seed: int = 0
    workers: int = 1
    brain: bool = True
    selection: str = "lexicase"
    tournament_size: int = 4
    cxpb: float = 0.3
    mutpb: float = 0.9
    elite: int = 4
    n_train: int = 64
    n_valid: int = 10_000
    budget: int = 256
    hof_size: int = 10
    counterexamples: int = 8
    checkpoint_every: int = 10
    stop_when_solved: bool = True
    weights: dict = field(default_factory=lambda: asdict(fit.FitnessWeights()))

    def validate(self) -> None:
        """Raise ValueError with one line for any nonsensical value."""
        checks = [
            (self.pop >= 2, f"--pop must be at least 2, got {self.pop}"),
            (self.generations >= 1, f"--generations must be at least 1, got {self.generations}"),
            (self.time_limit is None or self.time_limit > 0, f"--time-limit must be positive, got {self.time_limit}"),
            (1 <= self.max_len <= 256, f"--max-len must be in [1, 256], got {self.max_len}"),
            (2 <= self.n_regs <= 8, f"--regs must be in [2, 8], got {self.n_regs}"),
            (self.seed >= 0, f"--seed must be non-negative, got {self.seed}"),
            (self.workers >= 1, f"--workers must be at least 1, got {self.workers}"),
            (self.selection in ("tournament", "lexicase"), "--selection must be tournament or lexicase"),
            (0 <= self.elite < self.pop, f"elite must be in [0, pop), got {self.elite}"),
            (self.n_train >= 8, f"n_train must be at least 8, got {self.n_train}"),
            (self.n_valid >= 1, f"n_valid must be at least 1, got {self.n_valid}"),
            (self.budget >= 1, f"budget must be at least 1, got {self.budget}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


class Engine:
    """One evolution run's state and loop. Use :meth:`fresh` or :meth:`from_state`."""

    def __init__(self, cfg: RunConfig, task: T.Task, alphabet: Alphabet, evaluator: Evaluator):
        self.cfg, self.task, self.alphabet, self.evaluator = cfg, task, alphabet, evaluator
        self.rng = random.Random(cfg.seed)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.brain = Brain() if cfg.brain else None
        self.weights = fit.FitnessWeights(**cfg.weights)
        self.gen = 0
        self.uid = 0
        self.evaluations = 0
        self.elapsed = 0.0
        self.solved = None          # the validated individual, once found
        self.pop: list = []
        self.hof = hall_of_fame(cfg.hof_size)
        self.logbook = logbook()
        self.metrics: list[dict] = []
        self.train_x = self.train_y = self.valid_x = self.valid_y = None
        self.validated_fail: set = set()
        self.lineage: dict = {}     # uid -> (parents, operator, generation, length)
        self.toolbox = make_toolbox(alphabet, self.rng, cfg.max_len, cfg.init_len, cfg.selection,
                                    cfg.tournament_size, cfg.cxpb, cfg.mutpb)

    # ----------------------------------------------------------------- set-up
    def start(self) -> None:
        """Cases, initial population, first evaluation."""
        self.train_x = T.training_cases(self.task, self.np_rng, self.cfg.n_train)
        self.train_y = self.task.expected(self.train_x)
        self.valid_x = T.validation_cases(self.task, self.np_rng, self.cfg.n_valid)
        self.valid_y = self.task.expected(self.valid_x)
        t0 = time.perf_counter()
        genes, lengths = self.toolbox.init(self.cfg.pop, self._draw_table())
        rows = genes.tolist()
        self.pop = [self._new(list(map(tuple, rows[k][:n])), (), "init") for k, n in enumerate(lengths.tolist())]
        batch = self._evaluate(self.pop)
        self._after_generation(self.pop, t0, batch)

    def _new(self, genes, parents, op):
        self.uid += 1
        self.lineage[self.uid] = (tuple(parents), op, self.gen, len(genes))
        return new_individual(genes, self.uid, parents, op)

    def _prune_lineage(self, alive: list) -> None:
        """Keep only the records of living genomes and their ancestors (bounded memory)."""
        keep, todo = set(), [ind.uid for ind in alive]
        while todo:
            uid = todo.pop()
            if uid in keep or uid not in self.lineage:
                continue
            keep.add(uid)
            todo.extend(self.lineage[uid][0])
        self.lineage = {uid: rec for uid, rec in self.lineage.items() if uid in keep}

    def ancestry(self, ind, limit: int = 200) -> list[dict]:
        """``ind`` and its recorded ancestors, nearest first: uid, parents, operator, generation
        of birth, length (what ``python -m evolve analyze`` shows as the lineage)."""
        out, todo, seen = [], [ind.uid], set()
        while todo and len(out) < limit:
            uid = todo.pop(0)
            if uid in seen or uid not in self.lineage:
                continue
            seen.add(uid)
            parents, op, gen, length = self.lineage[uid]
            out.append({"uid": uid, "parents": list(parents), "op": op, "generation": gen, "length": length})
            todo.extend(parents)
        return out

    # ----------------------------------------------------------------- genes
    def _draw_table(self) -> np.ndarray:
        """Cumulative weights for drawing a new gene: base weights times the brain's pattern
        weights after every context of up to two genes (row 0: no context; 1 + a: after gene
        a; 1 + n + a * n + b: after a, b). One row without the brain, or before it has learned."""
        base = np.asarray(self.alphabet.base_weights(), np.float64)
        if self.brain is None or self.gen == 0:
            return np.cumsum(base)[None, :]
        weights = self.brain.gene_patterns.context_table(self.alphabet.n_genes)
        return np.cumsum(base * weights, axis=1)

    # ----------------------------------------------------------------- evaluation
    def _evaluate(self, inds: list, codes: list | None = None, priors: np.ndarray | None = None,
                  fresh: tuple | None = None) -> dict:
        """Evaluate ``inds`` in one batch; returns outcome counts of this batch.

        ``codes`` (their machine code), ``priors`` (float [n, 2]: EXEC node success and
        threshold to start from) and ``fresh`` (see :meth:`_observe_fresh_genes`) may come
        from the caller's arrays; by default they follow from the individuals."""
        if not inds:
            return {"cases": 0, "crashed": 0, "outcomes": [0] * N_OUTCOMES}
        if codes is None:
            codes = self.alphabet.encode_many(inds)
        outputs, outcomes = self.evaluator.run(codes, self.train_x, seed=self._exec_seed())
        errors = fit.case_errors(outputs, outcomes, self.train_y)
        crashed = (outcomes != Outcome.OK).any(axis=1)
        thresholds = None
        if self.brain is not None:
            p = self.brain.params
            if priors is None:
                priors = np.array([ind.prior or (p.initial_success, p.initial_threshold) for ind in inds], np.float64)
            ids = self.brain.add_exec_nodes(codes, success_rate=priors[:, 0], threshold_ratio=priors[:, 1])
            self.brain.reinforce(ids, outcomes, link=False)
            stats = self.brain.node_stats(ids)
            thresholds = stats["threshold_ratio"]
            if fresh is None:
                fresh = self._fresh_of(inds)
            self._observe_fresh_genes(fresh, outcomes, crashed)
            for ind, node, s, t in zip(inds, ids.tolist(), stats["success_rate"].tolist(), thresholds.tolist()):
                ind.node, ind.prior = node, (s, t)
        lengths = np.fromiter(map(len, inds), np.int64, len(inds))
        cost = fit.costs(errors, thresholds, lengths, self.cfg.max_len, self.weights).tolist()
        exact = (errors == 0).sum(axis=1).tolist()
        for i, (ind, c, x, k) in enumerate(zip(inds, cost, exact, crashed.tolist())):
            ind.fitness.values = (c,)
            ind.errors = errors[i]
            ind.exact = x
            ind.crashed = k
            ind.fresh = []      # observed once; a re-evaluation teaches nothing new
        self.evaluations += len(inds)
        hist = np.bincount(outcomes.ravel(), minlength=N_OUTCOMES)
        return {"cases": int(outcomes.size), "crashed": int(outcomes.size - hist[0]),
                "outcomes": hist.tolist()}

    @staticmethod
    def _fresh_of(inds: list) -> tuple:
        """``fresh`` for :meth:`_observe_fresh_genes` from the individuals' ``fresh`` lists
        (None: every gene is new, as in the first population) and ``parent_crashed``."""
        tokens, owner = [], []
        for k, ind in enumerate(inds):
            genes = [g[0] for g in ind] if ind.fresh is None else ind.fresh
            tokens += genes
            owner += [k] * len(genes)
        parent_crashed = np.fromiter((ind.parent_crashed for ind in inds), bool, len(inds))
        return np.asarray(owner, np.int64), np.asarray(tokens, np.int64), parent_crashed

    def _observe_fresh_genes(self, fresh: tuple, outcomes: np.ndarray, crashed: np.ndarray) -> None:
        """Credit the genes each genome introduced (not inherited) with its executions.

        ``fresh`` is ``(owner int64 [m], token int64 [m], parent_crashed bool [n])``: gene
        ``token`` is new in genome ``owner``. Blame goes where the change was: a child of
        crash-free parents that crashes points at its new genes; a crashing child of a
        crashing parent says nothing about them. Every execution (test case) is one step of
        the seed's rule on the gene's pattern, as it is for the genome's EXEC node."""
        owner, tokens, parent_crashed = fresh
        keep = ~(parent_crashed & crashed)[owner]
        owner, tokens = owner[keep], tokens[keep]
        if tokens.size:
            n_cases = outcomes.shape[1]
            # one sequence per (gene, test case): each execution is one step of the rule
            tokens = np.repeat(tokens, n_cases)
            ptr = np.arange(tokens.size + 1, dtype=np.int64)
            self.brain.observe_genes(None, (tokens, ptr), outcomes[owner].reshape(-1, 1))

    def _exec_seed(self) -> int:
        # New random register values every generation: code that leans on them cannot settle.
        return (self.cfg.seed * 1_000_003 + self.gen) % (2**31)

    # ----------------------------------------------------------------- one generation
    def step(self) -> dict:
        """Run one generation; returns its metrics line."""
        t0 = time.perf_counter()
        cfg, tb = self.cfg, self.toolbox
        self.gen += 1
        picks = np.asarray(tb.select(self.pop, cfg.pop), np.int64)
        pop = self.pop
        genes, lengths = genome_array(pop, cfg.max_len)
        child_genes, child_len, second, cx, mut, fresh, same = tb.vary(genes, lengths, picks, self._draw_table())
        # a child equal to its first parent inherits its evaluation; the others are evaluated
        valid = np.fromiter((ind.fitness.valid for ind in pop), bool, len(pop))
        inherit = same & valid[picks]
        labels = op_names(cx, mut)
        rows = child_genes.tolist()
        uids = [ind.uid for ind in pop]
        offspring = []
        for k, (n, first, other) in enumerate(zip(child_len.tolist(), picks.tolist(), second.tolist())):
            self.uid += 1
            parents = (uids[first],) if other < 0 else (uids[first], uids[other])
            self.lineage[self.uid] = (parents, labels[k], self.gen, n)
            child = new_individual(rows[k][:n], self.uid, parents, labels[k])
            child.fresh = []
            offspring.append(child)
        for k in np.flatnonzero(inherit).tolist():
            child, p1 = offspring[k], pop[picks[k]]
            child.fitness.values, child.errors, child.exact = p1.fitness.values, p1.errors, p1.exact
            child.node, child.prior, child.crashed = p1.node, p1.prior, p1.crashed
        todo = np.flatnonzero(~inherit)
        invalid = [offspring[k] for k in todo.tolist()]
        codes = self.alphabet.encode_array(child_genes[todo], child_len[todo])
        priors = None
        if self.brain is not None:
            # an offspring's EXEC node starts from its parents' mean success and threshold
            p = self.brain.params
            prior = np.array([ind.prior or (p.initial_success, p.initial_threshold) for ind in pop], np.float64)
            two = second[todo] >= 0
            priors = np.where(two[:, None], (prior[picks[todo]] + prior[np.maximum(second[todo], 0)]) / 2,
                              prior[picks[todo]])
        crashed = np.fromiter((ind.crashed for ind in pop), bool, len(pop))
        parent_crashed = crashed[picks[todo]] | ((second[todo] >= 0) & crashed[np.maximum(second[todo], 0)])
        mask = fresh[todo] & (np.arange(fresh.shape[1])[None, :] < child_len[todo][:, None])
        owner, pos = np.nonzero(mask)
        fresh_genes = (owner.astype(np.int64), child_genes[todo][owner, pos, 0], parent_crashed)
        batch = self._evaluate(invalid, codes, priors, fresh_genes)
        self._validate(offspring)
        elite = [pop[i] for i in _cheapest(pop, cfg.elite)]
        self.pop = elite + [offspring[i] for i in _cheapest(offspring, cfg.pop - len(elite))]
        return self._after_generation(invalid, t0, batch)

    def _validate(self, candidates: list) -> None:
        """Held-out validation of exact genomes; counterexamples join the training set."""
        n_train = len(self.train_y)
        todo, seen = [], set()
        exact = [ind for ind in candidates if ind.exact == n_train]
        for ind in sorted(exact, key=lambda ind: (len(ind), ind.fitness.values[0])):
            key = tuple(ind)
            if key not in self.validated_fail and key not in seen:
                seen.add(key)
                todo.append(ind)
        if not todo or self.solved is not None:
            return
        # Flags are undefined at a function's entry: code that reads them first is no solution
        # (every backend starts a case with the same flags, so no test case can show it).
        for ind in [ind for ind in todo if fit.reads_entry_flags(self.alphabet.encode(ind), self.alphabet.isa)]:
            self.validated_fail.add(tuple(ind))
            ind.fitness.values = (ind.fitness.values[0] + FLAG_PENALTY,)
            todo.remove(ind)
        if not todo:
            return
        todo = todo[:4]
        codes = self.alphabet.encode_many(todo)
        # Each chunk of the held-out set runs with other random values in the non-argument
        # registers: code that is right only for some values of them fails somewhere.
        good = np.zeros((len(todo), len(self.valid_y)), bool)
        for k, part in enumerate(np.array_split(np.arange(len(self.valid_y)), VALIDATION_SEEDS)):
            outputs, outcomes = self.evaluator.run(codes, self.valid_x[part],
                                                   seed=(self._exec_seed() + 7919 * (k + 1)) % 2**31)
            good[:, part] = (outcomes == Outcome.OK) & (outputs == self.valid_y[part][None, :])
        for ind, row in zip(todo, good):
            if row.all():
                self.solved = ind
                return
        self.validated_fail.update(tuple(ind) for ind in todo)
        wrong = np.flatnonzero(~good.all(axis=0))[:self.cfg.counterexamples]
        log.info("validation found %d counterexamples; training set grows to %d",
                 len(wrong), n_train + len(wrong))
        self.train_x = np.concatenate([self.train_x, self.valid_x[wrong]])
        self.train_y = np.concatenate([self.train_y, self.valid_y[wrong]])
        for ind in self.pop + candidates:     # fitness on the old set is stale
            del ind.fitness.values
        self._evaluate(list({id(ind): ind for ind in self.pop + candidates}.values()))

    def _after_generation(self, evaluated: list, t0: float, batch: dict | None = None) -> dict:
        """Hall of fame, brain clean-up, metrics line, logbook."""
        batch = batch or {"cases": 0, "crashed": 0, "outcomes": [0] * N_OUTCOMES}
        costs = _costs(self.pop)
        if len(self.hof) == self.hof.maxsize:   # only those that can enter (DEAP compares each)
            worst = self.hof[-1].fitness.values[0]
            self.hof.update([ind for ind, c in zip(self.pop, costs.tolist()) if c < worst])
        else:
            self.hof.update(self.pop)
        if len(self.lineage) > 8 * len(self.pop) + 1000:    # bounded, amortised
            self._prune_lineage(list(self.pop) + list(self.hof) + ([self.solved] if self.solved is not None else []))
        if self.brain is not None:
            alive = {ind.node for ind in list(self.pop) + list(self.hof)} | (
                {self.solved.node} if self.solved is not None else set())
            table = self.brain.exec_table()["node"]
            dead = table[~np.isin(table, np.fromiter(alive, np.int64, len(alive)))]
            if dead.size:
                self.brain.remove_exec_nodes(dead)
        dt = time.perf_counter() - t0
        self.elapsed += dt
        best = self.pop[int(np.argmin(costs))]
        line = {
            "gen": self.gen, "evaluations": self.evaluations, "new_evaluations": len(evaluated),
            "evals_per_s": round(len(evaluated) / dt, 1) if dt > 0 else None, "seconds": round(self.elapsed, 3),
            "best_cost": float(costs.min()), "mean_cost": float(costs.mean()), "best_exact": best.exact,
            "n_train": int(len(self.train_y)), "best_len": len(best),
            "outcomes": {Outcome(i).name: c for i, c in enumerate(batch["outcomes"])},
            "offspring_crash_rate": batch["crashed"] / batch["cases"] if batch["cases"] else 0.0,
            "solved": self.solved is not None,
        }
        if self.brain is not None:
            gp = self.brain.gene_patterns.stats()
            thr = np.asarray(gp.get("threshold", np.zeros(0)))
            line["brain"] = {"exec_nodes": int(self.brain.n_exec), "gene_patterns": int(len(self.brain.gene_patterns)),
                             "suppressed_patterns": int((thr > 1.0).sum()),
                             "mean_pattern_threshold": float(thr.mean()) if thr.size else None,
                             "crashes_handled": int(self.brain.crashes_handled)}
        self.metrics.append(line)
        self.logbook.record(gen=self.gen, evals=len(evaluated), best=line["best_cost"], mean=line["mean_cost"],
                            crash_rate=line["offspring_crash_rate"])
        return line

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
        newcomers = [self._new(genes, (), origin) for genes in genomes]
        for ind in newcomers:
            ind.fresh = []           # not this island's variation: its genes earn no credit here
        self._evaluate(newcomers)
        self._validate(newcomers)
        by_uid = {ind.uid: i for i, ind in enumerate(self.pop)}
        taken: set = set()
        for ind, uid in zip(newcomers, list(replace) + [None] * len(newcomers)):
            slot = by_uid.get(uid) if uid is not None else None
            if slot is None or slot in taken:
                free = [i for i in range(len(self.pop)) if i not in taken]
                slot = max(free, key=lambda i: self.pop[i].fitness.values[0])
            taken.add(slot)
            self.pop[slot] = ind
        self.hof.update(self.pop)
        return newcomers

    # ----------------------------------------------------------------- state
    def state(self) -> dict:
        """Everything needed to continue exactly (the brain travels separately, as a file)."""
        return {"version": 1, "config": asdict(self.cfg), "gen": self.gen, "uid": self.uid,
                "evaluations": self.evaluations, "elapsed": self.elapsed, "pop": self.pop,
                "hof": self.hof, "logbook": self.logbook, "metrics": self.metrics,
                "rng": self.rng.getstate(), "np_rng": self.np_rng.bit_generator.state,
                "train_x": self.train_x, "train_y": self.train_y, "valid_x": self.valid_x,
                "valid_y": self.valid_y, "validated_fail": self.validated_fail, "solved": self.solved,
                "lineage": self.lineage}

    def restore(self, state: dict, brain: Brain | None) -> None:
        for key in ("gen", "uid", "evaluations", "elapsed", "pop", "hof", "logbook", "metrics", "train_x",
                    "train_y", "valid_x", "valid_y", "validated_fail", "solved"):
            setattr(self, key, state[key])
        self.lineage = state.get("lineage", {})
        for ind in list(self.pop) + list(self.hof) + ([self.solved] if self.solved is not None else []):
            for name, default in (("crashed", False), ("fresh", None), ("parent_crashed", False)):
                if name not in ind.__dict__:     # checkpoints of earlier versions
                    setattr(ind, name, default)
        self.rng.setstate(state["rng"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.brain = brain


def _costs(inds) -> np.ndarray:
    """float64 [n]: the individuals' costs (the fitness value; lower is better)."""
    return np.fromiter((ind.fitness.values[0] for ind in inds), np.float64, len(inds))


def _cheapest(inds, k: int) -> list[int]:
    """Indices of the ``k`` cheapest individuals, cheapest first (ties: earlier first, as a
    stable sort)."""
    return np.argsort(_costs(inds), kind="stable")[:k].tolist()


def build(cfg: RunConfig, evaluator: Evaluator | None = None) -> Engine:
    """An engine for ``cfg`` (task resolved and validated, executor opened)."""
    cfg.validate()
    task = T.get_task(cfg.task)
    alphabet = alphabet_for(cfg.isa, n_regs=cfg.n_regs)
    if evaluator is None:
        evaluator = Evaluator(cfg.isa, cfg.backend, cfg.workers, budget=cfg.budget)
    return Engine(cfg, task, alphabet, evaluator)
