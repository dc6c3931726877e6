"""Assembler and disassembler: genome text <-> machine code.

Every line is assembled on its own at address 0, so a line's encoding never depends on its
neighbours and keystone is called once per distinct instruction (the cache below). The
consequence, shared by ``disassemble``: branch targets in Melvin assembly are *relative* to the
branch (``b #8`` skips one instruction), because keystone's ARM64 syntax takes ``#imm`` as an
absolute address and every line sits at 0.

Raw words (``.word 0x00000000``) are accepted on every ISA; keystone 0.9.2 has no ``udf``.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Iterable

import capstone
import keystone

from core.isa import Isa, get_isa


class AsmError(ValueError):
    """A line the assembler rejects; names the line and its index."""


_WORD_RE = re.compile(r"^\.(word|long|inst)\s+(0x[0-9a-fA-F]+|\d+)$")
_lock = threading.Lock()
_engines: dict[str, keystone.Ks] = {}


def normalize_line(line: str) -> str:
    """Strip comments (``//``, ``;``, ``#`` at line start) and collapse whitespace."""
    for marker in ("//", ";"):
        cut = line.find(marker)
        if cut >= 0:
            line = line[:cut]
    line = " ".join(line.replace("\t", " ").split())
    return line


def _engine(isa: Isa) -> keystone.Ks:
    ks = _engines.get(isa.name)
    if ks is None:
        ks = keystone.Ks(isa.ks_arch, isa.ks_mode)
        _engines[isa.name] = ks
    return ks


@lru_cache(maxsize=200_000)
def _encode_line(line: str, isa_name: str) -> bytes:
    """Encode one normalised line; cached, so keystone sees each distinct line once."""
    isa = get_isa(isa_name)
    word = _WORD_RE.match(line)
    if word:
        value = int(word.group(2), 0)
        if not 0 <= value < 2**32:
            raise ValueError(f"raw word out of range: {line!r}")
        return value.to_bytes(4, "little")
    with _lock:  # a Ks handle is not thread-safe
        try:
            encoding, _ = _engine(isa).asm(line, 0)
        except keystone.KsError as exc:
            raise ValueError(f"{exc}") from None
    if not encoding:
        raise ValueError("assembles to no bytes")
    if isa.insn_size and len(encoding) != isa.insn_size:
        raise ValueError(f"one line must be one {isa.insn_size}-byte instruction, got {len(encoding)} bytes")
    return bytes(encoding)


def encode_line(line: str, isa: str | Isa = "arm64") -> bytes:
    """Encode one instruction (already a single line). Raises :class:`AsmError`."""
    return assemble([line], isa)


def assemble(lines: Iterable[str] | str, isa: str | Isa = "arm64") -> bytes:
    """Assemble instruction lines into machine code.

    Parameters
    ----------
    lines : iterable of str, or one str with newlines
        One instruction per line; blank lines and comments are ignored.
    isa : str or Isa
        ``"arm64"`` (default) or ``"x86_64"``.

    Returns
    -------
    bytes
        The concatenated encodings.

    Raises
    ------
    AsmError
        A line keystone rejects (message names the line and its index) or no instruction at all.
    """
    isa = get_isa(isa)
    if isinstance(lines, str):
        lines = lines.splitlines()
    out = bytearray()
    count = 0
    for index, raw in enumerate(lines):
        if not isinstance(raw, str):
            raise AsmError(f"line {index}: expected a string, got {type(raw).__name__}")
        line = normalize_line(raw)
        if not line:
            continue
        try:
            out += _encode_line(line, isa.name)
        except ValueError as exc:
            raise AsmError(f"line {index} {raw.strip()!r} does not assemble for {isa.name}: {exc}") from None
        count += 1
    if count == 0:
        raise AsmError("no instruction to assemble (empty input)")
    return bytes(out)


def assemble_words(lines: list[str], isa: str | Isa = "arm64") -> bytes:
    """Many one-word, position-independent instructions in one keystone call (no branches:
    keystone would resolve their targets against each line's own address). For learning
    encoding tables, where one call per line would cost milliseconds per table."""
    isa = get_isa(isa)
    text = "\n".join(normalize_line(line) for line in lines)
    with _lock:
        try:
            encoding, count = _engine(isa).asm(text, 0)
        except keystone.KsError as exc:
            raise AsmError(f"{exc} in a block of {len(lines)} lines") from None
    if count != len(lines) or (isa.insn_size and len(encoding) != isa.insn_size * len(lines)):
        raise AsmError(f"{len(lines)} lines assembled to {count} instructions, {len(encoding)} bytes")
    return bytes(encoding)


@lru_cache(maxsize=4)
def _disassembler(isa_name: str, detail: bool) -> capstone.Cs:
    isa = get_isa(isa_name)
    cs = capstone.Cs(isa.cs_arch, isa.cs_mode)
    cs.detail = detail
    return cs


def disassembler(isa: str | Isa, detail: bool = False) -> capstone.Cs:
    """A shared capstone handle for ``isa`` (with instruction details if asked)."""
    return _disassembler(get_isa(isa).name, detail)


def _decode_words(code: bytes, isa: Isa):
    """Yield (offset, size, text) per instruction; undecodable bytes become raw words/bytes."""
    cs = disassembler(isa)
    offset = 0
    while offset < len(code):
        # Each instruction is decoded at address 0 so that relative branch text round-trips.
        insn = next(cs.disasm(code[offset:offset + 16], 0, 1), None)
        if insn is None:
            if isa.insn_size:
                chunk = code[offset:offset + isa.insn_size]
                if len(chunk) < isa.insn_size:
                    raise ValueError(f"{len(code) - offset} trailing bytes at offset {offset}: not a whole instruction")
                yield offset, isa.insn_size, f".word {int.from_bytes(chunk, 'little'):#010x}"
                offset += isa.insn_size
            else:
                yield offset, 1, f".byte {code[offset]:#04x}"
                offset += 1
            continue
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        yield offset, insn.size, text
        offset += insn.size


@lru_cache(maxsize=200_000)
def _stable_text(chunk: bytes, text: str, isa_name: str) -> str:
    """``text`` if it re-assembles to ``chunk``, else a raw word with the text as a comment."""
    try:
        if _encode_line(normalize_line(text), isa_name) == chunk:
            return text
    except ValueError:
        pass
    if len(chunk) == 4:
        return f".word {int.from_bytes(chunk, 'little'):#010x}  // {text}"
    return text  # variable-length ISA: no raw form keystone accepts; caller sees the text


def disassemble(code: bytes, isa: str | Isa = "arm64") -> list[str]:
    """Disassemble machine code into one line per instruction.

    Lines use Melvin's relative-branch convention and are checked to re-assemble to the same
    bytes: an instruction keystone cannot encode (``udf``, or a word capstone cannot decode)
    comes back as ``.word 0x...`` with capstone's text as a comment, so on arm64
    ``assemble(disassemble(c)) == c`` always.
    """
    isa = get_isa(isa)
    if not isinstance(code, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected bytes, got {type(code).__name__}")
    code = bytes(code)
    return [_stable_text(code[off:off + size], text, isa.name)
            for off, size, text in _decode_words(code, isa)]


def listing(code: bytes, isa: str | Isa = "arm64", address: int = 0) -> list[tuple[int, bytes, str]]:
    """A human listing: (address, bytes, instruction) per instruction, branch targets absolute."""
    isa = get_isa(isa)
    code = bytes(code)
    cs = disassembler(isa)
    rows = []
    for offset, size, text in _decode_words(code, isa):
        insn = next(cs.disasm(code[offset:offset + size], address + offset, 1), None)
        if insn is not None:
            text = f"{insn.mnemonic} {insn.op_str}".strip()
        rows.append((address + offset, code[offset:offset + size], text))
    return rows
