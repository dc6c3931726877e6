"""Which genomes are the brain's EXEC nodes: those that live on.

An evaluated offspring's rule state (the seed's success rate and threshold, its executions per
outcome) is kept in its rows (``Rows.prior``, ``Rows.tally``: ``Engine._evaluate_rows``); most
offspring never survive their generation, and a node for each (code written into the blob, then
removed a generation later) cost more than the rule itself. A genome that lives on (the next
population, the hall of fame, the solution) becomes a node in one batch, starting from exactly
the state its rows hold: the state it would have had as a node since its evaluation
(``tests/test_evolve_nodes.py``).
"""
from __future__ import annotations

import numpy as np

from core.codes import Codes
from evolve.population import Rows


def materialize(engine, rows: Rows, idx: np.ndarray, codes: Codes | None = None) -> None:
    """EXEC nodes for rows ``idx`` of ``rows``, from their rule state; ``codes``: their machine
    code if at hand (else encoded again)."""
    if engine.brain is None or idx.size == 0:
        return
    if codes is None:
        codes = engine.alphabet.encode_array(rows.genes[idx], rows.length[idx])
    rows.node[idx] = engine.brain.add_exec_nodes(codes, success_rate=rows.prior[idx, 0],
                                                 threshold_ratio=rows.prior[idx, 1], outcomes=rows.tally[idx])


def materialize_survivors(engine, kids: Rows, best: np.ndarray, todo: np.ndarray, codes: Codes) -> None:
    """Nodes for the offspring ``best`` that go on to the next population, from the code of
    the batch evaluated (``codes``: rows ``todo`` of ``kids``, ascending); a copy of its parent
    keeps the parent's node, an offspring re-evaluated after the training set grew is encoded."""
    if engine.brain is None:
        return
    new = np.sort(best[kids.node[best] < 0])
    pos = np.minimum(np.searchsorted(todo, new), max(todo.size - 1, 0))
    here = todo[pos] == new if todo.size else np.zeros(new.size, bool)
    materialize(engine, kids, new[here], codes.take(pos[here]))
    materialize(engine, kids, new[~here])


def materialize_solution(engine, rows: Rows) -> None:
    """The solution found among ``rows`` lives on: its row's node, now."""
    solved = engine.solved
    if engine.brain is None or solved is None or getattr(solved, "node", -1) >= 0:
        return
    hit = np.flatnonzero(rows.uid == solved.uid)[:1]
    materialize(engine, rows, hit)
    if hit.size:
        solved.node = int(rows.node[hit[0]])


def materialize_population(engine) -> None:
    """Nodes for every evaluated row of the population without one (after a re-evaluation,
    immigrants, a restart) and for the solution if it has none."""
    if engine.brain is None:
        return
    rows = engine.rows
    materialize(engine, rows, np.flatnonzero((rows.node < 0) & ~np.isnan(rows.cost)))
    solved = engine.solved
    if solved is not None and getattr(solved, "node", -1) < 0:
        hit = np.flatnonzero(rows.uid == solved.uid)
        if hit.size:
            solved.node = int(rows.node[hit[0]])
        else:
            one = Rows.from_individuals([solved], rows.genes.shape[1], rows.errors.shape[1])
            materialize(engine, one, np.zeros(1, np.int64))
            solved.node = int(one.node[0])
    engine._pop_view = None
