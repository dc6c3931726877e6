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


def _variation(alphabet, max_len):
    return ops.Variation(alphabet, max_len), np.cumsum(alphabet.base_weights())[None, :]


def test_init_genomes_have_drawn_genes_within_limits():
    """Check that init makes 1..init_len genes whose operands follow the alphabet's ranges."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 16)
    genes, lengths = ops.init_genomes(var, 500, 8, table, random.Random(1))
    assert lengths.min() == 1 and lengths.max() == 8
    for k in range(500):
        for gene in genes[k, :lengths[k]].tolist():
            rows = alphabet.operand_table()[gene[0]]
            assert all(0 <= r < len(alphabet.regs) for r in gene[1:4])
            if rows[3] >= 0:
                assert gene[4] >> 28 == rows[3]
            else:
                assert rows[1] <= gene[4] <= rows[2]
        assert not genes[k, lengths[k]:].any()
    drawn = genes[lengths[:, None] > np.arange(genes.shape[1])][:, 0]
    weights = np.asarray(alphabet.base_weights())
    expected = weights / weights.sum() * drawn.size
    assert set(np.flatnonzero(expected >= 10).tolist()) <= set(drawn.tolist())   # P(miss) < e^-10 each
    assert len(set(drawn.tolist())) > 0.5 * alphabet.n_genes


def _kernel(*args, macros=ops.NO_MACROS):
    """``ops._vary_kernel(*args)`` with a macro table; its first four results."""
    return ops._vary_kernel(*args, macros.genes, macros.length, macros.cum)[:4]


@pytest.mark.parametrize("kind", [k for k, name in enumerate(ops.MUTATIONS) if name != "macro"])
def test_each_mutation_keeps_limits_and_changes_what_it_should(kind):
    """Check one mutation kind at a time: lengths stay in [1, max_len], insert/delete change the
    length by one, swap/tweak/replace keep it, and the child differs from its parent often."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 8)
    rng = random.Random(3)
    parents, lengths = ops.init_genomes(var, 300, 8, table, rng)
    n = len(parents)
    first = np.arange(n)
    second = np.full(n, -1)
    cx = np.full(n, -1)
    mut = np.full(n, kind)
    out, out_len, fresh, same = _kernel(parents, lengths, first, second, cx, mut, ops.split_table(table), var.operands,
                                       var.raw_ops, var.n_regs, 8, 12345)
    assert out_len.min() >= 1 and out_len.max() <= 8
    name = list(ops.MUTATIONS)[kind]
    delta = out_len - lengths
    if name == "insert":
        assert set(delta.tolist()) <= {0, 1} and (delta[lengths < 8] == 1).all()
    elif name == "delete":
        assert set(delta.tolist()) <= {0, -1} and (delta[lengths > 1] == -1).all()
    else:
        assert (delta == 0).all()
    assert (~same).mean() > 0.3, name
    for k in range(n):   # fresh marks exactly the genes found nowhere in the parent
        parent = set(map(tuple, parents[k, :lengths[k]].tolist()))
        for i, gene in enumerate(out[k, :out_len[k]].tolist()):
            assert fresh[k, i] == (tuple(gene) not in parent)


@pytest.mark.parametrize("kind", range(len(ops.CROSSOVERS)))
def test_each_crossover_takes_genes_only_from_its_parents(kind):
    """Check that crossover children are 1..max_len genes, all taken from the two parents."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 8)
    parents, lengths = ops.init_genomes(var, 200, 8, table, random.Random(4))
    n = len(parents)
    first, second = np.arange(n), np.roll(np.arange(n), 1)
    out, out_len, fresh, same = _kernel(parents, lengths, first, second, np.full(n, kind),
                                        np.full(n, -1), ops.split_table(table), var.operands, var.raw_ops,
                                        var.n_regs, 8, 99)
    assert out_len.min() >= 1 and out_len.max() <= 8
    assert not fresh.any()
    for k in range(n):
        both = set(map(tuple, parents[k, :lengths[k]].tolist())) | set(map(tuple, parents[second[k], :lengths[second[k]]].tolist()))
        assert set(map(tuple, out[k, :out_len[k]].tolist())) <= both


def test_vary_is_reproducible_and_follows_the_draw_table():
    """Check same rng state -> same offspring, and that a zero-weight operation is never drawn."""
    alphabet = alphabet_for("arm64")
    var = ops.Variation(alphabet, 16)
    weights = np.asarray(alphabet.base_weights())
    weights[0] = 0.0    # "add" never drawn
    table = np.cumsum(weights)[None, :]
    genes, lengths = ops.init_genomes(var, 400, 16, table, random.Random(5))
    assert 0 not in set(genes[np.arange(16)[None, :] < lengths[:, None]][:, 0].tolist())
    runs = [ops.vary(var, genes, lengths, np.arange(400), 0.3, 0.9, table, random.Random(6)) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_macro_mutation_inserts_a_macro_whole_with_its_registers_renamed():
    """Check that the macro mutation puts one library entry in whole, its registers renamed by
    one permutation of the working set (a raw word as it is): inserted where there is room,
    else written over as many genes; that it records which, and that without a library no
    child is made by it."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 8)
    parents, lengths = ops.init_genomes(var, 400, 8, table, random.Random(8))
    raw = alphabet.raw_op(0x12345678)
    lib = np.zeros((2, 3, 5), np.int64)
    lib[0, :2] = [(1, 1, 0, 0, 1), (4, 0, 0, 1, 0)]
    lib[1, :3] = [(0, 2, 0, 1, 0), (raw, 0, 0, 0, 0x12345678), (12, 3, 2, 2, 0)]
    macros = ops.MacroTable(lib, np.array([2, 3]), np.array([1.0, 3.0]))     # cumulative: weights 1 and 2
    n = len(parents)
    out, out_len, fresh, same, used = ops._vary_kernel(
        parents, lengths, np.arange(n), np.full(n, -1), np.full(n, -1), np.full(n, ops.MUT_MACRO),
        ops.split_table(table), var.operands, var.raw_ops, var.n_regs, 8, 21, macros.genes, macros.length, macros.cum)
    assert (used >= 0).all() and 0.2 < (used == 0).mean() < 0.45     # weights 1 : 2
    inserted = over = 0
    for k in range(n):
        m, size, na = used[k], macros.length[used[k]], lengths[k]
        child, parent = out[k, :out_len[k]].tolist(), parents[k, :na].tolist()
        if na + size <= 8:
            assert out_len[k] == na + size
            starts = [i for i in range(out_len[k] - size + 1) if child[:i] + child[i + size:] == parent]
            inserted += 1
        else:
            starts = [i for i in range(max(na - size, 0) + 1)
                      if out_len[k] == max(na, i + size) and child[:i] == parent[:i] and child[i + size:] == parent[i + size:]]
            over += 1
        ok = False
        for i in starts:
            perm, good = {}, True
            for t in range(size):
                want, got = lib[m, t].tolist(), child[i + t]
                if want[0] == raw:
                    good &= got == want
                    continue
                good &= got[0] == want[0] and got[4] == want[4]
                for f in (1, 2, 3):
                    good &= perm.setdefault(want[f], got[f]) == got[f]
            ok |= good and len(set(perm.values())) == len(perm)
        assert ok, (k, child, parent)
    assert inserted > 50 and over > 50
    plain = ops.vary(var, parents, lengths, np.arange(n), 0.0, 1.0, table, random.Random(1))
    assert not (plain.mut == ops.MUT_MACRO).any() and (plain.macro == -1).all()


def test_flip_changes_only_raw_words():
    """Check that the raw-word bit flip flips 1-3 bits of a raw gene and nothing else, and that
    the gene's token follows the word's new top nibble."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 8)
    raw = alphabet.raw_op(0x12345678)
    parents = np.zeros((200, 8, 5), np.int64)
    parents[:, 0] = (0, 1, 2, 3, 0)
    parents[:, 1] = (raw, 0, 0, 0, 0x12345678)
    lengths = np.full(200, 2)
    n = 200
    out, out_len, _, _ = _kernel(parents, lengths, np.arange(n), np.full(n, -1), np.full(n, -1),
                                 np.full(n, list(ops.MUTATIONS).index("flip")), ops.split_table(table), var.operands,
                                 var.raw_ops, var.n_regs, 8, 7)
    assert (out[:, 0] == parents[:, 0]).all()
    flips = [bin(int(w) ^ 0x12345678).count("1") for w in out[:, 1, 4]]
    assert min(flips) >= 1 and max(flips) <= 3 and len(set(flips)) > 1
    assert all(alphabet.raw_op(int(w)) == int(t) for t, w in zip(out[:, 1, 0], out[:, 1, 4]))


def test_selection():
    """Check tournament picks the cheapest entrant and lexicase keeps a specialist."""
    rng = random.Random(5)
    costs = np.array([5.0, 1.0, 3.0])
    assert ops.sel_tournament(costs, 20, rng, size=3).count(1) > 10
    errors = np.array([[0, 9, 5], [9, 0, 5], [1, 1, 5]])   # two specialists and a generalist
    picks = ops.sel_lexicase(errors, 60, rng)
    assert picks.count(0) > 5 and picks.count(1) > 5 and picks.count(2) == 0


def test_lexicase_treats_copies_as_individuals():
    """Check that identical error rows are picked as often as separate individuals would be:
    two copies of a specialist share its half, each about a quarter."""
    errors = np.array([[0, 9, 5], [9, 0, 5], [1, 1, 5], [0, 9, 5]])
    picks = ops.sel_lexicase(errors, 8000, random.Random(11))
    counts = [picks.count(i) for i in range(4)]
    assert counts[2] == 0
    assert abs(counts[1] - 4000) < 250 and abs(counts[0] - 2000) < 200 and abs(counts[3] - 2000) < 200


@pytest.mark.parametrize("isa", ["arm64", "x86_64"])
def test_kernel_draws_operands_like_the_alphabet(isa):
    """Check that the variation kernel's operand draws follow Alphabet.random_operands' rules
    (ranges, the share of small constants, raw words' prefixes, registers), op by op."""
    alphabet = alphabet_for(isa)
    var = ops.Variation(alphabet, 1)
    rng = random.Random(9)
    for op in range(alphabet.n_genes):
        weights = np.zeros(alphabet.n_genes)
        weights[op] = 1.0
        genes, _ = ops.init_genomes(var, 3000, 1, np.cumsum(weights)[None, :], rng)
        kernel = genes[:, 0]
        python = np.array([alphabet.random_operands(op, rng) for _ in range(3000)])
        assert (kernel[:, 0] == op).all()
        for col in (1, 2, 3):    # registers: uniform over the working registers
            assert set(kernel[:, col].tolist()) == set(python[:, col].tolist())
        imm_k, imm_p = kernel[:, 4], python[:, 4]
        assert imm_k.min() >= imm_p.min() - 0.02 * (imm_p.max() - imm_p.min() + 1)
        assert imm_k.max() <= imm_p.max() + 0.02 * (imm_p.max() - imm_p.min() + 1)
        small_k, small_p = np.mean((imm_k >= -2) & (imm_k < 17)), np.mean((imm_p >= -2) & (imm_p < 17))
        assert abs(small_k - small_p) < 0.06, (alphabet.ops[op], small_k, small_p)
        assert set((imm_k >> 28).tolist()) == set((imm_p >> 28).tolist()) or imm_p.max() < 2**28


def test_operator_codes_follow_the_tables():
    """Check that the kernels' mutation and crossover codes are the tables' indices, and that a
    table naming a kind the kernels lack (or missing one) fails instead of mislabelling."""
    assert [ops.MUT_REPLACE, ops.MUT_TWEAK, ops.MUT_INSERT, ops.MUT_DELETE, ops.MUT_SWAP, ops.MUT_FLIP,
            ops.MUT_MACRO] == [list(ops.MUTATIONS).index(k)
                               for k in ("replace", "tweak", "insert", "delete", "swap", "flip", "macro")]
    assert [ops.CX_ONE_POINT, ops.CX_TWO_POINT, ops.CX_HOMOLOGOUS] == [
        list(ops.CROSSOVERS).index(k) for k in ("one_point", "two_point", "homologous")]
    assert ops._codes({"b": 1.0, "a": 2.0}, ("a", "b")) == (1, 0)
    with pytest.raises(ValueError):
        ops._codes({"a": 1.0, "renamed": 1.0}, ("a", "b"))


def test_flag_table_cache_never_answers_for_another_alphabet(monkeypatch):
    """Check that a cached flag table left under an id another (freed) alphabet had is not
    returned for this one (a CI run met an x86-64 table of 29 rows for the arm64 alphabet)."""
    from evolve import genes as G
    alphabet = alphabet_for("arm64")
    monkeypatch.setattr(G, "_FLAG_TABLES", {id(alphabet): (object(), np.zeros((29, 3), bool))})
    table = alphabet.flag_table()
    assert table.shape == (alphabet.n_genes, 3) and alphabet.flag_table() is table


def test_fresh_marks_the_genes_in_neither_parent_after_crossover_and_mutation():
    """Check fresh against its definition (in neither parent) for children made by a crossover
    and then any mutation, macro-genes included, at every position."""
    alphabet = alphabet_for("arm64")
    var, table = _variation(alphabet, 10)
    parents, lengths = ops.init_genomes(var, 600, 10, table, random.Random(11))
    n = len(parents)
    rng = np.random.default_rng(12)
    second = np.where(rng.random(n) < 0.6, rng.integers(0, n, n), -1)
    cx = np.where(second >= 0, rng.integers(0, len(ops.CROSSOVERS), n), -1)
    mut = np.where((second < 0) | (rng.random(n) < 0.5), rng.integers(0, len(ops.MUTATIONS), n), -1)
    lib = np.zeros((1, 2, 5), np.int64)
    lib[0] = [(1, 1, 0, 0, 1), (4, 0, 0, 1, 0)]
    macros = ops.MacroTable(lib, np.array([2]), np.array([1.0]))
    out, out_len, fresh, same = _kernel(parents, lengths, np.arange(n), second, cx, mut, ops.split_table(table),
                                        var.operands, var.raw_ops, var.n_regs, 10, 5, macros=macros)
    for k in range(n):
        known = set(map(tuple, parents[k, :lengths[k]].tolist()))
        if second[k] >= 0:
            known |= set(map(tuple, parents[second[k], :lengths[second[k]]].tolist()))
        for i, gene in enumerate(out[k, :out_len[k]].tolist()):
            assert fresh[k, i] == (tuple(gene) not in known)
        assert not fresh[k, out_len[k]:].any()
    assert 0.2 < fresh.any(axis=1).mean() < 0.9
