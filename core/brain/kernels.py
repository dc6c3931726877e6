"""Numba kernels of the brain: activation, firing selection and the seed's reinforcement rule.

Pure ``@njit(cache=True)`` functions on arrays (STYLE.md); :class:`core.brain.graph.Brain` owns
the arrays (same names), validates them once and is the only caller. Array contract:

===============  ======================  ==============================================
name             dtype, shape            meaning
===============  ======================  ==============================================
activation       float32 [n_nodes]       node activation (>= 0)
port_value       uint8 [256]             last byte seen on each port (nodes 0..255)
indptr           int64 [n_nodes + 1]     CSR of *incoming* edges: row i lists the
indices          int32 [n_edges]         sources of node i with their weights, so a
weights          float32 [n_edges]       propagation step is a matrix-vector product
exec_node        int32 [n_exec]          node id of each EXEC slot
success_rate     float32 [n_exec]        success rate (EMA of ok)
threshold_ratio  float32 [n_exec]        in [threshold_min, threshold_max]
exec_runs        int64 [n_exec]          executions
exec_outcomes    int64 [n_exec, N_OUT]   executions by outcome class (column 0 = ok)
rule             float32 [RULE_LEN]      the rule's constants, see ``R_*``
===============  ======================  ==============================================
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

# Layout of the rule's constants (defaults are the seed's, see core.brain.params.RuleParams).
R_KEEP, R_GAIN, R_HIGH, R_LOW, R_DOWN, R_UP, R_MIN, R_MAX = range(8)
RULE_LEN = 8


@njit(cache=True)
def rule_step(success_rate, threshold_ratio, ok, rule):
    """The seed's rule for one execution, in float32 like the seed's C; returns the new
    ``(success_rate, threshold_ratio)``.

    ``s = keep*s + gain*ok``; ``s > high`` -> ``ratio *= down``; else ``s < low`` ->
    ``ratio *= up``; then clamp the ratio to [min, max]. ``ok`` may be fractional (a batch
    verdict).
    """
    s = rule[R_KEEP] * success_rate + rule[R_GAIN] * ok
    ratio = threshold_ratio
    if s > rule[R_HIGH]:
        ratio = ratio * rule[R_DOWN]
    elif s < rule[R_LOW]:
        ratio = ratio * rule[R_UP]
    if ratio < rule[R_MIN]:
        ratio = rule[R_MIN]
    elif ratio > rule[R_MAX]:
        ratio = rule[R_MAX]
    return s, ratio


@njit(cache=True)
def reinforce_outcomes(slots, outcomes, success_rate, threshold_ratio, exec_runs,
                       exec_outcomes, rule):
    """Apply the rule once per execution, in case order.

    Parameters
    ----------
    slots : int64 [n]
        EXEC slots; repeats are applied in order.
    outcomes : uint8 [n, n_cases]
        ``core.outcome.Outcome`` values, validated < N_OUTCOMES by the caller.

    Returns
    -------
    int64
        Number of crashed executions (outcome != OK).
    """
    crashes = 0
    one = np.float32(1.0)
    zero = np.float32(0.0)
    n_cases = outcomes.shape[1]
    for i in range(slots.shape[0]):
        e = slots[i]
        s = success_rate[e]
        ratio = threshold_ratio[e]
        last_crash = -1
        for j in range(n_cases - 1, -1, -1):
            if outcomes[i, j] != 0:
                last_crash = j
                break
        for j in range(n_cases):
            o = outcomes[i, j]
            if o == 0:
                s2, r2 = rule_step(s, ratio, one, rule)
                exec_outcomes[e, 0] += 1
                # past the last crash, a state an ok step leaves unchanged stays so: the
                # remaining ok steps are counted, not run (bit for bit the same state)
                if j > last_crash and s2 == s and r2 == ratio:
                    exec_outcomes[e, 0] += n_cases - 1 - j
                    break
                s, ratio = s2, r2
            else:
                s, ratio = rule_step(s, ratio, zero, rule)
                crashes += 1
                exec_outcomes[e, o] += 1
        success_rate[e] = s
        threshold_ratio[e] = ratio
        exec_runs[e] += outcomes.shape[1]
    return crashes


@njit(cache=True)
def reinforce_counts(slots, counts, success_rate, threshold_ratio, exec_runs, exec_outcomes,
                     rule):
    """Apply the rule once per node with ``ok = counts[:, 0] / counts.sum(1)`` (a batch verdict).

    ``counts`` is int64 [n, N_OUT]; rows with no execution are skipped. Returns the number of
    crashed executions.
    """
    crashes = 0
    for i in range(slots.shape[0]):
        e = slots[i]
        total = 0
        for o in range(counts.shape[1]):
            total += counts[i, o]
            exec_outcomes[e, o] += counts[i, o]
        if total == 0:
            continue
        crashes += total - counts[i, 0]
        ok = np.float32(counts[i, 0] / total)
        success_rate[e], threshold_ratio[e] = rule_step(success_rate[e], threshold_ratio[e],
                                                        ok, rule)
        exec_runs[e] += total
    return crashes


@njit(cache=True)
def inject(activation, port_value, ports, values, energies):
    """Put byte ``values[i]`` on port ``ports[i]`` (0..255) with energy ``energies[i]``."""
    for i in range(ports.shape[0]):
        p = ports[i]
        activation[p] += energies[i]
        port_value[p] = values[i]


@njit(cache=True)
def feed_bytes(activation, port_value, data, energy):
    """Feed a byte stream with the stream convention: byte ``b`` arrives on port ``b``."""
    for i in range(data.shape[0]):
        b = data[i]
        activation[b] += energy
        port_value[b] = b


@njit(cache=True, fastmath=True)
def propagate(indptr, indices, weights, act_in, act_out, keep):
    """One step: ``act_out[i] = keep*act_in[i] + sum_j w_ij * act_in[j]``, floored at 0.

    Single-threaded; ``act_in`` and ``act_out`` must be distinct float32 [n_nodes] arrays.
    The unsigned edge counter and source index spare numba's negative-index wraparound test
    in the inner loop (~1.3x: the loop is a gather, as in scipy's csr_matvec).
    """
    one = np.uint64(1)
    start = np.uint64(indptr[0])
    for i in range(act_out.shape[0]):
        end = np.uint64(indptr[i + 1])
        acc = np.float32(0.0)
        k = start
        while k < end:
            acc += weights[k] * act_in[np.uint32(indices[k])]
            k += one
        start = end
        v = keep * act_in[i] + acc
        act_out[i] = v if v > 0.0 else np.float32(0.0)


@njit(cache=True, parallel=True)
def propagate_parallel(indptr, indices, weights, act_in, act_out, keep):
    """:func:`propagate` over ``numba.get_num_threads()`` threads (rows are independent)."""
    one = np.uint64(1)
    for i in prange(act_out.shape[0]):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        acc = np.float32(0.0)
        while k < end:
            acc += weights[k] * act_in[np.uint32(indices[k])]
            k += one
        v = keep * act_in[i] + acc
        act_out[i] = v if v > 0.0 else np.float32(0.0)


@njit(cache=True)
def mean_active(activation, eps):
    """Mean activation of the nodes whose activation exceeds ``eps`` (0.0 if there is none).

    Inactive nodes are left out so that a large, mostly silent graph does not make every
    active EXEC node fire: the ratio compares a node with the nodes that are actually active.
    """
    total = 0.0
    n = 0
    for i in range(activation.shape[0]):
        a = activation[i]
        if a > eps:
            total += a
            n += 1
    return total / n if n > 0 else 0.0


@njit(cache=True)
def select_firing(activation, exec_node, threshold_ratio, mean, eps):
    """EXEC slots whose node activation exceeds ``threshold_ratio * mean`` (and ``eps``).

    Returns int64 [n_fired], ascending.
    """
    n = exec_node.shape[0]
    mark = np.zeros(n, np.bool_)
    count = 0
    for e in range(n):
        a = activation[exec_node[e]]
        if a > eps and a > threshold_ratio[e] * mean:
            mark[e] = True
            count += 1
    out = np.empty(count, np.int64)
    j = 0
    for e in range(n):
        if mark[e]:
            out[j] = e
            j += 1
    return out


@njit(cache=True)
def reset_nodes(activation, exec_node, slots):
    """Zero the activation of the given EXEC slots' nodes (a node spends it by firing)."""
    for i in range(slots.shape[0]):
        activation[exec_node[slots[i]]] = 0.0
