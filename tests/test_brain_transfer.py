"""Tests of transfer: --brain-from, ``python -m evolve brain merge`` and what they carry."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.brain import Brain
from core.brain import gene_grams as gg
from evolve import prior
from evolve.__main__ import main
from evolve.config import RunConfig
from evolve.engine import build

N = 30


def _trained(seed: int, exec_nodes: int = 3, base: Brain | None = None) -> Brain:
    """A brain with EXEC nodes and gene patterns credited from random offspring."""
    rng = np.random.default_rng(seed)
    brain = Brain()
    if base is not None:
        brain.gene_patterns.merge(base.gene_patterns)
    brain.add_exec_nodes([bytes([i, 0, 0, 0x8b]) for i in range(exec_nodes)])
    for _ in range(5):
        tokens = rng.integers(0, N, (40, 6)).astype(np.int64)
        fresh = rng.random((40, 6)) < 0.4
        crashed = rng.random((40, 8)) < (tokens[:, :1] % 5 == 0)       # genomes starting 0 mod 5 crash
        gain = gg.improved(rng.random(40), np.full(40, 0.3))
        gg.credit_introduced(brain.gene_patterns, tokens, np.full(40, 6), fresh, crashed, gain)
    return brain


def _table(brain: Brain):
    return brain.gene_patterns.draw_table(np.linspace(0.5, 1.5, N))


def _same_table(a: Brain, b: Brain) -> None:
    (ca, pa), (cb, pb) = _table(a), _table(b)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ca, cb)


def test_saved_merged_and_loaded_brain_gives_the_same_draw_table(tmp_path):
    """Check that a brain merged alone by the command gives its draw table bit for bit, and two
    brains merged by the command the table of the two merged in memory; no EXEC node travels."""
    a, b = _trained(1), _trained(2)
    a.save(tmp_path / "a.safetensors")
    (tmp_path / "run").mkdir()
    b.save(tmp_path / "run" / "brain.safetensors")
    assert main(["brain", "merge", str(tmp_path / "a.safetensors"), "-o", str(tmp_path / "one.safetensors")]) == 0
    one = Brain.load(tmp_path / "one.safetensors")
    _same_table(a, one)
    assert one.n_exec == 0 and a.n_exec == 3 and len(one.gene_patterns) == len(a.gene_patterns)
    assert (_table(a)[0] != np.cumsum(np.linspace(0.5, 1.5, N))).any()   # it has learnt something
    # a file and a run folder; the same file twice counts once
    assert main(["brain", "merge", str(tmp_path / "a.safetensors"), str(tmp_path / "run"),
                 str(tmp_path / "a.safetensors"), "-o", str(tmp_path / "two.safetensors")]) == 0
    two = Brain.load(tmp_path / "two.safetensors")
    ref = Brain()
    ref.merge_patterns(a)
    ref.merge_patterns(b)
    _same_table(ref, two)
    slot = a.gene_patterns.find([a.gene_patterns.tokens[0, 0]])
    tok = [int(a.gene_patterns.tokens[slot, 0])]
    t2 = two.gene_patterns
    assert t2.n_ok[t2.find(tok)] == a.gene_patterns.n_ok[slot] + b.gene_patterns.n_ok[b.gene_patterns.find(tok)]


def test_a_run_from_a_prior_adds_only_what_it_learnt_since(tmp_path):
    """Check that merging a prior with a brain started from it counts the prior once."""
    p = _trained(3)
    p.save(tmp_path / "p.safetensors")
    sha = hashlib.sha256((tmp_path / "p.safetensors").read_bytes()).hexdigest()
    x = _trained(4, base=p)
    x.save(tmp_path / "x.safetensors", {"prior": {"path": str(tmp_path / "p.safetensors"), "sha256": sha}})
    y = _trained(5, base=p)
    y.save(tmp_path / "y.safetensors", {"prior": {"path": str(tmp_path / "gone.safetensors"), "sha256": sha}})
    out, summary = prior.merge([tmp_path / "x.safetensors", tmp_path / "p.safetensors", tmp_path / "y.safetensors"])
    gx, gp, gy, go = x.gene_patterns, p.gene_patterns, y.gene_patterns, out.gene_patterns
    checked = 0
    for row in range(len(gp)):
        tok = gp.tokens[row, :gp.length[row]].tolist()
        s = go.find(tok)
        assert go.n_ok[s] == gx.n_ok[gx.find(tok)] + gy.n_ok[gy.find(tok)] - gp.n_ok[row]
        assert go.n_crash[s] == gx.n_crash[gx.find(tok)] + gy.n_crash[gy.find(tok)] - gp.n_crash[row]
        checked += 1
    assert checked > 100 and [i["as"] for i in summary["inputs"]] == ["since its prior", "whole", "since its prior"]
    # without the prior among the inputs it is found at its recorded path (x's), once
    out2, _ = prior.merge([tmp_path / "x.safetensors", tmp_path / "y.safetensors"])
    g2 = out2.gene_patterns
    assert len(g2) == len(go)
    for row in np.flatnonzero(go.length > 0):
        s = g2.find(go.tokens[row, :go.length[row]].tolist())
        assert g2.n_ok[s] == go.n_ok[row] and g2.n_crash[s] == go.n_crash[row]
    # two brains of one prior that cannot be found: refused (it would count twice)
    (tmp_path / "p.safetensors").unlink()
    with pytest.raises(ValueError, match="same prior"):
        prior.merge([tmp_path / "x.safetensors", tmp_path / "y.safetensors"])


def test_brain_from_loads_gene_patterns_and_not_exec_nodes(tmp_path):
    """Check that --brain-from's brain holds the file's gene patterns (the first draw table is
    the file's) and none of its EXEC nodes, and that the run's brain file names its prior."""
    src = _trained(6, exec_nodes=5)
    src.save(tmp_path / "src.safetensors")
    path, sha = prior.check(tmp_path / "src.safetensors", "arm64")
    cfg = RunConfig(task="avg", pop=20, generations=1, time_limit=None, backend="emulated", seed=1,
                    init_len=4, brain_from=path, brain_from_sha256=sha)
    brain = prior.initial_brain(cfg)
    assert brain.n_exec == 0 and len(brain.gene_patterns) == len(src.gene_patterns)
    _same_table(src, brain)
    engine = build(cfg)
    engine.brain = brain
    from core.brain import draw_kernels
    cum = draw_kernels.fill_all(engine._draw_table())    # the first population is drawn with the prior's weights
    base = np.asarray(engine.alphabet.base_weights(), np.float64)
    np.testing.assert_array_equal(cum, brain.gene_patterns.draw_table(base)[0])
    assert cum.shape[0] > 1 and not np.allclose(cum[1:], cum[0])
    engine.evaluator.close()
    engine = build(cfg)
    engine.start()
    g, s = engine.brain.gene_patterns, src.gene_patterns
    assert len(g) >= len(s)
    for row in range(len(s)):
        slot = g.find(s.tokens[row, :s.length[row]].tolist())
        assert slot >= 0 and g.n_ok[slot] + g.n_crash[slot] >= s.n_ok[row] + s.n_crash[row]
    assert engine.brain.n_exec <= cfg.pop          # the population's own nodes only
    assert prior.metadata(cfg) == {"isa": "arm64", "alphabet": prior.alphabet_id("arm64"),
                                   "prior": {"path": path, "sha256": sha}}
    engine.evaluator.close()


@pytest.mark.parametrize("content", [b"", b"not a brain at all", None])
def test_bad_brain_file_exits_2_with_one_line(tmp_path, capsys, content):
    """Check that an unusable --brain-from or merge input is one line, exit 2, nothing written."""
    bad = tmp_path / "bad.safetensors"
    if content is not None:
        bad.write_bytes(content)
    out = tmp_path / "run"
    assert main(["run", "--brain-from", str(bad), "--out", str(out), "--generations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not out.exists()
    assert main(["brain", "merge", str(bad), "-o", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "m.safetensors").exists()


def test_merge_never_overwrites_and_none_starts_empty(tmp_path, capsys):
    """Check that brain merge refuses an existing OUT (left as it was) and --brain-from none
    configures an empty brain."""
    _trained(7).save(tmp_path / "a.safetensors")
    keep = tmp_path / "out.safetensors"
    keep.write_bytes(b"mine")
    assert main(["brain", "merge", str(tmp_path / "a.safetensors"), "-o", str(keep)]) == 2
    assert keep.read_bytes() == b"mine" and capsys.readouterr().err.count("\n") == 1
    from evolve.config import add_arguments, config_from_args
    import argparse
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args(["--brain-from", "none"]))
    assert cfg.brain_from is None and len(prior.initial_brain(cfg).gene_patterns) == 0
    cfg = config_from_args(ap.parse_args(["--brain-from", str(tmp_path / "a.safetensors")]))
    assert cfg.brain_from_sha256 == hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()


def test_a_brain_of_another_alphabet_is_refused_and_auto_falls_back(tmp_path, monkeypatch):
    """Check that a brain learnt on another gene alphabet is refused (exit 2), and that the
    default ``auto`` then starts empty rather than failing."""
    other = _trained(8)
    other.save(tmp_path / "x86.safetensors", {"isa": "x86_64", "alphabet": prior.alphabet_id("x86_64")})
    with pytest.raises(ValueError, match="another gene alphabet"):
        prior.check(tmp_path / "x86.safetensors", "arm64")
    assert prior.check(tmp_path / "x86.safetensors", "x86_64")[0].endswith("x86.safetensors")
    from evolve.config import add_arguments, config_from_args
    import argparse
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    with pytest.raises(ValueError, match="another gene alphabet"):
        config_from_args(ap.parse_args(["--brain-from", str(tmp_path / "x86.safetensors")]))
    monkeypatch.setattr(prior, "SHIPPED", tmp_path)
    (tmp_path / "arm64.safetensors").write_bytes((tmp_path / "x86.safetensors").read_bytes())
    assert config_from_args(ap.parse_args([])).brain_from is None      # auto: not this alphabet's
    cfg = config_from_args(ap.parse_args(["--isa", "x86_64"]))
    assert cfg.brain_from is None                                        # no x86_64 prior shipped here
    (tmp_path / "x86_64.safetensors").write_bytes((tmp_path / "x86.safetensors").read_bytes())
    assert config_from_args(ap.parse_args(["--isa", "x86_64"])).brain_from == str(tmp_path / "x86_64.safetensors")


def test_shipped_prior_is_small_current_and_the_default():
    """Check that the shipped arm64 prior loads, was learnt on today's alphabet (rebuild it with
    scripts/build_prior.py after changing the alphabet), holds 2- and 3-gene patterns and no
    EXEC node, stays small, and is what a default run starts from."""
    path = prior.shipped("arm64")
    assert path is not None and path.stat().st_size < 200_000
    brain, sha, _ = prior.read(path)
    assert brain.metadata["alphabet"] == prior.alphabet_id("arm64") and brain.n_exec == 0
    lengths = brain.gene_patterns.stats()["length"]
    assert (lengths == 2).sum() > 100 and (lengths == 3).sum() > 100
    from evolve.config import add_arguments, config_from_args
    import argparse
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args([]))
    assert cfg.brain_from == str(path) and cfg.brain_from_sha256 == sha
    assert config_from_args(ap.parse_args(["--no-brain"])).brain_from is None


def test_a_brain_file_from_before_improvements_were_counted_transfers_without_its_counts(tmp_path):
    """Check that a brain file without ``genes/n_improved`` (written before improvements were
    counted) loads as it was, and that --brain-from carries its rule state but not its
    introduction counts (which would read as introductions that never improved)."""
    from core.brain import file as brain_file
    brain = _trained(5)
    table = brain.gene_patterns
    assert table.n_improved.sum() > 0
    path = tmp_path / "new.safetensors"
    brain.save(path)
    meta, arrays = brain_file.read(path)
    old = {k: v for k, v in arrays.items() if k != "genes/n_improved"}
    (tmp_path / "old.safetensors").write_bytes(brain_file.encode(meta, old))
    loaded = Brain.load(tmp_path / "old.safetensors")
    assert not loaded.gene_patterns.improvements_counted and Brain.load(path).gene_patterns.improvements_counted
    np.testing.assert_array_equal(loaded.gene_patterns.count, table.count)
    assert loaded.gene_patterns.n_improved.sum() == 0
    p, sha = prior.check(tmp_path / "old.safetensors", "arm64")
    moved = prior.initial_brain(RunConfig(brain_from=p, brain_from_sha256=sha)).gene_patterns
    assert len(moved) == len(table) and moved.count.sum() == 0 and moved.n_improved.sum() == 0
    s = moved.find([int(t) for t in table.tokens[0][:table.length[0]]])
    assert moved.threshold_ratio[s] == table.threshold_ratio[0] and moved.n_ok[s] == table.n_ok[0]
