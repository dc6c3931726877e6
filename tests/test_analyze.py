"""Tests of ``python -m evolve analyze``: tables match the run's own files, runs are compared,
bad input exits 2 and writes nothing."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.brain.file import read
from evolve.__main__ import main as evolve_main


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A brain run and a --no-brain run of clear_lowest, analysed together."""
    base = tmp_path_factory.mktemp("analyze")
    brain, plain = base / "brain", base / "plain"
    for out, extra in ((brain, []), (plain, ["--no-brain"])):
        assert evolve_main(["run", "--quiet", "--task", "clear_lowest", "--backend", "emulated",
                            "--out", str(out), *extra]) == 0
    assert evolve_main(["analyze", str(brain), str(plain), "--out", str(base / "report")]) == 0
    return brain, plain, base / "report"


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_outputs_exist(runs):
    """Check that the summary, JSON, CSV tables and PNG are written."""
    _, _, report = runs
    names = {p.name for p in report.iterdir()}
    assert {"summary.txt", "analysis.json", "analysis.png", "comparison.csv", "outcomes_0.csv", "outcomes_1.csv",
            "instructions_0.csv", "patterns_0.csv"} <= names
    assert "patterns_1.csv" not in names            # the --no-brain run has no brain file
    assert (report / "analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("index", [0, 1])
def test_outcome_table_matches_metrics(runs, index):
    """Check that outcomes_<i>.csv equals metrics.jsonl's outcome classes, line by line."""
    folder, report = runs[index], runs[2]
    metrics = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    table = rows(report / f"outcomes_{index}.csv")
    assert len(table) == len(metrics)
    for row, m in zip(table, metrics):
        assert int(row["gen"]) == m["gen"]
        assert {c: int(row[c]) for c in m["outcomes"]} == m["outcomes"]
        assert float(row["best_cost"]) == pytest.approx(m["best_cost"])
        assert float(row["offspring_crash_rate"]) == pytest.approx(m["offspring_crash_rate"])


def test_comparison_matches_results(runs):
    """Check that the comparison rows carry each run's brain switch, solution and evaluations."""
    table = rows(runs[2] / "comparison.csv")
    for row, folder, brain in zip(table, runs[:2], (True, False)):
        result = json.loads((folder / "result.json").read_text())
        last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
        assert row["brain"] == str(brain) and row["solved"] == str(result["solved"])
        assert int(row["evaluations"]) == result["evaluations"] == last["evaluations"]
        assert int(row["best_length"]) == result["best"]["length"]
    summary = (runs[2] / "summary.txt").read_text()
    assert "comparison:" in summary and "lineage of the best: #" in summary


def test_instruction_and_pattern_tables(runs):
    """Check instruction counts against the hall of fame and pattern rows against the brain file."""
    brain_run, _, report = runs
    hof = json.loads((brain_run / "hall_of_fame.json").read_text())
    counts = {r["instruction"]: int(r["count"]) for r in rows(report / "instructions_0.csv")}
    assert sum(counts.values()) == sum(len(r["asm"]) for r in hof)
    first = hof[0]["asm"][0].split()[0]
    assert counts[first] == sum(1 for r in hof for line in r["asm"] if line.split()[0] == first)
    _, arrays = read(brain_run / "brain.safetensors")
    patterns = rows(report / "patterns_0.csv")
    assert len(patterns) == int((arrays["genes/length"] > 0).sum())
    assert sorted(int(p["count"]) for p in patterns) == sorted(arrays["genes/count"][arrays["genes/length"] > 0].tolist())
    data = json.loads((report / "analysis.json").read_text())["runs"][0]["brain"]
    thr = arrays["genes/threshold_ratio"][arrays["genes/length"] > 0]
    assert len(data["suppressed"]) == int((np.round(thr, 4) > 1.0).sum())
    assert all(p["threshold_ratio"] > 1.0 for p in data["suppressed"])
    assert data["exec_nodes"] == len(arrays["exec/threshold_ratio"])


def test_lineage_starts_at_the_best(runs):
    """Check that the lineage begins with the best genome's uid and operator."""
    data = json.loads((runs[2] / "analysis.json").read_text())["runs"][0]
    best = json.loads((runs[0] / "result.json").read_text())["best"]
    assert data["lineage"][0]["uid"] == best["uid"] and data["lineage"][0]["op"] == best["op"]


def test_default_out_is_inside_the_run(runs, tmp_path, capsys):
    """Check that without --out the report lands in RUN_DIR/analysis and the summary is printed."""
    copy = tmp_path / "copy"
    shutil.copytree(runs[1], copy)
    assert evolve_main(["analyze", str(copy)]) == 0
    assert (copy / "analysis" / "summary.txt").is_file()
    assert "task clear_lowest" in capsys.readouterr().out


def _corrupt_metrics(folder: Path) -> None:
    with (folder / "metrics.jsonl").open("a") as f:
        f.write("{broken\n")


def _no_metrics(folder: Path) -> None:
    (folder / "metrics.jsonl").unlink()


def _corrupt_brain(folder: Path) -> None:
    blob = bytearray((folder / "brain.safetensors").read_bytes())
    blob[-1] ^= 0xFF  # a tensor's byte: safetensors puts the data after the header
    (folder / "brain.safetensors").write_bytes(bytes(blob))


@pytest.mark.parametrize("damage, words", [
    (_corrupt_metrics, "corrupt JSON"), (_no_metrics, "no metrics.jsonl"), (_corrupt_brain, "checksum"),
])
def test_bad_input_exits_2_and_writes_nothing(runs, tmp_path, capsys, damage, words):
    """Check that a damaged run folder exits 2 with one line and no output folder is created."""
    copy = tmp_path / "copy"
    shutil.copytree(runs[0], copy)
    damage(copy)
    out = tmp_path / "report"
    assert evolve_main(["analyze", str(runs[1]), str(copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]
    assert not out.exists()


def test_missing_folder_exits_2(tmp_path, capsys):
    """Check that a folder that does not exist exits 2."""
    assert evolve_main(["analyze", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
