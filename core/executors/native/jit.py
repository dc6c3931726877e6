"""The one small room for unsafe native code: memory maps, signals, seccomp and the JIT trampoline.

Only sandbox worker processes build a :class:`Machine`; the owner of a population never does.
A Machine maps, at the fixed addresses of :mod:`core.executors.memory_map` (so stack pointer
values agree with the emulator's), the arena (r-x, written through a second, read-write mapping
of the same memfd), the genome stack and the control block, each with ``PROT_NONE`` guard pages
on both sides, plus an alternate signal stack.

The trampoline (:mod:`core.executors.native.trampoline`, text only) is LLVM IR compiled by
llvmlite here: ``melvin_run`` loops over genomes, ``_setjmp`` before each genome's cases (a
crash comes back there and resumes at the next case), and calls ``melvin_cases``, an assembly
stub (module-level asm) that saves the host's callee-saved registers and SP in the control
block once and loops over the genome's cases itself: per case it refills the scratch area if
the genome touches memory, loads SIMD/x87/FP state if it uses it, and calls the genome's slot,
whose prologue loads the registers the genome may read (:mod:`core.executors.native.prologue`,
:mod:`core.executors.batch_state`'s values); the genome returns to the stub, which takes its
stack back and stores the case's result, and restores everything after the last case
(per-case states and the benchmark's bare mode go through ``melvin_enter``, one case a call).
``melvin_load`` writes a batch's arena slots in one call. A fault, a refused system
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
import threading

import llvmlite.binding as llvm
import numpy as np

from core.executors.memory_map import (ALT_SIZE, ARENA_BASE, ARENA_SIZE, BUDGET_NS, CODE_ENTRIES, CTL_BASE, CTL_SIZE,
                                      ENTRIES, HAS_FSGS, INPUTS, LAST_CASES, LIGHT, N_CASES, N_GEN, OUTCOME_LUT, OUTCOMES, OUTPUTS,
                                      PAGE, RAND, SIMD, STACK_BASE, STACK_SIZE, STATES, TMPL, WORKER_TID, X86_FP0)
from core.executors.native.prologue import CODE_AT, UNITS
from core.executors.native.trampoline import ir
from core.outcome import Outcome

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
        self.ctl_bytes[OUTCOME_LUT:OUTCOME_LUT + 64] = SIGNAL_LUT[:64]
        self.ctl[WORKER_TID // 8] = threading.get_native_id()   # the thread that builds runs
        self.arena = np.ctypeslib.as_array((ctypes.c_uint8 * ARENA_SIZE).from_address(self._rw))
        self.n_slots = ARENA_SIZE // slot_size
        # bytes of each slot that may differ from the padding (never written: all of it)
        self._dirty = np.full(self.n_slots, slot_size, np.int64)
        self._pad_row = np.resize(np.frombuffer(pad, np.uint8), slot_size)
        self.code_entries = np.zeros(0, np.uint64)
        self.flags = np.zeros(0, np.uint8)
        self._entries = np.zeros(self.n_slots, np.uint64)
        self._code_entries = np.zeros(self.n_slots, np.uint64)
        self._flags = np.zeros(self.n_slots, np.uint8)
        self._ret, self._ret_arr = None, np.zeros(0, np.uint8)
        #: bytes from one slot to the next in the last load (``_fit``); bytes of the arena
        #: written so far (from its start); bytes padded again by the last load's new stride
        self.stride, self._extent, self._repadded = 0, 0, 0
        # [state, slots]: True while no code that may write memory has run since set_state()
        # wrote the entry state, load() the slots (every genome of every run light, flags 0: its
        # entry plan says it has no memory operand and leaves the stack alone): then the stack,
        # the control block's state and the arena's writable alias are as they were written
        self._untouched = [False, False]
        self._state_key = None
        self._loaded: tuple | None = None   # (blob bytes, offsets, plans) of the slots in place
        bits, pieces, tail = UNITS[isa]
        self._units = (bits, np.ascontiguousarray(pieces), np.frombuffer(tail, np.uint8).copy())
        # melvin_load's arguments (trampoline.py); slots 2-5, 14, 15 change per batch
        self._load_args = np.array([self._rw, slot_size, 0, 0, 0, 0, self._dirty.ctypes.data,
                                    self._pad_row.ctypes.data, bits.ctypes.data, self._units[1].ctypes.data,
                                    len(bits), self._units[2].ctypes.data, len(tail), CODE_AT[isa], 0, 0,
                                    self._entries.ctypes.data, self._code_entries.ctypes.data, ARENA_BASE,
                                    self._flags.ctypes.data], np.uint64)
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
        mod = llvm.parse_assembly(ir(self.isa, self.scratch))
        mod.verify()
        tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
        self._engine = llvm.create_mcjit_compiler(mod, tm)
        self._engine.finalize_object()
        addr = self._engine.get_function_address
        self.handler_addr = addr("melvin_handler")
        self._run = ctypes.CFUNCTYPE(None, ctypes.c_int64)(addr("melvin_run"))
        self._load = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(addr("melvin_load"))
        self._one = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)(
            addr("melvin_one"))

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
    def set_state(self, regs: np.ndarray, simd: bytes, scratch: bytes, key: object = None) -> None:
        """Entry state of every case (see :class:`core.executors.batch_state.BatchState`).

        ``key`` names the state (e.g. its seed): the same key again finds it in place, and
        nothing is rewritten, when no code that may write memory ran since (``_untouched``)."""
        if key is not None and key == self._state_key and self._untouched[0]:
            return
        self.ctl[RAND // 8:RAND // 8 + 32] = regs
        self.ctl_bytes[SIMD:SIMD + 512] = np.frombuffer(simd, np.uint8)
        self.ctl_bytes[TMPL:TMPL + len(scratch)] = np.frombuffer(scratch, np.uint8)
        ctypes.memset(STACK_BASE, 0, STACK_SIZE)  # what lies below the scratch area starts at zero
        self._state_key, self._untouched[0] = key, True

    def load(self, blob: np.ndarray, offsets: np.ndarray, ret: bytes, plans: np.ndarray) -> np.ndarray:
        """Write slot ``i``: padding, the prologue of ``plans[i]`` (:mod:`core.executors.native.prologue`),
        genome ``i`` = ``blob[offsets[i]:offsets[i+1]]`` from ``CODE_AT``, ``ret``, padding.

        Returns the entry addresses (the prologues), uint64 [n]; ``self.code_entries`` holds the
        codes' own, ``self.flags`` the stub's flags (:func:`entry_flags`). One call of the JIT's
        ``melvin_load``: no Python per genome."""
        n = len(offsets) - 1
        if n > self.n_slots:
            raise ValueError(f"{n} genomes exceed the arena's {self.n_slots} slots")
        blob = np.ascontiguousarray(blob, np.uint8)
        offsets = np.ascontiguousarray(offsets, np.uint64)
        plans = np.ascontiguousarray(plans, np.uint64)
        if len(plans) != n:
            raise ValueError("one plan per genome")
        if n and int(offsets[-1]) > len(blob):
            raise ValueError("offsets run past the code blob")
        if self._ret != ret:
            self._ret, self._ret_arr, self._loaded = ret, np.frombuffer(ret, np.uint8).copy(), None
        if self._untouched[1] and self._loaded is not None and _same(self._loaded[1], offsets) \
                and _same(self._loaded[2], plans) and self._loaded[0] == blob[:int(offsets[-1]) if n else 0].tobytes():
            return self._entries[:n]   # these slots, unchanged since no code could write them
        self._loaded = None
        span = self._fit(offsets, len(ret)) * n
        a = self._load_args
        a[1] = self.stride
        a[2], a[3], a[4], a[5] = n, plans.ctypes.data, blob.ctypes.data, offsets.ctypes.data
        a[14], a[15] = self._ret_arr.ctypes.data, len(ret)
        bad = self._load(a.ctypes.data)
        if bad:
            raise ValueError(f"genome {bad - 1} exceeds the arena slot")
        if self.isa == "arm64":
            span = max(span, self._repadded)
            _clear_cache(ARENA_BASE, ARENA_BASE + span)
            # qemu user mode does not see writes through the alias; a moment without PROT_EXEC
            # (never writable and executable at once) drops its translations of the arena
            span = -(-span // PAGE) * PAGE
            _libc.mprotect(ctypes.c_void_p(ARENA_BASE), span, PROT_R | PROT_W)
            _libc.mprotect(ctypes.c_void_p(ARENA_BASE), span, PROT_R | PROT_X)
        self.code_entries, self.flags = self._code_entries[:n], self._flags[:n]
        self._loaded = (blob[:int(offsets[-1]) if n else 0].tobytes(), offsets.copy(), plans.copy())
        self._untouched[1] = True
        return self._entries[:n]

    def _fit(self, offsets: np.ndarray, ret_len: int) -> int:
        """Set ``self.stride`` for a batch: the smallest power of two (from 64) that holds its
        longest code after ``CODE_AT`` with the return and 16 bytes of padding, at most
        ``slot_size`` (a batch of short codes keeps its slots in fewer cache lines and pages).
        A new stride first pads everything earlier batches wrote (``_dirty`` is per slot)."""
        n = len(offsets) - 1
        longest = int(np.diff(offsets).max()) if n else 0
        need, stride = CODE_AT[self.isa] + longest + ret_len + 16, 64
        while stride < need and stride < self.slot_size:
            stride *= 2
        stride = min(stride, self.slot_size)
        self._repadded = 0
        if stride != self.stride:
            end = self._extent
            if end:
                pad = np.frombuffer(self.pad, np.uint8)
                self.arena[:end].reshape(-1, len(pad))[:] = pad   # strides are multiples of 64
            done = end // stride
            self._dirty[:done], self._dirty[done:] = 0, stride
            self.stride, self._repadded = stride, end
        self._extent = max(self._extent, n * stride)
        return stride

    def run(self, entries: np.ndarray, inputs_addr: int, outputs: np.ndarray, outcomes: np.ndarray,
            n_cases: int, budget: float, bare: bool = False, flags: np.ndarray | None = None,
            states: np.ndarray | None = None, last_cases: int | None = None) -> None:
        """Run every (genome, case); ``outcomes`` (uint8, writable) ends as Outcome values.

        ``last_cases``: cases the last genome runs (None: all; the owner's crash sentinel needs
        a few, and each crash costs a signal delivery); its other rows are left as they were.

        ``entries``: :meth:`load`'s; ``flags``: uint8 per genome, bit 0 refill the scratch, bit 1
        the heavy entry (:func:`entry_flags`; None: both). ``bare``: call each code past its
        prologue with ``_setjmp`` and nothing else (the benchmark's; well-behaved code only).

        ``states``: uint8 [n_cases, 768 + scratch], case c's entry state in row c (registers,
        SIMD, scratch: ``CaseStates``' fields), copied into place before each case; None: the
        batch's (:meth:`set_state`).

        ``budget``: CPU seconds per case. The watchdog ticks every ``budget`` (wall time) and
        ends a case as TIMEOUT once the thread's CPU time since the first tick that saw the
        case reaches ``budget``: it used at least ``budget`` and at most about three."""
        c = self.ctl
        if bare or flags is None or states is not None or np.any(flags[:len(entries)] & 3):
            self._untouched[:] = False, False   # code that may write memory (or unplanned) runs
        c[BUDGET_NS // 8] = max(1, int(budget * 1e9))
        tick = budget
        c[N_GEN // 8], c[N_CASES // 8] = len(entries), n_cases
        c[LAST_CASES // 8] = n_cases if last_cases is None else max(1, min(n_cases, last_cases))
        c[ENTRIES // 8], c[INPUTS // 8] = entries.ctypes.data, inputs_addr
        c[OUTPUTS // 8], c[OUTCOMES // 8] = outputs.ctypes.data, outcomes.ctypes.data
        if flags is None:
            flags = np.full(len(entries), 3, np.uint8)    # scratch and heavy: the full entry
        flags = np.ascontiguousarray(flags, np.uint8)
        c[LIGHT // 8] = flags.ctypes.data
        if len(self.code_entries) < len(entries):
            raise ValueError("run() needs the entries of the last load()")
        c[CODE_ENTRIES // 8] = self.code_entries.ctypes.data
        if states is not None:
            if states.dtype != np.uint8 or states.shape != (n_cases, 768 + self.scratch) \
                    or not states.flags.c_contiguous:
                raise ValueError(f"states must be uint8 [{n_cases}, {768 + self.scratch}], C-contiguous")
        c[STATES // 8] = 0 if states is None else states.ctypes.data
        signal.setitimer(signal.ITIMER_REAL, tick, tick)
        try:
            self._run(1 if bare else 0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            c[STATES // 8] = 0

    def run_one(self, entry: int, row_addr: int, flags: int = 3) -> int:
        """One case through one ctypes call (the per-call baseline of the benchmark)."""
        self._untouched[:] = False, False
        return self._one(entry, row_addr, flags)

    def close(self) -> None:
        """Restore the process's previous signal handlers and alternate stack (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for sig, old in self._old_actions.items():
            _libc.sigaction(sig, ctypes.byref(old), None)
        _libc.sigaltstack(ctypes.byref(self._old_alt), None)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def entry_flags(plans: np.ndarray) -> np.ndarray:
    """The stub's flags per genome from entry plans (``light.MEM`` -> 1, ``light.HEAVY`` -> 2,
    ``light.KEEPS`` -> 4)."""
    return ((np.asarray(plans, np.uint64) >> np.uint64(32)) & np.uint64(7)).astype(np.uint8)


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
