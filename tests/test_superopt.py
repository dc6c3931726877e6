"""``python -m evolve optimize``: an object file and a shared library as targets, the report, and
the replacement's GNU assembly linked into a C program and run under qemu-aarch64."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from evolve.__main__ import main as evolve_main

CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
pytestmark = pytest.mark.skipif(not CROSS_GCC, reason="needs gcc-aarch64-linux-gnu (see .ci/run)")

SOURCE = "#include <stdint.h>\nuint64_t clr(uint64_t x) { return x & (x - 1); }\n"
MAIN = r"""
#include <stdio.h>
#include <stdint.h>
uint64_t clr(uint64_t x);
int main(void) {
    uint64_t v = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 200; i++) {
        uint64_t x = i < 8 ? (uint64_t[]){0, 1, 2, 3, 0x8000000000000000u, ~0ull, 96, 64}[i] : (v = v * 6364136223846793005u + 1442695040888963407u) >> (i % 64);
        printf("%llx\n", (unsigned long long)clr(x));
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("superopt")
    (d / "clr.c").write_text(SOURCE)
    (d / "main.c").write_text(MAIN)
    subprocess.run([CROSS_GCC, "-O0", "-c", "-o", "clr0.o", "clr.c"], cwd=d, check=True)
    subprocess.run([CROSS_GCC, "-O2", "-g", "-shared", "-fPIC", "-o", "libclr.so", "clr.c"], cwd=d, check=True)
    return d


def _run_c(d, asm_or_c, exe):
    subprocess.run([CROSS_GCC, "-O1", "-static", "-o", exe, "main.c", asm_or_c], cwd=d, check=True, capture_output=True)
    return subprocess.run([QEMU, str(d / exe)], capture_output=True, text=True, check=True, timeout=60).stdout


def test_optimize_an_O0_object(built):
    """Check that the -O0 object of ``x & (x - 1)`` becomes gcc -O2's two instructions, proven,
    with a report, and that best.s links into C in place of the function (output compared)."""
    out = built / "o0"
    assert evolve_main(["optimize", str(built / "clr0.o"), "--args", "1", "--time-limit", "14", "--pop", "150",
                        "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["improved"] and report["before"]["length"] == 7 and report["target"]["frame_bytes"] == 16
    assert report["after"]["length"] <= 2 and report["after"]["cycles"] < report["before"]["cycles"]
    assert report["after"]["verification"]["equivalence"] == "proven" and report["paste_check"] == ""
    assert {s["name"] for s in report["searches"]} == {"from_target", "from_scratch"}
    for sub in ("from_target", "from_scratch"):
        assert (out / sub / "result.json").is_file() and (out / sub / "metrics.jsonl").is_file()
    assert "## The proof" in (out / "report.md").read_text()
    if QEMU:
        assert _run_c(built, str(out / "best.s"), "opt") == _run_c(built, "clr.c", "ref")


def test_optimize_a_shared_library_symbol(built):
    """Check a shared library's symbol as the target (signature from its debug information):
    the result is never worse than the target and is proven, or the target stands."""
    out = built / "so"
    assert evolve_main(["optimize", str(built / "libclr.so"), "--function", "clr", "--time-limit", "10",
                        "--pop", "100", "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["target"]["source"] == "elf-shared" and report["target"]["arguments"] == 1
    assert report["before"]["length"] == 2 and report["after"]["length"] <= 2
    assert report["improved"] is False and report["after"]["code_hex"] == report["before"]["code_hex"]
    assert "cheapest proven program costs" in report["why"] or "no search found" in report["why"]
    assert (out / "best.s").read_text().count("\n\t") >= 3
