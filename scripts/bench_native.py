"""Benchmarks of the native backend (issue 5): ``run_native_benchmarks(quick)`` -> list of dicts.

Same run: the protected trampoline against the bare JIT loop (``_setjmp`` + call, no entry
state, no sandbox checks) and against one ctypes call per case; crash recovery per crash against
the bare loop's; worker replacement time. Times are the worker's own (best of 3). x86-64 hosts:
1000 genomes x 16 instructions (caller-saved registers only, so the bare loop is safe) x 64
cases. Runnable alone: ``python scripts/bench_native.py [--quick]``.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.asm import assemble  # noqa: E402
from core.executors import open_executor  # noqa: E402
from core.isa import X86_64  # noqa: E402

REGS = ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")


def _population(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [assemble([f"{rng.choice(('add', 'sub', 'xor', 'and', 'or', 'imul'))} {rng.choice(REGS)}, "
                      f"{rng.choice(REGS)}" for _ in range(16)], "x86_64") for _ in range(n)]


def run_native_benchmarks(quick: bool) -> list[dict]:
    if not X86_64.is_host():
        return []
    n, cases = (200 if quick else 1000), 64
    inputs = np.random.default_rng(1).integers(0, 2**64, size=(cases, 2), dtype=np.uint64)
    clean = _population(n, 1)
    crashy = [bytes.fromhex("0f0b")] * n
    rows = []
    with open_executor("x86_64", backend="native", workers=1) as ex:
        def best(codes, mode, repeat=3):
            return min(ex.measure(codes, inputs, mode)[0] for _ in range(repeat))
        total = n * cases
        stub, bare = total / best(clean, "stub"), total / best(clean, "bare")
        few = clean[: max(10, n // 50)]
        percall = len(few) * cases / best(few, "percall", 1)
        crash_stub, crash_bare = total / best(crashy, "stub"), total / best(crashy, "bare")
        t0 = __import__("time").perf_counter()
        ex.run(clean, inputs)
        full = total / (__import__("time").perf_counter() - t0)
        repl = min(ex.replace_one() for _ in range(3))
    note = f"{n} genomes x 16 insns x {cases} cases, x86-64, 1 worker"
    rows += [
        {"name": "native x86-64 trampoline vs bare JIT loop", "value": stub, "unit": "cases/s", "baseline": bare,
         "ratio": stub / bare, "notes": note + "; target >= 0.5x"},
        {"name": "native x86-64 trampoline vs one ctypes call per case", "value": stub, "unit": "cases/s",
         "baseline": percall, "ratio": stub / percall, "notes": note + "; target >= 50x"},
        {"name": "native x86-64 crash recoveries (ud2) vs bare loop's", "value": crash_stub, "unit": "crashes/s",
         "baseline": crash_bare, "ratio": crash_bare / crash_stub, "notes": "ratio = cost per crash / bare cost; target <= 1.3x"},
        {"name": "native x86-64 run() end to end (owner, shm, sentinels)", "value": full, "unit": "cases/s",
         "baseline": bare, "ratio": full / bare, "notes": note},
        {"name": "native worker replacement", "value": repl, "unit": "s", "baseline": repl, "ratio": 1.0,
         "notes": "kill + start a fresh worker (interpreter, imports, JIT compile)"},
    ]
    return rows


if __name__ == "__main__":
    for r in run_native_benchmarks("--quick" in sys.argv):
        print(f"{r['name']:<60} {r['value']:>14,.3f} {r['unit']:<10} x{r['ratio']:.2f}  {r['notes']}")
