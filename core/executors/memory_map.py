"""The address space every execution tier lays out: one declaration, imported by all of them.

Three tiers run genome code and must agree on what a genome can observe (its stack pointer,
the scratch area, which addresses fault): the Numba interpreter (:mod:`core.executors.interp`),
Unicorn (:mod:`core.executors.unicorn`) and the native trampoline in sandbox workers
(:mod:`core.executors.native`). Who maps what:

=============  ====================  =========  ====================================================
region         address, size         mapped by  contents
=============  ====================  =========  ====================================================
solo slot      ``SOLO_BASE``         Unicorn    the slow lane's one slot, nothing else within 1 MiB,
                                                r-x; the interpreter gives PC-relative code its
                                                address and bytes
arena          ``ARENA_BASE``        both       genome slots, r-x (native: written through a
               ``ARENA_SIZE``                   second, read-write mapping of the same memfd; the
                                                seccomp filter refuses system calls from here)
stack          ``STACK_BASE``        both       the genome's stack, rw-; the scratch area sits at
               ``STACK_SIZE``                   its top, so SP values agree across tiers
data block     ``DATA_BASE``         Unicorn    control block, random values, scratch template,
               ``DATA_SIZE``                    entry and input tables, r-- (offsets ``CTL_*``,
                                                ``*_OFF`` below)
harness        ``HARNESS_BASE``      Unicorn    the harness code, r-x, > 128 MiB from the arena so
               ``HARNESS_SIZE``                 no direct branch of a genome reaches it
state block    ``STATE_BASE``        Unicorn    current case and output table, rw- (``ST_*``,
               ``STATE_SIZE``                   ``OUTPUTS_OFF``)
control block  ``CTL_BASE``          native     loop state, saved host registers, random values,
               ``CTL_SIZE``                     scratch template, ``jmp_buf``, rw-; the x86-64
                                                stub addresses it absolutely
=============  ====================  =========  ====================================================

The native worker puts ``PROT_NONE`` guard pages (``PAGE``) around each of its regions and
keeps an alternate signal stack of ``ALT_SIZE`` wherever mmap places it.
The stack pointer a genome finds at entry is the same on every tier: :func:`genome_sp`.

Where the layouts differ, on purpose: Unicorn keeps the batch's read-only data (``DATA_BASE``)
apart from the little the guest harness writes (``STATE_BASE``), so that a genome cannot
corrupt another's inputs; the native stub runs on the host, outside the genome's reach between
cases, and keeps everything in one read-write control block (``CTL_BASE``), whose layout also
holds what only the host side needs (saved registers, ``jmp_buf``, watchdog state). The random
register values, SIMD registers and scratch template thus sit at ``RAND_OFF``/``SIMD_OFF``/
``SCRATCH_TMPL_OFF`` of the data block under Unicorn and at ``RAND``/``SIMD``/``TMPL`` of the
control block natively; their contents are :mod:`core.executors.batch_state`'s in both.
"""
from __future__ import annotations

PAGE = 4096

# ---------------------------------------------------------------- regions shared by every tier
ARENA_BASE, ARENA_SIZE = 0x1000_0000, 16 << 20
STACK_BASE, STACK_SIZE = 0x2000_0000, 64 << 10
STACK_TOP = STACK_BASE + STACK_SIZE
X86_ENTRY_RSP = STACK_TOP - 72   # x86-64: the return address at [rsp], the red zone (scratch) below


def genome_sp(isa: str, scratch: int) -> int:
    """The stack pointer a genome finds at entry on every tier: arm64 ``STACK_TOP - scratch``
    (the scratch area ``[sp, sp + scratch)`` is the stack's top), x86-64 ``X86_ENTRY_RSP``."""
    return X86_ENTRY_RSP if isa == "x86_64" else STACK_TOP - scratch


# ---------------------------------------------------------------- Unicorn (and the interpreter)
SOLO_BASE = 0x0800_0000    # the slow lane's single slot, isolated: see UnicornEngine._load_slow_slot
DATA_BASE, DATA_SIZE = 0x6000_0000, 96 << 20
HARNESS_BASE, HARNESS_SIZE = 0x7000_0000, 64 << 10
STATE_BASE, STATE_SIZE = 0x7E00_0000_0000, 128 << 20

# Read-only control block: u64 fields at DATA_BASE. The entry table ends with the address of
# ``all_done``, which stops the loop after the last case.
CTL_IN_END, CTL_IN_BASE, CTL_SP, CTL_SIMD, CTL_RET = 24, 32, 48, 56, 64   # CTL_RET: x86 return point
CTL_STATES = 40            # per-case states table (0: none): arm64 per-case fast-lane slots read it
RAND_OFF = 256             # 32 x u64: value of register k at RAND_OFF + 8k (x86: see X86_RAND_SLOT)
SIMD_OFF = 512             # 32 x 16 bytes
SCRATCH_TMPL_OFF = 1024    # up to 4096 bytes
assert SIMD_OFF == RAND_OFF + 8 * 32 and SCRATCH_TMPL_OFF == SIMD_OFF + 512   # one write sets all three
TABLES_OFF = 8192          # entry table, inputs, outputs (per batch)
# The only guest-writable harness memory: the current case (OUT/IN/ENTRY pointers; arm64's fast
# loop keeps them in d28-d30 instead) and the output table, at an address no genome stumbles on.
ST_OUT, ST_IN, ST_ENTRY = 0, 8, 16
OUTPUTS_OFF = 4096

#: the fixed regions Unicorn maps, (start, size): the interpreter faults an access only when it
#: is far from all of them (and from the solo slot, whose size the executor chooses)
UNICORN_FIXED = ((ARENA_BASE, ARENA_SIZE), (STACK_BASE, STACK_SIZE), (DATA_BASE, DATA_SIZE),
                 (HARNESS_BASE, HARNESS_SIZE), (STATE_BASE, STATE_SIZE))

# ---------------------------------------------------------------- native (sandbox workers)
CTL_BASE, CTL_SIZE = 0x3000_0000, 16 << 10
ALT_SIZE = 64 << 10        # alternate signal stack (a genome may trash SP)
# Control block offsets (bytes from CTL_BASE)
IN_GENOME, CUR, LAST_TICK, SIG_OUT, ENTRY, SAVED_SP, SAVED_TLS, SAVED_FP = 0, 8, 16, 24, 32, 40, 48, 56
HAS_FSGS, N_GEN, N_CASES, ENTRIES, INPUTS, OUTPUTS, OUTCOMES = 64, 72, 80, 88, 96, 104, 112
LIGHT = 120           # uint8 per genome: entry flags (native.jit.entry_flags: 1 scratch, 2 heavy, 4 keeps)
SAVED_REGS = 128      # x86: rbx rbp r12-r15; arm64: x19-x30, then d8-d15
RAND = 320            # 32 x u64
SIMD = 576            # 32 x 16 bytes
assert SIMD == RAND + 8 * 32   # a per-case state's first 768 bytes are one copy (see STATES)
JMPBUF = 1152         # 512 bytes (x86-64 jmp_buf: 200, aarch64: 312)
TMPL = 2048           # scratch template, up to 4096 bytes
X86_FP0 = 1664        # u32 MXCSR 0x1F80 for genome entry
CPU0 = 1672           # thread CPU time (ns) when the watchdog first saw the current case
BUDGET_NS = 1680      # CPU time a case may use before it ends as TIMEOUT
RETRIED = 1688        # 1 while a case that timed out once runs its second attempt
OUTCOME_LUT = 1792    # 64 bytes: signal number (0: returned) -> Outcome value
CODE_ENTRIES = 1856   # genome code addresses past the slot prologues (the benchmark's bare calls)
LAST_CASES = 1880    # cases the last genome runs (the crash sentinel: a few crashes, not n_cases)
CASE = 1872          # the case being run (volatile: where a crash's longjmp resumes the loop)
WORKER_TID = 1864     # the thread that runs genomes: a signal on another thread is not a genome's
# melvin_cases' loop state (the genome clobbers every register, so it lives here between cases):
# the slot, the argument rows, the end case, the genome's output and outcome rows
LOOP_SLOT, LOOP_IN, LOOP_END, LOOP_OUT, LOOP_KIND = 1888, 1896, 1904, 1912, 1920
# the same state kept in callee-saved registers for a genome that leaves them alone (its plan's
# KEEPS bit): their digest, which the stub checks after every case
LOOP_SUM = 1928
STATES = 1696         # per-case states (0: the batch's): row c (RAND's 256 bytes, SIMD's 512, then
                      # the scratch template) is copied to RAND, SIMD and TMPL before case c
