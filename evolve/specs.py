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

import contextlib

try:
    import z3
except ImportError:      # reported at a run's start (evolve.verify.require_solver), not at import
    z3 = None

W = 64


def const(value: int):
    return z3.BitVecVal(value & ((1 << W) - 1), W)


@contextlib.contextmanager
def _no_python_branches():
    """Within the block, Python ``if``/``and``/``or`` on a symbolic condition raises instead of
    answering: z3 would read ``if x == k`` structurally (False for a variable x), silently
    building a different function than the one the twin's author wrote."""
    original = z3.AstRef.__bool__

    def strict(self):
        if z3.is_true(self):
            return True
        if z3.is_false(self):
            return False
        raise TypeError("a Python if/and/or/== on a symbolic value: use z3.If, z3.And, z3.Or")

    z3.AstRef.__bool__ = strict
    try:
        yield
    finally:
        z3.AstRef.__bool__ = original


def term(twin, arity: int):
    """``(variables, the twin's 64-bit term over them)``; TypeError if the twin branches in
    Python on a symbolic value or returns anything but a 64-bit bit-vector."""
    xs = [z3.BitVec(f"x{k}", W) for k in range(arity)]
    with _no_python_branches():
        value = twin(*xs)
    if not isinstance(value, z3.BitVecRef) or value.size() != W:
        raise TypeError(f"returned {type(value).__name__}, not a 64-bit z3 bit-vector")
    return xs, value


def strict(twin):
    """``twin`` that refuses Python branching on symbolic values (see :func:`term`)."""
    def call(*args):
        with _no_python_branches():
            return twin(*args)
    return call


def evaluate(xs, value, args) -> int:
    """A twin's term (from :func:`term`) on concrete unsigned 64-bit ``args``."""
    return z3.simplify(z3.substitute(value, *[(x, const(a)) for x, a in zip(xs, args)])).as_long()


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


def popcount(x, bits: int = W):
    """Number of 1 bits among the low ``bits`` bits (a sum of bits: z3 proves gcc's NEON idiom
    against it in a fraction of a second)."""
    return sum((z3.ZeroExt(W - 1, z3.Extract(b, b, x)) for b in range(bits)), const(0))


def popcount32(x):
    return popcount(x, 32)


def parity(x):
    return popcount(x) & const(1)
