#!/usr/bin/env python3
"""What the bank (evolve.bank) costs to its first find, per task and seed, on its own.

    python scripts/bench_bank.py [--tasks p14,p15,p22,p23] [--seeds 0,1,2] [--budget OPS]

Per (task, seed): the bank of ``evolve.enumeration`` (the same 64 cases and seed), stepped by
``--budget`` value-case operations until its first program exact on its cases or its end; prints
the operations and CPU seconds to that point, the values banked, the first program's length and
its text. Nothing is verified here: the engine does that (``python -m evolve run``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from evolve import bank as BK  # noqa: E402
from evolve import tasks as T  # noqa: E402
from evolve.genes import alphabet_for  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="p14,p15,p19,p20,p22,p23,p24", help="suites/hackers_delight.py tasks")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=3_000_000, help="value-case operations a step")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        tasks = [T.get_task(f"suites/hackers_delight.py:{name}") for name in args.tasks.split(",")]
    except (ValueError, T.TaskError) as exc:
        print(f"bench_bank: {exc}", file=sys.stderr)
        return 2
    alphabet = alphabet_for("arm64")
    print("| task | seed | ops to first find | cpu s | values | length | program |\n|---|---|---|---|---|---|---|")
    for name, task in zip(args.tasks.split(","), tasks):
        for seed in seeds:
            x = T.training_cases(task, np.random.default_rng([seed, 0xE1]), 64)
            bank = BK.Bank(x, task.expected(x), len(alphabet.regs), seed)
            t0, found = time.process_time(), []
            while not found and not bank.exhausted:
                found = bank.step(args.budget)
            cpu = time.process_time() - t0
            text = "; ".join(alphabet.render(found[0])) if found else "(none: bank exhausted)"
            print(f"| {name} | {seed} | {bank.spent:.3g} | {cpu:.1f} | {bank.size} | "
                  f"{len(found[0]) if found else '-'} | `{text}` |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
