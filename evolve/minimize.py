"""Minimisation: remove introns, the instructions a program's results do not depend on.

A program is a list of units (genes when the run recorded them, else assembly lines) with an
``encode`` function to machine code. A unit is an intron when the program without it is
*equivalent*: same outcome class and same output as the original on every case, training and
validation, run under two different seeds of the random non-argument registers (so a deletion
that only looks harmless because of one draw of register garbage is refused), and, when the
caller gives ``accept`` (replay gives a proof, :mod:`evolve.verify`), taken by it: a condition
that nearly every random register value satisfies passes any number of seeds. For a solved
genome, equivalent means "still correct on every case".

The search is greedy and batch-first, as evoasm's intron removal: each round runs every single
deletion of the current program in one executor batch on the training cases, verifies the
survivors on the validation cases (another batch), and keeps the first that passes; when no single
deletion is equivalent it tries every pair once, and stops when no pair is either. Genes keep branch distances counted in genes, so deleting
a gene re-renders the branches around it; assembly lines keep byte distances, which execution
checks like everything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from core.isa import get_isa
from core.outcome import Outcome
from evolve.fitness import reads_entry_flags

#: Seeds of the random registers for the training and validation checks (arbitrary, distinct).
SEEDS = (0x6D31, 0x6D32)


@dataclass
class Minimized:
    """The shortest equivalent program found."""

    units: list                    #: the remaining genes or assembly lines
    code: bytes
    removed: list[int]             #: indices (in the original) of the units removed, ascending
    rounds: int                    #: executor batches run on the training cases

    @property
    def length(self) -> int:
        return len(self.units)


def reference(executor, code: bytes, cases: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(outputs uint64 [n], outcomes uint8 [n])`` of ``code`` on ``cases``."""
    res = executor.run([code], cases, seed=seed)
    return res.outputs[0], res.outcomes[0]


def equivalent_rows(outputs: np.ndarray, outcomes: np.ndarray, ref_out: np.ndarray,
                    ref_cls: np.ndarray) -> np.ndarray:
    """bool [n_programs]: rows whose every case has the reference's class and, where that class
    is OK, its output (a crash's register contents are not a result)."""
    same_cls = outcomes == ref_cls[None, :]
    same_out = (outputs == ref_out[None, :]) | (ref_cls[None, :] != Outcome.OK)
    return (same_cls & same_out).all(axis=1)


def minimize(units: Sequence, encode: Callable[[list], bytes], executor, train_x: np.ndarray,
             valid_x: np.ndarray, isa=None, accept: Callable[[bytes], bool] | None = None) -> Minimized:
    """Greedy intron removal (see the module docstring).

    Parameters
    ----------
    units : sequence
        Genes (tuples) or assembly lines of the program.
    encode : callable
        ``encode(list_of_units) -> bytes``; may raise ``ValueError`` (such a candidate is skipped).
    executor : core executor
        Runs the candidates (``run(codes, inputs, seed=...)``).
    train_x, valid_x : uint64 [n, arity]
        Cases for the batch screen and for verification.

    isa : Isa or name, optional
        When given, no deletion may leave code that reads the condition flags before setting
        them (``evolve.fitness.reads_entry_flags``): every executor starts a case with the same
        flags, so such a deletion would look equivalent on every case and still be wrong.
    accept : callable, optional
        ``accept(code) -> bool``, asked of a deletion that passed every case before it is kept:
        e.g. a proof, since register garbage that happens to satisfy a condition the deleted
        instructions established (``cmp x1, #13`` with a random x1) passes any number of seeds.

    Returns
    -------
    Minimized
    """
    units = list(units)
    if isa is not None:
        isa = get_isa(isa)
        if reads_entry_flags(encode(units), isa):
            isa = None          # it already does: nothing to protect
    refs = []
    for cases, seed in ((train_x, SEEDS[0]), (valid_x, SEEDS[1])):
        refs.append(reference(executor, encode(units), cases, seed))
    alive = list(range(len(units)))
    rounds = 0
    while alive:
        # Single deletions first; only when none is equivalent, pairs (an intron pair such as
        # ``lsl x1, x2, #15; lsr x0, x0, x1`` whose halves are not introns alone).
        found = None
        for width in (1, 2):
            found = _round(units, alive, width, encode, executor, train_x, valid_x, refs, isa, accept)
            rounds += 1
            if found is not None:
                break
        if found is None:
            break
        alive = found
    kept = [units[i] for i in alive]
    removed = sorted(set(range(len(units))) - set(alive))
    return Minimized(kept, encode(kept), removed, rounds)


def _round(units: list, alive: list[int], width: int, encode, executor, train_x, valid_x, refs, isa=None,
           accept=None):
    """The first deletion of ``width`` units from ``alive`` that stays equivalent (and that
    ``accept`` takes), or None."""
    from itertools import combinations
    candidates, codes = [], []
    for drop in combinations(range(len(alive)), width):
        trial = [i for k, i in enumerate(alive) if k not in drop]
        try:
            code = encode([units[i] for i in trial])
        except ValueError:
            continue
        if isa is not None and reads_entry_flags(code, isa):
            continue
        codes.append(code)
        candidates.append(trial)
    if not candidates:
        return None
    res = executor.run(codes, train_x, seed=SEEDS[0])
    passed = np.flatnonzero(equivalent_rows(res.outputs, res.outcomes, *refs[0]))
    if passed.size == 0:
        return None
    verify = executor.run([codes[i] for i in passed], valid_x, seed=SEEDS[1])
    ok = np.flatnonzero(equivalent_rows(verify.outputs, verify.outcomes, *refs[1]))
    for k in ok.tolist():
        if accept is None or accept(codes[int(passed[k])]):
            return candidates[int(passed[k])]
    return None
