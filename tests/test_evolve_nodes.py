"""Tests of when genomes become EXEC nodes in the generation loop, and of the state they get."""
from __future__ import annotations

import numpy as np

from core.brain import Brain
from evolve.config import RunConfig
from evolve.engine import build


def test_survivors_nodes_hold_the_state_of_a_node_made_at_evaluation():
    """Check that every population row's EXEC node has exactly the success, threshold,
    executions and outcomes of a node made when the row was evaluated (its parents' prior) and
    reinforced with its executions, as the engine did before offspring state lived in arrays."""
    engine = build(RunConfig(task="avg", pop=80, generations=6, time_limit=None, backend="emulated", seed=5,
                             init_len=12, stop_when_solved=False))
    reference = Brain(params=engine.brain.params)
    expected: dict[int, tuple] = {}       # uid -> the reference node's statistics
    evaluate, run = engine._evaluate_rows, engine.evaluator.run_pinned
    seen = []

    def run_spy(*args, **kw):
        out = run(*args, **kw)
        seen.append(out[1])
        return out

    def evaluate_spy(rows, idx=None, fresh=None, codes=None):
        idx = np.arange(len(rows)) if idx is None else np.asarray(idx, np.int64)
        prior, uids = rows.prior[idx].copy(), rows.uid[idx].tolist()
        seen.clear()
        batch = evaluate(rows, idx, fresh, codes)
        if idx.size:
            p = reference.params
            prior = np.where(np.isnan(prior), [p.initial_success, p.initial_threshold], prior)
            ids = reference.add_exec_nodes([b""] * idx.size, success_rate=prior[:, 0], threshold_ratio=prior[:, 1])
            reference.reinforce(ids, seen[-1], link=False)
            st = reference.node_stats(ids)
            for k, uid in enumerate(uids):
                expected[uid] = (st["success_rate"][k], st["threshold_ratio"][k], st["executions"][k],
                                 st["outcomes"][k].copy())
        return batch

    engine.evaluator.run_pinned = run_spy
    engine._evaluate_rows = evaluate_spy
    engine.start()
    for _ in range(5):
        engine.step()
    rows, brain = engine.rows, engine.brain
    assert (rows.node >= 0).all()
    checked = 0
    for i, uid in enumerate(rows.uid.tolist()):
        if uid not in expected:          # a copy of its parent shares the parent's node
            continue
        st = brain.node_stats([rows.node[i]])
        s, t, runs, outcomes = expected[uid]
        assert st["success_rate"][0] == s and st["threshold_ratio"][0] == t
        assert st["executions"][0] == runs and (st["outcomes"][0] == outcomes).all()
        checked += 1
    assert checked > len(rows) // 2
    # only genomes that live on hold nodes: the population and the hall of fame
    alive = set(rows.node.tolist()) | {ind.node for ind in engine.hof}
    alive |= {engine.solved.node} if engine.solved is not None else set()
    assert set(brain.exec_table()["node"].tolist()) == alive
    assert all(ind.node >= 0 for ind in engine.hof)
