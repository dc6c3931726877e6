"""Tests of macro-genes (evolve.library): what a library holds, registers renamed correctly, the
result still runs and verifies (z3, and plain Unicorn as a check that shares no code with the
variation kernel), macro-genes credited by the brain, --library on the command line."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn.arm64_const import UC_ARM64_REG_X0, UC_ARM64_REG_X1, UC_ARM64_REG_X2, UC_ARM64_REG_X3

from core.brain import Brain
from evolve import library, verify
from evolve import operators as ops
from evolve import tasks as T
from evolve.genes import alphabet_for
from evolve.lift import lift

CLEAR_LOWEST = "010400d1 0000018a"        # sub x1, x0, #1; and x0, x0, x1
NOOP_X3 = "630003aa"                       # orr x3, x3, x3
REGS = (UC_ARM64_REG_X0, UC_ARM64_REG_X1, UC_ARM64_REG_X2, UC_ARM64_REG_X3)


def _record(folder, name, code_hex, isa="arm64", equivalence="proven", **extra):
    doc = {"task": name, "isa": isa, "code_hex": code_hex.replace(" ", ""),
           "verification": {"equivalence": equivalence, "independence": equivalence}, **extra}
    (folder / f"{name}.json").write_text(json.dumps(doc))


def _run_unicorn(code: bytes, regs: list[int]) -> list[int]:
    """x0-x3 after ``code`` from ``regs``: a plain Unicorn call, nothing of Melvin's."""
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.mem_map(0x10000, 0x1000)
    uc.mem_write(0x10000, code)
    for r, v in zip(REGS, regs):
        uc.reg_write(r, v)
    uc.emu_start(0x10000, 0x10000 + len(code))
    return [uc.reg_read(r) for r in REGS]


def test_library_keeps_verified_short_code_of_this_isa_once(tmp_path):
    """Check which entries become macro-genes: verified, this ISA, 2..MAX_LEN instructions,
    the same snippet with other registers once; a solved run folder's best counts too."""
    _record(tmp_path, "a", CLEAR_LOWEST)
    _record(tmp_path, "same_other_regs", "430400d1 4200038a")       # sub x3, x2, #1; and x2, x2, x3
    _record(tmp_path, "unverified", "000400d1 000400d1", equivalence="refuted")
    _record(tmp_path, "x86", "4889f8 48ffc8", isa="x86_64")
    _record(tmp_path, "one", "000400d1")
    _record(tmp_path, "long", " ".join(["000400d1"] * (library.MAX_LEN + 1)))
    run = tmp_path / "run"
    run.mkdir()
    alpha = alphabet_for("arm64")
    genes = [list(g) for g in lift(bytes.fromhex("200000cb000000aa"), alpha)]
    (run / "result.json").write_text(json.dumps({"isa": "arm64", "solved": True, "verification": {"equivalence": "tested"},
                                                 "best": {"genes": genes, "code_hex": "200000cb000000aa"}}))
    lib = library.load([str(tmp_path), str(run)], alpha)
    assert len(lib) == 2
    assert lib.asm[0] == ["sub x1, x0, #1", "and x0, x0, x1"]
    assert lib.source[1] == str(run) and lib.length.tolist() == [2, 2]
    assert len(set(lib.token.tolist())) == 2 and (lib.token >= library.MACRO_BASE).all()
    # the same snippet under other registers has the same token; another snippet another
    assert library.token_of(["sub x1, x0, #1", "and x0, x0, x1"]) == library.token_of(["sub x3, x2, #1", "and x2, x2, x3"])
    assert library.token_of(["sub x1, x0, #1", "and x0, x0, x1"]) != library.token_of(["sub x1, x0, #1", "and x0, x1, x1"])
    # registers beyond the working set: left out
    assert len(library.load([str(tmp_path)], alphabet_for("arm64", n_regs=2))) == 2   # x0, x1 only
    assert len(library.load([str(tmp_path / "x")] if (tmp_path / "x").is_dir() else [], alpha)) == 0


def test_macro_gene_renamed_still_runs_and_verifies(tmp_path):
    """Check that clear_lowest's two instructions, put by the macro mutation into a genome that
    only holds ``orr x3, x3, x3``, registers renamed, compute x & (x - 1) in the register x0 was
    renamed to (plain Unicorn, random inputs, every child), and that the children that kept
    x0 prove equivalent to clear_lowest with z3."""
    _record(tmp_path, "clear_lowest", CLEAR_LOWEST)
    alpha = alphabet_for("arm64")
    lib = library.load([str(tmp_path)], alpha)
    noop = lift(bytes.fromhex(NOOP_X3), alpha)[0]
    var = ops.Variation(alpha, 8)
    parents = np.zeros((300, 8, 5), np.int64)
    parents[:, 0] = noop
    table = np.cumsum(np.asarray(alpha.base_weights(), np.float64))[None, :]
    off = ops.vary(var, parents, np.ones(300, np.int64), np.arange(300), 0.0, 1.0, table, random.Random(3),
                   lib.table(Brain()))
    picked = np.flatnonzero(off.mut == ops.MUT_MACRO)
    assert picked.size > 5 and (off.macro[picked] == 0).all() and (off.length[picked] == 3).all()
    rng = np.random.default_rng(0)
    kept = set()
    task = T.get_task("clear_lowest")
    for k in picked:
        genes = [tuple(int(v) for v in g) for g in off.genes[k, :3]]
        text = alpha.render(genes)
        sub = next(line for line in text if line.startswith("sub"))
        src = int(sub.split(",")[1].strip()[1:])          # the register the snippet's x0 became
        assert "orr x3, x3, x3" in text
        code = alpha.encode(genes)
        for _ in range(20):
            regs = [int(v) for v in rng.integers(0, 2**64, 4, dtype=np.uint64)]
            out = _run_unicorn(code, regs)
            assert out[src] == regs[src] & (regs[src] - 1) % 2**64, text
        if src == 0 and "x3" not in sub and tuple(text) not in kept:
            kept.add(tuple(text))
            v = verify.check(code, task, "arm64", 1000, effort=5.0)
            assert v.equivalence == "proven" and v.independence == "proven", text
    assert kept and any("x0" not in line.split(",")[0] for t in kept for line in t if line.startswith("sub"))


def test_macro_genes_are_credited_and_drawn_by_their_improvement(tmp_path):
    """Check that a macro-gene whose offspring improve gets a draw factor above one whose do not,
    and that the table the kernel draws from follows it."""
    _record(tmp_path, "a", CLEAR_LOWEST)
    _record(tmp_path, "b", "200000cb 000000aa")        # sub x0, x1, x0; orr x0, x0, x0
    lib = library.load([str(tmp_path)], alphabet_for("arm64"))
    brain = Brain()
    clean = np.zeros((40, 8), bool)
    for _ in range(5):
        used = np.arange(40) % 2                  # even: macro 0, odd: macro 1
        better = used == 0                        # only macro 0's offspring improve
        assert lib.credit(brain, used, clean, better) == 40
    f = lib.factors(brain)
    assert f[0] > 1.5 and f[1] <= 0.55
    cum = lib.table(brain).cum
    assert cum[0] / (cum[1] - cum[0]) == pytest.approx(f[0] / f[1])
    rep = lib.report(brain)["macro_genes"]
    assert rep[0]["inserted"] == 100 and rep[0]["improved"] == 100 and rep[1]["improved"] == 0


def test_library_option_bad_folder_and_no_brain_exit_2(tmp_path, capsys):
    """Check --library's errors: a missing folder, or with --no-brain: exit 2, one line."""
    from evolve.__main__ import main
    for argv, text in ((["run", "--library", str(tmp_path / "missing")], "is not a folder"),
                       (["run", "--no-brain", "--library", str(tmp_path)], "needs the brain")):
        assert main(argv + ["--out", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0]
        assert not (tmp_path / "out").exists()
