"""Tests of evolve.checkpoint: an engine's state as JSON and arrays, restored exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evolve import checkpoint as ckpt
from evolve.config import RunConfig
from evolve.engine import build


def _individual_fields(ind) -> dict:
    return {"genes": list(ind), "fitness": ind.fitness.values,
            **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ind.__dict__.items() if k != "fitness"}}


@pytest.fixture(scope="module")
def engine():
    cfg = RunConfig(task="avg", pop=30, seed=11, generations=4, time_limit=None, backend="emulated")
    eng = build(cfg)
    eng.start()
    for _ in range(3):
        eng.step()
    eng.validated_fail.add(((1, 2, 3, 4, 5),))       # a corner case: a one-gene genome
    yield eng
    eng.evaluator.close()


def test_state_round_trips_through_json_and_arrays(engine):
    """Check that decode(encode(state)) gives back every part of the state, types included."""
    state = engine.state()
    brain = engine.brain.to_bytes({"generation": engine.gen})
    doc, arrays = ckpt.encode(state, brain)
    json.loads(ckpt.dumps(doc))                          # strict JSON
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    back, brain_back = ckpt.decode(*ckpt.from_bytes(ckpt.to_bytes(doc, arrays)))
    assert brain_back == brain
    for key in ("gen", "uid", "evaluations", "elapsed", "refuted", "config", "rng", "np_rng", "lineage",
                "validated_fail", "verification"):
        assert back[key] == state[key], key
    for key in ("train_x", "train_y", "valid_x", "valid_y"):
        assert back[key].dtype == state[key].dtype and np.array_equal(back[key], state[key])
    for key, value in state["rows"].items():
        assert back["rows"][key].dtype == value.dtype and np.array_equal(back["rows"][key], value, equal_nan=True)
        assert back["rows"][key].flags.writeable
    assert [_individual_fields(i) for i in back["hof"]] == [_individual_fields(i) for i in state["hof"]]
    assert [k.values for k in back["hof"].keys] == [k.values for k in state["hof"].keys]
    assert all(type(i.parents) is tuple and i.errors.dtype == np.uint8 for i in back["hof"])
    assert len(ckpt.dumps(doc)) < 40_000             # history (metrics, logbook) is not in it


def test_restored_engine_continues_as_the_original(engine):
    """Check that an engine restored from the decoded state makes the same next generations."""
    doc, arrays = ckpt.encode(engine.state(), engine.brain.to_bytes({"generation": engine.gen}))
    state, brain = ckpt.decode(doc, arrays)
    from core.brain import Brain
    twin = build(engine.cfg, evaluator=engine.evaluator)
    twin.restore(state, Brain.from_bytes(brain), settle=False)
    for _ in range(2):
        a, b = engine.step(), twin.step()
        assert {k: v for k, v in a.items() if k not in ("evals_per_s", "seconds")} == \
               {k: v for k, v in b.items() if k not in ("evals_per_s", "seconds")}


@pytest.mark.parametrize("blob", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"garbage" * 10])
def test_not_a_checkpoint_raises_checkpoint_error(blob):
    """Check that bytes that are no checkpoint raise CheckpointError, never anything else."""
    with pytest.raises(ckpt.CheckpointError):
        ckpt.from_bytes(blob)


def test_missing_array_raises_checkpoint_error(engine):
    """Check that a document whose arrays lack one raises CheckpointError naming it."""
    doc, arrays = ckpt.encode(engine.state(), None)
    del arrays["lineage/op"]
    with pytest.raises(ckpt.CheckpointError, match="lineage/op"):
        ckpt.decode(doc, arrays)


def test_a_checkpoint_of_the_first_alphabet_resumes_with_the_same_instructions():
    """Check that genes of alphabet version 1 (16 logical masks) are translated on restore: the
    population, hall of fame and refused genomes encode to the words they encoded to then."""
    from core.asm import assemble
    from evolve.alphabets import arm64
    from evolve.config import RunConfig
    from evolve.engine import build
    engine = build(RunConfig(task="clear_lowest", pop=20, generations=1, backend="emulated"))
    engine.start()
    state = engine.state()
    mask_op = arm64.op_index("and", "r2mask")
    old = np.zeros_like(state["rows"]["genes"])          # add x0, x0, x0 ...
    old[:, 0] = (mask_op, 1, 0, 2, 8)        # and x1, x0, #mask 8 of version 1: 0xfffffffffffffffe
    state["rows"]["genes"] = old
    state["hof"].items, state["hof"].keys = [], []
    state["validated_fail"] = {((mask_op, 1, 0, 2, 8),)}
    state.pop("alphabet_version")           # as a version-1 checkpoint has it
    fresh = build(RunConfig(task="clear_lowest", pop=20, generations=1, backend="emulated"))
    fresh.restore(state, None, settle=False)
    first = fresh.rows.genes[0, 0].tolist()
    assert first[:4] == [mask_op, 1, 0, 2] and arm64.MASKS[first[4]] == 0xFFFFFFFFFFFFFFFE
    assert fresh.alphabet.encode([tuple(first)]) == assemble(["and x1, x0, #0xfffffffffffffffe"])
    assert fresh.state()["alphabet_version"] == arm64.GENES.version
    assert fresh.validated_fail == {((mask_op, 1, 0, 2, first[4]),)}
    with pytest.raises(ValueError, match="version 7"):
        fresh.restore(dict(state, alphabet_version=7), None, settle=False)
