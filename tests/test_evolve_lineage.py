"""Tests of the lineage records kept as arrays (evolve.lineage)."""
from __future__ import annotations

import numpy as np

from evolve.lineage import Lineage


def _reference_prune(records: dict, alive: set, horizon: int) -> dict:
    """The dict walk the engine did before the records were arrays."""
    keep, todo = set(), list(alive)
    while todo:
        uid = todo.pop()
        if uid in keep or uid not in records or (records[uid][2] < horizon and uid not in alive):
            continue
        keep.add(uid)
        todo.extend(records[uid][0])
    return {uid: rec for uid, rec in records.items() if uid in keep}


def test_lineage_reads_and_writes_as_the_dict_it_replaces():
    """Check that batches, single writes (a later one wins) and deletes read back as a dict would."""
    lin, ref = Lineage(), {}
    lin.add(1, np.full((3, 2), -1), lin.codes(["init"] * 3), 0, np.array([4, 5, 6]))
    ref.update({1: ((), "init", 0, 4), 2: ((), "init", 0, 5), 3: ((), "init", 0, 6)})
    lin.add(4, np.array([[1, -1], [2, 3]]), lin.codes(["mut_tweak", "cx_one_point"]), 1, np.array([7, 8]))
    ref.update({4: ((1,), "mut_tweak", 1, 7), 5: ((2, 3), "cx_one_point", 1, 8)})
    lin[4] = ((3,), "optimize", 1, 2)
    ref[4] = ((3,), "optimize", 1, 2)
    del lin[2], ref[2]
    assert dict(lin.items()) == ref and lin == ref and len(lin) == 4 and 2 not in lin and 5 in lin
    assert lin.get(99, ((), "init")) == ((), "init") and list(lin) == sorted(ref)
    assert Lineage(ref) == ref


def test_prune_keeps_what_the_dict_walk_kept():
    """Check the pruning kernel against the dict walk on a random genealogy."""
    rng = np.random.default_rng(7)
    lin, ref, uid = Lineage(), {}, 0
    for gen in range(60):
        n = 30
        parents = np.full((n, 2), -1, np.int64)
        if uid:
            parents[:, 0] = rng.integers(max(1, uid - 60), uid + 1, n)
            two = rng.random(n) < 0.5
            parents[two, 1] = rng.integers(max(1, uid - 60), uid + 1, int(two.sum()))
        lengths = rng.integers(1, 16, n)
        lin.add(uid + 1, parents, lin.codes(["x"] * n), gen, lengths)
        for k in range(n):
            ref[uid + 1 + k] = (tuple(int(p) for p in parents[k] if p >= 0), "x", gen, int(lengths[k]))
        uid += n
    alive = set(rng.choice(np.arange(uid - 60, uid + 1), 20, replace=False).tolist())
    lin.prune(np.array(sorted(alive)), horizon=30)
    want = _reference_prune(ref, alive, 30)
    assert lin == want and 0 < len(want) < len(ref)
