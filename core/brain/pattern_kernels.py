"""Numba kernels of pattern learning: recurring n-grams of a token stream become patterns.

Pure functions on arrays (STYLE.md): no classes, no globals, the random state lives in ``meta``.
:class:`core.brain.patterns.PatternTable` owns the arrays (same names) and is the only caller.
Tokens are ``int64`` >= 0, so the same kernels learn from byte streams (0..255) and from streams
of gene ids.

Array contract (``cap`` pattern slots, ``max_n`` tokens per pattern, ``K`` edges per pattern):

===============  =======================  =================================================
name             dtype, shape             meaning
===============  =======================  =================================================
tokens           int64 [cap, max_n]       the n-gram, left-aligned, rest zero
length           uint8 [cap]              n, 0 for a free slot
gram_hash        uint64 [cap]             hash of the n-gram (``_hash``)
count            int64 [cap]              occurrences seen
last_seen        int64 [cap]              ``meta[M_TICK]`` when last seen (eviction is LRU)
activation       float32 [cap]            activation (a pattern is "active" while it is high)
mark             int64 [cap]              scratch: de-duplicates matches within one sequence
n_ok, n_crash    int64 [cap]              executions credited to the pattern, by verdict
success_rate     float32 [cap]            the seed's rule, per pattern
threshold_ratio  float32 [cap]
edge_node        int32 [cap, K]           pattern -> node edges, -1 for a free edge slot
edge_weight      float32 [cap, K]
index            int32 [hcap]             open addressing: slot, -1 empty, -2 tombstone
candidates       uint16 [ccap]            hashed occurrence counters of not-yet-patterns
history          int64 [max_n]            the last tokens of the stream (shift register)
meta             int64 [META_LEN]         counters, see ``M_*``
cfg              int64 [CFG_LEN]          n_min, n_max, min_count, age_interval, evict_sample
===============  =======================  =================================================

``hcap`` is a power of two >= 2 * cap and tombstones are purged when they pass cap / 2, so a
probe always meets an empty entry. Candidate counters are approximate (hash collisions may
promote an n-gram early); they are halved every ``age_interval`` tokens, so on an endless stream
only n-grams that recur within that horizon become patterns.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.brain.kernels import rule_step

M_TICK, M_USED, M_TOMB, M_RNG, M_HIST, M_AGE, M_LIVE, M_EVICT, M_STAMP = range(9)
META_LEN = 9
C_NMIN, C_NMAX, C_MINCOUNT, C_AGE, C_SAMPLE = range(5)
CFG_LEN = 5

EMPTY = -1
TOMB = -2


@njit(cache=True)
def _hash(win, start, n):
    """FNV-1a over the 64-bit tokens, then the splitmix64 finaliser (spreads low bits)."""
    h = np.uint64(0xCBF29CE484222325) ^ np.uint64(n)
    for i in range(n):
        h ^= np.uint64(win[start + i])
        h *= np.uint64(0x100000001B3)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@njit(cache=True)
def _rand(meta):
    """xorshift64: the table's explicit random state, advanced in place."""
    x = np.uint64(meta[M_RNG])
    x ^= x << np.uint64(13)
    x ^= x >> np.uint64(7)
    x ^= x << np.uint64(17)
    meta[M_RNG] = np.int64(x)
    return x


@njit(cache=True)
def find(index, tokens, length, gram_hash, h, win, start, n):
    """Slot of the n-gram ``win[start:start+n]`` (hash ``h``), or -1."""
    mask = index.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        s = index[i]
        if s == EMPTY:
            return -1
        if s >= 0 and gram_hash[s] == h and length[s] == n:
            same = True
            for k in range(n):
                if tokens[s, k] != win[start + k]:
                    same = False
                    break
            if same:
                return s
        i = (i + 1) & mask


@njit(cache=True)
def find_gram(index, tokens, length, gram_hash, win):
    """Slot of the whole n-gram ``win`` (int64 [n]), or -1."""
    return find(index, tokens, length, gram_hash, _hash(win, 0, win.shape[0]), win, 0, win.shape[0])


@njit(cache=True)
def _index_put(index, h, slot):
    """Store ``slot`` at the first free entry of its probe; True if a tombstone was reused."""
    mask = index.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while index[i] >= 0:
        i = (i + 1) & mask
    reused = index[i] == TOMB
    index[i] = slot
    return reused


@njit(cache=True)
def _index_drop(index, h, slot):
    mask = index.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while index[i] != slot:
        if index[i] == EMPTY:
            return
        i = (i + 1) & mask
    index[i] = TOMB


@njit(cache=True)
def rebuild_index(index, length, gram_hash, meta):
    """Re-insert every live slot into an emptied index (purges tombstones)."""
    index[:] = EMPTY
    for s in range(meta[M_USED]):
        if length[s] > 0:
            _index_put(index, gram_hash[s], s)
    meta[M_TOMB] = 0


@njit(cache=True)
def _victim(last_seen, count, meta, cfg):
    """Approximate LRU: the least recently seen of ``evict_sample`` random slots."""
    cap = last_seen.shape[0]
    best = np.int64(_rand(meta) % np.uint64(cap))
    for _ in range(cfg[C_SAMPLE] - 1):
        s = np.int64(_rand(meta) % np.uint64(cap))
        if last_seen[s] < last_seen[best] \
                or (last_seen[s] == last_seen[best] and count[s] < count[best]):
            best = s
    return best


@njit(cache=True)
def create(win, start, n, h, initial_count,
           tokens, length, gram_hash, count, last_seen, activation, n_ok, n_crash, n_improved,
           success_rate, threshold_ratio, edge_node, edge_weight, index, meta, cfg, init_success, init_threshold):
    """Make the n-gram a pattern in a free slot, evicting one when the table is full.

    Returns the slot. The evicted pattern's statistics and edges are cleared.
    """
    cap = length.shape[0]
    if meta[M_USED] < cap:
        s = meta[M_USED]
        meta[M_USED] += 1
    else:
        s = _victim(last_seen, count, meta, cfg)
        _index_drop(index, gram_hash[s], s)
        meta[M_TOMB] += 1
        meta[M_LIVE] -= 1
        meta[M_EVICT] += 1
    for k in range(tokens.shape[1]):
        tokens[s, k] = win[start + k] if k < n else 0
    length[s] = n
    gram_hash[s] = h
    count[s] = initial_count
    last_seen[s] = meta[M_TICK]
    activation[s] = 0.0
    n_ok[s] = 0
    n_crash[s] = 0
    n_improved[s] = 0
    success_rate[s] = init_success
    threshold_ratio[s] = init_threshold
    edge_node[s, :] = -1
    edge_weight[s, :] = 0.0
    if _index_put(index, h, s):
        meta[M_TOMB] -= 1
    meta[M_LIVE] += 1
    if meta[M_TOMB] > cap // 2:
        rebuild_index(index, length, gram_hash, meta)
    return s


@njit(cache=True)
def scan(seq_tokens, seq_ptr, stream, learn, energy,
         tokens, length, gram_hash, count, last_seen, activation, mark, n_ok, n_crash, n_improved,
         success_rate, threshold_ratio, edge_node, edge_weight, index, candidates, history, meta, cfg,
         init_success, init_threshold):
    """Match (and optionally learn) the n-grams of token sequences.

    Parameters
    ----------
    seq_tokens : int64 [n_tokens]
        Concatenated sequences, every token >= 0.
    seq_ptr : int64 [n_seq + 1]
        Sequence ``i`` is ``seq_tokens[seq_ptr[i]:seq_ptr[i+1]]``.
    stream : bool
        True: one continuing stream (``seq_ptr`` must be ``[0, n_tokens]``); n-grams span calls
        through ``history`` and the tick advances per token. False: independent sequences (genomes);
        n-grams never cross a sequence boundary and the tick advances per sequence.
    learn : bool
        Count unknown n-grams and promote those seen ``min_count`` times.
    energy : float32
        Added to a pattern's activation at each match.

    Returns
    -------
    match_ptr : int64 [n_seq + 1]
    match_slots : int32 [match_ptr[-1]]
        The distinct patterns matched in each sequence (CSR).
    """
    n_min, n_max = cfg[C_NMIN], cfg[C_NMAX]
    ccap_mask = np.uint64(candidates.shape[0] - 1)
    n_seq = seq_ptr.shape[0] - 1
    width = n_max - n_min + 1
    match_ptr = np.zeros(n_seq + 1, np.int64)
    match_slots = np.empty(seq_tokens.shape[0] * width, np.int32)
    n_match = 0
    for q in range(n_seq):
        meta[M_STAMP] += 1
        stamp = meta[M_STAMP]
        if not stream:
            meta[M_HIST] = 0
            meta[M_TICK] += 1
        for t in range(seq_ptr[q], seq_ptr[q + 1]):
            for k in range(history.shape[0] - 1):
                history[k] = history[k + 1]
            history[history.shape[0] - 1] = seq_tokens[t]
            if meta[M_HIST] < n_max:
                meta[M_HIST] += 1
            if stream:
                meta[M_TICK] += 1
            meta[M_AGE] += 1
            if meta[M_AGE] >= cfg[C_AGE]:
                meta[M_AGE] = 0
                for c in range(candidates.shape[0]):
                    candidates[c] >>= 1
            top = min(n_max, meta[M_HIST])
            for n in range(n_min, top + 1):
                start = history.shape[0] - n
                h = _hash(history, start, n)
                s = find(index, tokens, length, gram_hash, h, history, start, n)
                if s < 0:
                    if not learn:
                        continue
                    c = np.int64((h >> np.uint64(32)) & ccap_mask)
                    if candidates[c] < 65535:
                        candidates[c] += 1
                    if candidates[c] < cfg[C_MINCOUNT]:
                        continue
                    candidates[c] = 0
                    s = create(history, start, n, h, cfg[C_MINCOUNT] - 1,
                               tokens, length, gram_hash, count, last_seen, activation, n_ok,
                               n_crash, n_improved, success_rate, threshold_ratio, edge_node, edge_weight,
                               index, meta, cfg, init_success, init_threshold)
                    mark[s] = 0
                count[s] += 1
                last_seen[s] = meta[M_TICK]
                activation[s] += energy
                if mark[s] != stamp:
                    mark[s] = stamp
                    match_slots[n_match] = s
                    n_match += 1
        match_ptr[q + 1] = n_match
    return match_ptr, match_slots[:n_match].copy()


@njit(cache=True)
def observe(match_ptr, match_slots, seq_ok, seq_crash, n_ok, n_crash, success_rate,
            threshold_ratio, rule):
    """Credit each matched pattern with its sequence's outcomes.

    ``seq_ok``/``seq_crash`` are int64 [n_seq]. A sequence with executions counts once in the
    pattern's rule (one step with ``ok = seq_ok / (seq_ok + seq_crash)``), as a batch of test
    cases of one genome is one verdict on that genome's patterns.
    """
    for q in range(match_ptr.shape[0] - 1):
        total = seq_ok[q] + seq_crash[q]
        if total <= 0:
            continue
        ok = np.float32(seq_ok[q] / total)
        for m in range(match_ptr[q], match_ptr[q + 1]):
            s = match_slots[m]
            n_ok[s] += seq_ok[q]
            n_crash[s] += seq_crash[q]
            success_rate[s], threshold_ratio[s] = rule_step(success_rate[s], threshold_ratio[s],
                                                            ok, rule)


@njit(cache=True)
def link(match_ptr, match_slots, nodes, deltas, edge_node, edge_weight, wclip):
    """Strengthen (delta > 0) or weaken the edge pattern -> node for every match.

    A missing edge takes a free slot of the pattern's ``K`` slots, else replaces the weakest
    edge if the new one is stronger: a pattern keeps its ``K`` most decided associations.
    """
    K = edge_node.shape[1]
    for q in range(match_ptr.shape[0] - 1):
        node = nodes[q]
        d = deltas[q]
        for m in range(match_ptr[q], match_ptr[q + 1]):
            s = match_slots[m]
            hit = -1
            free = -1
            weakest = 0
            for k in range(K):
                if edge_node[s, k] == node:
                    hit = k
                    break
                if edge_node[s, k] < 0:
                    if free < 0:
                        free = k
                elif abs(edge_weight[s, k]) < abs(edge_weight[s, weakest]) \
                        or edge_node[s, weakest] < 0:
                    weakest = k
            if hit < 0:
                if free >= 0:
                    hit = free
                elif abs(d) > abs(edge_weight[s, weakest]):
                    hit = weakest
                else:
                    continue
                edge_node[s, hit] = node
                edge_weight[s, hit] = 0.0
            w = edge_weight[s, hit] + d
            edge_weight[s, hit] = min(max(w, -wclip), wclip)


@njit(cache=True)
def push(activation, edge_node, edge_weight, node_act, eps, keep):
    """Send active patterns' activation along their edges, then decay them by ``keep``.

    Node activations never go below zero (an inhibiting edge can only silence a node).
    """
    for s in range(activation.shape[0]):
        a = activation[s]
        if a <= eps:
            continue
        for k in range(edge_node.shape[1]):
            d = edge_node[s, k]
            if d >= 0:
                v = node_act[d] + a * edge_weight[s, k]
                node_act[d] = v if v > 0.0 else 0.0
        activation[s] = a * keep


@njit(cache=True)
def forget_nodes(edge_node, edge_weight, dead):
    """Clear every edge whose target is marked in ``dead`` (bool [n_nodes])."""
    for s in range(edge_node.shape[0]):
        for k in range(edge_node.shape[1]):
            d = edge_node[s, k]
            if d >= 0 and (d >= dead.shape[0] or dead[d]):
                edge_node[s, k] = -1
                edge_weight[s, k] = 0.0


@njit(cache=True)
def context_index(tokens, length, n_ok, n_crash, threshold_ratio, min_exec):
    """Index the informative patterns by their context (all tokens but the last).

    Returns ``(ctx_hash uint64 [m] ascending, ctx_slot int32 [m])`` over the live patterns
    with at least ``min_exec`` executions: a snapshot :func:`context_weights` searches.
    """
    m = 0
    for s in range(length.shape[0]):
        if length[s] > 0 and n_ok[s] + n_crash[s] >= min_exec:
            m += 1
    hashes = np.empty(m, np.uint64)
    slots = np.empty(m, np.int32)
    j = 0
    for s in range(length.shape[0]):
        if length[s] > 0 and n_ok[s] + n_crash[s] >= min_exec:
            hashes[j] = _hash(tokens[s], 0, length[s] - 1)
            slots[j] = s
            j += 1
    order = np.argsort(hashes)
    return hashes[order], slots[order]


@njit(cache=True)
def context_weights(prefixes, lengths, n_tokens, ctx_hash, ctx_slot, tokens, length,
                    threshold_ratio, n_max, threshold_min):
    """Weights for the token after each prefix.

    Parameters
    ----------
    prefixes : int64 [m, L]
        Row i's prefix is ``prefixes[i, :lengths[i]]`` (only its last n_max - 1 tokens count).
    ctx_hash, ctx_slot : from :func:`context_index`

    Returns
    -------
    float64 [m, n_tokens]
        For each known pattern ``prefix[-k:] + [g]`` in the index, the weight of ``g`` is
        multiplied by ``threshold_min / threshold``: patterns the rule suppressed (threshold near
        3.0) are drawn ~30x less often; unknown tokens and proven patterns keep weight 1.
    """
    m = prefixes.shape[0]
    w = np.ones((m, n_tokens), np.float64)
    for i in range(m):
        L = lengths[i]
        for k in range(0, n_max):
            if k > L:
                break
            h = _hash(prefixes[i], L - k, k)
            j = np.searchsorted(ctx_hash, h)
            while j < ctx_hash.shape[0] and ctx_hash[j] == h:
                s = ctx_slot[j]
                j += 1
                if length[s] != k + 1:
                    continue
                same = True
                for t in range(k):
                    if tokens[s, t] != prefixes[i, L - k + t]:
                        same = False
                        break
                g = tokens[s, k]
                if same and g < n_tokens:
                    w[i, g] *= threshold_min / threshold_ratio[s]
    return w


@njit(cache=True)
def merge(other_tokens, other_length, other_count, other_last_seen, other_n_ok, other_n_crash,
          other_n_improved, other_success_rate, other_threshold_ratio,
          tokens, length, gram_hash, count, last_seen, activation, n_ok, n_crash, n_improved,
          success_rate, threshold_ratio, edge_node, edge_weight, index, meta, cfg):
    """Add another table's live patterns into this one (islands exchanging knowledge).

    Counts add up; success rate and threshold ratio become the execution-weighted means of both.
    A pattern new here is created (possibly evicting one) with the other's statistics.
    Returns the number of patterns created.
    """
    created = 0
    for j in range(other_length.shape[0]):
        n = other_length[j]
        if n == 0:
            continue
        h = _hash(other_tokens[j], 0, n)
        s = find(index, tokens, length, gram_hash, h, other_tokens[j], 0, n)
        if s < 0:
            s = create(other_tokens[j], 0, n, h, other_count[j], tokens, length, gram_hash, count,
                       last_seen, activation, n_ok, n_crash, n_improved, success_rate, threshold_ratio,
                       edge_node, edge_weight, index, meta, cfg, other_success_rate[j],
                       other_threshold_ratio[j])
            n_ok[s] = other_n_ok[j]
            n_crash[s] = other_n_crash[j]
            n_improved[s] = other_n_improved[j]
            created += 1
            continue
        a = n_ok[s] + n_crash[s]
        b = other_n_ok[j] + other_n_crash[j]
        if a + b > 0:
            fa = a / (a + b)
            success_rate[s] = np.float32(fa * success_rate[s] + (1.0 - fa) * other_success_rate[j])
            threshold_ratio[s] = np.float32(fa * threshold_ratio[s]
                                            + (1.0 - fa) * other_threshold_ratio[j])
        count[s] += other_count[j]
        n_ok[s] += other_n_ok[j]
        n_crash[s] += other_n_crash[j]
        n_improved[s] += other_n_improved[j]
        last_seen[s] = max(last_seen[s], meta[M_TICK])
    return created


@njit(cache=True)
def context_table(n_tokens, tokens, length, n_ok, n_crash, threshold_ratio, min_exec,
                  threshold_min, max_pairs):
    """:func:`context_weights` for every context of up to two tokens, from the patterns.

    Returns (w, pairs): row 0 of ``w``: no context; row ``1 + b``: after ``b``; row
    ``1 + n + k``: after the pair of sorted key ``pairs[k] = a * n + b`` -- only the pairs that
    end a trigram pattern: after any other pair the weights are those of its last token's row.
    One pass over the patterns instead of one index search per context: a unigram ``[g]`` scales
    column g of every row, a bigram ``[b, g]`` the rows whose last token is b, a trigram
    ``[a, b, g]`` its one row. Same factors (``threshold_min / threshold``) as ``context_weights``.
    """
    w, pairs, uni, bi = _context_factors(n_tokens, tokens, length, n_ok, n_crash, threshold_ratio,
                                         min_exec, threshold_min, max_pairs)
    n = n_tokens
    for r in range(w.shape[0]):
        b = -1 if r == 0 else (r - 1 if r <= n else pairs[r - 1 - n] % n)
        for g in range(n):
            v = w[r, g] * uni[g]
            if b >= 0:
                v = v * bi[b, g]
            w[r, g] = v
    return w, pairs


@njit(cache=True)
def context_cumulative(n_tokens, base, tokens, length, n_ok, n_crash, threshold_ratio, min_exec,
                       threshold_min, max_pairs):
    """``(cumsum(base * w, axis=1), pairs)`` of :func:`context_table`'s ``(w, pairs)``, bit for
    bit, in one pass over ``w`` (no temporaries: the table a generation's gene draws read)."""
    w, pairs, uni, bi = _context_factors(n_tokens, tokens, length, n_ok, n_crash, threshold_ratio,
                                         min_exec, threshold_min, max_pairs)
    n = n_tokens
    for r in range(w.shape[0]):
        b = -1 if r == 0 else (r - 1 if r <= n else pairs[r - 1 - n] % n)
        acc = 0.0
        for g in range(n):
            v = w[r, g] * uni[g]
            if b >= 0:
                v = v * bi[b, g]
            acc += base[g] * v
            w[r, g] = acc
    return w, pairs


@njit(cache=True)
def _context_factors(n, tokens, length, n_ok, n_crash, threshold_ratio, min_exec, threshold_min,
                     max_pairs):
    """The factors of :func:`context_table`: ``w`` holding the trigrams' (ones elsewhere), the
    pair keys, the unigrams' per token and the bigrams' per (token, token).

    A pair gets a row only if a trigram after it has a factor other than 1, and at most
    ``max_pairs`` pairs do (those whose trigrams' factors sum the largest ``|log f|``): the
    table stays bounded (rows x n floats) however many trigrams the table holds; the trigrams of
    the pairs left out are not applied."""
    drawable = np.empty(length.shape[0], np.int64)
    m = 0
    for s in range(length.shape[0]):        # one pass over the table: most slots are idle
        if _drawable(s, n, tokens, length, n_ok, n_crash, min_exec):
            drawable[m] = s
            m += 1
    uni = np.ones(n, np.float64)
    bi = np.ones((n, n), np.float64)
    keys = np.empty(m, np.int64)
    score = np.empty(m, np.float64)
    n_keys = 0
    for i in range(m):
        s = drawable[i]
        if length[s] == 3 and threshold_ratio[s] != threshold_min:
            keys[n_keys] = tokens[s, 0] * n + tokens[s, 1]
            score[n_keys] = abs(np.log(threshold_min / threshold_ratio[s]))
            n_keys += 1
    order = np.argsort(keys[:n_keys])
    uk = np.empty(n_keys, np.int64)
    us = np.zeros(n_keys, np.float64)
    u = 0
    for j in range(n_keys):
        k = keys[order[j]]
        if u == 0 or uk[u - 1] != k:
            uk[u] = k
            u += 1
        us[u - 1] += score[order[j]]
    if u > max_pairs:
        top = np.argsort(-us[:u], kind="mergesort")[:max_pairs]
        pairs = np.sort(uk[top])
    else:
        pairs = uk[:u].copy()
    w = np.ones((1 + n + pairs.shape[0], n), np.float64)
    for i in range(m):
        s = drawable[i]
        L = length[s]
        f = threshold_min / threshold_ratio[s]
        g = tokens[s, L - 1]
        if L == 1:
            uni[g] *= f
        elif L == 2:
            bi[tokens[s, 0], g] *= f
        elif f != 1.0:
            key = tokens[s, 0] * n + tokens[s, 1]
            j = np.searchsorted(pairs, key)
            if j < pairs.shape[0] and pairs[j] == key:
                w[1 + n + j, g] *= f
    return w, pairs, uni, bi


@njit(cache=True, inline="always")
def _drawable(s, n, tokens, length, n_ok, n_crash, min_exec):
    """Whether pattern slot ``s`` steers draws: 1-3 tokens, all in the alphabet, executed enough."""
    L = length[s]
    if L == 0 or L > 3 or n_ok[s] + n_crash[s] < min_exec:
        return False
    for t in range(L):
        if tokens[s, t] < 0 or tokens[s, t] >= n:
            return False
    return True
