"""Bottom-up enumeration with observational equivalence: the three- to five-instruction programs
of a task, built from a bank of distinct values.

Why: the hard tasks' shortest programs (floor average ``eor; and; add x0, x0, x2, asr 1``,
popcount's four NEON instructions, parity's five) are three to five instructions, too many to
enumerate as instruction sequences (the two-instruction enumeration already runs 1.5 M
programs), and the genetic search rarely assembles them. Programs that compute the same values
on the enumeration's cases are interchangeable as operands, so a bank keeps one program per
distinct value vector, the first and cheapest found (Udupa et al., "TRANSIT", PLDI 2013; Albarghouthi
et al., "Recursive program synthesis", CAV 2013), and grows it by level: level ``k`` applies every
form of :mod:`evolve.bank_ops` to banked values whose levels sum to ``k - 1``.

The levels the bank stores (:data:`LEVELS`) are then searched from the target down (meet in the
middle): ``t = f(a, g(b))`` with ``f`` in add/sub/eor/eon is solved for ``g(b)`` and looked up in
an index of every banked value under every operand shift (hashed on a prefix of the cases first),
invertible unary forms are inverted, and the other forms are screened case by case over the last
level (unary) and over pairs of levels summing to :data:`LEVELS` (binary, as broadcasts): for a
boolean target the compare-and-set forms first, over two level-1 values even before level 2 is
built, and for any other target not at all. A level counts forms, not instructions: the
bit-count chain is one level of four instructions.

The work is a deterministic sequence of units (:meth:`Bank.step` runs them within a budget of
value-case operations), so a run stays reproducible; its position (units done) is the
checkpointed state: a resumed bank replays the units to that position (its hits were handed
over before the stop). Programs exact on the bank's cases are only candidates: the enumeration
screens them with the executors and the engine verifies them (:mod:`evolve.enumeration`).
"""
from __future__ import annotations

import numpy as np

from evolve import bank_ops as O

U = np.uint64
#: values the bank keeps (value vectors of the enumeration's cases: 64 x 8 bytes each, 64 MB)
MAX_VALUES = 1 << 17
#: the levels stored; the target search reaches twice this plus one
LEVELS = 2
#: candidate values computed at once (a chunk: its temporaries ~ CHUNK x cases x 8 bytes)
CHUNK = 1 << 14
#: cases of the target search's first lookup
PREFIX = 8
#: elements of one broadcast of the screen (a form over a block of operand pairs, one case)
BROADCAST = 1 << 20
#: the screen's broadcasts go on to the next case while more than 1/DENSE of the pairs pass
DENSE = 16
#: screened candidates left when they are checked on all cases at once
FEW = 64
FORMS = O.UNARY + O.BINARY
_INDEX = {f.name: i for i, f in enumerate(FORMS)}
#: the forms the target search solves for (the screen leaves them out)
SOLVED = frozenset({f"{name}{s}" for name in O.SOLVE_SECOND for s in O.OPERAND_SHIFTS} | {"sub"})


def value_hash(v: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """uint64 [n]: a hash of each row of ``v`` (uint64 [n, cases]); rows differing in one case
    never collide (``x ^ x >> 31`` and odd keys are bijections)."""
    return ((v ^ (v >> U(31))) * keys).sum(axis=-1, dtype=U)


def _every(form, la) -> bool:
    return True


def _early(form, la) -> bool:
    """The screen done before level 2 is built: compare-and-set over two level-1 values (four
    instructions; the screen leaves them out unless the target is a boolean)."""
    return form.arity == 2 and la == 1 and form.name.startswith("cset")


class NoRegister(Exception):
    """A program needs more temporaries than the working registers leave."""


class Bank:
    """The bank of a task's values on cases ``x`` (uint64 [cases, arity]) with target ``y``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_regs: int, seed: int, output_mask: int = (1 << 64) - 1,
                 max_values: int = MAX_VALUES):
        self.x, self.y = np.asarray(x, U), np.asarray(y, U)
        self.arity, self.n_regs, self.cap = self.x.shape[1], n_regs, max_values
        self.mask = U(output_mask)
        self.keys = np.random.default_rng([seed, 0xBA4C]).integers(0, 2**63, self.x.shape[0], dtype=U) * U(2) + U(1)
        self.target_hash = value_hash((self.y & self.mask)[None], self.keys)[0]
        n = self.cap
        self.vals = np.empty((n, self.x.shape[0]), U)       # pages are touched only as values arrive
        self.level, self.cost = np.zeros(n, np.int8), np.zeros(n, np.int16)
        self.form, self.left, self.right = (np.full(n, -1, np.int32) for _ in range(3))
        self.hash = np.zeros(n, U)
        self.size = 0
        self._sorted = np.zeros(0, U)            # bank hashes, sorted, and their entries
        self._order = np.zeros(0, np.int64)
        self.position = 0                        #: units done (the checkpointed state)
        self.spent = 0                           #: value-case operations done
        self.found = 0
        self._seen: set = set()
        self._hits: list = []
        self.exhausted = False
        self._units = self._work()
        for v in self.x.T:                       # the arguments: level 0, no instruction
            self._add(v[None], -1, np.array([-1]), np.array([-1]), 0, emit=False)

    # --------------------------------------------------------------------- stepping
    def step(self, budget: int) -> list[list]:
        """Run units until ``budget`` value-case operations are spent (at least one unit);
        returns the new programs exact on the bank's cases (gene lists, cheapest first)."""
        self._hits: list = []
        spent = 0
        while spent < budget:
            work = next(self._units, None)
            if work is None:
                self.exhausted = True
                break
            self.position += 1
            spent += work
        self.spent += spent
        return self._programs()

    def advance(self, position: int) -> None:
        """Replay the units up to ``position`` (a resumed run's bank), dropping their hits."""
        self._hits = []
        while self.position < position and (work := next(self._units, None)) is not None:
            self.position += 1
            self.spent += work
        self._programs()

    # --------------------------------------------------------------------- the bank
    def _add(self, vals, form: int, left, right, level: int, emit: bool = True) -> None:
        """Bank the new distinct rows of ``vals`` (uint64 [m, cases]) made by ``form`` from
        entries ``left`` and ``right`` (int [m]; -1: none); rows equal to the target are hits."""
        h = value_hash(vals, self.keys)
        if emit:
            th = h if self.mask == O.M64 else value_hash(vals & self.mask, self.keys)
            for i in np.flatnonzero(th == self.target_hash):
                if ((vals[i] & self.mask) == self.y).all():
                    self._hits.append((form, int(left[i]), int(right[i])))
        room = self.cap - self.size
        if room <= 0:
            return
        _, first = np.unique(h, return_index=True)
        first = np.sort(first)
        if self._sorted.size:
            at = np.minimum(np.searchsorted(self._sorted, h[first]), self._sorted.size - 1)
            first = first[self._sorted[at] != h[first]]
        first = first[:room]
        if not first.size:
            return
        k = slice(self.size, self.size + first.size)
        self.vals[k], self.hash[k] = vals[first], h[first]
        self.form[k], self.level[k] = form, level
        self.left[k], self.right[k] = left[first], right[first]
        cost = (FORMS[form].cost if form >= 0 else 0) + np.where(left[first] >= 0, self.cost[left[first]], 0) \
            + np.where(right[first] >= 0, self.cost[right[first]], 0)
        self.cost[k] = cost
        self.size += first.size
        new = h[first]
        by = np.argsort(new, kind="stable")
        at = np.searchsorted(self._sorted, new[by])
        self._sorted = np.insert(self._sorted, at, new[by])
        self._order = np.insert(self._order, at, np.arange(k.start, k.stop)[by])

    def _at_level(self, level: int) -> np.ndarray:
        return np.flatnonzero(self.level[:self.size] == level)

    def _lookup(self, h: np.ndarray) -> np.ndarray:
        """Bank entries with hashes ``h`` (-1: none)."""
        if not self._sorted.size:
            return np.full(h.shape, -1)
        at = np.minimum(np.searchsorted(self._sorted, h), self._sorted.size - 1)
        return np.where(self._sorted[at] == h, self._order[at], -1)

    # --------------------------------------------------------------------- the units
    def _work(self):
        """Generator of the units of work, each yielding its value-case operations: the
        cheapest reach first (the target searched over level 1 before level 2 is built)."""
        yield from self._forward(1)
        yield from self._inverted()
        yield from self._solved((0, 1), (0, 1))                  # three forms: e.g. eor; and; add, asr
        yield from self._screened(2, _early)                      # a boolean: eor; and; cmp; cset ls
        for level in range(2, LEVELS + 1):
            yield from self._forward(level)
            yield from self._inverted()
            yield from self._shared(level)                       # cheap: two pairs per value
            below = tuple(range(level))
            yield from self._solved((level,), below)
            yield from self._solved(below, (level,))
            yield from self._screened(level, (lambda f, la: not _early(f, la)) if level == 2 else _every)
            yield from self._solved((level,), (level,))

    def _forward(self, level: int):
        """Level ``level``: every form over entries whose levels sum to ``level - 1``, cheap forms
        first, and of those the forms without a parameter first: level 2 holds 2**17 values, and
        the ~470 shift, mask and immediate variants over level 1 alone fill it, which left out
        every binary form (p18's ``x ^ (x - 1)``)."""
        cases = self.x.shape[0]
        for fi in sorted(range(len(FORMS)), key=lambda i: (FORMS[i].cost, "#" in FORMS[i].name, FORMS[i].arity)):
            f = FORMS[fi]
            for left, right in self._operands(f.arity, level - 1):
                vals = f.fn(self.vals[left]) if f.arity == 1 else f.fn(self.vals[left], self.vals[right])
                self._add(vals, fi, left, right, level)
                yield len(left) * cases

    def _operands(self, arity: int, total: int):
        """Chunks (left, right) of entries whose levels sum to ``total`` (right: -1 for unary)."""
        if arity == 1:
            src = self._at_level(total)
            for a in range(0, src.size, CHUNK):
                s = src[a:a + CHUNK]
                yield s, np.full(s.size, -1)
            return
        for la in range(total + 1):
            A, B = self._at_level(la), self._at_level(total - la)
            if not A.size or not B.size:
                continue
            rows = max(1, CHUNK // B.size)
            for a in range(0, A.size, rows):
                left, right = np.meshgrid(A[a:a + rows], B, indexing="ij")
                for c in range(0, left.size, CHUNK):
                    yield left.ravel()[c:c + CHUNK], right.ravel()[c:c + CHUNK]

    def _inverted(self):
        """Level LEVELS + 1 through invertible unary forms: the target's preimage, looked up."""
        names = list(O.INVERTIBLE_UNARY)
        if self.mask != O.M64:
            return
        pre = np.stack([O.INVERTIBLE_UNARY[n](self.y) for n in names])
        hit = self._lookup(value_hash(pre, self.keys))
        for n, e in zip(names, hit):
            if e >= 0 and (self.vals[e] == pre[names.index(n)]).all():
                self._hits.append((_INDEX[n], int(e), -1))
        yield len(names) * self.x.shape[0]

    def _solved(self, a_levels: tuple, b_levels: tuple):
        """``t = f(a, g(b))`` for f in add/sub/eor/eon and every operand shift g, with ``a`` and
        ``b`` banked at ``a_levels`` and ``b_levels``: ``g(b)`` solved from t and a, looked up
        among g applied to every such b (and ``t = b - a``: b = t + a)."""
        if self.mask != O.M64:
            return
        cases = self.x.shape[0]
        A = np.flatnonzero(np.isin(self.level[:self.size], a_levels))
        B = np.flatnonzero(np.isin(self.level[:self.size], b_levels))
        if not A.size or not B.size:
            return
        P = self._case_order()[:PREFIX]
        kp = self.keys[P]
        for suffix, g in O.OPERAND_SHIFTS.items():
            # g(b) hashed on the prefix cases only; a value's 64 cases are computed when its
            # prefix matches (a run of b with that prefix hash, checked whole)
            ph = np.concatenate([value_hash(g(self.vals[B[k:k + CHUNK, None], P]), kp) for k in range(0, B.size, CHUNK)])
            by = np.argsort(ph, kind="stable")
            sorted_p, sorted_e = ph[by], B[by]
            yield B.size * P.size
            solves = list(O.SOLVE_SECOND.items()) + ([("rsub", lambda t, a: t + a)] if suffix == "" else [])
            for name, solve in solves:
                fi = _INDEX["sub" if name == "rsub" else name + suffix]
                for k in range(0, A.size, CHUNK):
                    a = A[k:k + CHUNK]
                    nph = value_hash(solve(self.y[P], self.vals[a[:, None], P]), kp)
                    lo, hi = np.searchsorted(sorted_p, nph, "left"), np.searchsorted(sorted_p, nph, "right")
                    work = a.size * P.size
                    for i in np.flatnonzero(hi > lo):
                        need = solve(self.y, self.vals[a[i]])
                        run = sorted_e[lo[i]:hi[i]]
                        ok = np.flatnonzero((g(self.vals[run]) == need).all(axis=1))
                        work += run.size * cases
                        if ok.size:                 # the first such b, as equal values are one
                            b = int(run[ok[0]])
                            self._hits.append((fi, b, int(a[i])) if name == "rsub" else (fi, int(a[i]), b))
                    yield work

    def _screened(self, level: int, which):
        """The other forms at level ``level + 1``, screened case by case: unary forms over
        ``level``, binary ones over pairs of levels summing to ``level``, each pair of level
        sets as one broadcast on the first case (no gathered operand rows), the survivors on the
        next cases until few are left, those on all (each unit yields the value-case operations
        it did). Why: gathering two operand rows per pair cost ~20x the operation itself, and
        level 2's pairs are millions: p10's ``cmp; cset ls`` over two level-1 values was reached
        after ~190 s of bank alone, ~2 s this way. ``which(form, la)``: whether a form is screened
        over the operand levels ``(la, level - la)`` (unary forms: ``la`` is ``level``)."""
        order = self._case_order()
        column = self._column_cache(order)
        y, cases, full_mask = self.y & self.mask, self.x.shape[0], self.mask == O.M64
        for fi in self._screen_order(y):
            f = FORMS[fi]
            if f.name in SOLVED or f.name in O.INVERTIBLE_UNARY:
                continue
            if f.arity == 1:
                if not which(f, level):
                    continue
                for left, _ in self._operands(1, level):
                    part = f.fn(column(0)[left])
                    left = left[(part if full_mask else part & self.mask) == y[order[0]]]
                    yield left.size
                    yield from self._survivors(fi, left, None, 1, column, order)
                continue
            for la in range(level + 1):
                A, B = self._at_level(la), self._at_level(level - la)
                if not A.size or not B.size or not which(f, la):
                    continue
                rows = max(1, BROADCAST // B.size)
                for a in range(0, A.size, rows):
                    left = A[a:a + rows]
                    match, c = None, 0          # broadcast while many pairs pass (1-bit targets)
                    while c < cases and (match is None or match.sum() * DENSE > match.size):
                        part = f.fn(column(c)[left][:, None], column(c)[B][None, :])
                        hit = (part if full_mask else part & self.mask) == y[order[c]]
                        match = hit if match is None else match & hit
                        c += 1
                    yield match.size * c
                    li, ri = np.divmod(np.flatnonzero(match), B.size)   # (2-D nonzero: 50x slower)
                    yield from self._survivors(fi, left[li], B[ri], c, column, order)

    def _shared(self, level: int):
        """The screened forms over a value of ``level`` and one of its own operands (above level 0,
        whose pairs the screen has): a program that reads an intermediate twice, e.g. p18's
        ``sub x1, x0, #1; eor x2, x0, x1; cmp x2, x1; cset x0, hi``, which is level 2 + 1 + 1 but
        costs one form more than its level-2 value. Few pairs (two per value, both orders)."""
        E = self._at_level(level)
        kids = np.concatenate([self.left[E], self.right[E]])
        outer = np.concatenate([E, E])
        keep = kids >= 0
        keep[keep] = self.level[kids[keep]] >= 1
        left = np.concatenate([outer[keep], kids[keep]])
        right = np.concatenate([kids[keep], outer[keep]])
        if not left.size:
            return
        order = self._case_order()
        column = self._column_cache(order)
        y, full_mask = self.y & self.mask, self.mask == O.M64
        l0, r0 = column(0)[left], column(0)[right]          # the first case gathered once
        for fi in self._screen_order(y):
            f = FORMS[fi]
            if f.arity == 2 and f.name not in SOLVED:
                part = f.fn(l0, r0)
                hit = np.flatnonzero((part if full_mask else part & self.mask) == y[order[0]])
                yield left.size
                yield from self._survivors(fi, left[hit], right[hit], 1, column, order)

    @staticmethod
    def _screen_order(y: np.ndarray) -> list[int]:
        """The forms to screen, by what they can give: a target of 0s and 1s is a boolean, which
        the compare-and-set forms make, so they go first; any other target no ``cset`` can
        make, so they are left out."""
        booleans = [i for i, f in enumerate(FORMS) if f.name.startswith("cset")]
        others = [i for i, f in enumerate(FORMS) if not f.name.startswith("cset")]
        return booleans + others if bool((y <= 1).all()) else others

    def _case_order(self) -> np.ndarray:
        """The cases, those where the target's value is rarest first (p18's powers of two, where a
        mostly-0 boolean is 1), then those on which the banked values differ most (distinct
        values in a sample): an edge case such as x = 0, where most values are 0, screens out
        nothing."""
        sample = self.vals[:self.size:max(1, self.size // 4096)]
        distinct = np.array([np.unique(sample[:, c]).size for c in range(sample.shape[1])])
        y = self.y & self.mask
        _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        return np.lexsort((-distinct, counts[inverse]))

    def _column_cache(self, order: np.ndarray):
        """``column(i)``: case ``order[i]`` of every banked value, contiguous, computed once."""
        cols: dict = {}

        def column(i: int) -> np.ndarray:
            if i not in cols:
                cols[i] = np.ascontiguousarray(self.vals[:self.size, order[i]])
            return cols[i]
        return column

    def _survivors(self, fi: int, left, right, c: int, column, order):
        """Screen form ``fi`` on ``left`` (and ``right``) entries, which match on the first
        ``c`` cases of ``order``: the survivors of each case go on to the next; at most
        :data:`FEW` are checked on all."""
        f, y, cases = FORMS[fi], self.y & self.mask, self.x.shape[0]
        work = 0
        while left.size > FEW and c < cases:
            part = f.fn(column(c)[left]) if right is None else f.fn(column(c)[left], column(c)[right])
            keep = np.flatnonzero((part & self.mask) == y[order[c]])
            work += left.size
            left, right = left[keep], (None if right is None else right[keep])
            c += 1
        if left.size:
            full = f.fn(self.vals[left]) if right is None else f.fn(self.vals[left], self.vals[right])
            work += full.size
            for i in np.flatnonzero(((full & self.mask) == y).all(axis=1)):
                self._hits.append((fi, int(left[i]), -1 if right is None else int(right[i])))
        yield max(work, 1)

    # --------------------------------------------------------------------- programs
    def _programs(self) -> list[list]:
        """The hits of this step as gene lists, cheapest first, each program once."""
        out = []
        for form, left, right in self._hits:
            try:
                genes = self.genes(form, left, right)
            except NoRegister:
                continue
            key = tuple(genes)
            if key not in self._seen:
                self._seen.add(key)
                out.append(genes)
        self._hits = []
        self.found += len(out)
        return sorted(out, key=len)

    def genes(self, form: int, left: int, right: int) -> list[tuple]:
        """The genes of ``form`` applied to entries ``left`` and ``right`` (-1: none), into x0:
        each operand's program first (shared operands once), in the working registers: a
        register is reused once its value's last reader is emitted."""
        uses: dict = {}

        def count(e: int) -> None:
            uses[e] = uses.get(e, 0) + 1
            if uses[e] == 1 and self.form[e] >= 0:
                for c in (self.left[e], self.right[e]):
                    if c >= 0:
                        count(int(c))

        kids = [int(c) for c in (left, right) if c >= 0]
        for c in kids:
            count(c)
        out: list = []
        regs: dict = {}
        free = set(range(self.arity, self.n_regs))

        def operands(children: list) -> list:
            srcs = [emit(c) for c in children]
            for c in children:
                uses[c] -= 1
                if uses[c] == 0:
                    free.add(regs[c])
            return srcs

        def emit(e: int) -> int:
            if e not in regs:
                if self.form[e] < 0:                 # an argument: entry k is x<k>
                    regs[e] = e
                else:
                    srcs = operands([int(c) for c in (self.left[e], self.right[e]) if c >= 0])
                    if not free:
                        raise NoRegister
                    d = min(free)
                    free.discard(d)
                    out.extend(FORMS[self.form[e]].genes(d, srcs))
                    regs[e] = d
            return regs[e]

        out_srcs = operands(kids)
        out.extend(FORMS[form].genes(0, out_srcs))
        return out
