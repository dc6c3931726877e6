"""The emulator's call harness: machine code that loops over genomes and cases by itself.

The harness keeps all loop state in memory (the control block), never in registers, because a
genome may clobber every register. Its invariant between cases: every non-argument register
holds its per-batch random value and the scratch area holds its template. Fast-lane genomes
keep the invariant themselves with an *epilogue* appended in their slot that restores exactly
the registers and scratch words they wrote (known statically, see ``triage``), so a clean case
costs ~22 harness instructions. After a fault the backend records the outcome, points the
control block at the next case and restarts at ``full_reset``, which rebuilds the whole state.

Memory map (both ISAs; every region mapped once per executor):

============  ==============  ========================================================
region        address         contents
============  ==============  ========================================================
solo          0x0800_0000     the slow lane's one slot, nothing else within 1 MiB, r-x
arena         0x1000_0000     genome slots (code, epilogue, return, fault padding), r-x
stack         0x2000_0000     64 KiB stack; the scratch area sits at its top, rw-
data          0x6000_0000     control block, random values, scratch template, entry and
                              input tables, r-- (a genome cannot corrupt another's inputs)
state         0x7e00_0000_0000  current case and output table, rw-
harness       0x7000_0000     this code, r-x, > 128 MiB from the arena so no direct
                              branch of a genome can reach it
============  ==============  ========================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import keystone

from core.asm import disassembler
from core.executors.batch_state import X86_RAND_SLOT
from core.isa import Isa

SOLO_BASE = 0x0800_0000    # the slow lane's single slot, isolated: see EmulatedExecutor._load_slow_slot
ARENA_BASE = 0x1000_0000
ARENA_SIZE = 16 << 20
STACK_BASE = 0x2000_0000
STACK_SIZE = 64 << 10
STACK_TOP = STACK_BASE + STACK_SIZE
DATA_BASE = 0x6000_0000
DATA_SIZE = 96 << 20
HARNESS_BASE = 0x7000_0000
HARNESS_SIZE = 64 << 10

# Read-only control block: u64 fields at DATA_BASE. The entry table ends with the address of
# ``all_done``, which stops the loop after the last case.
CTL_IN_END, CTL_IN_BASE, CTL_SP, CTL_SIMD, CTL_RET = 24, 32, 48, 56, 64   # CTL_RET: x86 return point
# The only guest-writable harness memory: the current case (OUT/IN/ENTRY pointers; arm64's fast
# loop keeps them in d28-d30 instead) and the output table, at an address no genome stumbles on.
STATE_BASE = 0x7E00_0000_0000
STATE_SIZE = 128 << 20
ST_OUT, ST_IN, ST_ENTRY = 0, 8, 16
OUTPUTS_OFF = 4096
RAND_OFF = 256             # 32 x u64: value of register k at RAND_OFF + 8k (x86: see X86_RAND_SLOT)
SIMD_OFF = 512             # 32 x 16 bytes
SCRATCH_TMPL_OFF = 1024    # up to 4096 bytes
TABLES_OFF = 8192          # entry table, inputs, outputs (per batch)



@dataclass(frozen=True)
class Harness:
    code: bytes
    full_reset: int   #: rebuild every register, the scratch and SP, then run the current case
    case_stored: int  #: reached right after a case's output is stored (stop here: one case)
    all_done: int     #: reached when the last case of the batch is stored
    sp_init: int      #: stack pointer before the call (arm64: the genome's SP)
    scratch_base: int  #: lowest address of the scratch area
    ret_point: int = 0  #: x86: where genomes return to (the harness pushes it from the control block)


UNROLL = 8  # cases per loop iteration: every taken branch costs Unicorn a TB transition


def _arm64_source(scratch: int) -> tuple[list[str], int, int]:
    """arm64 harness. Fast mode keeps its loop state in d28 (OUT), d29 (IN), d30 (ENTRY), which
    fast-lane genomes never touch: in this Unicorn build every guest store costs ~35 ns (loads
    ~1 ns), so the loop stores nothing but the output. Slow mode (one case per ``emu_start``)
    reads its state from the control block, since slow-lane code sees random SIMD registers."""
    sp_init = STACK_TOP - scratch
    base = f"movz x16, #{DATA_BASE >> 16}, lsl #16"
    src = ["full_reset:", base,
           f"ldr x17, [x16, #{CTL_SP}]", "mov sp, x17"]
    for k in range(0, scratch, 8):
        src += [f"ldr x9, [x16, #{SCRATCH_TMPL_OFF + k}]", f"str x9, [x17, #{k}]"]
    src += [f"ldp x{r}, x{r + 1}, [x16, #{RAND_OFF + 8 * r}]" for r in (4, 6, 8, 12, 14, 18, 20, 22, 24, 26, 28)]
    src += [f"ldr x11, [x16, #{RAND_OFF + 88}]",
            f"ldr x17, [x16, #{CTL_SIMD}]", "cbz x17, call_case",
            f"add x9, x16, #{SIMD_OFF}"]
    src += [f"ldp q{2 * i}, q{2 * i + 1}, [x9, #{32 * i}]" for i in range(16)]
    call = ["ldr x30, [x10]", "ldp x0, x1, [x9]", "ldp x2, x3, [x9, #16]",
            "cmp x16, x16",  # NZCV identical for every case
            f"ldp x9, x10, [x16, #{RAND_OFF + 72}]",
            f"ldp x16, x17, [x16, #{RAND_OFF + 128}]",
            "blr x30"]
    # slow mode: exactly one case, state in memory; stop at case_stored
    state = f"movz x17, #{STATE_BASE >> 32}, lsl #32"
    src += [state, f"ldp x9, x10, [x17, #{ST_IN}]", *call,
            state, f"ldr x17, [x17, #{ST_OUT}]", "str x0, [x17]",
            "case_stored:", "nop"]
    # fast mode, unrolled: call the current case; store x0; advance branch-free (past the last
    # case the entry table's terminal entry is ``all_done``, so the next call ends the loop)
    for u in range(UNROLL):
        src += (["call_case:"] if u == 0 else []) + [
            base, "fmov x9, d29", "fmov x10, d30", *call,
            "fmov x17, d28", "str x0, [x17], #8", "fmov d28, x17",
            "fmov x9, d29", "fmov x10, d30", base,
            "add x9, x9, #32",
            f"ldp x11, x17, [x16, #{CTL_IN_END}]",
            "cmp x9, x11",
            "csel x9, x17, x9, hs",
            "add x11, x10, #8", "csel x10, x11, x10, hs",
            "fmov d29, x9", "fmov d30, x10",
            f"ldr x11, [x16, #{RAND_OFF + 88}]"]
    src += ["b call_case", "all_done:", "nop"]
    return src, sp_init, sp_init


def _x86_source(scratch: int) -> tuple[list[str], int, int]:
    """x86-64 harness. Keystone encodes ``[imm]`` as ``[rip + imm]``, so every data access goes
    through r9 = DATA_BASE, and the genome is entered with push/push/ret (return point and entry
    read through r9) so that r9 can take its random value just before the jump."""
    # At entry rsp = sp_init - 8 with the return address at [rsp]; the genome's red zone (its
    # scratch) is [sp_init - 8 - scratch, sp_init - 8).
    sp_init = STACK_TOP - 64
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
    for label in ("full_reset", "case_stored", "all_done") + (("ret_point",) if isa.name == "x86_64" else ()):
        probe = bytes(ks.asm(text + f"\n    {jump} {label}", HARNESS_BASE)[0])
        tail = next(disassembler(isa, detail=True).disasm(probe[len(code):], HARNESS_BASE + len(code), 1))
        addrs[label] = tail.operands[0].imm
    return Harness(code, addrs["full_reset"], addrs["case_stored"], addrs["all_done"], sp_init, scratch_base,
                   addrs.get("ret_point", 0))


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
