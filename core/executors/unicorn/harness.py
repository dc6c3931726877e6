"""The emulator's call harness: machine code that loops over genomes and cases by itself.

The harness keeps no loop state in general registers, because a genome may clobber every one.
Its invariant between cases: every non-argument register holds its per-batch random value and
the scratch area holds its template.

* arm64, fast lane: each genome's slot (:func:`arm64_slot`) loops over the cases itself: it
  loads the inputs, runs the genome, stores x0, restores exactly the registers and scratch words
  the genome wrote (known statically, see ``triage``) and branches to its next case or to
  ``next_genome``. Loop state lives in d24-d31, which fast-lane code never touches. After a
  fault the backend (or, for a rewritten udf/svc/brk, the guest itself through ``trap_fault``)
  records the outcome and resumes at ``fault_reset``, which rebuilds the whole state and skips
  the faulted case, without leaving emulation for interrupts.
* arm64 slow lane and x86-64: state in memory (the control block), one genome call per case;
  x86-64 fast-lane slots append an epilogue that restores what the genome wrote.

The memory map (regions, control block and state block offsets) is
:mod:`core.executors.memory_map`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import keystone

from core.asm import disassembler
from core.executors.batch_state import X86_RAND_SLOT
from core.executors.interp.decoder import NOP, RET
from core.executors.memory_map import (CTL_IN_BASE, CTL_IN_END, CTL_RET, CTL_SIMD, CTL_SP, CTL_STATES, DATA_BASE,
                                      HARNESS_BASE,
                                      RAND_OFF, SCRATCH_TMPL_OFF, SIMD_OFF, ST_ENTRY, ST_IN, ST_OUT, STATE_BASE,
                                      genome_sp)
from core.isa import Isa
from core.outcome import Outcome


@dataclass(frozen=True)
class Harness:
    code: bytes
    full_reset: int   #: rebuild every register, the scratch and SP, then run the current case
    case_stored: int  #: reached right after a case's output is stored (stop here: one case)
    all_done: int     #: reached when the last case of the batch is stored
    sp_init: int      #: stack pointer before the call (arm64: the genome's SP)
    scratch_base: int  #: lowest address of the scratch area
    ret_point: int = 0  #: x86: where genomes return to (the harness pushes it from the control block)
    fault_reset: int = 0  #: arm64 fast mode: rebuild the state, skip the current case, go on
    next_genome: int = 0  #: arm64 fast mode: where a slot goes when its cases are done
    trap_fault: int = 0  #: arm64 fast mode: a rewritten trap of outcome x0 (see ``arm64_slot``)


def _arm64_source(scratch: int) -> tuple[list[str], int, int]:
    """arm64 harness.

    Slow mode (one case per ``emu_start``) reads its state from the control block and enters
    the genome with ``blr``. Fast mode runs the case loop inside each genome's slot (see
    :func:`arm64_slot`); the harness only moves from one genome to the next and rebuilds the
    state after a fault. Its loop state lives in d26-d31, which fast-lane genomes never touch:
    in this Unicorn build a guest store is dear and an indirect branch costs a TB lookup, so the
    loop keeps both out of the per-case path (one output store, one ``br`` per case)."""
    sp_init = genome_sp("arm64", scratch)
    base = f"movz x16, #{DATA_BASE >> 16}, lsl #16"
    src = ["full_reset:", base,
           f"ldr x17, [x16, #{CTL_SP}]", "mov sp, x17"]
    for k in range(0, scratch, 8):
        src += [f"ldr x9, [x16, #{SCRATCH_TMPL_OFF + k}]", f"str x9, [x17, #{k}]"]
    src += [f"ldp x{r}, x{r + 1}, [x16, #{RAND_OFF + 8 * r}]" for r in (4, 6, 8, 12, 14, 18, 20, 22, 24, 26, 28)]
    # x30 as the slow lane's genome sees it, so that both lanes agree on code that reads it
    src += [f"ldr x11, [x16, #{RAND_OFF + 88}]", "adr x30, slow_ret",
            f"ldr x17, [x16, #{CTL_SIMD}]", "cbz x17, fast_resume",
            f"add x9, x16, #{SIMD_OFF}"]
    src += [f"ldp q{2 * i}, q{2 * i + 1}, [x9, #{32 * i}]" for i in range(16)]
    # slow mode: exactly one case, state in memory; stop at case_stored
    state = f"movz x17, #{STATE_BASE >> 32}, lsl #32"
    src += [state, f"ldp x9, x10, [x17, #{ST_IN}]",
            "ldr x30, [x10]", "ldp x0, x1, [x9]", "ldp x2, x3, [x9, #16]",
            "cmp x16, x16",  # NZCV identical for every case
            f"ldp x9, x10, [x16, #{RAND_OFF + 72}]",
            f"ldp x16, x17, [x16, #{RAND_OFF + 128}]",
            "blr x30",
            "slow_ret:", state, f"ldr x17, [x17, #{ST_OUT}]", "str x0, [x17]",
            "case_stored:", "nop"]
    # fast mode, entered after a fault (and, with d30 = in_end - 32 and d31 = outputs - 8, at the
    # start of a chunk): skip the case that faulted, then continue with its genome or the next
    src += ["fast_resume:",
            f"ldp x9, x10, [x16, #{RAND_OFF + 72}]",
            "fmov x0, d31", "add x0, x0, #8", "fmov d31, x0",
            "fmov x0, d30", "add x0, x0, #32", "fmov d30, x0",
            "fmov x1, d29", "cmp x0, x1",
            f"ldp x16, x17, [x16, #{RAND_OFF + 128}]",
            "b.hs next_genome",
            "fmov x0, d27", "ldr x0, [x0]", "br x0",
            # a slot whose cases are done branches here: first case of the next entry
            "next_genome:", "fmov x0, d26", "fmov d30, x0",
            "fmov x0, d27", "add x0, x0, #8", "fmov d27, x0", "ldr x0, [x0]", "br x0",
            # a trap the slot rewrote (see arm64_slot), outcome in x0: its class goes to the
            # class table (d24 bytes past the output table), then the faulted case is skipped
            "trap_fault:", "fmov x1, d31", "fmov x2, d24", "str x0, [x1, x2]", "b full_reset",
            "all_done:", "nop"]
    return src, sp_init, sp_init


def _x86_source(scratch: int) -> tuple[list[str], int, int]:
    """x86-64 harness. Keystone encodes ``[imm]`` as ``[rip + imm]``, so every data access goes
    through r9 = DATA_BASE, and the genome is entered with push/push/ret (return point and entry
    read through r9) so that r9 can take its random value just before the jump."""
    # At entry rsp = sp_init - 8 with the return address at [rsp]; the genome's red zone (its
    # scratch) is [sp_init - 8 - scratch, sp_init - 8).
    sp_init = genome_sp("x86_64", scratch) + 8
    scratch_base = sp_init - 8 - scratch

    def q(off: int) -> str:
        return f"qword ptr [r9 + {off}]"

    def rnd(reg: str) -> str:
        return q(RAND_OFF + 8 * X86_RAND_SLOT[reg])

    base = f"mov r9d, {DATA_BASE}"
    src = ["full_reset:", base, f"mov rsp, {q(CTL_SP)}", f"mov r10, {scratch_base}"]
    for k in range(0, scratch, 8):
        src += [f"mov rax, {q(SCRATCH_TMPL_OFF + k)}", f"mov qword ptr [r10 + {k}], rax"]
    src += [f"cmp {q(CTL_SIMD)}, 0", "je no_simd"]
    src += [f"movdqu xmm{i}, xmmword ptr [r9 + {SIMD_OFF + 16 * i}]" for i in range(16)]
    src += ["no_simd:"]
    src += [f"mov {r}, {rnd(r)}" for r in ("rbx", "rbp", "r8", "r12", "r13", "r14", "r15")]
    state = f"movabs r11, {STATE_BASE}"
    src += ["call_case:", base, state,
            f"mov r10, qword ptr [r11 + {ST_IN}]",
            "mov rdi, qword ptr [r10]", "mov rsi, qword ptr [r10 + 8]",
            "mov rdx, qword ptr [r10 + 16]", "mov rcx, qword ptr [r10 + 24]",
            f"mov r10, qword ptr [r11 + {ST_ENTRY}]",
            f"push {q(CTL_RET)}", "push qword ptr [r10]",
            f"mov rax, {rnd('rax')}", f"mov r10, {rnd('r10')}", f"mov r11, {rnd('r11')}",
            "cld", "cmp r9, r9",  # direction and arithmetic flags identical for every case
            f"mov r9, {rnd('r9')}",
            "ret",   # into the genome, with its return address below
            "ret_point:", base, state,
            f"mov r10, qword ptr [r11 + {ST_OUT}]", "mov qword ptr [r10], rax", "add r10, 8",
            f"mov qword ptr [r11 + {ST_OUT}], r10",
            "case_stored:",
            f"mov r10, qword ptr [r11 + {ST_IN}]", "add r10, 32",
            f"mov rax, qword ptr [r11 + {ST_ENTRY}]", "lea rcx, [rax + 8]",
            f"cmp r10, {q(CTL_IN_END)}",
            f"cmovae r10, {q(CTL_IN_BASE)}", "cmovae rax, rcx",
            f"mov qword ptr [r11 + {ST_IN}], r10", f"mov qword ptr [r11 + {ST_ENTRY}], rax",
            "jmp call_case", "all_done:", "nop"]
    return src, sp_init, scratch_base


def build_harness(isa: Isa, scratch: int) -> Harness:
    """Assemble the harness for ``isa`` with a scratch area of ``scratch`` bytes (multiple of 16)."""
    src, sp_init, scratch_base = (_arm64_source if isa.name == "arm64" else _x86_source)(scratch)
    ks = keystone.Ks(isa.ks_arch, isa.ks_mode)
    text = "\n".join(line if line.endswith(":") else "    " + line for line in src)
    code = bytes(ks.asm(text, HARNESS_BASE)[0])
    # Keystone reports no symbols: append a jump to each label and read its target back
    # (code appended at the end cannot move anything before it).
    jump = "b" if isa.name == "arm64" else "jmp"
    addrs = {}
    extra = ("ret_point",) if isa.name == "x86_64" else ("fast_resume", "next_genome", "trap_fault")
    for label in ("full_reset", "case_stored", "all_done") + extra:
        probe = bytes(ks.asm(text + f"\n    {jump} {label}", HARNESS_BASE)[0])
        tail = next(disassembler(isa, detail=True).disasm(probe[len(code):], HARNESS_BASE + len(code), 1))
        addrs[label] = tail.operands[0].imm
    return Harness(code, addrs["full_reset"], addrs["case_stored"], addrs["all_done"], sp_init, scratch_base,
                   addrs.get("ret_point", 0), addrs.get("full_reset", 0) if isa.name == "arm64" else 0,
                   addrs.get("next_genome", 0), addrs.get("trap_fault", 0))


# Fast-lane slot on arm64: PROLOGUE, the genome, then the case's end (output, restores, loop).
# The genome's inputs come from the input table through x0, which then takes its input; x1-x3
# are reloaded every case, so the end of a case may use them freely.
_SLOT_PROLOGUE = ("fmov x0, d30", "ldp x2, x3, [x0, #16]", "ldp x0, x1, [x0]",
                  "cmp x0, x0")  # NZCV identical for every case
_SLOT_STORE = ("fmov x1, d31", "str x0, [x1], #8", "fmov d31, x1")
# Next case of this slot (its address is the current entry, [d27]) or next_genome (d28): one
# TB per slot and one indirect branch per case; a direct loop branch would need a second TB
# per slot for the exit path, more translation per new genome (README: executor figures).
_SLOT_LOOP = ("fmov x0, d30", "add x0, x0, #32", "fmov d30, x0", "fmov x1, d29", "cmp x0, x1",
              "fmov x2, d27", "ldr x2, [x2]", "fmov x3, d28", "csel x0, x2, x3, lo", "br x0")


def state_stride(scratch: int) -> int:
    """Bytes per row of the per-case states table (registers, SIMD, scratch; a power of two)."""
    return 1 << (768 + scratch - 1).bit_length()


def _per_case_prologue(scratch: int) -> tuple[str, ...]:
    """A per-case slot's prologue: the whole entry state of the current case (d30: its input
    row, d26: the first row; ``[DATA_BASE + CTL_STATES]``: the states table), then its inputs.
    Nothing is restored after a case: the next case's prologue loads everything."""
    shift = (state_stride(scratch) // 32).bit_length() - 1
    lines = [f"movz x1, #{DATA_BASE >> 16}, lsl #16", f"ldr x1, [x1, #{CTL_STATES}]",
             "fmov x0, d30", "fmov x2, d26", "sub x2, x0, x2", f"add x1, x1, x2, lsl #{shift}",
             "add x2, x1, #768", "mov x17, sp"]
    lines += ["ldp x0, x3, [x2], #16", "stp x0, x3, [x17], #16"] * (scratch // 16)
    lines += [f"ldp x{r}, x{r + 1}, [x1, #{8 * r}]" for r in range(4, 30, 2)]
    return tuple(lines) + _SLOT_PROLOGUE


@lru_cache(maxsize=None)
def _arm64_words(lines: tuple[str, ...]) -> bytes:
    """The words of ``lines``. A new keystone 0.9.2 engine sometimes refuses everything
    ("Unknown error", even ``movz x1, #24576, lsl #16``: a per-case slot's prologue late in a
    run, lowest_mask seed 1 --no-brain) while the next one made assembles it: one more try."""
    for attempt in range(2):
        ks = keystone.Ks(keystone.KS_ARCH_ARM64, keystone.KS_MODE_LITTLE_ENDIAN)
        try:
            return bytes(ks.asm("\n".join(lines), 0)[0])
        except keystone.KsError:
            if attempt:
                raise


def _ldr(rt: int, rn: int, offset: int) -> int:
    """``ldr x<rt>, [x<rn>, #offset]`` (unsigned, scaled offset)."""
    return 0xF9400000 | (offset // 8) << 10 | rn << 5 | rt


def _ldp(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``ldp x<rt>, x<rt2>, [x<rn>, #offset]`` (signed offset, -512..504)."""
    return 0xA9400000 | ((offset // 8) & 0x7F) << 15 | rt2 << 10 | rn << 5 | rt


def _str_sp(rt: int, offset: int) -> int:
    """``str x<rt>, [sp, #offset]``."""
    return 0xF9000000 | (offset // 8) << 10 | 31 << 5 | rt


@lru_cache(maxsize=1 << 11)   # ~240 bytes each: <= 0.5 MiB (issue 13: bounded caches stay small)
def arm64_restores(clobbered: frozenset[str], scratch_words: frozenset[int]) -> bytes:
    """Words that give back the random values of what a fast-lane genome wrote.

    Encoded bit by bit (not through keystone, slow per call): evolution makes many distinct sets.
    x0-x3 are reloaded by the slot itself; x1 and x2 serve as base and temporary.
    """
    regs = sorted(int(r[1:]) for r in clobbered if r[1:].isdigit() and 3 < int(r[1:]) < 30)
    if not regs and not scratch_words:
        return b""
    words = [0xD2A00001 | (DATA_BASE >> 16) << 5]  # movz x1, #DATA_BASE >> 16, lsl #16
    for w in sorted(scratch_words):
        words += [_ldr(2, 1, SCRATCH_TMPL_OFF + w), _str_sp(2, w)]
    while regs:
        r = regs.pop(0)
        if regs and regs[0] == r + 1:
            regs.pop(0)
            words.append(_ldp(r, r + 1, 1, RAND_OFF + 8 * r))
        else:
            words.append(_ldr(r, 1, RAND_OFF + 8 * r))
    return b"".join(w.to_bytes(4, "little") for w in words)


# Instructions that trap whatever the machine state: (mask, value, outcome). They are rewritten
# in fast-lane slots into a branch to a stub that reports the outcome inside the guest: the same
# outcome at the same point of execution, without the Python hook a trap costs (README: executor figures).
_STATIC_TRAPS = ((0xFFFF0000, 0x00000000, Outcome.SIGILL),    # udf #imm16: permanently undefined
                 (0xFFE0001F, 0xD4000001, Outcome.SYSCALL),   # svc #imm16
                 (0xFFE0001F, 0xD4200000, Outcome.SIGTRAP))   # brk #imm16


def _static_traps(code: bytes) -> dict[int, Outcome]:
    """Word index -> outcome of each instruction of ``code`` that always traps."""
    tops = code[3::4]
    if 0 not in tops and 0xD4 not in tops:
        return {}
    found = {}
    for index, value in enumerate(int.from_bytes(code[i:i + 4], "little") for i in range(0, len(code), 4)):
        for mask, match, outcome in _STATIC_TRAPS:
            if value & mask == match:
                found[index] = outcome
                break
    return found


_RET_BYTES = RET.to_bytes(4, "little")


def returns_as_branches(code: bytes, isa: str = "arm64", trailing_ret: bool = False) -> bytes:
    """``code`` as a fast-lane slot holds it: each ``ret`` (to x30) made a branch to its end.

    A code may be a body (it falls through its end) or a function (it returns with ``ret``, at
    the end or anywhere). Both mean "this case is done": in the slow lane, the interpreter and
    the native backends the genome is entered with x30 = the caller's return point, and the
    ``ret`` goes there. In a fast-lane slot the case's end (output store, restores, loop) follows
    the code, and x30 still holds the slow lane's return point; since triage admits no
    fast-lane code that writes x30, a ``ret`` anywhere is exactly a branch to the code's end.
    So each one becomes ``b <end of code>``, and a trailing one a ``nop`` (a function then costs
    what its body costs, plus one instruction TCG translates into nothing). The code keeps its
    length and every word its offset, so direct branches (to the end included) land where they
    did. Other returns (``ret xN``, ``retaa``, ``eret``) are left alone: triage sends them to
    the slow lane.

    On x86-64 (``isa``) only a trailing one-byte ``ret`` is admitted: triage decodes the code and
    says so (``trailing_ret``; a ``c3`` byte may be part of another instruction), and it becomes a
    ``nop`` before the slot's epilogue. An x86-64 ``ret`` elsewhere cannot become a jump of the
    same length: that code takes the slow lane.

    This is the one place the substitution happens (triage only lets ``ret`` through)."""
    if isa != "arm64":
        return code[:-1] + b"\x90" if trailing_ret else code
    if _RET_BYTES not in code:
        return code
    words = bytearray(code)
    end = len(code) - len(code) % 4
    for off in range(0, end, 4):
        if words[off:off + 4] == _RET_BYTES:
            word = NOP if off + 4 == end else 0x14000000 | (end - off) // 4   # nop, or b <end>
            words[off:off + 4] = word.to_bytes(4, "little")
    return bytes(words)


def arm64_slot(code: bytes, clobbered: frozenset[str], scratch_words: frozenset[int],
               per_case: int | None = None) -> bytes:
    """A fast-lane slot: the case loop around ``code`` (see ``_arm64_source``, fast mode).

    Layout: prologue, code (returns made branches to its end by :func:`returns_as_branches`,
    static traps rewritten as branches to their stubs), output store, restores, loop branch,
    then one stub per trapping outcome (``movz x0, #outcome``, then
    ``br`` to the harness's ``trap_fault``, whose address is in d25). ``per_case``: the scratch
    size of per-case states: the prologue loads each case's own state, and nothing is restored.
    """
    code = returns_as_branches(code)
    if per_case is None:
        prologue = _arm64_words(_SLOT_PROLOGUE)
        restores = arm64_restores(clobbered, scratch_words)
    else:
        prologue, restores = _arm64_words(_per_case_prologue(per_case)), b""
    tail = (_arm64_words(_SLOT_STORE) + restores + _arm64_words(_SLOT_LOOP))
    traps = _static_traps(code)
    if not traps:
        return prologue + code + tail
    words = bytearray(code)
    stub_at = len(prologue) + len(code) + len(tail)
    stubs = {}
    for outcome in sorted(set(traps.values())):
        stubs[outcome] = stub_at + 12 * len(stubs)
    for index, outcome in traps.items():
        offset = stubs[outcome] - (len(prologue) + 4 * index)
        words[4 * index:4 * index + 4] = (0x14000000 | (offset // 4)).to_bytes(4, "little")  # b stub
    stub_code = b"".join((0xD2800000 | int(outcome) << 5).to_bytes(4, "little")  # movz x0, #outcome
                         + _arm64_words(("fmov x1, d25", "br x1")) for outcome in stubs)
    return prologue + bytes(words) + tail + stub_code


def x86_per_case_prologue(scratch: int) -> list[str]:
    """x86-64 fast-lane slot prologue for per-case states: the current case's (``[ST_IN]``'s
    row) whole entry state from the states table, red zone included; the inputs are the
    harness's, the flags left as ``cmp r9, r9`` left them. Nothing is restored after a case."""
    shift = (state_stride(scratch) // 32).bit_length() - 1
    lines = [f"mov r9d, {DATA_BASE}", f"movabs r11, {STATE_BASE}", f"mov r10, qword ptr [r11 + {ST_IN}]",
             f"sub r10, qword ptr [r9 + {CTL_IN_BASE}]", f"shl r10, {shift}",
             f"add r10, qword ptr [r9 + {CTL_STATES}]"]
    for k in range(0, scratch, 8):
        lines += [f"mov rax, qword ptr [r10 + {768 + k}]", f"mov qword ptr [rsp - {scratch - k}], rax"]
    lines += [f"mov {r}, qword ptr [r10 + {8 * X86_RAND_SLOT[r]}]"
              for r in ("rbx", "rbp", "r8", "r12", "r13", "r14", "r15", "rax", "r9", "r11")]
    return lines + ["cmp r9, r9", f"mov r10, qword ptr [r10 + {8 * X86_RAND_SLOT['r10']}]"]


def epilogue_lines(isa: Isa, clobbered: frozenset[str], scratch_words: frozenset[int], sp_init: int,
                   scratch_base: int) -> list[str]:
    """Assembly that restores what a fast-lane genome wrote, then returns.

    ``clobbered``: 64-bit register names the genome writes; ``scratch_words``: byte offsets
    (multiples of 8, from the scratch base) of scratch words it may store to.
    """
    if isa.name == "arm64":
        # x0-x3, x9-x11, x16, x17 are reloaded by the harness itself.
        regs = sorted(int(r[1:]) for r in clobbered if r[1:].isdigit()
                      and int(r[1:]) not in (0, 1, 2, 3, 9, 10, 11, 16, 17, 30))
        if not regs and not scratch_words:
            return ["ret"]
        lines = [f"movz x16, #{DATA_BASE >> 16}, lsl #16"]
        for w in sorted(scratch_words):
            lines += [f"ldr x17, [x16, #{SCRATCH_TMPL_OFF + w}]", f"str x17, [sp, #{w}]"]
        while regs:
            r = regs.pop(0)
            if regs and regs[0] == r + 1 and r % 2 == 0:
                regs.pop(0)
                lines.append(f"ldp x{r}, x{r + 1}, [x16, #{RAND_OFF + 8 * r}]")
            else:
                lines.append(f"ldr x{r}, [x16, #{RAND_OFF + 8 * r}]")
        return lines + ["ret"]
    # x86: keystone encodes [imm] as RIP-relative, so address the data through r10 (the
    # harness reloads r10 and r11 before every call).
    skip = {"rax", "rdi", "rsi", "rdx", "rcx", "r9", "r10", "r11"}  # the harness reloads these
    restore = sorted(r for r in clobbered - skip if r in X86_RAND_SLOT)
    if not restore and not scratch_words:
        return ["ret"]
    red_zone_top = sp_init - 8  # the genome's rsp: the return address sits there
    lines = [f"mov r10d, {DATA_BASE}"]
    for w in sorted(scratch_words):
        lines += [f"mov r11, qword ptr [r10 + {SCRATCH_TMPL_OFF + w}]",
                  f"mov qword ptr [rsp - {red_zone_top - (scratch_base + w)}], r11"]
    lines += [f"mov {r}, qword ptr [r10 + {RAND_OFF + 8 * X86_RAND_SLOT[r]}]" for r in restore]
    return lines + ["ret"]


def misaligned_ordered(word: int, base: int) -> bool:
    """Whether ``word`` is a load/store exclusive or acquire/release (the class at bits 29:24 =
    001000) whose address ``base`` (its Rn, never offset) is misaligned for its access size.

    Such an access takes an alignment fault before any translation fault (Linux: SIGBUS), where
    Unicorn reports an unmapped address first (found by the native-vs-emulator lane: ``ldarh``
    on a random odd address, SIGBUS on a Cortex-A72, SIGSEGV in Unicorn)."""
    if (word >> 24) & 0x3F != 0b001000:
        return False
    size = 1 << (word >> 30)
    if (word >> 21) & 1 and not (word >> 23) & 1:      # exclusive pair: both registers at once
        size *= 2
    return base % size != 0
