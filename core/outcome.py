"""Outcome classes: how one execution of (genome, test case) ended.

Every backend reports exactly one of these per case, as a ``uint8`` in ``Result.outcomes``.
``OK`` is 0 so that a zeroed outcome array means "all fine" and harness code can store it
with a single zero-register store.
"""
from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """The classes of DESIGN.md, in the order the brain's per-class crash counters use."""

    OK = 0           #: returned normally; the output is x0 / rax
    SIGILL = 1       #: undefined or privileged instruction
    SIGSEGV = 2      #: unmapped or protected memory, bad jump target
    SIGBUS = 3       #: misaligned SP use or misaligned exclusive access (arm64)
    SIGFPE = 4       #: integer divide error (x86-64; AArch64 division never traps)
    SIGTRAP = 5      #: breakpoint instruction (brk / int3)
    SYSCALL = 6      #: genome code tried to make a system call (refused, never performed)
    TIMEOUT = 7      #: ran past its instruction budget (emulated) or time budget (native)
    WORKER_LOST = 8  #: the sandbox process died or was corrupted; the case could not be attributed

    @property
    def crashed(self) -> bool:
        """True for every class but OK: the reinforcement rule treats them all as failure."""
        return self is not Outcome.OK


N_OUTCOMES = len(Outcome)
