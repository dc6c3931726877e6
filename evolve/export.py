"""``python -m evolve export RUN_DIR``: an evolved genome as a C-callable function.

Writes ``NAME.s`` (GNU as) and ``NAME.h`` (``uint64_t NAME(uint64_t, ...)``) into ``--out``
(default ``RUN_DIR/export``) from the run's ``result.json["best"]``: the cheapest verified
program once the optimisation phase ran. The genome keeps Melvin's calling convention (inputs in
x0..x3 / rdi, rsi, rdx, rcx, result in x0 / rax, a scratch area reachable from the stack); the
export gives it only the frame it needs, decided per genome from what its code reads and writes
(capstone's register access lists and operands, :func:`leaf_obstacle`):

* **a leaf** (no memory access, no stack pointer, no system register, no call or indirect
  branch, no callee-saved register, every branch inside the body) is emitted bare: its
  instructions and a ``ret`` (none added when the body already ends with one and no branch
  targets its end), which is what a compiler writes for such a function. A ``ret`` inside the body returns straight to the C
  caller with x30 / the return address untouched, which is what the executor's early return
  means too;
* **every other genome** (and one capstone cannot decode: it may do anything) gets the full
  wrapper:

  * it saves the callee-saved registers the genome writes (found with capstone's register
    access lists; an instruction capstone cannot decode is assumed to write everything):
    x19-x28 and the low halves of v8-v15 on arm64, rbx and r12-r15 on x86-64; the frame record
    (x29, x30 / rbp) is always saved; on arm64 also FPCR (rounding mode and friends, which
    AAPCS64 asks a callee to keep) when the genome may write it (``msr fpcr``);
  * it keeps the caller's stack pointer in a callee-saved register the genome does not write,
    so a genome that moves SP cannot unbalance the caller's stack;
  * on arm64 it reserves the 256-byte scratch area below the saved registers (``[sp, sp+256)``
    at the genome's entry, 16-byte aligned); on x86-64 the genome's scratch is the red zone,
    which is the callee's to use;
  * the genome runs as a local subroutine (``bl`` / ``call``) ending with the return the
    executor appends, so an early return inside it lands back in the wrapper.

``--frame full`` forces the wrapper on a leaf too. The genome's bytes are emitted verbatim
(``.inst`` words / ``.byte`` lists) with the disassembly as comments: Melvin's relative branch
text never needs re-encoding by ``as``, and a branch keeps its target because the body's layout
(instructions, then the return) is the executor's.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import capstone

from core.asm import disassembler, listing
from core.isa import get_isa
from evolve import results as R
from evolve.runload import RunLoadError, load_run

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARM64_CALLEE = tuple(f"x{i}" for i in range(19, 29))
ARM64_CALLEE_SIMD = tuple(f"v{i}" for i in range(8, 16))
X86_CALLEE = ("rbx", "r12", "r13", "r14", "r15")
SCRATCH = 256
FRAMES = ("auto", "full")
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


#: Registers a frameless leaf may touch: the caller-saved ones (AAPCS64: x0-x18 on Linux, where
#: x18 is a temporary, v0-v7 and v16-v31, the flags; System V: rax, rcx, rdx, rsi, rdi, r8-r11,
#: xmm0-15, the flags). Anything else (sp, x19-x30, v8-v15, FPCR, rbx, rbp, rsp, r12-r15, x87,
#: MXCSR, ...) needs the wrapper, read or written: a whitelist, so a register this list forgot
#: costs a frame, never correctness.
_LEAF_REGS = {
    "arm64": {f"x{i}" for i in range(19)} | {f"v{i}" for i in (*range(8), *range(16, 32))}
    | {"xzr", "wzr", "nzcv", "fpsr"},
    "x86_64": {r for base in ("ax", "cx", "dx") for r in (f"r{base}", f"e{base}", base, f"{base[0]}l", f"{base[0]}h")}
    | {r for base in ("si", "di") for r in (f"r{base}", f"e{base}", base, f"{base}l")}
    | {f"r{i}{s}" for i in range(8, 12) for s in ("", "d", "w", "b")}
    | {f"{k}mm{i}" for k in "xy" for i in range(16)} | {"rflags", "eflags", "flags"},
}
#: arm64 mnemonics that reach memory or depend on where the code sits (a literal ``ldr x0, #8``
#: shows only a register and an immediate operand in capstone's lists)
_ARM64_MEMORY = re.compile(r"^(ld|st|prf|cas|swp|dc|ic|at|tlbi|sys|adr)")
#: traps, hints, barriers, system and pointer-authentication instructions (capstone 5 puts
#: most arm64 ones in no group), and x86-64's undefined instructions and the direction flag
_SYSTEM = {"arm64": re.compile(r"^(udf|brk|hlt|hvc|smc|svc|eret|drps|wf[ei]|sev|yield|hint|clrex|isb|dsb|dmb"
                               r"|msr|mrs|sys|bti|pac|aut|xpac|reta)"),
           "x86_64": re.compile(r"^(ud[012]|std|push|pop|leave|enter)")}
_PLAIN_OPERANDS = (capstone.CS_OP_REG, capstone.CS_OP_IMM, capstone.CS_OP_FP)


def _is_ret(insn, isa: str) -> bool:
    """A plain return through the link register / the return address on the stack."""
    return insn.mnemonic == "ret" and not insn.op_str


def ends_with_ret(code: bytes, isa: str) -> bool:
    """Whether the body's last instruction is a plain ``ret`` and no branch jumps past it: then
    the return the executor appends is dead code and the export leaves it out."""
    cs = disassembler(isa, detail=True)
    insns = [next(cs.disasm(chunk, offset, 1), None) for offset, chunk, _ in listing(code, isa)]
    if not insns or insns[-1] is None or not _is_ret(insns[-1], isa):
        return False
    for insn in insns:
        if insn is None:
            return False        # it might branch anywhere, the appended return included
        if {insn.group_name(g) for g in insn.groups} & {"jump", "call"}:
            ops = insn.operands
            if not ops or ops[-1].type != capstone.CS_OP_IMM or ops[-1].imm >= len(code):
                return False
    return True


def _insn_obstacle(insn, isa: str, size: int) -> str | None:
    """Why one decoded instruction (at its own offset of a ``size``-byte body) needs a frame."""
    groups = {insn.group_name(g) for g in insn.groups}
    if _is_ret(insn, isa):
        return None     # back to the caller, x30 / the return address untouched
    if groups & {"call", "int", "iret", "privilege", "return"} or _SYSTEM[isa].match(insn.mnemonic):
        return "a call, a trap, a system or stack instruction, or a return through another register"
    if isa == "arm64" and _ARM64_MEMORY.match(insn.mnemonic):
        return "a memory access or a PC-relative address"
    for op in insn.operands:
        lea = isa == "x86_64" and insn.mnemonic == "lea" and op.type == capstone.CS_OP_MEM
        if op.type not in _PLAIN_OPERANDS and not lea:
            return "a memory or system-register operand"
    if "jump" in groups:
        target = insn.operands[-1] if insn.operands else None    # cbz x0, T / tbz x0, #3, T / jne T
        if target is None or target.type != capstone.CS_OP_IMM or not 0 <= target.imm <= size:
            return "a branch through a register or out of the body"
    reads, writes = insn.regs_access()
    names = {insn.reg_name(r) for r in (*reads, *writes)}
    names |= {insn.reg_name(op.reg) for op in insn.operands if op.type == capstone.CS_OP_REG}
    if isa == "x86_64":
        names |= {insn.reg_name(r) for op in insn.operands if op.type == capstone.CS_OP_MEM
                  for r in (op.mem.base, op.mem.index) if r}
    outside = sorted(n for n in names if _canonical(isa, n) not in _LEAF_REGS[isa] and n not in _LEAF_REGS[isa])
    if isa == "arm64" and "fpcr" in outside and all(insn.reg_name(r) != "fpcr" for r in writes):
        outside.remove("fpcr")      # FP arithmetic reads the rounding mode; only writing it matters
    return f"register {', '.join(outside)}" if outside else None


def leaf_obstacle(code: bytes, isa: str) -> str | None:
    """None when ``code`` can be a frameless leaf, else why not (the first instruction that needs
    the wrapper, with its offset). Conservative: an instruction capstone cannot decode, or whose
    details it does not have, needs the wrapper."""
    cs = disassembler(isa, detail=True)
    for offset, chunk, text in listing(code, isa):
        # decoded at its own offset, so a branch operand is its target inside the body
        insn = next(cs.disasm(chunk, offset, 1), None)
        try:
            why = "capstone cannot decode it" if insn is None else _insn_obstacle(insn, isa, len(code))
        except capstone.CsError as exc:
            why = f"capstone has no details for it ({exc})"
        if why:
            return f"{text} at offset {offset}: {why}"
    return None


def _body_lines(code: bytes, isa: str) -> list[str]:
    """The genome's bytes verbatim, its disassembly as comments, and the return the executor
    appends (unless it ends with its own)."""
    def data(chunk: bytes) -> str:
        if isa == "arm64":
            return f".inst {int.from_bytes(chunk, 'little'):#010x}"
        return f".byte {', '.join(f'{b:#04x}' for b in chunk)}"
    out = [f"\t{data(chunk)}\t/* {text} */" for _, chunk, text in listing(code, isa)]
    return out if ends_with_ret(code, isa) else out + ["\tret"]


def _leaf_source(name: str, code: bytes, comment: list[str], isa: str) -> str:
    """A frameless leaf: the genome is the function (see the module docstring)."""
    kind = "%function" if isa == "arm64" else "@function"
    head = ["\t.text", "\t.p2align 2"] if isa == "arm64" else ["\t.intel_syntax noprefix", "\t.text"]
    note = "%progbits" if isa == "arm64" else "@progbits"
    return "\n".join([f"/* {line} */" for line in comment]
                     + ["/* frame: none (a leaf: no stack, scratch, system or callee-saved register) */"]
                     + head + [f"\t.globl {name}", f"\t.type {name}, {kind}", f"{name}:"] + _body_lines(code, isa)
                     + [f"\t.size {name}, .-{name}", f'\t.section .note.GNU-stack,"",{note}', ""])


def arm64_source(name: str, code: bytes, comment: list[str], frame: str = "auto") -> str:
    """GNU as source of the genome as an AAPCS64 function: a bare leaf when ``frame`` is auto
    and the code allows it, else the wrapper plus the genome (see the module docstring)."""
    why = leaf_obstacle(code, "arm64") if frame == "auto" else "--frame full"
    if why is None:
        return _leaf_source(name, code, comment, "arm64")
    comment = comment + [f"frame: the full wrapper ({why})"]
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
    out += ["\tldp x29, x30, [sp], #16", "\tret", "\t.p2align 2", f"{body}:"] + _body_lines(code, "arm64")
    out += [f"\t.size {name}, .-{name}", '\t.section .note.GNU-stack,"",%progbits', ""]
    return "\n".join(out)


def x86_64_source(name: str, code: bytes, comment: list[str], frame: str = "auto") -> str:
    """GNU as (Intel syntax) source of the genome as a System V function: a bare leaf when
    ``frame`` is auto and the code allows it, else the wrapper plus the genome."""
    why = leaf_obstacle(code, "x86_64") if frame == "auto" else "--frame full"
    if why is None:
        return _leaf_source(name, code, comment, "x86_64")
    comment = comment + [f"frame: the full wrapper ({why})"]
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
    out += [f"\tpop {r}" for r in reversed(saved)] + ["\tpop rbp", "\tret", f"{body}:"] + _body_lines(code, "x86_64")
    out += [f"\t.size {name}, .-{name}", '\t.section .note.GNU-stack,"",@progbits', ""]
    return "\n".join(out)


def header(name: str, arity: int, comment: list[str]) -> str:
    guard = f"MELVIN_{name.upper()}_H"
    args = ", ".join(f"uint64_t x{i}" for i in range(arity))
    return "\n".join([f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "", "/*"]
                     + [f" * {line}" for line in comment] + [" */", "#ifdef __cplusplus", 'extern "C" {',
                                                             "#endif", "", f"uint64_t {name}({args});", "",
                                                             "#ifdef __cplusplus", "}", "#endif", "",
                                                             f"#endif /* {guard} */", ""])


def export(run_dir: Path, name: str | None = None, out: Path | None = None, rank: int = 0,
           frame: str = "auto") -> list[Path]:
    """Write ``NAME.s`` and ``NAME.h`` for the run's genome; returns their paths. ``frame``:
    ``auto`` (a bare leaf where the code allows it) or ``full`` (always the wrapper).

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
    if solved:
        try:        # what the run established and how far its optimisation phase got
            lines = ([f"verification: {R.verification_line(run.result['verification'])}"]
                     if isinstance(run.result.get("verification"), dict) else []) + R.optimisation_lines(run.result)
        except (KeyError, TypeError):   # a record of another Melvin version: these are only comments
            lines = []
        comment[2:2] = lines
    if frame not in FRAMES:
        raise ValueError(f"--frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    source = (arm64_source if isa.name == "arm64" else x86_64_source)(name, genome.code, comment, frame)
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
    ap.add_argument("--frame", choices=FRAMES, default="auto",
                    help="auto: a bare leaf (body and ret) when the genome touches no stack, scratch, "
                         "system or callee-saved register, else the full wrapper; full: always the wrapper")
    ap.set_defaults(run=run)


def run(args) -> int:
    try:
        paths = export(args.run_dir, args.name, args.out, args.rank, args.frame)
    except (RunLoadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0
