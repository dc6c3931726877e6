"""What ``python -m evolve optimize`` hands back: the replacement as GNU assembly ready to paste,
and ``report.md`` / ``report.json`` (before and after, estimated cycles, the proof).

:func:`gnu_function` writes a code as a whole function for GNU as: capstone's text with branch
targets as local labels, a ``ret`` at the end, and, only where the code uses the scratch area
(``[sp, #k]``, which in Melvin's convention lies above SP), a frame of its own around it so that
the caller's stack is never written: ``sub sp, sp, #N`` on entry and ``add sp, sp, #N`` at the
one exit (early returns become branches to it). The text is assembled again by keystone and
compared with the code (:func:`check_paste`), so what the report shows is what was proven.
"""
from __future__ import annotations

from core.asm import disassembler
from evolve import cost as K

_REG, _IMM, _MEM = 1, 2, 3
_BRANCHES = ("b", "cbz", "cbnz", "tbz", "tbnz")
_RET = 0xD65F03C0


def _uses_stack(insn) -> bool:
    return any(o.type == _MEM and o.mem.base and insn.reg_name(o.mem.base) == "sp" for o in insn.operands) or \
        any(o.type == _REG and insn.reg_name(o.reg) in ("sp", "wsp") for o in insn.operands)


def body_lines(code: bytes, label: str = ".Lmelvin") -> tuple[list[str], bool]:
    """(GNU assembly lines of ``code``, a body: branches to local labels, an ``ret`` inside it
    as ``b <label>_end``; whether it uses the stack)."""
    cs = disassembler("arm64", detail=True)
    n = len(code) // 4
    insns = [next(cs.disasm(code[4 * k:4 * k + 4], 4 * k, 1), None) for k in range(n)]
    targets, stack = {}, False
    for insn in insns:
        if insn is None:
            continue
        stack |= _uses_stack(insn)
        m = insn.mnemonic
        if m in _BRANCHES or m.startswith("b."):
            t = int(insn.operands[-1].imm)
            targets.setdefault(t, f"{label}_{len(targets)}" if t < len(code) else f"{label}_end")
    lines = []
    for k, insn in enumerate(insns):
        if 4 * k in targets:
            lines.append(f"{targets[4 * k]}:")
        if insn is None:
            lines.append(f".inst {int.from_bytes(code[4 * k:4 * k + 4], 'little'):#010x}")
            continue
        m, ops = insn.mnemonic, insn.op_str
        if m in _BRANCHES or m.startswith("b."):
            head = ops.rsplit(",", 1)[0] + ", " if "," in ops else ""
            ops = head + targets[int(insn.operands[-1].imm)]
        elif m == "ret":
            if k == n - 1:
                break
            m, ops = "b", f"{label}_end"
            targets.setdefault(len(code), f"{label}_end")
        lines.append(f"{m} {ops}".strip())
    if len(code) in targets or any(v.endswith("_end") for v in targets.values()):
        lines.append(f"{label}_end:")
    return lines, stack


def scratch_bytes(code: bytes) -> int:
    """Bytes of the scratch area ``[sp, sp + N)`` that ``code`` reaches, rounded up to 16 (SP's
    alignment); 0 when it does not touch SP."""
    from evolve.frame import _access_size
    cs = disassembler("arm64", detail=True)
    top = 0
    for insn in cs.disasm(code, 0):
        for o in insn.operands:
            if o.type == _MEM and o.mem.base and insn.reg_name(o.mem.base) == "sp":
                top = max(top, int(o.mem.disp) + _access_size(insn), 16)
        if _uses_stack(insn):
            top = max(top, 16)
    return -(-top // 16) * 16


#: registers a replacement may not leave changed (AAPCS64: callee-saved, the platform register,
#: the frame and link registers, the low halves of v8-v15)
PRESERVED = tuple(f"x{k}" for k in range(18, 31)) + tuple(f"v{k}" for k in range(8, 16)) + ("sp",)


def clobbers(code: bytes) -> list[str]:
    """The registers of :data:`PRESERVED` that ``code`` writes (the proofs are about x0 only)."""
    cs = disassembler("arm64", detail=True)
    out = set()
    for insn in cs.disasm(code, 0):
        _reads, writes = K._effects(insn)
        out |= {w for w in writes if isinstance(w, str) and w in PRESERVED}
    return sorted(out)


def gnu_function(code: bytes, name: str, frame: bool = True) -> str:
    """``code`` (a body or a function) as a GNU assembly function ``name`` (see the module
    docstring); ``frame`` False: the code keeps its own stack frame (a target as it was)."""
    body, _stack = body_lines(code, f".L{name}")
    size = scratch_bytes(code) if frame else 0
    out = ["\t.text", "\t.align\t2", f"\t.global\t{name}", f"\t.type\t{name}, %function", f"{name}:"]
    if size:
        out.append(f"\tsub\tsp, sp, #{size}\t// the scratch area it uses, as a frame of its own")
    out += [line if line.endswith(":") else f"\t{line}" for line in body]
    if size:
        out.append(f"\tadd\tsp, sp, #{size}")
    out += ["\tret", f"\t.size\t{name}, .-{name}", ""]
    return "\n".join(out)


def check_paste(text: str, code: bytes) -> str:
    """'' when ``text`` (from :func:`gnu_function`) assembles back to ``code`` (plus its frame
    and ``ret``); else what differs."""
    import keystone

    from core.asm import _engine
    from core.isa import get_isa
    lines = [line.split("//")[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not (line.startswith(".") and not line.endswith(":"))]
    lines = [line for line in lines if not line.endswith(":") or line.startswith(".L")]
    try:
        words, _ = _engine(get_isa("arm64")).asm("\n".join(lines) + "\n")
    except keystone.KsError as exc:
        return f"keystone cannot assemble it: {exc}"
    got = [int.from_bytes(bytes(words[i:i + 4]), "little") for i in range(0, len(words), 4)]
    body = [int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)]
    if body and body[-1] == _RET:
        body = body[:-1]
    frame = 1 if "// the scratch area it uses" in text else 0
    if len(got) != frame + len(body) + frame + 1 or got[-1] != _RET:
        return f"the pasted text assembles to {len(got)} words, not {frame + len(body) + frame + 1}"
    for k, word in enumerate(body):
        g = got[frame + k]
        if g != word and not (word == _RET and g >> 26 == 0b000101):     # an early return: b to the exit
            return f"the pasted text's instruction {k} assembles to {g:#010x}, not the proven {word:#010x}"
    return ""


def summary(code: bytes) -> dict:
    """Instructions, length and estimated Cortex-A78AE cycles of ``code``."""
    steps = K.schedule(code)
    return {"instructions": [s.text for s in steps], "length": K.length(code),
            "cycles": max((s.done for s in steps), default=0), "code_hex": code.hex()}


def markdown(report: dict) -> str:
    """report.md from report.json's content."""
    t, before, after = report["target"], report["before"], report["after"]
    lines = [f"# Melvin optimize: {t['name']}", "",
             f"Target: `{t['path'] or 'hex'}` ({t['source']}), function `{t['name']}`, {t['arguments']} argument(s) "
             f"in x0.., result {t['result']}; cost {report['cost_metric']}; {report['seconds']:.1f} s.", ""]
    if report["improved"]:
        lines.append(f"**{before['length']} -> {after['length']} instructions, ~{before['cycles']} -> "
                     f"~{after['cycles']} estimated {K.CORE} cycles**, equivalence {after['verification']['equivalence']}.")
    else:
        lines.append(f"No proven-equivalent replacement cheaper than the target was found ({report['why']}).")
    lines += ["", "## Before", "", "```", *before["instructions"], "```", "", "## After", "", "```",
              *after["instructions"], "```", "", "## The proof", ""]
    v = after["verification"]
    lines += [f"- equivalence: {v['equivalence']}; independence: {v['independence']} "
              f"({v['cases']} held-out cases; {v['solver']}, {v['seconds']} s){'; ' + v['note'] if v.get('note') else ''}",
              f"- what was compared: {report['proof_scope']}", ""]
    lines += ["## Searches", ""]
    for s in report["searches"]:
        lines.append(f"- {s['name']}: {s['summary']} (`{s['folder']}`)")
    lines += ["", "## Replacement (GNU assembly, ready to paste)", "", "```asm", report["replacement_asm"].rstrip(),
              "```", ""]
    if report.get("paste_check"):
        lines += [f"Note: {report['paste_check']}", ""]
    return "\n".join(lines)
