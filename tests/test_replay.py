"""Tests of ``scripts/replay_best.py``: a fresh run reproduces, tampering is caught (exit 1 with
the check and case named), every bad input exits 2 with one line and writes nothing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.executors import native_available
from core.isa import get_isa
from evolve.__main__ import main as evolve_main
from evolve.replay import main as replay_main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small solved arm64 run of clear_lowest (emulated, ~2 s)."""
    out = tmp_path_factory.mktemp("replay") / "run"
    assert evolve_main(["run", "--quiet", "--task", "clear_lowest", "--backend", "emulated",
                        "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["solved"]
    return out


@pytest.fixture
def copy(run_dir, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint*"))
    return dst


def replay_json(capsys, *args) -> tuple[int, dict]:
    status = replay_main([*map(str, args), "--json"])
    out = capsys.readouterr().out
    return status, (json.loads(out) if out.strip() else {})


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()} if folder.exists() else {}


def test_fresh_run_reproduces(run_dir, capsys):
    """Check that replay of a fresh run exits 0 with every check passing and every case correct."""
    status, rep = replay_json(capsys, run_dir)
    assert status == 0 and rep["reproduces"]
    names = [c["name"] for c in rep["checks"]]
    assert any("reassembles" in n for n in names) and any("best.s" in n for n in names)
    assert rep["cases"]["training"]["correct"] == rep["cases"]["training"]["n"] == 64
    assert rep["cases"]["validation"]["correct"] == rep["cases"]["validation"]["n"] > 10_000
    result = json.loads((run_dir / "result.json").read_text())
    assert "".join(row["bytes"] for row in rep["listing"]) == result["best"]["code_hex"]
    assert [row["address"] for row in rep["listing"]] == [4 * i for i in range(len(rep["listing"]))]


def test_user_inputs_are_judged_against_the_task(run_dir, capsys):
    """Check that --inputs cases appear with the task's value, the output and the outcome class."""
    status, rep = replay_json(capsys, run_dir, "--inputs", "12", "0x10", "-1", "--no-minimize")
    assert status == 0
    rows = rep["cases"]["inputs"]["rows"]
    assert [r["inputs"][0] for r in rows] == [12, 16, 2**64 - 1]
    assert [r["expected"] for r in rows] == [8, 0, 2**64 - 2]
    assert all(r["correct"] and r["output"] == r["expected"] and r["outcome"] == "OK" for r in rows)


def test_text_report_via_the_script(run_dir):
    """Check that the script prints a capstone listing, per-case rows and the shortest program."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "replay_best.py"), str(run_dir),
                           "--inputs", "6"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "listing:" in proc.stdout and "shortest equivalent program" in proc.stdout
    assert "reproduces the recorded result" in proc.stdout
    assert "0x6" in proc.stdout and "0x4" in proc.stdout   # 6 & 5 == 4


def test_hall_of_fame_rank(run_dir, capsys):
    """Check that --rank 1 replays the hall of fame's best and reports its exact-case record."""
    status, rep = replay_json(capsys, run_dir, "--rank", "1", "--no-minimize")
    hof = json.loads((run_dir / "hall_of_fame.json").read_text())
    assert status == 0 and rep["rank"] == 1
    assert "".join(r["bytes"] for r in rep["listing"]) == hof[0]["code_hex"]
    assert any(c["name"].startswith("exact training cases") and c["ok"] for c in rep["checks"])


def test_tampered_best_s_exits_1(copy, capsys):
    """Check that a changed instruction in best.s makes replay exit 1 naming best.s."""
    text = (copy / "best.s").read_text().splitlines()
    text[-1] = "mov x0, #0"
    (copy / "best.s").write_text("\n".join(text) + "\n")
    status, rep = replay_json(capsys, copy, "--no-minimize")
    assert status == 1 and not rep["reproduces"]
    failed = [c for c in rep["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["best.s equals result.json's best"]
    assert "mov x0, #0" in failed[0]["detail"]


def test_tampered_code_exits_1(copy, capsys):
    """Check that recorded code that differs from the assembly makes replay exit 1."""
    result = json.loads((copy / "result.json").read_text())
    code = bytearray.fromhex(result["best"]["code_hex"])
    code[0] ^= 0x01
    result["best"]["code_hex"] = code.hex()
    (copy / "result.json").write_text(json.dumps(result))
    status, rep = replay_json(capsys, copy, "--no-minimize")
    assert status == 1
    bad = next(c for c in rep["checks"] if not c["ok"])
    assert "reassembles" in bad["name"] and "byte 0" in bad["detail"]


def test_wrong_program_names_the_case(copy, capsys):
    """Check that a consistent but wrong genome (asm, code, best.s agree) fails on a named case."""
    wrong = ["sub x0, x0, #1"]
    from core.asm import assemble
    result = json.loads((copy / "result.json").read_text())
    result["best"].update(asm=wrong, code_hex=assemble(wrong).hex(), genes=None)
    (copy / "result.json").write_text(json.dumps(result))
    (copy / "best.s").write_text("// tampered\n" + "\n".join(wrong) + "\n")
    status = replay_main([str(copy), "--no-minimize"])
    out = capsys.readouterr().out
    assert status == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("DOES NOT reproduce: solved: correct on every training case")
    assert "case 0 (0x0): expected 0x0, got 0xffffffffffffffff [OK]" in last


def test_claim_a_proof_refutes_exits_1(copy, capsys):
    """Check that a consistent genome right on every test case but wrong on one input is caught
    by the proof replay repeats (exit 1, the refuting input named)."""
    from core.asm import assemble
    rare = ["movz x2, #0xff80", "movk x2, #0xffff, lsl #16", "movk x2, #0xffff, lsl #32",
            "movk x2, #0xe5ff, lsl #48", "sub x1, x0, #1", "and x1, x0, x1", "cmp x0, x2", "csel x0, x0, x1, eq"]
    result = json.loads((copy / "result.json").read_text())
    result["best"].update(asm=rare, code_hex=assemble(rare).hex(), genes=None)
    (copy / "result.json").write_text(json.dumps(result))
    (copy / "best.s").write_text("// tampered\n" + "\n".join(rare) + "\n")
    status, rep = replay_json(capsys, copy, "--no-minimize")
    assert status == 1
    assert rep["cases"]["validation"]["correct"] == rep["cases"]["validation"]["n"]   # testing passes
    bad = [c for c in rep["checks"] if not c["ok"]]
    assert [c["name"] for c in bad] == ["proofs: what result.json claims still holds"]
    assert "0xe5ffffffffffff80" in bad[0]["detail"]


def test_minimized_program_carries_its_proofs(run_dir, capsys):
    """Check that the shortest equivalent program is proven too."""
    status, rep = replay_json(capsys, run_dir)
    v = rep["minimized"]["verification"]
    assert status == 0 and (v["equivalence"], v["independence"]) == ("proven", "proven")


def _corrupt_config(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")


def _other_isa(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["config"]["isa"] = "riscv64"
    (folder / "config.json").write_text(json.dumps(cfg))


def _mismatched_isa(folder: Path) -> None:
    res = json.loads((folder / "result.json").read_text())
    res["isa"] = "x86_64"
    (folder / "result.json").write_text(json.dumps(res))


def _partial(folder: Path) -> None:
    (folder / "result.json").unlink()


def _corrupt_hof(folder: Path) -> None:
    (folder / "hall_of_fame.json").write_text('[{"asm": ["add x0, x0, x0"]')


@pytest.mark.parametrize("damage, args, words", [
    (None, ["--rank", "99"], "beyond the hall of fame"),
    (None, ["--rank", "-1"], "--rank must be >= 0"),
    (None, ["--inputs", "1,2"], "takes 1 input(s)"),
    (None, ["--inputs", "x"], "comma-separated integers"),
    (_corrupt_config, [], "corrupt JSON"),
    (_other_isa, [], "ISA 'riscv64'"),
    (_mismatched_isa, [], "config.json says 'arm64'"),
    (_partial, [], "no result.json"),
    (_corrupt_hof, [], "corrupt JSON"),
])
def test_bad_input_exits_2(copy, capsys, damage, args, words):
    """Check that each bad input exits 2 with one clear line on stderr and writes nothing."""
    if damage is not None:
        damage(copy)
    before = snapshot(copy)
    status = replay_main([str(copy), *args])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert snapshot(copy) == before


def test_missing_folder_exits_2(tmp_path, capsys):
    """Check that a folder that does not exist exits 2 and is not created."""
    target = tmp_path / "nope"
    assert replay_main([str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.skipif(not native_available(get_isa("x86_64")), reason="needs the native x86-64 backend")
def test_native_and_emulated_cross_check(tmp_path, capsys):
    """Check that an x86-64 run replays natively and the emulator agrees on every case."""
    out = tmp_path / "x86"
    assert evolve_main(["run", "--quiet", "--isa", "x86_64", "--task", "clear_lowest", "--out", str(out)]) == 0
    capsys.readouterr()
    status, rep = replay_json(capsys, out, "--no-minimize")
    assert status == 0 and rep["backend"] == "native"
    cross = [c for c in rep["checks"] if "backends agree" in c["name"]]
    n = rep["cases"]["training"]["n"] + rep["cases"]["validation"]["n"]
    assert len(cross) == 1 and cross[0]["ok"] and cross[0]["detail"] == f"on {n} cases"
