"""The one small room for unsafe native code: memory maps, signals, seccomp and the JIT trampoline.

Only sandbox worker processes build a :class:`Machine`; the owner of a population never does.
A Machine lays out, at fixed addresses (so stack pointer values agree with the emulator's):

==============  ================  =====================================================
region          address           contents
==============  ================  =====================================================
arena           0x1000_0000       genome slots (code, return, fault padding), r-x; written
                                  through a second, read-write mapping of the same memfd
genome stack    0x2000_0000       64 KiB, rw-; the scratch area sits at its top
control block   0x3000_0000       loop state, saved host registers, random values, scratch
                                  template, ``jmp_buf``; x86-64 stubs address it absolutely
==============  ================  =====================================================

each with ``PROT_NONE`` guard pages on both sides, plus an alternate signal stack.

The trampoline is LLVM IR compiled by llvmlite: ``melvin_run`` loops over genomes x cases,
``_setjmp`` before each case, and calls ``melvin_enter``, an assembly stub (module-level asm)
that saves the host's callee-saved registers, SP and thread/FP state in the control block,
builds the genome's entry state (:mod:`core.executors.batch_state`) on the genome stack and
jumps in; the genome returns to the stub, which restores everything. A fault, a refused system
call (seccomp ``SECCOMP_RET_TRAP`` -> SIGSYS) or the watchdog tick lands in ``melvin_handler``
(``SA_ONSTACK | SA_NODEFER | SA_SIGINFO``), which restores thread state and ``longjmp``s back,
so both paths leave through code that never trusts the genome's registers.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import struct

import llvmlite.binding as llvm
import numpy as np

from core.outcome import Outcome

PAGE = 4096
ARENA_BASE, ARENA_SIZE = 0x1000_0000, 16 << 20
STACK_BASE, STACK_SIZE = 0x2000_0000, 64 << 10
STACK_TOP = STACK_BASE + STACK_SIZE
CTL_BASE, CTL_SIZE = 0x3000_0000, 16 << 10
ALT_SIZE = 64 << 10

# Control block offsets (bytes)
IN_GENOME, CUR, LAST_TICK, SIG_OUT, ENTRY, SAVED_SP, SAVED_TLS, SAVED_FP = 0, 8, 16, 24, 32, 40, 48, 56
HAS_FSGS, N_GEN, N_CASES, ENTRIES, INPUTS, OUTPUTS, OUTCOMES = 64, 72, 80, 88, 96, 104, 112
LIGHT = 120           # uint8 per genome: 1 = x86 code that touches only general registers
SAVED_REGS = 128      # x86: rbx rbp r12-r15; arm64: x19-x30, then d8-d15
RAND = 320            # 32 x u64
SIMD = 576            # 32 x 16 bytes
JMPBUF = 1152         # 512 bytes (x86-64 jmp_buf: 200, aarch64: 312)
TMPL = 2048           # scratch template, up to 4096 bytes
X86_FP0 = 1664        # u32 MXCSR 0x1F80 for genome entry
CPU0 = 1672           # thread CPU time (ns) when the watchdog first saw the current case
BUDGET_NS = 1680      # CPU time a case may use before it ends as TIMEOUT
RETRIED = 1688        # 1 while a case that timed out once runs its second attempt

SIGNAL_OUTCOME = {signal.SIGILL: Outcome.SIGILL, signal.SIGSEGV: Outcome.SIGSEGV, signal.SIGBUS: Outcome.SIGBUS,
                  signal.SIGFPE: Outcome.SIGFPE, signal.SIGTRAP: Outcome.SIGTRAP, signal.SIGSYS: Outcome.SYSCALL}
CAUGHT = (*SIGNAL_OUTCOME, signal.SIGALRM)

# mmap / signal constants (identical on x86-64 and aarch64 Linux)
PROT_NONE, PROT_R, PROT_W, PROT_X = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANON, MAP_NORESERVE = 0x01, 0x02, 0x10, 0x20, 0x4000
MAP_FIXED_NOREPLACE = 0x100000
SA_SIGINFO, SA_ONSTACK, SA_NODEFER = 0x4, 0x08000000, 0x40000000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00030000, 0x00050000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.sigaction.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_libc.sigaltstack.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.getauxval.restype = ctypes.c_ulong
_libc.getauxval.argtypes = (ctypes.c_ulong,)
_MAP_FAILED = ctypes.c_void_p(-1).value


class PreflightError(RuntimeError):
    """This host cannot execute generated code (the message says why)."""


class SigAction(ctypes.Structure):
    # glibc's struct sigaction, the same on x86-64 and aarch64 (152 bytes)
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_uint64 * 16), ("flags", ctypes.c_int),
                ("pad", ctypes.c_int), ("restorer", ctypes.c_void_p)]


class StackT(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def _mmap(addr: int, size: int, prot: int, flags: int, fd: int = -1, what: str = "memory") -> int:
    ptr = _libc.mmap(addr or None, size, prot, flags, fd, 0)
    if ptr in (None, _MAP_FAILED):
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of {what} at {addr:#x} failed: {os.strerror(err)}")
    if addr and ptr != addr:  # a kernel without MAP_FIXED_NOREPLACE treats it as a hint
        _libc.munmap(ptr, size)
        raise OSError(errno.EEXIST, f"mmap of {what}: {addr:#x} is taken in this process")
    return ptr


def _fixed_region(base: int, size: int, prot: int, what: str) -> None:
    """Anonymous region at ``base`` with PROT_NONE guard pages on both sides."""
    fl = MAP_PRIVATE | MAP_ANON | MAP_FIXED_NOREPLACE | MAP_NORESERVE
    _mmap(base - PAGE, PAGE, PROT_NONE, fl, what=what + " guard")
    _mmap(base + size, PAGE, PROT_NONE, fl, what=what + " guard")
    _mmap(base, size, prot, fl, what=what)


def bpf_program(insns: list[tuple[int, int, int, int]]) -> SockFprog:
    """A classic BPF program from (code, jt, jf, k) tuples (kept alive by the returned object)."""
    arr = (SockFilter * len(insns))(*[SockFilter(*i) for i in insns])
    prog = SockFprog(len(insns), ctypes.cast(arr, ctypes.POINTER(SockFilter)))
    prog._keep = arr
    return prog


def install_seccomp(prog: SockFprog) -> None:
    """Install a seccomp filter on this process (and its future children); OSError if refused."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0 or \
            _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter refused: {os.strerror(err)}")


BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06


def arena_filter(lo: int, hi: int) -> SockFprog:
    """Refuse (SIGSYS) every system call whose instruction pointer lies in ``[lo, hi)``.

    seccomp_data: nr at 0, arch at 4, instruction_pointer at 8 (low word) and 12 (high word);
    the range must not cross a 4 GiB boundary."""
    assert lo >> 32 == (hi - 1) >> 32
    return bpf_program([
        (BPF_LD_W_ABS, 0, 0, 12), (BPF_JEQ_K, 0, 3, lo >> 32),
        (BPF_LD_W_ABS, 0, 0, 8), (BPF_JGE_K, 0, 1, lo & 0xFFFFFFFF), (BPF_JGE_K, 0, 1, hi & 0xFFFFFFFF),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, SECCOMP_RET_TRAP)])


def _save_area(isa: str) -> str:
    return "x86" if isa == "x86_64" else "arm64"


def _x86_asm(scratch: int) -> list[str]:
    def m(off: int) -> str:
        return f"qword ptr [{CTL_BASE + off:#x}]"

    from core.executors.batch_state import X86_RAND_SLOT
    saved = ("rbx", "rbp", "r12", "r13", "r14", "r15")
    sp0 = STACK_TOP - 72   # as the emulator: return address at [rsp], red zone below
    a = [".intel_syntax noprefix", ".text", ".globl melvin_enter", ".globl melvin_fixup", ".p2align 4",
         "melvin_enter:", "test rdx, rdx", "jnz 7f"]
    a += [f"mov {m(SAVED_REGS + 8 * i)}, {r}" for i, r in enumerate(saved)]
    a += [f"mov {m(SAVED_SP)}, rsp", f"mov {m(ENTRY)}, rdi",
          f"stmxcsr dword ptr [{CTL_BASE + SAVED_FP:#x}]", f"fnstcw word ptr [{CTL_BASE + SAVED_FP + 4:#x}]",
          f"cmp {m(HAS_FSGS)}, 0", "je 1f", "rdfsbase rax", f"mov {m(SAVED_TLS)}, rax", "1:",
          # clear AC and DF before the genome runs (a genome may set AC; it survives a return)
          "push 0x202", "popfq",
          f"mov rsp, {sp0:#x}", "lea rax, [rip + 2f]", "mov qword ptr [rsp], rax"]
    for k in range(0, scratch, 8):
        a += [f"mov rax, {m(TMPL + k)}", f"mov qword ptr [rsp - {scratch - k}], rax"]
    a += [f"movdqu xmm{i}, xmmword ptr [{CTL_BASE + SIMD + 16 * i:#x}]" for i in range(16)]
    a += ["fninit", f"ldmxcsr dword ptr [{CTL_BASE + X86_FP0:#x}]",
          "mov rdi, qword ptr [rsi]", "mov rdx, qword ptr [rsi + 16]", "mov rcx, qword ptr [rsi + 24]",
          "mov rsi, qword ptr [rsi + 8]"]
    a += [f"mov {r}, {m(RAND + 8 * X86_RAND_SLOT[r])}"
          for r in ("rax", "rbx", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")]
    a += [f"mov {m(IN_GENOME)}, 1", "cmp rax, rax",   # ZF|PF, as the emulator's `cmp r9, r9`
          f"jmp {m(ENTRY)}",
          "2:", f"mov {m(IN_GENOME)}, 0", f"mov rsp, {m(SAVED_SP)}"]
    a += [f"mov {r}, {m(SAVED_REGS + 8 * i)}" for i, r in enumerate(saved)]
    a += ["call melvin_fixup", "ret"]
    # The light path, for code that uses only general registers and flags (see
    # ``triage.x86_light``): it cannot touch SIMD, x87, MXCSR, DF/AC or the TLS base, so none of
    # them is loaded before or restored after (the crash path still runs melvin_fixup, which
    # needs the saved FP control and TLS base, so those are saved here too).
    # rdx = 1: the code never uses rsp, so the red zone (scratch) need not be refilled; 2: it may.
    a += ["7:"] + [f"mov {m(SAVED_REGS + 8 * i)}, {r}" for i, r in enumerate(saved)]
    a += [f"mov {m(SAVED_SP)}, rsp", f"mov {m(ENTRY)}, rdi",
          f"mov rsp, {sp0:#x}", "lea rax, [rip + 9f]", "mov qword ptr [rsp], rax",
          "cmp rdx, 1", "je 8f"]
    for k in range(0, scratch, 8):
        a += [f"mov rax, {m(TMPL + k)}", f"mov qword ptr [rsp - {scratch - k}], rax"]
    a += ["8:"]
    a += ["mov rdi, qword ptr [rsi]", "mov rdx, qword ptr [rsi + 16]", "mov rcx, qword ptr [rsi + 24]",
          "mov rsi, qword ptr [rsi + 8]"]
    a += [f"mov {r}, {m(RAND + 8 * X86_RAND_SLOT[r])}"
          for r in ("rax", "rbx", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")]
    a += [f"mov {m(IN_GENOME)}, 1", "cmp rax, rax", f"jmp {m(ENTRY)}",
          "9:", f"mov {m(IN_GENOME)}, 0", f"mov rsp, {m(SAVED_SP)}"]
    a += [f"mov {r}, {m(SAVED_REGS + 8 * i)}" for i, r in enumerate(saved)]
    # melvin_save_env, once per batch: the FP control and TLS base melvin_fixup restores after a
    # crash (the light path does not save them per case; the worker's own never change)
    a += ["ret", ".globl melvin_save_env", ".p2align 4", "melvin_save_env:",
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
    a = [".text", ".globl melvin_enter", ".globl melvin_fixup", ".p2align 4", "melvin_enter:", c]
    a += [f"stp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"stp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += ["mov x17, sp", f"str x17, [x16, #{SAVED_SP}]",
          "mrs x17, tpidr_el0", f"str x17, [x16, #{SAVED_TLS}]",
          "mrs x17, fpcr", f"str x17, [x16, #{SAVED_FP}]",
          "mov x30, x0", "mov x9, x1",
          f"movz x17, #{STACK_TOP >> 16:#x}, lsl #16", f"sub x17, x17, #{scratch}", "mov sp, x17",
          f"add x10, x16, #{TMPL}"]
    a += ["ldp x11, x12, [x10], #16", "stp x11, x12, [x17], #16"] * (scratch // 16)
    a += ["msr tpidr_el0, xzr", "msr fpcr, xzr", "msr fpsr, xzr", f"add x10, x16, #{SIMD}"]
    a += [f"ldp q{2 * i}, q{2 * i + 1}, [x10], #32" for i in range(16)]
    a += ["ldp x0, x1, [x9]", "ldp x2, x3, [x9, #16]", f"add x10, x16, #{RAND}",
          "ldp x4, x5, [x10, #32]", "ldp x6, x7, [x10, #48]", "ldr x8, [x10, #64]", "ldr x9, [x10, #72]",
          "ldr x11, [x10, #88]", "ldp x12, x13, [x10, #96]", "ldp x14, x15, [x10, #112]"]
    a += [f"ldp x{r}, x{r + 1}, [x10, #{8 * r}]" for r in range(18, 30, 2)]
    a += ["mov x17, #1", f"str x17, [x16, #{IN_GENOME}]",
          "ldp x16, x17, [x10, #128]", "ldr x10, [x10, #80]",
          "cmp x16, x16",   # NZCV = Z|C, as the emulator
          "blr x30",
          c, f"str xzr, [x16, #{IN_GENOME}]", f"ldr x17, [x16, #{SAVED_SP}]", "mov sp, x17"]
    a += [f"ldp x{r}, x{r + 1}, [x16, #{s + 8 * (r - 19)}]" for r in range(19, 31, 2)]
    a += [f"ldp d{r}, d{r + 1}, [x16, #{s + 96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    a += ["b melvin_fixup", ".globl melvin_save_env", ".p2align 4", "melvin_save_env:", "ret",
          ".p2align 4", "melvin_fixup:", c,
          # the thread pointer (libc's TLS) and FP control are EL0-writable: restore both
          f"ldr x17, [x16, #{SAVED_TLS}]", "msr tpidr_el0, x17",
          f"ldr x17, [x16, #{SAVED_FP}]", "msr fpcr, x17", "ret"]
    return a


def _ir(isa: str, scratch: int) -> str:
    asm = _x86_asm(scratch) if isa == "x86_64" else _arm64_asm(scratch)

    def p(off: int) -> str:
        return f"inttoptr (i64 {CTL_BASE + off} to ptr)"

    lines = [f'module asm "{line}"' for line in asm]
    lines.append(f"""
declare i32 @_setjmp(ptr) #0
declare void @longjmp(ptr, i32) noreturn
declare i64 @melvin_enter(i64, ptr, i64)
declare void @melvin_fixup()
declare void @melvin_save_env()
declare ptr @signal(i32, ptr)
declare i32 @clock_gettime(i32, ptr)

define void @melvin_run(i64 %bare) {{
entry:
  %G = load volatile i64, ptr {p(N_GEN)}
  %C = load volatile i64, ptr {p(N_CASES)}
  %E = load volatile ptr, ptr {p(ENTRIES)}
  %I = load volatile ptr, ptr {p(INPUTS)}
  %O = load volatile ptr, ptr {p(OUTPUTS)}
  %K = load volatile ptr, ptr {p(OUTCOMES)}
  %L = load volatile ptr, ptr {p(LIGHT)}
  call void @melvin_save_env()
  %none = icmp eq i64 %G, 0
  br i1 %none, label %done, label %gl
gl:
  %g = phi i64 [0, %entry], [%g1, %gnext]
  %ep = getelementptr i64, ptr %E, i64 %g
  %e = load i64, ptr %ep
  %base = mul i64 %g, %C
  %lp = getelementptr i8, ptr %L, i64 %g
  %l8 = load i8, ptr %lp
  %l = zext i8 %l8 to i64
  br label %cl
cl:
  %c = phi i64 [0, %gl], [%c1, %cnext], [%c, %again]
  %cur = load volatile i64, ptr {p(CUR)}
  %cur1 = add i64 %cur, 1
  store volatile i64 %cur1, ptr {p(CUR)}
  %r = call i32 @_setjmp(ptr {p(JMPBUF)}) #0
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %go, label %crash
go:
  %c4 = mul i64 %c, 4
  %row = getelementptr i64, ptr %I, i64 %c4
  %isbare = icmp ne i64 %bare, 0
  br i1 %isbare, label %barecall, label %stub
stub:
  %out = call i64 @melvin_enter(i64 %e, ptr %row, i64 %l)
  br label %cnext
barecall:
  %a0 = load i64, ptr %row
  %r1 = getelementptr i64, ptr %row, i64 1
  %a1 = load i64, ptr %r1
  %fp = inttoptr i64 %e to ptr
  store volatile i64 1, ptr {p(IN_GENOME)}
  %bout = call i64 %fp(i64 %a0, i64 %a1)
  store volatile i64 0, ptr {p(IN_GENOME)}
  br label %cnext
crash:
  %sig = load volatile i64, ptr {p(SIG_OUT)}
  ; a TIMEOUT gets a second attempt: a virtual machine's stalls count as this thread's CPU
  ; time, so a short case can rarely overrun once; a looping genome overruns twice
  %to = icmp eq i64 %sig, {int(signal.SIGALRM)}
  %tried = load volatile i64, ptr {p(RETRIED)}
  %fresh = icmp eq i64 %tried, 0
  %retry = and i1 %to, %fresh
  br i1 %retry, label %again, label %cnext
again:
  store volatile i64 1, ptr {p(RETRIED)}
  br label %cl
cnext:
  %o = phi i64 [%out, %stub], [%bout, %barecall], [0, %crash]
  %k = phi i64 [0, %stub], [0, %barecall], [%sig, %crash]
  store volatile i64 0, ptr {p(RETRIED)}
  %idx = add i64 %base, %c
  %op = getelementptr i64, ptr %O, i64 %idx
  store i64 %o, ptr %op
  %kp = getelementptr i8, ptr %K, i64 %idx
  %k8 = trunc i64 %k to i8
  store i8 %k8, ptr %kp
  %c1 = add i64 %c, 1
  %cd = icmp eq i64 %c1, %C
  br i1 %cd, label %gnext, label %cl
gnext:
  %g1 = add i64 %g, 1
  %gd = icmp eq i64 %g1, %G
  br i1 %gd, label %done, label %gl
done:
  ret void
}}

define i64 @melvin_one(i64 %e, ptr %row) {{
entry:
  %r = call i32 @_setjmp(ptr {p(JMPBUF)}) #0
  %ok = icmp eq i32 %r, 0
  br i1 %ok, label %go, label %crash
go:
  %out = call i64 @melvin_enter(i64 %e, ptr %row, i64 0)
  ret i64 %out
crash:
  ret i64 0
}}

define void @melvin_handler(i32 %sig, ptr %info, ptr %uc) {{
entry:
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


#: signal number (as stored by the handler; 0 = returned) -> Outcome value
SIGNAL_LUT = np.full(256, Outcome.WORKER_LOST, dtype=np.uint8)
SIGNAL_LUT[0] = Outcome.OK
SIGNAL_LUT[signal.SIGALRM] = Outcome.TIMEOUT
for _sig, _out in SIGNAL_OUTCOME.items():
    SIGNAL_LUT[_sig] = _out

_HWCAP2_FSGSBASE = 1 << 1
_AT_HWCAP2 = 26


class Machine:
    """Everything one worker process needs to run genome code: regions, JIT, handlers, filter.

    Parameters
    ----------
    isa : str
        "arm64" or "x86_64"; must be this host's ISA.
    scratch : int
        Scratch bytes at the top of the genome stack (multiple of 16).
    slot_size : int
        Bytes per arena slot (code, return, fault padding).
    pad : bytes
        Fill pattern of unused slot space (faults when executed).
    seccomp : bool
        Install the arena filter; when the kernel refuses (qemu user mode), ``self.seccomp``
        stays False and the caller decides.
    """

    def __init__(self, isa: str, scratch: int, slot_size: int, pad: bytes, seccomp: bool = True):
        self.isa, self.scratch, self.slot_size, self.pad = isa, scratch, slot_size, pad
        self.closed = False
        self._old_actions: dict[int, SigAction] = {}
        self._old_alt = StackT()
        self._preflight()
        _fixed_region(STACK_BASE, STACK_SIZE, PROT_R | PROT_W, "genome stack")
        _fixed_region(CTL_BASE, CTL_SIZE, PROT_R | PROT_W, "control block")
        alt = _mmap(0, ALT_SIZE + PAGE, PROT_R | PROT_W, MAP_PRIVATE | MAP_ANON, what="signal stack")
        _libc.mprotect(ctypes.c_void_p(alt), PAGE, PROT_NONE)  # guard below the alternate stack
        self._alt = StackT(alt + PAGE, 0, ALT_SIZE)
        self.ctl = np.ctypeslib.as_array((ctypes.c_uint64 * (CTL_SIZE // 8)).from_address(CTL_BASE))
        self.ctl_bytes = self.ctl.view(np.uint8)
        if isa == "x86_64":
            self.ctl_bytes[X86_FP0:X86_FP0 + 4] = np.frombuffer(struct.pack("<I", 0x1F80), np.uint8)
            self.ctl[HAS_FSGS // 8] = 1 if _libc.getauxval(_AT_HWCAP2) & _HWCAP2_FSGSBASE else 0
        self.arena = np.ctypeslib.as_array((ctypes.c_uint8 * ARENA_SIZE).from_address(self._rw))
        self.n_slots = ARENA_SIZE // slot_size
        self._compile()
        self._install_handlers()
        self.seccomp = False
        if seccomp:
            try:
                install_seccomp(arena_filter(ARENA_BASE, ARENA_BASE + ARENA_SIZE))
                self.seccomp = True
            except OSError:
                pass

    def _preflight(self) -> None:
        """Map the arena twice (r-x at ARENA_BASE, rw- elsewhere); PreflightError says why not."""
        try:
            fd = os.memfd_create("melvin-arena", 0)
            os.ftruncate(fd, ARENA_SIZE)
        except OSError as exc:
            raise PreflightError(f"cannot create the code arena (memfd_create: {exc.strerror}); "
                                 f"use backend='emulated'") from None
        try:
            fl = MAP_PRIVATE | MAP_ANON | MAP_FIXED_NOREPLACE | MAP_NORESERVE
            _mmap(ARENA_BASE - PAGE, PAGE, PROT_NONE, fl, what="arena guard")
            _mmap(ARENA_BASE + ARENA_SIZE, PAGE, PROT_NONE, fl, what="arena guard")
            self._rw = _mmap(0, ARENA_SIZE, PROT_R | PROT_W, MAP_SHARED, fd, what="arena (rw alias)")
            try:
                _mmap(ARENA_BASE, ARENA_SIZE, PROT_R | PROT_X, MAP_SHARED | MAP_FIXED_NOREPLACE, fd,
                      what="arena (r-x)")
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    raise PreflightError(
                        "this host forbids executable memory (mmap with PROT_EXEC refused: "
                        f"{os.strerror(exc.errno)}; SELinux execmem, a hardened kernel, a seccomp policy "
                        "or noexec /dev/shm can cause it): native execution is impossible here; "
                        "use backend='emulated'") from None
                raise
        finally:
            os.close(fd)

    def _compile(self) -> None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        mod = llvm.parse_assembly(_ir(self.isa, self.scratch))
        mod.verify()
        tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
        self._engine = llvm.create_mcjit_compiler(mod, tm)
        self._engine.finalize_object()
        addr = self._engine.get_function_address
        self.handler_addr = addr("melvin_handler")
        self._run = ctypes.CFUNCTYPE(None, ctypes.c_int64)(addr("melvin_run"))
        self._one = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)(addr("melvin_one"))

    def _install_handlers(self) -> None:
        if _libc.sigaltstack(ctypes.byref(self._alt), ctypes.byref(self._old_alt)) != 0:
            raise OSError(ctypes.get_errno(), "sigaltstack failed")
        act = SigAction(self.handler_addr, (ctypes.c_uint64 * 16)(), SA_SIGINFO | SA_ONSTACK | SA_NODEFER, 0, None)
        for sig in CAUGHT:
            old = SigAction()
            if _libc.sigaction(int(sig), ctypes.byref(act), ctypes.byref(old)) != 0:
                raise OSError(ctypes.get_errno(), f"sigaction({sig!r}) failed")
            self._old_actions[int(sig)] = old

    # ------------------------------------------------------------------ per batch
    def set_state(self, regs: np.ndarray, simd: bytes, scratch: bytes) -> None:
        """Entry state of every case (see :class:`core.executors.batch_state.BatchState`)."""
        self.ctl[RAND // 8:RAND // 8 + 32] = regs
        self.ctl_bytes[SIMD:SIMD + 512] = np.frombuffer(simd, np.uint8)
        self.ctl_bytes[TMPL:TMPL + len(scratch)] = np.frombuffer(scratch, np.uint8)
        ctypes.memset(STACK_BASE, 0, STACK_SIZE)  # what lies below the scratch area starts at zero

    def load(self, blob: np.ndarray, offsets: np.ndarray, ret: bytes) -> np.ndarray:
        """Write genome ``i`` = ``blob[offsets[i]:offsets[i+1]]`` + ``ret`` into slot ``i``.

        Returns the entry addresses, uint64 [n]."""
        n = len(offsets) - 1
        if n > self.n_slots:
            raise ValueError(f"{n} genomes exceed the arena's {self.n_slots} slots")
        size = self.slot_size
        used = self.arena[:n * size]
        # (np.resize would concatenate n*size/len(pad) copies: ~0.3 s for 1000 slots)
        used.reshape(-1, len(self.pad))[:] = np.frombuffer(self.pad, np.uint8)
        r = np.frombuffer(ret, np.uint8)
        for i in range(n):
            a, b = int(offsets[i]), int(offsets[i + 1])
            used[i * size:i * size + b - a] = blob[a:b]
            used[i * size + b - a:i * size + b - a + len(r)] = r
        if self.isa == "arm64":
            _clear_cache(ARENA_BASE, ARENA_BASE + n * size)
            # qemu user mode does not see writes through the alias; a moment without PROT_EXEC
            # (never writable and executable at once) drops its translations of the arena
            span = -(-n * size // PAGE) * PAGE
            _libc.mprotect(ctypes.c_void_p(ARENA_BASE), span, PROT_R | PROT_W)
            _libc.mprotect(ctypes.c_void_p(ARENA_BASE), span, PROT_R | PROT_X)
        return ARENA_BASE + size * np.arange(n, dtype=np.uint64)

    def run(self, entries: np.ndarray, inputs_addr: int, outputs: np.ndarray, outcomes: np.ndarray,
            n_cases: int, budget: float, bare: bool = False, light: np.ndarray | None = None) -> None:
        """Run every (genome, case); ``outcomes`` (uint8, writable) ends as Outcome values.

        ``budget``: CPU seconds per case. The watchdog ticks every ``budget`` (wall time) and
        ends a case as TIMEOUT once the thread's CPU time since the first tick that saw the
        case reaches ``budget``: it used at least ``budget`` and at most about three."""
        c = self.ctl
        c[BUDGET_NS // 8] = max(1, int(budget * 1e9))
        tick = budget
        c[N_GEN // 8], c[N_CASES // 8] = len(entries), n_cases
        c[ENTRIES // 8], c[INPUTS // 8] = entries.ctypes.data, inputs_addr
        c[OUTPUTS // 8], c[OUTCOMES // 8] = outputs.ctypes.data, outcomes.ctypes.data
        if light is None or self.isa != "x86_64":
            light = np.zeros(len(entries), np.uint8)      # arm64: always the full entry
        light = np.ascontiguousarray(light, np.uint8)
        c[LIGHT // 8] = light.ctypes.data
        signal.setitimer(signal.ITIMER_REAL, tick, tick)
        try:
            self._run(1 if bare else 0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
        outcomes[...] = SIGNAL_LUT[outcomes]

    def run_one(self, entry: int, row_addr: int) -> int:
        """One case through one ctypes call (the per-call baseline of the benchmark)."""
        return self._one(entry, row_addr)

    def close(self) -> None:
        """Restore the process's previous signal handlers and alternate stack (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for sig, old in self._old_actions.items():
            _libc.sigaction(sig, ctypes.byref(old), None)
        _libc.sigaltstack(ctypes.byref(self._old_alt), None)


def _clear_cache(start: int, end: int) -> None:
    """Make freshly written code visible to instruction fetch (ARM64: dc cvau + ic ivau)."""
    global _clear_cache_fn
    if _clear_cache_fn is None:
        lib = ctypes.CDLL(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1")
        _clear_cache_fn = lib.__clear_cache
        _clear_cache_fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    _clear_cache_fn(start, end)


_clear_cache_fn = None


def get_sigaction(sig: int) -> tuple[int, int]:
    """(handler address, flags) currently installed for ``sig`` in this process."""
    old = SigAction()
    _libc.sigaction(sig, None, ctypes.byref(old))
    return old.handler or 0, old.flags
