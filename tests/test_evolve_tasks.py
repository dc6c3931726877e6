"""Tests of evolve.tasks: built-in tasks, user task validation, case sets."""
from __future__ import annotations

import numpy as np
import pytest

from evolve.tasks import (BUILTIN, MASK, TaskError, edge_cases, get_task, length_grid, random_cases,
                          stratified_cases, training_cases, validate_task, validation_cases)


def test_builtin_tasks_are_total_on_edge_values():
    """Check that every built-in task gives a 64-bit value on every edge combination."""
    for task in BUILTIN.values():
        xs = edge_cases(task.arity)
        ys = task.expected(xs)
        assert ys.dtype == np.uint64 and ys.shape == (len(xs),)


def test_expected_is_taken_mod_2_64():
    """Check that results are reduced mod 2**64 (x - y wraps)."""
    task = get_task("sub")
    assert task.expected(np.array([[0, 1]], dtype=np.uint64)).tolist() == [MASK]


def test_user_task_loads(tmp_path):
    """Check that path/file.py:func gives a task with the function's arity and docstring."""
    f = tmp_path / "mytask.py"
    f.write_text('def f(x, y, z):\n    """x + y - z"""\n    return x + y - z\n')
    task = get_task(f"{f}:f")
    assert task.arity == 3 and task.description == "x + y - z"
    assert task.expected(np.array([[1, 2, 4]], dtype=np.uint64)).tolist() == [MASK]


@pytest.mark.parametrize("body,match", [
    ("def f():\n    return 1\n", "0 required arguments"),
    ("def f(a, b, c, d, e):\n    return 1\n", "5 required arguments"),
    ("def f(x):\n    return 1 // (x - 1)\n", "ZeroDivisionError"),
    ("def f(x):\n    return 1.5\n", "returned float"),
    ("def f(x):\n    return None\n", "returned NoneType"),
    ("def f(x):\n    return True\n", "returned bool"),
    ("def g(x):\n    return x\n", "no function 'f'"),
    ("this is not python\n", "cannot be loaded"),
])
def test_bad_user_tasks(tmp_path, body, match):
    """Check that a bad task function is refused at registration with a precise message."""
    f = tmp_path / "bad.py"
    f.write_text(body)
    with pytest.raises(TaskError, match=match):
        get_task(f"{f}:f")


@pytest.mark.parametrize("spec,match", [("nosuch", "unknown task"), ("/nonexistent/t.py:f", "does not exist")])
def test_unknown_task_specs(spec, match):
    """Check that an unknown name or a missing file is a TaskError."""
    with pytest.raises(TaskError, match=match):
        get_task(spec)


def test_case_sets():
    """Check the training set holds edge values and the validation set >= 10,000 random cases."""
    task = get_task("avg")
    rng = np.random.default_rng(0)
    train = training_cases(task, rng, 64)
    valid = validation_cases(task, rng)
    assert train.shape == (64, 2) and [0, 0] in train.tolist() and [MASK, MASK] in train.tolist()
    assert valid.shape[0] >= 10_000 + 17 * 17 and valid.shape[1] == 2


def test_builtin_symbolic_forms_agree_with_their_functions():
    """Check that every built-in task has a symbolic twin equal to it on every edge combination."""
    for task in BUILTIN.values():
        assert task.symbolic is not None, task.name
        validate_task(task)


def test_user_task_symbolic_twin(tmp_path):
    """Check that a user's twin is found (attribute or <name>_symbolic) and probed at registration."""
    f = tmp_path / "twin.py"
    f.write_text("import z3\n"
                 "def f(x, y):\n    return (x + y) >> 1\n"
                 "def f_symbolic(x, y):\n    return (x & y) + z3.LShR(x ^ y, 1)\n"
                 "def g(x):\n    return x >> 3\n"
                 "g.symbolic = lambda x: z3.LShR(x, 3)\n")
    assert get_task(f"{f}:f").symbolic is not None and get_task(f"{f}:g").symbolic is not None


@pytest.mark.parametrize("twin,match", [
    ("def f_symbolic(x, y):\n    return (x + y) >> 1\n", r"disagrees with it on inputs \("),   # z3 >> is arithmetic
    ("def f_symbolic(x, y):\n    return 3\n", "failed on variables"),
    ("def f_symbolic(x, y):\n    return 0 if x == 0x5EED else (x + y) >> 1\n", "Python if"),
    ("f_symbolic = 5\n", "not a function"),
])
def test_wrong_symbolic_twin_is_refused(tmp_path, twin, match):
    """Check that a twin which disagrees with its task (or is no z3 function) is refused with the input."""
    f = tmp_path / "badtwin.py"
    f.write_text("def f(x, y):\n    return (x + y) >> 1\n" + twin)
    with pytest.raises(TaskError, match=match):
        get_task(f"{f}:f")


def test_stratified_cases_cover_every_length_and_density():
    """Check that stratified inputs hold every bit length and every popcount of a 64-bit word."""
    cases = stratified_cases(np.random.default_rng(1), 6000, 2)
    for col in range(2):
        values = [int(v) for v in cases[:, col]]
        assert {v.bit_length() for v in values} == set(range(65))
        assert {bin(v).count("1") for v in values} == set(range(65))
    grid = length_grid(np.random.default_rng(2), 3)
    assert grid.shape == (65 * 65, 3)
    assert {(int(a).bit_length(), int(b).bit_length()) for a, b in grid[:, :2].tolist()} == \
        {(i, j) for i in range(65) for j in range(65)}


def test_validation_finds_the_nlz_claim():
    """Check that held-out cases refute the nlz(x) <= nlz(y) claim uniform inputs let pass."""
    from core.asm import assemble
    from core.executors import open_executor
    from test_proofs import NLZ_LE

    def nlz_le(x, y):
        return int((64 - x.bit_length()) <= (64 - y.bit_length()))

    task = get_task("max")     # any two-input task: only its arity shapes the cases
    valid = validation_cases(task, np.random.default_rng(3))
    uniform = random_cases(np.random.default_rng(3), len(valid), 2)
    with open_executor("arm64", backend="emulated") as ex:
        wrong = []
        for cases in (valid, uniform):
            out = ex.run([assemble(NLZ_LE)], cases, seed=3).outputs[0]
            want = np.array([nlz_le(a, b) for a, b in cases.tolist()], dtype=np.uint64)
            wrong.append(int((out != want).sum()))
    assert wrong[0] > 0 and wrong[1] == 0
