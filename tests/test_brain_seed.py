"""Tests of scripts/reproduce_seed.py: its output parsed and checked against the seed."""
from __future__ import annotations

import re

import pytest

from scripts import reproduce_seed

_NODE = re.compile(r"^(?:✅|❌|⚪) Node (\d+): (WORKS|FAILS|UNTESTED) "
                   r"\(success=([\d.]+), threshold=([\d.]+)\)\n   Executions: (\d+)", re.M)
_INIT = re.compile(r"^Node (\d+): offset=(\d+), threshold_ratio=([\d.]+), success_rate=([\d.]+)$",
                   re.M)


def _run(capsys, *argv: str) -> tuple[str, dict]:
    assert reproduce_seed.main(list(argv)) == 0
    out = capsys.readouterr().out
    nodes = {int(m[1]): (m[2], float(m[3]), float(m[4]), int(m[5])) for m in _NODE.finditer(out)}
    return out, nodes


def _summary(out: str, name: str) -> int:
    return int(re.search(rf"^  {name}: (\d+)", out, re.M)[1])


def test_fifty_cycles_match_the_seed(capsys):
    """Check that 50 cycles give the seed's tables: 2000 works at 0.100, 2001-2004 fail."""
    out, nodes = _run(capsys, "--cycles", "50", "--seed", "1", "--backend", "emulated")
    assert "EXEC NODES - Initial State" in out and "FINAL LEARNING RESULTS" in out
    init = [(int(m[1]), int(m[2]), float(m[3]), float(m[4])) for m in _INIT.finditer(out)]
    assert init == [(2000, 1024, 0.1, 1.0), (2001, 1544, 0.1, 0.0), (2002, 2064, 0.1, 0.0),
                    (2003, 2584, 0.1, 0.0), (2004, 3104, 0.1, 0.0)]
    assert nodes[2000][:3] == ("WORKS", 1.0, 0.1) and nodes[2000][3] > 0
    failing_runs = 0
    for node in (2001, 2002, 2003, 2004):
        verdict, success, thr, runs = nodes[node]
        assert verdict == "FAILS" and success == 0.0
        assert 5 <= runs <= 50
        assert thr == pytest.approx(round(0.1 * 1.01 ** runs, 3), abs=1.5e-3)
        failing_runs += runs
    assert _summary(out, "Working nodes") == 1 and _summary(out, "Failing nodes") == 4
    assert _summary(out, "Untested") == 0 and _summary(out, "Patterns learned") > 0
    crashes = re.search(r"^Crashes handled: (\d+) \(\+(\d+) in the initial probe\)", out, re.M)
    assert int(crashes[1]) == failing_runs and int(crashes[2]) == 4
    a, b, c = map(int, re.search(r"last result: f\((\d+), (\d+)\) = (\d+)", out).groups())
    assert a + b == c


def test_seed_makes_runs_reproducible(capsys):
    """Check that the same --seed prints the same report and another seed may differ."""
    first, _ = _run(capsys, "--cycles", "30", "--seed", "7", "--backend", "emulated")
    again, _ = _run(capsys, "--cycles", "30", "--seed", "7", "--backend", "emulated")
    assert first == again


def test_long_run_reaches_clamp(capsys):
    """Check that a long run drives the failing nodes' thresholds to the 3.0 clamp."""
    out, nodes = _run(capsys, "--cycles", "8000", "--seed", "1", "--backend", "emulated")
    assert nodes[2000][:3] == ("WORKS", 1.0, 0.1)
    for node in (2001, 2002, 2003, 2004):
        verdict, success, thr, runs = nodes[node]
        assert verdict == "FAILS" and thr == pytest.approx(min(3.0, 0.1 * 1.01 ** runs), abs=1e-3)
    assert max(nodes[n][2] for n in (2001, 2002, 2003, 2004)) == 3.0
    assert nodes[2000][3] > 4 * max(nodes[n][3] for n in (2001, 2002, 2003, 2004))


def test_bad_arguments_exit_2(capsys):
    """Check that a negative cycle count is refused with exit status 2."""
    with pytest.raises(SystemExit) as info:
        reproduce_seed.main(["--cycles", "-1"])
    assert info.value.code == 2
