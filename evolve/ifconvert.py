"""If-conversion for :mod:`evolve.rewrite`: forward branches of loop-free arm64 code as
conditional selects, so the straight-line rewrites (and the search) see one block.

Why: gcc -O0 compiles ``a && b`` and ``c ? x : y`` into branches, which the search keeps as raw
words it cannot vary, while gcc -O2 writes ``ccmp``, ``cset``, ``csel``, ``cneg``, ``csinc``:
several simultaneous changes. Two shapes are converted (the code on either side must be
side-effect free: no stores, flags written only by a copy of the branch's own comparison):

* a chain of comparisons branching to one "false" block (:func:`chains`): ``cmp``, then ``ccmp``
  per further comparison, then ``cset``/``csetm``; every order of the comparisons is offered;
* nested diamonds and triangles (:func:`diamonds`): both sides computed into fresh registers,
  then a ``csel`` per register either side writes; :func:`selects` then turns selects of
  constants and negations into ``cset``/``csetm``/``csinc``/``csinv``/``cneg``.

Nothing here is trusted: what comes out is a seed or a candidate, verified like any program.
"""
from __future__ import annotations

from evolve.rewrite import _FLAGS, _MEM, N_REGS, Ins, Unsupported, _named, live_after, reg_number

#: per condition, flags (nzcv) that satisfy it
_SATISFY = {"eq": 4, "ne": 0, "hs": 2, "lo": 0, "mi": 8, "pl": 0, "vs": 1, "vc": 0, "hi": 2, "ls": 0,
            "ge": 0, "lt": 8, "gt": 0, "le": 4}
_INVERSE = {"eq": "ne", "ne": "eq", "hs": "lo", "lo": "hs", "mi": "pl", "pl": "mi", "vs": "vc", "vc": "vs",
            "hi": "ls", "ls": "hi", "ge": "lt", "lt": "ge", "gt": "le", "le": "gt"}
_SETS = {(1, 0): ("cset", False), (0, 1): ("cset", True), (-1, 0): ("csetm", False), (0, -1): ("csetm", True)}


def _substitute(ins: Ins, names: dict) -> Ins:
    """``ins`` reading ``names[r]`` for each register ``r`` renamed."""
    ops = list(ins.ops)
    for k in ins.reg_positions(0 if ins.dst() is None else 1):
        r = reg_number(ops[k])
        if r in names:
            ops[k] = _named(ops[k], names[r])
    return Ins(ins.mn, ops)


def _constant(ins: Ins) -> tuple[int, int] | None:
    """(register, value) of ``mov r, #c``."""
    if ins.mn != "mov" or len(ins.ops) != 2 or reg_number(ins.ops[0]) is None or not ins.ops[1].startswith("#"):
        return None
    return reg_number(ins.ops[0]), int(ins.ops[1][1:], 0)


def chains(insns: list[Ins], n_regs: int = N_REGS) -> list[list[Ins]]:
    """A chain of comparisons that all branch to one "false" block, as gcc -O0 writes ``a && b``
    (``cmp; b.c1 F; ...; cmp; b.c2 F; mov r, #1; b E; F: mov r, #0; E: ...``), as the code
    between the comparisons, one comparison, a ``ccmp`` per further one and a
    ``cset``/``csetm``; one form per order of the comparisons (``&&`` commutes when every
    operand is computed on every path). The code between the comparisons runs on every path, so
    it must not write the flags, touch memory, write a register an earlier comparison reads, nor
    one read after ``E`` other than ``r``."""
    from itertools import permutations
    at = {4 * k: k for k in range(len(insns))}
    jumps = [k for k, i in enumerate(insns) if i.mn == "b"]
    conds = [k for k, i in enumerate(insns) if i.mn.startswith("b.")]
    if len(jumps) != 1 or not conds or len(conds) > 3:
        raise Unsupported("not a comparison chain")
    j = jumps[0]
    e, f = at.get(int(insns[j].ops[0][1:], 0)), j + 1
    if e is None or e != j + 2 or any(at.get(int(insns[k].ops[0][1:], 0)) != f for k in conds) or conds[-1] != j - 2:
        raise Unsupported("not a comparison chain")
    true, false = _constant(insns[j - 1]), _constant(insns[f])
    if true is None or false is None or true[0] != false[0] or (true[1], false[1]) not in _SETS:
        raise Unsupported("the chain does not set one register to 0/1/-1")
    reg, width = true[0], insns[f].ops[0][0]
    head = list(insns[:max(conds[0] - 1, 0)])
    code, tests, written = [], [], set()        # the code between, (cmp, branch condition) per test
    names: dict = {}                             # registers renamed in the code between
    referenced = {r for i in insns for r in i.reads() | i.writes() if isinstance(r, int)}
    for n, k in enumerate(conds):
        cmp = insns[k - 1]
        if k < 1 or cmp.mn not in ("cmp", "cmn") or len(cmp.ops) != 2:
            raise Unsupported("a branch not right after a cmp")
        if cmp.ops[1].startswith("#") and not 0 <= int(cmp.ops[1][1:], 0) <= 31:
            raise Unsupported("a comparison ccmp cannot make")
        for ins in insns[(conds[n - 1] + 1) if n else k - 1:k - 1]:
            if ins.writes() & {_FLAGS, _MEM} or ins.reads() & {_MEM, _FLAGS} or ins.mn.startswith("b"):
                raise Unsupported("the code between the comparisons is not plain")
            ins = _substitute(ins, names)
            if ins.dst() in set().union(*(c.reads() for c, _ in tests)):
                spare = [r for r in range(n_regs) if r not in referenced]   # keep what the test read
                if not spare:
                    raise Unsupported("no free register")
                names[ins.dst()] = spare[0]
                referenced.add(spare[0])
                ins = Ins(ins.mn, [_named(ins.ops[0], spare[0])] + ins.ops[1:])
            elif ins.dst() in names:
                del names[ins.dst()]
            written |= ins.writes()
            code.append(ins)
        tests.append((_substitute(cmp, names), insns[k].mn[2:]))
    tail = insns[e:]
    live_in = live_after([Ins("nop", [])] + tail)[0]
    if (written - {reg}) & live_in or _FLAGS in live_in:
        raise Unsupported("the chain's code is read after it")
    mn, direct = _SETS[(true[1], false[1])]
    forms = []
    for order in permutations(tests):
        out = head + code + [order[0][0]]
        for (cmp, cond), (_, prev) in zip(order[1:], order):
            out.append(Ins("c" + cmp.mn, [cmp.ops[0], cmp.ops[1], f"#{_SATISFY[cond]}", _INVERSE[prev]]))
        last = order[-1][1]
        forms.append(out + [Ins(mn, [f"{width}{reg}", last if direct else _INVERSE[last]])] + tail)
    return forms




def _target(insns: list[Ins], k: int) -> int:
    return int(insns[k].ops[0][1:], 0) // 4


def diamonds(insns: list[Ins], n_regs: int = N_REGS) -> list[Ins]:
    """Straight-line code for nested diamonds and triangles of forward branches (see the module
    docstring): each side computed into fresh registers, then ``csel r, taken, fallen, c`` for
    every register either side writes."""
    referenced = {r for i in insns for r in i.reads() | i.writes() if isinstance(r, int)}
    spare = [r for r in range(n_regs) if r not in referenced]

    def side(code: list[Ins]) -> tuple[list[Ins], dict]:
        names: dict = {}
        out = []
        for ins in code:
            if ins.is_store():
                raise Unsupported("a store on one side of a branch")
            ins = _substitute(ins, names)
            d = ins.dst()
            if d is not None:
                if not spare:
                    raise Unsupported("no free register")
                names[d] = spare.pop(0)
                ins = Ins(ins.mn, [_named(ins.ops[0], names[d])] + ins.ops[1:])
            out.append(ins)
        return out, names

    def region(lo: int, hi: int, exits: frozenset) -> list[Ins]:
        """Code for ``insns[lo:hi]``, all of whose paths leave at ``hi`` or by a jump to ``exits``."""
        out: list[Ins] = []
        k = lo
        while k < hi:
            ins = insns[k]
            if ins.mn == "b":
                if k != hi - 1 or _target(insns, k) not in exits | {hi}:
                    raise Unsupported("a jump that is not a diamond's")
                break
            if not ins.mn.startswith("b."):
                out.append(ins)
                k += 1
                continue
            t = _target(insns, k)
            if not k < t <= hi:
                raise Unsupported("a branch out of its region")
            inner = exits | {hi}
            if t - 1 > k and insns[t - 1].mn == "b":
                e = _target(insns, t - 1)
                join = hi if e in inner else e
                if not t < join <= hi:
                    raise Unsupported("a diamond that does not join")
                fallen, taken = region(k + 1, t - 1, inner | {join}), region(t, join, inner)
            else:
                join, fallen, taken = t, region(k + 1, t, inner | {t}), []
            setter = next((i for i in range(len(out) - 1, -1, -1) if _FLAGS in out[i].writes()), None)
            if setter is None or any(set(out[setter].reads()) & out[i].writes() for i in range(setter + 1, len(out))):
                raise Unsupported("the branch's flags are not set in its region")
            fallen, fnames = side(fallen)
            taken, tnames = side(taken)
            if any(_FLAGS in i.writes() and i.text() != out[setter].text() for i in fallen + taken):
                raise Unsupported("a side writes other flags")
            out += fallen + taken
            for r in sorted(set(fnames) | set(tnames)):
                out.append(Ins("csel", [f"x{r}", f"x{tnames.get(r, r)}", f"x{fnames.get(r, r)}", ins.mn[2:]]))
            k = join
        return out

    if not any(i.mn.startswith("b") for i in insns):
        raise Unsupported("no branch")
    return region(0, len(insns), frozenset())


def selects(insns: list[Ins]) -> list[Ins]:
    """``csel`` of constants 0, 1, -1 or of a value and its negation as ``cset``, ``csetm``,
    ``csinc``, ``csinv``, ``cneg`` (or ``xzr`` for a 0): what the producers of the constants
    and negations then are is for :func:`evolve.rewrite.dead_code` to drop."""
    known: dict = {}                   # register -> ("const", value) or ("neg", register)
    out = []
    for ins in insns:
        if ins.mn == "csel" and len(ins.ops) == 4 and all(o[0] == "x" for o in ins.ops[:3]):
            ins = _select(ins, known)
        for r in ins.writes():
            known.pop(r, None)
            for q in [q for q, v in known.items() if v == ("neg", r)]:
                del known[q]
        c = _constant(ins)
        if c is not None and (ins.ops[0][0] == "x" or c[1] >= 0):
            known[c[0]] = ("const", c[1])
        elif ins.mn == "neg" and len(ins.ops) == 2 and ins.ops[0][0] == "x" and reg_number(ins.ops[1]) is not None:
            if reg_number(ins.ops[1]) != ins.dst():
                known[ins.dst()] = ("neg", reg_number(ins.ops[1]))
        out.append(ins)
    return out


def _select(ins: Ins, known: dict) -> Ins:
    d, a, b, c = ins.ops
    ka, kb = known.get(reg_number(a)), known.get(reg_number(b))
    inv = _INVERSE.get(c)
    if inv is None:
        return ins
    va = ka[1] if ka and ka[0] == "const" else None
    vb = kb[1] if kb and kb[0] == "const" else None
    if (va, vb) in _SETS:
        mn, flip = _SETS[(va, vb)]         # (value if c, value if not c)
        return Ins(mn, [d, inv if flip else c])
    if va == 1:
        return Ins("csinc", [d, b, "xzr", inv])
    if vb == 1:
        return Ins("csinc", [d, a, "xzr", c])
    if va == -1:
        return Ins("csinv", [d, b, "xzr", inv])
    if vb == -1:
        return Ins("csinv", [d, a, "xzr", c])
    if ka == ("neg", reg_number(b)):
        return Ins("cneg", [d, b, c])
    if kb == ("neg", reg_number(a)):
        return Ins("cneg", [d, a, inv])
    if va == 0 or vb == 0:
        return Ins("csel", [d, "xzr" if va == 0 else a, "xzr" if vb == 0 else b, c])
    return ins


def if_convert(insns: list[Ins], n_regs: int = N_REGS) -> list[list[Ins]]:
    """The straight-line forms of ``insns`` (forward branches, ``b.cond`` and ``b`` only) that
    :func:`chains` and :func:`diamonds` give; Unsupported when neither applies."""
    forms = []
    for make in (lambda: chains(insns, n_regs), lambda: [diamonds(insns, n_regs)]):
        try:
            forms += make()
        except Unsupported:
            pass
    if not forms:
        raise Unsupported("branches neither a comparison chain nor diamonds")
    return forms
