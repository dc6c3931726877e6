"""Numba kernels of gene n-gram credit (:mod:`core.brain.gene_grams`): n-grams looked up or
learnt as :func:`core.brain.pattern_kernels.scan` learns them, and the seed's rule applied once
per execution. Same array contract as :mod:`core.brain.pattern_kernels`."""
from __future__ import annotations

import numpy as np
from numba import njit

from core.brain.kernels import rule_step
from core.brain.pattern_kernels import C_MINCOUNT, C_NMAX, C_NMIN, M_TICK, _hash, create, find


@njit(cache=True)
def intern(grams, lens, owner, tokens, length, gram_hash, count, last_seen, activation, n_ok,
           n_crash, n_improved, success_rate, threshold_ratio, edge_node, edge_weight, index, candidates,
           meta, cfg, init_success, init_threshold):
    """The slot of each n-gram ``grams[i, :lens[i]]`` (int64 [m, >= max len]), learning those
    unknown as :func:`scan` does (a candidate until seen ``min_count`` times: -1 until then).

    ``owner`` int64 [m] (ascending): the sequence each belongs to; the tick (the eviction's
    clock) advances once per owner, as :func:`scan` advances it once per sequence.
    """
    ccap_mask = np.uint64(candidates.shape[0] - 1)
    out = np.full(grams.shape[0], -1, np.int32)
    last = np.int64(-1)
    for i in range(grams.shape[0]):
        if owner[i] != last:
            last = owner[i]
            meta[M_TICK] += 1
        n = lens[i]
        if n < cfg[C_NMIN] or n > cfg[C_NMAX]:
            continue
        h = _hash(grams[i], 0, n)
        s = find(index, tokens, length, gram_hash, h, grams[i], 0, n)
        if s < 0:
            c = np.int64((h >> np.uint64(32)) & ccap_mask)
            if candidates[c] < 65535:
                candidates[c] += 1
            if candidates[c] < cfg[C_MINCOUNT]:
                continue
            candidates[c] = 0
            s = create(grams[i], 0, n, h, cfg[C_MINCOUNT] - 1, tokens, length, gram_hash, count,
                       last_seen, activation, n_ok, n_crash, n_improved, success_rate, threshold_ratio,
                       edge_node, edge_weight, index, meta, cfg, init_success, init_threshold)
        count[s] += 1
        last_seen[s] = meta[M_TICK]
        out[i] = s
    return out


@njit(cache=True)
def _ok_run(sr, th, n_cases, rule):
    """The state after ``n_cases`` ok executions from ``(sr, th)``, as :func:`credit` steps it:
    one rule step each, stopping at the first step that leaves the state equal."""
    one = np.float32(1.0)
    for c in range(n_cases):
        sr2, th2 = rule_step(sr, th, one, rule)
        if sr2 == sr and th2 == th:
            break
        sr, th = sr2, th2
    return sr, th


@njit(cache=True)
def credit(owner, slots, crashed, improved, n_ok, n_crash, n_improved, success_rate,
           threshold_ratio, rule):
    """The seed's rule, one step per execution of the sequence that holds each pattern, and
    its improvements counted.

    ``owner`` int64 [m], ``slots`` int32 [m] (-1: skipped): pattern ``slots[i]`` was in
    sequence ``owner[i]``, whose executions ``crashed[owner[i]]`` (bool [n_seq, n_cases]) tell
    (ok = 1 unless crashed, the seed's ``0.9*s + 0.1*ok``); ``improved[owner[i]]`` (bool
    [n_seq]) adds one to ``n_improved``: the sequence beat its parents.
    """
    one, zero = np.float32(1.0), np.float32(0.0)
    n_cases = crashed.shape[1]
    # after a sequence's last crash, a state that an ok step leaves unchanged stays so (the
    # rule is a function of the state): the remaining ok steps are counted, not run. Patterns
    # credited often sit at that fixed point, so most executions cost nothing, bit for bit.
    last_crash = np.full(crashed.shape[0], -1, np.int64)
    for q in range(crashed.shape[0]):
        for c in range(n_cases - 1, -1, -1):
            if crashed[q, c]:
                last_crash[q] = c
                break
    # A sequence without a crash takes a pattern from its state to _ok_run's, a function of
    # the state's bits alone: kept per state (a generation's few thousand credits start from a
    # few dozen states: new patterns all from the initial one, then along the same path)
    cap = 16
    while cap < 2 * owner.shape[0]:
        cap *= 2
    memo_key = np.empty(cap, np.uint64)
    memo_used = np.zeros(cap, np.uint8)
    memo_sr = np.empty(cap, np.float32)
    memo_th = np.empty(cap, np.float32)
    state = np.empty(2, np.float32)
    bits = state.view(np.uint32)
    mask = np.uint64(cap - 1)
    for i in range(owner.shape[0]):
        s = slots[i]
        if s < 0:
            continue
        q = owner[i]
        if improved[q]:
            n_improved[s] += 1
        sr, th = success_rate[s], threshold_ratio[s]
        if last_crash[q] < 0:
            state[0], state[1] = sr, th
            key = (np.uint64(bits[0]) << np.uint64(32)) | np.uint64(bits[1])
            h = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
            at = np.int64(h & mask)
            while memo_used[at] and memo_key[at] != key:
                at = np.int64((np.uint64(at) + np.uint64(1)) & mask)
            if not memo_used[at]:
                memo_used[at] = 1
                memo_key[at] = key
                memo_sr[at], memo_th[at] = _ok_run(sr, th, n_cases, rule)
            n_ok[s] += n_cases
            success_rate[s], threshold_ratio[s] = memo_sr[at], memo_th[at]
            continue
        for c in range(n_cases):
            if crashed[q, c]:
                n_crash[s] += 1
                sr, th = rule_step(sr, th, zero, rule)
            else:
                n_ok[s] += 1
                sr2, th2 = rule_step(sr, th, one, rule)
                if c > last_crash[q] and sr2 == sr and th2 == th:
                    n_ok[s] += n_cases - 1 - c
                    break
                sr, th = sr2, th2
        success_rate[s], threshold_ratio[s] = sr, th


@njit(cache=True)
def introduced(tokens, length, fresh, n_max):
    """``gene_grams.introduced_grams`` in one pass: per genome (ascending), its distinct windows
    of 1..``n_max`` adjacent genes within its length holding a fresh gene, shorter windows
    first, then by position (a window seen earlier in the genome is not repeated).

    Returns ``(owner int64 [m], grams int64 [m, n_max] zero-padded, lens int64 [m])``."""
    n, L = tokens.shape
    kmax = min(n_max, L)
    cap = n * L * max(kmax, 1)
    owner = np.empty(cap, np.int64)
    grams = np.empty((cap, n_max), np.int64)
    lens = np.empty(cap, np.int64)
    m = 0
    for q in range(n):
        start = m
        size = min(length[q], L)
        for k in range(1, kmax + 1):
            for j in range(size - k + 1):
                hit = False
                for t in range(k):
                    if fresh[q, j + t]:
                        hit = True
                        break
                if not hit:
                    continue
                dup = False
                for p in range(start, m):
                    if lens[p] == k:
                        same = True
                        for t in range(k):
                            if grams[p, t] != tokens[q, j + t]:
                                same = False
                                break
                        if same:
                            dup = True
                            break
                if dup:
                    continue
                owner[m] = q
                lens[m] = k
                for t in range(n_max):
                    grams[m, t] = tokens[q, j + t] if t < k else 0
                m += 1
    return owner[:m].copy(), grams[:m].copy(), lens[:m].copy()
