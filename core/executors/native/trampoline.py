"""The native trampoline's text: LLVM IR and the assembly stubs it carries (no execution here).

``ir(isa, scratch)`` is the module :class:`core.executors.native.jit.Machine` compiles with
llvmlite: ``melvin_run`` loops over genomes, ``_setjmp`` before each genome's cases (a crash
comes back to it with the case it was in, kept in the control block), and calls
``melvin_cases``, an assembly stub (module-level asm) that saves the host's callee-saved
registers and SP in the control block once per genome and runs its cases in its own loop: per
case it builds what the genome's entry flags ask for (scratch, SIMD/x87/FP state; a genome
without flags gets a loop that tests nothing; on x86-64, one whose plan keeps the callee-saved
registers gets a loop that holds its state in them and checks them after each case) and
calls the genome's slot, whose prologue loads its registers (``melvin_enter`` does the same for one case: per-case states);
``melvin_handler`` is the signal handler that restores thread state and ``longjmp``s back;
``melvin_load`` writes a batch's slots (one call, no Python per genome). Addresses
and control block offsets are :mod:`core.executors.memory_map`'s.
"""
from __future__ import annotations

import signal

from core.executors.batch_state import X86_RAND_SLOT
from core.executors.memory_map import (BUDGET_NS, CPU0, CTL_BASE, CUR, ENTRIES, ENTRY, HAS_FSGS, IN_GENOME, INPUTS,
                                      CASE, JMPBUF, LAST_CASES, LAST_TICK, LIGHT, OUTCOME_LUT, N_CASES, N_GEN, OUTCOMES, OUTPUTS, RAND, RETRIED,
                                      SAVED_FP, SAVED_REGS, CODE_ENTRIES, WORKER_TID, SAVED_SP, SAVED_TLS, SIG_OUT, SIMD, STACK_TOP, STATES, TMPL,
                                      X86_FP0, LOOP_SLOT, LOOP_IN, LOOP_END, LOOP_OUT, LOOP_KIND, LOOP_SUM, genome_sp)


def _x86_digest(to: str) -> list[str]:
    """``to`` = a digest of the kept loop registers (rotations between them: any one of them
    changed, or two swapped, changes it)."""
    a = [f"mov {to}, rbx"]
    for r in ("rbp", "r13", "r14", "r15"):
        a += [f"rol {to}, 17", f"xor {to}, {r}"]
    return a


def _x86_asm(scratch: int) -> list[str]:
    def m(off: int) -> str:
        return f"qword ptr [{CTL_BASE + off:#x}]"

    saved = ("rbx", "rbp", "r12", "r13", "r14", "r15")
    sp0 = genome_sp("x86_64", scratch)   # the return address at [rsp], the red zone below
    # melvin_enter(slot, row, flags): the slot's prologue loads the registers its genome reads
    # (core.executors.native.prologue); flags (light.entry_flags): 1 refill the red zone,
    # 2 heavy: clear AC/DF, load SIMD/x87/MXCSR state before and run melvin_fixup after
    a = [".intel_syntax noprefix", ".text", ".globl melvin_enter", ".globl melvin_fixup", ".p2align 4",
         "melvin_enter:"]
    a += [f"mov {m(SAVED_REGS + 8 * i)}, {r}" for i, r in enumerate(saved)]
    a += [f"mov {m(SAVED_SP)}, rsp", f"mov {m(ENTRY)}, rdx",
          # clear AC and DF before the genome runs (a genome may set AC; it survives a return)
          "test dl, 2", "jz 1f", "push 0x202", "popfq", "1:",
          f"mov rsp, {sp0 + 8:#x}",            # the call pushes the return address at sp0
          "test dl, 1", "jz 2f"]
    for k in range(0, scratch, 8):
        a += [f"mov rax, {m(TMPL + k)}", f"mov qword ptr [{sp0 - scratch + k:#x}], rax"]
    a += ["2:", "test dl, 2", "jz 3f"]
    a += [f"movdqu xmm{i}, xmmword ptr [{CTL_BASE + SIMD + 16 * i:#x}]" for i in range(16)]
    a += ["fninit", f"ldmxcsr dword ptr [{CTL_BASE + X86_FP0:#x}]", "3:",
          f"mov {m(IN_GENOME)}, 1",
          # a call, so that the genome's ret is predicted (a jmp in costs two mispredictions)
          "call rdi",
          f"mov {m(IN_GENOME)}, 0", f"mov rsp, {m(SAVED_SP)}"]
    a += [f"mov {r}, {m(SAVED_REGS + 8 * i)}" for i, r in enumerate(saved)]
    a += [f"test byte ptr [{CTL_BASE + ENTRY:#x}], 2", "jnz melvin_fixup", "ret"]
    # melvin_cases(slot, inputs, flags, end, outs, kinds): melvin_enter's entry and exit around
    # every case from CASE to end - 1, the host's registers saved once; between cases the loop
    # keeps its state in the control block (LOOP_*, CASE), so a crash's longjmp finds the case
    # it was in, and the output and outcome of case c go to outs[c] and kinds[c]
    f = f"byte ptr [{CTL_BASE + ENTRY:#x}]"
    a += [".globl melvin_cases", ".p2align 4", "melvin_cases:"]
    a += [f"mov {m(SAVED_REGS + 8 * i)}, {r}" for i, r in enumerate(saved)]
    a += [f"mov {m(SAVED_SP)}, rsp", f"mov {m(ENTRY)}, rdx", f"mov {m(LOOP_SLOT)}, rdi", f"mov {m(LOOP_IN)}, rsi",
          f"mov {m(LOOP_END)}, rcx", f"mov {m(LOOP_OUT)}, r8", f"mov {m(LOOP_KIND)}, r9",
          f"mov rax, {m(CASE)}", "cmp rax, rcx", "jae 9f", "test dl, 3", "jnz 5f", "test dl, 4", "jnz 7f", "jmp 6f",
          "5:", f"inc {m(CUR)}", f"mov rsi, {m(LOOP_IN)}", "shl rax, 5", "add rsi, rax",
          f"test {f}, 2", "jz 1f", "push 0x202", "popfq", "1:",
          f"mov rsp, {sp0 + 8:#x}", f"test {f}, 1", "jz 2f"]
    for k in range(0, scratch, 8):
        a += [f"mov rax, {m(TMPL + k)}", f"mov qword ptr [{sp0 - scratch + k:#x}], rax"]
    a += ["2:", f"test {f}, 2", "jz 3f"]
    a += [f"movdqu xmm{i}, xmmword ptr [{CTL_BASE + SIMD + 16 * i:#x}]" for i in range(16)]
    a += ["fninit", f"ldmxcsr dword ptr [{CTL_BASE + X86_FP0:#x}]", "3:",
          f"mov {m(IN_GENOME)}, 1",
          f"call {m(LOOP_SLOT)}",
          f"mov {m(IN_GENOME)}, 0", f"mov rsp, {m(SAVED_SP)}",
          f"test {f}, 2", "jz 4f", "call melvin_fixup", "4:",
          f"mov rcx, {m(CASE)}", f"mov rdx, {m(LOOP_OUT)}", "mov qword ptr [rdx + 8 * rcx], rax",
          f"mov rdx, {m(LOOP_KIND)}", "mov byte ptr [rdx + rcx], 0",
          "inc rcx", f"mov {m(CASE)}, rcx", "mov rax, rcx", f"cmp rcx, {m(LOOP_END)}", "jb 5b", "jmp 9f",
          # the same loop for a genome with no flags (no scratch, not heavy): nothing to test per case
          "6:", f"inc {m(CUR)}", f"mov rsi, {m(LOOP_IN)}", "shl rax, 5", "add rsi, rax",
          f"mov rsp, {sp0 + 8:#x}", f"mov {m(IN_GENOME)}, 1", f"call {m(LOOP_SLOT)}",
          f"mov {m(IN_GENOME)}, 0", f"mov rsp, {m(SAVED_SP)}",
          f"mov rcx, {m(CASE)}", f"mov rdx, {m(LOOP_OUT)}", "mov qword ptr [rdx + 8 * rcx], rax",
          f"mov rdx, {m(LOOP_KIND)}", "mov byte ptr [rdx + rcx], 0",
          "inc rcx", f"mov {m(CASE)}, rcx", "mov rax, rcx", f"cmp rcx, {m(LOOP_END)}", "jb 6b", "jmp 9f",
          # a genome whose plan keeps rbx, rbp, r12-r15 (flags 4: it names none of them, no
          # memory): the loop's state in them, no loads; their digest and the case (r12 against
          # CASE) checked after every case: a genome that wrote one after all kills the worker
          # (ud2 outside genome code), and the owner isolates it as WORKER_LOST. IN_GENOME stays
          # 1 over the loop: between calls it runs only stores into the checked rows
          "7:", "mov r12, rax", "mov rbx, rsi", "mov rbp, rdi", "mov r13, rcx", "mov r14, r8", "mov r15, r9"]
    a += _x86_digest("rdx") + [f"mov {m(LOOP_SUM)}, rdx", f"mov {m(IN_GENOME)}, 1",
          "8:", f"inc {m(CUR)}", f"mov {m(CASE)}, r12", "mov rsi, r12", "shl rsi, 5", "add rsi, rbx",
          f"mov rsp, {sp0 + 8:#x}", "call rbp"]
    a += _x86_digest("rcx") + [f"cmp rcx, {m(LOOP_SUM)}", "jne 10f", f"cmp r12, {m(CASE)}", "jne 10f",
          "mov qword ptr [r14 + 8 * r12], rax", "mov byte ptr [r15 + r12], 0",
          "inc r12", "cmp r12, r13", "jb 8b", f"mov {m(IN_GENOME)}, 0", f"mov {m(CASE)}, r12",
          f"mov rsp, {m(SAVED_SP)}", "jmp 9f",
          "10:", f"mov {m(IN_GENOME)}, 0", "ud2",
          "9:"]
    a += [f"mov {r}, {m(SAVED_REGS + 8 * i)}" for i, r in enumerate(saved)]
    a += ["ret"]
    # melvin_save_env, once per batch: the FP control and TLS base melvin_fixup restores after a
    # heavy genome or a crash (the worker's own never change)
    a += [".globl melvin_save_env", ".p2align 4", "melvin_save_env:",
          f"stmxcsr dword ptr [{CTL_BASE + SAVED_FP:#x}]", f"fnstcw word ptr [{CTL_BASE + SAVED_FP + 4:#x}]",
          f"cmp {m(HAS_FSGS)}, 0", "je 8f", "push rax", "rdfsbase rax", f"mov {m(SAVED_TLS)}, rax", "pop rax",
          "8:", "ret",
          ".p2align 4", "melvin_fixup:",
          # restore what a genome may leave behind: flags (AC, DF), FP control, the x87 stack,
          # and the TLS base (`mov fs, ax` or `wrfsbase` would break libc's thread pointer)
          "push 0x202", "popfq", "fninit",
          f"ldmxcsr dword ptr [{CTL_BASE + SAVED_FP:#x}]", f"fldcw word ptr [{CTL_BASE + SAVED_FP + 4:#x}]",
          f"cmp {m(HAS_FSGS)}, 0", "je 3f", "push rax", "mov ax, fs", "test ax, ax", "je 4f",
          "xor eax, eax", "mov fs, ax", "4:",
          f"mov rax, {m(SAVED_TLS)}", "wrfsbase rax", "pop rax", "3:", "ret", ".att_syntax"]
    return a


def _arm64_asm(scratch: int) -> list[str]:
    c = f"movz x16, #{CTL_BASE >> 16:#x}, lsl #16"
    s = SAVED_REGS
    # melvin_enter(slot, row, flags) as on x86-64: bit 0 refill the scratch, bit 1 heavy (zero
    # TPIDR_EL0, FPCR and FPSR, load v0-v31 before; restore TPIDR_EL0 and FPCR after)
    a = [".text", ".globl melvin_enter", ".globl melvin_fixup", ".p2align 4", "melvin_enter:", c]
    a += [f"stp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"stp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += ["mov x17, sp", f"str x17, [x16, #{SAVED_SP}]", f"str x2, [x16, #{ENTRY}]",
          "mov x9, x0", "mov x17, x1",
          # sp = memory_map.genome_sp("arm64", scratch), that is STACK_TOP - scratch
          f"movz x15, #{STACK_TOP >> 16:#x}, lsl #16", f"sub x15, x15, #{scratch}", "mov sp, x15",
          "tbz x2, #0, 1f", f"add x10, x16, #{TMPL}"]
    a += ["ldp x11, x12, [x10], #16", "stp x11, x12, [x15], #16"] * (scratch // 16)
    a += ["1:", "tbz x2, #1, 2f", "msr tpidr_el0, xzr", "msr fpcr, xzr", "msr fpsr, xzr", f"add x10, x16, #{SIMD}"]
    a += [f"ldp q{2 * i}, q{2 * i + 1}, [x10], #32" for i in range(16)]
    a += ["2:", "mov x15, #1", f"str x15, [x16, #{IN_GENOME}]", f"add x16, x16, #{RAND}",
          "blr x9",
          c, f"str xzr, [x16, #{IN_GENOME}]", f"ldr x17, [x16, #{SAVED_SP}]", "mov sp, x17"]
    a += [f"ldp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"ldp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += [f"ldr x17, [x16, #{ENTRY}]", "tbnz x17, #1, melvin_fixup", "ret"]
    # melvin_cases(slot, inputs, flags, end, outs, kinds): as on x86-64, every case from CASE
    # to end - 1 with the host's registers saved once, the loop's state in the control block
    a += [".globl melvin_cases", ".p2align 4", "melvin_cases:", c]
    a += [f"stp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"stp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += ["mov x17, sp", f"str x17, [x16, #{SAVED_SP}]", f"str x2, [x16, #{ENTRY}]",
          f"str x0, [x16, #{LOOP_SLOT}]", f"str x1, [x16, #{LOOP_IN}]", f"str x3, [x16, #{LOOP_END}]",
          f"str x4, [x16, #{LOOP_OUT}]", f"str x5, [x16, #{LOOP_KIND}]",
          f"ldr x9, [x16, #{CASE}]", "cmp x9, x3", "b.hs 9f", "tst x2, #3", "b.eq 6f",
          "5:", f"ldr x10, [x16, #{CUR}]", "add x10, x10, #1", f"str x10, [x16, #{CUR}]",
          f"ldr x17, [x16, #{LOOP_IN}]", "add x17, x17, x9, lsl #5", f"ldr x2, [x16, #{ENTRY}]",
          f"movz x15, #{STACK_TOP >> 16:#x}, lsl #16", f"sub x15, x15, #{scratch}", "mov sp, x15",
          "tbz x2, #0, 1f", f"add x10, x16, #{TMPL}"]
    a += ["ldp x11, x12, [x10], #16", "stp x11, x12, [x15], #16"] * (scratch // 16)
    a += ["1:", "tbz x2, #1, 2f", "msr tpidr_el0, xzr", "msr fpcr, xzr", "msr fpsr, xzr", f"add x10, x16, #{SIMD}"]
    a += [f"ldp q{2 * i}, q{2 * i + 1}, [x10], #32" for i in range(16)]
    a += ["2:", "mov x15, #1", f"str x15, [x16, #{IN_GENOME}]", f"ldr x9, [x16, #{LOOP_SLOT}]",
          f"add x16, x16, #{RAND}", "blr x9",
          c, f"str xzr, [x16, #{IN_GENOME}]", f"ldr x17, [x16, #{SAVED_SP}]", "mov sp, x17",
          f"ldr x17, [x16, #{ENTRY}]", "tbz x17, #1, 4f", "bl melvin_fixup", c, "4:",
          f"ldr x9, [x16, #{CASE}]", f"ldr x10, [x16, #{LOOP_OUT}]", "str x0, [x10, x9, lsl #3]",
          f"ldr x10, [x16, #{LOOP_KIND}]", "strb wzr, [x10, x9]", "add x9, x9, #1", f"str x9, [x16, #{CASE}]",
          f"ldr x10, [x16, #{LOOP_END}]", "cmp x9, x10", "b.lo 5b", "b 9f",
          # the same loop for a genome with no flags: nothing to test per case
          "6:", f"ldr x10, [x16, #{CUR}]", "add x10, x10, #1", f"str x10, [x16, #{CUR}]",
          f"ldr x17, [x16, #{LOOP_IN}]", "add x17, x17, x9, lsl #5",
          f"movz x15, #{STACK_TOP >> 16:#x}, lsl #16", f"sub x15, x15, #{scratch}", "mov sp, x15",
          "mov x15, #1", f"str x15, [x16, #{IN_GENOME}]", f"ldr x9, [x16, #{LOOP_SLOT}]",
          f"add x16, x16, #{RAND}", "blr x9",
          c, f"str xzr, [x16, #{IN_GENOME}]", f"ldr x17, [x16, #{SAVED_SP}]", "mov sp, x17",
          f"ldr x9, [x16, #{CASE}]", f"ldr x10, [x16, #{LOOP_OUT}]", "str x0, [x10, x9, lsl #3]",
          f"ldr x10, [x16, #{LOOP_KIND}]", "strb wzr, [x10, x9]", "add x9, x9, #1", f"str x9, [x16, #{CASE}]",
          f"ldr x10, [x16, #{LOOP_END}]", "cmp x9, x10", "b.lo 6b", "9:"]
    a += [f"ldp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"ldp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += ["ret",
          ".globl melvin_save_env", ".p2align 4", "melvin_save_env:", c,
          "mrs x17, tpidr_el0", f"str x17, [x16, #{SAVED_TLS}]",
          "mrs x17, fpcr", f"str x17, [x16, #{SAVED_FP}]", "ret",
          ".p2align 4", "melvin_fixup:", c,
          # the thread pointer (libc's TLS) and FP control are EL0-writable: restore both
          f"ldr x17, [x16, #{SAVED_TLS}]", "msr tpidr_el0, x17",
          f"ldr x17, [x16, #{SAVED_FP}]", "msr fpcr, x17", "ret"]
    return a


def ir(isa: str, scratch: int) -> str:
    """The trampoline's LLVM module for ``isa`` with a scratch area of ``scratch`` bytes."""
    asm = _x86_asm(scratch) if isa == "x86_64" else _arm64_asm(scratch)

    def p(off: int) -> str:
        return f"inttoptr (i64 {CTL_BASE + off} to ptr)"

    lines = [f'module asm "{line}"' for line in asm]
    unit = 8 if isa == "x86_64" else 4   # bytes of one prologue load (prologue.UNITS)
    lines.append(f"""
declare i32 @_setjmp(ptr) #0
declare void @longjmp(ptr, i32) noreturn
declare i64 @melvin_enter(i64, ptr, i64)
declare void @melvin_cases(i64, ptr, i64, i64, ptr, ptr)
declare void @melvin_fixup()
declare void @melvin_save_env()
declare ptr @signal(i32, ptr)
declare i32 @clock_gettime(i32, ptr)
declare i32 @gettid()
declare i32 @getpid()
declare i32 @tgkill(i32, i32, i32)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)

define void @melvin_run(i64 %bare) {{
entry:
  %G = load volatile i64, ptr {p(N_GEN)}
  %C = load volatile i64, ptr {p(N_CASES)}
  %E = load volatile ptr, ptr {p(ENTRIES)}
  %EB = load volatile ptr, ptr {p(CODE_ENTRIES)}
  %I = load volatile ptr, ptr {p(INPUTS)}
  %O = load volatile ptr, ptr {p(OUTPUTS)}
  %K = load volatile ptr, ptr {p(OUTCOMES)}
  %L = load volatile ptr, ptr {p(LIGHT)}
  %S = load volatile ptr, ptr {p(STATES)}
  %per = icmp ne ptr %S, null
  %isbare = icmp ne i64 %bare, 0
  %slow = or i1 %per, %isbare   ; per-case states and plain calls: one case per trip through cl
  %CL = load volatile i64, ptr {p(LAST_CASES)}
  %Gm1 = sub i64 %G, 1
  store volatile i64 0, ptr {p(RETRIED)}
  call void @melvin_save_env()
  %none = icmp eq i64 %G, 0
  br i1 %none, label %done, label %gl
gl:
  ; _setjmp once per genome: a crash comes back here with the case it was in (CASE, volatile),
  ; so every value the loop keeps in registers is the genome's, set before the _setjmp
  %g = phi i64 [0, %entry], [%g1, %gnext]
  %ep = getelementptr i64, ptr %E, i64 %g
  %e = load i64, ptr %ep
  %ebp = getelementptr i64, ptr %EB, i64 %g
  %eb = load i64, ptr %ebp
  %fp = inttoptr i64 %eb to ptr
  %base = mul i64 %g, %C
  %lp = getelementptr i8, ptr %L, i64 %g
  %l8 = load i8, ptr %lp
  %l = zext i8 %l8 to i64
  ; the last genome (the crash sentinel) runs LAST_CASES cases
  %islast = icmp eq i64 %g, %Gm1
  %Cg = select i1 %islast, i64 %CL, i64 %C
  store volatile i64 0, ptr {p(CASE)}
  %outrow = getelementptr i64, ptr %O, i64 %base
  %kindrow = getelementptr i8, ptr %K, i64 %base
  %r = call i32 @_setjmp(ptr {p(JMPBUF)}) #0
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %start, label %crash
start:
  br i1 %slow, label %cl, label %cases
cases:
  ; the genome's cases from CASE on in the stub's own loop (melvin_cases)
  call void @melvin_cases(i64 %e, ptr %I, i64 %l, i64 %Cg, ptr %outrow, ptr %kindrow)
  br label %gnext
cl:
  %c = phi i64 [0, %start], [%c1, %cnext], [%rc, %resume]
  store volatile i64 %c, ptr {p(CASE)}
  %cur = load volatile i64, ptr {p(CUR)}
  %cur1 = add i64 %cur, 1
  store volatile i64 %cur1, ptr {p(CUR)}
  br i1 %per, label %state, label %go2
state:
  ; per-case states: case c's registers, SIMD and scratch template where the stub reads them
  %soff = mul i64 %c, {768 + scratch}
  %src = getelementptr i8, ptr %S, i64 %soff
  call void @llvm.memcpy.p0.p0.i64(ptr {p(RAND)}, ptr %src, i64 768, i1 false)
  %src2 = getelementptr i8, ptr %src, i64 768
  call void @llvm.memcpy.p0.p0.i64(ptr {p(TMPL)}, ptr %src2, i64 {scratch}, i1 false)
  br label %go2
go2:
  %c4 = mul i64 %c, 4
  %row = getelementptr i64, ptr %I, i64 %c4
  br i1 %isbare, label %barecall, label %stub
stub:
  %out = call i64 @melvin_enter(i64 %e, ptr %row, i64 %l)
  br label %cnext
barecall:
  %a0 = load i64, ptr %row
  %r1 = getelementptr i64, ptr %row, i64 1
  %a1 = load i64, ptr %r1
  store volatile i64 1, ptr {p(IN_GENOME)}
  %bout = call i64 %fp(i64 %a0, i64 %a1)
  store volatile i64 0, ptr {p(IN_GENOME)}
  br label %cnext
cnext:
  %o = phi i64 [%out, %stub], [%bout, %barecall]
  %idx = add i64 %base, %c
  %op = getelementptr i64, ptr %O, i64 %idx
  store i64 %o, ptr %op
  %kp = getelementptr i8, ptr %K, i64 %idx
  store i8 0, ptr %kp
  %c1 = add i64 %c, 1
  %cd = icmp eq i64 %c1, %Cg
  br i1 %cd, label %gnext, label %cl
crash:
  %cv = load volatile i64, ptr {p(CASE)}
  %sig = load volatile i64, ptr {p(SIG_OUT)}
  ; the outcome class of the signal, from the control block's table (Outcome values)
  %sig6 = and i64 %sig, 63
  %kindp = getelementptr i8, ptr {p(OUTCOME_LUT)}, i64 %sig6
  %kind = load i8, ptr %kindp
  ; a TIMEOUT gets a second attempt: a virtual machine's stalls count as this thread's CPU
  ; time, so a short case can rarely overrun once; a looping genome overruns twice.
  ; RETRIED holds 1 + the index of the case on its second attempt
  %xidx = add i64 %base, %cv
  %tag = add i64 %xidx, 1
  %to = icmp eq i64 %sig, {int(signal.SIGALRM)}
  %tried = load volatile i64, ptr {p(RETRIED)}
  %fresh = icmp ne i64 %tried, %tag
  %retry = and i1 %to, %fresh
  br i1 %retry, label %again, label %skip
again:
  store volatile i64 %tag, ptr {p(RETRIED)}
  br label %resume
skip:
  %xop = getelementptr i64, ptr %O, i64 %xidx
  store i64 0, ptr %xop
  %xkp = getelementptr i8, ptr %K, i64 %xidx
  store i8 %kind, ptr %xkp
  %cn = add i64 %cv, 1
  %cnd = icmp eq i64 %cn, %Cg
  br i1 %cnd, label %gnext, label %resume
resume:
  %rc = phi i64 [%cv, %again], [%cn, %skip]
  br i1 %slow, label %cl, label %fastresume
fastresume:
  store volatile i64 %rc, ptr {p(CASE)}
  br label %cases
gnext:
  %g1 = add i64 %g, 1
  %gd = icmp eq i64 %g1, %G
  br i1 %gd, label %done, label %gl
done:
  ret void
}}

; Machine.load: every slot of a batch in one call (no Python per genome). Slot i of the arena's
; writable alias gets padding, the prologue of plans[i] (the unit loads whose plan bit is set, in
; order, ending at end = code_at - tail), the tail (the entry flags), genome i's code from
; code_at, the return, and padding over what an earlier batch left beyond that (dirty[i]).
; Out: entries[i] (the prologue's address in the r-x mapping), code_entries[i], flags[i] (plan
; bits 32-34). Returns 0, or 1 + the index of a genome that does not fit its slot.
define i64 @melvin_load(ptr %a) {{
entry:
  %dst = load ptr, ptr %a
  %a1 = getelementptr i64, ptr %a, i64 1
  %stride = load i64, ptr %a1
  %a2 = getelementptr i64, ptr %a, i64 2
  %n = load i64, ptr %a2
  %a3 = getelementptr i64, ptr %a, i64 3
  %plans = load ptr, ptr %a3
  %a4 = getelementptr i64, ptr %a, i64 4
  %blob = load ptr, ptr %a4
  %a5 = getelementptr i64, ptr %a, i64 5
  %offs = load ptr, ptr %a5
  %a6 = getelementptr i64, ptr %a, i64 6
  %dirty = load ptr, ptr %a6
  %a7 = getelementptr i64, ptr %a, i64 7
  %pad = load ptr, ptr %a7
  %a8 = getelementptr i64, ptr %a, i64 8
  %bits = load ptr, ptr %a8
  %a9 = getelementptr i64, ptr %a, i64 9
  %pieces = load ptr, ptr %a9
  %a10 = getelementptr i64, ptr %a, i64 10
  %units = load i64, ptr %a10
  %a11 = getelementptr i64, ptr %a, i64 11
  %tail = load ptr, ptr %a11
  %a12 = getelementptr i64, ptr %a, i64 12
  %taillen = load i64, ptr %a12
  %a13 = getelementptr i64, ptr %a, i64 13
  %code_at = load i64, ptr %a13
  %a14 = getelementptr i64, ptr %a, i64 14
  %ret = load ptr, ptr %a14
  %a15 = getelementptr i64, ptr %a, i64 15
  %retlen = load i64, ptr %a15
  %a16 = getelementptr i64, ptr %a, i64 16
  %ents = load ptr, ptr %a16
  %a17 = getelementptr i64, ptr %a, i64 17
  %cents = load ptr, ptr %a17
  %a18 = getelementptr i64, ptr %a, i64 18
  %exec = load i64, ptr %a18
  %a19 = getelementptr i64, ptr %a, i64 19
  %flags = load ptr, ptr %a19
  %end = sub i64 %code_at, %taillen
  %room = sub i64 %stride, %code_at
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %slot
slot:
  %i = phi i64 [0, %entry], [%i1, %next]
  %i1 = add i64 %i, 1
  %o0p = getelementptr i64, ptr %offs, i64 %i
  %o0 = load i64, ptr %o0p
  %o1p = getelementptr i64, ptr %offs, i64 %i1
  %o1 = load i64, ptr %o1p
  %len = sub i64 %o1, %o0
  %lr = add i64 %len, %retlen
  %neg = icmp ult i64 %o1, %o0
  %big = icmp ugt i64 %lr, %room
  %bad = or i1 %neg, %big
  br i1 %bad, label %fail, label %fits
fits:
  %pp = getelementptr i64, ptr %plans, i64 %i
  %plan = load i64, ptr %pp
  %row = mul i64 %i, %stride
  %base = getelementptr i8, ptr %dst, i64 %row
  br label %unit
unit:
  %u = phi i64 [%units, %fits], [%u0, %step]
  %pos = phi i64 [%end, %fits], [%pos1, %step]
  %u0 = sub i64 %u, 1
  %bp = getelementptr i64, ptr %bits, i64 %u0
  %b = load i64, ptr %bp
  %sh = lshr i64 %plan, %b
  %bit = and i64 %sh, 1
  %on = icmp ne i64 %bit, 0
  br i1 %on, label %put, label %step
put:
  %pos0 = sub i64 %pos, {unit}
  %to = getelementptr i8, ptr %base, i64 %pos0
  %poff = mul i64 %u0, {unit}
  %from = getelementptr i8, ptr %pieces, i64 %poff
  call void @llvm.memcpy.p0.p0.i64(ptr %to, ptr %from, i64 {unit}, i1 false)
  br label %step
step:
  %pos1 = phi i64 [%pos, %unit], [%pos0, %put]
  %last = icmp eq i64 %u0, 0
  br i1 %last, label %placed, label %unit
placed:
  call void @llvm.memcpy.p0.p0.i64(ptr %base, ptr %pad, i64 %pos1, i1 false)
  %tl = getelementptr i8, ptr %base, i64 %end
  call void @llvm.memcpy.p0.p0.i64(ptr %tl, ptr %tail, i64 %taillen, i1 false)
  %cd = getelementptr i8, ptr %base, i64 %code_at
  %src = getelementptr i8, ptr %blob, i64 %o0
  call void @llvm.memcpy.p0.p0.i64(ptr %cd, ptr %src, i64 %len, i1 false)
  %e0 = add i64 %code_at, %len
  %rt = getelementptr i8, ptr %base, i64 %e0
  call void @llvm.memcpy.p0.p0.i64(ptr %rt, ptr %ret, i64 %retlen, i1 false)
  %e = add i64 %e0, %retlen
  %dp = getelementptr i64, ptr %dirty, i64 %i
  %old = load i64, ptr %dp
  %stale = icmp ugt i64 %old, %e
  br i1 %stale, label %repad, label %mark
repad:
  %sl = sub i64 %old, %e
  %st = getelementptr i8, ptr %base, i64 %e
  %sp = getelementptr i8, ptr %pad, i64 %e
  call void @llvm.memcpy.p0.p0.i64(ptr %st, ptr %sp, i64 %sl, i1 false)
  br label %mark
mark:
  store i64 %e, ptr %dp
  %xrow = add i64 %exec, %row
  %ent = add i64 %xrow, %pos1
  %ep = getelementptr i64, ptr %ents, i64 %i
  store i64 %ent, ptr %ep
  %cent = add i64 %xrow, %code_at
  %cp = getelementptr i64, ptr %cents, i64 %i
  store i64 %cent, ptr %cp
  %f64 = lshr i64 %plan, 32
  %f3 = and i64 %f64, 7
  %f8 = trunc i64 %f3 to i8
  %fp = getelementptr i8, ptr %flags, i64 %i
  store i8 %f8, ptr %fp
  br label %next
next:
  %more = icmp ult i64 %i1, %n
  br i1 %more, label %slot, label %done
fail:
  ret i64 %i1
done:
  ret i64 0
}}

define i64 @melvin_one(i64 %e, ptr %row, i64 %flags) {{
entry:
  call void @melvin_save_env()
  %r = call i32 @_setjmp(ptr {p(JMPBUF)}) #0
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %go, label %crash
go:
  %out = call i64 @melvin_enter(i64 %e, ptr %row, i64 %flags)
  ret i64 %out
crash:
  ret i64 0
}}

define void @melvin_handler(i32 %sig, ptr %info, ptr %uc) {{
entry:
  ; the interval timer's SIGALRM goes to any thread of the process (numpy's, llvmlite's) that
  ; does not block it: only the worker thread may judge or leave a case, so pass it on there
  %tid = call i32 @gettid()
  %wt64 = load volatile i64, ptr {p(WORKER_TID)}
  %wt = trunc i64 %wt64 to i32
  %mine = icmp eq i32 %tid, %wt
  br i1 %mine, label %ours, label %foreign
foreign:
  %alrm0 = icmp eq i32 %sig, {int(signal.SIGALRM)}
  br i1 %alrm0, label %forward, label %die
forward:
  %pid = call i32 @getpid()
  %fw = call i32 @tgkill(i32 %pid, i32 %wt, i32 %sig)
  ret void
ours:
  %ig = load volatile i64, ptr {p(IN_GENOME)}
  %in = icmp ne i64 %ig, 0
  %alrm = icmp eq i32 %sig, {int(signal.SIGALRM)}
  br i1 %alrm, label %tick, label %fault
tick:
  ; thread CPU time, not wall time: a worker preempted by the OS mid-case must not time out
  %ts = alloca [2 x i64]
  %rc = call i32 @clock_gettime(i32 3, ptr %ts)
  %sec = load i64, ptr %ts
  %nsp = getelementptr i64, ptr %ts, i64 1
  %nsec = load i64, ptr %nsp
  %sns = mul i64 %sec, 1000000000
  %now = add i64 %sns, %nsec
  %cur = load volatile i64, ptr {p(CUR)}
  %last = load volatile i64, ptr {p(LAST_TICK)}
  store volatile i64 %cur, ptr {p(LAST_TICK)}
  %same = icmp eq i64 %cur, %last
  br i1 %same, label %seen, label %first
first:
  store volatile i64 %now, ptr {p(CPU0)}
  ret void
seen:
  %t0 = load volatile i64, ptr {p(CPU0)}
  %used = sub i64 %now, %t0
  %budget = load volatile i64, ptr {p(BUDGET_NS)}
  %over = icmp uge i64 %used, %budget
  %to = and i1 %over, %in
  br i1 %to, label %jump, label %back
back:
  ret void
fault:
  br i1 %in, label %jump, label %die
die:
  ; a fault outside genome code is a bug of this process: die of it, the owner replaces us
  %old = call ptr @signal(i32 %sig, ptr null)
  ret void
jump:
  %sig64 = zext i32 %sig to i64
  store volatile i64 0, ptr {p(IN_GENOME)}
  store volatile i64 %sig64, ptr {p(SIG_OUT)}   ; the worker maps signal numbers to outcomes
  call void @melvin_fixup()
  call void @longjmp(ptr {p(JMPBUF)}, i32 1)
  unreachable
}}

attributes #0 = {{ returns_twice }}
""")
    return "\n".join(lines)
