"""Pattern learning: recurring n-grams of a token stream become pattern nodes with statistics.

One class serves both of the brain's uses:

* bytes: the input stream's recurring n-grams; a pattern that is active when an EXEC node fires
  gets an edge to it, strengthened on success and weakened on crash, and later sends its
  activation along that edge (``push``);
* genes: the evolution engine feeds each genome's gene ids as one sequence, with the genome's
  outcomes; every gene n-gram keeps success/crash counts and its own threshold ratio under the
  seed's rule, which ``next_weights`` turns into weights for drawing the next gene.

Memory is bounded: at most ``capacity`` patterns (a full table evicts the least recently seen of
a random sample) and ``2**candidate_bits`` candidate counters. The kernels are in
:mod:`core.brain.pattern_kernels`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

import core.brain.draw_kernels as dk
import core.brain.gram_kernels as gk
import core.brain.pattern_kernels as pk
from core.brain.params import PatternConfig, RuleParams


#: The arrays a table persists, in the order the kernels take them (``index``/``mark`` are
#: rebuilt on load, not stored).
STATE_ARRAYS = ("tokens", "length", "gram_hash", "count", "last_seen", "activation", "n_ok",
                "n_crash", "n_improved", "success_rate", "threshold_ratio", "edge_node", "edge_weight",
                "candidates", "history", "meta")
#: The per-slot arrays (first axis = pattern slot); a brain file holds their used rows only.
ROW_ARRAYS = STATE_ARRAYS[:13]
#: At most this many gene pairs get a row of their own in a draw table (``context_table``): with
#: arm64's 255 genes, 4 MB of float64; the pairs whose trigrams say the most (``|log factor|``).
MAX_PAIRS = 2048
#: A pattern's improvement factor (:meth:`PatternTable.draw_ratios`) is its offspring's rate of
#: improvement over the base rate of its length, shrunk towards 1 as if :data:`IMPROVEMENT_PRIOR`
#: more introductions had improved at the base rate, and kept within :data:`IMPROVEMENT_BOUNDS`.
IMPROVEMENT_PRIOR = 20.0
IMPROVEMENT_BOUNDS = (0.5, 4.0)


def _as_tokens(tokens) -> np.ndarray:
    if isinstance(tokens, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(bytes(tokens), np.uint8).astype(np.int64)
    else:
        arr = np.ascontiguousarray(tokens, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError("tokens must be >= 0")
    return arr


class PatternTable:
    """Bounded table of n-gram patterns with activation, statistics and pattern -> node edges.

    Parameters
    ----------
    config : PatternConfig
    rule : float32 [RULE_LEN]
        The reinforcement rule's constants (``core.brain.kernels.R_*``); shared with the brain.
    init_success, init_threshold : float
        Statistics a new pattern starts with.
    """

    def __init__(self, config: PatternConfig = PatternConfig(), rule: np.ndarray | None = None,
                 init_success: float = 0.5, init_threshold: float = 0.1) -> None:
        config.validate()
        self.config = config
        self.rule = RuleParams().as_array() if rule is None else np.asarray(rule, np.float32)
        self.init_success = np.float32(init_success)
        self.init_threshold = np.float32(init_threshold)
        cap, n, k = config.capacity, config.n_max, config.edges_per_pattern
        self.tokens = np.zeros((cap, n), np.int64)
        self.length = np.zeros(cap, np.uint8)
        self.gram_hash = np.zeros(cap, np.uint64)
        self.count = np.zeros(cap, np.int64)
        self.last_seen = np.zeros(cap, np.int64)
        self.activation = np.zeros(cap, np.float32)
        self.n_ok = np.zeros(cap, np.int64)
        self.n_crash = np.zeros(cap, np.int64)
        self.n_improved = np.zeros(cap, np.int64)     # introductions whose offspring improved (gene tables)
        self.success_rate = np.zeros(cap, np.float32)
        self.threshold_ratio = np.zeros(cap, np.float32)
        self.edge_node = np.full((cap, k), -1, np.int32)
        self.edge_weight = np.zeros((cap, k), np.float32)
        self.candidates = np.zeros(1 << config.candidate_bits, np.uint16)
        self.history = np.zeros(n, np.int64)
        self.meta = np.zeros(pk.META_LEN, np.int64)
        self.meta[pk.M_RNG] = (config.seed & 0x7FFFFFFFFFFFFFFF) or 1
        self.mark = np.zeros(cap, np.int64)
        self.cfg = np.array([config.n_min, config.n_max, config.min_count, config.age_interval,
                             config.evict_sample], np.int64)
        hcap = 1 << int(np.ceil(np.log2(2 * cap + 1)))
        self.index = np.full(hcap, pk.EMPTY, np.int32)
        #: False for a table loaded from a file written before improvements were counted: its
        #: ``count`` says nothing of ``n_improved`` (``evolve.prior`` drops it when transferring)
        self.improvements_counted = True

    # ------------------------------------------------------------------ learning
    def _stats(self):
        return (self.tokens, self.length, self.gram_hash, self.count, self.last_seen,
                self.activation, self.mark, self.n_ok, self.n_crash, self.n_improved, self.success_rate,
                self.threshold_ratio, self.edge_node, self.edge_weight)

    def scan_stream(self, tokens, learn: bool = True, energy: float = 1.0) -> np.ndarray:
        """Continue the stream with ``tokens`` (bytes or ints >= 0); n-grams span calls.

        Returns int32 [n_matched]: the distinct patterns matched (their activation grew by
        ``energy`` per match).
        """
        arr = _as_tokens(tokens)
        ptr = np.array([0, arr.size], np.int64)
        _, slots = pk.scan(arr, ptr, True, learn, np.float32(energy), *self._stats(), self.index,
                           self.candidates, self.history, self.meta, self.cfg, self.init_success,
                           self.init_threshold)
        return slots

    def scan_sequences(self, sequences: Sequence[Sequence[int]] | tuple[np.ndarray, np.ndarray],
                       learn: bool = True, energy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Match independent sequences (genomes as gene ids); n-grams never cross sequences.

        Parameters
        ----------
        sequences : list of int sequences, or ``(tokens int64 [n_tokens], ptr int64 [n_seq+1])``

        Returns
        -------
        match_ptr : int64 [n_seq + 1]
        match_slots : int32 [match_ptr[-1]]
            The distinct patterns of each sequence, as CSR.
        """
        tokens, ptr = flatten_sequences(sequences)
        return pk.scan(tokens, ptr, False, learn, np.float32(energy), *self._stats(), self.index,
                       self.candidates, self.history, self.meta, self.cfg, self.init_success,
                       self.init_threshold)

    def observe(self, match_ptr: np.ndarray, match_slots: np.ndarray, n_ok: np.ndarray,
                n_crash: np.ndarray) -> None:
        """Credit each sequence's patterns with its ok/crash counts (int64 [n_seq] each)."""
        n_seq = match_ptr.size - 1
        n_ok = np.ascontiguousarray(n_ok, np.int64).reshape(n_seq)
        n_crash = np.ascontiguousarray(n_crash, np.int64).reshape(n_seq)
        pk.observe(match_ptr, match_slots, n_ok, n_crash, self.n_ok, self.n_crash,
                   self.success_rate, self.threshold_ratio, self.rule)

    def intern(self, grams: np.ndarray, lens: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Slots (int32 [m], -1: not a pattern yet) of the n-grams ``grams[i, :lens[i]]``
        (int64 [m, >= n]), learnt as :meth:`scan_sequences` learns them; ``owner`` int64 [m]
        ascending, the sequence of each (the eviction clock ticks once per sequence)."""
        grams = np.ascontiguousarray(grams, np.int64)
        if grams.size and grams.min() < 0:
            raise ValueError("tokens must be >= 0")
        return gk.intern(grams, np.ascontiguousarray(lens, np.int64),
                         np.ascontiguousarray(owner, np.int64), self.tokens, self.length,
                         self.gram_hash, self.count, self.last_seen, self.activation, self.n_ok,
                         self.n_crash, self.n_improved, self.success_rate, self.threshold_ratio, self.edge_node,
                         self.edge_weight, self.index, self.candidates, self.meta, self.cfg,
                         self.init_success, self.init_threshold)

    def credit(self, owner: np.ndarray, slots: np.ndarray, crashed: np.ndarray,
               improved: np.ndarray) -> None:
        """One step of the seed's rule per execution: pattern ``slots[i]`` (-1: none) with the
        executions of sequence ``owner[i]`` (``crashed`` bool [n_seq, n_cases]; ok = not
        crashed), and one improvement counted where ``improved[owner]`` (bool [n_seq])."""
        gk.credit(np.ascontiguousarray(owner, np.int64), np.ascontiguousarray(slots, np.int32),
                  np.ascontiguousarray(crashed, np.bool_), np.ascontiguousarray(improved, np.bool_),
                  self.n_ok, self.n_crash, self.n_improved, self.success_rate, self.threshold_ratio,
                  self.rule)

    def link(self, match_ptr: np.ndarray, match_slots: np.ndarray, nodes: np.ndarray,
             deltas: np.ndarray, clip: float = 1.0) -> None:
        """Add ``deltas[q]`` to the edge (pattern -> ``nodes[q]``) of each match of sequence q."""
        pk.link(match_ptr, match_slots, np.ascontiguousarray(nodes, np.int64),
                np.ascontiguousarray(deltas, np.float32), self.edge_node, self.edge_weight,
                np.float32(clip))

    def active(self, eps: float, limit: int) -> np.ndarray:
        """The (at most ``limit``) most active patterns with activation > eps, int32."""
        idx = np.flatnonzero(self.activation > eps)
        if idx.size > limit:
            idx = idx[np.argpartition(self.activation[idx], idx.size - limit)[idx.size - limit:]]
        return idx.astype(np.int32)

    def push(self, node_activation: np.ndarray, eps: float, keep: float) -> None:
        """Send active patterns' activation to their nodes, then decay it by ``keep``."""
        pk.push(self.activation, self.edge_node, self.edge_weight, node_activation, np.float32(eps),
                np.float32(keep))

    def forget_nodes(self, dead: np.ndarray) -> None:
        """Drop edges to the nodes marked in ``dead`` (bool [n_nodes]); others beyond it too."""
        if self.edge_node.size and self.edge_node.max() >= 0:     # (evolution's gene table links none)
            pk.forget_nodes(self.edge_node, self.edge_weight, np.ascontiguousarray(dead, np.bool_))

    def guide(self, min_executions: int = 1) -> "Guide":
        """A snapshot of the patterns with >= ``min_executions`` executions, indexed by context,
        for drawing tokens (genes) many times per generation; see :class:`Guide`."""
        h, slots = pk.context_index(self.tokens, self.length, self.n_ok, self.n_crash,
                                    self.threshold_ratio, int(min_executions))
        return Guide(h, slots, self.tokens.copy(), self.length.copy(), self.draw_ratios(),
                     self.config.n_max, float(self.init_threshold))

    def context_table(self, n_tokens: int, min_executions: int = 1, max_pairs: int = MAX_PAIRS,
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(weights float64 [1 + n + k, n], pairs int64 [k]): the :class:`Guide` weights after
        every context of up to two tokens (row 0: none; 1 + b: after b; 1 + n + j: after the
        pair ``pairs[j] = a * n + b``, listed only where a trigram pattern makes it differ from
        the row of b, at most ``max_pairs`` of them: those whose trigrams' factors weigh most),
        built in one pass over the patterns (what a generation's gene draws need; the full n^3
        table would be 16 million floats for arm64's 255 genes)."""
        return pk.context_table(int(n_tokens), self.tokens, self.length, self.n_ok, self.n_crash,
                                self.draw_ratios(), int(min_executions), float(self.init_threshold),
                                int(max_pairs))

    def draw_table(self, base: np.ndarray, min_executions: int = 1, max_pairs: int = MAX_PAIRS,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``(cumsum(base * weights, axis=1), pairs)`` of :meth:`context_table` for
        ``len(base)`` tokens, bit for bit, without the temporaries: cumulative draw weights
        after every context (``evolve.operators.split_table``'s form), ``base`` float64 [n]
        the tokens' own weights."""
        base = np.ascontiguousarray(base, np.float64)
        return pk.context_cumulative(int(base.size), base, self.tokens, self.length, self.n_ok, self.n_crash,
                                     self.draw_ratios(), int(min_executions), float(self.init_threshold),
                                     int(max_pairs))

    def lazy_draw_table(self, base: np.ndarray, min_executions: int = 1, max_pairs: int = MAX_PAIRS) -> tuple:
        """:meth:`draw_table` in its lazy form (``core.brain.draw_kernels``): the same pairs and
        factors, each row computed when a draw first reads it, equal to :meth:`draw_table`'s bit
        for bit; what ``evolve.operators`` draws from each generation."""
        base = np.ascontiguousarray(base, np.float64)
        lo, hi = IMPROVEMENT_BOUNDS
        return dk.lazy(int(base.size), base, self.tokens, self.length, self.n_ok, self.n_crash, self.count,
                       self.n_improved, self.threshold_ratio, np.float64(self.init_threshold), int(self.config.n_max),
                       IMPROVEMENT_PRIOR, float(lo), float(hi), int(min_executions), int(max_pairs))

    def draw_ratios(self) -> np.ndarray:
        """float32 [cap]: the threshold ratio each pattern draws with, ``init / factor``.

        ``factor`` = the seed's rule's ``min(1, init / threshold)`` (a pattern whose executions
        crashed is drawn less, up to 3x; not crashing only keeps it neutral: promoting every
        clean pattern would favour whatever was drawn first) times the improvement factor: the
        share of its introducing offspring that beat their parents (``n_improved / count``)
        over the base rate of patterns of its length, shrunk by :data:`IMPROVEMENT_PRIOR` and
        bounded by :data:`IMPROVEMENT_BOUNDS`. A rate, not a count, so a pattern drawn often is
        not promoted for being drawn often. Tables that count no improvement (byte patterns)
        draw by the rule alone."""
        lo, hi = IMPROVEMENT_BOUNDS
        return dk.draw_ratios(self.length, self.count, self.n_improved, self.threshold_ratio,
                              np.float64(self.init_threshold), int(self.config.n_max), IMPROVEMENT_PRIOR,
                              float(lo), float(hi))

    def next_weights(self, prefix: Sequence[int], n_tokens: int, min_executions: int = 1,
                     ) -> np.ndarray:
        """Weights (float64 [n_tokens]) for the token after ``prefix`` (see :class:`Guide`)."""
        return self.guide(min_executions).weights([prefix], n_tokens)[0]

    def merge(self, other: "PatternTable") -> int:
        """Add ``other``'s patterns and statistics into this table; returns patterns created.

        Counts are summed, so merging the same snapshot twice counts it twice: islands should
        merge each peer's table once per exchange (or a table of deltas).
        """
        if other.config.n_max > self.config.n_max:
            raise ValueError("cannot merge patterns longer than this table's n_max")
        other_tokens = np.zeros((other.tokens.shape[0], self.config.n_max), np.int64)
        other_tokens[:, :other.config.n_max] = other.tokens
        live = other.length > 0
        too_short = live & (other.length < self.config.n_min)
        other_length = np.where(too_short, 0, other.length).astype(np.uint8)
        return int(pk.merge(other_tokens, other_length, other.count, other.last_seen, other.n_ok,
                            other.n_crash, other.n_improved, other.success_rate, other.threshold_ratio,
                            self.tokens, self.length, self.gram_hash, self.count, self.last_seen,
                            self.activation, self.n_ok, self.n_crash, self.n_improved, self.success_rate,
                            self.threshold_ratio, self.edge_node, self.edge_weight, self.index,
                            self.meta, self.cfg))

    # ------------------------------------------------------------------ inspection
    def __len__(self) -> int:
        return int(self.meta[pk.M_LIVE])

    @property
    def evictions(self) -> int:
        return int(self.meta[pk.M_EVICT])

    def find(self, gram: Sequence[int] | bytes) -> int:
        """Slot of the pattern ``gram``, or -1."""
        win = _as_tokens(gram)
        if not 1 <= win.size <= self.config.n_max:
            return -1
        return int(pk.find_gram(self.index, self.tokens, self.length, self.gram_hash, win))

    def stats(self) -> dict[str, np.ndarray]:
        """Live patterns: ``slot`` int64, ``tokens`` int64 [n, n_max] (zero-padded), ``length``,
        ``count``, ``n_ok``, ``n_crash``, ``n_improved`` int64, ``success_rate``,
        ``threshold_ratio`` float32."""
        slot = np.flatnonzero(self.length > 0)
        return {"slot": slot, "tokens": self.tokens[slot],
                "length": self.length[slot].astype(np.int64), "count": self.count[slot],
                "n_ok": self.n_ok[slot], "n_crash": self.n_crash[slot],
                "n_improved": self.n_improved[slot],
                "success_rate": self.success_rate[slot],
                "threshold_ratio": self.threshold_ratio[slot]}

    # ------------------------------------------------------------------ deltas
    _COUNTERS = ("count", "n_ok", "n_crash", "n_improved")

    def snapshot(self) -> dict:
        """``{tokens tuple: (count, n_ok, n_crash, n_improved)}`` of the live patterns, for
        :meth:`delta_since`."""
        s = self.stats()
        counters = np.stack([s[k] for k in self._COUNTERS], axis=1)
        return {tuple(int(t) for t in tok[:n]): tuple(int(v) for v in row)
                for tok, n, row in zip(s["tokens"], s["length"], counters)}

    def delta_since(self, snapshot: dict) -> "PatternDelta":
        """What this table observed since ``snapshot`` (a :meth:`snapshot`); rows with no new
        execution are left out. A pattern evicted and re-created since counts as new."""
        s = self.stats()
        keep, rows = [], []
        for row, (tok, n) in enumerate(zip(s["tokens"], s["length"])):
            now = [int(s[k][row]) for k in self._COUNTERS]
            before = snapshot.get(tuple(int(t) for t in tok[:n]))
            if before is not None and len(before) == len(now) and all(b <= v for b, v in zip(before, now)):
                now = [v - b for v, b in zip(now, before)]
            if now[1] + now[2] > 0:
                keep.append(row)
                rows.append(now)
        slots = s["slot"][np.asarray(keep, np.int64)]
        counts = np.asarray(rows, np.int64).reshape(-1, len(self._COUNTERS))
        return PatternDelta(self.config, self.tokens[slots].copy(), self.length[slots].copy(),
                            counts[:, 0].copy(), self.last_seen[slots].copy(), counts[:, 1].copy(),
                            counts[:, 2].copy(), self.success_rate[slots].copy(),
                            self.threshold_ratio[slots].copy(), counts[:, 3].copy())

    # ------------------------------------------------------------------ persistence
    def nbytes(self) -> int:
        """Bytes held by the persistent arrays at full capacity (``STATE_ARRAYS``)."""
        return sum(getattr(self, name).nbytes for name in STATE_ARRAYS)

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able metadata, arrays) for a brain file, sized by what the table holds;
        :meth:`from_arrays` inverts it.

        The ``ROW_ARRAYS`` keep their first ``rows = meta[M_USED]`` slots (views; slots beyond
        it have never been used and hold a new table's values). The candidate counters are
        ``candidates`` (uint16 [2**candidate_bits]) or, when fewer than a third are non-zero,
        ``candidate_slot`` (uint32 [k]) and ``candidate_count`` (uint16 [k]) for the non-zero
        ones. The hash index keeps its layout (probe order, tombstones) as its occupied
        entries: ``index_at`` (uint32 [h], positions) and ``index_slot`` (int32 [h], a pattern
        slot or -2 for a tombstone). ``history`` and ``meta`` as they are. Metadata: ``config``
        (capacities included), ``init_success``, ``init_threshold`` and ``rows``.
        """
        used = int(self.meta[pk.M_USED])
        meta = {"config": asdict(self.config), "init_success": float(self.init_success),
                "init_threshold": float(self.init_threshold), "rows": used}
        arrays = {name: getattr(self, name)[:used] for name in ROW_ARRAYS}
        nonzero = np.flatnonzero(self.candidates)
        if 3 * nonzero.size < self.candidates.size:  # 6 bytes a pair against 2 per counter
            arrays["candidate_slot"] = nonzero.astype(np.uint32)
            arrays["candidate_count"] = self.candidates[nonzero]
        else:
            arrays["candidates"] = self.candidates
        occupied = np.flatnonzero(self.index != pk.EMPTY)
        arrays["index_at"] = occupied.astype(np.uint32)
        arrays["index_slot"] = self.index[occupied]
        arrays["history"] = self.history
        arrays["meta"] = self.meta
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray], rule: np.ndarray,
                    ) -> "PatternTable":
        """A full-capacity table from :meth:`to_arrays`'s output, or from a version 1/2 brain
        file's (every slot, dense ``candidates``, no index: it is rebuilt); ValueError (KeyError
        for a missing array) if they are inconsistent."""
        table = cls(PatternConfig(**meta["config"]), rule, meta["init_success"],
                    meta["init_threshold"])
        rows = arrays["length"].shape[0] if arrays["length"].ndim == 1 else -1
        if not 0 <= rows <= table.config.capacity or meta.get("rows", rows) != rows:
            raise ValueError(f"pattern table of {rows} rows for capacity {table.config.capacity}")
        legacy = "n_improved" not in arrays    # written before improvements were counted
        for name in ROW_ARRAYS:  # a new table's slots, the stored rows written over its first
            if name == "n_improved" and legacy:
                continue
            ref, arr = getattr(table, name), arrays[name]
            if arr.shape != (rows,) + ref.shape[1:] or arr.dtype != ref.dtype:
                raise ValueError(f"pattern array {name!r}: expected {ref.dtype}"
                                 f"{(rows,) + ref.shape[1:]}, got {arr.dtype}{arr.shape}")
            ref[:rows] = arr
        table.improvements_counted = not legacy
        dense = ("candidates", "history", "meta") if "candidates" in arrays else ("history", "meta")
        for name in dense:
            ref, arr = getattr(table, name), arrays[name]
            if arr.shape != ref.shape or arr.dtype != ref.dtype:
                raise ValueError(f"pattern array {name!r}: expected {ref.dtype}{ref.shape}, "
                                 f"got {arr.dtype}{arr.shape}")
            setattr(table, name, np.ascontiguousarray(arr).copy())
        if "candidates" not in arrays:
            slot, count = arrays["candidate_slot"], arrays["candidate_count"]
            if slot.dtype != np.uint32 or count.dtype != np.uint16 or slot.ndim != 1 \
                    or count.shape != slot.shape \
                    or (slot.size and int(slot.max()) >= table.candidates.size):
                raise ValueError("pattern candidate counters are inconsistent")
            table.candidates[slot] = count
        used = int(table.meta[pk.M_USED])
        if not 0 <= used <= rows or np.any(table.length[used:] != 0) \
                or np.any(table.length > table.config.n_max) or table.meta[pk.M_RNG] == 0 \
                or int(table.meta[pk.M_LIVE]) != int(np.count_nonzero(table.length)):
            raise ValueError("pattern table arrays are inconsistent")
        if "index_at" in arrays:
            table._adopt_index(arrays["index_at"], arrays["index_slot"])
        else:
            pk.rebuild_index(table.index, table.length, table.gram_hash, table.meta)
        return table

    def _adopt_index(self, at: np.ndarray, slot: np.ndarray) -> None:
        """Set the hash index's occupied entries; ValueError unless every live pattern is in it
        once, the rest are tombstones (``meta[M_TOMB]`` of them) and an entry stays empty."""
        live = np.flatnonzero(self.length > 0)
        if at.dtype != np.uint32 or slot.dtype != np.int32 or at.ndim != 1 \
                or slot.shape != at.shape or at.size >= self.index.size \
                or (at.size and int(at.max()) >= self.index.size) or np.unique(at).size != at.size:
            raise ValueError("pattern index entries are inconsistent")
        filled = slot[slot >= 0]
        if np.count_nonzero(slot == pk.TOMB) != int(self.meta[pk.M_TOMB]) \
                or filled.size + int(self.meta[pk.M_TOMB]) != slot.size \
                or not np.array_equal(np.sort(filled), live):
            raise ValueError("pattern index does not match the patterns")
        self.index[at] = slot


@dataclass
class PatternDelta:
    """Pattern statistics learnt since a snapshot: the live rows ``PatternTable.merge`` reads.

    Attributes mirror a :class:`PatternTable`'s (``tokens`` int64 [n, n_max], ``length`` uint8
    [n], ``count``/``last_seen``/``n_ok``/``n_crash``/``n_improved`` int64 [n], ``success_rate`` and
    ``threshold_ratio`` float32 [n]) so a delta is a valid ``merge`` source (islands exchange
    them); counts are the increments, success rate and threshold ratio the current values
    (weighted by the increments when merged).
    """

    config: PatternConfig
    tokens: np.ndarray
    length: np.ndarray
    count: np.ndarray
    last_seen: np.ndarray
    n_ok: np.ndarray
    n_crash: np.ndarray
    success_rate: np.ndarray
    threshold_ratio: np.ndarray
    n_improved: np.ndarray | None = None    # (an island checkpoint of an earlier version: none)

    def __post_init__(self) -> None:
        if self.n_improved is None:
            self.n_improved = np.zeros(self.length.size, np.int64)

    def __len__(self) -> int:
        return int(self.length.size)


class Guide:
    """Context-indexed snapshot of pattern threshold ratios, turned into token weights.

    ``weights(prefixes, n_tokens)`` gives, for each prefix, float64 [n_tokens]: 1.0 where no
    learned pattern speaks; each known pattern ``prefix[-k:] + [g]`` (k = 0 .. n_max-1, so
    k = 0 is the unigram ``[g]``) multiplies ``g``'s weight by ``reference / threshold_ratio``,
    ``reference`` the table's initial threshold (a new pattern weighs 1). With the seed's
    starting 0.1 (byte patterns), a pattern the rule suppressed to 3.0 weighs 1/30 and a proven one 1;
    the gene table starts at 1.0 (``BrainParams.gene_initial_threshold``): proven weighs up to 10,
    suppressed 1/3. Build one
    per generation (``PatternTable.guide``), query it for every mutation.
    """

    def __init__(self, ctx_hash, ctx_slot, tokens, length, threshold_ratio, n_max: int,
                 threshold_min: float):
        self._args = (ctx_hash, ctx_slot, tokens, length, threshold_ratio, int(n_max),
                      float(threshold_min))

    def __len__(self) -> int:
        return int(self._args[0].size)

    def weights(self, prefixes: Sequence[Sequence[int]], n_tokens: int) -> np.ndarray:
        """float64 [len(prefixes), n_tokens]; prefixes may differ in length."""
        lengths = np.fromiter((len(p) for p in prefixes), np.int64, len(prefixes))
        width = max(int(lengths.max(initial=0)), 1)
        rows = np.zeros((lengths.size, width), np.int64)
        for i, p in enumerate(prefixes):
            if lengths[i]:
                rows[i, :lengths[i]] = _as_tokens(list(p))
        return pk.context_weights(rows, lengths, int(n_tokens), *self._args)


def flatten_sequences(sequences) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens int64 [n_tokens], ptr int64 [n_seq+1])`` from a list of sequences or a pair."""
    if isinstance(sequences, tuple) and len(sequences) == 2 \
            and isinstance(sequences[1], np.ndarray):
        tokens = _as_tokens(sequences[0])
        ptr = np.ascontiguousarray(sequences[1], np.int64)
        if ptr.ndim != 1 or ptr.size < 1 or ptr[0] != 0 or ptr[-1] != tokens.size \
                or np.any(np.diff(ptr) < 0):
            raise ValueError("ptr must start at 0, be non-decreasing and end at len(tokens)")
        return tokens, ptr
    lens = np.fromiter((len(s) for s in sequences), np.int64)
    ptr = np.zeros(lens.size + 1, np.int64)
    np.cumsum(lens, out=ptr[1:])
    tokens = _as_tokens(np.fromiter((t for s in sequences for t in s), np.int64, int(ptr[-1])))
    return tokens, ptr

