"""The brain's state as plain arrays: node kinds, the array names and dtypes, CSR edges, the
code blob's layout, and the checks a state must pass before a brain adopts it.

Pure functions on arrays; :class:`core.brain.graph.Brain` owns the arrays and calls them. Names
of the arrays a brain gives and takes (``Brain.to_arrays`` / ``Brain.from_arrays``):

=====================  ======================  ==========================================
name                   dtype, shape            meaning
=====================  ======================  ==========================================
node/kind              uint8 [n_nodes]         FREE, PORT, INNER or EXEC
node/activation        float32 [n_nodes]       node activation (>= 0)
node/port_value        uint8 [256]             last byte seen on each port
node/indptr            int64 [n_nodes + 1]     CSR of incoming edges (row i = sources of i)
node/indices           int32 [n_edges]
node/weights           float32 [n_edges]
exec/exec_node         int32 [n_exec]          node id of each EXEC slot
exec/exec_offset       int64 [n_exec]          where its code starts in ``code_blob``
exec/exec_length       int32 [n_exec]          its code's length in bytes
exec/success_rate      float32 [n_exec]        the seed's success rate
exec/threshold_ratio   float32 [n_exec]        the seed's threshold ratio
exec/exec_runs         int64 [n_exec]          executions
exec/exec_outcomes     int64 [n_exec, N_OUT]   executions per outcome class (0 = ok)
exec/exec_result       uint64 [n_exec]         the node's last output
code_blob              uint8 [blob_size]       every EXEC node's code
bytes/*, genes/*       [used slots] (mostly)   the pattern tables: ``PatternTable.to_arrays``
=====================  ======================  ==========================================
"""
from __future__ import annotations

import numpy as np

from core.codes import Codes
from core.outcome import N_OUTCOMES

N_PORTS = 256
FREE, PORT, INNER, EXEC = 0, 1, 2, 3
ERROR_PORT, NEGATIVE_PORT = 250, 31

#: Per-node arrays (``node/<name>``) and their dtypes.
NODE_ARRAYS = {"kind": np.uint8, "activation": np.float32, "port_value": np.uint8,
               "indptr": np.int64, "indices": np.int32, "weights": np.float32}
#: EXEC columns (``exec/<name>``, one row per EXEC slot) and their dtypes.
EXEC_ARRAYS = {"exec_node": np.int32, "exec_offset": np.int64, "exec_length": np.int32,
               "success_rate": np.float32, "threshold_ratio": np.float32,
               "exec_runs": np.int64, "exec_outcomes": np.int64, "exec_result": np.uint64}


def grow(arr: np.ndarray, n: int, fill=0) -> np.ndarray:
    """``arr`` with its first axis at least ``n`` (capacity doubles), new rows = fill."""
    if arr.shape[0] >= n:
        return arr
    cap = max(n, 2 * arr.shape[0], 16)
    out = np.full((cap,) + arr.shape[1:], fill, arr.dtype)
    out[:arr.shape[0]] = arr
    return out


def packed_offsets(start: int, lengths: np.ndarray) -> np.ndarray:
    """Offsets of codes of ``lengths`` placed one after another from ``start``, each 8-byte
    aligned (int64 [n])."""
    first = start + (-start) % 8
    sizes = lengths + (-lengths) % 8
    return first + np.cumsum(sizes) - sizes


def check_overlap(offsets: np.ndarray, lengths: np.ndarray) -> None:
    """Raise ValueError if any two code regions ``[offsets[i], offsets[i] + lengths[i])``
    overlap."""
    order = np.argsort(offsets, kind="stable")
    hi = offsets + lengths
    if np.any(offsets[order][1:] < hi[order][:-1]):
        raise ValueError("code regions overlap")


def write_codes(blob: bytearray, codes, offsets: np.ndarray, lengths: np.ndarray,
                packed: bool) -> None:
    """Write ``codes`` (list of bytes, or a ``core.codes.Codes``) at ``offsets`` into ``blob``,
    extending it with zeros as needed.

    ``packed``: the offsets are :func:`packed_offsets` from the blob's end, so the codes and
    their padding go in with one write (from a ``Codes`` buffer: one scatter, no bytes per code).
    """
    n = len(codes)
    end = int((offsets + lengths).max()) if n else 0
    if end > len(blob):
        blob.extend(b"\x00" * (end - len(blob)))
    if packed and n and isinstance(codes, Codes):
        start = int(offsets[0])
        out = np.zeros(end - start, np.uint8)
        within = np.arange(codes.buf.size) - np.repeat(codes.offsets[:-1], lengths)
        out[np.repeat(offsets - start, lengths) + within] = codes.buf
        blob[start:end] = memoryview(out)
    elif packed and n:
        start = int(offsets[0])
        pads = (-lengths) % 8
        blob[start:end] = b"".join(c + bytes(p) for c, p in zip(codes, pads.tolist()))[:end - start]
    else:
        for c, o in zip(codes, offsets):
            blob[o:o + len(c)] = c


def compact_blob(blob: bytes | bytearray, offsets: np.ndarray, lengths: np.ndarray,
                 ) -> tuple[bytearray, np.ndarray]:
    """``(new_blob, new_offsets int64 [n])``: only the given codes, packed from 0."""
    old, lengths = offsets.astype(np.int64), lengths.astype(np.int64)
    new = packed_offsets(0, lengths)
    src = np.frombuffer(bytes(blob), np.uint8)
    out = np.zeros(int((new + lengths).max()) if new.size else 0, np.uint8)
    # byte j of code e moves from old[e] + j to new[e] + j
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(new, lengths) + within] = src[np.repeat(old, lengths) + within]
    return bytearray(out.tobytes()), new


def csr_from_edges(src: np.ndarray, dst: np.ndarray, weight: np.ndarray | float, n_nodes: int,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Incoming-edge CSR ``(indptr int64 [n+1], indices int32, weights float32)`` of the
    edges ``src[k] -> dst[k]`` with ``weight[k]``; raises ValueError for bad ids or weights."""
    src = np.ascontiguousarray(src, np.int64).ravel()
    dst = np.ascontiguousarray(dst, np.int64).ravel()
    w = np.broadcast_to(np.asarray(weight, np.float32), src.shape)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in length: {src.size} vs {dst.size}")
    n = n_nodes
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must be node ids in [0, {n})")
    if not np.all(np.isfinite(w)):
        raise ValueError("edge weights must be finite")
    order = np.argsort(dst, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    return indptr, src[order].astype(np.int32), np.ascontiguousarray(w[order])


def edge_lists(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR's edges as ``(src int64, dst int64, weight float32)`` [n_edges]."""
    dst = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    return indices.astype(np.int64), dst, weights.copy()


def drop_edges_of(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                  nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR without the edges into or out of ``nodes`` (the same arrays if there is none)."""
    src, dst, w = edge_lists(indptr, indices, weights)
    gone = np.zeros(indptr.size - 1, bool)
    gone[nodes] = True
    alive = ~(gone[src] | gone[dst])
    if alive.all():
        return indptr, indices, weights
    return csr_from_edges(src[alive], dst[alive], w[alive], indptr.size - 1)


def check_csr(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, n_nodes: int,
              ) -> None:
    """Raise ValueError unless the arrays are an incoming-edge CSR over ``n_nodes`` nodes."""
    n = n_nodes
    if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != indices.size \
            or weights.shape != indices.shape or np.any(np.diff(indptr) < 0):
        raise ValueError(f"inconsistent CSR arrays for {n} nodes")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"edge sources must be node ids in [0, {n})")


def check_state(arrays: dict[str, np.ndarray], n_exec: int) -> None:
    """Raise ValueError (KeyError for a missing array) unless ``arrays`` (the ``node/*``,
    ``exec/*`` and ``code_blob`` entries of the table above) are a consistent brain with
    ``n_exec`` EXEC slots."""
    kind = arrays["node/kind"]
    n = kind.shape[0]
    if kind.ndim != 1 or n < N_PORTS or kind.dtype != np.uint8 or kind.max() > EXEC \
            or np.any(kind[:N_PORTS] != PORT):
        raise ValueError("node kinds are inconsistent")
    for name, dtype in NODE_ARRAYS.items():
        arr = arrays[f"node/{name}"]
        if arr.dtype != dtype or arr.ndim != 1:
            raise ValueError(f"node/{name} has dtype {arr.dtype}, shape {arr.shape}")
    if arrays["node/activation"].shape != (n,) or arrays["node/port_value"].shape != (N_PORTS,):
        raise ValueError("node arrays are inconsistent")
    check_csr(arrays["node/indptr"], arrays["node/indices"], arrays["node/weights"], n)
    m = int(n_exec)
    for name, dtype in EXEC_ARRAYS.items():
        arr = arrays[f"exec/{name}"]
        tail = (N_OUTCOMES,) if name == "exec_outcomes" else ()
        if arr.dtype != dtype or arr.shape != (m,) + tail:
            raise ValueError(f"exec/{name} has dtype {arr.dtype}, shape {arr.shape}")
    nodes = arrays["exec/exec_node"].astype(np.int64)
    offset, length = arrays["exec/exec_offset"], arrays["exec/exec_length"]
    blob = arrays["code_blob"]
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"code_blob has dtype {blob.dtype}, shape {blob.shape}")
    if m and (nodes.min() < N_PORTS or nodes.max() >= n or np.unique(nodes).size != m
              or np.any(kind[nodes] != EXEC) or np.count_nonzero(kind == EXEC) != m
              or offset.min() < 0 or length.min() < 0 or (offset + length).max() > blob.size):
        raise ValueError("EXEC table is inconsistent")
