"""Parameters of the brain: the seed's rule constants, the dynamics' constants and the pattern
tables' shape.

All are frozen dataclasses that round-trip through JSON (brain files store them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np


@dataclass(frozen=True)
class RuleParams:
    """The seed's reinforcement rule; the defaults are the seed's constants."""

    ema_keep: float = 0.9        #: s = ema_keep * s + ema_gain * ok
    ema_gain: float = 0.1
    high: float = 0.7            #: s > high -> threshold_ratio *= down
    low: float = 0.3             #: s < low -> threshold_ratio *= up
    down: float = 0.99
    up: float = 1.01
    threshold_min: float = 0.1   #: clamp
    threshold_max: float = 3.0

    def as_array(self) -> np.ndarray:
        """float32 [RULE_LEN] in the ``core.brain.kernels.R_*`` order."""
        return np.array([self.ema_keep, self.ema_gain, self.high, self.low, self.down, self.up,
                         self.threshold_min, self.threshold_max], np.float32)


@dataclass(frozen=True)
class PatternConfig:
    """Shape and learning constants of a :class:`PatternTable`.

    ``min_count`` occurrences (within ``age_interval`` tokens) make an n-gram a pattern;
    ``edges_per_pattern`` bounds the pattern -> EXEC edges each pattern keeps.
    """

    capacity: int = 4096
    n_min: int = 2
    n_max: int = 4
    min_count: int = 2
    edges_per_pattern: int = 8
    candidate_bits: int = 16
    age_interval: int = 1 << 16
    evict_sample: int = 8
    seed: int = 0x5EED

    def validate(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        if not 1 <= self.n_min <= self.n_max <= 16:
            raise ValueError(f"need 1 <= n_min <= n_max <= 16, got {self.n_min}, {self.n_max}")
        if self.min_count < 1 or self.edges_per_pattern < 1 or self.evict_sample < 1:
            raise ValueError("min_count, edges_per_pattern and evict_sample must be >= 1")
        if not 4 <= self.candidate_bits <= 26:
            raise ValueError(f"candidate_bits must be in [4, 26], got {self.candidate_bits}")
        if self.age_interval < 1:
            raise ValueError("age_interval must be >= 1")



def _gene_config() -> PatternConfig:
    # Genes: unigrams count (they become per-gene weights) and every evaluated n-gram is worth
    # keeping at once, hence min_count 1; a large table since the alphabet is large.
    return PatternConfig(capacity=1 << 16, n_min=1, n_max=3, min_count=1, edges_per_pattern=4)


@dataclass(frozen=True)
class BrainParams:
    """Everything that shapes a brain's dynamics. Defaults reproduce the seed's behaviour."""

    rule: RuleParams = field(default_factory=RuleParams)
    initial_threshold: float = 0.1   #: an EXEC node's (and pattern's) starting threshold ratio
    initial_success: float = 0.5     #: starting success rate unless given at registration
    #: a gene pattern's starting threshold ratio: neutral, so that the seed's rule can raise a
    #: pattern's draw weight (``reference / threshold``, up to 10x) as well as lower it (to 1/3)
    gene_initial_threshold: float = 1.0
    keep: float = 0.5                #: fraction of activation kept per step (decay = 1 - keep)
    active_eps: float = 1e-4         #: nodes at or below this are inactive (left out of the mean)
    error_energy: float = 1.0        #: per crash, 0xFF on port 250 with this energy
    negative_energy: float = 0.8     #: per crash, 0xFF on port 31 with this energy
    reset_on_fire: bool = True       #: a node spends its activation when it fires
    stream_energy: float = 1.0       #: energy of a fed byte on its port
    pattern_energy: float = 1.0      #: activation a pattern gains per match
    link_rate: float = 0.1           #: pattern -> EXEC edge change per verdict (+ ok, - crash)
    link_eps: float = 0.05           #: a pattern above this activation is "active"
    link_limit: int = 64             #: at most this many active patterns are linked per firing
    edge_clip: float = 1.0           #: learned edge weights stay in [-clip, clip]
    byte_patterns: PatternConfig = field(default_factory=PatternConfig)
    gene_patterns: PatternConfig = field(default_factory=_gene_config)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "BrainParams":
        d = dict(d)
        d["rule"] = RuleParams(**d["rule"])
        d["byte_patterns"] = PatternConfig(**d["byte_patterns"])
        d["gene_patterns"] = PatternConfig(**d["gene_patterns"])
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown brain parameters {sorted(unknown)}")
        return cls(**d)
