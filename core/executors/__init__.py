"""The executor API: run a population of machine-code genomes on a batch of test cases.

::

    from core.executors import open_executor
    with open_executor("arm64", backend="emulated") as ex:
        res = ex.run(codes, inputs)   # codes: sequence of bytes; inputs: uint64 [n_cases, n_inputs]
    res.outputs    # uint64 [n_genomes, n_cases]: x0 / rax after the call, 0 where it crashed
    res.outcomes   # uint8  [n_genomes, n_cases]: core.outcome.Outcome values

Each code is a function body or a whole function: the executor appends a return instruction,
and a code may return earlier itself (arm64 ``ret``, x86-64 ``ret``), as compiled code does, at
the cost of its body (what a code may contain: :mod:`core.executors.api`). The calling
convention (inputs, random non-argument registers, scratch area) is described in
:mod:`core.isa`; ``run(codes, inputs, states=CaseStates(...))`` gives every case its own
registers and scratch instead of the seed's batch state (:mod:`core.executors.batch_state`). Loops over genomes and cases run inside emulated or native code, never one
Python call per case.

The contract (options, results, the protocol, batch checks) is :mod:`core.executors.api`; the
package is laid out by tier: ``interp/`` (the Numba interpreter over the one AArch64
decoder), ``unicorn/`` (harness, triage, the Unicorn engine), ``native/`` (llvmlite trampoline,
sandbox workers, :class:`~core.executors.native.backend.NativeExecutor`), ``tiered.py`` (the
emulated backend: interpreter, then Unicorn's lanes), ``memory_map.py`` (the address space all
tiers and the native stub share) and ``batch_state.py`` (what a genome finds at entry).
"""
from __future__ import annotations

from core.executors.api import BACKENDS, MAX_CASES, Executor, ExecutorOptions, Result, validate_batch
from core.isa import Isa, get_isa, host_isa


def native_available(isa: Isa) -> bool:
    """True when this host runs ``isa`` and Melvin's native backend is importable here."""
    if not isa.is_host():
        return False
    try:
        from core.executors.native import backend  # noqa: F401
    except ImportError:
        return False
    return True


def open_executor(isa: str | Isa = "arm64", backend: str = "auto", **options) -> Executor:
    """Open an executor for ``isa`` on ``backend`` ("auto", "emulated" or "native").

    ``options`` are the fields of :class:`ExecutorOptions`. ``auto`` picks native when the host
    executes ``isa`` and the native backend exists, else emulated. Use it as a context manager.
    """
    isa = get_isa(isa)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {list(BACKENDS)}")
    unknown = set(options) - set(ExecutorOptions.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown executor option(s) {sorted(unknown)}: expected "
                         f"{sorted(ExecutorOptions.__dataclass_fields__)}")
    opts = ExecutorOptions(**options).resolved(isa)
    if backend == "auto":
        backend = "native" if native_available(isa) else "emulated"
    if backend == "native":
        if not isa.is_host():
            host = host_isa()
            raise ValueError(f"native {isa.name} execution needs a {isa.name} host, this one is "
                             f"{host.name if host else 'unsupported'}; use backend='emulated'")
        if not native_available(isa):
            raise ValueError("the native backend is not available on this host; use backend='emulated'")
        from core.executors.native.backend import NativeExecutor
        return NativeExecutor(isa, opts)
    from core.executors.tiered import TieredExecutor
    return TieredExecutor(isa, opts)


__all__ = ["open_executor", "ExecutorOptions", "Result", "Executor", "validate_batch", "BACKENDS", "MAX_CASES",
           "native_available"]
