"""Counterexample-guided growth of the training set (CEGIS): what a refused claim teaches.

A claim exact on the training cases that fails held-out testing, or that a proof refutes, shows
cases the training set lacked; they join it, so neither that genome nor its relatives can pass
the same way again. Where the failure depended on the machine state (registers, scratch) and
not only on the arguments, the new case keeps that state (``engine.pinned_states``): a held-out
case its own random registers and scratch, an independence refutation's arguments once per state
of the solver's model.
"""
from __future__ import annotations

import logging

import numpy as np

from core.executors.batch_state import CaseStates

log = logging.getLogger(__name__)


def grow_training(engine, wrong: np.ndarray, states: CaseStates, refuted: list) -> None:
    """Append to ``engine``'s training set the held-out cases ``wrong`` (indices into its
    validation set, each pinned to its row of ``states``) and the refutations' arguments
    (``refuted``: :class:`evolve.verify.Refutation`, with or without machine states)."""
    n_train = len(engine.train_y)
    free = [r.args for r in refuted if not r.states]
    pinned = [(r.args, st) for r in refuted for st in r.states]
    new_x = np.concatenate([engine.valid_x[wrong], np.array(free + [a for a, _ in pinned], dtype=np.uint64)
                            .reshape(-1, engine.task.arity)])
    log.info("validation found %d counterexamples; training set grows to %d", len(new_x), n_train + len(new_x))
    parts = [engine.pinned_states] if engine.pinned_states is not None else []
    if len(wrong):
        parts.append(states.take(wrong))
    if pinned:
        parts.append(CaseStates.stack([st for _, st in pinned]))
    at = [n_train + np.arange(len(wrong)), n_train + len(new_x) - len(pinned) + np.arange(len(pinned))]
    if len(parts) > (engine.pinned_states is not None):
        engine.pinned_states = CaseStates.concat(parts)
        engine.pinned_at = np.concatenate([engine.pinned_at, *at]).astype(np.int64)
    engine.train_x = np.concatenate([engine.train_x, new_x])
    engine.train_y = np.concatenate([engine.train_y, engine.valid_y[wrong], engine.task.expected(new_x[len(wrong):])])
