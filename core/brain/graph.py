"""The brain: a graph of ports, inner nodes and EXEC nodes that learns from what its code does.

Nodes are struct-of-arrays; node ids 0..255 are the ports. An EXEC node owns a piece of the code
blob (a genome, for the evolution engine) and the seed's statistics: ``threshold_ratio`` and
``success_rate`` under the seed's rule, executions, and executions per outcome class
(``core.outcome.Outcome``, column 0 = ok). Structural edges are a CSR of incoming edges;
learned edges go from pattern nodes (:mod:`core.brain.patterns`) to EXEC nodes.

The calls of one learning cycle and of the evolution engine are in :mod:`core.brain`.
Kernels are in :mod:`core.brain.kernels`; array names, dtypes and checks in
:mod:`core.brain.state`; the file format (arrays only) in :mod:`core.brain.file`.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

import core.brain.file as brain_file
import core.brain.arrays as brain_arrays
import core.brain.kernels as bk
from core.brain.file import BrainFileError
from core.brain.params import BrainParams
from core.brain.patterns import PatternTable, flatten_sequences
from core.brain.state import (EXEC, EXEC_ARRAYS, ERROR_PORT, FREE, INNER, N_PORTS, NEGATIVE_PORT,
                              PORT, check_csr, check_overlap,
                              compact_blob, csr_from_edges, drop_edges_of, edge_lists, grow,
                              packed_offsets, write_codes)
from core.brain.verdicts import count_matrix, ok_crash_counts, outcome_matrix
from core.codes import Codes
from core.outcome import N_OUTCOMES, Outcome

__all__ = ["Brain", "N_PORTS", "FREE", "PORT", "INNER", "EXEC", "ERROR_PORT", "NEGATIVE_PORT"]

log = logging.getLogger(__name__)


class Brain:
    """Owner of the brain's arrays; validates inputs once and delegates to the kernels.

    Parameters
    ----------
    n_nodes : int
        Initial number of nodes (>= 256; ids 0..255 are ports, the rest start FREE).
    params : BrainParams
    """

    def __init__(self, n_nodes: int = N_PORTS, params: BrainParams | None = None) -> None:
        if n_nodes < N_PORTS:
            raise ValueError(f"a brain has at least {N_PORTS} nodes (the ports), got {n_nodes}")
        self.params = params or BrainParams()
        self.rule = self.params.rule.as_array()
        self.kind = np.zeros(n_nodes, np.uint8)
        self.kind[:N_PORTS] = PORT
        self.activation = np.zeros(n_nodes, np.float32)
        self._scratch = np.zeros(n_nodes, np.float32)
        self.exec_slot = np.full(n_nodes, -1, np.int32)
        self.port_value = np.zeros(N_PORTS, np.uint8)
        self.indptr = np.zeros(n_nodes + 1, np.int64)
        self.indices = np.zeros(0, np.int32)
        self.weights = np.zeros(0, np.float32)
        self.n_exec = 0
        self.exec_node = np.zeros(0, np.int32)
        self.exec_offset = np.zeros(0, np.int64)
        self.exec_length = np.zeros(0, np.int32)
        self.success_rate = np.zeros(0, np.float32)
        self.threshold_ratio = np.zeros(0, np.float32)
        self.exec_runs = np.zeros(0, np.int64)
        self.exec_outcomes = np.zeros((0, N_OUTCOMES), np.int64)
        self.exec_result = np.zeros(0, np.uint64)
        self.code_blob = bytearray()
        self.crashes_handled = 0
        self.steps = 0
        self.metadata: dict = {}
        p = self.params
        self.byte_patterns = PatternTable(p.byte_patterns, self.rule, p.initial_success,
                                          p.initial_threshold)
        self.gene_patterns = PatternTable(p.gene_patterns, self.rule, p.initial_success,
                                          p.gene_initial_threshold)

    # ------------------------------------------------------------------ structure
    @property
    def n_nodes(self) -> int:
        return self.kind.shape[0]

    def _ensure_nodes(self, n: int) -> None:
        if n <= self.n_nodes:
            return
        old = self.n_nodes
        self.kind = np.concatenate([self.kind, np.zeros(n - old, np.uint8)])
        self.activation = np.concatenate([self.activation, np.zeros(n - old, np.float32)])
        self._scratch = np.zeros(n, np.float32)
        self.exec_slot = np.concatenate([self.exec_slot, np.full(n - old, -1, np.int32)])
        self.indptr = np.concatenate([self.indptr, np.full(n - old, self.indptr[-1], np.int64)])

    def add_nodes(self, n: int) -> np.ndarray:
        """Append ``n`` INNER nodes; returns their ids (int64 [n])."""
        start = self.n_nodes
        self._ensure_nodes(start + n)
        self.kind[start:] = INNER
        return np.arange(start, start + n, dtype=np.int64)

    def set_edges(self, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | float = 1.0,
                  ) -> None:
        """Replace the structural edges by ``src[k] -> dst[k]`` with ``weight[k]``.

        Stored as CSR of incoming edges (int64 indptr, int32 indices, float32 weights: 8 bytes
        per edge). Node ids must exist.
        """
        self.indptr, self.indices, self.weights = csr_from_edges(src, dst, weight, self.n_nodes)

    def set_csr(self, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> None:
        """Adopt ready-made incoming-edge CSR arrays (row i = the sources of node i).

        ``indptr`` int64 [n_nodes + 1], ``indices`` int32 [n_edges], ``weights`` float32
        [n_edges]; validated, not copied when the dtypes already match.
        """
        indptr = np.ascontiguousarray(indptr, np.int64)
        indices = np.ascontiguousarray(indices, np.int32)
        weights = np.ascontiguousarray(weights, np.float32)
        check_csr(indptr, indices, weights, self.n_nodes)
        self.indptr, self.indices, self.weights = indptr, indices, weights

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The structural edges as ``(src int64, dst int64, weight float32)`` [n_edges]."""
        return edge_lists(self.indptr, self.indices, self.weights)

    def add_edges(self, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | float = 1.0,
                  ) -> None:
        """Add structural edges to the existing ones (rebuilds the CSR)."""
        s0, d0, w0 = self.edges()
        src = np.ascontiguousarray(src, np.int64).ravel()
        w = np.broadcast_to(np.asarray(weight, np.float32), src.shape)
        self.set_edges(np.concatenate([s0, src]), np.concatenate([d0, np.ravel(dst)]),
                       np.concatenate([w0, w]))

    def listen_to_ports(self, node_ids: Sequence[int], ports_per_node: int,
                        rng: np.random.Generator, weight: float = 1.0) -> None:
        """Wire each node from ``ports_per_node`` random data ports (not the error ports 250, 31).

        With the stream convention (byte ``b`` lights port ``b``) a node then hears a random
        subset of byte values, so input content decides which EXEC nodes become active.
        """
        ids = np.asarray(node_ids, np.int64).ravel()
        data = np.setdiff1d(np.arange(N_PORTS), [ERROR_PORT, NEGATIVE_PORT])
        if not 1 <= ports_per_node <= data.size:
            raise ValueError(f"ports_per_node must be in [1, {data.size}]")
        src = np.concatenate([rng.choice(data, ports_per_node, replace=False) for _ in ids]) \
            if ids.size else np.zeros(0, np.int64)
        self.add_edges(src, np.repeat(ids, ports_per_node), weight)

    @property
    def n_edges(self) -> int:
        return int(self.indices.size)

    # ------------------------------------------------------------------ EXEC nodes
    def add_exec_nodes(self, codes: Sequence[bytes], node_ids: Sequence[int] | None = None,
                       offsets: Sequence[int] | None = None,
                       success_rate: float | Sequence[float] | None = None,
                       threshold_ratio: float | Sequence[float] | None = None,
                       outcomes: np.ndarray | None = None) -> np.ndarray:
        """Register many EXEC nodes at once; returns their node ids (int64 [n]).

        Parameters
        ----------
        codes : list of bytes, or a ``core.codes.Codes``
            Function bodies (the executor appends the return), stored in the code blob (a
            ``Codes`` buffer goes in whole).
        node_ids : optional
            Ids to use (>= 256, not ports or EXEC nodes); default: FREE nodes (lowest ids
            first), then new nodes at the end.
        offsets : optional
            Blob offsets (the seed places its code at 1024, 1544, ...); must not overlap any
            code. Default: appended after the blob's end, 8-byte aligned.
        success_rate, threshold_ratio : optional scalars or per-node values
            Defaults ``params.initial_success`` and ``params.initial_threshold``.
        outcomes : optional int [n, N_OUTCOMES]
            Executions per outcome class the nodes start with (executions: their sum), e.g.
            statistics kept outside the brain by :meth:`reinforce_stats`; default none.
        """
        if not isinstance(codes, Codes):
            codes = [bytes(c) for c in codes]
        n = len(codes)
        if node_ids is None:  # reuse freed nodes first: genome churn must not grow the graph
            free = np.flatnonzero(self.kind[N_PORTS:] == FREE)[:n] + N_PORTS
            ids = np.concatenate([free, np.arange(self.n_nodes, self.n_nodes + n - free.size)])
        else:
            ids = np.asarray(node_ids, np.int64).ravel()
            if ids.size != n or np.unique(ids).size != n:
                raise ValueError("node_ids must be distinct, one per code")
            if n and ids.min() < N_PORTS:
                raise ValueError("EXEC node ids must be >= 256 (0..255 are ports)")
        self._ensure_nodes(int(ids.max()) + 1 if n else 0)
        if n and np.any(self.kind[ids] == EXEC):
            raise ValueError(f"nodes {ids[self.kind[ids] == EXEC].tolist()} are already EXEC")
        lengths = codes.lengths if isinstance(codes, Codes) else np.array([len(c) for c in codes], np.int64)
        if outcomes is not None:
            outcomes = count_matrix(outcomes, n)
        if offsets is None:
            offs = packed_offsets(len(self.code_blob), lengths)
        else:
            offs = np.asarray(offsets, np.int64).ravel()
            if offs.size != n or (n and offs.min() < 0):
                raise ValueError("offsets must be >= 0, one per code")
            n_old = self.n_exec
            check_overlap(np.concatenate([self.exec_offset[:n_old], offs]),
                          np.concatenate([self.exec_length[:n_old], lengths]))
        write_codes(self.code_blob, codes, offs, lengths, packed=offsets is None)
        slots = np.arange(self.n_exec, self.n_exec + n)
        m = self.n_exec + n
        for name in EXEC_ARRAYS:
            setattr(self, name, grow(getattr(self, name), m))
        p = self.params
        self.exec_node[slots] = ids
        self.exec_offset[slots] = offs
        self.exec_length[slots] = lengths
        self.success_rate[slots] = p.initial_success if success_rate is None else success_rate
        self.threshold_ratio[slots] = (p.initial_threshold if threshold_ratio is None
                                      else threshold_ratio)
        self.exec_runs[slots] = 0 if outcomes is None else outcomes.sum(axis=1)
        self.exec_outcomes[slots] = 0 if outcomes is None else outcomes
        self.exec_result[slots] = 0
        self.kind[ids] = EXEC
        self.exec_slot[ids] = slots
        self.n_exec = m
        return ids

    def remove_exec_nodes(self, node_ids: Sequence[int]) -> None:
        """Unregister EXEC nodes: their nodes become FREE and learned edges to them vanish.

        Structural edges into or out of them are dropped too, so a reused node starts clean.
        Slots are compacted (survivors keep their order, slot numbers change; node ids never
        do). Dead code stays in the blob until :meth:`compact_code`, which runs by itself once
        the blob is more than twice the live code (plus 4 KiB).
        """
        slots = self.slots_of(node_ids)
        ids = self.exec_node[slots].astype(np.int64)
        keep = np.ones(self.n_exec, bool)
        keep[slots] = False
        survivors = np.flatnonzero(keep)
        for name in EXEC_ARRAYS:
            arr = getattr(self, name)
            arr[:survivors.size] = arr[survivors]
        self.n_exec = survivors.size
        self.kind[ids] = FREE
        self.activation[ids] = 0.0
        self.exec_slot[ids] = -1
        self.exec_slot[self.exec_node[:self.n_exec]] = np.arange(self.n_exec, dtype=np.int32)
        dead = self.kind != EXEC
        self.byte_patterns.forget_nodes(dead)
        self.gene_patterns.forget_nodes(dead)
        if self.n_edges:
            self.indptr, self.indices, self.weights = drop_edges_of(
                self.indptr, self.indices, self.weights, ids)
        live = int(self.exec_length[:self.n_exec].sum())
        if len(self.code_blob) > 2 * live + 4096:
            self.compact_code()

    def compact_code(self) -> None:
        """Rewrite the code blob with only live EXEC code (offsets change, 8-byte aligned)."""
        n = self.n_exec
        self.code_blob, self.exec_offset[:n] = compact_blob(self.code_blob, self.exec_offset[:n],
                                                            self.exec_length[:n])

    def slots_of(self, node_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """EXEC slots (int64) of EXEC node ids; raises ValueError for any other id."""
        ids = np.asarray(node_ids, np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_nodes):
            raise ValueError(f"node ids out of range [0, {self.n_nodes})")
        slots = self.exec_slot[ids].astype(np.int64)
        if np.any(slots < 0):
            raise ValueError(f"not EXEC nodes: {ids[slots < 0][:8].tolist()}")
        return slots

    def code(self, node_id: int) -> bytes:
        """The code of one EXEC node."""
        e = int(self.slots_of([node_id])[0])
        o = int(self.exec_offset[e])
        return bytes(self.code_blob[o:o + int(self.exec_length[e])])

    def codes(self, node_ids: Sequence[int]) -> list[bytes]:
        """The code of each EXEC node, in order (one list for ``executor.run``)."""
        slots = self.slots_of(node_ids)
        blob = self.code_blob
        return [bytes(blob[o:o + ln]) for o, ln in
                zip(self.exec_offset[slots].tolist(), self.exec_length[slots].tolist())]

    def exec_table(self) -> dict[str, np.ndarray]:
        """Copies of the EXEC columns: ``node``, ``offset``, ``length``, ``threshold_ratio``,
        ``success_rate``, ``executions`` ([n_exec]) and ``outcomes`` ([n_exec, N_OUTCOMES])."""
        n = self.n_exec
        return {"node": self.exec_node[:n].astype(np.int64), "offset": self.exec_offset[:n].copy(),
                "length": self.exec_length[:n].astype(np.int64),
                "threshold_ratio": self.threshold_ratio[:n].copy(),
                "success_rate": self.success_rate[:n].copy(),
                "executions": self.exec_runs[:n].copy(),
                "outcomes": self.exec_outcomes[:n].copy()}

    def node_stats(self, node_ids: Sequence[int]) -> dict[str, np.ndarray]:
        """The EXEC columns for the given nodes, in their order (e.g. fitness terms):
        ``threshold_ratio``, ``success_rate`` float32, ``executions`` int64 [n] and
        ``outcomes`` int64 [n, N_OUTCOMES]."""
        slots = self.slots_of(node_ids)
        return {"threshold_ratio": self.threshold_ratio[slots],
                "success_rate": self.success_rate[slots],
                "executions": self.exec_runs[slots], "outcomes": self.exec_outcomes[slots]}

    # ------------------------------------------------------------------ activation
    def inject(self, ports: Sequence[int], values: Sequence[int],
               energies: Sequence[float] | float) -> None:
        """Put byte ``values[i]`` on port ``ports[i]`` with ``energies[i]``."""
        ports = np.asarray(ports, np.int64).ravel()
        values = np.asarray(values, np.int64).ravel()
        en = np.broadcast_to(np.asarray(energies, np.float32), ports.shape).copy()
        if ports.shape != values.shape:
            raise ValueError("ports and values differ in length")
        if ports.size and (ports.min() < 0 or ports.max() >= N_PORTS):
            raise ValueError("ports are 0..255")
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError("port values are bytes 0..255")
        bk.inject(self.activation, self.port_value, ports, values.astype(np.uint8), en)

    def feed(self, data: bytes, learn: bool = True) -> np.ndarray:
        """Feed a chunk of the input stream: byte ``b`` lights port ``b``; patterns match/learn.

        Returns the slots (int32) of the byte patterns matched in this chunk.
        """
        arr = np.frombuffer(bytes(data), np.uint8)
        bk.feed_bytes(self.activation, self.port_value, arr, np.float32(self.params.stream_energy))
        return self.byte_patterns.scan_stream(arr, learn, self.params.pattern_energy)

    def step(self, parallel: bool = False) -> None:
        """Propagate along CSR edges with decay ``keep``, then let active patterns push."""
        p = self.params
        kernel = bk.propagate_parallel if parallel else bk.propagate
        kernel(self.indptr, self.indices, self.weights, self.activation, self._scratch,
               np.float32(p.keep))
        self.activation, self._scratch = self._scratch, self.activation
        self.byte_patterns.push(self.activation, p.link_eps, p.keep)
        self.steps += 1

    def mean_activation(self) -> float:
        """Mean activation over active nodes (activation > ``active_eps``)."""
        return float(bk.mean_active(self.activation, self.params.active_eps))

    def firing(self) -> np.ndarray:
        """Node ids (int64) of the EXEC nodes whose activation > threshold_ratio * mean."""
        slots = self._firing_slots()
        return self.exec_node[slots].astype(np.int64)

    def _firing_slots(self) -> np.ndarray:
        n = self.n_exec
        return bk.select_firing(self.activation, self.exec_node[:n], self.threshold_ratio[:n],
                                self.mean_activation(), self.params.active_eps)

    def fire(self) -> np.ndarray:
        """:meth:`firing`, and the fired nodes spend their activation if ``reset_on_fire``."""
        slots = self._firing_slots()
        if self.params.reset_on_fire:
            bk.reset_nodes(self.activation, self.exec_node[:self.n_exec], slots)
        return self.exec_node[slots].astype(np.int64)

    # ------------------------------------------------------------------ reinforcement
    def reinforce(self, node_ids: Sequence[int], outcomes: np.ndarray,
                  link: bool = True) -> int:
        """Apply the seed's rule once per execution (vectorised over nodes and cases).

        Parameters
        ----------
        node_ids : int [n]
            EXEC nodes; a repeated id is updated in order.
        outcomes : uint8 [n] or [n, n_cases]
            ``Outcome`` per execution, applied in case order.
        link : bool
            Also strengthen/weaken the edges from the currently active byte patterns.

        Returns
        -------
        int
            Crashed executions; each fed 0xFF on port 250 (energy 1.0) and port 31 (0.8).
        """
        slots = self.slots_of(node_ids)
        out = outcome_matrix(outcomes, slots.size)
        crashes = int(bk.reinforce_outcomes(slots, out, self.success_rate, self.threshold_ratio,
                                            self.exec_runs, self.exec_outcomes, self.rule))
        ok_frac = (out == Outcome.OK).mean(axis=1) if out.shape[1] else np.zeros(slots.size)
        self._after_verdict(slots, ok_frac, crashes, link and out.shape[1] > 0)
        return crashes

    def reinforce_stats(self, success_rate: np.ndarray, threshold_ratio: np.ndarray,
                        outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`reinforce` (``link=False``) for genomes that are not EXEC nodes (yet): the
        seed's rule on statistics kept outside the brain, e.g. a population's arrays.

        The same kernel runs the same steps, so ``add_exec_nodes(codes, success_rate=s,
        threshold_ratio=t, outcomes=counts)`` with what this returns gives each node exactly
        the state a node made with the inputs and then reinforced would have. Crashes feed the
        error ports as :meth:`reinforce`'s do.

        Parameters
        ----------
        success_rate, threshold_ratio : float [n]
            The statistics before (a new node's: its initial values), read as float32.
        outcomes : uint8 [n] or [n, n_cases]
            ``Outcome`` per execution, applied in case order.

        Returns
        -------
        (success_rate float32 [n], threshold_ratio float32 [n], counts int64 [n, N_OUTCOMES])
            The statistics after, and the executions per outcome class.
        """
        n = np.shape(success_rate)[0]
        out = outcome_matrix(outcomes, n)
        s = np.array(success_rate, np.float32).reshape(n)
        t = np.array(threshold_ratio, np.float32).reshape(n)
        runs = np.zeros(n, np.int64)
        counts = np.zeros((n, N_OUTCOMES), np.int64)
        crashes = int(bk.reinforce_outcomes(np.arange(n, dtype=np.int64), out, s, t, runs, counts, self.rule))
        self._after_verdict(np.zeros(0, np.int64), np.zeros(0), crashes, False)
        return s, t, counts

    def reinforce_counts(self, node_ids: Sequence[int], counts: np.ndarray,
                         link: bool = True) -> int:
        """One rule step per node with ``ok = counts[:, OK] / counts.sum(1)``.

        ``counts`` is int [n, N_OUTCOMES], executions per outcome class (e.g. one genome's
        test cases). Counters grow by all executions. Returns crashed executions.
        """
        slots = self.slots_of(node_ids)
        cnt = count_matrix(counts, slots.size)
        crashes = int(bk.reinforce_counts(slots, cnt, self.success_rate, self.threshold_ratio,
                                          self.exec_runs, self.exec_outcomes, self.rule))
        total = cnt.sum(axis=1)
        ok_frac = np.divide(cnt[:, 0], total, out=np.zeros(slots.size), where=total > 0)
        self._after_verdict(slots[total > 0], ok_frac[total > 0], crashes, link)
        return crashes

    def _after_verdict(self, slots: np.ndarray, ok_frac: np.ndarray, crashes: int,
                       link: bool) -> None:
        p = self.params
        if crashes:
            self.crashes_handled += crashes
            self.inject([ERROR_PORT, NEGATIVE_PORT], [0xFF, 0xFF],
                        [p.error_energy * crashes, p.negative_energy * crashes])
        if link and slots.size:
            active = self.byte_patterns.active(p.link_eps, p.link_limit)
            if active.size:
                ptr = np.arange(slots.size + 1, dtype=np.int64) * active.size
                self.byte_patterns.link(ptr, np.tile(active, slots.size),
                                        self.exec_node[slots].astype(np.int64),
                                        p.link_rate * (2.0 * ok_frac - 1.0), p.edge_clip)

    def execute(self, executor, node_ids: Sequence[int], inputs: np.ndarray):
        """Run the nodes' code on ``inputs`` (uint64 [n_cases, n_inputs]) as one batch.

        ``executor`` is an open ``core.executors`` executor. The outcomes are reinforced
        (:meth:`reinforce`) and each node's last output is kept. Returns the executor's result.
        """
        ids = np.asarray(node_ids, np.int64).ravel()
        slots = self.slots_of(ids)
        if ids.size == 0:
            return None
        res = executor.run(self.codes(ids), np.ascontiguousarray(inputs, np.uint64))
        self.reinforce(ids, res.outcomes)
        self.exec_result[slots] = np.asarray(res.outputs, np.uint64)[:, -1]
        return res

    # ------------------------------------------------------------------ gene statistics
    def observe_genes(self, node_ids: Sequence[int] | None, sequences, outcomes: np.ndarray,
                      learn: bool = True, link: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Credit each genome's gene n-grams with the genome's outcomes.

        Parameters
        ----------
        node_ids : int [n_seq] or None
            The genomes' EXEC nodes (needed only with ``link``).
        sequences : list of gene-id sequences, or ``(tokens int64, ptr int64 [n_seq+1])``
        outcomes : uint8 [n_seq, n_cases] (Outcome values) or int [n_seq, N_OUTCOMES] counts
            A uint8 array is read as outcomes, any other integer dtype as counts.
        learn, link : bool
            Learn new n-grams; add pattern -> EXEC edges (+ on success, - on crash).

        Returns
        -------
        (match_ptr, match_slots) : the gene patterns of each genome (CSR), as ``scan_sequences``.
        """
        tokens, ptr = flatten_sequences(sequences)
        n_ok, n_crash = ok_crash_counts(outcomes, ptr.size - 1)
        mptr, mslots = self.gene_patterns.scan_sequences((tokens, ptr), learn)
        self.gene_patterns.observe(mptr, mslots, n_ok, n_crash)
        if link:
            ids = np.asarray(node_ids, np.int64).ravel()
            self.slots_of(ids)
            total = np.maximum(n_ok + n_crash, 1)
            self.gene_patterns.link(mptr, mslots, ids,
                                    self.params.link_rate * (2.0 * n_ok / total - 1.0),
                                    self.params.edge_clip)
        return mptr, mslots

    def gene_weights(self, prefix: Sequence[int], n_genes: int,
                     min_executions: int = 1) -> np.ndarray:
        """Weights (float64 [n_genes]) for drawing the gene after ``prefix``.

        1.0 where nothing is known; each learned n-gram ``prefix[-k:] + [g]`` multiplies by
        ``threshold_min / threshold``, so a pattern suppressed to 3.0 weighs 1/30. For many
        draws use :meth:`gene_guide` once and query it, or ``gene_patterns.context_table``
        (every context of up to two genes at once: what evolution uses).
        """
        return self.gene_patterns.next_weights(prefix, n_genes, min_executions)

    def gene_guide(self, min_executions: int = 1):
        """A :class:`core.brain.patterns.Guide` snapshot of the gene statistics (one per
        generation): ``guide.weights(prefixes, n_genes)`` -> float64 [n_prefixes, n_genes]."""
        return self.gene_patterns.guide(min_executions)

    def merge_patterns(self, other: "Brain", genes: bool = True, bytes_: bool = False) -> int:
        """Merge another brain's pattern statistics into this one (islands); returns created.

        Only statistics move: the other brain's pattern -> EXEC edges name its own nodes.
        """
        created = 0
        if genes:
            created += self.gene_patterns.merge(other.gene_patterns)
        if bytes_:
            created += self.byte_patterns.merge(other.byte_patterns)
        return created

    # ------------------------------------------------------------------ files
    def to_arrays(self, metadata: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: this brain as plain arrays (:func:`core.brain.arrays.to_arrays`),
        which is what a brain file stores; :meth:`from_arrays` inverts it exactly."""
        return brain_arrays.to_arrays(self, metadata)

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Brain":
        """A brain from :meth:`to_arrays`'s ``(meta, arrays)`` (:func:`core.brain.arrays.from_arrays`);
        ValueError or KeyError on any inconsistency."""
        return brain_arrays.from_arrays(cls, meta, arrays)

    def to_bytes(self, metadata: dict | None = None) -> bytes:
        """The brain file's bytes (no file involved: island checkpoints travel as bytes)."""
        return brain_file.encode(*self.to_arrays(metadata))

    @classmethod
    def from_bytes(cls, blob: bytes, source: str = "<bytes>") -> "Brain":
        """The brain of a brain file's bytes; raises ``BrainFileError`` on any defect."""
        meta, arrays = brain_file.decode(blob, source)
        try:
            return cls.from_arrays(meta, arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise BrainFileError(f"{source}: inconsistent brain file "
                                 f"({type(exc).__name__}: {exc})") from None

    def save(self, path, metadata: dict | None = None) -> None:
        """Write a brain file atomically (see :mod:`core.brain.file`)."""
        brain_file.write(path, *self.to_arrays(metadata))

    @classmethod
    def load(cls, path) -> "Brain":
        """Load a brain to continue learning; raises ``BrainFileError`` on any defect."""
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read(), str(path))

    @classmethod
    def seed_from(cls, source, min_success: float = 0.9, min_executions: int = 1,
                  params: BrainParams | None = None) -> "Brain":
        """A new brain holding the proven code of ``source`` (a Brain or a brain file path).

        Proven: ``success_rate >= min_success`` and ``executions >= min_executions``. Their
        code, success rate and threshold ratio carry over (counters restart at zero), as do the
        gene pattern statistics; activation, edges and byte patterns start fresh.
        """
        src = source if isinstance(source, Brain) else cls.load(source)
        new = cls(N_PORTS, params or src.params)
        t = src.exec_table()
        good = (t["success_rate"] >= min_success) & (t["executions"] >= min_executions)
        ids = t["node"][good]
        new.add_exec_nodes(src.codes(ids), success_rate=t["success_rate"][good],
                           threshold_ratio=t["threshold_ratio"][good])
        new.gene_patterns.merge(src.gene_patterns)
        return new

    def nbytes(self) -> dict[str, int]:
        """Bytes held by the node arrays, the edges, the EXEC table and the pattern tables."""
        node = (self.kind.nbytes + self.activation.nbytes + self._scratch.nbytes
                + self.exec_slot.nbytes + self.indptr.nbytes)
        edges = self.indices.nbytes + self.weights.nbytes
        ex = sum(getattr(self, n).nbytes for n in EXEC_ARRAYS) + len(self.code_blob)
        pats = self.byte_patterns.nbytes() + self.gene_patterns.nbytes()
        return {"nodes": node, "edges": edges, "exec": ex, "patterns": pats}
