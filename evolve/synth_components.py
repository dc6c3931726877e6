"""Component-based synthesis with location variables (Gulwani, Jha, Tiwari, Venkatesan, "Synthesis
of loop-free programs", PLDI 2011): a second encoding for :mod:`evolve.synth`.

Why: :class:`evolve.synth.Encoding` lets every line be any of 21 forms, so a six-line call
weighs 21**6 operation choices beside the wiring. Given a multiset of forms, each used exactly
once, only the wiring and the immediates are unknown: every component ``c`` has an output
location ``lo[c]`` (the line it becomes) and a location per input (an argument or an earlier
line), with well-formedness (outputs distinct, inputs before outputs) and, per example,
connectivity (equal locations carry equal values). Measured with the exact multiset
(``scripts/exp_components.py``), this reaches p19 at 4 bits in seconds and p20 in tens of seconds,
where the per-line encoding reached neither; the multiset itself must come from somewhere honest
(:mod:`evolve.synth_sketch`).

A component is a form of :data:`evolve.synth_ops.FORMS` with its own shift type and amount (the
shifted-register operand, the immediate); its decoded program is the same lines ``(name, a, b, t,
s)`` :mod:`evolve.synth_ops` runs and turns into genes, so candidates are checked and lifted by
:class:`evolve.synth.Synth` exactly as the per-line encoding's are.
"""
from __future__ import annotations

try:
    import z3
except ImportError:      # a run without z3 stops at its start (evolve.verify.require_solver)
    z3 = None

from evolve import synth as SY
from evolve import synth_ops as SO


#: a component name's suffix for a form's shifted-register operand (``orr~``: ``orr a, b, lsr #s``);
#: without it such a form takes plain registers (a shift per component multiplies the search)
SHIFTED = "~"


def form(component: str) -> str:
    """The :data:`evolve.synth_ops.FORMS` name of a component."""
    return component[:-1] if component.endswith(SHIFTED) else component


def valid(component: str) -> bool:
    """Whether ``component`` names a form (with ``~``: one that takes a shifted operand)."""
    name = form(component)
    return name in SO.FORMS and (name == component or bool(SO.FORMS[name][2]))


def _inputs(name: str) -> tuple[int, ...]:
    """The operand slots (0: ``a``, 1: ``b``) form ``name`` reads."""
    ra, rb = SO.FORMS[form(name)][:2]
    return tuple(k for k, used in ((0, ra), (1, rb)) if used)


def _order(component: str) -> tuple:
    return SO.NAMES.index(form(component)), component


class Components:
    """The z3 variables, well-formedness and per-example connectivity of ``multiset`` (form names,
    each used once) over ``arity`` arguments at width ``w``."""

    def __init__(self, arity: int, multiset, w: int = 64, ctx: z3.Context | None = None):
        self.arity, self.w = arity, w
        # equal forms side by side, so the symmetry constraint below orders each run of them
        self.multiset = tuple(sorted(multiset, key=_order))
        self.n = n = len(self.multiset)
        self.ctx = ctx = ctx or z3.main_ctx()
        size = arity + n
        ob = max(1, size.bit_length())
        self.lo = [z3.BitVec(f"lo{c}", ob, ctx) for c in range(n)]
        self.li = [[z3.BitVec(f"li{c}_{k}", ob, ctx) for k in _inputs(name)] for c, name in enumerate(self.multiset)]
        self.t = [z3.BitVec(f"t{c}", 2, ctx) for c in range(n)]
        self.s = [z3.BitVec(f"s{c}", 6, ctx) for c in range(n)]
        self.examples = 0
        c = self.constraints = []
        for i, component in enumerate(self.multiset):
            name = form(component)
            _ra, _rb, rt, rs = SO.FORMS[name]
            if rt and component == name:     # a plain register operand
                rt = rs = 0
            c += [z3.UGE(self.lo[i], arity), z3.ULT(self.lo[i], size)]
            c += [z3.ULT(v, self.lo[i]) for v in self.li[i]]
            c.append(z3.ULE(self.t[i], 2) if rt else self.t[i] == 0)
            if not rs:
                c.append(self.s[i] == 0)
            elif w < 64:                     # amounts past the width shift everything out
                c.append(z3.ULE(self.s[i], w))
            if rt:                           # a shifted operand is shifted
                c.append(self.s[i] != 0)
            elif name in SO.COMMUTATIVE:
                c.append(z3.ULE(self.li[i][0], self.li[i][1]))
            if name in ("lsli", "lsri", "asri", "addi", "subi"):
                c.append(self.s[i] != 0)
        if n > 1:
            c.append(z3.Distinct(*self.lo))
        for i in range(n - 1):               # equal components in the order of their lines
            if self.multiset[i] == self.multiset[i + 1]:
                c.append(z3.ULT(self.lo[i], self.lo[i + 1]))
        for i in range(n):                   # every value but the result is read (each used once)
            reads = [v == self.lo[i] for j in range(n) for v in self.li[j]]
            c.append(z3.Or(self.lo[i] == size - 1, *reads))

    def example(self, args, want: int, mask: int) -> list:
        """Constraints: the program maps ``args`` (ints) to ``want`` under ``mask``; fresh value
        variables, tied to the locations by connectivity."""
        ctx, w, e, n = self.ctx, self.w, self.examples, self.n
        self.examples += 1
        vo = [z3.BitVec(f"vo{e}_{i}", w, ctx) for i in range(n)]
        zero = z3.BitVecVal(0, w, ctx)
        out = []
        for i, component in enumerate(self.multiset):
            name = form(component)
            vi = [z3.BitVec(f"vi{e}_{i}_{k}", w, ctx) for k in range(len(self.li[i]))]
            slots = dict(zip(_inputs(name), vi))
            s = z3.ZeroExt(w - 6, self.s[i]) if w > 6 else z3.Extract(w - 1, 0, self.s[i])
            out.append(vo[i] == SO.term(name, slots.get(0, zero), slots.get(1, zero), self.t[i], s, w))
            for v, loc in zip(vi, self.li[i]):
                for a in range(self.arity):
                    out.append(z3.Implies(loc == a, v == z3.BitVecVal(int(args[a]), w, ctx)))
                for j in range(n):
                    if j != i:
                        out.append(z3.Implies(loc == self.lo[j], v == vo[j]))
            out.append(z3.Implies(self.lo[i] == self.arity + n - 1, vo[i] & mask == want & mask))
        return out

    @property
    def label(self) -> str:
        return "components " + ",".join(self.multiset)

    def variables(self) -> list:
        """The variables a program is made of (to block one)."""
        return self.lo + [v for ins in self.li for v in ins] + self.t + self.s

    def decode(self, model) -> list[tuple]:
        """The lines ``(name, a, b, t, s)`` of a model, in location order (operands index the
        arguments, then the lines, as in :func:`evolve.synth_ops.evaluate`)."""
        ev = lambda v: model.eval(v, model_completion=True).as_long()
        lines = []
        for i in sorted(range(self.n), key=lambda i: ev(self.lo[i])):
            name = self.multiset[i]
            ops = dict(zip(_inputs(name), (ev(v) for v in self.li[i])))
            lines.append((form(name), ops.get(0, 0), ops.get(1, 0), ev(self.t[i]), ev(self.s[i])))
        return lines


class MultisetSynth(SY.Synth):
    """:class:`evolve.synth.Synth` over a queue of multisets, each searched with
    :class:`Components` (CEGIS, :data:`evolve.synth.MAX_ROUNDS` calls at most); multisets are
    offered while it runs (:meth:`offer`) and the queue is part of its checkpointed state."""

    def __init__(self, *args, **kwargs):
        self.queue: list[tuple] = []
        self._seen: set = set()
        self._next = 0
        super().__init__(*args, **kwargs)

    def offer(self, multiset) -> bool:
        """Queue ``multiset`` (form names) unless it was queued before; True if queued."""
        key = tuple(sorted(multiset, key=_order))
        if not key or key in self._seen or not all(map(valid, key)):
            return False
        self._seen.add(key)
        self.queue.append(key)
        return True

    @property
    def pending(self) -> int:
        """Multisets queued and not yet started."""
        return len(self.queue) - self._next

    def _work(self):
        ctx = z3.Context()
        self._next = 0
        while True:
            if self._next >= len(self.queue):
                yield SY.IDLE
                continue
            multiset = self.queue[self._next]
            self._next += 1
            yield from self._cegis(Components(self.arity, multiset, self.width, ctx), ctx)
