"""Tests of ``python -m evolve export``: the exported function links into a C program and, run
under qemu (arm64) or natively (x86-64), computes the task on edge and random inputs while
preserving callee-saved registers and the stack, even for a genome that writes them."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.asm import assemble
from evolve import tasks as T
from evolve.__main__ import main as evolve_main

CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
HOST_GCC = shutil.which("gcc")
needs_arm64_tools = pytest.mark.skipif(not (CROSS_GCC and QEMU),
                                       reason="needs gcc-aarch64-linux-gnu and qemu-aarch64 (see .ci/run)")

# Each callee-saved register holds a known value across the call (GCC explicit register
# variables: the compiler assumes the callee preserves them, so a clobber shows in the check).
ARM64_GUARD = [f"x{i}" for i in range(19, 29)]
X86_GUARD = ["rbx", "r12", "r13", "r14", "r15"]

DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include "@NAME@.h"
static const uint64_t IN[][@ARITY@] = {@INPUTS@};
static const uint64_t WANT[] = {@WANT@};
static int call_checked(const uint64_t *a, uint64_t *got) {
@DECL@
    uint64_t mode_before = 0, mode_after = 0;
@MODE_BEFORE@
    __asm__ volatile("" : @OPS@);
    *got = @NAME@(@ARGS@);
    __asm__ volatile("" : @OPS@);
@MODE_AFTER@
    int bad = mode_before != mode_after;
@CHECK@
    return bad;
}
int main(void) {
    int wrong = 0, clobbered = 0;
    volatile uint64_t canary = 0xC0FFEE;
    for (unsigned i = 0; i < sizeof(WANT) / sizeof(WANT[0]); i++) {
        uint64_t got;
        clobbered += call_checked(IN[i], &got);
        if (got != WANT[i]) {
            if (wrong < 5) printf("case %u: want %llx got %llx\n", i, (unsigned long long)WANT[i], (unsigned long long)got);
            wrong++;
        }
    }
    printf("cases %u wrong %d clobbered %d canary %llx\n", (unsigned)(sizeof(WANT) / sizeof(WANT[0])),
           wrong, clobbered, (unsigned long long)canary);
    return wrong || clobbered || canary != 0xC0FFEE;
}
"""


def driver(name: str, task: T.Task, guard: list[str]) -> tuple[str, int]:
    rng = np.random.default_rng(11)
    x = np.concatenate([T.edge_cases(task.arity, limit=64), T.random_cases(rng, 300, task.arity)])
    want = task.expected(x)
    decl = "\n".join(f'    register uint64_t g_{r} __asm__("{r}") = 0x{0x1000 + k:x}5A5AULL;' for k, r in enumerate(guard))
    check = "\n".join(f"    bad += g_{r} != 0x{0x1000 + k:x}5A5AULL;" for k, r in enumerate(guard))
    src = (DRIVER.replace("@NAME@", name).replace("@ARITY@", str(task.arity))
           .replace("@INPUTS@", ",".join("{" + ",".join(f"{int(v)}ULL" for v in row) + "}" for row in x))
           .replace("@WANT@", ",".join(f"{int(v)}ULL" for v in want))
           .replace("@DECL@", decl).replace("@CHECK@", check)
           .replace("@OPS@", ", ".join(f'"+r"(g_{r})' for r in guard))
           # arm64: the floating-point mode register FPCR must survive the call too
           .replace("@MODE_BEFORE@", '    __asm__ volatile("mrs %0, fpcr" : "=r"(mode_before));' if guard is ARM64_GUARD else "")
           .replace("@MODE_AFTER@", '    __asm__ volatile("mrs %0, fpcr" : "=r"(mode_after));' if guard is ARM64_GUARD else "")
           .replace("@ARGS@", ", ".join(f"a[{i}]" for i in range(task.arity))))
    return src, len(want)


def build_and_run(export_dir: Path, name: str, task: T.Task, isa: str) -> str:
    guard = ARM64_GUARD if isa == "arm64" else X86_GUARD
    src, n = driver(name, task, guard)
    (export_dir / "main.c").write_text(src)
    exe = export_dir / "main"
    gcc = CROSS_GCC if isa == "arm64" else HOST_GCC
    subprocess.run([gcc, "-O2", "-static", "-I", str(export_dir), "-o", str(exe), str(export_dir / "main.c"),
                    str(export_dir / f"{name}.s")], check=True, capture_output=True, text=True, timeout=120)
    cmd = [QEMU, str(exe)] if isa == "arm64" else [str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cases {n} wrong 0 clobbered 0 canary c0ffee" in proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def arm64_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    assert evolve_main(["run", "--quiet", "--task", "clear_lowest", "--backend", "emulated", "--out", str(out)]) == 0
    return out


def hostile(run: Path, dst: Path, lines: list[str], isa: str) -> Path:
    """A copy of ``run`` whose best genome is ``lines`` (hand-written, writes callee-saved state)."""
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint*"))
    result = json.loads((dst / "result.json").read_text())
    result["best"].update(asm=lines, code_hex=assemble(lines, isa).hex(), genes=None)
    (dst / "result.json").write_text(json.dumps(result))
    (dst / "best.s").write_text("\n".join(lines) + "\n")
    return dst


@needs_arm64_tools
def test_arm64_export_links_and_runs_under_qemu(arm64_run, tmp_path, capsys):
    """Check that the exported arm64 solution, linked into C and run under qemu, is the task."""
    out = tmp_path / "exp"
    assert evolve_main(["export", str(arm64_run), "--name", "clr", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clr.h", "clr.s"]
    assert "uint64_t clr(uint64_t x0);" in (out / "clr.h").read_text()
    build_and_run(out, "clr", T.get_task("clear_lowest"), "arm64")


@needs_arm64_tools
def test_arm64_wrapper_preserves_what_the_genome_clobbers(arm64_run, tmp_path):
    """Check that a genome writing x19-x28, x29, d8-d15, SP and FPCR, and using the scratch area,
    still returns the right value and leaves the caller's registers, FP mode and stack intact."""
    lines = ["str x0, [sp, #248]", "mov x19, #7", "mov x20, sp", "mov x29, #0", "fmov d8, x0",
             "mov x1, #0x400000", "msr fpcr, x1",       # round towards +infinity
             "fmov d15, x19", "mov x28, #1", "movn x21, #0", "mov sp, x19", "ldr x1, [x20, #248]",
             "sub x2, x1, #1", "and x0, x1, x2", "mov x22, x0", "mov x23, x1", "mov x24, x2",
             "mov x25, x2", "mov x26, x2"]
    run = hostile(arm64_run, tmp_path / "hostile", lines, "arm64")
    out = tmp_path / "exp"
    assert evolve_main(["export", str(run), "--name", "hostile", "--out", str(out)]) == 0
    text = (out / "hostile.s").read_text()
    assert "stp d8, d15" in text and "stp x19, x20" in text and "stp x27, x28" in text
    assert "mrs x9, fpcr" in text and "msr fpcr, x9" in text
    build_and_run(out, "hostile", T.get_task("clear_lowest"), "arm64")


@pytest.mark.skipif(not HOST_GCC, reason="needs the host gcc")
def test_x86_64_export_links_and_runs(arm64_run, tmp_path):
    """Check that an x86-64 genome writing rbx, rbp and r12-r15 exports to a correct C function."""
    src = tmp_path / "x86run"
    shutil.copytree(arm64_run, src, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint*"))
    cfg = json.loads((src / "config.json").read_text())
    cfg["config"]["isa"] = "x86_64"
    (src / "config.json").write_text(json.dumps(cfg))
    res = json.loads((src / "result.json").read_text())
    res["isa"] = "x86_64"
    (src / "result.json").write_text(json.dumps(res))
    lines = ["mov rbx, rdi", "mov rbp, 3", "lea r12, [rdi - 1]", "mov qword ptr [rsp - 8], r12",
             "xor r13, r13", "mov r14, qword ptr [rsp - 8]", "and rbx, r14", "mov rax, rbx"]
    run = hostile(src, tmp_path / "hostile", lines, "x86_64")
    out = tmp_path / "exp"
    assert evolve_main(["export", str(run), "--name", "clr86", "--out", str(out)]) == 0
    text = (out / "clr86.s").read_text()
    assert all(f"push {r}" in text for r in ("rbx", "r12", "r13", "r14", "r15"))
    build_and_run(out, "clr86", T.get_task("clear_lowest"), "x86_64")


@pytest.mark.parametrize("args, words", [
    (["--name", "1bad-name"], "not a C identifier"),
    (["--rank", "50"], "beyond the hall of fame"),
])
def test_bad_input_exits_2_and_writes_nothing(arm64_run, tmp_path, capsys, args, words):
    """Check that a bad name or rank exits 2 with one line and creates no output folder."""
    out = tmp_path / "exp"
    assert evolve_main(["export", str(arm64_run), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not out.exists()


def test_missing_run_folder_exits_2(tmp_path, capsys):
    """Check that exporting from a folder that does not exist exits 2."""
    assert evolve_main(["export", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
