"""Transfer: a run starts from what other runs' brains learnt, and brains merge.

What carries over is a brain's gene patterns and their statistics (the n-grams of adjacent genes,
their executions and the seed's rule state, :mod:`core.brain.gene_grams`): they are about the
alphabet, not the task. EXEC nodes (another task's genomes) and byte patterns do not.

``--brain-from FILE`` (a brain file, or a run folder holding ``brain.safetensors``) is checked
when the configuration is made (:func:`check`: one line, exit 2) and loaded by ``Engine.start``
(:func:`initial_brain`); ``none`` starts empty. The run's configuration records the file's
SHA-256, and the brain file the run writes names it (:func:`metadata`), so that
``python -m evolve brain merge`` (:func:`merge`) counts each observation once: a brain that
started from a prior contributes only what it learnt since (``PatternTable.delta_since``), the
prior itself once.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from core.brain import Brain
from core.brain.file import BrainFileError

BRAIN_FILE = "brain.safetensors"     # = evolve.runfolder.BRAIN_FILE (not imported: no cycle)
#: The priors shipped with Melvin, one per ISA (``scripts/build_prior.py`` writes them).
SHIPPED = Path(__file__).resolve().parent / "priors"


def shipped(isa: str) -> Path | None:
    """The shipped prior of ``isa`` (``--brain-from auto``), or None."""
    p = SHIPPED / f"{isa}.safetensors"
    return p if p.is_file() else None


def alphabet_id(isa: str) -> str:
    """A fingerprint of ``isa``'s gene alphabet: gene tokens index its operations, so a brain's
    patterns mean the same only under the same alphabet."""
    from evolve.genes import alphabet_for
    ops = [[o.name, o.kind, o.width] for o in alphabet_for(isa).ops]
    return hashlib.sha256(json.dumps(ops).encode()).hexdigest()[:16]


def resolve(path) -> Path:
    """The brain file ``path`` names: itself, or a run folder's ``brain.safetensors``."""
    p = Path(path)
    return p / BRAIN_FILE if p.is_dir() else p


def read(path) -> tuple[Brain, str, Path]:
    """``(brain, sha256 of its file, file path)``; ValueError with one line if unusable."""
    p = resolve(path)
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"brain file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        brain = Brain.from_bytes(blob, str(p))
    except BrainFileError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return brain, hashlib.sha256(blob).hexdigest(), p


def check(path, isa: str) -> tuple[str, str]:
    """``(path, sha256)`` of a usable ``--brain-from`` file for ``isa``; ValueError with one
    line if not (unreadable, or learnt on another gene alphabet)."""
    brain, sha, p = read(path)
    _compatible(Brain(), brain, p)
    learnt = (brain.metadata or {}).get("alphabet")
    if learnt is not None and learnt != alphabet_id(isa):
        raise ValueError(f"brain file {str(p)!r} was learnt on another gene alphabet than {isa}'s "
                         f"({(brain.metadata or {}).get('isa', '?')}, alphabet {learnt})")
    return str(p), sha


def _compatible(into: Brain, src: Brain, where) -> None:
    a, b = into.gene_patterns, src.gene_patterns
    if b.config.n_max > a.config.n_max:
        raise ValueError(f"brain file {str(where)!r}: gene patterns of up to {b.config.n_max} genes, "
                         f"this brain holds up to {a.config.n_max}")
    if a.init_threshold != b.init_threshold:
        raise ValueError(f"brain file {str(where)!r}: its gene patterns start at threshold "
                         f"{float(b.init_threshold):g}, this version's at {float(a.init_threshold):g} "
                         f"(weights on another scale)")


def initial_brain(cfg) -> Brain:
    """The brain a new run starts with: empty, or ``cfg.brain_from``'s gene patterns (its file
    must still be the one checked: same SHA-256)."""
    brain = Brain()
    if getattr(cfg, "brain_from", None):
        src, sha, p = read(cfg.brain_from)
        if cfg.brain_from_sha256 and sha != cfg.brain_from_sha256:
            raise ValueError(f"brain file {str(p)!r} changed since the run was configured")
        _compatible(brain, src, p)
        if not src.gene_patterns.improvements_counted:   # an older brain file: its introductions
            src.gene_patterns.count[:] = 0                # are counted from now on, with improvements
        brain.gene_patterns.merge(src.gene_patterns)
    return brain


def metadata(cfg) -> dict:
    """What a run's brain file says of its genes (ISA, :func:`alphabet_id`) and its prior."""
    out = {"isa": cfg.isa, "alphabet": alphabet_id(cfg.isa)}
    if getattr(cfg, "brain_from", None):
        out["prior"] = {"path": cfg.brain_from, "sha256": cfg.brain_from_sha256}
    return out


def merge(paths: list) -> tuple[Brain, dict]:
    """One brain holding the gene patterns of the brain files (or run folders) ``paths``, each
    observation counted once; ``(brain, summary)``. ValueError with one line on a bad input.

    The same file given twice counts once. A brain whose metadata names a prior (a run started
    with ``--brain-from``) adds what it learnt since that prior, and the prior is added once: as
    one of the inputs, else from its recorded path if it is still that file; a prior that cannot
    be found is refused when two inputs started from it (it would count twice), else its brain
    counts whole (the prior's observations once, through it).
    """
    if not paths:
        raise ValueError("brain merge needs at least one brain file")
    inputs: dict[str, tuple[Brain, Path]] = {}
    for path in paths:
        brain, sha, p = read(path)
        inputs.setdefault(sha, (brain, p))
    learnt = {(b.metadata or {}).get("alphabet"): (b, p) for b, p in inputs.values()}
    learnt.pop(None, None)
    if len(learnt) > 1:
        (_, pa), (_, pb) = list(learnt.values())[:2]
        raise ValueError(f"{str(pa)!r} and {str(pb)!r} were learnt on different gene alphabets")
    priors: dict[str, list[str]] = {}
    for sha, (brain, _) in inputs.items():
        prior = (brain.metadata or {}).get("prior") or {}
        if prior.get("sha256") and prior["sha256"] != sha:
            priors.setdefault(prior["sha256"], []).append(sha)
    bases: dict[str, Brain] = {}
    for psha, users in priors.items():
        if psha in inputs:
            bases[psha] = inputs[psha][0]
            continue
        recorded = (inputs[users[0]][0].metadata["prior"] or {}).get("path")
        try:
            found, fsha, _ = read(recorded) if recorded else (None, None, None)
        except ValueError:
            found, fsha = None, None
        if found is not None and fsha == psha:
            bases[psha] = found
        elif len(users) > 1:
            names = ", ".join(repr(str(inputs[u][1])) for u in users[:2])
            raise ValueError(f"{names} started from the same prior brain (sha256 {psha[:12]}), not found: "
                             f"add it to the inputs, or its observations would count twice")
    out = Brain()
    summary = {"inputs": [], "patterns": 0}
    if learnt:
        b, _ = next(iter(learnt.values()))
        summary["isa"], summary["alphabet"] = b.metadata.get("isa"), b.metadata["alphabet"]
    for psha, base in bases.items():
        if psha not in inputs:          # found at its recorded path: added once, here
            _compatible(out, base, psha[:12])
            out.gene_patterns.merge(base.gene_patterns)
            summary["inputs"].append({"sha256": psha, "as": "prior"})
    for sha, (brain, p) in inputs.items():
        _compatible(out, brain, p)
        psha = ((brain.metadata or {}).get("prior") or {}).get("sha256")
        if psha in bases and psha != sha:
            base = bases[psha].gene_patterns
            out.gene_patterns.merge(brain.gene_patterns.delta_since(base.snapshot()))
            how = "since its prior"
        else:
            out.gene_patterns.merge(brain.gene_patterns)
            how = "whole"
        summary["inputs"].append({"path": str(p), "sha256": sha, "as": how})
    summary["patterns"] = len(out.gene_patterns)
    return out, summary
