"""Tests of brain files: round trip, atomic writes, rejection of damaged files."""
from __future__ import annotations

import os
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import core.brain.file as brain_file
from core.brain import Brain, BrainParams
from core.brain.file import BrainFileError
from core.outcome import Outcome

DATA = Path(__file__).parent / "data"


def _trained_brain() -> Brain:
    rng = np.random.default_rng(5)
    brain = Brain(3000)
    ids = brain.add_exec_nodes([b"\x20\x00\x01\x8b", bytes(4), b"abcdefgh"],
                               node_ids=[2000, 2001, 2002], offsets=[1024, 1544, 2064],
                               success_rate=[1.0, 0.0, 0.0])
    brain.set_edges(rng.integers(0, 3000, 500), rng.integers(0, 3000, 500), 0.3)
    for _ in range(20):
        brain.feed(rng.integers(60, 70, 12, dtype=np.uint8).tobytes())
        brain.step()
        brain.reinforce(ids, np.array([[0], [1], [2]], np.uint8))
    brain.observe_genes(ids, [[1, 2, 3], [4, 5], [1, 2]], np.array([[0], [1], [3]], np.uint8))
    return brain


def _small_brain() -> Brain:
    """A brain in a few KB that fills every stored array: edges, EXEC columns, both pattern
    tables with their pattern -> EXEC edges (no ``step``: propagation is a fastmath kernel whose
    sums may differ in the last bit between machines)."""
    base = BrainParams()
    params = BrainParams(byte_patterns=replace(base.byte_patterns, capacity=32, candidate_bits=4),
                         gene_patterns=replace(base.gene_patterns, capacity=32, candidate_bits=4))
    brain = Brain(300, params)
    ids = brain.add_exec_nodes([b"\x20\x00\x01\x8b", bytes(4)], node_ids=[280, 281],
                               success_rate=[1.0, 0.0])
    brain.set_edges([1, 2, 65], [280, 281, 280], 0.5)
    for chunk in (b"ABAB", b"ABAB", b"CDCD"):
        brain.feed(chunk)
        brain.reinforce(ids, np.array([[0, 0], [1, 3]], np.uint8))
    brain.observe_genes(ids, [[1, 2, 3], [4, 5]], np.array([[0], [1]], np.uint8), link=True)
    return brain


def _assert_same(a: Brain, b: Brain) -> None:
    for name in ("kind", "activation", "exec_slot", "indptr", "indices", "weights", "port_value"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for key, val in a.exec_table().items():
        np.testing.assert_array_equal(val, b.exec_table()[key], err_msg=key)
    assert a.code_blob == b.code_blob
    for ta, tb in ((a.byte_patterns, b.byte_patterns), (a.gene_patterns, b.gene_patterns)):
        for name, arr in ta.to_arrays()[1].items():
            np.testing.assert_array_equal(arr, tb.to_arrays()[1][name], err_msg=name)


def test_round_trip_and_continue(tmp_path):
    """Check that a loaded brain equals the saved one and keeps learning identically."""
    brain = _trained_brain()
    path = tmp_path / "b.brain"
    brain.save(path, {"run": "r1"})
    loaded = Brain.load(path)
    _assert_same(brain, loaded)
    assert loaded.metadata == {"run": "r1"} and loaded.crashes_handled == brain.crashes_handled
    for b in (brain, loaded):
        b.feed(b"ABABAB")
        b.step()
        fired = b.fire()
        b.reinforce(fired, np.zeros((fired.size, 1), np.uint8))
        b.reinforce([2001], np.array([[2]], np.uint8))
        b.observe_genes(None, [[1, 2, 9]], np.array([[1]], np.uint8))
    _assert_same(brain, loaded)


def test_atomic_replace_leaves_no_temp(tmp_path):
    """Check that saving over a file replaces it and leaves no temporary file behind."""
    path = tmp_path / "b.brain"
    Brain().save(path)
    first = path.read_bytes()
    _trained_brain().save(path)
    assert path.read_bytes() != first
    assert os.listdir(tmp_path) == ["b.brain"]


def test_failed_write_keeps_old_file(tmp_path):
    """Check that a save that fails (unstorable metadata) leaves the old file untouched."""
    path = tmp_path / "b.brain"
    Brain().save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        Brain().save(path, {"bad": object()})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["b.brain"]


def _damaged(tmp_path, blob: bytes):
    path = tmp_path / "d.brain"
    path.write_bytes(blob)
    with pytest.raises(BrainFileError) as info:
        Brain.load(path)
    assert path.read_bytes() == blob
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_truncated_file_rejected(tmp_path):
    """Check that truncated brain files (at several lengths) raise BrainFileError."""
    blob = brain_file.encode(*_encode_args())
    for cut in (0, 5, 20, len(blob) // 2, len(blob) - 1):
        _damaged(tmp_path, blob[:cut])


def test_corrupt_file_rejected(tmp_path):
    """Check that a flipped byte in the data is caught by the checksum."""
    blob = bytearray(brain_file.encode(*_encode_args()))
    blob[len(blob) // 2] ^= 0x40
    assert "checksum" in _damaged(tmp_path, bytes(blob))


def test_wrong_version_rejected(tmp_path):
    """Check that another format version is refused with a message naming the version."""
    blob = bytearray(brain_file.encode(*_encode_args()))
    struct.pack_into("<I", blob, 8, 99)
    assert "version 99" in _damaged(tmp_path, bytes(blob))


def test_not_a_brain_rejected(tmp_path):
    """Check that foreign files and well-formed files of another kind are refused."""
    _damaged(tmp_path, b"PK\x03\x04" + bytes(100))
    _damaged(tmp_path, brain_file.encode({"kind": "something"}, {"x": np.zeros(3)}))


def test_inconsistent_arrays_rejected(tmp_path):
    """Check that a checksummed file whose arrays contradict each other is refused."""
    meta, arrays = _encode_args()
    arrays["exec/exec_offset"] = arrays["exec/exec_offset"] + 10**6
    assert "inconsistent" in _damaged(tmp_path, brain_file.encode(meta, arrays))


def test_object_arrays_refused():
    """Check that object dtypes cannot be written (no pickle in brain files)."""
    with pytest.raises(TypeError):
        brain_file.encode({}, {"x": np.array([object()])})


def _encode_args():
    meta, arrays = _trained_brain().to_arrays()
    return meta, dict(arrays)


def test_seed_from_keeps_proven_code(tmp_path):
    """Check that a new brain seeded from a file holds only the proven code and gene stats."""
    brain = _trained_brain()
    path = tmp_path / "b.brain"
    brain.save(path)
    new = Brain.seed_from(path, min_success=0.9)
    assert new.n_exec == 1
    assert new.codes(new.exec_node[:1]) == [b"\x20\x00\x01\x8b"]
    assert new.exec_table()["success_rate"][0] == pytest.approx(1.0)
    assert new.exec_table()["executions"][0] == 0
    assert new.gene_patterns.find([1, 2]) >= 0 and len(new.byte_patterns) == 0
    assert new.crashes_handled == 0 and Outcome.OK == 0


def test_version_1_file_loads_with_old_names():
    """Check that a version-1 file (old array names, written by _small_brain under the code
    before the renaming) loads as the brain the same calls build now."""
    path = DATA / "brain_v1.melvin"
    assert struct.unpack_from("<I", path.read_bytes(), 8) == (1,)
    _, arrays = brain_file.read(path)
    assert "exec/threshold_ratio" in arrays and "genes/threshold_ratio" in arrays
    assert not any(name.endswith(("/pthr", "/exec_threshold")) for name in arrays)
    loaded = Brain.load(path)
    _assert_same(_small_brain(), loaded)
    assert loaded.metadata == {"written_by": "version 1"}


def test_current_version_written(tmp_path):
    """Check that a saved brain is a version-2 file with one name for the threshold ratio."""
    path = tmp_path / "b.brain"
    _small_brain().save(path)
    assert struct.unpack_from("<I", path.read_bytes(), 8) == (brain_file.VERSION,) == (2,)
    _, arrays = brain_file.read(path)
    assert {"exec/threshold_ratio", "bytes/threshold_ratio", "genes/success_rate"} <= set(arrays)
