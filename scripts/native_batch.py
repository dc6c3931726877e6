#!/usr/bin/env python3
"""Run a saved batch through the native backend: ``native_batch.py IN.npz OUT.npz``.

IN holds ``blob`` (uint8, the codes back to back), ``offsets`` (uint64 [n+1]), ``inputs``
(uint64 [n_cases, n_inputs]), ``isa``, ``seed`` and ``time_budget``, and optionally
``states_seed`` (then every case runs under ``CaseStates.from_seed(states_seed, n_cases,
scratch)``); OUT gets ``outputs`` and ``outcomes``. It exists for the arm64 agreement test: the emulator runs on the host and this
script runs the same batch natively inside the qemu lane (``scripts/arm64-qemu.sh -- ...``),
where keystone, and so the emulator's harness, is not available.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.executors import open_executor  # noqa: E402
from core.executors.batch_state import CaseStates  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: native_batch.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    data = np.load(argv[0])
    blob, offsets = data["blob"].tobytes(), data["offsets"]
    codes = [blob[int(a):int(b)] for a, b in zip(offsets[:-1], offsets[1:])]
    with open_executor(str(data["isa"]), backend="native", seed=int(data["seed"]), workers=1,
                       time_budget=float(data["time_budget"])) as ex:
        states = None
        if "states_seed" in data:
            states = CaseStates.from_seed(int(data["states_seed"]), data["inputs"].shape[0], ex.options.scratch)
        res = ex.run(codes, data["inputs"], states=states)
    np.savez(argv[1], outputs=res.outputs, outcomes=res.outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
