"""``--task file.c:func``: C compiled for aarch64 as the reference, widths and signedness from the
prototype, AAPCS64's unspecified upper bits, proofs machine code against machine code."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.asm import assemble
from evolve import verify
from evolve.__main__ import main as evolve_main
from evolve.ctask import c_task
from evolve.tasks import TaskError, training_cases, validation_cases

CROSS_GCC = shutil.which("aarch64-linux-gnu-gcc")
pytestmark = pytest.mark.skipif(not CROSS_GCC, reason="needs gcc-aarch64-linux-gnu (see .ci/run)")

SOURCE = r"""
#include <stdint.h>
#include <stdbool.h>
typedef int8_t small;
small smax8(small a, const small b) { return a > b ? a : b; }
uint32_t lowbit32(uint32_t x) { return x & -x; }
int64_t sign64(int64_t x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }
bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }
uint32_t clear32(uint32_t x) { return x & (x - 1); }
double twice(double x) { return 2 * x; }
extern int other(int);
int calls(int x) { return other(x) + 1; }
int looped(unsigned n) { int s = 0; for (unsigned i = 0; i < n; i++) s += i * i; return s; }
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctask") / "funcs.c"
    path.write_text(SOURCE)
    return path


def _s(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@pytest.mark.parametrize("flags", ["-O2", "-O0"])
def test_signatures_and_the_compiled_reference(source, flags):
    """Check widths and signedness from the prototype, and that the compiled reference (garbage
    above narrow arguments included) computes the C function, by a Python model of it."""
    rng = np.random.default_rng(0)
    models = {
        "smax8": ((((8, True), (8, True)), (8, True)), lambda a, b: max(_s(a, 8), _s(b, 8)) & 0xFF),
        "lowbit32": ((((32, False),), (32, False)), lambda x: (x & -x) & 0xFFFFFFFF),
        "sign64": ((((64, True),), (64, True)), lambda x: (1 if _s(x, 64) > 0 else -1 if _s(x, 64) < 0 else 0) % 2**64),
        "is_pow2": ((((64, False),), (8, False)), lambda x: int(x != 0 and x & (x - 1) == 0)),
    }
    for name, ((args, result), model) in models.items():
        task = c_task(f"{source}:{name}", cflags=flags)
        assert task.arg_types == args and task.result_type == result
        assert task.result_mask == (1 << result[0]) - 1 and task.symbolic is not None
        assert (task.frame > 0) == (flags == "-O0")
        x = np.concatenate([training_cases(task, rng, 64), validation_cases(task, rng, 200)[:400]])
        if args[0][0] < 64:                           # AAPCS64: the upper bits are not the callee's
            assert (x[:, 0] >> np.uint64(args[0][0]) != 0).mean() > 0.3
        want = np.array([model(*map(int, row)) for row in x], np.uint64)
        assert (task.expected(x) == want).all(), name


def test_proofs_compare_only_what_the_abi_defines(source):
    """Check code against the compiled reference: a W-form answer that leaves x0's upper half
    dirty is proven for uint32_t; an int8_t answer comparing whole registers (assuming the
    caller sign-extended) is refuted, its counterexample with garbage above the byte."""
    lowbit = c_task(f"{source}:lowbit32")
    dirty = assemble(["neg x1, x0", "and x0, x0, x1", "orr x0, x0, #0xff00000000"])
    v = verify.check(dirty, lowbit, "arm64", 100, timeout=20)
    assert isinstance(v, verify.Verification) and v.equivalence == verify.PROVEN and v.independence == verify.PROVEN
    smax = c_task(f"{source}:smax8")
    good = assemble(["sxtb w1, w1", "sxtb w0, w0", "cmp w0, w1", "csel w0, w0, w1, gt"])
    v = verify.check(good, smax, "arm64", 100, timeout=20)
    assert isinstance(v, verify.Verification) and v.equivalence == verify.PROVEN
    assumes = assemble(["cmp x0, x1", "csel x0, x0, x1, gt"])
    r = verify.check(assumes, smax, "arm64", 100, timeout=20)
    assert isinstance(r, verify.Refutation) and "equivalence refuted" in r.reason
    a, b = r.args
    assert max(_s(a, 8), _s(b, 8)) & 0xFF != (a if _s(a, 64) > _s(b, 64) else b) & 0xFF


@pytest.mark.parametrize("spec, why", [
    ("funcs.c:twice", "not an integer"),
    ("funcs.c:calls", "a call to another function"),
    ("funcs.c:looped", "backward branch"),
    ("funcs.c:missing", "no function 'missing'"),
    ("nofile.c:f", "does not exist"),
])
def test_unusable_functions_exit_2(source, spec, why, capsys, tmp_path):
    """Check one-line exit-2 errors for non-integer signatures, calls, loops, unknown names."""
    spec = str(source.parent / spec)
    assert evolve_main(["run", "--quiet", "--task", spec, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0], err
    assert not (tmp_path / "r").exists()


def test_no_compiler_and_no_compile_exit_2(source, tmp_path, capsys):
    """Check exit 2 when the compiler is missing and when the file does not compile."""
    assert evolve_main(["run", "--quiet", "--task", f"{source}:lowbit32", "--cc", "no-such-cc-anywhere",
                        "--out", str(tmp_path / "a")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.c"
    bad.write_text("int f(int x) { return x +; }\n")
    assert evolve_main(["run", "--quiet", "--task", f"{bad}:f", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not compile" in err[0]
    with pytest.raises(TaskError, match="C compiler"):
        c_task(f"{source}:lowbit32", cc="no-such-cc-anywhere")


def test_run_task_c_function_end_to_end(source, tmp_path):
    """Check ``run --task file.c:func`` on a uint32_t function: solved, proven against the
    compiled machine code, and the record names the reference."""
    out = tmp_path / "run"
    assert evolve_main(["run", "--quiet", "--task", f"{source}:clear32", "--time-limit", "25",
                        "--pop", "200", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["result_mask"] == "0xffffffff" and config["task"]["function"] == "clear32"
    assert result["solved"] and result["verification"]["equivalence"] == "proven"
    code = bytes.fromhex(result["best"]["code_hex"])
    rng = np.random.default_rng(9)
    x = rng.integers(0, 2**64, (500, 1), dtype=np.uint64)
    from evolve.codetask import run_code
    got, outcomes = run_code(code, x)
    low = x[:, 0] & np.uint64(0xFFFFFFFF)
    assert (outcomes == 0).all() and ((got & np.uint64(0xFFFFFFFF)) == (low & (low - np.uint64(1)))).all()
