#!/usr/bin/env python3
"""Melvin's benchmarks: figures as ratios against a baseline measured in the same run.

    python scripts/bench.py                 # every section, a table on stdout
    python scripts/bench.py --json out.json # the same figures for machines
    python scripts/bench.py --only emulated --quick

Sections: ``emulated`` (issue 2: the Unicorn backend against one ``emu_start`` per case; with
issue 15's rows, bodies against functions ending in ``ret``, which ``ret`` runs alone),
``native`` (issues 5 and 15: the trampoline, crash recovery, and ``run()`` end to end against a
bare ``_setjmp`` loop written apart, ``scripts/bare_loop.py``), ``brain`` (issue 3, when ``scripts/bench_brain.py`` is present), ``evolve`` (issue 4),
``islands`` (issue 7: Dask speed-up, coordinator overhead, recovery from a killed worker),
``proofs`` (issue 12: claims, refusals, proof times, an independent harness over many runs),
``soak`` (issue 13: a 30-minute run's memory and folder size) and ``search`` (issue 14: Hacker's
Delight p01-p25 against gcc -O2's lengths, ``scripts/bench_search.py``); ``transfer`` (issue 16:
priors from half the built-in tasks tested on the other half, ``scripts/bench_transfer.py``;
hours, so only with ``--only``).
Benchmarks are not tests: run them on a quiet machine; the machine is recorded in the output.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.asm import assemble  # noqa: E402
from core.executors import open_executor  # noqa: E402

DP_OPS = ("add", "sub", "eor", "orr", "and", "mul", "lsl", "lsr", "asr", "bic", "orn", "eon", "udiv", "sdiv")


def machine() -> dict:
    """Facts about the machine the figures were measured on."""
    info = {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import unicorn
    info["unicorn"] = unicorn.__version__
    return info


def random_population(n: int, length: int, seed: int) -> list[bytes]:
    """``n`` random genomes of ``length`` data-processing instructions over x0..x7."""
    rng = random.Random(seed)
    return [assemble([f"{rng.choice(DP_OPS)} x{rng.randrange(8)}, x{rng.randrange(8)}, x{rng.randrange(8)}"
                      for _ in range(length)]) for _ in range(n)]


def per_case_baseline(codes: list[bytes], inputs: np.ndarray) -> float:
    """Cases/s of the naive way: write each genome once, then one ``emu_start`` per case."""
    from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, UC_PROT_ALL, Uc, UcError
    from unicorn import arm64_const as A
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    code_addr, stack, ret = 0x1000_0000, 0x2000_0000, 0x3000_0000
    uc.mem_map(code_addr, 1 << 16, UC_PROT_ALL)
    uc.mem_map(stack, 1 << 16, UC_PROT_ALL)
    uc.mem_map(ret, 1 << 12, UC_PROT_ALL)
    uc.mem_write(ret, bytes.fromhex("1f2003d5"))
    regs = (A.UC_ARM64_REG_X0, A.UC_ARM64_REG_X1, A.UC_ARM64_REG_X2, A.UC_ARM64_REG_X3)
    n = 0
    start = time.perf_counter()
    for code in codes:
        uc.mem_write(code_addr, code + bytes.fromhex("c0035fd6"))
        uc.ctl_remove_cache(code_addr, code_addr + len(code) + 4)
        for row in inputs:
            for reg, value in zip(regs, row):
                uc.reg_write(reg, int(value))
            uc.reg_write(A.UC_ARM64_REG_SP, stack + 0x8000)
            uc.reg_write(A.UC_ARM64_REG_X30, ret)
            try:
                uc.emu_start(code_addr, ret, 0, 10_000)
            except UcError:
                pass
            uc.reg_read(A.UC_ARM64_REG_X0)
            n += 1
    return n / (time.perf_counter() - start)


def bench_emulated(quick: bool) -> list[dict]:
    """Issue 2: 1000 genomes x 16 data-processing instructions x 64 cases, emulated arm64."""
    n, length, cases = (200 if quick else 1000), 16, 64
    inputs = np.random.default_rng(1).integers(0, 2**64, size=(cases, 2), dtype=np.uint64)
    clean = random_population(n, length, seed=1)
    udf = assemble([".word 0x00000000"])
    crashy = [udf + code[4:] if i % 2 else code for i, code in enumerate(random_population(n, length, seed=2))]
    # A memory fault cannot be rewritten statically (unlike udf, svc, brk): each one stops
    # emulation and costs a restart of emu_start.
    null_load = assemble(["mov x9, #0", "ldr x0, [x9]"])
    segv = [null_load + code[8:] if i % 2 else code for i, code in enumerate(random_population(n, length, seed=3))]
    total = n * cases
    baseline = per_case_baseline(clean[: max(20, n // 20)], inputs)
    rows = []
    for tier in ("", "Unicorn only "):
        with open_executor("arm64", backend="emulated") as ex:
            # the executor as opened runs genomes in its subset in the Numba interpreter (all of
            # these); "Unicorn only" turns that tier off: Unicorn's fast lane, as in issue 2
            ex.interpreter = not tier
            ex.run(clean[:4], inputs)  # harness translated, hooks and kernels warm
            for name, pop in (("clean", clean), ("half crash (udf)", crashy), ("half crash (null load)", segv)):
                t0 = time.perf_counter()
                res = ex.run(pop, inputs)
                cold = total / (time.perf_counter() - t0)
                warm_times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    ex.run(pop, inputs)
                    warm_times.append(time.perf_counter() - t0)
                warm = total / min(warm_times)
                crashes = int((res.outcomes != 0).sum())
                cold_note = ("new genomes: includes triage and Unicorn's translation of each genome" if tier
                             else "new genomes: decoded and interpreted")
                warm_note = ("same genomes again: translated code reused from the arena" if tier
                             else "same genomes again (the interpreter keeps nothing: as cold)")
                for phase, rate, note in (("cold", cold, cold_note), ("warm", warm, warm_note)):
                    rows.append({"name": f"emulated arm64 {tier}{name} {phase}", "value": rate, "unit": "cases/s",
                                 "baseline": baseline, "ratio": rate / baseline,
                                 "notes": f"{n} genomes x {length} insns x {cases} cases, {crashes} crashed cases; {note}"})
    rows += _ret_rows(n, length, inputs, baseline)
    rows.append({"name": "emulated arm64 baseline: one emu_start per case", "value": baseline, "unit": "cases/s",
                 "baseline": baseline, "ratio": 1.0, "notes": "same genomes and inputs, Python loop over cases"})
    return rows


def outside_population(n: int, length: int, seed: int) -> list[bytes]:
    """``n`` random genomes of ``length`` instructions, one of them a ``crc32x`` (a word the
    interpreter refuses, so Unicorn runs them) at a random place, the rest data processing."""
    rng = random.Random(seed)
    codes = []
    for code in random_population(n, length - 1, seed):
        at = 4 * rng.randrange(length)
        codes.append(code[:at] + assemble([f"crc32x w{rng.randrange(8)}, w{rng.randrange(8)}, x{rng.randrange(8)}"])
                     + code[at:])
    return codes


def _ret_rows(n: int, length: int, inputs: np.ndarray, baseline: float) -> list[dict]:
    """Issue 15 (the ret cliff): the same genomes as bodies and as functions ending in ``ret``,
    in the interpreter's subset and outside it (Unicorn's lanes), cold (new genomes) and warm."""
    ret = assemble(["ret"])
    total = n * inputs.shape[0]
    rows = []
    for kind, pop in (("interpreter subset", random_population(n, length, seed=4)),
                      ("outside the interpreter", outside_population(n, length, seed=5))):
        with open_executor("arm64", backend="emulated") as ex:
            ex.run(pop[:4], inputs)
            rates = {}
            for shape, codes in (("bodies", pop), ("ending in ret", [c + ret for c in pop])):
                t0 = time.perf_counter()
                res = ex.run(codes, inputs)
                cold = total / (time.perf_counter() - t0)
                warm = min(_timed(ex, codes, inputs) for _ in range(3))
                rates[shape] = (cold, total / warm)
                crashes = int((res.outcomes != 0).sum())
                for phase, rate in zip(("cold", "warm"), rates[shape]):
                    rows.append({"name": f"emulated arm64 {kind}, {shape} {phase}", "value": rate, "unit": "cases/s",
                                 "baseline": baseline, "ratio": rate / baseline,
                                 "notes": f"{n} genomes x {length} insns (+ ret) x {inputs.shape[0]} cases, "
                                          f"{crashes} crashed cases"})
            for i, phase in enumerate(("cold", "warm")):
                ratio = rates["ending in ret"][i] / rates["bodies"][i]
                rows.append({"name": f"emulated arm64 {kind}: ending in ret / bodies {phase}", "value": ratio,
                             "unit": "x", "baseline": 1.0, "ratio": ratio,
                             "notes": "target within 10% (issue 15)"})
    return rows


def bench_ret(quick: bool) -> list[dict]:
    """Issue 15 alone: the rows of :func:`_ret_rows`, with their own per-case baseline."""
    n, length, cases = (200 if quick else 1000), 16, 64
    inputs = np.random.default_rng(1).integers(0, 2**64, size=(cases, 2), dtype=np.uint64)
    baseline = per_case_baseline(random_population(max(20, n // 20), length, seed=1), inputs)
    return _ret_rows(n, length, inputs, baseline) + [
        {"name": "emulated arm64 baseline: one emu_start per case", "value": baseline, "unit": "cases/s",
         "baseline": baseline, "ratio": 1.0, "notes": "bodies, Python loop over cases"}]


def _timed(ex, codes, inputs) -> float:
    t0 = time.perf_counter()
    ex.run(codes, inputs)
    return time.perf_counter() - t0


def _section(module: str, function: str):
    """A section implemented in ``scripts/<module>.py`` as ``function(quick) -> rows``."""
    def run(quick: bool) -> list[dict]:
        sys.path.insert(0, str(ROOT / "scripts"))
        return getattr(importlib.import_module(module), function)(quick)
    return run


SECTIONS = {
    "emulated": bench_emulated,                                          # issue 2 (and 15's rows)
    "ret": bench_ret,                                                    # issue 15: the ret cliff alone
    "native": _section("bench_native", "run_native_benchmarks"),         # issues 5 and 15
    "brain": _section("bench_brain", "run_brain_benchmarks"),            # issue 3
    "evolve": _section("bench_evolve", "run_evolve_benchmarks"),         # issue 4
    "islands": _section("bench_islands", "run_island_benchmarks"),       # issue 7
    "proofs": _section("bench_proofs", "run_proof_benchmarks"),          # issue 12
    "soak": _section("bench_soak", "run_soak_benchmarks"),               # issue 13
    "search": _section("bench_search", "run_search_benchmarks"),         # issue 14
    "superopt": _section("bench_superopt", "run_superopt_benchmarks"),   # issue 17
    "transfer": _section("bench_transfer", "run_transfer_benchmarks"),   # issue 16 (hours: only with --only)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not for figures)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only or [s for s in SECTIONS if s not in ("ret", "superopt", "transfer")]:   # ret: rows
        # the emulated section has; superopt: its own run (issue 17's benchmark, ~30 minutes); transfer: hours
        print(f"== {name}", file=sys.stderr, flush=True)
        rows += SECTIONS[name](args.quick)
    info = machine()
    print(f"machine: {info}")
    width = max(len(r["name"]) for r in rows) if rows else 10
    for r in rows:
        ratio = f"x{r['ratio']:>8.2f}" if r.get("ratio") is not None else " " * 9
        print(f"{r['name']:<{width}}  {r['value']:>14,.2f} {r['unit']:<10} {ratio}  {r['notes']}")
    if args.json:
        def plain(value):   # strict JSON: infinities and NaN (e.g. "never solved") become null
            return None if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")) \
                else value
        rows_json = [{k: plain(v) for k, v in row.items()} for row in rows]
        Path(args.json).write_text(json.dumps({"machine": info, "results": rows_json}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
