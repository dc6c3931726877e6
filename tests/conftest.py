"""Shared fixtures: make the project importable and provide corner-case inputs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MASK = (1 << 64) - 1
EDGE_VALUES = (0, 1, 2, MASK, MASK - 1, 1 << 63, (1 << 63) - 1, 0x5555_5555_5555_5555, 1 << 32, 0xFFFF_FFFF)


@pytest.fixture
def edge_inputs() -> np.ndarray:
    """Every pair of corner values: zero, one, all-ones, min/max signed, powers of two."""
    pairs = [(a, b) for a in EDGE_VALUES for b in EDGE_VALUES]
    return np.array(pairs, dtype=np.uint64)
