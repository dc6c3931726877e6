"""Check what "solved" means end to end: proofs after testing, refusals, CEGIS, fallbacks."""
from __future__ import annotations

from core.asm import assemble
from evolve import tasks as T
from evolve import verify
from evolve.alphabets.arm64 import CONDITIONS, OPS
from evolve.config import RunConfig
from evolve.engine import build
from evolve.toolbox import new_individual
from test_proofs import READS_X3

RARE = 0xE5FFFFFFFFFFFF80     # the one input on which WRONG_ON_RARE is wrong


def _gene(name: str, kind: str, d=0, n=0, m=0, imm=0) -> tuple:
    op = next(i for i, o in enumerate(OPS) if o.name == name and o.kind == kind and o.width == 64)
    return (op, d, n, m, imm)


def _movw(name: str, d: int, value: int, hw: int) -> tuple:
    return _gene(name, "movw", d=d, imm=(hw << 16) | value)


GCC_P01 = [_gene("sub", "r2i12", 1, 0, imm=1), _gene("and", "r3", 0, 0, 1)]
# x & (x - 1) except at RARE: testing cannot find it, the equivalence proof does
WRONG_ON_RARE = [_movw("movz", 2, 0xFF80, 0), _movw("movk", 2, 0xFFFF, 1), _movw("movk", 2, 0xFFFF, 2),
                 _movw("movk", 2, 0xE5FF, 3), *GCC_P01[:1], _gene("and", "r3", 1, 0, 1),
                 _gene("cmp", "cmp", n=0, m=2), _gene("csel", "csel", 0, 0, 1, CONDITIONS.index("eq"))]


def test_known_solution_is_proven():
    """Check that gcc's x & (x - 1) is proven equivalent and independent."""
    v = verify.check(assemble(["sub x1, x0, #1", "and x0, x0, x1"]), T.get_task("clear_lowest"), "arm64", 100)
    assert isinstance(v, verify.Verification)
    assert (v.equivalence, v.independence, v.cases, v.note) == ("proven", "proven", 100, "")
    assert "z3" in v.solver and "proven" in v.line()


def test_register_dependent_claim_is_refuted():
    """Check that the claim that reads x3 is refused, with the arguments that show it."""
    v = verify.check(assemble(READS_X3), T.get_task("isolate_lowest_zero"), "arm64", 100, timeout=120, effort=10)
    assert isinstance(v, verify.Refutation) and "independence" in v.reason and len(v.args) == 1


def test_outside_the_subset_falls_back_to_testing():
    """Check that a loop is not proven and the claim stands as tested, saying why."""
    loop = assemble(["mov x1, #3", "sub x1, x1, #1", "cbnz x1, #-4", "sub x2, x0, #1", "and x0, x0, x2"])
    v = verify.check(loop, T.get_task("clear_lowest"), "arm64", 100)
    assert (v.equivalence, v.independence) == ("tested", "tested") and "backward" in v.note


def test_no_symbolic_form_proves_independence_only(tmp_path):
    """Check that a task without a twin gets independence proven and equivalence tested."""
    f = tmp_path / "plain.py"
    f.write_text("def f(x):\n    return x & (x - 1)\n")
    v = verify.check(assemble(["sub x1, x0, #1", "and x0, x0, x1"]), T.get_task(f"{f}:f"), "arm64", 100)
    assert (v.equivalence, v.independence) == ("tested", "proven") and "no symbolic form" in v.note


def test_solver_timeout_falls_back_to_testing(tmp_path):
    """Check that a proof that times out leaves the claim as tested, with the solver's reason."""
    f = tmp_path / "hi.py"
    f.write_text("import z3\n"
                 "def f(x, y):\n    return (x * y) >> 64\n"
                 "def f_symbolic(x, y):\n"
                 "    lo = z3.BitVecVal(0xFFFFFFFF, 64)\n"
                 "    a0, a1, b0, b1 = x & lo, z3.LShR(x, 32), y & lo, z3.LShR(y, 32)\n"
                 "    mid = z3.LShR(a0 * b0, 32) + (a0 * b1 & lo) + (a1 * b0 & lo)\n"
                 "    return a1 * b1 + z3.LShR(a0 * b1, 32) + z3.LShR(a1 * b0, 32) + z3.LShR(mid, 32)\n")
    v = verify.check(assemble(["umulh x0, x0, x1"]), T.get_task(f"{f}:f"), "arm64", 100, timeout=0.05)
    assert v.equivalence == "tested" and "equivalence not proven" in v.note and "solver" in v.note
    assert v.independence == "proven"


def test_x86_is_tested():
    """Check that x86-64 code (no symbolic semantics) is reported as tested."""
    v = verify.check(b"\x48\x89\xf8", T.get_task("clear_lowest"), "x86_64", 100)
    assert (v.equivalence, v.independence) == ("tested", "tested") and "x86_64" in v.note


def test_engine_refuses_a_wrong_claim_and_learns_the_counterexample():
    """Check CEGIS in the engine: a claim that passes every held-out case but is wrong on one
    input is refused by the proof, the input joins the training set, and the right program is
    then solved with its proofs recorded."""
    engine = build(RunConfig(task="clear_lowest", pop=10, n_valid=3000, time_limit=None))
    engine.start()
    n_train = len(engine.train_y)
    wrong = new_individual(WRONG_ON_RARE, uid=10**6)
    wrong.exact = n_train
    wrong.fitness.values = (0.1,)
    assert engine._validate([wrong]) is True
    assert engine.solved is None and engine.refuted == 1
    assert RARE in engine.train_x[:, 0].tolist()
    at = engine.train_x[:, 0].tolist().index(RARE)
    assert int(engine.train_y[at]) == RARE & (RARE - 1)
    right = new_individual(GCC_P01, uid=10**6 + 1)
    right.exact = len(engine.train_y)
    right.fitness.values = (0.1,)
    engine._validate([right])
    assert engine.solved is right
    assert (engine.verification.equivalence, engine.verification.independence) == ("proven", "proven")
    state = engine.state()
    assert state["verification"]["equivalence"] == "proven" and state["refuted"] == 1


def test_validation_gives_chunks_their_own_state():
    """Check that held-out cases run in chunks of 64 under distinct register seeds."""
    from evolve import engine as E
    assert E.VALIDATION_CHUNK == 64
    engine = build(RunConfig(task="clear_lowest", pop=10, n_valid=1000, time_limit=None))
    engine.start()
    seeds = []
    real = engine.evaluator.run

    def spy(codes, inputs, seed):
        seeds.append((seed, len(inputs)))
        return real(codes, inputs, seed=seed)

    engine.evaluator.run = spy
    right = new_individual(GCC_P01, uid=10**6)
    right.exact = len(engine.train_y)
    right.fitness.values = (0.1,)
    engine._validate([right])
    n = len(engine.valid_y)
    assert sum(k for _, k in seeds) == n and max(k for _, k in seeds) <= 64
    assert len({s for s, _ in seeds}) == len(seeds) == -(-n // 64)


def test_gcc_popcount_idiom_is_proven():
    """Check that gcc -O2's NEON popcount (fmov, cnt, addv, fmov) passes the whole verification:
    equivalence to a bit-sum twin and independence, both proven."""
    import z3

    def twin(x):
        return sum((z3.ZeroExt(63, z3.Extract(b, b, x)) for b in range(64)), z3.BitVecVal(0, 64))
    task = T.validate_task(T.Task("popcount", 1, lambda x: bin(x).count("1"), "1 bits of x", twin))
    code = assemble(["fmov d0, x0", "cnt v0.8b, v0.8b", "addv b0, v0.8b", "fmov x0, d0"])
    v = verify.check(code, task, "arm64", 100)
    assert isinstance(v, verify.Verification) and (v.equivalence, v.independence) == ("proven", "proven"), v


def test_gccs_neon_idioms_solve_the_bit_count_tasks():
    """Check that gcc -O2's code for the built-in popcount, popcount32 and parity is proven."""
    idiom = ["cnt v0.8b, v0.8b", "addv b0, v0.8b"]
    for task, code in (("popcount", ["fmov d0, x0", *idiom, "fmov x0, d0"]),
                       ("popcount32", ["fmov s0, w0", *idiom, "fmov w0, s0"]),
                       ("parity", ["fmov d0, x0", *idiom, "fmov w0, s0", "and w0, w0, #1"])):
        v = verify.check(assemble(code), T.get_task(task), "arm64", 100, timeout=120, effort=10)
        assert isinstance(v, verify.Verification) and (v.equivalence, v.independence) == ("proven", "proven"), task
    wrong = verify.check(assemble(["fmov s0, w0", *idiom, "fmov w0, s0"]), T.get_task("popcount"), "arm64", 100,
                         timeout=120, effort=10)
    assert isinstance(wrong, verify.Refutation) and "equivalence" in wrong.reason   # 32 bits are not 64
