"""The brain: a graph of ports, inner nodes and EXEC nodes that learns from what its code does.

Modules: :mod:`~core.brain.graph` (the :class:`Brain`), :mod:`~core.brain.kernels` (its Numba
kernels), :mod:`~core.brain.patterns` and :mod:`~core.brain.pattern_kernels` (n-gram pattern
tables), :mod:`~core.brain.params` (parameters), :mod:`~core.brain.file` (the file format, arrays
only), :mod:`~core.brain.state` (array names, dtypes and checks), :mod:`~core.brain.verdicts`
(outcome arrays validated), :mod:`~core.brain.report` (the seed's results table),
:mod:`~core.brain.draw_kernels` (the lazy gene draw table) and
:mod:`~core.brain.gene_grams` + :mod:`~core.brain.gram_kernels` (the gene n-grams an offspring
introduced, credited with its executions and its improvement).

One learning cycle, as the seed runs it (``scripts/reproduce_seed.py``, ``evolve.live``)::

    brain.feed(chunk)              # bytes light their ports; recurring n-grams -> patterns
    brain.step()                   # propagate and decay activation; patterns push to EXEC nodes
    fired = brain.fire()           # EXEC nodes with activation > threshold_ratio * mean
    brain.execute(ex, fired, x)    # run their code as one batch, then reinforce()

The evolution engine's calls::

    s, t, counts = brain.reinforce_stats(s0, t0, res.outcomes)   # the rule per execution on an
                                                       # offspring batch's own arrays (fitness: t)
    ids = brain.add_exec_nodes(codes, success_rate=s, threshold_ratio=t, outcomes=counts)
                                                       # those that live on become EXEC nodes, in
                                                       # the state they would have had all along
    brain.reinforce(ids, res.outcomes)                 # (nodes: rule per execution, vectorised)
    brain.node_stats(ids)["threshold_ratio"]           # reinforcement, for fitness
    brain.reinforce_counts(ids, counts)                # or one batch verdict per genome
    gene_grams.credit_introduced(brain.gene_patterns, tokens, length, fresh, crashed, gain)
                                                       # the 1-3-grams of adjacent genes each offspring
                                                       # introduced: the rule per execution, a clean one
                                                       # worth 1 if it beat its parents, else 0.5
    brain.observe_genes(ids, gene_seqs, res.outcomes)  # (or every n-gram of whole sequences)
    brain.gene_patterns.lazy_draw_table(base_weights)  # mutation's cumulative gene weights after
                                                       # every context of <= 2 genes, each row built
                                                       # when a draw first reads it (per generation;
                                                       # draw_table: every row; context_table: the
                                                       # weights themselves; core.brain.draw_kernels)
    brain.merge_patterns(other_brain)                  # islands exchanging statistics
    brain.remove_exec_nodes(dead_ids); brain.compact_code()
"""
from core.brain.graph import Brain
from core.brain.params import BrainParams, PatternConfig, RuleParams

__all__ = ["Brain", "BrainParams", "PatternConfig", "RuleParams"]
