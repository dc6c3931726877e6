"""Checkpoints as data: an engine's state as a JSON document plus named arrays, never a pickle.

:func:`encode` splits :meth:`evolve.engine.Engine.state` (and the brain's bytes) in two parts and
:func:`decode` joins them again, exactly:

* the JSON document: ``format``/``version``, the configuration, the counters (``gen``, ``uid``,
  ``evaluations``, ``elapsed``, ``refuted``), both random states (``random.Random.getstate()``
  as ``[version, [625 ints], gauss_next]``; numpy's ``bit_generator.state`` as it is), the hall
  of fame (``maxsize`` and its members, best first) and the solved individual, each as genes,
  fitness, uid, parents, op, node, prior, errors, exact, crashed, fresh; the verification; the
  optimisation phase's record (``optimize``: :meth:`evolve.optimize.Optimizer.state`, null
  before it began or without one); the names of the lineage's operators;
* the arrays: the population (``rows/<column>``, see :class:`evolve.population.Rows`), the cases
  (``train_x``, ``train_y``, ``valid_x``, ``valid_y``), the lineage (``lineage/uid``,
  ``lineage/parents`` int64 [m, 2] with -1 for none, ``lineage/op`` an index into the document's
  ``lineage_ops``, ``lineage/gen``, ``lineage/length``), the genomes that failed validation
  (``validated_fail/genes`` int64 [k, L, 5], ``validated_fail/length``), the training cases
  that carry their own entry state (``pinned/at`` int64, ``pinned/regs``, ``pinned/simd``,
  ``pinned/scratch``: a :class:`~core.executors.batch_state.CaseStates`; absent when none) and the brain
  (``brain``: uint8, the bytes of its brain file, ``Brain.to_bytes``; absent without a brain).

Nothing here grows with the generation count but live state: the metrics lines stay in
``metrics.jsonl`` (a resumed engine gets them back from there, and rebuilds its DEAP logbook
from them). :func:`to_bytes` puts both parts in one safetensors byte string (the document in
its metadata), the form island checkpoints travel in; :mod:`evolve.runfolder` writes them to a
run folder as two files.
"""
from __future__ import annotations

import json
import struct

import numpy as np

FORMAT = "melvin-checkpoint"
VERSION = 3
_META_KEY = "melvin"
_CASES = ("train_x", "train_y", "valid_x", "valid_y")
_IND_TUPLES = ("parents", "prior")


class CheckpointError(ValueError):
    """A checkpoint document or its arrays that do not make a state; one-line message."""


def dumps(doc) -> str:
    """Strict JSON (no NaN), numpy scalars as numbers."""
    return json.dumps(doc, allow_nan=False, default=plain)


def plain(obj):
    """``json.dumps``' ``default`` for numpy scalars and arrays (every JSON file of a run folder)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------- individuals
def individual_to_json(ind) -> dict:
    """A DEAP individual (``evolve.toolbox.Individual``) as a JSON object: genes, fitness
    (``[]``: not evaluated) and every attribute the engine set."""
    doc = {"genes": [list(g) for g in ind], "fitness": list(ind.fitness.values) if ind.fitness.valid else []}
    for name, value in ind.__dict__.items():
        if name == "fitness":
            continue
        doc[name] = value.tolist() if isinstance(value, np.ndarray) else value
    return doc


def individual_from_json(doc: dict):
    """The individual :func:`individual_to_json` wrote (tuples and arrays where they were)."""
    from evolve.toolbox import Individual
    ind = Individual(tuple(int(v) for v in g) for g in doc["genes"])
    if doc["fitness"]:
        ind.fitness.values = tuple(doc["fitness"])
    for name, value in doc.items():
        if name in ("genes", "fitness"):
            continue
        if name in _IND_TUPLES and value is not None:
            value = tuple(value)
        elif name == "errors" and value is not None:
            value = np.asarray(value, np.uint8)
        setattr(ind, name, value)
    return ind


def _hof_from_json(doc: dict):
    from evolve.toolbox import hall_of_fame
    hof = hall_of_fame(doc["maxsize"])
    hof.items = [individual_from_json(d) for d in doc["members"]]
    # DEAP keeps keys ascending by fitness, items best first: keys[i] is items[n - 1 - i]'s
    hof.keys = [ind.fitness for ind in reversed(hof.items)]
    return hof


# --------------------------------------------------------------------- genomes as arrays
def _genomes_to_arrays(genomes: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    width = max([len(g) for g in genomes] + [1])
    genes = np.zeros((len(genomes), width, 5), np.int64)
    length = np.zeros(len(genomes), np.int64)
    for i, genome in enumerate(genomes):
        length[i] = len(genome)
        if genome:
            genes[i, :len(genome)] = genome
    return genes, length


def _genomes_from_arrays(genes: np.ndarray, length: np.ndarray) -> list[tuple]:
    return [tuple(map(tuple, genes[i, :n].tolist())) for i, n in enumerate(length.tolist())]


# --------------------------------------------------------------------- the state
def encode(state: dict, brain: bytes | None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(document, arrays)`` of an engine state and its brain file's bytes."""
    doc = {"format": FORMAT, "version": VERSION, "config": state["config"],
           **{k: state[k] for k in ("gen", "uid", "evaluations", "elapsed")}, "refuted": state.get("refuted", 0),
           "wall": state.get("wall", state["elapsed"]),
           "random": {"python": [state["rng"][0], list(state["rng"][1]), state["rng"][2]],
                      "numpy": state["np_rng"]},
           "hall_of_fame": {"maxsize": state["hof"].maxsize,
                            "members": [individual_to_json(ind) for ind in state["hof"]]},
           "solved": individual_to_json(state["solved"]) if state["solved"] is not None else None,
           "verification": state.get("verification"), "brain": brain is not None,
           "optimize": state.get("optimize"), "alphabet_version": state.get("alphabet_version", 1),
           "restart": state.get("restart"), "enumerated": state.get("enumerated"),
           "synth": state.get("synth")}
    arrays = {f"rows/{k}": np.ascontiguousarray(v) for k, v in state["rows"].items()}
    arrays.update({k: np.ascontiguousarray(state[k]) for k in _CASES})
    doc["lineage_ops"], lineage_arrays = _lineage_to_arrays(state.get("lineage", {}))
    arrays.update(lineage_arrays)
    arrays["validated_fail/genes"], arrays["validated_fail/length"] = _genomes_to_arrays(sorted(state["validated_fail"]))
    if state.get("pinned_states") is not None:
        arrays["pinned/at"] = np.asarray(state["pinned_at"], np.int64)
        arrays.update({f"pinned/{f}": getattr(state["pinned_states"], f) for f in ("regs", "simd", "scratch")})
    if brain is not None:
        arrays["brain"] = np.frombuffer(brain, np.uint8)
    return doc, arrays


def _lineage_to_arrays(lineage) -> tuple[list[str], dict[str, np.ndarray]]:
    """(operator labels sorted, ``lineage/*`` arrays) of a lineage mapping (an
    ``evolve.lineage.Lineage``'s columns as they are, a dict record by record)."""
    if hasattr(lineage, "columns"):
        cols = lineage.columns()
        used = np.unique(cols["op"])
        labels = [lineage.ops[k] for k in used.tolist()]
        order = sorted(range(len(labels)), key=labels.__getitem__)
        rank = np.empty(len(labels), np.int64)
        rank[order] = np.arange(len(labels))
        return [labels[k] for k in order], {
            "lineage/uid": cols["uid"].copy(), "lineage/parents": np.stack([cols["p0"], cols["p1"]], axis=1),
            "lineage/op": rank[np.searchsorted(used, cols["op"])], "lineage/gen": cols["gen"].copy(),
            "lineage/length": cols["length"].copy()}
    ops = sorted({rec[1] for rec in lineage.values()})
    index = {op: i for i, op in enumerate(ops)}
    parents = np.full((len(lineage), 2), -1, np.int64)
    for row, rec in enumerate(lineage.values()):
        if len(rec[0]) > 2:
            raise CheckpointError(f"a genome with {len(rec[0])} parents cannot be checkpointed")
        parents[row, :len(rec[0])] = rec[0]
    return ops, {"lineage/uid": np.fromiter(lineage, np.int64, len(lineage)), "lineage/parents": parents,
                 "lineage/op": np.array([index[r[1]] for r in lineage.values()], np.int64),
                 "lineage/gen": np.array([r[2] for r in lineage.values()], np.int64),
                 "lineage/length": np.array([r[3] for r in lineage.values()], np.int64)}


def decode(doc: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, bytes | None]:
    """``(state, brain bytes or None)`` of :func:`encode`'s parts; CheckpointError when they
    do not make one."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError("not a Melvin checkpoint document")
    if doc.get("version") != VERSION:
        raise CheckpointError(f"checkpoint version {doc.get('version')!r}; this Melvin reads {VERSION}")
    try:
        py = doc["random"]["python"]
        state = {"version": VERSION, "config": doc["config"],
                 **{k: doc[k] for k in ("gen", "uid", "evaluations", "elapsed", "refuted")},
                 "wall": doc.get("wall", doc["elapsed"]),
                 "rng": (py[0], tuple(py[1]), py[2]), "np_rng": doc["random"]["numpy"],
                 "hof": _hof_from_json(doc["hall_of_fame"]),
                 "solved": individual_from_json(doc["solved"]) if doc["solved"] is not None else None,
                 "verification": doc["verification"], "optimize": doc.get("optimize"),
                 "alphabet_version": doc.get("alphabet_version", 1), "restart": doc.get("restart"), "enumerated": doc.get("enumerated"), "synth": doc.get("synth"),
                 "rows": {k[5:]: np.array(v) for k, v in arrays.items() if k.startswith("rows/")},
                 **{k: np.array(arrays[k]) for k in _CASES}}
        ops = doc["lineage_ops"]
        parents = arrays["lineage/parents"].tolist()
        state["lineage"] = {uid: (tuple(p for p in par if p >= 0), ops[op], g, n) for uid, par, op, g, n in zip(
            arrays["lineage/uid"].tolist(), parents, arrays["lineage/op"].tolist(),
            arrays["lineage/gen"].tolist(), arrays["lineage/length"].tolist())}
        state["validated_fail"] = set(_genomes_from_arrays(arrays["validated_fail/genes"],
                                                           arrays["validated_fail/length"]))
        if "pinned/at" in arrays:
            from core.executors.batch_state import CaseStates
            state["pinned_at"] = np.array(arrays["pinned/at"])
            state["pinned_states"] = CaseStates(*(np.array(arrays[f"pinned/{f}"]) for f in ("regs", "simd", "scratch")))
        brain = arrays["brain"].tobytes() if doc["brain"] else None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint is incomplete or inconsistent ({type(exc).__name__}: {exc})") from None
    return state, brain


# --------------------------------------------------------------------- one byte string
def to_bytes(doc: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """Both parts as one safetensors byte string (the document in its metadata)."""
    from safetensors.numpy import save
    return save(arrays, metadata={_META_KEY: dumps(doc)})


def from_bytes(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The parts of :func:`to_bytes`; CheckpointError on anything else."""
    from safetensors.numpy import load
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + n])
        doc = json.loads(header["__metadata__"][_META_KEY])
        return doc, load(bytes(blob))
    except Exception as exc:     # a defective blob may fail in any of the steps above
        raise CheckpointError(f"not a Melvin checkpoint ({type(exc).__name__})") from None
