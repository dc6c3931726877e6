"""Symbolic specifications: what a task computes, as a z3 bit-vector term, for proofs.

A task's Python function is its reference on test cases; its symbolic twin takes 64-bit z3
bit-vectors (``z3.BitVec(.., 64)``) and returns one, so that :func:`core.proofs.prove_equivalence`
can compare a program with it for every input. Python's ints are unbounded and its ``>>`` is
an arithmetic shift on z3 terms, so a twin is written for 64-bit wrap-around semantics:
``z3.LShR`` for a logical shift, ``z3.ULT``/``z3.UGT`` for unsigned comparisons.

A user task gives one as an attribute of its function (``f.symbolic = f_z3``) or as a function
named ``<name>_symbolic`` in the same file; it is probed against the Python function on edge
inputs at registration (``evolve.tasks.validate_task``).
"""
from __future__ import annotations

import z3

W = 64


def const(value: int) -> z3.BitVecRef:
    return z3.BitVecVal(value & ((1 << W) - 1), W)


def evaluate(twin, args) -> int:
    """The twin's value on concrete unsigned 64-bit ``args``."""
    term = twin(*[const(a) for a in args])
    if not isinstance(term, z3.BitVecRef) or term.size() != W:
        raise TypeError(f"returned {type(term).__name__}, not a 64-bit z3 bit-vector")
    return z3.simplify(term).as_long()


def avg(x, y):
    return (x & y) + z3.LShR(x ^ y, 1)


def umax(x, y):
    return z3.If(z3.UGT(x, y), x, y)


def umin(x, y):
    return z3.If(z3.ULT(x, y), x, y)


def smax(x, y):
    return z3.If(x > y, x, y)


def abs_(x):
    return z3.If(x < 0, -x, x)


def mulhi(x, y):
    return z3.Extract(2 * W - 1, W, z3.ZeroExt(W, x) * z3.ZeroExt(W, y))


def sign(x):
    return z3.If(x > 0, const(1), z3.If(x < 0, const(-1), const(0)))


def popcount8(x):
    return sum((z3.ZeroExt(W - 1, z3.Extract(b, b, x)) for b in range(8)), const(0))
