"""A brain as plain arrays and back: what a brain file stores (the file format itself, digest
and checks of the bytes, is :mod:`core.brain.file`; the array names and dtypes are
:mod:`core.brain.state`). Kept apart from :mod:`core.brain.graph` so that the graph module is
about what the brain does."""
from __future__ import annotations

import numpy as np

from core.brain.params import BrainParams
from core.brain.patterns import PatternTable
from core.brain.state import EXEC, EXEC_ARRAYS, N_PORTS, NODE_ARRAYS, check_state


def to_arrays(self, metadata: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:  # self: a Brain
    """``(meta, arrays)``: this brain as plain arrays (the names of :mod:`core.brain.state`),
    which is what a brain file stores; :meth:`from_arrays` inverts it exactly.

    Sized by what the brain holds, not by capacity: views of the brain's arrays, ``exec/*``
    trimmed to ``n_exec``, the pattern tables' used slots (``PatternTable.to_arrays``).
    Metadata: ``kind`` = "melvin-brain", ``params`` (capacities too), ``n_exec``, the
    counters, the tables' ``bytes_patterns``/``genes_patterns`` and ``user`` = ``metadata``.
    """
    n = self.n_exec
    arrays = {f"node/{k}": getattr(self, k) for k in NODE_ARRAYS}
    arrays.update({f"exec/{k}": getattr(self, k)[:n] for k in EXEC_ARRAYS})
    arrays["code_blob"] = np.frombuffer(bytes(self.code_blob), np.uint8)
    meta = {"kind": "melvin-brain", "params": self.params.to_json(), "n_exec": n,
            "crashes_handled": int(self.crashes_handled), "steps": int(self.steps),
            "user": metadata or {}}
    for prefix, table in (("bytes", self.byte_patterns), ("genes", self.gene_patterns)):
        tmeta, tarrays = table.to_arrays()
        meta[f"{prefix}_patterns"] = tmeta
        arrays.update({f"{prefix}/{k}": v for k, v in tarrays.items()})
    return meta, arrays



def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]):  # cls: Brain or a subclass
    """A brain from :meth:`to_arrays`'s ``(meta, arrays)`` (``meta["user"]`` becomes
    ``brain.metadata``), pattern tables rebuilt at full capacity (version 1/2 files' full
    tables too); other arrays are copied unless the brain can own them.

    Any inconsistency (shapes, ids, code ranges, parameters) raises ValueError, or
    KeyError for a missing entry.
    """
    if meta.get("kind") != "melvin-brain":
        raise ValueError("not a brain (metadata kind)")
    params = BrainParams.from_json(meta["params"])
    m = int(meta["n_exec"])
    check_state(arrays, m)
    brain = cls(N_PORTS, params)
    # np.require copies only arrays it may not own (views of another brain, read-only
    # buffers), so a brain file's freshly decoded arrays are adopted as they are.
    own = ("C", "W", "O")
    for k in NODE_ARRAYS:
        setattr(brain, k, np.require(arrays[f"node/{k}"], requirements=own))
    for k in EXEC_ARRAYS:
        setattr(brain, k, np.require(arrays[f"exec/{k}"], requirements=own))
    n = brain.kind.shape[0]
    brain._scratch = np.zeros(n, np.float32)
    brain.n_exec = m
    brain.code_blob = bytearray(arrays["code_blob"].tobytes())
    brain.exec_slot = np.full(n, -1, np.int32)
    brain.exec_slot[brain.exec_node] = np.arange(m, dtype=np.int32)
    brain.crashes_handled = int(meta["crashes_handled"])
    brain.steps = int(meta["steps"])
    for prefix, attr in (("bytes", "byte_patterns"), ("genes", "gene_patterns")):
        sub = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
        table = PatternTable.from_arrays(meta[f"{prefix}_patterns"], sub, brain.rule)
        table.forget_nodes(brain.kind != EXEC)
        setattr(brain, attr, table)
    brain.metadata = meta.get("user", {})
    return brain

