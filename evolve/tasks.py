"""Tasks: the functions evolution searches code for, and the test cases that judge it.

A task is a Python function of 1-4 unsigned 64-bit ints returning an int (taken mod 2**64).
Built-in tasks are bit-manipulation classics (many from Hacker's Delight, the benchmark STOKE
used) and small arithmetic; user tasks come from ``path/file.py:func`` and are validated at
registration, as gplearn's ``make_function`` does: probed on edge inputs, with a precise message
for a wrong arity, an exception or a non-int result.
"""
from __future__ import annotations

import importlib.util
import inspect
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from evolve import specs as S

MASK = (1 << 64) - 1
EDGE_VALUES = (0, 1, 2, 3, MASK, MASK - 1, 1 << 63, (1 << 63) - 1, (1 << 63) + 1, 0x5555555555555555,
               0xAAAAAAAAAAAAAAAA, 1 << 32, (1 << 32) - 1, 0xFF, 0x100, 7, 64)


class TaskError(ValueError):
    """A task that cannot be used; the message says why, in one line."""


def _s(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@dataclass(frozen=True)
class Task:
    name: str
    arity: int
    func: Callable[..., int]
    description: str = ""
    symbolic: Callable | None = None   #: the same function on z3 bit-vectors (evolve.specs), for proofs
    #: the bits of x0 the task defines (a C function returning uint32_t: w0, 0xFFFFFFFF); outputs
    #: are compared, and proofs made, under it
    result_mask: int = MASK

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        """uint64 [n_cases]: the task on each row of ``inputs`` (uint64 [n_cases, arity])."""
        rows = inputs.tolist()
        mask = self.result_mask
        return np.fromiter((self.func(*r) & mask for r in rows), dtype=np.uint64, count=len(rows))


# Tasks made of +, -, *, &, |, ^ and ~ mean the same on Python ints (taken mod 2**64) and on
# 64-bit z3 terms: one function is both the reference and its symbolic twin.
def _clear_lowest(x): return x & (x - 1)
def _isolate_lowest(x): return x & -x
def _lowest_mask(x): return x ^ (x - 1)
def _propagate_lowest(x): return x | (x - 1)
def _set_lowest_zero(x): return x | (x + 1)
def _isolate_lowest_zero(x): return ~x & (x + 1)
def _clear_lowest_run(x): return ((x | (x - 1)) + 1) & x
def _times7(x): return 7 * x
def _poly(x, y): return 3 * x + y + 5


BUILTIN: dict[str, Task] = {t.name: t for t in (
    Task("add", 2, lambda x, y: x + y, "x + y", lambda x, y: x + y),
    Task("sub", 2, lambda x, y: x - y, "x - y", lambda x, y: x - y),
    Task("avg", 2, lambda x, y: (x + y) >> 1, "floor((x + y) / 2) without overflow (Hacker's Delight p14)", S.avg),
    Task("max", 2, lambda x, y: max(x, y), "unsigned maximum", S.umax),
    Task("min", 2, lambda x, y: min(x, y), "unsigned minimum", S.umin),
    Task("smax", 2, lambda x, y: x if _s(x) > _s(y) else y, "signed maximum", S.smax),
    Task("abs", 1, lambda x: abs(_s(x)), "absolute value of a signed int (p09)", S.abs_),
    Task("clear_lowest", 1, _clear_lowest, "turn off the rightmost 1 bit (p01)", _clear_lowest),
    Task("isolate_lowest", 1, _isolate_lowest, "isolate the rightmost 1 bit (p03)", _isolate_lowest),
    Task("lowest_mask", 1, _lowest_mask, "mask of the rightmost 1 and trailing 0s (p04)", _lowest_mask),
    Task("propagate_lowest", 1, _propagate_lowest, "right-propagate the rightmost 1 (p05)", _propagate_lowest),
    Task("set_lowest_zero", 1, _set_lowest_zero, "turn on the rightmost 0 bit (p06)", _set_lowest_zero),
    Task("isolate_lowest_zero", 1, _isolate_lowest_zero, "isolate the rightmost 0 bit (p07)", _isolate_lowest_zero),
    Task("clear_lowest_run", 1, _clear_lowest_run, "turn off the rightmost contiguous run of 1s (p17)",
         _clear_lowest_run),
    Task("times7", 1, _times7, "7 * x", _times7),
    Task("poly", 2, _poly, "3x + y + 5", _poly),
    Task("mulhi", 2, lambda x, y: (x * y) >> 64, "high 64 bits of the 128-bit product", S.mulhi),
    Task("sign", 1, lambda x: (1 if _s(x) > 0 else -1 if _s(x) < 0 else 0), "sign of a signed int (p13)", S.sign),
    Task("popcount8", 1, lambda x: bin(x & 0xFF).count("1"), "number of 1 bits in the low byte", S.popcount8),
    Task("popcount", 1, lambda x: bin(x).count("1"), "number of 1 bits (gcc -O2: fmov, cnt, addv, fmov)", S.popcount),
    Task("popcount32", 1, lambda x: bin(x & 0xFFFFFFFF).count("1"), "number of 1 bits in the low 32 bits",
         S.popcount32),
    Task("parity", 1, lambda x: bin(x).count("1") & 1, "parity of the 1 bits", S.parity),
)}
DEFAULT_TASK = "clear_lowest"


def _load_user_task(spec: str) -> Task:
    path_text, _, func_name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not func_name:
        raise TaskError(f"--task {spec!r}: expected a built-in name ({', '.join(sorted(BUILTIN))}) "
                        f"or path/file.py:function")
    if not path.is_file():
        raise TaskError(f"task file {path_text!r} does not exist or is not a file")
    try:
        module_spec = importlib.util.spec_from_file_location(f"melvin_task_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: report any failure in one line
        raise TaskError(f"task file {path_text!r} cannot be loaded: {type(exc).__name__}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TaskError(f"task file {path_text!r} has no function {func_name!r}")
    try:
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in params if p.default is p.empty]
    except (TypeError, ValueError):
        raise TaskError(f"cannot read the signature of {func_name!r}") from None
    arity = len(required)
    if not 1 <= arity <= 4:
        raise TaskError(f"task function {func_name!r} takes {arity} required arguments; expected 1 to 4")
    doc = (inspect.getdoc(func) or "").splitlines()
    twin = getattr(func, "symbolic", None) or getattr(module, f"{func_name}_symbolic", None)
    if twin is not None and not callable(twin):
        raise TaskError(f"the symbolic form of {func_name!r} is not a function")
    return Task(f"{path.stem}.{func_name}", arity, func, doc[0] if doc else f"user task {spec}", twin)


def validate_task(task: Task) -> Task:
    """Probe ``task`` on every combination of a few edge values; raise TaskError on misuse."""
    probe = (0, 1, MASK, 1 << 63, (1 << 63) - 1, 12345)
    for args in itertools.islice(itertools.product(probe, repeat=task.arity), 300):
        try:
            value = task.func(*args)
        except Exception as exc:
            raise TaskError(f"task {task.name!r} raised {type(exc).__name__}: {exc} on inputs {args}") from None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TaskError(f"task {task.name!r} returned {type(value).__name__} on inputs {args}; "
                            f"expected an int")
    if task.symbolic is not None:
        _check_symbolic(task)
    return task


def _check_symbolic(task: Task) -> None:
    """Build the symbolic twin on variables (no Python branching on them) and probe it against
    the function on edge and random inputs; TaskError naming the first input where they differ
    (a twin that is wrong would prove wrong programs)."""
    try:
        xs, twin_term = S.term(task.symbolic, task.arity)
    except Exception as exc:
        raise TaskError(f"the symbolic form of {task.name!r} failed on variables: "
                        f"{type(exc).__name__}: {exc}") from None
    probes = list(itertools.islice(itertools.product(EDGE_VALUES, repeat=task.arity), 300))
    probes += [tuple(r) for r in random_cases(np.random.default_rng(0), 100, task.arity).tolist()]
    for args in probes:
        try:
            twin = S.evaluate(xs, twin_term, args)
        except Exception as exc:
            raise TaskError(f"the symbolic form of {task.name!r} failed on inputs {args}: "
                            f"{type(exc).__name__}: {exc}") from None
        expected = task.func(*args) & MASK
        if twin != expected:
            shown = ", ".join(hex(a) for a in args)
            raise TaskError(f"the symbolic form of {task.name!r} disagrees with it on inputs ({shown}): "
                            f"{twin:#x} instead of {expected:#x}")


def get_task(spec: str) -> Task:
    """A built-in task by name, or a user task ``path/file.py:func`` (validated); C functions
    (``path/file.c:func``) are :func:`evolve.taskspec.get_task`'s."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if ":" not in spec and not spec.endswith(".py"):
        raise TaskError(f"unknown task {spec!r}: choose a built-in ({', '.join(sorted(BUILTIN))}) "
                        f"or give path/file.py:function or path/file.c:function")
    return validate_task(_load_user_task(spec))


def edge_cases(arity: int, limit: int = 48) -> np.ndarray:
    """uint64 [n, arity]: combinations of edge values (all pairs of a core set, then the rest)."""
    core = EDGE_VALUES[:6] if arity > 1 else EDGE_VALUES
    rows = list(itertools.islice(itertools.product(core, repeat=arity), limit))
    return np.array(rows, dtype=np.uint64).reshape(-1, arity)


def random_cases(rng: np.random.Generator, n: int, arity: int) -> np.ndarray:
    """uint64 [n, arity]: random inputs, a quarter of them small (bit tricks hide in small ints)."""
    cases = rng.integers(0, 2**64, size=(n, arity), dtype=np.uint64, endpoint=False)
    small = rng.random(n) < 0.25
    cases[small] = rng.integers(0, 1024, size=(int(small.sum()), arity), dtype=np.uint64)
    return cases


def training_cases(task: Task, rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """Edge values plus random inputs: ``n`` rows (at least the edge cases)."""
    edges = edge_cases(task.arity, limit=n // 2)
    return fit_arguments(task, np.concatenate([edges, random_cases(rng, max(0, n - len(edges)), task.arity)]), rng)


def _patterns() -> tuple[int, ...]:
    """Values whose bit classes uniform inputs almost never hit: powers of two and their
    neighbours, all-ones, sign boundaries, alternating and byte patterns."""
    out = {0, MASK, 1 << 63, (1 << 63) - 1, (1 << 63) + 1, MASK - 1}
    for k in range(64):
        out |= {1 << k, ((1 << k) - 1) & MASK, ((1 << k) + 1) & MASK, MASK ^ (1 << k)}
    for unit in (0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF,
                 0x0000FFFF0000FFFF, 0x00000000FFFFFFFF, 0x0101010101010101, 0x7F7F7F7F7F7F7F7F):
        out |= {unit, MASK ^ unit}
    return tuple(sorted(out))


PATTERNS = _patterns()


def _with_length(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """uint64: random values of exactly ``lengths`` significant bits (0 gives 0)."""
    raw = rng.integers(0, 2**64, size=lengths.shape, dtype=np.uint64, endpoint=False)
    L = lengths.astype(np.uint64)
    top = np.where(L > 0, np.uint64(1) << np.maximum(L, 1).astype(np.uint64) - np.uint64(1), np.uint64(0))
    low = np.where(L > 0, raw >> (np.uint64(64) - np.maximum(L, 1)), np.uint64(0))
    return low | top


def stratified_cases(rng: np.random.Generator, n: int, arity: int) -> np.ndarray:
    """uint64 [n, arity]: each column drawn from one of four strata per case: a bit length
    (uniform 0..64), a bit density (each bit set with a probability uniform in [0, 1]), a
    pattern value (:data:`PATTERNS`), or uniform. Functions of nlz, ntz or popcount see every class."""
    out = np.empty((n, arity), dtype=np.uint64)
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    for col in range(arity):
        stratum = rng.integers(0, 4, n)
        length = _with_length(rng, rng.integers(0, 65, n))
        bits = rng.random((n, 64)) < rng.random((n, 1))
        density = (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
        pattern = np.array(PATTERNS, dtype=np.uint64)[rng.integers(0, len(PATTERNS), n)]
        uniform = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
        out[:, col] = np.choose(stratum, [length, density, pattern, uniform])
    return out


def length_grid(rng: np.random.Generator, arity: int, per_cell: int = 1) -> np.ndarray:
    """uint64: a case for every bit length of the first argument (1 input), or every pair of
    bit lengths of the first two (more): where nlz(x) <= nlz(y) goes wrong, a case is."""
    lengths = np.arange(65)
    grid = np.array(list(itertools.product(lengths, repeat=min(arity, 2))) * per_cell).reshape(-1, min(arity, 2))
    cols = [_with_length(rng, grid[:, k]) for k in range(grid.shape[1])]
    if arity > 2:
        rest = stratified_cases(rng, len(grid), arity - 2)
        cols += [rest[:, k] for k in range(arity - 2)]
    return np.stack(cols, axis=1).astype(np.uint64)


def validation_cases(task: Task, rng: np.random.Generator, n: int = 10_000) -> np.ndarray:
    """Held-out set: ``n`` inputs, half uniform (a quarter of those small) and half stratified
    (:func:`stratified_cases`), then the bit-length grid (:func:`length_grid`) and every
    combination of the edge values."""
    edges = np.array(list(itertools.product(EDGE_VALUES, repeat=min(task.arity, 2))), dtype=np.uint64)
    if task.arity > 2:
        extra = random_cases(rng, len(edges), task.arity - 2)
        edges = np.concatenate([edges, extra], axis=1)
    per_cell = 4 if task.arity == 1 else 1
    cases = np.concatenate([random_cases(rng, n - n // 2, task.arity), stratified_cases(rng, n // 2, task.arity),
                            length_grid(rng, task.arity, per_cell), edges])
    return fit_arguments(task, cases, rng)


def fit_arguments(task: Task, cases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``cases`` for a task whose arguments are narrower than 64 bits (``task.arg_types``:
    ``(bits, signed)`` per argument, as a C prototype gives them; other tasks: unchanged, no
    random draws). The low ``bits`` of a column are its value: the 64-bit case's own low bits,
    its top bits (where the bit-length strata are) or a ``bits``-wide edge value, a third each.
    Above them AAPCS64 leaves the register unspecified for the callee, so a quarter of the rows
    hold zeros there, a quarter the sign extension and half random garbage: code that relies
    on more than the type gives fails somewhere."""
    types = getattr(task, "arg_types", None)
    if not types or all(bits >= 64 for bits, _ in types):
        return cases
    out = cases.copy()
    n = len(cases)
    for col, (bits, _signed) in enumerate(types):
        if bits >= 64:
            continue
        low_mask = np.uint64((1 << bits) - 1)
        top = np.uint64(1 << (bits - 1))
        edges = np.array(sorted({0, 1, 2, 3, (1 << bits) - 1, (1 << bits) - 2, 1 << (bits - 1),
                                 (1 << (bits - 1)) - 1, (1 << (bits - 1)) + 1, *(1 << k for k in range(bits))}),
                         dtype=np.uint64)
        pick = rng.integers(0, 3, n)
        low = np.choose(pick, [cases[:, col] & low_mask, cases[:, col] >> np.uint64(64 - bits),
                               edges[rng.integers(0, len(edges), n)]])
        sign = np.where(low & top, ~low_mask, np.uint64(0))
        garbage = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False) & ~low_mask
        upper = np.choose(rng.integers(0, 4, n), [np.zeros(n, np.uint64), sign, garbage, garbage])
        out[:, col] = low | upper
    return out
