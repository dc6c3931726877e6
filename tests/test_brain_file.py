"""Tests of brain files: round trip, atomic writes, rejection of damaged files, old versions."""
from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as stn

import core.brain.file as brain_file
import core.brain.pattern_kernels as pk
from core.brain import Brain, BrainParams, PatternConfig
from core.brain.file import BrainFileError
from core.brain.patterns import STATE_ARRAYS, PatternTable
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
    sums may differ in the last bit between machines). Gene patterns start at 0.1, as they did
    when the version 1 and 2 fixtures were written."""
    base = BrainParams()
    params = BrainParams(gene_initial_threshold=0.1, byte_patterns=replace(base.byte_patterns, capacity=32, candidate_bits=4),
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
        for name in STATE_ARRAYS + ("index",):  # the full-capacity tables, not just the file's
            np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name), err_msg=name)
        assert ta.to_arrays()[0] == tb.to_arrays()[0]


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


def _tensor_offsets(blob: bytes) -> dict[str, tuple[int, int]]:
    """Absolute ``(start, end)`` of each tensor's bytes in a safetensors blob."""
    (n,) = struct.unpack_from("<Q", blob)
    header = json.loads(blob[8:8 + n])
    return {name: (8 + n + e["data_offsets"][0], 8 + n + e["data_offsets"][1])
            for name, e in header.items() if name != "__metadata__"}


def _resave(blob: bytes, **metadata) -> bytes:
    """The blob's tensors saved again with its metadata updated by ``metadata``."""
    (n,) = struct.unpack_from("<Q", blob)
    info = json.loads(blob[8:8 + n])["__metadata__"]
    return stn.save(stn.load(blob), metadata={**info, **metadata})


def test_truncated_file_rejected(tmp_path):
    """Check that truncated brain files (at several lengths) raise BrainFileError."""
    blob = brain_file.encode(*_encode_args())
    start, _ = _tensor_offsets(blob)["genes/count"]
    for cut in (0, 5, 8, 20, start, len(blob) // 2, len(blob) - 1):
        assert "truncated" in _damaged(tmp_path, blob[:cut])
    _damaged(tmp_path, blob + b"\x00")


@pytest.mark.parametrize("name", ["code_blob", "genes/threshold_ratio", "bytes/meta",
                                  "exec/exec_outcomes", "node/kind"])
def test_tampered_tensor_rejected(tmp_path, name):
    """Check that one flipped byte in a tensor is caught by the checksum."""
    blob = bytearray(brain_file.encode(*_encode_args()))
    start, end = _tensor_offsets(bytes(blob))[name]
    assert end > start
    blob[(start + end) // 2] ^= 0x40
    message = _damaged(tmp_path, bytes(blob))
    assert "checksum" in message and "\n" not in message


def test_tampered_metadata_rejected(tmp_path):
    """Check that changed metadata (valid JSON, same tensors) is caught by the checksum."""
    meta, arrays = _encode_args()
    blob = brain_file.encode(meta, arrays)
    other = json.dumps(dict(meta, crashes_handled=meta["crashes_handled"] + 1), sort_keys=True)
    assert "checksum" in _damaged(tmp_path, _resave(blob, meta=other))
    assert "checksum" in _damaged(tmp_path, _resave(blob, sha256="0" * 64))


def test_wrong_version_rejected(tmp_path):
    """Check that another format version is refused with a message naming the version, in
    safetensors and in the old layout."""
    blob = brain_file.encode(*_encode_args())
    assert "version 99" in _damaged(tmp_path, _resave(blob, version="99"))
    old = bytearray((DATA / "brain_v2.melvin").read_bytes())
    struct.pack_into("<I", old, 8, 99)
    assert "version 99" in _damaged(tmp_path, bytes(old))


def test_not_a_brain_rejected(tmp_path):
    """Check that foreign files, foreign safetensors files and well-formed files of another
    kind are refused."""
    _damaged(tmp_path, b"PK\x03\x04" + bytes(100))
    _damaged(tmp_path, bytes(100))
    assert "not a Melvin brain" in _damaged(tmp_path, stn.save({"x": np.zeros(3)}))
    assert "not a Melvin brain" in _damaged(
        tmp_path, stn.save({"x": np.zeros(3)}, metadata={"format": "pt"}))
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


def test_version_2_file_loads():
    """Check that a version-2 file (written by _small_brain before brain files moved to
    safetensors) loads as the brain the same calls build now."""
    path = DATA / "brain_v2.melvin"
    assert path.read_bytes()[:8] == brain_file.MAGIC
    assert struct.unpack_from("<I", path.read_bytes(), 8) == (2,)
    loaded = Brain.load(path)
    _assert_same(_small_brain(), loaded)
    assert loaded.metadata == {"written_by": "version 2"}


@pytest.mark.parametrize("fixture", ["brain_v1.melvin", "brain_v2.melvin"])
def test_old_files_load_whatever_the_name(tmp_path, fixture):
    """Check that old files are recognised by their magic bytes, not by their extension, and
    that saving them again gives a version-3 file of the same brain."""
    path = tmp_path / "brain.safetensors"
    shutil.copyfile(DATA / fixture, path)
    loaded = Brain.load(path)
    _assert_same(_small_brain(), loaded)
    loaded.save(path)
    _assert_same(_small_brain(), Brain.load(path))
    assert path.read_bytes()[:8] != brain_file.MAGIC


def test_current_version_written(tmp_path):
    """Check that a saved brain is a version-3 safetensors file that plain safetensors reads,
    with Melvin's format, version, checksum and metadata in the safetensors metadata."""
    path = tmp_path / "brain.safetensors"
    _small_brain().save(path, {"run": "r1"})
    blob = path.read_bytes()
    (n,) = struct.unpack_from("<Q", blob)
    info = json.loads(blob[8:8 + n])["__metadata__"]
    assert set(info) == {"format", "version", "sha256", "meta"}
    assert info["format"] == "melvin-brain" and info["version"] == "3" == str(brain_file.VERSION)
    meta = json.loads(info["meta"])
    assert meta["user"] == {"run": "r1"} and meta["kind"] == "melvin-brain"
    plain = stn.load_file(str(path))
    assert info["sha256"] == brain_file.digest(info["meta"], plain)
    assert {"exec/threshold_ratio", "bytes/threshold_ratio", "genes/success_rate"} <= set(plain)
    meta2, arrays = brain_file.read(path)
    assert meta2 == meta and set(arrays) == set(plain)


def test_file_sized_by_contents(tmp_path):
    """Check that a brain with default (large) pattern tables but few patterns writes a small
    file: the used pattern slots and the non-zero candidate counters only."""
    brain = _trained_brain()
    assert brain.gene_patterns.config.capacity == 1 << 16
    path = tmp_path / "brain.safetensors"
    brain.save(path)
    held = sum(brain.nbytes().values())
    assert held > 4_000_000 and path.stat().st_size < 100_000
    _, arrays = brain_file.read(path)
    rows = int(brain.gene_patterns.meta[pk.M_USED])
    assert arrays["genes/length"].shape == (rows,) and arrays["genes/edge_node"].shape == (rows, 4)
    assert "genes/candidate_slot" in arrays and "genes/candidates" not in arrays


def _full_table() -> PatternTable:
    table = PatternTable(PatternConfig(capacity=64, n_min=2, n_max=3, candidate_bits=6))
    rng = np.random.default_rng(3)
    for _ in range(30):
        table.scan_stream(rng.integers(0, 16, 300, dtype=np.uint8).tobytes())
    return table


def test_full_table_round_trip():
    """Check that a table that has filled up and evicted (all rows stored, dense candidate
    counters) round-trips exactly and keeps learning identically."""
    table = _full_table()
    meta, arrays = table.to_arrays()
    assert table.evictions > 0 and meta["rows"] == 64 and "candidates" in arrays
    copy = PatternTable.from_arrays(meta, {k: v.copy() for k, v in arrays.items()}, table.rule)
    stream = np.random.default_rng(4).integers(0, 16, 500, dtype=np.uint8).tobytes()
    assert table.scan_stream(stream).tolist() == copy.scan_stream(stream).tolist()
    for name in STATE_ARRAYS + ("index",):
        np.testing.assert_array_equal(getattr(table, name), getattr(copy, name), err_msg=name)


def test_round_trip_behaves_identically(tmp_path):
    """Check that a brain through a file gives the same arrays again and the same results of
    the next kernels (gene weights, pattern scans, firing, reinforcement)."""
    brain = _trained_brain()
    path = tmp_path / "brain.safetensors"
    brain.save(path)
    loaded = Brain.load(path)
    m1, a1 = brain.to_arrays()
    m2, a2 = loaded.to_arrays()
    assert m1 == m2 and set(a1) == set(a2)
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name], err_msg=name)
    for a, b in zip(brain.gene_patterns.context_table(8), loaded.gene_patterns.context_table(8)):
        np.testing.assert_array_equal(a, b)
    for b in (brain, loaded):
        b.observe_genes(None, [[1, 2, 7], [7, 7]], np.array([[0], [2]], np.uint8))
        b.add_exec_nodes([b"\x00\x00\x80\xd2"])
        b.feed(b"ABABCD")
    np.testing.assert_array_equal(brain.firing(), loaded.firing())
    for (name, a), b in zip(brain.to_arrays()[1].items(), loaded.to_arrays()[1].values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
