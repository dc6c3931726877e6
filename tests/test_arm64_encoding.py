"""The vectorised arm64 gene encoder against keystone, the reference it learns from."""
import random

import numpy as np
import pytest

from core.asm import assemble
from evolve.alphabets import arm64_encoder as E
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
                    "r2sh": (0, 31, 32, 63), "r2mask": (0, 15, 1301, 1302, 5333), "raw": (0, 2**32 - 1),
                    "sha": (0, 30, 31, 62, 63, 188), "shl": (0, 62, 189, 251), "ext": (0, 4, 15, 39),
                    "ccmp": (0, 15, 191), "ccmpi": (0, 31, 511, 6143), "bfx": (0, 63, 64, 2047, 2048, 4095),
                    "bfi": (0, 63, 1984, 4032, 4095), "extr": (0, 31, 32, 63),
                    "tbz": (0, 31, 32, 63, 64, 255)}.get(entry.kind, (0,)):
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


def test_every_logical_immediate_matches_keystone():
    """Check the computed mask tables on the whole space (5,334 and 1,302 masks), not a sample."""
    from evolve.alphabets.arm64 import MASKS, MASKS32, op_index
    alphabet = alphabet_for("arm64")
    for width, masks in ((64, MASKS), (32, MASKS32)):
        genome = [(op_index("eor", "r2mask", width), 1, 2, 0, imm) for imm in range(len(masks))]
        assert alphabet.encode(genome) == assemble(alphabet.render(genome), "arm64")


def test_the_alphabet_has_what_compilers_emit():
    """Check the forms issue 14 names are genes: shifted and extended operands, W forms, flags,
    carries, ccmp, bitfields, extr, long multiplies, tbz, NEON bit counting."""
    from evolve.alphabets.arm64 import OPS
    names = {(o.name, o.kind, o.width) for o in OPS}
    for want in [("add", "sha", 64), ("eor", "shl", 32), ("sub", "ext", 64), ("adds", "r3", 32),
                 ("ands", "r2mask", 64), ("bics", "shl", 64), ("adc", "r3", 64), ("sbcs", "r3", 32),
                 ("ngc", "r2", 64), ("ccmp", "ccmp", 64), ("ccmn", "ccmpi", 32), ("ubfx", "bfx", 64),
                 ("sbfiz", "bfi", 32), ("bfi", "bfi", 64), ("bfxil", "bfx", 32), ("extr", "extr", 64),
                 ("cls", "r2", 32), ("rev16", "r2", 64), ("rev32", "r2", 64), ("smaddl", "r4", 64),
                 ("umulh", "r3", 64), ("movn", "movw", 32), ("tbnz", "tbz", 64), ("cnt", "neon", 64),
                 ("addv", "neon", 64), ("uaddlv", "neon", 64), ("umov", "neon", 64), ("fmov", "neon", 64)]:
        assert want in names, want
    assert len({(o.name, o.kind, o.width, o.syntax, o.prefix) for o in OPS}) == len(OPS)   # no duplicates


def test_every_gene_round_trips_through_capstone_and_runs_in_the_interpreter():
    """Check that capstone reads every operation's word back to a line keystone assembles to the
    same word, and that the interpreter tier's decoder supports it (no trip to Unicorn)."""
    from core.asm import disassemble
    from core.executors.interp.decoder import decode
    from evolve.alphabets.arm64 import OPS
    rng = random.Random(11)
    alphabet = alphabet_for("arm64", n_regs=8)
    outside = []
    for op, entry in enumerate(OPS):
        if entry.kind == "raw":
            continue
        genome = [alphabet.random_operands(op, rng) for _ in range(40)]
        code = alphabet.encode(genome)
        lines = disassemble(code, "arm64")
        raw = [line for line in lines if line.startswith(".word")]
        if entry.syntax.startswith("{d}, {zr}"):
            # capstone prints orr Xd, XZR, #mask as "mov Xd, #mask", which keystone assembles as
            # movz/movn where it can: same value, another word, so the listing keeps the word
            assert all("// mov " in line for line in raw), raw
        else:
            assert not raw, (entry, raw)
        assert assemble(lines, "arm64") == code
        words = np.frombuffer(code, "<u4").astype(np.uint32)
        offsets = np.arange(len(words) + 1, dtype=np.int64)
        _ctl, _imm, supported = decode(words, offsets, 256, 2048)
        if not supported.all():
            outside.append(entry)
    assert [o for o in outside if o.kind != "neon"] == []


def test_encode_array_equals_encode_many():
    """Check that a population's array form (genes [n, L, 5], lengths, padding ignored) encodes
    to the same codes as its gene lists, empty genomes included."""
    alphabet = alphabet_for("arm64", n_regs=4)
    rng = random.Random(9)
    n, width = 300, 16
    lengths = np.array([rng.randint(0, width) for _ in range(n)], np.int64)
    genes = np.full((n, width, 5), 7, np.int64)           # padding beyond each length: junk
    for k in range(n):
        for j in range(lengths[k]):
            genes[k, j] = alphabet.random_gene(rng)
    lists = [[tuple(int(v) for v in genes[k, j]) for j in range(lengths[k])] for k in range(n)]
    assert list(alphabet.encode_array(genes, lengths)) == list(alphabet.encode_many(lists))
    assert list(alphabet.encode_array(genes[:, :, :][::2], lengths[::2])) == list(alphabet.encode_many(lists[::2]))
