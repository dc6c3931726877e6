"""What Linux user space delivers where Unicorn does something else: the outcome class of each
Unicorn error and QEMU exception, and the system registers and instructions EL0 may use
(:class:`core.executors.unicorn.engine.UnicornEngine`'s hooks apply them)."""
import unicorn as uc_mod

from core.outcome import Outcome

# Unicorn errors -> outcome classes
ERR_OUTCOME = {
    uc_mod.UC_ERR_READ_UNMAPPED: Outcome.SIGSEGV, uc_mod.UC_ERR_WRITE_UNMAPPED: Outcome.SIGSEGV,
    uc_mod.UC_ERR_FETCH_UNMAPPED: Outcome.SIGSEGV, uc_mod.UC_ERR_READ_PROT: Outcome.SIGSEGV,
    uc_mod.UC_ERR_WRITE_PROT: Outcome.SIGSEGV, uc_mod.UC_ERR_FETCH_PROT: Outcome.SIGSEGV,
    uc_mod.UC_ERR_READ_UNALIGNED: Outcome.SIGBUS, uc_mod.UC_ERR_WRITE_UNALIGNED: Outcome.SIGBUS,
    uc_mod.UC_ERR_FETCH_UNALIGNED: Outcome.SIGBUS, uc_mod.UC_ERR_INSN_INVALID: Outcome.SIGILL,
    uc_mod.UC_ERR_EXCEPTION: Outcome.SIGILL,
}
# QEMU exception numbers on AArch64 (EXCP_*) -> outcome classes
ARM64_INTR = {1: Outcome.SIGILL, 2: Outcome.SYSCALL, 3: Outcome.SIGSEGV, 4: Outcome.SIGBUS,
               7: Outcome.SIGTRAP}
# x86 vectors -> what Linux delivers
X86_INTR = {0: Outcome.SIGFPE, 1: Outcome.SIGTRAP, 3: Outcome.SIGTRAP, 4: Outcome.SIGSEGV,
             5: Outcome.SIGSEGV, 6: Outcome.SIGILL, 13: Outcome.SIGSEGV, 14: Outcome.SIGSEGV,
             16: Outcome.SIGFPE, 17: Outcome.SIGBUS, 19: Outcome.SIGFPE, 0x80: Outcome.SYSCALL}

# Linux's SCTLR_EL1 bits for user space: UCI, nTWE, nTWI, UCT, DZE, SA0
SCTLR_EL0_BITS = (1 << 26) | (1 << 18) | (1 << 16) | (1 << 15) | (1 << 14) | (1 << 4)
# System registers EL0 may read on Linux, as (op0, op1, crn, crm, op2)
EL0_READ = {
    (3, 3, 4, 2, 0),   # nzcv
    (3, 3, 4, 4, 0),   # fpcr
    (3, 3, 4, 4, 1),   # fpsr
    (3, 3, 13, 0, 2),  # tpidr_el0
    (3, 3, 13, 0, 3),  # tpidrro_el0
    (3, 3, 0, 0, 1),   # ctr_el0
    (3, 3, 0, 0, 7),   # dczid_el0
    (3, 3, 4, 2, 5),   # dit
    (3, 3, 4, 2, 6),   # ssbs
}
EL0_WRITE = {(3, 3, 4, 2, 0), (3, 3, 4, 4, 0), (3, 3, 4, 4, 1), (3, 3, 13, 0, 2), (3, 3, 4, 2, 5),
              (3, 3, 4, 2, 6)}
EL0_TIMERS = {(3, 3, 14, 0, 0): 25_000_000,  # cntfrq_el0: a fixed value, deterministic
               (3, 3, 14, 0, 1): 0, (3, 3, 14, 0, 2): 0}  # cntpct/cntvct: 0, deterministic
# SYS instructions EL0 may issue on Linux (dc zva/cvac/cvau/civac/cvap, ic ivau): (op1, crn, crm, op2)
EL0_SYS = {(3, 7, 4, 1), (3, 7, 10, 1), (3, 7, 11, 1), (3, 7, 14, 1), (3, 7, 12, 1), (3, 7, 5, 1)}
