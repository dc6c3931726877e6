"""Macro-genes: proven programs from a library, inserted whole by the ``macro`` mutation.

The seed's "hierarchical learning: build reusable operation libraries" (issue 16, item 3). A
library is any mix of genome-record folders (``genomes/``: ``*.json`` records with ``isa``,
``code_hex`` and ``verification``; ``--save-to-library`` adds to it) and run folders (their
``result.json``'s solved ``best``). Entries of the run's ISA that were verified (proven or
tested), of 2..:data:`MAX_LEN` instructions, every word a gene of the alphabet with registers in
the working set, become macro-genes (the same snippet twice, whatever its registers, once).

The ``macro`` mutation (:mod:`evolve.operators`) inserts one whole at a random place, its
registers renamed by a random permutation of the working set, so ``sub x1, x0, #1; and x0, x0,
x1`` can become ``sub x3, x2, #1; and x2, x2, x3`` in a genome that keeps its value in x2. Each
macro-gene is a token of the brain's gene table, :data:`MACRO_BASE` plus a digest of the snippet
with its registers numbered in order of appearance: the same snippet is the same token in every
run and brain file, so priors carry what it did. An offspring that inserted one credits it as
it credits the gene n-grams it introduced (:mod:`core.brain.gene_grams`: the seed's rule on every
execution, an improvement counted when it beat its parents), and macro-genes are drawn with the
same factor as genes (``PatternTable.draw_ratios``). Nothing from a library is trusted: an
offspring holding a macro-gene is evaluated and verified like any other.
"""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evolve.operators import MacroTable

#: tokens of macro-genes in the brain's gene table start here (never an alphabet gene)
MACRO_BASE = 1 << 40
#: longest snippet used as a macro-gene (instructions)
MAX_LEN = 8
#: the repository's genome library (``--library auto``)
SHIPPED = Path(__file__).resolve().parent.parent / "genomes"
VERIFIED = ("proven", "tested")


@dataclass
class Library:
    """The macro-genes of a run: ``genes`` int64 [M, MAX_LEN, 5], ``length`` int64 [M],
    ``token`` int64 [M], and per entry its assembly and where it came from."""

    genes: np.ndarray
    length: np.ndarray
    token: np.ndarray
    asm: list = field(default_factory=list)
    source: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.length.size)

    def factors(self, brain) -> np.ndarray:
        """float64 [M]: each macro-gene's draw factor in ``brain``'s gene table (1: unknown)."""
        table = brain.gene_patterns
        ratios = table.draw_ratios()
        out = np.ones(len(self), np.float64)
        for m, tok in enumerate(self.token.tolist()):
            s = table.find([tok])
            if s >= 0:
                out[m] = float(table.init_threshold) / float(ratios[s])
        return out

    def table(self, brain) -> MacroTable:
        """What the variation kernel draws from this generation."""
        return MacroTable(self.genes, self.length, np.cumsum(self.factors(brain)))

    def credit(self, brain, used: np.ndarray, crashed: np.ndarray, better: np.ndarray) -> int:
        """Credit the macro-gene each offspring inserted (``used`` int64 [n], -1: none) with
        its executions (``crashed`` bool [n, cases]) and improvement (``better`` bool [n])."""
        owner = np.flatnonzero(np.asarray(used) >= 0).astype(np.int64)
        if owner.size == 0:
            return 0
        table = brain.gene_patterns
        grams = np.zeros((owner.size, table.config.n_max), np.int64)
        grams[:, 0] = self.token[np.asarray(used)[owner]]
        slots = table.intern(grams, np.ones(owner.size, np.int64), owner)
        table.credit(owner, slots, crashed, better)
        return int(owner.size)

    def report(self, brain=None) -> dict:
        """``library.json``: every macro-gene, with what the brain learnt of it."""
        rows = []
        table = brain.gene_patterns if brain is not None else None
        factors = self.factors(brain) if brain is not None else np.ones(len(self))
        for m in range(len(self)):
            row = {"token": int(self.token[m]), "asm": self.asm[m], "source": self.source[m],
                   "draw_factor": round(float(factors[m]), 4)}
            s = table.find([int(self.token[m])]) if table is not None else -1
            if s >= 0:
                row.update(inserted=int(table.count[s]), improved=int(table.n_improved[s]),
                           executions=int(table.n_ok[s] + table.n_crash[s]), crashes=int(table.n_crash[s]))
            rows.append(row)
        return {"format": "melvin-library", "version": 1, "macro_genes": rows}


def token_of(asm: list[str]) -> int:
    """The snippet's token: :data:`MACRO_BASE` + CRC-32 of its assembly with the registers
    renamed in order of appearance (``sub x1, x0, #1`` and ``sub x3, x2, #1`` are one snippet;
    from the text, so operand fields an operation does not use cannot tell them apart)."""
    names: dict = {}

    def rename(m: re.Match) -> str:
        return m.group(1) + "r" + str(names.setdefault(m.group(2), len(names)))

    canon = "\n".join(_REG.sub(rename, line) for line in asm)
    return MACRO_BASE + zlib.crc32(canon.encode())


_REG = re.compile(r"\b([xw])(\d+)\b")


def resolve(value) -> list[str]:
    """``--library``'s paths: ``auto`` the repository's ``genomes/``, ``none`` nothing, else a
    comma-separated list of folders (ValueError, one line, for one that does not exist)."""
    if value is None or str(value).lower() == "none":
        return []
    if str(value).lower() == "auto":
        return [str(SHIPPED)] if SHIPPED.is_dir() else []
    paths = [p for p in str(value).split(",") if p]
    for p in paths:
        if not Path(p).is_dir():
            raise ValueError(f"--library {p!r} is not a folder (genome records or run folders)")
    return [str(Path(p).resolve()) for p in paths]


def _records(folder: Path):
    """(source, isa, verification, genes or None, code hex or None) of each entry in a folder."""
    result = folder / "result.json"
    candidates = [result] if result.is_file() else sorted(folder.glob("*.json")) + sorted(folder.glob("*/result.json"))
    for path in candidates:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if path.name == "result.json":
            best = doc.get("best") or {}
            if doc.get("solved") and isinstance(best, dict):
                ver = doc.get("verification") or {}
                yield str(path.parent), doc.get("isa"), ver, best.get("genes"), best.get("code_hex")
        elif "code_hex" in doc:
            yield str(path), doc.get("isa"), doc.get("verification") or {}, doc.get("genes"), doc.get("code_hex")


def load(paths, alphabet) -> Library:
    """The macro-genes of ``paths`` (see the module) for ``alphabet`` (its ISA and registers)."""
    from evolve.lift import lift
    operands = alphabet.operand_table()
    n_regs = len(alphabet.regs)
    seen, rows, lengths, tokens, asm, source = set(), [], [], [], [], []
    for folder in paths:
        for src, isa, ver, genes, code_hex in _records(Path(folder)):
            if isa != alphabet.isa.name or not isinstance(ver, dict) or ver.get("equivalence") not in VERIFIED:
                continue
            try:
                if genes is None:
                    genes = lift(bytes.fromhex(code_hex), alphabet)
                g = np.array(genes, np.int64).reshape(-1, 5)
            except (TypeError, ValueError):
                continue
            if not 2 <= len(g) <= MAX_LEN or g[:, 0].min() < 0 or g[:, 0].max() >= alphabet.n_genes:
                continue
            plain = operands[g[:, 0], 0] != 1
            if (plain[:, None] & ((g[:, 1:4] < 0) | (g[:, 1:4] >= n_regs))).any() or not plain.all():
                continue      # raw words are left out: a snippet is what the alphabet can vary
            text = alphabet.render([tuple(int(v) for v in r) for r in g])
            tok = token_of(text)
            if tok in seen:
                continue
            seen.add(tok)
            pad = np.zeros((MAX_LEN, 5), np.int64)
            pad[:len(g)] = g
            rows.append(pad)
            lengths.append(len(g))
            tokens.append(tok)
            asm.append(text)
            source.append(src)
    if not rows:
        return Library(np.zeros((0, MAX_LEN, 5), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Library(np.stack(rows), np.array(lengths, np.int64), np.array(tokens, np.int64), asm, source)


def for_run(cfg, alphabet) -> Library | None:
    """The run's macro-genes (None: no library), checked against the digest recorded when the
    run was configured (ValueError, one line, if the folders now hold other code)."""
    if not getattr(cfg, "library", None):
        return None
    lib = load(cfg.library, alphabet)
    if cfg.library_sha256 and digest(lib) != cfg.library_sha256:
        raise ValueError(f"--library {','.join(cfg.library)} changed since the run was configured")
    return lib if len(lib) else None


def digest(lib: Library) -> str:
    """SHA-256 of a library's macro-genes (a resumed run must meet the same library)."""
    import hashlib
    h = hashlib.sha256()
    for m in range(len(lib)):
        h.update(lib.genes[m, :lib.length[m]].astype("<i8").tobytes())
    return h.hexdigest()
