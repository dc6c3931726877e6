"""``python -m evolve export RUN_DIR``: an evolved genome as a C-callable function.

Writes ``NAME.s`` (GNU as) and ``NAME.h`` (``uint64_t NAME(uint64_t, ...)``) into ``--out``
(default ``RUN_DIR/export``). The genome keeps Melvin's calling convention (inputs in x0..x3 /
rdi, rsi, rdx, rcx, result in x0 / rax, a scratch area reachable from the stack), so a small
wrapper makes it an ordinary AAPCS64 / System V function:

* it saves the callee-saved registers the genome writes (found with capstone's register access
  lists; an instruction capstone cannot decode is assumed to write everything): x19-x28 and the
  low halves of v8-v15 on arm64, rbx and r12-r15 on x86-64; the frame record (x29, x30 / rbp) is
  always saved; on arm64 also FPCR (rounding mode and friends, which AAPCS64 asks a callee to
  keep) when the genome may write it (``msr fpcr``);
* it keeps the caller's stack pointer in a callee-saved register the genome does not write, so a
  genome that moves SP cannot unbalance the caller's stack;
* on arm64 it reserves the 256-byte scratch area below the saved registers (``[sp, sp+256)`` at
  the genome's entry, 16-byte aligned); on x86-64 the genome's scratch is the red zone, which is
  the callee's to use;
* the genome runs as a local subroutine (``bl`` / ``call``) ending with the return the executor
  appends, so an early return inside it lands back in the wrapper.

The genome's bytes are emitted verbatim (``.inst`` words / ``.byte`` lists) with the
disassembly as comments: Melvin's relative branch text never needs re-encoding by ``as``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from core.asm import disassembler, listing
from core.isa import get_isa
from evolve.runload import RunLoadError, load_run

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARM64_CALLEE = tuple(f"x{i}" for i in range(19, 29))
ARM64_CALLEE_SIMD = tuple(f"v{i}" for i in range(8, 16))
X86_CALLEE = ("rbx", "r12", "r13", "r14", "r15")
SCRATCH = 256
_X86_FAMILIES = {alias: reg for reg, aliases in {
    "rbx": ("rbx", "ebx", "bx", "bl", "bh"), "rbp": ("rbp", "ebp", "bp", "bpl"),
    "rsp": ("rsp", "esp", "sp", "spl"),
    **{f"r{i}": (f"r{i}", f"r{i}d", f"r{i}w", f"r{i}b") for i in range(12, 16)}}.items()
    for alias in aliases}
_ALL = "*"


def _canonical(isa: str, name: str) -> str:
    """The full register a capstone register name belongs to (w5 -> x5, d9 -> v9, ebx -> rbx)."""
    if isa == "arm64":
        name = {"fp": "x29", "lr": "x30", "wsp": "sp", "w29": "x29", "w30": "x30"}.get(name, name)
        m = re.fullmatch(r"[wx](\d+)", name)
        if m:
            return f"x{m.group(1)}"
        m = re.fullmatch(r"[bhsdqv](\d+)", name)
        return f"v{m.group(1)}" if m else name
    return _X86_FAMILIES.get(name, name)


def written_registers(code: bytes, isa: str) -> set[str]:
    """Full registers ``code`` may write; ``{"*"}`` when an instruction cannot be decoded."""
    cs = disassembler(isa, detail=True)
    written: set[str] = set()
    for _, chunk, _text in listing(code, isa):
        insn = next(cs.disasm(chunk, 0, 1), None)
        if insn is None:
            return {_ALL}
        try:
            _, w = insn.regs_access()
        except Exception:        # capstone raises for instructions it has no details for
            return {_ALL}
        written.update(_canonical(isa, insn.reg_name(r)) for r in w)
    return written


def _pick_base(isa: str, written: set[str]) -> str:
    """A callee-saved register the genome never writes, to hold the caller's stack pointer."""
    choices = ("x29",) + ARM64_CALLEE if isa == "arm64" else ("rbp",) + X86_CALLEE
    for reg in choices:
        if reg not in written and _ALL not in written:
            return reg
    if _ALL in written:
        return choices[0]   # undecodable code: it is saved and restored like every register
    raise ValueError("the genome writes every callee-saved register; no register is left to keep "
                     "the stack pointer")


def writes_fpcr(code: bytes) -> bool:
    """True if an arm64 genome may write FPCR (an ``msr fpcr``, or a word capstone cannot read)."""
    lines = [text for _, _, text in listing(code, "arm64")]
    return any(re.match(r"msr\s+fpcr\b", t) or t.startswith(".") for t in lines)


def arm64_source(name: str, code: bytes, comment: list[str]) -> str:
    """GNU as source of the AAPCS64 wrapper plus the genome (see the module docstring)."""
    written = written_registers(code, "arm64")
    everything = _ALL in written
    base = _pick_base("arm64", written)
    gp = [r for r in ARM64_CALLEE if everything or r in written or r == base]
    simd = [f"d{r[1:]}" for r in ARM64_CALLEE_SIMD if everything or r in written]
    saves = [gp[i:i + 2] for i in range(0, len(gp), 2)] + [simd[i:i + 2] for i in range(0, len(simd), 2)]
    if everything or writes_fpcr(code):
        saves.append(["fpcr"])       # through x9, a temporary the wrapper may use
    body = f".Lmelvin_body_{name}"
    out = [f"/* {line} */" for line in comment] + [
        "\t.text", "\t.p2align 2", f"\t.globl {name}", f"\t.type {name}, %function", f"{name}:",
        "\tstp x29, x30, [sp, #-16]!", "\tmov x29, sp"]
    for pair in saves:
        if pair == ["fpcr"]:
            out += ["\tmrs x9, fpcr", "\tstr x9, [sp, #-16]!"]
            continue
        out.append(f"\tstp {pair[0]}, {pair[1]}, [sp, #-16]!" if len(pair) == 2
                   else f"\tstr {pair[0]}, [sp, #-16]!")
    # x29 == sp right after the frame record, and the saves sit below it.
    keep, restore = (f"\tmov {base}, sp", f"\tmov sp, {base}") if base != "x29" else (
        "\t/* x29 keeps the stack pointer */", f"\tsub sp, x29, #{16 * len(saves)}")
    out += [keep, f"\tsub sp, sp, #{SCRATCH}\t/* the genome's scratch area [sp, sp+{SCRATCH}) */",
            f"\tbl {body}", restore]
    for pair in reversed(saves):
        if pair == ["fpcr"]:
            out += ["\tldr x9, [sp], #16", "\tmsr fpcr, x9"]
            continue
        out.append(f"\tldp {pair[0]}, {pair[1]}, [sp], #16" if len(pair) == 2 else f"\tldr {pair[0]}, [sp], #16")
    out += ["\tldp x29, x30, [sp], #16", "\tret", "\t.p2align 2", f"{body}:"]
    for _, chunk, text in listing(code, "arm64"):
        out.append(f"\t.inst {int.from_bytes(chunk, 'little'):#010x}\t/* {text} */")
    out += ["\tret", f"\t.size {name}, .-{name}", '\t.section .note.GNU-stack,"",%progbits', ""]
    return "\n".join(out)


def x86_64_source(name: str, code: bytes, comment: list[str]) -> str:
    """GNU as (Intel syntax) source of the System V wrapper plus the genome."""
    written = written_registers(code, "x86_64")
    everything = _ALL in written
    base = _pick_base("x86_64", written)
    saved = [r for r in X86_CALLEE if everything or r in written or r == base]
    body = f".Lmelvin_body_{name}"
    out = [f"/* {line} */" for line in comment] + [
        "\t.intel_syntax noprefix", "\t.text", f"\t.globl {name}", f"\t.type {name}, @function",
        f"{name}:", "\tpush rbp", "\tmov rbp, rsp"]
    out += [f"\tpush {r}" for r in saved]
    out += [f"\tmov {base}, rsp" if base != "rbp" else "\t/* rbp keeps the stack pointer */",
            f"\tcall {body}",
            f"\tmov rsp, {base}" if base != "rbp" else f"\tlea rsp, [rbp - {8 * len(saved)}]"]
    out += [f"\tpop {r}" for r in reversed(saved)] + ["\tpop rbp", "\tret", f"{body}:"]
    for _, chunk, text in listing(code, "x86_64"):
        out.append(f"\t.byte {', '.join(f'{b:#04x}' for b in chunk)}\t/* {text} */")
    out += ["\tret", f"\t.size {name}, .-{name}", '\t.section .note.GNU-stack,"",@progbits', ""]
    return "\n".join(out)


def header(name: str, arity: int, comment: list[str]) -> str:
    guard = f"MELVIN_{name.upper()}_H"
    args = ", ".join(f"uint64_t x{i}" for i in range(arity))
    return "\n".join([f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "", "/*"]
                     + [f" * {line}" for line in comment] + [" */", "#ifdef __cplusplus", 'extern "C" {',
                                                             "#endif", "", f"uint64_t {name}({args});", "",
                                                             "#ifdef __cplusplus", "}", "#endif", "",
                                                             f"#endif /* {guard} */", ""])


def export(run_dir: Path, name: str | None = None, out: Path | None = None, rank: int = 0) -> list[Path]:
    """Write ``NAME.s`` and ``NAME.h`` for the run's genome; returns their paths.

    Raises :class:`RunLoadError` / ``ValueError`` (one line) before anything is written."""
    run = load_run(run_dir)
    genome = run.genome(rank)
    task = run.task()
    isa = get_isa(run.isa)
    name = name or "melvin_" + re.sub(r"\W", "_", task.name)
    if not _IDENT.match(name):
        raise ValueError(f"--name {name!r} is not a C identifier")
    solved = bool(run.result and run.result.get("solved")) and rank == 0
    comment = [f"{name}: {task.name} ({task.description}), evolved by Melvin on {isa.name}",
               f"source run {run.folder} (seed {run.seed}); "
               + ("validated on the run's held-out cases" if solved else "NOT a validated solution"),
               f"inputs {', '.join(isa.arg_regs[:task.arity])} -> result {isa.ret_reg}; callable from C"]
    source = (arm64_source if isa.name == "arm64" else x86_64_source)(name, genome.code, comment)
    out = Path(out) if out is not None else Path(run_dir) / "export"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    from evolve.runfolder import atomic_write
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.s", out / f"{name}.h"]
    atomic_write(paths[0], source)
    atomic_write(paths[1], header(name, task.arity, comment))
    return paths


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser("export", help="write a run's genome as a C-callable assembly function",
                               description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a run folder written by python -m evolve run")
    ap.add_argument("--name", default=None, help="C function name (default melvin_<task>)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/export)")
    ap.add_argument("--rank", type=int, default=0, help="0: the run's best; K: hall of fame entry K")
    ap.set_defaults(run=run)


def run(args) -> int:
    try:
        paths = export(args.run_dir, args.name, args.out, args.rank)
    except (RunLoadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0
