"""Tests of genes and operators: every gene assembles, branches stay forward, limits hold."""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.asm import assemble, disassemble
from evolve import operators as ops
from evolve.genes import alphabet_for


@pytest.mark.parametrize("isa", ["arm64", "x86_64"])
def test_every_gene_kind_assembles(isa):
    """Check that every operation of the alphabet renders to a line keystone accepts."""
    alphabet = alphabet_for(isa)
    rng = random.Random(1)
    for op in range(alphabet.n_genes):
        for _ in range(20):
            gene = alphabet.random_operands(op, rng)
            genome = [gene, alphabet.random_operands(0, rng)]
            assert alphabet.encode(genome) == assemble(alphabet.render(genome), isa)


def test_arm64_round_trip_of_gene_lines():
    """Check that assemble -> disassemble -> assemble is stable for the arm64 gene alphabet."""
    alphabet = alphabet_for("arm64")
    rng = random.Random(2)
    for _ in range(300):
        genome = [alphabet.random_gene(rng) for _ in range(5)]
        code = alphabet.encode(genome)
        assert assemble(disassemble(code)) == code


def test_branches_are_forward_and_inside():
    """Check that branch genes target a later instruction or the end, never beyond."""
    alphabet = alphabet_for("arm64")
    b = next(i for i, op in enumerate(alphabet.ops) if op.kind == "bcond")
    genome = [(b, 0, 0, 0, 47), (0, 0, 0, 1, 0), (b, 0, 0, 0, 0)]
    lines = alphabet.render(genome)
    assert lines[0].endswith("#12") and lines[2].endswith("#4")   # both land on the return


def test_mutations_respect_length_limits():
    """Check that mutations never produce an empty genome or exceed max_len."""
    alphabet = alphabet_for("arm64")
    rng = random.Random(3)
    draw = lambda prefix: alphabet.random_gene(rng)  # noqa: E731
    for name, (fn, _) in ops.MUTATIONS.items():
        for length in (1, 2, 8):
            genes = [alphabet.random_gene(rng) for _ in range(length)]
            out = fn(list(genes), rng, draw, alphabet, 8)
            assert 1 <= len(out) <= 8, name
    for name, (fn, _) in ops.CROSSOVERS.items():
        a = [alphabet.random_gene(rng) for _ in range(8)]
        b = [alphabet.random_gene(rng) for _ in range(8)]
        for _ in range(50):
            child = fn(a, b, rng, 8)
            assert 1 <= len(child) <= 8 and set(child) <= set(a) | set(b), name


def test_flip_changes_only_raw_words():
    """Check that the raw-word bit flip flips 1-3 bits of a raw gene and nothing else."""
    alphabet = alphabet_for("arm64")
    raw = next(i for i, op in enumerate(alphabet.ops) if op.kind == "raw")
    genes = [(0, 1, 2, 3, 0), (raw, 0, 0, 0, 0x12345678)]
    out = ops.mut_flip(list(genes), random.Random(4), None, alphabet, 8)
    assert out[0] == genes[0]
    assert 1 <= bin(out[1][4] ^ 0x12345678).count("1") <= 3


def test_selection():
    """Check tournament picks the cheapest entrant and lexicase keeps a specialist."""
    rng = random.Random(5)
    costs = np.array([5.0, 1.0, 3.0])
    assert ops.sel_tournament(costs, 20, rng, size=3).count(1) > 10
    errors = np.array([[0, 9, 5], [9, 0, 5], [1, 1, 5]])   # two specialists and a generalist
    picks = ops.sel_lexicase(errors, 60, rng)
    assert picks.count(0) > 5 and picks.count(1) > 5 and picks.count(2) == 0
