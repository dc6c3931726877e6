"""Tests of the executor API's contract: backend choice, options and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from core.asm import assemble
from core.executors import ExecutorOptions, native_available, open_executor
from core.isa import ARM64, X86_64, get_isa, host_isa
from core.outcome import Outcome

ONE_CASE = np.zeros((1, 1), dtype=np.uint64)


def test_outcome_classes_are_exactly_designs():
    """Check that Outcome has exactly DESIGN's classes, OK first and zero."""
    assert [o.name for o in Outcome] == ["OK", "SIGILL", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGTRAP", "SYSCALL",
                                         "TIMEOUT", "WORKER_LOST"]
    assert Outcome.OK == 0 and not Outcome.OK.crashed and Outcome.SIGSEGV.crashed


def test_auto_backend_on_a_foreign_isa_is_emulated():
    """Check that backend='auto' picks the emulator for an ISA the host cannot run."""
    foreign = ARM64 if not ARM64.is_host() else X86_64
    with open_executor(foreign.name, backend="auto") as ex:
        assert ex.backend == "emulated"


def test_native_on_a_foreign_host_names_the_fallback():
    """Check that asking for native execution of a foreign ISA says to use the emulator."""
    foreign = ARM64 if not ARM64.is_host() else X86_64
    with pytest.raises(ValueError, match="backend='emulated'"):
        open_executor(foreign.name, backend="native")


def test_auto_backend_on_the_host_isa():
    """Check that auto picks native exactly when the native backend exists for the host ISA."""
    host = host_isa()
    if host is None:
        pytest.skip("host ISA unknown to Melvin")
    with open_executor(host.name, backend="auto") as ex:
        assert ex.backend == ("native" if native_available(host) else "emulated")


@pytest.mark.parametrize("isa,backend,match", [
    ("mips", "auto", "unknown ISA"),
    ("arm64", "gpu", "unknown backend"),
])
def test_unknown_isa_or_backend(isa, backend, match):
    """Check that unknown ISA or backend names raise ValueError naming the valid ones."""
    with pytest.raises(ValueError, match=match):
        open_executor(isa, backend=backend)


@pytest.mark.parametrize("options,match", [
    ({"budget": 0}, "budget"),
    ({"budget": 2.5}, "budget"),
    ({"scratch": 24}, "scratch"),
    ({"scratch": -16}, "scratch"),
    ({"seed": -1}, "seed"),
    ({"max_code_bytes": 0}, "max_code_bytes"),
    ({"turbo": True}, "unknown executor option"),
])
def test_bad_options(options, match):
    """Check that bad limits raise ValueError naming the option."""
    with pytest.raises(ValueError, match=match):
        open_executor("arm64", backend="emulated", **options)


def test_x86_scratch_is_bounded_by_the_red_zone():
    """Check that x86-64 refuses a scratch area larger than the 128-byte red zone."""
    with pytest.raises(ValueError, match="128"):
        open_executor("x86_64", backend="emulated", scratch=256)
    assert ExecutorOptions().resolved(get_isa("x86_64")).scratch == 128


@pytest.mark.parametrize("codes,inputs,match", [
    ([b"\x1f\x20\x03\xd5"], np.zeros((2, 1), dtype=np.int64), "dtype uint64"),
    ([b"\x1f\x20\x03\xd5"], np.zeros(3, dtype=np.uint64), "2-D"),
    ([b"\x1f\x20\x03\xd5"], np.zeros((2, 2, 2), dtype=np.uint64), "2-D"),
    ([b"\x1f\x20\x03\xd5"], np.zeros((2, 5), dtype=np.uint64), "1 to 4 columns"),
    ([b"\x1f\x20\x03\xd5"], np.zeros((2, 0), dtype=np.uint64), "1 to 4 columns"),
    ([b"\x1f\x20\x03\xd5"], np.zeros((0, 2), dtype=np.uint64), "rows"),
    ([b"\x1f\x20\x03\xd5"], [[1, 2]], "numpy uint64 array"),
    ([], ONE_CASE, "empty"),
    (b"\x1f\x20\x03\xd5", ONE_CASE, "sequence of bytes"),
    (["nop"], ONE_CASE, r"codes\[0\] must be bytes"),
    ([bytes(6)], ONE_CASE, "whole 4-byte instructions"),
    ([bytes(2048)], ONE_CASE, "longer than the arena slot"),
])
def test_bad_batches(codes, inputs, match):
    """Check that malformed batches raise ValueError saying what was expected, before running."""
    with open_executor("arm64", backend="emulated") as ex:
        with pytest.raises(ValueError, match=match):
            ex.run(codes, inputs)
        assert ex.run([assemble(["nop"])], ONE_CASE).outcomes[0, 0] == Outcome.OK  # still usable


def test_run_after_close_raises():
    """Check that a closed executor refuses to run instead of crashing, and close is idempotent."""
    ex = open_executor("arm64", backend="emulated")
    ex.close()
    ex.close()
    with pytest.raises(ValueError, match="closed"):
        ex.run([assemble(["nop"])], ONE_CASE)


def test_max_code_bytes_option():
    """Check that max_code_bytes bounds genome size and a genome of exactly that size runs."""
    with open_executor("arm64", backend="emulated", max_code_bytes=64) as ex:
        res = ex.run([assemble(["add x0, x0, #1"] * 16)], ONE_CASE)
        assert res.outputs[0, 0] == 16
        with pytest.raises(ValueError, match="max_code_bytes=64"):
            ex.run([assemble(["nop"] * 17)], ONE_CASE)
