"""Tests of the toolbox's hall of fame: HallOfFame.would_insert replays DEAP's update on costs."""
import numpy as np
import pytest
from deap import tools

from evolve.toolbox import hall_of_fame, new_individual


def _ind(rng, uid, cost, pool):
    genes = pool[rng.integers(len(pool))]
    ind = new_individual(genes, uid)
    ind.fitness.values = (cost,)
    return ind


@pytest.mark.parametrize("seed", range(6))
def test_would_insert_is_what_update_inserts(seed):
    """Check that updating with only the candidates would_insert names leaves the same hall
    (members, order, fitness) as DEAP's update with all of them, over rounds with tied costs
    and repeated genomes; and that every one named does enter."""
    rng = np.random.default_rng(seed)
    pool = [[(int(rng.integers(0, 9)), 1, 2, 3, int(rng.integers(0, 3)))] * int(rng.integers(1, 4))
            for _ in range(25)]                      # few distinct genomes: many similar candidates
    full, fast = hall_of_fame(10), hall_of_fame(10)
    uid = skipped = 0
    for _ in range(12):
        cands = []
        for _ in range(40):
            uid += 1
            cands.append(_ind(rng, uid, float(rng.integers(0, 12)) / 4, pool))   # ties
        keys = [np.asarray(c, np.int64).tobytes() for c in cands]
        picked = fast.would_insert([c.fitness.values[0] for c in cands], keys)
        before, was_empty = {id(x) for x in fast}, len(fast) == 0
        tools.HallOfFame.update(full, cands)
        fast.update([cands[j] for j in picked])
        assert [x.uid for x in fast] == [x.uid for x in full]
        assert [x.fitness.values for x in fast] == [x.fitness.values for x in full]
        entered = {id(x) for x in fast} - before
        assert len(picked) >= len(entered)
        assert len(picked) < len(cands) or was_empty
        skipped += len(cands) - len(picked)
    assert len(full) == 10 and skipped > 200



def test_rows_concat_take_equals_concat_of_takes():
    """Check that Rows.concat_take gives concat(a.take(ia), b.take(ib)) in every column, dtypes
    included (widths equal, and the padding path when they differ)."""
    from evolve.population import Rows
    rng = np.random.default_rng(2)

    def rows(n, width):
        r = Rows.new(rng.integers(0, 50, (n, width, 5)), rng.integers(1, width + 1, n), np.arange(n), 8)
        r.cost[:] = rng.random(n)
        r.errors[:] = rng.integers(0, 64, r.errors.shape)
        r.prior[:] = rng.random(r.prior.shape)
        r.tally[:] = rng.integers(0, 9, r.tally.shape)
        r.crashed[:] = rng.random(n) < 0.5
        return r
    for wa, wb in ((6, 6), (4, 6)):
        a, b = rows(20, wa), rows(30, wb)
        ia, ib = rng.integers(0, 20, 5), rng.permutation(30)[:25]
        got, want = Rows.concat_take(a, ia, b, ib), Rows.concat(a.take(ia), b.take(ib))
        for name in ("genes", "length", "uid", "cost", "errors", "exact", "crashed", "node", "prior", "tally"):
            x, y = getattr(got, name), getattr(want, name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y)
