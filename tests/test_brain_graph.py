"""Tests of the brain's graph: EXEC registration, propagation, firing selection, error flow."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from core.brain import Brain, BrainParams
from core.brain.graph import ERROR_PORT, EXEC, FREE, NEGATIVE_PORT
from core.outcome import Outcome


def _random_brain(seed: int, n_nodes: int = 600, n_exec: int = 120, n_edges: int = 3000):
    rng = np.random.default_rng(seed)
    brain = Brain(n_nodes)
    ids = rng.choice(np.arange(256, n_nodes), n_exec, replace=False)
    brain.add_exec_nodes([bytes(4)] * n_exec, node_ids=ids,
                         threshold_ratio=rng.uniform(0.1, 3.0, n_exec))
    brain.set_edges(rng.integers(0, n_nodes, n_edges), rng.integers(0, n_nodes, n_edges),
                    rng.uniform(-0.2, 0.5, n_edges))
    act = rng.exponential(1.0, n_nodes).astype(np.float32)
    act[rng.random(n_nodes) < 0.4] = 0.0
    brain.activation[:] = act
    return brain, rng


def _reference_firing(brain: Brain) -> list[int]:
    """Plain Python: mean over active nodes, then activation > threshold_ratio * mean."""
    eps = brain.params.active_eps
    active = [float(a) for a in brain.activation if a > eps]
    mean = sum(active) / len(active) if active else 0.0
    fired = []
    for e in range(brain.n_exec):
        node = int(brain.exec_node[e])
        a = float(brain.activation[node])
        if a > eps and a > float(brain.threshold_ratio[e]) * mean:
            fired.append(node)
    return sorted(fired)


@pytest.mark.parametrize("seed", range(6))
def test_firing_matches_reference(seed):
    """Check that firing selection equals a plain-Python reference on random graphs."""
    brain, _ = _random_brain(seed)
    for _ in range(3):
        got = sorted(brain.firing().tolist())
        assert got == _reference_firing(brain)
        brain.step()
    assert brain.mean_activation() > 0.0


def test_firing_depends_on_threshold():
    """Check that of two equally active nodes only the one with a low threshold fires."""
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)] * 2, threshold_ratio=[0.1, 3.0])
    brain.activation[ids] = 1.0
    brain.activation[:10] = 1.0  # mean stays 1.0: 1.0 > 0.1 but not > 3.0
    assert brain.firing().tolist() == [ids[0]]


def test_fire_spends_activation():
    """Check that fire() zeroes the fired nodes' activation and leaves the others."""
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)] * 2, threshold_ratio=[0.1, 3.0])
    brain.activation[ids] = 1.0
    brain.activation[:10] = 1.0
    assert brain.fire().tolist() == [ids[0]]
    assert brain.activation[ids].tolist() == [0.0, 1.0]


def test_propagation_matches_scipy():
    """Check that a step equals keep*a + A @ a (incoming CSR), floored at zero."""
    brain, _ = _random_brain(7)
    n = brain.n_nodes
    src = brain.indices.astype(np.int64)
    dst = np.repeat(np.arange(n), np.diff(brain.indptr))
    mat = sp.csr_matrix((brain.weights.astype(np.float64), (dst, src)), shape=(n, n))
    a = brain.activation.astype(np.float64)
    keep = brain.params.keep
    expected = np.maximum(keep * a + mat @ a, 0.0)
    brain.step()
    np.testing.assert_allclose(brain.activation, expected, rtol=1e-5, atol=1e-5)


def test_step_decays_without_edges():
    """Check that with no edges activation decays by the keep factor each step."""
    brain = Brain(params=BrainParams(keep=0.25))
    brain.activation[3] = 2.0
    brain.step()
    brain.step()
    assert brain.activation[3] == pytest.approx(2.0 * 0.25 ** 2)


def test_crash_feeds_error_ports():
    """Check that each crash feeds 0xFF on port 250 at 1.0 and on port 31 at 0.8."""
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)] * 2)
    out = np.array([[Outcome.OK, Outcome.SIGILL, Outcome.SIGSEGV],
                    [Outcome.TIMEOUT, Outcome.OK, Outcome.OK]], np.uint8)
    assert brain.reinforce(ids, out) == 3
    assert brain.activation[ERROR_PORT] == pytest.approx(3.0)
    assert brain.activation[NEGATIVE_PORT] == pytest.approx(2.4)
    assert brain.port_value[ERROR_PORT] == 0xFF and brain.port_value[NEGATIVE_PORT] == 0xFF
    assert brain.crashes_handled == 3


def test_success_feeds_no_error():
    """Check that successful executions leave the error ports silent."""
    brain = Brain()
    ids = brain.add_exec_nodes([bytes(4)])
    brain.reinforce(ids, np.zeros((1, 8), np.uint8))
    assert brain.activation[ERROR_PORT] == 0.0 and brain.activation[NEGATIVE_PORT] == 0.0


def test_feed_lights_ports_by_byte():
    """Check that feeding a byte stream puts each byte on its own port."""
    brain = Brain()
    brain.feed(b"\x05\x05\x07")
    assert brain.activation[5] == pytest.approx(2.0) and brain.activation[7] == pytest.approx(1.0)
    assert brain.activation[6] == 0.0


def test_exec_registration_and_code_blob():
    """Check that EXEC nodes keep their code at the given offsets and reject overlaps."""
    brain = Brain(2100)
    codes = [b"\x20\x00\x01\x8b", b"\x00\x00\x00\x00\x00\x00\x00\x00"]
    ids = brain.add_exec_nodes(codes, node_ids=[2000, 2001], offsets=[1024, 1544])
    assert brain.codes(ids) == codes and brain.code(2001) == codes[1]
    t = brain.exec_table()
    assert t["offset"].tolist() == [1024, 1544] and t["length"].tolist() == [4, 8]
    assert np.all(brain.kind[ids] == EXEC)
    with pytest.raises(ValueError):
        brain.add_exec_nodes([bytes(8)], node_ids=[2002], offsets=[1540])
    with pytest.raises(ValueError):
        brain.add_exec_nodes([bytes(4)], node_ids=[2000])
    with pytest.raises(ValueError):
        brain.add_exec_nodes([bytes(4)], node_ids=[12])
    more = brain.add_exec_nodes([b"abcd"] * 3)  # free nodes first
    assert more.tolist() == [256, 257, 258] and brain.codes(more) == [b"abcd"] * 3
    brain.add_exec_nodes([b"abcd"] * int(np.count_nonzero(brain.kind == FREE)))
    assert brain.add_exec_nodes([b"efgh"]).tolist() == [2100]


def test_remove_and_compact():
    """Check that removed EXEC nodes become free and compaction keeps the survivors' code."""
    brain = Brain()
    codes = [bytes([i]) * 4 for i in range(5)]
    ids = brain.add_exec_nodes(codes)
    brain.reinforce(ids[3:4], np.ones((1, 2), np.uint8))
    brain.remove_exec_nodes(ids[[0, 2]])
    assert brain.n_exec == 3 and np.all(brain.kind[ids[[0, 2]]] == FREE)
    with pytest.raises(ValueError):
        brain.code(int(ids[0]))
    brain.compact_code()
    assert brain.codes(ids[[1, 3, 4]]) == [codes[1], codes[3], codes[4]]
    assert len(brain.code_blob) < 5 * 8
    assert brain.exec_table()["executions"][brain.slots_of([ids[3]])[0]] == 2


def test_parallel_step_matches_serial():
    """Check that the multi-threaded propagation gives the serial result."""
    a, _ = _random_brain(11)
    b, _ = _random_brain(11)
    a.step()
    b.step(parallel=True)
    np.testing.assert_allclose(a.activation, b.activation, rtol=1e-6, atol=1e-7)


def test_set_csr_validates():
    """Check that adopting CSR arrays rejects inconsistent ones and keeps valid ones."""
    brain = Brain(300)
    indptr = np.zeros(301, np.int64)
    indptr[5:] = 2
    brain.set_csr(indptr, np.array([1, 2], np.int32), np.array([0.5, 0.25], np.float32))
    assert brain.edges()[1].tolist() == [4, 4]
    with pytest.raises(ValueError):
        brain.set_csr(indptr, np.array([1, 300], np.int32), np.ones(2, np.float32))
    with pytest.raises(ValueError):
        brain.set_csr(indptr[:-1], np.array([1, 2], np.int32), np.ones(2, np.float32))


def test_genome_churn_reuses_nodes_and_code_space():
    """Check that removing and adding genomes reuses node ids and keeps the blob bounded."""
    brain = Brain()
    rng = np.random.default_rng(0)
    ids = brain.add_exec_nodes([bytes(64)] * 100)
    brain.listen_to_ports(ids, 4, rng)
    for gen in range(30):
        brain.remove_exec_nodes(ids[::2])
        assert brain.n_edges == 4 * brain.n_exec
        new = brain.add_exec_nodes([bytes([gen]) * 64] * 50)
        brain.listen_to_ports(new, 4, rng)
        assert set(new.tolist()) == set(ids[::2].tolist())
        ids = brain.exec_node[:brain.n_exec].astype(np.int64)
    assert brain.n_nodes == 256 + 100
    assert len(brain.code_blob) <= 2 * 100 * 64 + 4096
    assert brain.codes(new) == [bytes([29]) * 64] * 50
