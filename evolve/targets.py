"""Existing machine code as a specification: a function read from GNU assembly, an ELF object or
shared library, or hex (``python -m evolve optimize TARGET``, ``--task file.c:func``).

:func:`load_target` returns the function's words exactly as they would run (:class:`Target`);
whether Melvin can model them is :mod:`evolve.frame`'s question. The three readers:

* GNU assembly as ``gcc -S`` writes it: the lines from ``NAME:`` to ``.size NAME`` (or the next
  function), directives and comments dropped, local labels kept, assembled by keystone in one
  call so that branches to ``.L`` labels resolve;
* ELF (``pyelftools``): the symbol's bytes in the section that holds it (``st_value``/``st_size``
  in an object's section or a library's address space) and the relocations that point into them,
  which :mod:`evolve.frame` refuses by offset (a call, an address of a global);
* hex: words in memory order (``d1000401 8a010000`` or one run of digits), an optional ``0x``.

Every failure is a :class:`TargetError` with one line (exit 2 at the command line).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183


class TargetError(ValueError):
    """A target that cannot be read; the message says why, in one line."""


@dataclass(frozen=True)
class Target:
    """One function's machine code and where it came from."""
    name: str
    code: bytes                 #: the words, in memory order, as they run
    source: str                 #: "asm", "elf-object", "elf-shared", "hex"
    path: str = ""
    address: int = 0            #: the first word's address (ELF), for messages
    relocations: dict = field(default_factory=dict)   #: byte offset -> relocation type name


def load_target(text_or_path: str, function: str | None = None) -> Target:
    """The function ``function`` of the file ``text_or_path`` (GNU assembly or ELF), or the hex
    words ``text_or_path`` itself when no such file exists."""
    path = Path(text_or_path)
    if path.is_file():
        data = path.read_bytes()
        if data.startswith(ELF_MAGIC):
            return load_elf(path, function)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TargetError(f"{text_or_path!r} is neither an ELF file nor text (GNU assembly)") from None
        return load_asm(text, function, str(path))
    if text_or_path and re.fullmatch(r"[0-9a-fA-FxX\s,]+", text_or_path) and not path.exists():
        return load_hex(text_or_path)
    raise TargetError(f"{text_or_path!r} is not a file (GNU assembly, ELF object or library) nor hex words")


# ----------------------------------------------------------------------------- hex
def load_hex(text: str) -> Target:
    """Hex code: a part of at most 8 digits is one 32-bit word as objdump prints it (``d10043ff``
    is ``sub sp, sp, #16``); a longer run of digits is bytes in memory order (``ff4300d1``...)."""
    code = b""
    for part in text.replace(",", " ").split():
        digits = part[2:] if part.lower().startswith("0x") else part
        if not re.fullmatch(r"[0-9a-fA-F]+", digits):
            raise TargetError(f"hex code: {part!r} is not hex digits")
        if len(digits) <= 8:
            code += int(digits, 16).to_bytes(4, "little")
        elif len(digits) % 8:
            raise TargetError(f"hex code: {len(digits)} digits is not a whole number of 4-byte instructions")
        else:
            code += bytes.fromhex(digits)
    if not code:
        raise TargetError("hex code: no instructions")
    return Target("hex", code, "hex")


# ----------------------------------------------------------------------------- GNU assembly
_KEEP_DIRECTIVES = (".word", ".inst")
_FUNC_TYPE = re.compile(r"^\s*\.type\s+([\w.$]+)\s*,\s*[%@#]function")


def _strip(line: str) -> str:
    line = line.split("//", 1)[0]
    return line.strip()


def asm_functions(text: str) -> list[str]:
    """The names ``.type NAME, %function`` declares, in order (gcc -S marks every function)."""
    return [m.group(1) for m in map(_FUNC_TYPE.match, text.splitlines()) if m]


def _only_function(names: list[str], where: str, empty: str) -> str:
    """The one function of ``names``; TargetError (one line, at most 12 names) otherwise."""
    if len(names) != 1:
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise TargetError(f"{where} defines {len(names)} functions ({listed or empty}): choose one with --function")
    return names[0]


def load_asm(text: str, function: str | None = None, path: str = "") -> Target:
    """The function ``function`` (default: the only one) of GNU assembly ``text``."""
    names = asm_functions(text)
    if function is None:
        function = _only_function(names, path or "the assembly", "no .type NAME, %function")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _strip(line) == f"{function}:"), None)
    if start is None:
        raise TargetError(f"{path or 'the assembly'} has no label {function}: "
                          f"(functions: {', '.join(names) or 'none'})")
    body: list[str] = []
    for raw in lines[start + 1:]:
        line = _strip(raw)
        if not line:
            continue
        if re.match(rf"^\.size\s+{re.escape(function)}\b", line) or _FUNC_TYPE.match(line):
            break
        if line.endswith(":") and not line.startswith(".L") and line[:-1] in names:
            break                                   # the next function's label
        if line.startswith(".") and not line.endswith(":") and not line.startswith(_KEEP_DIRECTIVES):
            continue                                # .cfi_*, .p2align, .loc, ...
        body.append(line)
    if not any(not line.endswith(":") for line in body):
        raise TargetError(f"function {function} in {path or 'the assembly'} has no instructions")
    import keystone

    from core.asm import _engine
    from core.isa import get_isa
    try:
        encoding, _count = _engine(get_isa("arm64")).asm("\n".join(body) + "\n")
    except keystone.KsError as exc:
        raise TargetError(f"function {function}: keystone cannot assemble it ({exc}); "
                          f"a symbol outside the function (a call, a global) is not modelled") from None
    if not encoding:
        raise TargetError(f"function {function}: no machine code")
    return Target(function, bytes(encoding), "asm", path)


# ----------------------------------------------------------------------------- ELF
def _elftools():
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.relocation import RelocationSection
        from elftools.elf.sections import SymbolTableSection
    except ImportError:
        raise TargetError("reading ELF files needs pyelftools: pip install pyelftools") from None
    return ELFFile, RelocationSection, SymbolTableSection


def elf_functions(path: Path) -> list[str]:
    """Names of the defined function symbols (STT_FUNC, size > 0) of an ELF file."""
    ELFFile, _, SymbolTableSection = _elftools()
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        out = []
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"] and sym["st_shndx"] != "SHN_UNDEF" \
                            and sym.name not in out:
                        out.append(sym.name)
        return out


def load_elf(path: Path, function: str | None = None) -> Target:
    """The function symbol ``function`` (default: the only one) of an aarch64 ELF object or
    shared library, with the relocations that apply to its bytes (objects; a library's calls go
    through the PLT and are seen as ``bl``)."""
    from elftools.common.exceptions import ELFError
    ELFFile, RelocationSection, SymbolTableSection = _elftools()
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            if elf["e_machine"] not in ("EM_AARCH64", EM_AARCH64):
                raise TargetError(f"{path}: an ELF file for {elf['e_machine']}, not aarch64")
            names = elf_functions(path)
            if function is None:
                function = _only_function(names, path, "none")
            sym = None
            for sec in elf.iter_sections():
                if isinstance(sec, SymbolTableSection):
                    for s in sec.get_symbol_by_name(function) or []:
                        if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF":
                            sym = s
                            break
                if sym is not None:
                    break
            if sym is None:
                raise TargetError(f"{path} has no function {function!r} (functions: {', '.join(names[:12]) or 'none'})")
            if not sym["st_size"]:
                raise TargetError(f"{path}: function {function!r} has size 0")
            shared = elf["e_type"] == "ET_DYN"
            section = elf.get_section(sym["st_shndx"])
            value, size = sym["st_value"], sym["st_size"]
            start = value - section["sh_addr"] if shared or section["sh_addr"] else value
            if section["sh_type"] == "SHT_NOBITS" or start < 0 or start + size > section["sh_size"]:
                raise TargetError(f"{path}: function {function!r} lies outside its section {section.name}")
            code = section.data()[start:start + size]
            relocs = {}
            for rsec in elf.iter_sections():
                if isinstance(rsec, RelocationSection) and rsec["sh_info"] == sym["st_shndx"] and not shared:
                    for r in rsec.iter_relocations():
                        off = r["r_offset"] - start
                        if 0 <= off < size:
                            relocs[int(off)] = _reloc_name(r["r_info_type"])
            return Target(function, bytes(code), "elf-shared" if shared else "elf-object", str(path),
                          int(value), relocs)
    except ELFError as exc:
        raise TargetError(f"{path}: not a readable ELF file ({exc})") from None


def _reloc_name(kind: int) -> str:
    try:
        from elftools.elf.enums import ENUM_RELOC_TYPE_AARCH64
        return next((k for k, v in ENUM_RELOC_TYPE_AARCH64.items() if v == kind), f"type {kind}")
    except ImportError:          # older pyelftools
        return f"type {kind}"
