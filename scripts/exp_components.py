#!/usr/bin/env python3
"""Feasibility of the location-variable encoding (evolve.synth_components) on Hacker's Delight tasks.

    python scripts/exp_components.py p19 --width 4                  # the exact multiset: calls, units, seconds
    python scripts/exp_components.py p19 --width 8 --multiset lsrv,eor,and,lslv,eor,eor
    python scripts/exp_components.py p19 --rank                     # its rank under the compilers' mix

The first form runs :class:`evolve.synth_components.MultisetSynth` as the tier does (cases from
``evolve.tasks.training_cases``, the reduced problem from the task's symbolic twin, every candidate
checked on 512 64-bit cases) and prints each solver call. ``--rank`` counts the multisets of the same
size that are likelier under ``evolve/alphabets/arm64_mix.json``'s weights (summed over x/w and
register/shifted forms, i.i.d. components, multinomial), and the shorter ones: how far an
enumeration in prior order is from the task's multiset.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from evolve import synth as SY  # noqa: E402
from evolve import synth_components as SC  # noqa: E402
from evolve import synth_tier as ST  # noqa: E402
from evolve import tasks as T  # noqa: E402

#: the multisets of the known shortest programs (p19: gcc's 7 less its k & 63; p20: Warren's 7;
#: p24: gcc -O2's 8)
KNOWN = {"p19": "lsrv,eor,and,lslv,eor,eor", "p20": "neg,and,add,eor,lsri,udiv,orr",
         "p24": "subi,orr~,orr~,orr~,orr~,orr~,orr~,addi", "p01": "subi,and"}


def form_weights() -> dict[str, float]:
    """The forms' shares of the measured mix (shifted forms counted with their plain name)."""
    w = json.loads((ROOT / "evolve" / "alphabets" / "arm64_mix.json").read_text())["weights"]
    share = lambda op, *forms: sum(w.get(f"{op}/{f}/{s}", 0.0) for f in forms for s in "xw")
    p = {n: share(n, "reg", "shift") for n in ("add", "sub", "and", "orr", "eor", "bic", "orn", "mul", "udiv", "clz")}
    p |= {"lslv": share("lsl", "reg"), "lsrv": share("lsr", "reg"), "asrv": share("asr", "reg"),
          "lsli": share("lsl", "imm"), "lsri": share("lsr", "imm"), "asri": share("asr", "imm"),
          "addi": share("add", "imm"), "subi": share("sub", "imm"), "neg": share("neg", "reg", "shift"),
          "mvn": share("mvn", "reg", "shift"), "movi": share("mov", "movw")}
    total = sum(p.values())
    return {k: v / total for k, v in p.items()}


def rank(multiset: list[str]) -> tuple[int, int]:
    """(rank among the multisets of its size, count of shorter multisets) under :func:`form_weights`."""
    p = form_weights()
    names = sorted(p)

    def score(ms) -> float:
        counts = {m: ms.count(m) for m in set(ms)}
        return (math.lgamma(len(ms) + 1) - sum(math.lgamma(c + 1) for c in counts.values())
                + sum(math.log(p[m]) for m in ms))
    ms = [SC.form(m) for m in multiset]
    s = score(ms)
    higher = sum(1 for c in itertools.combinations_with_replacement(names, len(ms)) if score(c) > s)
    shorter = sum(math.comb(len(names) + k - 1, k) for k in range(1, len(ms)))
    return higher + 1, shorter


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task", help="a task of suites/hackers_delight.py (p01-p25)")
    ap.add_argument("--width", type=int, default=4, help="the reduced width (64: none); default 4")
    ap.add_argument("--multiset", help="comma-separated components (default: the known program's)")
    ap.add_argument("--rlimit", type=int, default=50_000_000, help="z3 resource units a call may spend")
    ap.add_argument("--rank", action="store_true", help="only the multiset's rank under the compilers' mix")
    args = ap.parse_args(argv)
    spec = args.multiset or KNOWN.get(args.task)
    if spec is None:
        ap.error(f"no known multiset for {args.task}: give --multiset")
    multiset = spec.split(",")
    if not all(map(SC.valid, multiset)):
        ap.error(f"not components: {spec}")
    if args.rank:
        r, shorter = rank(multiset)
        print(f"{args.task} {spec}: rank {r} among {len(multiset)}-multisets, after {shorter} shorter ones")
        return 0
    task = T.get_task(f"{ROOT / 'suites' / 'hackers_delight.py'}:{args.task}")
    rng = np.random.default_rng([0, 0x5E7])
    x = T.training_cases(task, rng, SY.CHECK_CASES)
    red = ST.reduced_cases(task, args.width, ST.REDUCED_CASES, rng) if args.width < 64 else None
    if args.width < 64 and red is None:
        print(f"{args.task}: the symbolic twin cannot be evaluated at {args.width} bits; searching at 64")
    synth = SC.MultisetSynth(x, task.expected(x), task.result_mask, call_rlimit=args.rlimit, reduced=red)
    synth.offer(multiset)
    t0 = time.perf_counter()
    found = None
    while found is None:
        t = time.perf_counter()
        out = synth.step(1)
        if not synth.last_work:
            break
        print(f"call {synth.position}: {synth.last_work} units, {time.perf_counter() - t:.2f} s", flush=True)
        found = out[0] if out else None
    print(f"{args.task} at {synth.width} bits: {'found ' + str(found) if found else 'none'}; "
          f"{synth.stats.calls} calls, {synth.spent} units, {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
