"""The rewriter: :mod:`evolve.rewrite`'s passes on straight-line code and :mod:`evolve.ifconvert`'s
on forward branches, in order, for optimize's seeds and the optimisation phase's candidates
(nothing it returns is trusted: each is tested and proven like any candidate). Its own module so
that the two pass modules do not import each other."""
from __future__ import annotations

from evolve.ifconvert import if_convert, selects
from evolve.rewrite import (_MEM, N_REGS, AsmError, Ins, Unsupported, coalesce, combine, dead_code, decode,
                            encode, live_after, rename)


def rewrite(code: bytes, n_args: int, result: int = 0, n_regs: int = N_REGS) -> bytes | None:
    """``code`` (loop-free, a trailing ``ret`` optional) after the steps of the module docstring
    (:mod:`evolve.rewrite`'s) in registers x0..x(n_regs-1), the shortest of its if-converted forms, with a final ``ret``;
    None when they do not apply or shorten nothing."""
    try:
        before = len(decode(code, branches=True, n_regs=64))
        try:
            forms = [decode(code, n_regs=n_regs)]
        except Unsupported:
            from evolve.forward import simplify       # slots forwarded across the branches first
            forms = if_convert(decode(simplify(code), branches=True, n_regs=n_regs), n_regs)
    except (Unsupported, AsmError):
        return None
    best = None
    for insns in forms:
        try:
            insns = dead_code(insns, result)
        except Unsupported:
            continue
        entry = live_after([Ins("nop", [])] + insns, result)[0] - {_MEM}
        if entry - set(range(n_args)):
            continue          # reads a register other than the arguments, or the flags, unset
        try:
            insns = dead_code(selects(rename(insns, n_args, result, n_regs)), result)
            insns = coalesce(dead_code(combine(insns, result), result), result)
            out = encode(insns)
        except (Unsupported, AsmError):
            continue
        if insns and len(insns) < before and (best is None or len(out) < len(best)):
            best = out
    return best
