"""Existing code as a specification: loading (GNU assembly, ELF object, shared library, hex), the
modelled-code check with its stack-frame rewrite, and refusals that name the instruction."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from core.asm import assemble, disassemble
from evolve import frame as F
from evolve import targets as TG
from evolve.__main__ import main as evolve_main
from evolve.codetask import make_code_task, run_code

CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
needs_cross = pytest.mark.skipif(not CROSS_GCC, reason="needs gcc-aarch64-linux-gnu (see .ci/run)")

SOURCE = r"""
#include <stdint.h>
uint64_t clear_lowest(uint64_t x) { return x & (x - 1); }
int64_t sign(int64_t x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }
uint32_t sum_squares(uint32_t n) { uint32_t s = 0; for (uint32_t i = 0; i < n; i++) s += i * i; return s; }
extern uint64_t helper(uint64_t);
uint64_t calls(uint64_t x) { return helper(x) + 1; }
uint64_t table[4];
uint64_t global(uint64_t x) { return table[x & 3]; }
uint64_t through(uint64_t *p) { return *p; }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The source compiled by the cross compiler: -O0 and -O2 objects, -O0 assembly, a -O2 library."""
    if not CROSS_GCC:
        pytest.skip("needs gcc-aarch64-linux-gnu (see .ci/run)")
    d = tmp_path_factory.mktemp("targets")
    (d / "t.c").write_text(SOURCE)
    for args in (["-O0", "-c", "-o", "o0.o"], ["-O2", "-c", "-o", "o2.o"], ["-O0", "-S", "-o", "o0.s"],
                 ["-O2", "-shared", "-fPIC", "-o", "lib.so"]):
        subprocess.run([CROSS_GCC, *args, "t.c"], cwd=d, check=True, capture_output=True)
    return d


def test_hex_words_and_bytes_agree():
    """Check that hex words (as objdump prints them) and memory-order bytes give the same code."""
    code = assemble(["sub x1, x0, #1", "and x0, x0, x1"])
    words = " ".join(f"{int.from_bytes(code[i:i + 4], 'little'):08x}" for i in range(0, len(code), 4))
    assert TG.load_target(words).code == code
    assert TG.load_target("0x" + words.replace(" ", ",0x")).code == code
    assert TG.load_target(code.hex()).code == code
    with pytest.raises(TG.TargetError, match="whole number"):
        TG.load_target("d10004018a")


@needs_cross
def test_assembly_object_and_library_give_the_same_words(built):
    """Check that gcc -S text (assembled by keystone) and the -O0 object hold the same function,
    and that a shared library's symbol is found at its address with the object's -O2 words."""
    for name in ("clear_lowest", "sign"):
        from_asm = TG.load_target(str(built / "o0.s"), name)
        from_obj = TG.load_target(str(built / "o0.o"), name)
        assert from_asm.code == from_obj.code and from_obj.source == "elf-object"
    lib = TG.load_target(str(built / "lib.so"), "clear_lowest")
    assert lib.source == "elf-shared" and lib.address > 0
    assert lib.code == TG.load_target(str(built / "o2.o"), "clear_lowest").code
    with pytest.raises(TG.TargetError, match="choose one with --function"):
        TG.load_target(str(built / "o2.o"))
    with pytest.raises(TG.TargetError, match="no function 'nope'"):
        TG.load_target(str(built / "o2.o"), "nope")


@needs_cross
def test_frame_rewrite_keeps_the_result(built):
    """Check that -O0 code with its frame moved into the scratch area computes what the
    original computes (both run through the executor, under per-case random states)."""
    t = TG.load_target(str(built / "o0.o"), "sign")
    m = F.check(t.code, t.relocations)
    assert m.frame == 16 and len(m.code) == len(t.code) - 8       # sub/add sp dropped, branches re-aimed
    rng = np.random.default_rng(3)
    x = np.concatenate([np.array([[0], [1], [2**63], [2**64 - 1], [5]], np.uint64),
                        rng.integers(0, 2**64, (200, 1), dtype=np.uint64)])
    a, ca = run_code(t.code, x)
    b, cb = run_code(m.code, x)
    assert (ca == 0).all() and (cb == 0).all() and (a == b).all()
    signed = x[:, 0].view(np.int64)
    assert (a.view(np.int64) == np.sign(signed)).all()


def test_frame_rewrite_of_writeback_forms():
    """Check pre- and post-indexed SP writeback (a saved callee-saved register) against execution."""
    code = assemble(["str x19, [sp, #-32]!", "str x0, [sp, #8]", "add x19, x0, #3", "ldr x1, [sp, #8]",
                     "eor x0, x19, x1", "ldr x19, [sp], #32", "ret"])
    m = F.check(code)
    assert m.frame == 32
    x = np.array([[0], [7], [2**64 - 1], [123456789]], np.uint64)
    a, ca = run_code(code, x)
    b, cb = run_code(m.code, x)
    assert (ca == 0).all() and (a == b).all() and (a == ((x[:, 0] + 3) ^ x[:, 0])).all()


@pytest.mark.parametrize("lines, offset, why", [
    (["mov x1, #0", "add x1, x1, x0", "subs x0, x0, #1", "b.ne #-8", "mov x0, x1", "ret"], 0xc, "backward branch"),
    (["ldr x0, [x1, #8]", "ret"], 0x0, "memory beyond the stack"),
    (["mov x1, x0", "bl #0x100", "ret"], 0x4, "a call"),
    (["adrp x1, #0", "ret"], 0x0, "PC-relative"),
    (["mov x29, sp", "ret"], 0x0, "stack pointer as a value"),
    (["str x0, [sp, #8]", "ldr x0, [sp, #8]", "ret"], 0x0, "caller's stack"),
    (["mov x0, #1", "b #0x40"], 0x4, "out of the function"),
])
def test_refusals_name_the_instruction_and_offset(lines, offset, why):
    """Check that code outside the model is refused with its offset and the reason."""
    with pytest.raises(F.NotModelled, match=why) as info:
        F.check(assemble(lines))
    assert f"offset {offset:#x}" in str(info.value)


@needs_cross
def test_compiled_loop_call_and_globals_are_refused(built, capsys):
    """Check that compiled code with a loop, a call or a global is refused by offset, exit 2."""
    for name, why in (("sum_squares", "backward branch"), ("calls", "a call to another function"),
                      ("global", "the address of a symbol"), ("through", "memory beyond the stack")):
        t = TG.load_target(str(built / "o2.o"), name)
        with pytest.raises(F.NotModelled, match=why):
            F.check(t.code, t.relocations)
    assert evolve_main(["optimize", str(built / "o2.o"), "--function", "sum_squares", "--args", "1",
                        "--out", str(built / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "offset 0x" in err[0] and "backward branch" in err[0]
    assert not (built / "never").exists()


def test_bad_targets_exit_2(tmp_path, capsys):
    """Check one-line exit-2 errors for a missing file, text that is no function, a wrong --args."""
    (tmp_path / "empty.s").write_text("\t.text\n")
    (tmp_path / "x.bin").write_bytes(b"\x00\xff" * 9)
    cases = [["optimize", str(tmp_path / "missing.o"), "--args", "1"],
             ["optimize", str(tmp_path / "empty.s"), "--args", "1"],
             ["optimize", str(tmp_path / "x.bin"), "--args", "1"],
             ["optimize", "d1000401 8a010000"],                        # hex: --args needed
             ["optimize", "8a010000", "--args", "1"]]                  # reads x1: not a function of x0
    for argv in cases:
        assert evolve_main(argv + ["--out", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    assert not (tmp_path / "out").exists()


def test_reference_reading_other_registers_is_refused():
    """Check that a reference whose result depends on a non-argument register is refused."""
    from evolve.codetask import ReferenceFailure
    with pytest.raises(ReferenceFailure, match="not a function of its 1 argument"):
        make_code_task("reads_x1", assemble(["add x0, x0, x1", "ret"]), 1)


def test_a_vector_load_of_a_stored_word_becomes_fmov():
    """Check gcc -O0's popcount (the word to the NEON unit through the stack) is modelled, with
    ``ldr d0, [sp, #8]`` as ``fmov d0, x0``, and both forms agree when run."""
    code = assemble(["sub sp, sp, #16", "str x0, [sp, #8]", "ldr d0, [sp, #8]", "cnt v0.8b, v0.8b",
                     "addv b0, v0.8b", "fmov w0, s0", "sxtw x0, w0", "add sp, sp, #16", "ret"])
    task = make_code_task("popcount_O0", code, 1)
    assert "fmov d0, x0" in disassemble(task.model)
    assert task.symbolic is not None
    x = np.array([[0], [1], [2**64 - 1], [0xF0F0]], np.uint64)
    assert task.expected(x).tolist() == [0, 1, 64, 8]
