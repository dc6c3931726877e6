"""The operations of the SMT synthesiser (:mod:`evolve.synth`): one table, three views of each.

Why one table: the synthesiser encodes a program's lines in z3 (:func:`term`), runs its candidates
on many cases in plain Python (:func:`evaluate`) and hands them to the engine as genes
(:func:`genes`). Those three views are written here side by side, and none of them is trusted:
``tests/test_synth.py`` checks the Python and z3 views against each other and the genes against
the interpreter and Unicorn on random values; the engine verifies every candidate.

A line is ``(op, a, b, shift, amount)``: ``a`` and ``b`` are operands (arguments or earlier
lines), ``amount`` a 6-bit immediate read by the forms that take one (shifted-register operand,
shift by immediate, add/sub immediate, a small constant), ``shift`` the shifted-register operand's
type (lsl, lsr, asr) of the forms that take one. All forms are the 64-bit AArch64 ones at width
``w`` = 64; narrower widths (the synthesiser's reduced problems) keep their semantics with every
value truncated: shifts read six bits of the amount and shift a value out when it is ``w`` or
more, ``clz`` counts from bit ``w - 1``.
"""
from __future__ import annotations

try:
    import z3
except ImportError:      # a run without z3 stops at its start (evolve.verify.require_solver)
    z3 = None

from evolve.alphabets.arm64_ops import op_index

#: the forms: name -> (reads a, reads b, reads shift type, reads amount)
FORMS = {
    "add": (1, 1, 1, 1), "sub": (1, 1, 1, 1), "and": (1, 1, 1, 1), "orr": (1, 1, 1, 1), "eor": (1, 1, 1, 1),
    "bic": (1, 1, 1, 1), "orn": (1, 1, 1, 1),
    "lslv": (1, 1, 0, 0), "lsrv": (1, 1, 0, 0), "asrv": (1, 1, 0, 0), "mul": (1, 1, 0, 0), "udiv": (1, 1, 0, 0),
    "lsli": (1, 0, 0, 1), "lsri": (1, 0, 0, 1), "asri": (1, 0, 0, 1), "addi": (1, 0, 0, 1), "subi": (1, 0, 0, 1),
    "neg": (0, 1, 1, 1), "mvn": (0, 1, 1, 1), "clz": (1, 0, 0, 0), "movi": (0, 0, 0, 1),
}
NAMES = tuple(FORMS)
#: forms whose operands commute (without a shifted operand)
COMMUTATIVE = {"add", "and", "orr", "eor", "mul"}
#: forms that are cheap to encode (no multiplier, divider or leading-zero count)
CHEAP = tuple(n for n in NAMES if n not in ("mul", "udiv", "clz"))
SHIFT_TYPES = ("lsl", "lsr", "asr")


# ----------------------------------------------------------------------------- plain Python
def _shift(v: int, t: int, s: int, w: int) -> int:
    m = (1 << w) - 1
    s &= 63                                  # AArch64's 64-bit shifts read six bits of the amount;
    if t == 0:                               # narrower widths shift them out (z3's semantics)
        return (v << s) & m
    if t == 1:
        return v >> s
    return ((v - (1 << w) if v >> (w - 1) else v) >> s) & m


def apply(name: str, a: int, b: int, t: int, s: int, w: int = 64) -> int:
    """The form ``name`` on ints ``a``, ``b`` (in [0, 2**w)) with shift type ``t``, amount ``s``."""
    m = (1 << w) - 1
    if FORMS[name][2]:
        b = _shift(b, t, s, w)
    if name == "add":
        return (a + b) & m
    if name == "sub":
        return (a - b) & m
    if name == "and":
        return a & b
    if name == "orr":
        return a | b
    if name == "eor":
        return a ^ b
    if name == "bic":
        return a & ~b & m
    if name == "orn":
        return (a | ~b) & m
    if name in ("lslv", "lsrv", "asrv"):
        return _shift(a, ("lslv", "lsrv", "asrv").index(name), b, w)
    if name == "mul":
        return (a * b) & m
    if name == "udiv":
        return a // b if b else 0
    if name in ("lsli", "lsri", "asri"):
        return _shift(a, ("lsli", "lsri", "asri").index(name), s, w)
    if name == "addi":
        return (a + s) & m
    if name == "subi":
        return (a - s) & m
    if name == "neg":
        return -b & m
    if name == "mvn":
        return ~b & m
    if name == "clz":
        return w - a.bit_length()
    if name == "movi":
        return s
    raise KeyError(name)


def evaluate(program, args, w: int = 64) -> int:
    """The program (lines ``(name, a, b, t, s)``, operands indexing arguments then lines) on ``args``."""
    vals = [int(v) for v in args]
    for name, a, b, t, s in program:
        vals.append(apply(name, vals[a], vals[b], t, s, w))
    return vals[-1]


# ----------------------------------------------------------------------------- z3
def _zshift(v, t, s, w: int):
    """z3: ``v`` shifted by the low six bits of the (z3, width ``w``) amount ``s``, by type ``t``
    (a z3 value of width 2 or an int)."""
    s = s & 63
    if isinstance(t, int):
        return (v << s, z3.LShR(v, s), v >> s)[t]
    return z3.If(t == 0, v << s, z3.If(t == 1, z3.LShR(v, s), v >> s))


def term(name: str, a, b, t, s, w: int):
    """z3: the form ``name`` on width-``w`` terms ``a``, ``b``; ``t``, ``s`` z3 values of width
    2 and ``w`` (or ints)."""
    if FORMS[name][2]:
        b = _zshift(b, t, s, w)
    zero = z3.BitVecVal(0, w, a.ctx)
    table = {
        "add": lambda: a + b, "sub": lambda: a - b, "and": lambda: a & b, "orr": lambda: a | b,
        "eor": lambda: a ^ b, "bic": lambda: a & ~b, "orn": lambda: a | ~b,
        "lslv": lambda: _zshift(a, 0, b, w), "lsrv": lambda: _zshift(a, 1, b, w), "asrv": lambda: _zshift(a, 2, b, w),
        "mul": lambda: a * b, "udiv": lambda: z3.If(b == 0, zero, z3.UDiv(a, b)),
        "lsli": lambda: _zshift(a, 0, s, w), "lsri": lambda: _zshift(a, 1, s, w), "asri": lambda: _zshift(a, 2, s, w),
        "addi": lambda: a + s, "subi": lambda: a - s, "neg": lambda: -b, "mvn": lambda: ~b,
        "clz": lambda: _zclz(a, w), "movi": lambda: s,
    }
    return table[name]()


def _zclz(v, w: int):
    out = z3.BitVecVal(w, w, v.ctx)
    for i in range(w):                       # the highest set bit decides (last If wins)
        out = z3.If(z3.Extract(i, i, v) == 1, z3.BitVecVal(w - 1 - i, w, v.ctx), out)
    return out


# ----------------------------------------------------------------------------- genes
def _tok(name: str, kind: str) -> int:
    return op_index(name, kind, 64)


_R3 = {n: _tok(n, "r3") for n in ("add", "sub", "and", "orr", "eor", "bic", "orn", "mul", "udiv")}
_R3 |= {"lslv": _tok("lsl", "r3"), "lsrv": _tok("lsr", "r3"), "asrv": _tok("asr", "r3")}
_SHIFTED = {n: (_tok(n, "sha" if n in ("add", "sub") else "shl")) for n in ("add", "sub", "and", "orr", "eor", "bic",
                                                                          "orn")}
_SHIFTED |= {"neg": _tok("neg", "sha"), "mvn": _tok("mvn", "shl")}
_R2 = {n: _tok(n, "r2") for n in ("neg", "mvn", "clz")}
_R2SH = {"lsli": _tok("lsl", "r2sh"), "lsri": _tok("lsr", "r2sh"), "asri": _tok("asr", "r2sh")}
_I12 = {"addi": _tok("add", "r2i12"), "subi": _tok("sub", "r2i12")}
_MOVZ = _tok("movz", "movw")


def gene(name: str, d: int, ra: int, rb: int, t: int, s: int) -> tuple:
    """The gene ``(op, d, n, m, imm)`` computing line ``name`` into register ``d`` from registers
    ``ra``, ``rb`` (64-bit forms; ``s`` in [0, 64))."""
    uses = FORMS[name]
    if uses[2] and s % 64:                   # a shifted-register operand
        op = _SHIFTED[name]
        return (op, d, ra, rb, 63 * t + s % 64 - 1) if uses[0] else (op, d, rb, 0, 63 * t + s % 64 - 1)
    if name in _R3:
        return (_R3[name], d, ra, rb, 0)
    if name in _R2:
        return (_R2[name], d, ra if uses[0] else rb, 0, 0)
    if name in _R2SH:
        return (_R2SH[name], d, ra, 0, s % 64)
    if name in _I12:
        return (_I12[name], d, ra, 0, s)
    if name == "movi":
        return (_MOVZ, d, 0, 0, s)
    raise KeyError(name)
