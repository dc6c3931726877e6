"""``--task file.c:func``: a C function, compiled for aarch64, as the specification.

:func:`c_task` is the one entry point (``python -m evolve run`` and batch runs call it): it
compiles the file with the user's C compiler for aarch64 (``--cc``; by default
``aarch64-linux-gnu-gcc`` on other hosts, the first of ``cc``, ``gcc``, ``clang`` on aarch64)
with ``-g`` added to the flags (``-O2`` by default), reads the function's signature from the
object's DWARF (typedefs and macros resolved by the compiler, not by a parser of ours), takes
its machine code and relocations from the symbol table (:mod:`evolve.targets`) and makes a
:class:`~evolve.codetask.CodeTask` of it: up to 4 integer arguments of 8 to 64 bits, signed or
unsigned, and an integer result whose width is what is compared (``uint32_t``: w0).

No compiler, a file that does not compile, a function that calls another or is outside what
Melvin models, a non-integer signature: :class:`~evolve.tasks.TaskError`, one line (exit 2).
"""
from __future__ import annotations

import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from evolve import frame as F
from evolve import targets as TG
from evolve.codetask import CodeTask, make_code_task
from evolve.tasks import TaskError

DEFAULT_CFLAGS = "-O2"
_ATE_SIGNED = {5: True, 6: True, 7: False, 8: False, 2: False}     # DW_ATE_signed, signed_char, unsigned, ..., boolean
_QUALIFIERS = {"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type"}


def find_compiler(cc: str | None = None) -> str:
    """The C compiler to use: ``cc`` if given (a name on PATH or a path), else the aarch64 one
    this host has; TaskError naming what was looked for."""
    if cc:
        found = shutil.which(cc)
        if not found:
            raise TaskError(f"C compiler {cc!r} not found")
        return found
    native = platform.machine().lower() in ("aarch64", "arm64")
    names = ("cc", "gcc", "clang") if native else ("aarch64-linux-gnu-gcc",)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise TaskError(f"no C compiler for aarch64 found (looked for {', '.join(names)}); install one "
                    f"(Debian: gcc-aarch64-linux-gnu) or give --cc")


def compile_c(path: Path, out: Path, cc: str | None = None, cflags: str | None = None) -> str:
    """Compile ``path`` to the object ``out`` with debug information; returns the compiler used."""
    compiler = find_compiler(cc)
    flags = shlex.split(DEFAULT_CFLAGS if cflags is None else cflags)
    cmd = [compiler, *flags, "-g", "-c", "-o", str(out), str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskError(f"{Path(compiler).name} could not compile {path}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines() or ["?"]
        raise TaskError(f"{path} does not compile ({Path(compiler).name} {' '.join(flags)}): {lines[0].strip()}")
    return compiler


def _base(die):
    """The type of ``die`` (its ``DW_AT_type``) under typedefs and qualifiers; None: void."""
    t = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
    while t is not None and t.tag in _QUALIFIERS:
        t = t.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in t.attributes else None
    return t


def _integer(die, what: str, func: str) -> tuple[int, bool]:
    """(bits, signed) of an integer type DIE; TaskError naming ``what`` otherwise."""
    if die is None:
        raise TaskError(f"{func}: {what} is void; an integer of 8 to 64 bits is needed")
    name = die.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in die.attributes else die.tag[7:]
    if die.tag == "DW_TAG_enumeration_type":
        size = die.attributes["DW_AT_byte_size"].value
        under = _base(die)
        signed = bool(under is not None and _ATE_SIGNED.get(under.attributes.get("DW_AT_encoding").value
                                                            if "DW_AT_encoding" in under.attributes else 7))
        return 8 * size, signed
    if die.tag != "DW_TAG_base_type":
        raise TaskError(f"{func}: {what} is a {name.replace('_', ' ')}, not an integer (integers of 8 to 64 bits only)")
    encoding = die.attributes["DW_AT_encoding"].value
    size = die.attributes["DW_AT_byte_size"].value
    if encoding not in _ATE_SIGNED:
        raise TaskError(f"{func}: {what} is {name}, not an integer (integers of 8 to 64 bits only)")
    if size > 8:
        raise TaskError(f"{func}: {what} is {name}, wider than 64 bits")
    return 8 * size, _ATE_SIGNED[encoding]


def signature(obj: Path, func: str) -> tuple[list[tuple[int, bool]], tuple[int, bool]]:
    """([(bits, signed) per argument], (bits, signed) of the result) of ``func`` from the DWARF
    of the object ``obj``; TaskError for anything but integers."""
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as fh:
        elf = ELFFile(fh)
        if not elf.has_dwarf_info():
            raise TaskError(f"{obj}: no debug information to read the signature of {func} from")
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_subprogram" or "DW_AT_name" not in die.attributes:
                    continue
                if die.attributes["DW_AT_name"].value.decode() != func or "DW_AT_declaration" in die.attributes:
                    continue
                args = []
                for child in die.iter_children():
                    if child.tag == "DW_TAG_unspecified_parameters":
                        raise TaskError(f"{func}: takes variable arguments (...); 1 to 4 integer arguments only")
                    if child.tag == "DW_TAG_formal_parameter":
                        label = child.attributes["DW_AT_name"].value.decode() if "DW_AT_name" in child.attributes \
                            else f"argument {len(args) + 1}"
                        args.append(_integer(_base(child), f"argument {label!r}", func))
                result = _integer(_base(die), "the result", func)
                return args, result
    raise TaskError(f"{obj}: no definition of {func} in the debug information")


def c_task(spec: str, cc: str | None = None, cflags: str | None = None) -> CodeTask:
    """The task ``path/file.c:func`` (see the module docstring); TaskError with one line."""
    path_text, _, func = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not func:
        raise TaskError(f"--task {spec!r}: expected path/file.c:function")
    if not path.is_file():
        raise TaskError(f"C file {path_text!r} does not exist or is not a file")
    with tempfile.TemporaryDirectory(prefix="melvin-cc-") as tmp:
        obj = Path(tmp) / f"{path.stem}.o"
        compiler = compile_c(path, obj, cc, cflags)
        try:
            target = TG.load_elf(obj, func)
        except TG.TargetError as exc:
            raise TaskError(str(exc).replace(str(obj), str(path))) from None
        args, (bits, signed) = signature(obj, func)
    if not 1 <= len(args) <= 4:
        raise TaskError(f"{func}: takes {len(args)} arguments; 1 to 4 integer arguments are supported")
    origin = (("source", str(path)), ("function", func), ("compiler", compiler),
              ("cflags", DEFAULT_CFLAGS if cflags is None else cflags))
    try:
        return make_code_task(f"{path.stem}.{func}", target.code, len(args), arg_types=tuple(args),
                              result_bits=bits, result_signed=signed, relocations=target.relocations,
                              description=f"{func} of {path.name} as compiled for aarch64", origin=origin)
    except F.NotModelled as exc:
        raise TaskError(f"{func} in {path} ({Path(compiler).name} {origin[3][1]}): {exc}") from None
