"""Benchmarks of the native backend (issues 5 and 15): ``run_native_benchmarks(quick)`` -> list of dicts.

Issue 15's rows first: native ``run()`` end to end (the owner's call, shared memory, sentinels,
checks; best wall time of 10, or 30 without --quick) against a bare llvmlite loop written apart
from the executor (``scripts/bare_loop.py``: ``_setjmp`` before each case and a plain call, no
entry state, no handlers, no sandbox) on the same 1000 codes x 64 cases, in the same run; the
same in CPU time (the owner's thread and the worker's, without the wait for a core), with one
``core.codes.Codes`` buffer (a population's form), on 4000 codes x 256 cases, with one worker
per core, and on new codes every call (their entry plans computed). Then where a case's time
goes, in ns per case: the bare loop, the trampoline's own loop with plain calls, with per-genome
entries, with the full entry for every genome, and run() end to end split into the worker's
genome loop, its per-batch work and the owner's (with the round trip). Then issue 5's rows: the
trampoline against its bare mode and one ctypes call per case, crash recovery per crash, worker
replacement. Worker times are the worker's own (best of 3-5). Genomes: 16 instructions on
caller-saved registers only, so the bare loops are safe. Runnable alone: ``python
scripts/bench_native.py [--quick]``; the arm64 figures under qemu user mode (not hardware
figures: qemu translates a batch's code again after every load):
``scripts/arm64-qemu.sh -- scripts/bench_native.py --quick``.
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_loop import time_bare_loop  # noqa: E402
from core.codes import Codes  # noqa: E402
from core.executors import open_executor  # noqa: E402
from core.isa import host_isa  # noqa: E402

REGS = ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")


# arm64 data-processing encodings (add sub eor orr and, mul = madd with xzr), built from their
# bit patterns so that the qemu lane, which has no keystone, can run this benchmark too
_A64_OPS = (0x8B000000, 0xCB000000, 0xCA000000, 0xAA000000, 0x8A000000, 0x9B007C00)


def _population(isa: str, n: int, seed: int) -> list[bytes]:
    """``n`` genomes of 16 data-processing instructions on caller-saved registers only."""
    rng = random.Random(seed)
    if isa == "arm64":
        return [b"".join((rng.choice(_A64_OPS) | rng.randrange(16) << 16 | rng.randrange(16) << 5
                          | rng.randrange(16)).to_bytes(4, "little") for _ in range(16)) for _ in range(n)]
    from core.asm import assemble
    return [assemble([f"{rng.choice(('add', 'sub', 'xor', 'and', 'or', 'imul'))} {rng.choice(REGS)}, "
                      f"{rng.choice(REGS)}" for _ in range(16)], "x86_64") for _ in range(n)]


def _end_to_end(ex, codes, inputs, runs: int) -> tuple[float, float, float, float]:
    """Best wall seconds of ``runs`` calls of ``ex.run`` (the owner's call, shared memory,
    sentinels, checks: what a user pays) and, for that call, the worker's seconds from command
    to answer and in its genome loop (one worker: the rest is the owner's and the round trip);
    then the best CPU seconds of a call, the owner's thread and the worker's added (what the
    call costs without the wait for a core that other jobs on a loaded machine add)."""
    best, cpu = (float("inf"), 0.0, 0.0), float("inf")
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.thread_time()
        ex.run(codes, inputs)
        wall, used = time.perf_counter() - t0, time.thread_time() - c0
        w = ex._workers[0]
        cpu = min(cpu, used + w.last_cpu)
        if wall < best[0]:
            best = (wall, w.last_busy, w.last_loop)
    return (*best, cpu)


def run_native_benchmarks(quick: bool) -> list[dict]:
    host = host_isa()
    if host is None:
        return []
    isa = host.name
    n, cases = 1000, 64   # issue 15's sizes, --quick too (fewer repeats)
    inputs = np.random.default_rng(1).integers(0, 2**64, size=(cases, 2), dtype=np.uint64)
    clean = _population(isa, n, 1)
    packed = Codes.from_list(clean)   # a population's codes: one buffer
    crashy = [bytes.fromhex("0f0b") if isa == "x86_64" else bytes(4)] * n   # ud2 / udf
    total = n * cases
    big_n, big_cases = 4000, 256
    big = Codes.from_list(_population(isa, big_n, 2))
    big_inputs = np.random.default_rng(2).integers(0, 2**64, size=(big_cases, 2), dtype=np.uint64)
    runs = 10 if quick else 30
    # issue 15's baseline: an llvmlite loop written apart from the executor (scripts/bare_loop.py),
    # _setjmp before each case, a plain call; in a process of its own
    prefix = os.environ.get("MELVIN_WORKER_PREFIX", "").split()   # the qemu lane's launcher
    loop = time_bare_loop(clean, inputs, repeat=20, prefix=prefix)
    big_loop = time_bare_loop(list(big), big_inputs, repeat=5, prefix=prefix)
    # under qemu a watchdog tick costs milliseconds of emulation: tick rarely there (as its tests do)
    budget = {"time_budget": 0.05} if os.environ.get("MELVIN_QEMU") else {}
    with open_executor(isa, backend="native", workers=1, **budget) as ex:
        def best(codes, mode, repeat=3):
            return min(ex.measure(codes, inputs, mode)[0] for _ in range(repeat))
        e2e, busy, e2e_loop, e2e_cpu = _end_to_end(ex, clean, inputs, runs)
        e2e_codes = _end_to_end(ex, packed, inputs, runs)[0]
        e2e_big = _end_to_end(ex, big, big_inputs, max(3, runs // 3))[0]
        fresh = []   # new codes every call: their entry plans are computed
        for k in range(2 if quick else 4):
            codes = _population(isa, n, 100 + k)
            t0 = time.perf_counter()
            ex.run(codes, inputs)
            fresh.append(time.perf_counter() - t0)
        stub, bare = best(clean, "stub", 5), best(clean, "bare", 5)
        full_entry = best(clean, "full", 5)
        few = clean[: max(10, n // 50)]
        percall = len(few) * cases / best(few, "percall", 1)
        crash_stub, crash_bare = total / best(crashy, "stub"), total / best(crashy, "bare")
        repl = min(ex.replace_one() for _ in range(3))
    with open_executor(isa, backend="native", **budget) as ex:   # one worker per core
        e2e_all = _end_to_end(ex, clean, inputs, runs)[0]
        n_workers = ex.n_workers
    loop = min(loop, time_bare_loop(clean, inputs, repeat=20, prefix=prefix))   # before and after: the load
    lane = " under qemu user mode (not hardware figures)" if os.environ.get("MELVIN_QEMU") else ""
    note = f"{n} genomes x 16 insns x {cases} cases, {isa}, 1 worker{lane}"
    rate = {k: total / v for k, v in (("loop", loop), ("stub", stub), ("bare", bare), ("full", full_entry),
                                      ("e2e", e2e), ("e2e_codes", e2e_codes), ("e2e_all", e2e_all))}
    rows = [
        {"name": f"native {isa} run() end to end vs bare _setjmp loop", "value": rate["e2e"], "unit": "cases/s",
         "baseline": rate["loop"], "ratio": rate["e2e"] / rate["loop"],
         "notes": note + "; codes as a list; baseline scripts/bare_loop.py (shares no code); target >= 0.5x (issue 15)"},
        {"name": f"native {isa} run() end to end in CPU time (owner + worker) vs bare loop", "value": total / e2e_cpu,
         "unit": "cases/s", "baseline": rate["loop"], "ratio": loop / e2e_cpu,
         "notes": note + "; both processes' thread CPU time: the wall ratio less the wait for a core (load)"},
        {"name": f"native {isa} run() end to end, one Codes buffer, vs bare loop", "value": rate["e2e_codes"],
         "unit": "cases/s", "baseline": rate["loop"], "ratio": rate["e2e_codes"] / rate["loop"],
         "notes": note + "; the population's form (core.codes.Codes)"},
        {"name": f"native {isa} run() end to end, {big_n} x {big_cases} cases, vs bare loop", "value": big_n * big_cases / e2e_big,
         "unit": "cases/s", "baseline": big_n * big_cases / big_loop, "ratio": big_loop / e2e_big,
         "notes": f"{big_n} genomes x 16 insns x {big_cases} cases, one Codes buffer, 1 worker{lane}"},
        {"name": f"native {isa} run() end to end, {n_workers} workers, vs bare loop", "value": rate["e2e_all"],
         "unit": "cases/s", "baseline": rate["loop"], "ratio": rate["e2e_all"] / rate["loop"],
         "notes": f"one worker per core; the bare loop has one core"},
        {"name": f"native {isa} run() on new codes each call vs bare loop", "value": total / min(fresh), "unit": "cases/s",
         "baseline": rate["loop"], "ratio": loop / min(fresh),
         "notes": note + "; every code's entry plan computed (plans.PlanTable in bulk; capstone only for instructions it has not seen): what a generation of new offspring pays"},
    ]
    # where a case's time goes (ns per case; the ratio is against the bare loop's)
    per = 1e9 / total
    split = {"loop": loop, "bare": bare, "stub": stub, "full": full_entry, "e2e": e2e, "e2e_loop": e2e_loop,
             "worker": busy - e2e_loop, "owner": e2e - busy}
    for key, what in (("loop", "bare _setjmp loop (scripts/bare_loop.py)"),
                      ("bare", "the trampoline's loop, plain calls (no entry state)"),
                      ("stub", "the trampoline, per-genome entries"),
                      ("full", "the trampoline, full entry for every genome"),
                      ("e2e", "run() end to end, 1 worker"),
                      ("e2e_loop", "  of which the worker's genome loop"),
                      ("worker", "  of which the worker's per-batch work (load, state, answer)"),
                      ("owner", "  of which the owner's per-batch work and the round trip")):
        rows.append({"name": f"native {isa} per case: {what}", "value": split[key] * per, "unit": "ns/case",
                     "baseline": loop * per, "ratio": split[key] / loop, "notes": note})
    rows += [
        {"name": f"native {isa} trampoline vs bare JIT loop", "value": rate["stub"], "unit": "cases/s",
         "baseline": rate["bare"], "ratio": rate["stub"] / rate["bare"], "notes": note + "; target >= 0.5x"},
        {"name": f"native {isa} trampoline vs one ctypes call per case", "value": rate["stub"], "unit": "cases/s",
         "baseline": percall, "ratio": rate["stub"] / percall, "notes": note + "; target >= 50x"},
        {"name": f"native {isa} crash recoveries (ud2/udf) vs bare loop's", "value": crash_stub, "unit": "crashes/s",
         "baseline": crash_bare, "ratio": crash_bare / crash_stub, "notes": "ratio = cost per crash / bare cost; target <= 1.3x"},
        {"name": "native worker replacement", "value": repl, "unit": "s", "baseline": repl, "ratio": 1.0,
         "notes": "kill + start a fresh worker (interpreter, imports, JIT compile)" + lane},
    ]
    return rows


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="scripts/bench.py runs every section; its --json writes the rows.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    quick = ap.parse_args().quick
    for r in run_native_benchmarks(quick):
        print(f"{r['name']:<72} {r['value']:>14,.3f} {r['unit']:<10} x{r['ratio']:.2f}  {r['notes']}")
