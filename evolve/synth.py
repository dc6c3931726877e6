"""Component-based SMT synthesis of short straight-line programs (CEGIS), a search tier beside the
genetic search and the bank.

Why: the Hacker's Delight tasks STOKE could not synthesise (p19, p20, p24) have six- to
eight-instruction answers whose values are reused (a DAG), beyond the bank's levels and rarely
assembled by evolution; a solver finds them from a handful of cases, as Gulwani et al. ("Synthesis
of loop-free programs", PLDI 2011) and Souper do. Here each line ``i`` of a program is
``op_i(a_i, b_i)`` with ``op_i`` a choice among :data:`evolve.synth_ops.FORMS`, ``a_i``, ``b_i``
choices among the arguments and earlier lines, plus a shift type and a 6-bit amount (a per-line
encoding, simpler than the location variables of the paper, and the same search space).

The loop is inductive (CEGIS over examples): find a program exact on the examples, run it in
plain Python on many cases drawn from the task (:func:`evolve.tasks.training_cases`), add the
first case it misses, repeat; a program with no miss is a candidate, handed to the engine as genes
(:func:`program_genes`), which verifies it like any genome (held-out tests, z3 proofs): nothing
here is trusted. Line counts grow from one; each count first with the cheap forms, then with
all of them (multiplier, divider, leading zeros). Every solver call has a deterministic budget
(z3's ``rlimit``), so a seeded run, and its replay on ``--resume``, makes the same calls.

The work is a generator of units (:meth:`Synth.step` runs them within a budget of solver
resource units); the checkpointed position is the number of units done, and a resumed run
replays them (their candidates were handed over before the stop).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
try:
    import z3
except ImportError:      # a run without z3 stops at its start (evolve.verify.require_solver)
    z3 = None

from evolve import synth_ops as SO

log = logging.getLogger(__name__)

#: the longest program searched
MAX_LINES = 8
#: z3 resource units one solver call may spend (deterministic; ~1 CPU second here): a call out
#: of budget gives up that line count and library. A call cannot be cut, so it holds the generation
#: loop: at 40 M, p19's calls took 20 s of a 60 s run (37 generations against 139 without)
CALL_RLIMIT = 2_000_000
#: the cases a candidate is run on before it is handed over (the engine's tests decide)
CHECK_CASES = 512
#: examples the solver starts from
START_EXAMPLES = 3
#: at most this many CEGIS rounds per line count and library
MAX_ROUNDS = 40


#: a unit that is no work: the synthesiser waits for problems (a step ends there)
IDLE = (0, None)


@dataclass
class Stats:
    calls: int = 0
    rlimit: int = 0
    found: int = 0


def _library_schedule(max_lines: int):
    """(lines, library) in the order searched: each count cheap forms first, then all."""
    for n in range(1, max_lines + 1):
        yield n, SO.CHEAP
        yield n, SO.NAMES


class Encoding:
    """The z3 variables and well-formedness of ``n`` lines over ``arity`` arguments and ``library``."""

    def __init__(self, arity: int, n: int, library: tuple, w: int = 64, ctx: z3.Context | None = None):
        self.arity, self.n, self.library, self.w = arity, n, tuple(library), w
        self.ctx = ctx = ctx or z3.main_ctx()
        ob = max(1, (arity + n).bit_length())
        self.op = [z3.BitVec(f"op{i}", 5, ctx) for i in range(n)]
        self.a = [z3.BitVec(f"a{i}", ob, ctx) for i in range(n)]
        self.b = [z3.BitVec(f"b{i}", ob, ctx) for i in range(n)]
        self.t = [z3.BitVec(f"t{i}", 2, ctx) for i in range(n)]
        self.s = [z3.BitVec(f"s{i}", 6, ctx) for i in range(n)]
        self.constraints = []
        c = self.constraints
        k = len(self.library)
        for i in range(n):
            reach = arity + i
            c += [z3.ULT(self.op[i], k), z3.ULT(self.a[i], reach), z3.ULT(self.b[i], reach), z3.ULE(self.t[i], 2)]
            if w < 64:                       # amounts past the width shift everything out
                c.append(z3.ULE(self.s[i], w))
            for j, name in enumerate(self.library):
                ra, rb, rt, rs = SO.FORMS[name]
                is_j = self.op[i] == j
                # operands a form ignores are pinned to 0: one encoding per program
                for used, var in ((ra, self.a[i]), (rb, self.b[i]), (rt, self.t[i]), (rs, self.s[i])):
                    if not used:
                        c.append(z3.Implies(is_j, var == 0))
                if rt:
                    c.append(z3.Implies(z3.And(is_j, self.s[i] == 0), self.t[i] == 0))
                if name in SO.COMMUTATIVE:
                    c.append(z3.Implies(z3.And(is_j, self.s[i] == 0), z3.ULE(self.a[i], self.b[i])))
                if name in ("lsli", "lsri", "asri", "addi", "subi"):
                    c.append(z3.Implies(is_j, self.s[i] != 0))
            # every line but the last is read by a later one (no dead code)
            if i < n - 1:
                line = arity + i
                readers = []
                for j in range(i + 1, n):
                    readers += [self.a[j] == line, self.b[j] == line]
                c.append(z3.Or(readers) if len(readers) > 1 else readers[0])

    @property
    def label(self) -> str:
        return f"{self.n} lines of {len(self.library)} forms"

    def example(self, args, want: int, mask: int) -> list:
        """Constraints: the program maps ``args`` (ints) to ``want`` under ``mask``."""
        return [self.output(args) & mask == want & mask]

    def variables(self) -> list:
        """The variables a program is made of (to block one)."""
        return self.op + self.a + self.b + self.t + self.s

    def output(self, args: tuple):
        """z3: the last line's value on concrete arguments ``args`` (ints)."""
        w = self.w
        vals = [z3.BitVecVal(int(v), w, self.ctx) for v in args]
        for i in range(self.n):
            def pick(loc):
                out = vals[0]
                for k in range(1, len(vals)):
                    out = z3.If(loc == k, vals[k], out)
                return out
            a, b = pick(self.a[i]), pick(self.b[i])
            s = z3.ZeroExt(w - 6, self.s[i]) if w > 6 else z3.Extract(w - 1, 0, self.s[i])
            out = None
            for j in reversed(range(len(self.library))):
                v = SO.term(self.library[j], a, b, self.t[i], s, w)
                out = v if out is None else z3.If(self.op[i] == j, v, out)
            vals.append(out)
        return vals[-1]

    def decode(self, model) -> list[tuple]:
        """The lines ``(name, a, b, t, s)`` of a model."""
        ev = lambda v: model.eval(v, model_completion=True).as_long()
        return [(self.library[ev(self.op[i])], ev(self.a[i]), ev(self.b[i]), ev(self.t[i]), ev(self.s[i]))
                for i in range(self.n)]


class Synth:
    """CEGIS over a task's cases: ``x`` uint64 [cases, arity] and ``y`` uint64 [cases] (the
    reference on them, under ``output_mask``); every candidate is checked on all of them.

    ``reduced``: optionally ``(width, xs, ys)``, the task at a narrower width (int cases and
    results, from a symbolic twin evaluated there): the solver then works at that width, where it
    is many times faster, and each program it finds is lifted to 64 bits (every amount that may
    stand for the width, ``w - k``, tried as ``64 - k`` too) before the 64-bit check.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, output_mask: int = (1 << 64) - 1,
                 max_lines: int = MAX_LINES, call_rlimit: int = CALL_RLIMIT, seed: int = 0,
                 reduced: tuple | None = None):
        self.x = [tuple(int(v) for v in row) for row in np.asarray(x, np.uint64)]
        self.y = [int(v) for v in np.asarray(y, np.uint64)]
        self.arity = len(self.x[0])
        self.mask = output_mask
        self.width, self.xs, self.ys = reduced if reduced is not None else (64, self.x, self.y)
        self.max_lines, self.call_rlimit, self.seed = max_lines, call_rlimit, seed
        self.position = 0            #: units done (the checkpointed state)
        self.spent = 0               #: solver resource units spent
        self.exhausted = False
        self.stats = Stats()
        self.last_work = 0           #: resource units of the last step
        self._count = 0              #: resource units of this synthesiser's z3 context so far
        self._units = self._work()

    def step(self, budget: int) -> list[list[tuple]]:
        """Run units until ``budget`` resource units are spent (at least one unit); returns the
        candidate programs found (lines), shortest first."""
        found, spent = [], 0
        while spent < budget:
            unit = next(self._units, None)
            if unit is None:
                self.exhausted = True
                break
            if unit is IDLE:             # waiting for work (evolve.synth_components: multisets)
                break
            work, program = unit
            self.position += 1
            spent += work
            if program is not None:
                found.append(program)
        self.spent += spent
        self.last_work = spent
        return found

    def advance(self, position: int) -> None:
        """Replay the units up to ``position`` (a resumed run), dropping their candidates."""
        while self.position < position and (unit := next(self._units, None)) not in (None, IDLE):
            self.position += 1
            self.spent += unit[0]

    def miss(self, program, w: int | None = None) -> int | None:
        """The first case index ``program`` gets wrong at width ``w`` (None: the 64-bit cases; the
        result: None if it misses none)."""
        xs, ys = (self.x, self.y) if w is None else (self.xs, self.ys)
        w = w or 64
        mask = self.mask if w == 64 else (1 << w) - 1
        for k, (args, want) in enumerate(zip(xs, ys)):
            if SO.evaluate(program, args, w) & mask != want & mask:
                return k
        return None

    def lifted(self, program) -> list[tuple] | None:
        """The first 64-bit form of a reduced-width ``program`` exact on the 64-bit cases."""
        w = self.width
        if w == 64:
            return program if self.miss(program) is None else None
        at = [i for i, line in enumerate(program) if SO.FORMS[line[0]][3] and line[4] >= w // 2]
        for choice in range(1 << min(len(at), 6)):
            lines = list(program)
            for bit, i in enumerate(at[:6]):
                if choice >> bit & 1:
                    name, a, b, t, s = lines[i]
                    lines[i] = (name, a, b, t, s + 64 - w)
            if self.miss(lines) is None:
                return lines
        return None

    def _work(self):
        """Units ``(resource units spent, candidate program or None)``: one per solver call."""
        # a context of its own: z3 counts resource units per context, so a call's cost is the
        # growth of this count, whatever else the process proves meanwhile
        ctx = z3.Context()
        for n, library in _library_schedule(self.max_lines):
            yield from self._cegis(Encoding(self.arity, n, library, self.width, ctx), ctx)

    def _cegis(self, enc, ctx):
        """The units of one problem ``enc`` (an :class:`Encoding` or
        :class:`evolve.synth_components.Components`): CEGIS over the cases, at most
        :data:`MAX_ROUNDS` calls, until the solver finds no program (or runs out of budget)."""
        w = self.width
        m = (1 << w) - 1 if w < 64 else self.mask
        examples = list(range(min(START_EXAMPLES, len(self.xs))))
        outputs = [c for k in examples for c in enc.example(self.xs[k], self.ys[k], m)]
        blocked = []
        for _ in range(MAX_ROUNDS):
            # a fresh solver per call: z3 bit-blasts a non-incremental QF_BV problem
            solver = z3.SolverFor("QF_BV", ctx=ctx)
            solver.set("random_seed", self.seed)
            solver.set("rlimit", self.call_rlimit)
            solver.add(enc.constraints + outputs + blocked)
            result = solver.check()
            now = _rlimit(solver)
            work, self._count = max(1, now - self._count), now
            self.stats.calls += 1
            self.stats.rlimit += work
            log.debug("synth: %s, %d bits, %d examples: %s, %d units", enc.label, w, len(examples), result, work)
            if result != z3.sat:
                yield work, None
                return
            model = solver.model()
            program = enc.decode(model)
            k = self.miss(program, w)
            if k is None:
                full = self.lifted(program)
                blocked.append(z3.Or([v != model.eval(v, model_completion=True) for v in enc.variables()]))
                if full is not None:
                    self.stats.found += 1
                    yield work, full
                    continue
                if w == 64:              # exact on its examples, wrong on a case: learn it
                    k = self.miss(program)
                else:                    # exact at the reduced width, no 64-bit form: another
                    yield work, None
                    continue
            yield work, None
            examples.append(k)
            outputs += enc.example(self.xs[k], self.ys[k], m)


def _rlimit(solver) -> int:
    """The resource units spent so far in ``solver``'s context (z3 counts them per context)."""
    stats = solver.statistics()
    return int(stats.get_key_value("rlimit count")) if "rlimit count" in stats.keys() else 0


def program_genes(program, arity: int, n_regs: int) -> list[tuple] | None:
    """The genes of ``program`` (lines), result in x0, arguments in x0..x<arity-1>: each line in
    the lowest register free at that point (a value's register is freed after its last reader;
    x0 is written only by the last line unless the arguments are dead). None if the working
    registers do not suffice."""
    n = len(program)
    last = {}
    for i, (name, a, b, _t, _s) in enumerate(program):
        ra, rb = SO.FORMS[name][:2]
        for used, v in ((ra, a), (rb, b)):
            if used:
                last[v] = i
    reg = {v: v for v in range(arity)}
    busy = set(range(arity))
    out = []
    for i, (name, a, b, t, s) in enumerate(program):
        ra, rb = SO.FORMS[name][:2]
        srcs = (reg[a] if ra else 0, reg[b] if rb else 0)
        for used, v in ((ra, a), (rb, b)):
            if used and last.get(v) == i:
                busy.discard(reg[v])
        if i == n - 1:
            d = 0
        else:
            free = [r for r in range(n_regs) if r not in busy]
            if not free:
                return None
            d = free[0]
        out.append(SO.gene(name, d, srcs[0], srcs[1], t, s))
        reg[arity + i] = d
        busy.add(d)
    return out
