"""Lineage records as arrays: uid -> (parents, operator, generation of birth, length).

A generation adds a thousand records; as dict entries of tuples they cost a microsecond each in
Python, about as much as interpreting the genome. :class:`Lineage` keeps them as sorted arrays,
appended a generation at a time (uids are given out in increasing order) and pruned by one
kernel, and still reads and writes as the ``dict`` it replaces (``lineage[uid]``,
``lineage.get``, ``items()``), which reports, checkpoints and the optimisation phase use.
"""
from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np
from numba import njit

_FIELDS = ("uid", "p0", "p1", "op", "gen", "length")


class Lineage(MutableMapping):
    """uid -> ``(parents tuple, op str, generation, length)``; at most two parents."""

    def __init__(self, records: dict | None = None) -> None:
        self.ops: list[str] = []            # operator labels, by code
        self._code: dict[str, int] = {}
        self._cols = {k: np.zeros(0, np.int64) for k in _FIELDS}
        self._pending: list[dict] = []       # batches not yet joined to the columns
        if records:
            uids = np.fromiter(records, np.int64, len(records))
            par = np.full((len(records), 2), -1, np.int64)
            for i, rec in enumerate(records.values()):
                if len(rec[0]) > 2:
                    raise ValueError(f"a genome with {len(rec[0])} parents")
                par[i, :len(rec[0])] = rec[0]
            self._append(uids, par, self.codes([r[1] for r in records.values()]),
                         np.array([r[2] for r in records.values()], np.int64),
                         np.array([r[3] for r in records.values()], np.int64))

    # ------------------------------------------------------------------ batches
    def codes(self, labels) -> np.ndarray:
        """Operator codes (int64) of labels, new labels registered."""
        for op in set(labels) - set(self._code):
            self._code[op] = len(self.ops)
            self.ops.append(op)
        return np.array([self._code[op] for op in labels], np.int64)

    def add(self, first: int, parents: np.ndarray, ops: np.ndarray, gen: int, lengths: np.ndarray) -> None:
        """Records of the genomes ``first, first + 1, ...``: ``parents`` int64 [n, 2] (-1: none),
        ``ops`` int64 [n] operator codes (:meth:`codes`), born in ``gen``, of ``lengths``."""
        n = len(lengths)
        self._append(np.arange(first, first + n, dtype=np.int64), np.asarray(parents, np.int64).reshape(n, 2),
                     np.asarray(ops, np.int64), np.full(n, gen, np.int64), np.asarray(lengths, np.int64))

    def _append(self, uids, parents, ops, gen, lengths) -> None:
        self._pending.append({"uid": uids, "p0": parents[:, 0], "p1": parents[:, 1], "op": ops, "gen": gen,
                              "length": lengths})

    def columns(self) -> dict[str, np.ndarray]:
        """The records as arrays sorted by uid (``uid``, ``p0``, ``p1``, ``op``, ``gen``, ``length``)."""
        if self._pending:
            parts = [self._cols] + self._pending
            cols = {k: np.concatenate([p[k] for p in parts]) for k in _FIELDS}
            uid = cols["uid"]
            if uid.size > 1 and np.any(uid[1:] <= uid[:-1]):     # out of order or repeated: the
                order = np.argsort(uid, kind="stable")              # later record wins
                last = np.ones(uid.size, bool)
                s = uid[order]
                last[:-1] = s[1:] != s[:-1]
                keep = order[last]
                cols = {k: v[keep] for k, v in cols.items()}
            self._cols, self._pending = cols, []
        return self._cols

    # ------------------------------------------------------------------ mapping
    def _find(self, uid) -> int:
        cols = self.columns()
        i = int(np.searchsorted(cols["uid"], uid))
        return i if i < cols["uid"].size and cols["uid"][i] == uid else -1

    def __getitem__(self, uid):
        i = self._find(uid)
        if i < 0:
            raise KeyError(uid)
        c = self._cols
        parents = tuple(int(p) for p in (c["p0"][i], c["p1"][i]) if p >= 0)
        return parents, self.ops[int(c["op"][i])], int(c["gen"][i]), int(c["length"][i])

    def __setitem__(self, uid, rec) -> None:
        parents, op, gen, length = rec
        if len(parents) > 2:
            raise ValueError(f"a genome with {len(parents)} parents")
        par = np.full((1, 2), -1, np.int64)
        par[0, :len(parents)] = parents
        self._append(np.array([uid], np.int64), par, self.codes([op]), np.array([gen], np.int64),
                     np.array([length], np.int64))

    def __delitem__(self, uid) -> None:
        i = self._find(uid)
        if i < 0:
            raise KeyError(uid)
        self._cols = {k: np.delete(v, i) for k, v in self._cols.items()}

    def __contains__(self, uid) -> bool:
        return self._find(uid) >= 0

    def __iter__(self):
        return iter(self.columns()["uid"].tolist())

    def __len__(self) -> int:
        return int(self.columns()["uid"].size)

    def ancestry(self, uid: int, limit: int = 200) -> list[dict]:
        """``uid`` and its recorded ancestors, nearest first: uid, parents, operator, generation
        of birth, length (what ``python -m evolve analyze`` shows as the lineage)."""
        out, todo, seen = [], [uid], set()
        while todo and len(out) < limit:
            uid = todo.pop(0)
            if uid in seen or uid not in self:
                continue
            seen.add(uid)
            parents, op, gen, length = self[uid]
            out.append({"uid": uid, "parents": list(parents), "op": op, "generation": gen, "length": length})
            todo.extend(parents)
        return out

    # ------------------------------------------------------------------ pruning
    def prune(self, alive: np.ndarray, horizon: int) -> None:
        """Keep the records of ``alive`` uids and of their recorded ancestors, except ancestors
        born before generation ``horizon`` (and their own ancestors through them)."""
        cols = self.columns()
        if cols["uid"].size == 0:
            return
        alive = np.asarray(alive, np.int64)
        is_alive = np.isin(cols["uid"], alive)
        keep = _ancestry(cols["uid"], cols["p0"], cols["p1"], cols["gen"], is_alive, horizon)
        self._cols = {k: v[keep] for k, v in cols.items()}


@njit(cache=True)
def _ancestry(uid, p0, p1, gen, alive, horizon):
    """Kept records (bool [m]): reached from an alive record through parents, a record born
    before ``horizon`` only if alive. ``uid`` sorted; parents are older, so one pass from the
    youngest record settles it; a parent younger than its child (a record rewritten later)
    gets further passes."""
    m = uid.shape[0]
    reached = alive.copy()
    keep = np.zeros(m, np.bool_)
    changed = True
    while changed:
        changed = False
        for i in range(m - 1, -1, -1):
            if not reached[i] or keep[i] or (gen[i] < horizon and not alive[i]):
                continue
            keep[i] = True
            for p in (p0[i], p1[i]):
                if p < 0:
                    continue
                j = np.searchsorted(uid, p)
                if j < m and uid[j] == p and not reached[j]:
                    reached[j] = True
                    if j > i:
                        changed = True
    return keep
