"""Restarts (``--restart-after G``): an unsolved run whose best correctness has not grown for G
generations starts again from a fresh random population.

Why: a population that converged on a local optimum (p04's runs sat at 58 of 64 exact cases for
the last 90 of 740 generations) rarely leaves it through its own descendants; a new one starts
elsewhere. What the run learnt stays: the training cases and every counterexample, the hall of
fame, and the brain's gene statistics (the new population is drawn with them). The state lives
in ``engine.restart`` (checkpointed): the best correctness seen, the generations since it last
grew, and how many restarts there were (``restarts`` in each metrics line).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from evolve.population import Rows

log = logging.getLogger(__name__)


def fresh_state(count: int = 0) -> dict:
    return {"best": None, "stale": 0, "count": count}


def stagnant(engine) -> bool:
    """Whether the unsolved run's best correctness (most exact cases, then fewest wrong bits; not
    the cost, whose brain term drifts every generation) has not grown for
    ``cfg.restart_after`` generations (0: never). A grown training set starts the count anew."""
    after = getattr(engine.cfg, "restart_after", 0)
    if not after or engine.solved is not None:
        return False
    rows, r = engine.rows, engine.restart
    key = [len(engine.train_y), int(rows.exact.max()), -int(rows.errors.sum(axis=1, dtype=np.int64).min())]
    if r["best"] is None or key[0] != r["best"][0] or key[1:] > r["best"][1:]:
        r["best"], r["stale"] = key, 0
        return False
    r["stale"] += 1
    return r["stale"] >= after


def restart(engine, batch: dict) -> dict:
    """Replace the population with a fresh random one, evaluated (its genomes born of "restart");
    returns the generation's outcome counts ``batch`` with the new rows' added."""
    t0 = time.perf_counter()
    genes, lengths = engine.toolbox.init(engine.cfg.pop, engine._draw_table())
    uids = engine._register(lengths, [()] * len(lengths), ["restart"] * len(lengths))
    rows = Rows.new(genes, lengths, uids, len(engine.train_y))
    more = engine._evaluate_rows(rows, fresh=engine._all_fresh(rows))
    engine._set_rows(rows)
    engine._validate_rows(rows)
    engine.restart = fresh_state(engine.restart["count"] + 1)
    log.info("restart %d at generation %d (%.2f s)", engine.restart["count"], engine.gen, time.perf_counter() - t0)
    return {"cases": batch["cases"] + more["cases"], "crashed": batch["crashed"] + more["crashed"],
            "outcomes": [a + b for a, b in zip(batch["outcomes"], more["outcomes"])]}
