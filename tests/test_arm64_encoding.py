"""The vectorised arm64 gene encoder against keystone, the reference it learns from."""
import random

import numpy as np
import pytest

from core.asm import assemble
from evolve.alphabets import arm64 as E
from evolve.alphabets.arm64 import OPS as ARM64_ALPHABET
from evolve.alphabets.arm64 import encode_gene as _encode_arm64
from evolve.genes import alphabet_for


@pytest.mark.parametrize("n_regs", [2, 4, 8])
def test_every_operation_matches_keystone_on_random_operands(n_regs):
    rng = random.Random(n_regs)
    alphabet = alphabet_for("arm64", n_regs=n_regs)
    genes, remaining = [], []
    for op in range(len(ARM64_ALPHABET)):
        for _ in range(60):
            gene = list(alphabet.random_operands(op, rng))
            gene[1:4] = [rng.randrange(50) for _ in range(3)]   # register indices wrap modulo n_regs
            genes.append(tuple(gene))
            remaining.append(rng.randint(1, 20))
    words = E.tables(alphabet.scratch_slots).encode(np.array(genes, np.int64), np.array(remaining), n_regs)
    for gene, rem, word in zip(genes, remaining, words.tolist()):
        want = int.from_bytes(_encode_arm64(gene, alphabet.regs, alphabet.scratch_slots, rem), "little")
        assert word == want, (ARM64_ALPHABET[gene[0]], gene, rem, hex(word), hex(want))


def test_edge_immediates_match_keystone():
    alphabet = alphabet_for("arm64")
    genes = []
    for op, entry in enumerate(ARM64_ALPHABET):
        for imm in {"r2i12": (0, 1, 4095), "cmpi": (0, 4095), "movw": (0, 0xFFFF, 0x10000, 0x3FFFF),
                    "mem": (0, 30, 31, 1 << 16), "bcond": (1, 11, 12, 47, 48), "cbz": (1, 4),
                    "r2sh": (0, 63), "r2mask": (0, 15), "raw": (0, 2**32 - 1)}.get(entry.kind, (0,)):
            genes.append((op, 3, 2, 1, imm))
    code = alphabet.encode(genes)
    assert code == assemble(alphabet.render(genes), "arm64")


def test_encode_many_equals_assembling_rendered_genomes():
    rng = random.Random(7)
    alphabet = alphabet_for("arm64", n_regs=5)
    genomes = [[alphabet.random_gene(rng) for _ in range(rng.randint(0, 16))] for _ in range(300)]
    codes = alphabet.encode_many(genomes)
    assert len(codes) == len(genomes)
    for genome, code in zip(genomes, codes):
        assert code == (assemble(alphabet.render(genome), "arm64") if genome else b"")
        assert alphabet.encode(genome) == code
