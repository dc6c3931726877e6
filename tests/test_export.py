"""Tests of ``python -m evolve export``: the exported function links into a C program and, run
under qemu (arm64) or natively (x86-64), computes the task on edge and random inputs while
preserving callee-saved registers and the stack, even for a genome that writes them; a leaf gets
no frame at all (its instructions and a ``ret``), and linked into a C program in place of gcc's
compiled function it prints what the original program prints."""
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
from evolve.export import leaf_obstacle

CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
HOST_GCC = shutil.which("gcc")
CROSS_NM = shutil.which("aarch64-linux-gnu-nm")
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


# ------------------------------------------------------------------ the frame each genome needs
@pytest.mark.parametrize("isa, lines, why", [
    ("arm64", ["neg x1, x0", "and x0, x0, x1"], None),
    ("arm64", ["cbnz x0, #8", "ret", "sub x1, x0, #1", "and x0, x0, x1"], None),    # early return
    ("arm64", ["fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0"], None),
    ("arm64", ["tbz x0, #63, #8", "neg x0, x0", "mov x18, x0"], None),             # to the appended ret
    ("arm64", ["mov x19, x0"], "register x19"),
    ("arm64", ["fmov d8, x0"], "register d8"),
    ("arm64", ["mov x29, x0"], "register fp"),
    ("arm64", ["mov x30, x0"], "register lr"),
    ("arm64", ["mov x1, sp"], "register sp"),
    ("arm64", ["str x0, [sp, #8]"], "memory"),
    ("arm64", ["ldr x0, [x0]"], "memory"),
    ("arm64", ["ldr x0, #8"], "memory"),                 # a literal load: no memory operand
    ("arm64", ["adr x0, #8"], "PC-relative"),
    ("arm64", ["msr fpcr, x1"], "system"),
    ("arm64", ["mrs x0, nzcv"], "system"),
    ("arm64", ["blr x3"], "a call"),
    ("arm64", ["ret x5"], "another register"),
    ("arm64", ["br x1"], "through a register"),
    ("arm64", ["cbz x0, #12"], "out of the body"),
    ("arm64", ["b #-4"], "out of the body"),
    ("arm64", [".word 0x00000000"], "a trap"),           # udf
    ("arm64", [".word 0xffffffff"], "cannot decode"),
    ("x86_64", ["lea rax, [rdi - 1]", "and rax, rdi"], None),
    ("x86_64", ["test rdi, rdi", "jne 3", "ret", "mov rax, rdi"], None),
    ("x86_64", ["mov rbx, rdi"], "register rbx"),
    ("x86_64", ["mov qword ptr [rsp - 8], rdi"], "memory"),
    ("x86_64", ["lea rax, [rsp - 8]"], "register rsp"),
    ("x86_64", ["push rdi"], "stack"),
    ("x86_64", ["std"], "system"),
    ("x86_64", ["jmp rax"], "through a register"),
])
def test_leaf_obstacle(isa, lines, why):
    """Check that only code touching nothing a caller keeps is a leaf, and the reason otherwise."""
    found = leaf_obstacle(assemble(lines, isa), isa)
    if why is None:
        assert found is None
    else:
        assert found is not None and why in found


def function_lines(text: str, name: str) -> list[str]:
    """The instructions of ``name`` in an exported ``.s`` (directives, labels, comments left out)."""
    body = text.split(f"\n{name}:\n", 1)[1].split(f"\t.size {name},", 1)[0]
    return [ln.split("/*")[0].strip() for ln in body.splitlines()
            if ln.startswith("\t") and not ln.startswith("\t/*")
            and (not ln.startswith("\t.") or ln.startswith(("\t.inst", "\t.byte")))]


def symbol_size(obj: Path, name: str) -> int:
    """``name``'s size in bytes as the cross toolchain's nm reads it from the object file."""
    out = subprocess.run([CROSS_NM, "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    return next(int(f[1], 16) for f in map(str.split, out.splitlines()) if len(f) == 4 and f[3] == name)


def export_lines(arm64_run: Path, tmp_path: Path, lines: list[str], name: str, isa: str = "arm64",
                 *extra: str) -> tuple[Path, str]:
    run = hostile(arm64_run, tmp_path / f"run_{name}", lines, isa)
    out = tmp_path / f"exp_{name}"
    assert evolve_main(["export", str(run), "--name", name, "--out", str(out), *extra]) == 0
    return out, (out / f"{name}.s").read_text()


@pytest.mark.parametrize("lines, n", [
    (["neg x1, x0", "and x0, x0, x1"], 3),              # what gcc -O2 writes for x & -x
    (["neg x1, x0", "and x0, x0, x1", "ret"], 3),       # its own trailing ret: none appended
    (["neg x1, x0", "cbz x0, #12", "and x0, x0, x1", "ret"], 5),    # a branch past it: appended
])
def test_arm64_leaf_is_body_and_ret(arm64_run, tmp_path, lines, n):
    """Check that a leaf is exported as exactly its instructions and one ret: no frame, no bl."""
    out, text = export_lines(arm64_run, tmp_path, lines, "leaf")
    got = function_lines(text, "leaf")
    assert len(got) == n and got[-1] in ("ret", ".inst 0xd65f03c0") and all(g.startswith(".inst") for g in got[:-1])
    assert "frame: none" in text and "\tbl " not in text and "sp" not in "".join(got)
    if CROSS_GCC and CROSS_NM:
        subprocess.run([CROSS_GCC, "-c", "-o", str(out / "leaf.o"), str(out / "leaf.s")], check=True)
        assert symbol_size(out / "leaf.o", "leaf") == 4 * n


@pytest.mark.parametrize("lines, reason, needs", [
    (["mov x19, x0", "sub x1, x19, #1", "and x0, x19, x1"], "register x19", "str x19, [sp, #-16]!"),
    (["str x0, [sp, #8]", "ldr x1, [sp, #8]", "sub x2, x1, #1", "and x0, x1, x2"], "memory", "sub sp, sp, #256"),
])
def test_arm64_full_wrapper_kept_where_needed(arm64_run, tmp_path, lines, reason, needs):
    """Check that a genome writing x19 or using the scratch area keeps the wrapper (frame, the
    256-byte scratch area, bl) and still computes the task with the caller's registers intact."""
    out, text = export_lines(arm64_run, tmp_path, lines, "wrapped")
    assert "frame: the full wrapper" in text and reason in text
    assert needs in text and "bl .Lmelvin_body_wrapped" in text and "stp x29, x30" in text
    if CROSS_GCC and QEMU:
        build_and_run(out, "wrapped", T.get_task("clear_lowest"), "arm64")


@needs_arm64_tools
@pytest.mark.parametrize("lines, n", [
    (["cbnz x0, #8", "ret", "sub x1, x0, #1", "and x0, x0, x1"], 5),       # x == 0: 0 at once
    (["cbz x0, #16", "sub x1, x0, #1", "and x0, x0, x1", "ret"], 5),        # x == 0: to the appended ret
])
def test_arm64_leaf_with_an_early_return_runs_under_qemu(arm64_run, tmp_path, lines, n):
    """Check that a ret inside a frameless body returns to the C caller with the right value,
    and that a branch to the body's end finds the return the executor appends there."""
    out, text = export_lines(arm64_run, tmp_path, lines, "early")
    assert len(function_lines(text, "early")) == n and "frame: none" in text
    build_and_run(out, "early", T.get_task("clear_lowest"), "arm64")


@pytest.mark.skipif(not HOST_GCC, reason="needs the host gcc")
def test_x86_64_leaf_is_body_and_ret(arm64_run, tmp_path):
    """Check that an x86-64 leaf is its instructions and a ret, and computes the task from C."""
    src = tmp_path / "x86run"
    shutil.copytree(arm64_run, src, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint*"))
    for file, path in (("config.json", ("config",)), ("result.json", ())):
        doc = json.loads((src / file).read_text())
        (doc[path[0]] if path else doc)["isa"] = "x86_64"
        (src / file).write_text(json.dumps(doc))
    out, text = export_lines(src, tmp_path, ["lea rax, [rdi - 1]", "and rax, rdi"], "leaf86", "x86_64")
    assert len(function_lines(text, "leaf86")) == 3 and "frame: none" in text and "\tcall " not in text
    build_and_run(out, "leaf86", T.get_task("clear_lowest"), "x86_64")


# ------------------------------------------------------------------ the round trip into C
ORIGINAL = r"""
#include <stdint.h>
uint64_t clear_lowest(uint64_t x) { return x & (x - 1); }
"""
PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
uint64_t clear_lowest(uint64_t x);
/* Counts bits by clearing the lowest one until none is left (Kernighan), over edge values and an
   LCG's, and prints every tenth step: the program whose compiled function export replaces. */
int main(void) {
    uint64_t v[] = {0, 1, 2, 3, 0x8000000000000000ULL, 0xffffffffffffffffULL, 0x7fffffffffffffffULL,
                    0x5555555555555555ULL, 0xaaaaaaaaaaaaaaaaULL, 0x100ULL, 0xff00ULL};
    uint64_t s = 0x9e3779b97f4a7c15ULL, total = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t x = i < 11 ? v[i] : (s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> (i % 61);
        int bits = 0;
        for (uint64_t y = x; y; y = clear_lowest(y)) bits++;
        total += bits * (uint64_t)(i + 1) ^ clear_lowest(x);
        if (i % 10 == 0) printf("%016llx %2d %016llx\n", (unsigned long long)x, bits, (unsigned long long)clear_lowest(x));
    }
    printf("total %016llx\n", (unsigned long long)total);
    return 0;
}
"""


def _build_and_run(folder: Path, name: str, sources: list[Path]) -> str:
    exe = folder / name
    subprocess.run([CROSS_GCC, "-O2", "-static", "-o", str(exe), *map(str, sources)], check=True,
                   capture_output=True, text=True, timeout=120)
    proc = subprocess.run([QEMU, str(exe)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_arm64_tools
def test_round_trip_into_c_under_qemu(arm64_run, tmp_path):
    """Check that the run's optimised function, exported under the C function's own name and
    linked into the original program in place of gcc's compiled one, prints what it printed."""
    (tmp_path / "original.c").write_text(ORIGINAL)
    (tmp_path / "main.c").write_text(PROGRAM)
    want = _build_and_run(tmp_path, "original", [tmp_path / "main.c", tmp_path / "original.c"])
    assert want.count("\n") == 201
    best = json.loads((arm64_run / "result.json").read_text())["best"]
    for frame in ("auto", "full"):
        out = tmp_path / f"exp_{frame}"
        assert evolve_main(["export", str(arm64_run), "--name", "clear_lowest", "--out", str(out),
                            "--frame", frame]) == 0
        got = _build_and_run(out, "melvin", [tmp_path / "main.c", out / "clear_lowest.s"])
        assert got == want
        text = (out / "clear_lowest.s").read_text()
        if frame == "auto" and leaf_obstacle(bytes.fromhex(best["code_hex"]), "arm64") is None:
            assert len(function_lines(text, "clear_lowest")) == len(best["asm"]) + 1
        if frame == "full":
            assert "bl .Lmelvin_body_clear_lowest" in text
