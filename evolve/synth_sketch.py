"""Where the component encoding's multisets come from (:mod:`evolve.synth_components`), without
being told the answer: sketches of the population's best genomes.

Why: the location-variable encoding needs a multiset of forms, each used once; with the right
one it finds p19 in seconds, but under the compilers' measured mix (the gene weights,
:mod:`evolve.alphabets.arm64_ops`) p19's multiset is the ~42,000th of six forms, after ~66,000
shorter ones (``scripts/exp_components.py p19 --rank``), at ~3 s per wrong multiset: enumeration
in prior order does not reach it. The genetic search's best genomes are a cheaper guess (the
way STOKE and Lens seed one search with another): the forms of their live instructions, then
that multiset with one form dropped, added or swapped, the added ones in the prior's order.

Reading a genome's forms never looks at the task: the task's reference and symbolic twin stay
the oracle the candidates are checked against.
"""
from __future__ import annotations

from evolve import peephole
from evolve import synth_components as SC

#: the alphabet's kinds and names that are a form of :data:`evolve.synth_ops.FORMS`
_R3 = {"add", "sub", "and", "orr", "eor", "bic", "orn", "mul", "udiv"}
_R3_SHIFTS = {"lsl": "lslv", "lsr": "lsrv", "asr": "asrv"}
_IMM_SHIFTS = {"lsl": "lsli", "lsr": "lsri", "asr": "asri"}
#: the most components a multiset may have (the encoding's calls grow steeply with it)
MAX_COMPONENTS = 8


def component(entry) -> str | None:
    """The component an alphabet operation (``Op``) is, or None (not a form of the encoding)."""
    name, kind = entry.name, entry.kind
    if kind == "r3":
        return name if name in _R3 else _R3_SHIFTS.get(name)
    if kind in ("sha", "shl"):           # a shifted-register operand (its amount is never 0)
        return name + SC.SHIFTED if SC.valid(name + SC.SHIFTED) else None
    if kind == "ext":
        return name if name in ("add", "sub") else None
    if kind == "r2":
        return name if name in ("neg", "mvn", "clz") else None
    if kind == "r2i12":
        return {"add": "addi", "sub": "subi"}.get(name)
    if kind == "r2sh":
        return _IMM_SHIFTS.get(name)
    if kind == "movw":
        return "movi" if name == "movz" else None
    return None


def prior(alphabet) -> list[str]:
    """Components, the most likely first: the summed weights of the alphabet's operations that
    are each (the measured compilers' mix)."""
    weight: dict[str, float] = {}
    for entry in alphabet.ops:
        c = component(entry)
        if c is not None:
            weight[c] = weight.get(c, 0.0) + entry.weight
    return sorted(weight, key=lambda c: (-weight[c], c))


def sketch(genome, alphabet) -> list[str]:
    """The components of ``genome``'s live instructions (those that write a register read later
    or the result), in order; instructions that are no component are left out."""
    genome = [tuple(int(v) for v in g) for g in genome]
    if not genome:
        return []
    effs = peephole.effects(alphabet.encode(genome))
    if len(effs) != len(genome):
        return []
    live = peephole.live_after(effs, 0, branches=True)
    out = []
    for gene, (_reads, writes), after in zip(genome, effs, live):
        c = component(alphabet.ops[gene[0]])
        if c is not None and writes & after:
            out.append(c)
    return out


def neighbours(multiset, order: list[str], adds: int = 6):
    """``multiset`` (if it fits), then with each distinct component dropped, then with one of the
    first ``adds`` components of ``order`` added, then each distinct one swapped for one of them."""
    base = sorted(multiset)
    distinct = sorted(set(base))
    if 0 < len(base) <= MAX_COMPONENTS:
        yield base
    for c in distinct:
        rest = list(base)
        rest.remove(c)
        if 0 < len(rest) <= MAX_COMPONENTS:
            yield rest
    if len(base) < MAX_COMPONENTS:
        for c in order[:adds]:
            yield sorted(base + [c])
    for c in distinct if len(base) <= MAX_COMPONENTS else ():
        for d in order[:adds]:
            if d != c:
                rest = list(base)
                rest.remove(c)
                yield sorted(rest + [d])
