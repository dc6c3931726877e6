"""Brain files: named arrays plus JSON metadata, versioned, checksummed, written atomically.

Format, version 1 (all integers little-endian)::

    offset  size  content
    0       8     magic b"MELVBRN\\x00"
    8       4     uint32 format version (1)
    12      4     uint32 H, length of the header
    16      H     header, UTF-8 JSON: {"meta": {...}, "arrays": [{"name", "dtype", "shape",
                  "offset", "nbytes"}, ...]}; offsets are relative to the data section
    ...     pad   zero bytes up to a multiple of 64
    D       ...   data section: each array's C-order bytes at its offset (64-byte aligned)
    end-32  32    SHA-256 of every byte before it

Only plain numeric dtypes are accepted (no objects, no pickle). A file that is truncated,
corrupt, of another version, or not a brain file raises :class:`BrainFileError` (a
``ValueError``) and is never modified. Writing goes to a temporary file in the same directory,
is flushed to disk, then renamed over the target with ``os.replace``, so a reader sees either the
old file or the new one.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from core.atomic import atomic_write

MAGIC = b"MELVBRN\x00"
VERSION = 1
_ALIGN = 64
_PREFIX = struct.Struct("<8sII")
_DIGEST = 32
_DTYPES = {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"}


class BrainFileError(ValueError):
    """The file is not a readable brain file of this version; it has not been modified."""


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for ``meta`` (JSON-able) and ``arrays`` (name -> numeric array)."""
    entries = []
    chunks = []
    offset = 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dt, copy=False)
        if dt.str not in _DTYPES:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} is not storable")
        raw = arr.tobytes()
        entries.append({"name": name, "dtype": dt.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        chunks.append(b"\x00" * _pad(len(raw)))
        offset += len(raw) + _pad(len(raw))
    header = json.dumps({"meta": meta, "arrays": entries}, sort_keys=True).encode()
    head = _PREFIX.pack(MAGIC, VERSION, len(header)) + header
    body = head + b"\x00" * _pad(len(head)) + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def decode(blob: bytes, source: str = "<bytes>") -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`encode`; every check failure raises :class:`BrainFileError`."""
    if len(blob) < _PREFIX.size + _DIGEST:
        raise BrainFileError(f"{source}: truncated ({len(blob)} bytes) or not a brain file")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise BrainFileError(f"{source}: not a brain file (bad magic {magic!r})")
    if version != VERSION:
        raise BrainFileError(f"{source}: brain file version {version}, this Melvin reads "
                             f"version {VERSION}")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise BrainFileError(f"{source}: checksum mismatch (file truncated or corrupt)")
    start = _PREFIX.size
    if start + hlen > len(body):
        raise BrainFileError(f"{source}: header runs past the end of the file")
    try:
        header = json.loads(body[start:start + hlen].decode())
        meta = header["meta"]
        entries = header["arrays"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BrainFileError(f"{source}: unreadable header ({exc})") from None
    data = start + hlen + _pad(start + hlen)
    arrays: dict[str, np.ndarray] = {}
    try:
        for e in entries:
            dt = np.dtype(e["dtype"]) if e["dtype"] in _DTYPES else None
            if dt is None:
                raise BrainFileError(f"{source}: array {e['name']!r} has dtype {e['dtype']!r}")
            shape = tuple(int(x) for x in e["shape"])
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            lo = data + int(e["offset"])
            if nbytes != e["nbytes"] or min(shape, default=0) < 0 or lo < data \
                    or lo + nbytes > len(body):
                raise BrainFileError(f"{source}: array {e['name']!r} lies outside the file")
            arrays[str(e["name"])] = np.frombuffer(body, dt, nbytes // dt.itemsize if dt.itemsize
                                                   else 0, lo).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BrainFileError):
            raise
        raise BrainFileError(f"{source}: bad array directory ({exc})") from None
    return meta, arrays


def write(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: temporary file in the target's directory, fsync, ``os.replace``."""
    atomic_write(path, encode(meta, arrays))


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a brain file; raises :class:`BrainFileError` on any defect."""
    with open(path, "rb") as fh:
        blob = fh.read()
    return decode(blob, str(path))


# ---------------------------------------------------------------------- brains
_NODE = ("kind", "activation", "port_value", "indptr", "indices", "weights")
_EXEC = ("exec_node", "exec_offset", "exec_length", "exec_success", "exec_threshold",
         "exec_runs", "exec_outcomes", "exec_result")


def save_brain(brain, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``brain`` (a :class:`core.brain.graph.Brain`) and JSON-able ``metadata`` to ``path``
    atomically (the bytes of :func:`brain_bytes`)."""
    atomic_write(path, brain_bytes(brain, metadata))


def brain_bytes(brain, metadata: dict | None = None) -> bytes:
    """The brain file's bytes for ``brain`` and JSON-able ``metadata`` (no file involved:
    island checkpoints travel as bytes)."""
    return encode(*brain_arrays(brain, metadata))


def brain_arrays(brain, metadata: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` a brain file stores for ``brain``.

    Arrays: ``node/*`` (kind, activation, port_value, CSR indptr/indices/weights), ``exec/*``
    (the EXEC columns, trimmed to ``n_exec``), ``code_blob`` (uint8), ``bytes/*`` and
    ``genes/*`` (the two pattern tables). Metadata: ``kind`` = "melvin-brain", ``params``,
    counters, the pattern tables' configs and the caller's ``user`` dict.
    """
    n = brain.n_exec
    arrays = {f"node/{k}": getattr(brain, k) for k in _NODE}
    arrays.update({f"exec/{k}": getattr(brain, k)[:n] for k in _EXEC})
    arrays["code_blob"] = np.frombuffer(bytes(brain.code_blob), np.uint8)
    meta = {"kind": "melvin-brain", "params": brain.params.to_json(), "n_exec": n,
            "crashes_handled": int(brain.crashes_handled), "steps": int(brain.steps),
            "user": metadata or {}}
    for prefix, table in (("bytes", brain.byte_patterns), ("genes", brain.gene_patterns)):
        tmeta, tarrays = table.to_arrays()
        meta[f"{prefix}_patterns"] = tmeta
        arrays.update({f"{prefix}/{k}": v for k, v in tarrays.items()})
    return meta, arrays


def load_brain(path: str | os.PathLike):
    """Read a brain file into a new :class:`core.brain.graph.Brain` (metadata in ``brain.metadata``).

    Every inconsistency (shapes, ids, code ranges, parameters) raises :class:`BrainFileError`.
    """
    with open(path, "rb") as fh:
        return brain_from_bytes(fh.read(), str(path))


def brain_from_bytes(blob: bytes, source: str = "<bytes>"):
    """:func:`load_brain` for a brain file's bytes."""
    meta, arrays = decode(blob, source)
    try:
        return _build(meta, arrays)
    except BrainFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BrainFileError(f"{source}: inconsistent brain file ({type(exc).__name__}: {exc})"
                             ) from None


def _build(meta: dict, arrays: dict[str, np.ndarray]):
    from core.brain.graph import EXEC, N_PORTS, PORT, Brain, BrainParams
    from core.brain.patterns import PatternTable
    from core.outcome import N_OUTCOMES

    if meta.get("kind") != "melvin-brain":
        raise ValueError("not a brain (metadata kind)")
    params = BrainParams.from_json(meta["params"])
    kind = arrays["node/kind"]
    n = kind.shape[0]
    brain = Brain(max(n, N_PORTS), params)
    if n < N_PORTS or kind.dtype != np.uint8 or kind.max() > EXEC \
            or np.any(kind[:N_PORTS] != PORT):
        raise ValueError("node kinds are inconsistent")
    for k in _NODE:
        ref = getattr(brain, k)
        arr = arrays[f"node/{k}"]
        if arr.dtype != ref.dtype or arr.ndim != ref.ndim:
            raise ValueError(f"node/{k} has dtype {arr.dtype}, shape {arr.shape}")
        setattr(brain, k, arr)
    indptr, indices = brain.indptr, brain.indices
    if brain.activation.shape != (n,) or indptr.shape != (n + 1,) or indptr[0] != 0 \
            or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.size \
            or brain.weights.shape != indices.shape or brain.port_value.shape != (N_PORTS,):
        raise ValueError("CSR arrays are inconsistent")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError("edge sources out of range")
    brain._scratch = np.zeros(n, np.float32)
    m = int(meta["n_exec"])
    for k in _EXEC:
        arr = arrays[f"exec/{k}"]
        ref = getattr(brain, k)
        if arr.dtype != ref.dtype or arr.shape[0] != m or arr.shape[1:] != ref.shape[1:]:
            raise ValueError(f"exec/{k} has dtype {arr.dtype}, shape {arr.shape}")
        setattr(brain, k, arr)
    if brain.exec_outcomes.shape[1] != N_OUTCOMES:
        raise ValueError("outcome classes differ")
    brain.n_exec = m
    blob = arrays["code_blob"]
    nodes = brain.exec_node.astype(np.int64)
    if m and (nodes.min() < N_PORTS or nodes.max() >= n or np.unique(nodes).size != m
              or np.any(kind[nodes] != EXEC) or np.count_nonzero(kind == EXEC) != m
              or brain.exec_offset.min() < 0 or brain.exec_length.min() < 0
              or (brain.exec_offset + brain.exec_length).max() > blob.size):
        raise ValueError("EXEC table is inconsistent")
    brain.code_blob = bytearray(blob.tobytes())
    brain.exec_slot = np.full(n, -1, np.int32)
    brain.exec_slot[nodes] = np.arange(m, dtype=np.int32)
    brain.crashes_handled = int(meta["crashes_handled"])
    brain.steps = int(meta["steps"])
    for prefix, attr in (("bytes", "byte_patterns"), ("genes", "gene_patterns")):
        sub = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
        table = PatternTable.from_arrays(meta[f"{prefix}_patterns"], sub, brain.rule)
        table.forget_nodes(kind != EXEC)
        setattr(brain, attr, table)
    brain.metadata = meta.get("user", {})
    return brain
