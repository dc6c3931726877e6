"""Tests of the Hacker's Delight suite (suites/hackers_delight.py and .c) and of what
scripts/bench_search.py measures with it: the loader accepts every task, each Python function
agrees with its z3 twin and with its C version (compiled for aarch64, run under qemu), gcc's
count is read right, and the independent harness tells right code from wrong."""
from __future__ import annotations

import importlib.util
import itertools
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import z3

from core.asm import assemble
from evolve import specs as S
from evolve import tasks as T
from scripts import bench_search as B

ROOT = Path(__file__).resolve().parents[1]
SUITE_FILE = ROOT / "suites" / "hackers_delight.py"
C_FILE = ROOT / "suites" / "hackers_delight.c"
MASK = (1 << 64) - 1
CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
OBJDUMP = shutil.which("aarch64-linux-gnu-objdump")
QEMU = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
EDGES = (0, 1, 2, 3, 7, 63, 64, 65, MASK, MASK - 1, 1 << 63, (1 << 63) - 1, (1 << 63) + 1,
         0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 1 << 32, (1 << 32) - 1, 0xF0F0F0F0F0F0F0F0)


def _load():
    spec = importlib.util.spec_from_file_location("hd_suite_test", SUITE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HD = _load()


def _inputs(arity: int, n_random: int = 300, seed: int = 5) -> list[tuple[int, ...]]:
    """Edge combinations, random rows of four kinds, and (two or more arguments) pairs whose
    first two share a bit length: where nlz(x) == nlz(y) is true and rare at random."""
    rng = random.Random(seed)
    rows = list(itertools.islice(itertools.product(EDGES, repeat=arity), 400))

    def one():
        kind = rng.randrange(4)
        if kind == 0:
            return rng.getrandbits(64)
        if kind == 1:
            return rng.randrange(300)
        if kind == 2:
            bits = rng.randrange(1, 65)
            return rng.getrandbits(bits) | 1 << (bits - 1)
        return ((1 << rng.randrange(64)) + rng.choice((-1, 0, 1))) & MASK
    rows += [tuple(one() for _ in range(arity)) for _ in range(n_random)]
    if arity >= 2:
        for _ in range(n_random // 3):
            bits = rng.randrange(1, 65)
            x, y = (rng.getrandbits(bits) | 1 << (bits - 1) for _ in range(2))
            rows.append((x, y) + tuple(one() for _ in range(arity - 2)))
    return rows


def disagreements(func, twin, arity: int, rows) -> list[tuple]:
    """Rows where the twin's term, evaluated by z3, differs from the function (mod 2**64)."""
    xs, term = S.term(twin, arity)
    return [r for r in rows if S.evaluate(xs, term, r) != func(*r) & MASK]


def test_the_suite_has_the_24_tasks():
    """Check that p01-p25 but p21 are there, each with its arity, docstring and twin."""
    assert HD.TASKS == tuple(f"p{k:02d}" for k in range(1, 26) if k != 21)
    assert set(HD.ARITY) == set(HD.TASKS)
    for name in HD.TASKS:
        assert callable(getattr(HD, f"{name}_symbolic"))
        assert getattr(HD, name).__doc__.strip()


@pytest.mark.parametrize("name", HD.TASKS)
def test_the_loader_accepts_the_task(name):
    """Check that `--task suites/hackers_delight.py:pNN` loads, probes its twin and reads the arity."""
    task = T.get_task(f"{SUITE_FILE}:{name}")
    assert task.name == f"hackers_delight.{name}"
    assert task.arity == HD.ARITY[name]
    assert task.symbolic is not None
    assert task.description == getattr(HD, name).__doc__.strip().splitlines()[0]


@pytest.mark.parametrize("name", HD.TASKS)
def test_function_and_twin_agree(name):
    """Check that the z3 twin equals the Python function on edge and random inputs."""
    func, twin, arity = getattr(HD, name), getattr(HD, f"{name}_symbolic"), HD.ARITY[name]
    rows = _inputs(arity)
    for r in rows:
        value = func(*r)
        assert isinstance(value, int) and 0 <= value <= MASK, (name, r, value)
    assert disagreements(func, twin, arity, rows) == []


def test_the_agreement_check_finds_a_wrong_twin():
    """Check that the check has teeth: an unsigned (logical-shift) average is not p14's twin,
    and a twin without p20's zero-divisor guard differs at 0."""
    unsigned_avg = lambda x, y: (x & y) + z3.LShR(x ^ y, 1)  # noqa: E731
    assert disagreements(HD.p14, unsigned_avg, 2, _inputs(2, 50))

    def unguarded(x):
        smallest = x & -x
        return (x + smallest) | z3.UDiv(z3.LShR(x ^ (x + smallest), 2), smallest)
    assert disagreements(HD.p20, unguarded, 1, [(0,), (6,)]) == [(0,)]


def test_p20_is_the_next_number_with_as_many_ones():
    """Check p20 against a search: the least y > x with popcount(y) == popcount(x)."""
    for x in range(1, 1 << 11):
        y = x + 1
        while bin(y).count("1") != bin(x).count("1"):
            y += 1
        assert HD.p20(x) == y, x
    assert HD.p20(0) == 0


def test_p24_p19_p17_meet_their_descriptions():
    """Check p24 (least power of 2 >= x), p19 (disjoint fields are swapped) and p17 on examples."""
    rng = random.Random(3)
    for _ in range(2000):
        x = rng.getrandbits(rng.randrange(1, 64)) or 1
        r = HD.p24(x)
        assert r & (r - 1) == 0 and r >= x > r // 2, x
    assert HD.p24(0) == 0 and HD.p24((1 << 63) + 1) == 0 and HD.p24(1 << 63) == 1 << 63
    for _ in range(2000):
        k = rng.randrange(1, 32)
        m = rng.getrandbits(k) & rng.getrandbits(64)     # field B below bit k, field A = m << k
        x = rng.getrandbits(64)
        swapped = (x & ~(m | m << k) & MASK) | ((x >> k) & m) | ((x & m) << k)
        assert HD.p19(x, m, k) == swapped
        assert HD.p19(x, m, k + 64) == swapped            # shifts are mod 64
    assert HD.p17(0b0111_0011_1000) == 0b0111_0000_0000 and HD.p17(MASK) == 0


def test_count_instructions_drops_padding_and_ret():
    """Check the objdump reader: trailing nops and the final ret are not counted, inner ones are."""
    text = """
0000000000000000 <f>:
   0:\tsub\tx1, x0, #0x1
   4:\tand\tx0, x1, x0
   8:\tret
   c:\tnop
0000000000000010 <g>:
  10:\tcbz\tx0, 1c <g+0xc>
  14:\tnop
  18:\tret
  1c:\tmov\tx0, #0x1
  20:\tret
"""
    assert B.count_instructions(text) == {"f": 2, "g": 4}


@pytest.mark.skipif(not (CROSS_GCC and OBJDUMP), reason="needs gcc-aarch64-linux-gnu (see .ci/run)")
def test_gcc_counts_every_function(tmp_path):
    """Check that gcc -O2's count covers the 24 functions, with the one-instruction forms found."""
    counts, version = B.gcc_counts(tmp_path)
    assert "gcc" in version
    assert set(counts) == set(HD.TASKS)
    assert counts["p01"] == 2 and counts["p25"] == 1          # sub+and; umulh
    assert all(1 <= c <= 12 for c in counts.values())


DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
typedef uint64_t u64;
@PROTOS@
@TABLES@
int main(void) {
@CALLS@
    return 0;
}
"""


@pytest.mark.skipif(not (CROSS_GCC and QEMU), reason="needs gcc-aarch64-linux-gnu and qemu-aarch64 (see .ci/run)")
def test_c_agrees_with_python_under_qemu(tmp_path):
    """Check that each C function, gcc -O2 for aarch64 and run under qemu, equals the Python one."""
    protos, tables, calls, expected = [], [], [], []
    for name in HD.TASKS:
        arity = HD.ARITY[name]
        rows = _inputs(arity, n_random=200, seed=17)
        params = ", ".join("u64" for _ in range(arity))
        protos.append(f"u64 {name}({params});")
        body = ",".join("{" + ",".join(f"{v}ULL" for v in r) + "}" for r in rows)
        tables.append(f"static const u64 in_{name}[{len(rows)}][{arity}] = {{{body}}};")
        args = ", ".join(f"in_{name}[i][{k}]" for k in range(arity))
        calls.append(f'    for (unsigned i = 0; i < {len(rows)}; i++) printf("{name} %u %llx\\n", i, '
                     f"(unsigned long long){name}({args}));")
        expected += [f"{name} {i} {HD.__dict__[name](*r) & MASK:x}" for i, r in enumerate(rows)]
    src = (DRIVER.replace("@PROTOS@", "\n".join(protos)).replace("@TABLES@", "\n".join(tables))
           .replace("@CALLS@", "\n".join(calls)))
    (tmp_path / "driver.c").write_text(src)
    obj, exe = tmp_path / "hd.o", tmp_path / "driver"
    # the suite compiled alone (-c, as the benchmark does): no inlining into the driver
    subprocess.run([CROSS_GCC, "-O2", "-c", str(C_FILE), "-o", str(obj)], check=True, capture_output=True,
                   timeout=120)
    subprocess.run([CROSS_GCC, "-O1", "-static", "-o", str(exe), str(tmp_path / "driver.c"), str(obj)],
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.run([QEMU, str(exe)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.splitlines()
    assert len(got) == len(expected)
    wrong = [(g, e) for g, e in zip(got, expected) if g != e]
    assert wrong == [], wrong[:5]


def test_harness_tells_right_from_wrong_code():
    """Check the independent harness: right code passes; code reading a non-argument register
    (x2, or v1 through fmov), or crashing, fails on most cases."""
    ok = assemble(["sub x1, x0, #1", "and x0, x0, x1"])
    wrong, n, first = B.independent_check(ok, HD.p01, 1)
    assert (wrong, first) == (0, "") and n >= 2000
    reads_x2 = assemble(["sub x1, x0, #1", "and x0, x2, x1"])
    assert B.independent_check(reads_x2, HD.p01, 1)[0] > 1500      # right only where x & (x - 1) is 0
    reads_v1 = assemble(["fmov x3, d1", "eor x0, x0, x3"])
    assert B.independent_check(reads_v1, HD.p01, 1, n=200)[0] > 190
    crashes = assemble(["mov x9, #0", "ldr x0, [x9]"])
    wrong, n, first = B.independent_check(crashes, HD.p01, 1, n=100)
    assert wrong == n and "got None" in first
    # the task's arguments are x0..x(arity-1): p25 (2 arguments) reads x1
    assert B.independent_check(assemble(["umulh x0, x0, x1"]), HD.p25, 2)[0] == 0


def _result(solved=True, equivalence="proven", asm=("sub x1, x0, #1", "and x0, x0, x1"), seconds=3.5):
    code = assemble(list(asm))
    return {"solved": solved, "seconds": seconds, "best": {"asm": list(asm), "code_hex": code.hex()},
            "verification": {"equivalence": equivalence} if equivalence else None}


def test_claims_count_only_verified_solutions_without_ret():
    """Check what counts as a claim: solved and proven/tested; its length excludes a final ret."""
    assert B.claim(_result())["length"] == 2
    assert B.claim(_result(asm=("sub x1, x0, #1", "and x0, x0, x1", "ret")))["length"] == 2
    assert B.claim(_result(solved=False)) is None
    assert B.claim(_result(equivalence=None)) is None
    assert B.claim(_result(equivalence="refuted")) is None
    assert B.claim(_result(equivalence="tested"))["equivalence"] == "tested"


def test_summary_checks_every_claim():
    """Check the per-task figures: a wrong claim is reported, and neither solves nor is the best."""
    runs = [{"task": "p01", "seed": 0, "claim": B.claim(_result(seconds=2.0))},
            {"task": "p01", "seed": 1, "claim": B.claim(_result(asm=("and x0, x0, x2",), seconds=4.0))},
            {"task": "p01", "seed": 2, "claim": None},
            {"task": "p25", "seed": 0, "claim": None}]
    summary = B.summarise(runs, {"p01": 2, "p25": 1}, ["p01", "p25"], HD)
    p01, p25 = summary["per_task"]
    assert (p01["solved"], p01["seeds"], p01["best_length"], p01["median_seconds"]) == (1, 3, 2, 2.0)
    assert p25["solved"] == 0 and p25["best_length"] is None
    totals = summary["totals"]
    assert totals["claims_checked"] == 2 and totals["claims_wrong"] == 1
    assert totals["wrong"][0].startswith("p01/seed 1")
    assert totals["tasks_at_most_gcc"] == 1 and totals["tasks_at_target_rate"] == 0
    assert "| p01 | 1/3 | 2.0 | 2 | 2 |" in B.markdown(summary, {"note": "test", "gcc": "gcc", "machine": "m"})
