"""Replay a run's best genome (or ``--rank K``): verify, list, re-execute, minimise.

Usage::

    python scripts/replay_best.py RUN_DIR [--rank K] [--inputs 3,5 ...] [--json] [--backend B]

Exit 0 when it reproduces the recorded result, 1 when it does not, 2 on bad input. The work is
done by :mod:`evolve.replay`.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evolve.replay import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
