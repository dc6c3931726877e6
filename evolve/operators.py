"""Variation and selection operators on linear genomes, in batches.

Families as DEAP names them: mutation (one parent), crossover (two parents), selection. A
generation's offspring are made by one Numba kernel call (:func:`vary`) on the parents' genes
as an array ``int64 [n, max_len, 5]`` (``op, a, b, c, imm`` per gene, see ``evolve.genes``):
Python never loops over genes.

Every random choice derives from the ``rng`` passed in (one ``random.Random`` per run,
checkpointed), so runs are reproducible and independent of the number of workers. New genes are
drawn from a table of cumulative weights per context (the two genes before the new one), which
the engine fills from the brain's gene-pattern weights (suppressed patterns are rarely produced)
or with the alphabet's base weights (``--no-brain``).
"""
from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
from numba import njit

from core.brain import draw_kernels as dk
from evolve.genes import Alphabet

#: mutation kind -> weight; a kind's code (what the kernels get) is its index here
MUTATIONS = {"replace": 3.0, "tweak": 3.0, "insert": 2.0, "delete": 2.0, "swap": 1.0, "flip": 0.5, "macro": 1.0}
#: crossover kind -> weight; a kind's code is its index here
CROSSOVERS = {"one_point": 1.0, "two_point": 1.0, "homologous": 1.0}


def _codes(table: dict, kinds: tuple) -> tuple:
    """The codes of ``kinds`` in ``table``: a kind the kernels do not implement, or one they
    implement that the table lacks, fails at import instead of mutating the wrong way."""
    if set(table) != set(kinds):
        raise ValueError(f"operator table {sorted(table)} != the kernels' kinds {sorted(kinds)}")
    return tuple(list(table).index(k) for k in kinds)


# Derived from the tables, in the kernels' own module: Numba compiles module globals in as
# constants, and its cache is invalidated by a change to this file only.
MUT_REPLACE, MUT_TWEAK, MUT_INSERT, MUT_DELETE, MUT_SWAP, MUT_FLIP, MUT_MACRO = _codes(
    MUTATIONS, ("replace", "tweak", "insert", "delete", "swap", "flip", "macro"))
CX_ONE_POINT, CX_TWO_POINT, CX_HOMOLOGOUS = _codes(CROSSOVERS, ("one_point", "two_point", "homologous"))


class Offspring(NamedTuple):
    """What :func:`vary` returns: one row per child."""

    genes: np.ndarray     #: int64 [n, max_len, 5]
    length: np.ndarray    #: int64 [n]
    second: np.ndarray    #: int64 [n]: index of the second parent (-1: no crossover)
    cx: np.ndarray        #: int64 [n]: crossover code (-1: none)
    mut: np.ndarray       #: int64 [n]: mutation code (-1: none)
    fresh: np.ndarray     #: bool [n, max_len]: the gene is in neither parent
    same: np.ndarray      #: bool [n]: the child equals its first parent
    macro: np.ndarray     #: int64 [n]: the macro-gene inserted (its row of the library; -1: none)


class Variation:
    """What the kernels need to know about an alphabet, as arrays (built once per run)."""

    def __init__(self, alphabet: Alphabet, max_len: int):
        self.n_ops = alphabet.n_genes
        self.n_regs = len(alphabet.regs)
        self.operands = alphabet.operand_table()
        self.raw_ops = alphabet.raw_op_table() if bool(self.operands[:, 0].any()) else np.zeros(16, np.int64)
        self.max_len = max_len


class MacroTable(NamedTuple):
    """Macro-genes for the ``macro`` mutation (``evolve.library``): each inserted whole, its
    registers renamed by a random permutation of the working set."""

    genes: np.ndarray     #: int64 [M, K, 5]
    length: np.ndarray    #: int64 [M]
    cum: np.ndarray       #: float64 [M]: cumulative draw weights


NO_MACROS = MacroTable(np.zeros((0, 1, 5), np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def vary(var: Variation, parents: np.ndarray, lengths: np.ndarray, first: np.ndarray, cxpb: float,
         mutpb: float, table: np.ndarray, rng: random.Random, macros: MacroTable | None = None) -> Offspring:
    """Offspring of ``parents`` (int64 [P, L, 5], ``lengths`` [P]), one per entry of ``first``
    (indices of the first parents, e.g. the selected ones, in order).

    Each child is a crossover with a random second parent (probability ``cxpb``; kind drawn by
    :data:`CROSSOVERS` weights) and/or a mutation (probability ``mutpb``, always when there was
    no crossover; kind by :data:`MUTATIONS` weights, ``macro`` only with ``macros``: without
    them the draws are those of a run before macro-genes existed). ``table`` is float64
    [contexts, n_ops] of cumulative draw weights (a single row: no context), or a pair (that,
    pair keys): see :func:`split_table`.

    Returns an :class:`Offspring`.
    """
    n = len(first)
    gen = np.random.default_rng(rng.getrandbits(64))
    second = np.where(gen.random(n) < cxpb, gen.integers(0, len(first), n), -1)
    second = np.where(second >= 0, np.asarray(first)[np.maximum(second, 0)], -1)
    cx_w = np.asarray(list(CROSSOVERS.values()))
    macros = NO_MACROS if macros is None or len(macros.length) == 0 else macros
    mut_w = np.asarray(list(MUTATIONS.values()))
    if len(macros.length) == 0:
        mut_w = mut_w[:MUT_MACRO]
    cx = np.where(second >= 0, gen.choice(len(cx_w), n, p=cx_w / cx_w.sum()), -1)
    mutate = (second < 0) | (gen.random(n) < mutpb)
    mut = np.where(mutate, gen.choice(len(mut_w), n, p=mut_w / mut_w.sum()), -1)
    seed = int(gen.integers(1, 2**62))
    out, out_len, fresh, same, used = _vary_kernel(
        np.ascontiguousarray(parents, np.int64), np.ascontiguousarray(lengths, np.int64),
        np.ascontiguousarray(first, np.int64), second, cx, mut, split_table(table),
        var.operands, var.raw_ops, var.n_regs, var.max_len, seed,
        np.ascontiguousarray(macros.genes, np.int64), np.ascontiguousarray(macros.length, np.int64),
        np.ascontiguousarray(macros.cum, np.float64))
    return Offspring(out, out_len, second, cx, mut, fresh, same, used)


def init_genomes(var: Variation, n: int, init_len: int, table: np.ndarray, rng: random.Random):
    """``n`` random genomes of 1..``init_len`` genes drawn from ``table``: (genes, lengths)."""
    seed = int(np.random.default_rng(rng.getrandbits(64)).integers(1, 2**62))
    return _init_kernel(n, init_len, var.max_len, split_table(table), var.operands, var.n_regs, seed)


def split_table(table) -> tuple:
    """The kernels' form of a draw table (``core.brain.draw_kernels``: a tuple whose rows may be
    computed on first use) from a lazy table (``PatternTable.lazy_draw_table``), a pair
    (cumulative weights float64 [rows, n_ops], pair keys int64 [k]) or a bare array.

    Rows: 0 no context, ``1 + b`` after gene b, ``1 + n + k`` after the genes (a, b) of pair key
    ``k`` (sorted keys ``a * n + b``: only the pairs the brain learned something about; any other
    pair draws from the row of its last gene, which is what its row would hold). A bare array
    is a table without pair rows."""
    if isinstance(table, tuple) and len(table) == 9:
        return table
    if isinstance(table, tuple):
        cum, pairs = table
    else:
        cum, pairs = table, np.zeros(0, np.int64)
    return dk.full(cum, pairs)


def op_labels() -> list[str]:
    """Every lineage label (``cx_two_point+mut_tweak``), in :func:`op_index`'s order."""
    cx_names = [[]] + [[f"cx_{n}"] for n in CROSSOVERS]
    mut_names = [[]] + [[f"mut_{n}"] for n in MUTATIONS]
    return ["+".join(c + m) for c in cx_names for m in mut_names]


def op_index(cx: np.ndarray, mut: np.ndarray) -> np.ndarray:
    """Each offspring's label as an index into :func:`op_labels` (int64 [n])."""
    return (np.asarray(cx, np.int64) + 1) * (len(MUTATIONS) + 1) + np.asarray(mut, np.int64) + 1


# ----------------------------------------------------------------------------- kernels
@njit(cache=True)
def _randint(lo, hi):
    """Uniform in [lo, hi] (inclusive)."""
    return lo + np.int64(np.random.random() * (hi - lo + 1)) if hi > lo else lo


@njit(cache=True)
def _operands(op, operands, n_regs, gene):
    """``gene`` := operation ``op`` with random operands (Alphabet.random_operands' rules)."""
    lo, hi, prefix = operands[op, 1], operands[op, 2], operands[op, 3]
    small_lo, small_hi = operands[op, 4], operands[op, 5]
    if prefix >= 0:
        imm = (prefix << 28) | _randint(0, (1 << 28) - 1)
    elif small_hi >= small_lo and np.random.random() < 0.7:
        imm = _randint(small_lo, small_hi)
    else:
        imm = _randint(lo, hi)
    gene[0] = op
    gene[1] = _randint(0, n_regs - 1)
    gene[2] = _randint(0, n_regs - 1)
    gene[3] = _randint(0, n_regs - 1)
    gene[4] = imm


@njit(cache=True)
def _draw(genes, i, tab, operands, n_regs, gene):
    """``gene`` := a new gene to follow ``genes[:i]``, its operation drawn from the row of
    ``tab`` for the (up to two) genes before it (see :func:`split_table`)."""
    table, pairs = tab[0], tab[2]
    n_ops = table.shape[1]
    row = 0
    if table.shape[0] > 1 and i >= 1:
        row = 1 + genes[i - 1, 0]
        if i >= 2 and pairs.shape[0] > 0:
            key = genes[i - 2, 0] * n_ops + genes[i - 1, 0]
            k = np.searchsorted(pairs, key)
            if k < pairs.shape[0] and pairs[k] == key:
                row = 1 + n_ops + k
    cum = dk.row(tab, row)
    u = np.random.random() * cum[n_ops - 1]
    op = np.searchsorted(cum, u, side="right")
    if op >= n_ops:
        op = n_ops - 1
    _operands(op, operands, n_regs, gene)


@njit(cache=True)
def _mutate(g, n, kind, tab, operands, raw_ops, n_regs, max_len, tmp, macros, macro_len,
            macro_cum, used, span):
    """Mutate ``g[:n]`` in place; returns the new length (``used[0]``: the macro-gene inserted;
    a genome with no room for it gets it written over as many of its genes). ``span`` := the
    positions ``[span[0], span[1])`` the mutation wrote new genes to (none: an empty span): every
    other gene is one of the parent's."""
    span[0] = 0
    span[1] = 0
    if kind == MUT_MACRO:      # insert a macro-gene whole, registers renamed (room permitting)
        m = -1
        if macro_cum.shape[0] > 0:
            m = np.searchsorted(macro_cum, np.random.random() * macro_cum[-1], side="right")
            m = min(m, macro_cum.shape[0] - 1)
        if m < 0 or macro_len[m] > max_len:
            kind = MUT_INSERT
        else:
            perm = np.arange(n_regs)
            for r in range(n_regs - 1, 0, -1):     # Fisher-Yates: a random renaming
                q = _randint(0, r)
                perm[r], perm[q] = perm[q], perm[r]
            k = macro_len[m]
            if n + k <= max_len:                   # room: inserted at a random place
                i = _randint(0, n)
                for j in range(n - 1, i - 1, -1):
                    g[j + k] = g[j]
            else:                                  # no room: written over k genes (the tail if need be)
                i = _randint(0, max(n - k, 0))
                n = max(n, i + k) - k
            for t in range(k):
                g[i + t] = macros[m, t]
                if operands[macros[m, t, 0], 0] != 1:     # a raw word's fields are not registers
                    for f in range(1, 4):
                        g[i + t, f] = perm[macros[m, t, f]]
            used[0] = m
            span[0], span[1] = i, i + k
            return n + k
    if kind == MUT_FLIP:   # flip 1-3 bits of a raw word (no raw word: an operand tweak)
        count = 0
        for i in range(n):
            if operands[g[i, 0], 0] == 1:
                count += 1
        if count == 0:
            kind = MUT_TWEAK
        else:
            pick = _randint(0, count - 1)
            for i in range(n):
                if operands[g[i, 0], 0] == 1:
                    if pick == 0:
                        flips = np.int64(0)
                        for _ in range(_randint(1, 3)):   # 1-3 distinct bits
                            bit = np.int64(1) << _randint(0, 31)
                            while flips & bit:
                                bit = np.int64(1) << _randint(0, 31)
                            flips |= bit
                        word = g[i, 4] ^ flips
                        g[i, 4] = word
                        g[i, 0] = raw_ops[(word >> 28) & 15]   # the token follows the nibble
                        span[0], span[1] = i, i + 1
                        return n
                    pick -= 1
    if kind == MUT_REPLACE:     # replace one gene by a newly drawn one
        i = _randint(0, n - 1)
        _draw(g, i, tab, operands, n_regs, g[i])
        span[0], span[1] = i, i + 1
    elif kind == MUT_TWEAK:   # tweak one operand (a register or the immediate) of one gene
        i = _randint(0, n - 1)
        _operands(g[i, 0], operands, n_regs, tmp)
        field = _randint(1, 4)
        g[i, field] = tmp[field]
        span[0], span[1] = i, i + 1
    elif kind == MUT_INSERT:   # insert a newly drawn gene (below the length limit)
        if n < max_len:
            i = _randint(0, n)
            for j in range(n, i, -1):
                g[j] = g[j - 1]
            _draw(g, i, tab, operands, n_regs, g[i])
            span[0], span[1] = i, i + 1
            n += 1
    elif kind == MUT_DELETE:   # delete one gene (never the last one)
        if n > 1:
            i = _randint(0, n - 1)
            for j in range(i, n - 1):
                g[j] = g[j + 1]
            n -= 1
    elif kind == MUT_SWAP:   # exchange two genes
        if n > 1:
            i = _randint(0, n - 1)
            j = _randint(0, n - 2)
            if j >= i:
                j += 1
            tmp[:] = g[i]
            g[i] = g[j]
            g[j] = tmp
    return n


@njit(cache=True)
def _cross(a, na, b, nb, kind, max_len, out):
    """A child of ``a[:na]`` and ``b[:nb]`` into ``out``; returns its length.

    one point: head of a up to a random cut, tail of b from its own cut; two point: a with a
    random segment replaced by a random segment of b; homologous: both cut at one position."""
    if kind == CX_ONE_POINT:
        parts = ((0, _randint(1, na)), (_randint(0, nb - 1), nb))
    elif kind == CX_TWO_POINT:
        i, j = _randint(0, na), _randint(0, na)
        if j < i:
            i, j = j, i
        k, m = _randint(0, nb), _randint(0, nb)
        if m < k:
            k, m = m, k
        if i + (m - k) + (na - j) == 0:
            return _copy_into(out, 0, a, 0, 1, max_len)
        n = _copy_into(out, 0, a, 0, i, max_len)
        n = _copy_into(out, n, b, k, m, max_len)
        return _copy_into(out, n, a, j, na, max_len)
    else:   # CX_HOMOLOGOUS
        cut = _randint(1, max(1, min(na, nb)))
        parts = ((0, cut), (cut, nb))
    n = _copy_into(out, 0, a, parts[0][0], parts[0][1], max_len)
    return _copy_into(out, n, b, parts[1][0], parts[1][1], max_len)


@njit(cache=True)
def _copy_into(out, n, src, start, stop, max_len):
    for i in range(start, stop):
        if n >= max_len:
            break
        out[n] = src[i]
        n += 1
    return n


@njit(cache=True)
def _vary_kernel(parents, lengths, first, second, cx, mut, tab, operands, raw_ops, n_regs, max_len,
                 seed, macros, macro_len, macro_cum):
    np.random.seed(seed)
    n = first.shape[0]
    width = max(max_len, parents.shape[1]) + 1
    out = np.zeros((n, max_len, 5), np.int64)
    out_len = np.zeros(n, np.int64)
    fresh = np.zeros((n, max_len), np.bool_)
    same = np.zeros(n, np.bool_)
    used = np.full(n, -1, np.int64)
    g = np.zeros((width + macros.shape[1], 5), np.int64)
    tmp = np.zeros(5, np.int64)
    span = np.zeros(2, np.int64)
    for k in range(n):
        a = parents[first[k]]
        na = lengths[first[k]]
        b = parents[max(second[k], 0)]
        nb = lengths[max(second[k], 0)]
        if cx[k] >= 0:
            m = _cross(a, na, b, nb, cx[k], max_len, g)
        else:
            m = min(na, max_len)
            g[:m] = a[:m]
        span[0] = 0
        span[1] = 0
        if mut[k] >= 0:
            m = _mutate(g, m, mut[k], tab, operands, raw_ops, n_regs, max_len, tmp, macros, macro_len,
                        macro_cum, used[k:k + 1], span)
        out[k, :m] = g[:m]
        out_len[k] = m
        same[k] = m == na
        for i in range(m):
            if same[k]:
                for f in range(5):
                    if g[i, f] != a[i, f]:
                        same[k] = False
                        break
        # a gene crossover or the mutation's shifts copied is one of a parent's: only the
        # mutation's new ones can be fresh
        for i in range(span[0], min(span[1], m)):
            new = True
            for j in range(na):
                if _equal(g[i], a[j]):
                    new = False
                    break
            if new and second[k] >= 0:
                for j in range(nb):
                    if _equal(g[i], b[j]):
                        new = False
                        break
            fresh[k, i] = new
    return out, out_len, fresh, same, used


@njit(cache=True)
def _equal(x, y):
    for f in range(5):
        if x[f] != y[f]:
            return False
    return True


@njit(cache=True)
def _init_kernel(n, init_len, max_len, tab, operands, n_regs, seed):
    np.random.seed(seed)
    out = np.zeros((n, max_len, 5), np.int64)
    out_len = np.zeros(n, np.int64)
    for k in range(n):
        m = min(_randint(1, init_len), max_len)
        for i in range(m):
            _draw(out[k], i, tab, operands, n_regs, out[k, i])
        out_len[k] = m
    return out, out_len


# ----------------------------------------------------------------------------- selection
def sel_tournament(costs: np.ndarray, k: int, rng: random.Random, size: int = 4) -> list[int]:
    """Indices of ``k`` tournament winners (lowest cost among ``size`` random entrants)."""
    n = len(costs)
    winners = []
    for _ in range(k):
        entrants = [rng.randrange(n) for _ in range(size)]
        winners.append(min(entrants, key=lambda i: (costs[i], i)))
    return winners


def sel_lexicase(errors: np.ndarray, k: int, rng: random.Random) -> list[int]:
    """Indices of ``k`` lexicase picks: filter on shuffled cases, keep the best on each in turn.

    ``errors`` is [n_individuals, n_cases] (lower is better). Specialists that are right on cases
    the others get wrong survive, which keeps diversity for program synthesis. Everything runs in
    a Numba kernel seeded from ``rng``, on the distinct error rows (a converged population holds
    many copies of one row, and copies never separate): each pick shuffles the case order only
    as far as it reads it, its first filter starts from the case's precomputed best rows, and
    the survivor is drawn in proportion to the rows' copies, then uniformly among them: the
    same distribution as filtering individuals one by one."""
    errors = np.ascontiguousarray(errors)
    n, n_cases = errors.shape
    narrow = errors.astype(np.uint8) if errors.size and 0 <= errors.min() and errors.max() < 256 else errors.astype(np.int64)
    keys = np.ascontiguousarray(narrow).view(np.dtype((np.void, narrow.itemsize * n_cases))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    rows = errors[first]
    members = np.argsort(inverse, kind="stable").astype(np.int64)       # individuals grouped by row
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    at_best = rows == rows.min(axis=0)[None, :]
    case_rows = np.nonzero(at_best.T)          # (case, row), sorted by case
    ptr = np.zeros(n_cases + 1, np.int64)
    np.cumsum(np.bincount(case_rows[0], minlength=n_cases), out=ptr[1:])
    seed = int(np.random.default_rng(rng.getrandbits(64)).integers(1, 2**62))
    return _lexicase_kernel(rows, ptr, case_rows[1].astype(np.int64), counts.astype(np.int64), members, start,
                            k, seed).tolist()


@njit(cache=True)
def _lexicase_kernel(errors, best_ptr, best_rows, counts, members, start, k, seed):
    np.random.seed(seed)
    m, n_cases = errors.shape
    picks = np.empty(k, np.int64)
    pool = np.empty(m, np.int64)
    order = np.arange(n_cases)
    for s in range(k):
        # the first case: its best rows, precomputed
        r = np.random.randint(0, n_cases)
        order[0], order[r] = order[r], order[0]
        case = order[0]
        size = best_ptr[case + 1] - best_ptr[case]
        pool[:size] = best_rows[best_ptr[case]:best_ptr[case + 1]]
        j = 1
        while size > 1 and j < n_cases:
            r = np.random.randint(j, n_cases)   # Fisher-Yates, one step at a time
            order[j], order[r] = order[r], order[j]
            case = order[j]
            j += 1
            lowest = errors[pool[0], case]
            for i in range(1, size):
                if errors[pool[i], case] < lowest:
                    lowest = errors[pool[i], case]
            kept = 0
            for i in range(size):
                if errors[pool[i], case] == lowest:
                    pool[kept] = pool[i]
                    kept += 1
            size = kept
        row = pool[0]
        if size > 1:   # survivors' copies are equally likely
            total = 0
            for i in range(size):
                total += counts[pool[i]]
            u = np.random.randint(0, total)
            for i in range(size):
                if u < counts[pool[i]]:
                    row = pool[i]
                    break
                u -= counts[pool[i]]
        picks[s] = members[start[row] + np.random.randint(0, counts[row])]
    return picks
