"""The brain: a graph of ports, inner nodes and EXEC nodes that learns from what its code does.

Modules: :mod:`~core.brain.graph` (the :class:`Brain`), :mod:`~core.brain.kernels` (its Numba
kernels), :mod:`~core.brain.patterns` and :mod:`~core.brain.pattern_kernels` (n-gram pattern
tables), :mod:`~core.brain.params` (parameters), :mod:`~core.brain.file` (the file format, arrays
only) and :mod:`~core.brain.report` (the seed's results table).
"""
from core.brain.graph import Brain
from core.brain.params import BrainParams, PatternConfig, RuleParams

__all__ = ["Brain", "BrainParams", "PatternConfig", "RuleParams"]
