"""Unicorn's tier: the harness of :mod:`core.executors.unicorn.harness` run over a batch, in lanes.

:class:`UnicornEngine` maps memory once (:mod:`core.executors.memory_map`), writes the harness
and installs the hooks; :mod:`core.executors.tiered` decides which genomes reach it and in
which lane (from :mod:`core.executors.unicorn.triage`), and calls:

* :meth:`UnicornEngine.run_fast`, the fast lane: every genome that provably returns within its
  own length runs inside one ``emu_start`` per chunk of the population. On arm64 each slot
  loops over its cases; an interrupt (udf, svc, brk, alignment) is recorded by the hook, which
  points PC at the harness's ``fault_reset`` and emulation goes on; udf/svc/brk words are even
  rewritten into branches that report the outcome from inside the guest; a memory fault stops
  emulation and the run restarts at ``fault_reset``. On x86-64 a fault stops emulation and the
  harness restarts at the next case;
* :meth:`UnicornEngine.run_slow`, the slow lane: any other genome runs one ``emu_start`` per
  case with ``count`` set to the harness overhead plus the instruction budget, so a hang costs
  exactly its own budget (TIMEOUT) and never the other cases'.

Unicorn runs with its virtual TLB (identity mapping, the same permission checks): in this
build the CPU TLB sends every guest store through a slow path (README: executor figures).
ARM64 runs at EL0 with Linux's SCTLR_EL1 user bits; system-register accesses go through a hook
that applies Linux's EL0 rules, since Unicorn's MRS hook bypasses its own access checks.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
import threading
import time

import numpy as np
import unicorn as uc_mod
from unicorn import Uc, UcError
from unicorn import arm64_const as A
from unicorn import x86_const as X

from core.asm import assemble
from core.executors.api import ExecutorOptions
from core.executors import memory_map as MM
from core.executors.batch_state import BatchState, CaseStates
from core.executors.unicorn import harness as H
from core.executors.unicorn.linux_rules import (ARM64_INTR, EL0_READ, EL0_SYS, EL0_TIMERS, EL0_WRITE,
                                                ERR_OUTCOME, SCTLR_EL0_BITS, X86_INTR)
from core.executors.unicorn.triage import Trap, Triage
from core.isa import Isa
from core.outcome import Outcome

log = logging.getLogger(__name__)

PENDING = 255   # outcome of a case no lane has attributed yet
#: Unicorn's translation buffer (QEMU's code_gen_buffer; Unicorn's default: 1 GiB). QEMU frees
#: translations only all at once, when the buffer is full: with the default every genome ever
#: translated (~1.5 KiB each) stayed resident and a long run grew by a 2 MiB page every minute
#: or two (issue 13's soak). 8 MiB holds ~5,000 genomes; a flush costs only re-translation
#: (4 MiB made re-running a batch of 1,000 new genomes 40 % slower: flushes between the runs).
TCG_BUFFER_BYTES = 8 << 20
#: Arena slots used (the mapping has room for ~8,000): a slot's pages become resident when a
#: genome is first placed there, so a long run grew by up to 16 MiB; 1,024 slots (2 MiB) hold
#: a population three times over (a benchmark batch of 1,000 genomes once).
ARENA_SLOTS = 1024

class _Watchdog:
    """Stops a fast-lane ``emu_start`` that overruns its deadline, from one long-lived thread.

    Unicorn's own ``timeout`` starts a thread per ``emu_start``, and ``count`` instruments
    every instruction (README: executor figures); fast-lane code cannot hang by
    construction, so a cheap deadline is the right safety net.
    """

    def __init__(self, owner: "UnicornEngine"):
        self._owner = owner
        self._deadline = 0.0
        self._armed = False
        self._fired = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="melvin-emu-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float) -> None:
        self._fired = False
        self._deadline = time.monotonic() + seconds
        self._armed = True

    def disarm(self) -> bool:
        self._armed = False
        return self._fired

    def _loop(self) -> None:
        while not self._stopped.wait(0.05):
            if self._armed and time.monotonic() > self._deadline:
                self._fired = True
                self._armed = False
                self._owner.uc.emu_stop()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=1.0)


class UnicornEngine:
    """One Unicorn machine with the harness mapped, running the lanes (any host, both ISAs).

    ``solo_size``: bytes mapped at ``SOLO_BASE``; ``post`` (arm64): harness instructions from
    the genome's return to the end of a slow-lane case. The interpreter needs both to agree
    with the slow lane. ``close`` releases it (idempotent).
    """

    def __init__(self, isa: Isa, options: ExecutorOptions):
        self.isa = isa
        self.options = options
        self._closed = False
        self._pending: Outcome | None = None
        self._fast_faults: list | None = None   # (output address, outcome) while an arm64 fast run is on
        self._trap_actions: dict[int, Trap] = {}
        self._trap_hooks: list[int] = []
        # Room for the longest epilogue: every register and every scratch word restored.
        epilogue_max = 8 * 32 + 24 * (options.scratch // 8) + 16
        self.slot_size = -(-(options.max_code_bytes + epilogue_max) // 16) * 16
        self._epilogues: dict = {}
        self._n_slots = min(MM.ARENA_SIZE // self.slot_size, ARENA_SLOTS)
        # genome code -> its slot's index (the slot's ~2 KiB are a function of the code)
        self._resident: OrderedDict[bytes, int] = OrderedDict()
        self._free = list(range(self._n_slots - 1, -1, -1))
        self._zero_stack = bytes(MM.STACK_SIZE - options.scratch - 64)
        self._watchdog = _Watchdog(self)
        self._x86_dirty = False
        self.harness = H.build_harness(isa, options.scratch)
        self._fault_reset = self.harness.fault_reset
        uc = self.uc = Uc(isa.uc_arch, isa.uc_mode)
        uc.ctl_set_tcg_buffer_size(TCG_BUFFER_BYTES)     # before anything initialises the engine
        uc.ctl_set_tlb_mode(uc_mod.UC_TLB_VIRTUAL)
        rx, rw = uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC, uc_mod.UC_PROT_READ | uc_mod.UC_PROT_WRITE
        uc.mem_map(MM.ARENA_BASE, MM.ARENA_SIZE, rx)
        self.solo_size = -(-self.slot_size // 4096) * 4096
        uc.mem_map(MM.SOLO_BASE, self.solo_size, rx)
        uc.mem_map(MM.STACK_BASE, MM.STACK_SIZE, rw)
        uc.mem_map(MM.DATA_BASE, MM.DATA_SIZE, uc_mod.UC_PROT_READ)
        uc.mem_map(MM.STATE_BASE, MM.STATE_SIZE, rw)
        uc.mem_map(MM.HARNESS_BASE, MM.HARNESS_SIZE, rx)
        uc.mem_write(MM.HARNESS_BASE, self.harness.code)
        uc.hook_add(uc_mod.UC_HOOK_INTR, self._on_interrupt)
        if isa.name == "arm64":
            self._pc = A.UC_ARM64_REG_PC
            sctlr = uc.cpr_read(3, 0, 1, 0, 0) | SCTLR_EL0_BITS
            uc.cpr_write(3, 0, 1, 0, 0, sctlr)
            uc.reg_write(A.UC_ARM64_REG_PSTATE, uc.reg_read(A.UC_ARM64_REG_PSTATE) & ~0xF)  # EL0t
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_sysreg, True, 1, 0, A.UC_ARM64_INS_MRS)
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_sysreg, False, 1, 0, A.UC_ARM64_INS_MSR)
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_sys, None, 1, 0, A.UC_ARM64_INS_SYS)
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_sys, None, 1, 0, A.UC_ARM64_INS_SYSL)
        else:
            self._pc = X.UC_X86_REG_RIP
            self._clean_context = uc.context_save()
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_syscall, None, 1, 0, X.UC_X86_INS_SYSCALL)
            uc.hook_add(uc_mod.UC_HOOK_INSN, self._on_syscall, None, 1, 0, X.UC_X86_INS_SYSENTER)
        self._overhead = self._calibrate()
        if isa.name == "arm64":
            # harness instructions from the genome's return to the end of a slow-lane case: a
            # trap that late still counts within the budget (see interp.execute.execute)
            words = np.frombuffer(self.harness.code, dtype="<u4")
            slow_ret = MM.HARNESS_BASE + 4 * (int(np.flatnonzero(words == 0xD63F03C0)[0]) + 1)   # after blr x30
            self.post = (self.harness.case_stored - slow_ret) // 4
            #: x30 at a genome's entry in both lanes (the fast lane sets it too): the interpreter's ``lr``
            self.ret_addr = slow_ret

    # ----------------------------------------------------------------- hooks (never raise)
    def _stop(self, outcome: Outcome) -> None:
        if self._pending is None:
            self._pending = outcome
        self.uc.emu_stop()

    def _on_interrupt(self, uc, intno, _data):
        if self._fast_faults is not None:
            # arm64 fast lane: record the fault against the current case (d31 is its output
            # slot) and carry on at the harness's fault_reset, without leaving emulation
            # (~4x cheaper than stopping, returning to Python and starting again).
            self._fast_faults.append((uc.reg_read(A.UC_ARM64_REG_D31), ARM64_INTR.get(intno, Outcome.SIGILL)))
            uc.reg_write(A.UC_ARM64_REG_PC, self._fault_reset)
            return
        if self.isa.name == "arm64":
            self._stop(ARM64_INTR.get(intno, Outcome.SIGILL))
        else:
            # Unicorn skips the IDT but QEMU remembers the fault: the next contributory fault
            # would become a double fault, then a silent triple-fault halt. A clean CPU context
            # is restored before the harness restarts.
            self._x86_dirty = True
            self._stop(X86_INTR.get(intno, Outcome.SIGSEGV))

    def _on_syscall(self, uc, _data):
        self._stop(Outcome.SYSCALL)

    def _on_sysreg(self, uc, reg, cp, is_read):
        """Linux's EL0 rules for MRS (``is_read``) and MSR; True means "handled, skip it"."""
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if is_read:
            if key in EL0_TIMERS:
                uc.reg_write(reg, EL0_TIMERS[key])
                return True  # handled: skip the instruction
            if key in EL0_READ or (key[0] == 3 and key[1] == 0 and key[2] == 0):
                return False  # EL0-readable, or an ID register Linux emulates: let it execute
        elif key in EL0_WRITE:
            return False
        self._stop(Outcome.SIGILL)
        return True

    def _on_sys(self, uc, reg, cp, _data):
        if (cp.op1, cp.crn, cp.crm, cp.op2) in EL0_SYS:
            return False
        self._stop(Outcome.SIGILL)
        return True

    def _on_trap(self, uc, address, _size, _data):
        action = self._trap_actions.get(address)
        if action is Trap.SKIP:
            uc.reg_write(self._pc, address + 4)
        elif action is Trap.SIGILL:
            self._stop(Outcome.SIGILL)
        elif action is Trap.SIGSEGV:
            self._stop(Outcome.SIGSEGV)
        elif action is Trap.SP_ALIGN and uc.reg_read(A.UC_ARM64_REG_SP) & 15:
            self._stop(Outcome.SIGBUS)

    # ----------------------------------------------------------------- memory helpers
    def _emu(self, begin: int, until: int, count: int = 0) -> Outcome | None:
        """Run; return the fault class, or None if emulation stopped without a fault."""
        if self._x86_dirty:
            self.uc.context_restore(self._clean_context)
            self._x86_dirty = False
        self._pending = None
        try:
            self.uc.emu_start(begin, until, 0, count)
        except UcError as exc:
            if self._pending is not None:
                return self._pending
            outcome = ERR_OUTCOME.get(exc.errno)
            if outcome is None:
                raise
            if outcome is Outcome.SIGSEGV and self.isa.name == "arm64" and exc.errno != uc_mod.UC_ERR_FETCH_UNMAPPED:
                return self._alignment_first()
            return outcome
        return self._pending

    def _alignment_first(self) -> Outcome:
        """A data fault's class: alignment may come first (:func:`harness.misaligned_ordered`)."""
        uc = self.uc
        word = int.from_bytes(uc.mem_read(uc.reg_read(self._pc), 4), "little")
        rn = (word >> 5) & 31
        reg = (A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30, A.UC_ARM64_REG_SP)[rn - 29] if rn >= 29 else A.UC_ARM64_REG_X0 + rn
        base = uc.reg_read(reg) if (word >> 24) & 0x3F == 8 else 0
        return Outcome.SIGBUS if H.misaligned_ordered(word, base) else Outcome.SIGSEGV

    def _calibrate(self) -> int:
        """Harness instructions per case in single-case mode (found by search, not by hand)."""
        tables = self.write_state(np.zeros((1, 1), dtype=np.uint64), BatchState.from_seed(0, self.options.scratch))
        batch = self._lay_out([self._load_slow_slot(b"")], 1, tables, simd=True)
        lo, hi = 1, 4096
        while lo < hi:
            mid = (lo + hi) // 2
            self._point_at(batch, 0, 0)
            fault = self._emu(self.harness.full_reset, self.harness.case_stored, mid)
            done = fault is None and self.uc.reg_read(self._pc) == self.harness.case_stored
            lo, hi = (lo, mid) if done else (mid + 1, hi)
        return lo - 1  # the empty genome executes exactly one instruction: the appended return

    # ----------------------------------------------------------------- batch set-up
    def write_state(self, inputs: np.ndarray, state: BatchState, states: CaseStates | None = None) -> int:
        """Write random values, scratch template and the input table; returns the next free address.

        ``states`` (fast lane): the per-case states table follows the inputs, for slots made
        with ``slot(..., per_case=True)``; ``state`` is then what a fault's reset rebuilds first."""
        # random values, SIMD registers and scratch template are contiguous: one write (each is dear)
        self.uc.mem_write(MM.DATA_BASE + MM.RAND_OFF, state.regs.tobytes() + state.simd + state.scratch)
        table = (state if states is None else states).input_table(self.isa, inputs)
        addr = MM.DATA_BASE + MM.TABLES_OFF
        self.uc.mem_write(addr, table.tobytes())
        self._inputs_addr, self._states_addr = addr, 0
        end = addr + table.nbytes
        if states is not None:
            stride = H.state_stride(self.options.scratch)
            rows = np.zeros((len(states), stride), np.uint8)
            rows[:, :256], rows[:, 256:768] = states.regs.view(np.uint8), states.simd
            rows[:, 768:768 + self.options.scratch] = states.scratch
            self._states_addr = end = -(-end // stride) * stride
            self.uc.mem_write(end, rows.tobytes())
            end += rows.nbytes
        return end

    def slot(self, code: bytes, info: Triage | None, per_case: bool = False) -> bytes:
        """Slot contents: the fast-lane wrapping of the code (``per_case``: each case under its
        own state, see ``write_state``), or the code and a plain return (slow lane), then
        padding that faults if ever reached."""
        isa = self.isa
        if info is None:
            body = code + isa.ret_bytes
        elif isa.name == "arm64":
            body = H.arm64_slot(code, info.clobbered, info.scratch_words, self.options.scratch if per_case else None)
        elif per_case:
            head = self._epilogues.get("per_case")
            if head is None:
                head = self._epilogues["per_case"] = assemble(H.x86_per_case_prologue(self.options.scratch), isa)
            body = head + code + isa.ret_bytes
        else:
            key = (info.clobbered, info.scratch_words)
            tail = self._epilogues.get(key)
            if tail is None:
                tail = assemble(H.epilogue_lines(isa, *key, self.harness.sp_init, self.harness.scratch_base), isa)
                self._epilogues[key] = tail
            body = H.returns_as_branches(code, isa.name, info.trailing_ret) + tail
        pad = self.slot_size - len(body)
        return body + (isa.pad_bytes * (pad // len(isa.pad_bytes) + 1))[:pad]

    def _load_slots(self, genomes: list[tuple]) -> list[int]:
        """Place the fast-lane slots of ``genomes`` ((code, triage) or (code, triage, per_case),
        see :meth:`slot`) in the arena; returns their entry addresses.

        The arena is content-addressed: a slot already resident keeps its address and its
        translated code, so re-running a genome costs no new translation (translating a new
        genome costs Unicorn more than 64 cases of executing it). Slots are keyed by their code
        and built only when placed: the index holds ~100 bytes per slot, not the slot's 2 KiB.
        """
        uc, size = self.uc, self.slot_size
        if len(genomes) > self._n_slots:
            raise ValueError(f"{len(genomes)} slots exceed the arena ({self._n_slots})")
        wanted = {(g[0], len(g) > 2 and g[2]) for g in genomes}
        addrs, new = [], []
        for code, info, *per_case in genomes:
            code = (code, bool(per_case and per_case[0]))        # the key: a per-case slot differs
            index = self._resident.get(code)
            if index is None:
                if self._free:
                    index = self._free.pop()
                else:  # evict the least recently used slot this batch does not need
                    victim = next(c for c in self._resident if c not in wanted)
                    index = self._resident.pop(victim)
                self._resident[code] = index
                new.append((index, self.slot(code[0], info, code[1])))
            else:
                self._resident.move_to_end(code)
            addrs.append(MM.ARENA_BASE + index * size)
        # One write per run of consecutive slots: each write is dear in Unicorn.
        new.sort()
        start = 0
        while start < len(new):
            stop = start + 1
            while stop < len(new) and new[stop][0] == new[stop - 1][0] + 1:
                stop += 1
            address = MM.ARENA_BASE + new[start][0] * size
            blob = b"".join(content for _, content in new[start:stop])
            uc.mem_write(address, blob)
            uc.ctl_remove_cache(address, address + len(blob))
            start = stop
        return addrs

    def _load_slow_slot(self, code: bytes) -> int:
        """Write slow-lane code (plain return, no epilogue) into the solo slot.

        The solo slot sits alone, > 1 MiB from any other mapping, so PC-relative code (adr,
        literal loads: always slow lane) sees the same addresses and bytes in every batch."""
        self.uc.mem_write(MM.SOLO_BASE, self.slot(code, None))
        self.uc.ctl_remove_cache(MM.SOLO_BASE, MM.SOLO_BASE + self.slot_size)
        return MM.SOLO_BASE

    def _lay_out(self, entries: list[int], n_cases: int, tables: int, simd: bool) -> dict:
        """Entry and output tables after the inputs; the control block set for this batch."""
        e_addr = tables
        o_addr = MM.STATE_BASE + MM.OUTPUTS_OFF
        table = np.asarray([*entries, self.harness.all_done], dtype=np.uint64)
        self.uc.mem_write(e_addr, table.tobytes())
        self.uc.mem_write(o_addr, bytes(8 * len(entries) * n_cases))
        in_end = self._inputs_addr + 32 * n_cases
        ctl = np.zeros((MM.CTL_RET + 8 - MM.CTL_IN_END) // 8, np.uint64)   # the fields, in one write
        for field_, value in ((MM.CTL_IN_END, in_end), (MM.CTL_IN_BASE, self._inputs_addr),
                              (MM.CTL_SIMD, int(simd)), (MM.CTL_RET, self.harness.ret_point),
                              (MM.CTL_SP, self.harness.sp_init), (MM.CTL_STATES, self._states_addr)):
            ctl[(field_ - MM.CTL_IN_END) // 8] = value
        self.uc.mem_write(MM.DATA_BASE + MM.CTL_IN_END, ctl.tobytes())
        return {"entries": e_addr, "outputs": o_addr, "n": len(entries), "n_cases": n_cases}

    def _point_at(self, batch: dict, g: int, c: int) -> None:
        """Make (genome g, case c) the current case of the slow-mode harness (in memory)."""
        out = batch["outputs"] + 8 * (g * batch["n_cases"] + c)
        inp = self._inputs_addr + 32 * c
        entry = batch["entries"] + 8 * g
        self.uc.mem_write(MM.STATE_BASE + MM.ST_OUT, np.array([out, inp, entry], dtype=np.uint64).tobytes())

    def _current_out(self) -> int:
        """The output slot of the case the x86-64 harness is in (where a fault happened)."""
        return int.from_bytes(self.uc.mem_read(MM.STATE_BASE + MM.ST_OUT, 8), "little")

    def chunk_capacity(self, n_cases: int) -> int:
        arena = self._n_slots
        # arm64: the class table (trap outcomes reported by the guest) follows the outputs
        outputs = (MM.STATE_SIZE - MM.OUTPUTS_OFF) // ((16 if self.isa.name == "arm64" else 8) * n_cases)
        return max(1, min(arena, outputs))

    # ----------------------------------------------------------------- running (lanes)
    def run_fast(self, idx, genomes, n_cases, tables, outputs, outcomes) -> list[int]:
        """Fast lane: genomes ``idx`` (their (code, triage) pairs ``genomes``, at most
        ``chunk_capacity``) in one harness run; fills their rows and returns the genomes to
        re-run in the slow lane."""
        run = self._run_fast_arm64 if self.isa.name == "arm64" else self._run_fast_x86
        return run(idx, genomes, n_cases, tables, outputs, outcomes)

    def before_slow_lane(self) -> None:
        """Call between a fast-lane run and slow-lane runs of one batch.

        Harness code translated during a fast-lane run (count 0) carries no instruction
        counting, and Unicorn would reuse it: slow-lane budgets would then silently grow by the
        uncounted harness instructions (~80). Retranslate it with counting on."""
        self.uc.ctl_remove_cache(MM.HARNESS_BASE, MM.HARNESS_BASE + MM.HARNESS_SIZE)

    def _run_fast_x86(self, idx, genomes, n_cases, tables, outputs, outcomes) -> list[int]:
        """One x86-64 harness run over genomes ``idx``; returns genomes to re-run in the slow lane."""
        uc, hz = self.uc, self.harness
        batch = self._lay_out(self._load_slots(genomes), n_cases, tables, simd=False)
        n, total = len(idx), len(idx) * n_cases
        cls = np.zeros((n, n_cases), dtype=np.uint8)   # OK unless a fault is recorded below
        moved: list[int] = []
        self._point_at(batch, 0, 0)
        begin = hz.full_reset
        last_stop = None
        while True:
            self._watchdog.arm(5.0 + 20e-6 * total)
            fault = self._emu(begin, hz.all_done)
            fired = self._watchdog.disarm()
            pc = uc.reg_read(self._pc)
            if fault is None and pc == hz.all_done:
                break
            k = (self._current_out() - batch["outputs"]) // 8
            if not 0 <= k < total:
                log.warning("harness control block corrupted (case index %d): chunk abandoned", k)
                cls[:] = PENDING
                break
            g, c = divmod(k, n_cases)
            if fault is None:
                if not fired and (pc, k) != last_stop:
                    last_stop = (pc, k)
                    begin = pc  # stopped early without a fault (a spurious stop): resume in place
                    continue
                # A hang or a halt, impossible for triaged code: re-run the genome in the slow
                # lane, where every case is bounded by its budget.
                fault = Outcome.TIMEOUT
                moved.append(idx[g])
                k = (g + 1) * n_cases - 1   # skip its other cases here
            cls[g, c] = fault
            if k + 1 == total:
                break
            self._point_at(batch, *divmod(k + 1, n_cases))
            begin = hz.full_reset
        raw = np.frombuffer(uc.mem_read(batch["outputs"], 8 * total), dtype=np.uint64).reshape(n, n_cases)
        rows = np.asarray(idx)
        outputs[rows] = np.where(cls == Outcome.OK, raw, 0)
        outcomes[rows] = cls
        return moved

    def _run_fast_arm64(self, idx, genomes, n_cases, tables, outputs, outcomes) -> list[int]:
        """One arm64 fast-lane run over genomes ``idx``; returns genomes to re-run in the slow lane.

        Each slot loops over the cases itself (``harness.arm64_slot``). Interrupts (udf, svc,
        brk, alignment) are recovered inside emulation by ``_on_interrupt``; a memory fault
        stops emulation, and the run goes on at ``fault_reset`` with the faulted case skipped.
        """
        uc, hz = self.uc, self.harness
        batch = self._lay_out(self._load_slots(genomes), n_cases, tables, simd=False)
        n, total = len(idx), len(idx) * n_cases
        out0, in_base = batch["outputs"], self._inputs_addr
        in_end = in_base + 32 * n_cases
        uc.mem_write(out0 + 8 * total, bytes(8 * total))   # class table: 0 = no trap reported
        # Start as if the case before the first one had just faulted: fault_reset skips it,
        # finds its genome's cases done and moves to the first entry.
        uc.reg_write_batch(((A.UC_ARM64_REG_D31, out0 - 8), (A.UC_ARM64_REG_D30, in_end - 32),
                            (A.UC_ARM64_REG_D29, in_end), (A.UC_ARM64_REG_D28, hz.next_genome),
                            (A.UC_ARM64_REG_D27, batch["entries"] - 8), (A.UC_ARM64_REG_D26, in_base),
                            (A.UC_ARM64_REG_D25, hz.trap_fault), (A.UC_ARM64_REG_D24, 8 * total)))
        cls = np.zeros(total, dtype=np.uint8)   # OK unless a fault is recorded below
        moved: list[int] = []
        faults = self._fast_faults = []
        begin, last_stop = hz.fault_reset, None
        try:
            while True:
                self._watchdog.arm(5.0 + 20e-6 * total)
                fault = self._emu(begin, hz.all_done)
                fired = self._watchdog.disarm()
                pc = uc.reg_read(self._pc) if fault is None else -1   # a register read is dear: skip it after a fault
                if pc == hz.all_done:
                    break
                k = (uc.reg_read(A.UC_ARM64_REG_D31) - out0) // 8
                if not 0 <= k < total:
                    log.warning("harness state corrupted (case index %d): chunk abandoned", k)
                    cls[:] = PENDING
                    break
                begin = hz.fault_reset
                if fault is None:
                    if not fired and (pc, k) != last_stop:
                        last_stop = (pc, k)
                        begin = pc  # stopped early without a fault (a spurious stop): resume in place
                        continue
                    # A hang or a halt, impossible for triaged code: re-run the genome in the slow
                    # lane, where every case is bounded by its budget; skip its other cases here.
                    g = k // n_cases
                    moved.append(idx[g])
                    uc.reg_write_batch(((A.UC_ARM64_REG_D31, out0 + 8 * ((g + 1) * n_cases - 1)),
                                        (A.UC_ARM64_REG_D30, in_end - 32)))
                    continue
                cls[k] = fault
        finally:
            self._fast_faults = None
        for address, fault in faults:
            cls[(address - out0) // 8] = fault
        both = np.frombuffer(uc.mem_read(out0, 16 * total), dtype=np.uint64)
        reported = both[total:]
        if reported.any():
            cls = np.where(reported != 0, reported, cls).astype(np.uint8)
        cls = cls.reshape(n, n_cases)
        raw = both[:total].reshape(n, n_cases)
        rows = np.asarray(idx)
        outputs[rows] = np.where(cls == Outcome.OK, raw, 0)
        outcomes[rows] = cls
        return moved

    def run_slow(self, i, code, info: Triage, n_cases, tables, outputs, outcomes) -> None:
        """Slow lane: genome ``i`` one case per ``emu_start``, each bounded by the exact budget
        (``info``: its triage, for the trap points and what to reset between cases)."""
        uc, hz = self.uc, self.harness
        entry = self._load_slow_slot(code)
        batch = self._lay_out([entry], n_cases, tables, simd=True)
        hooks = []
        self._trap_actions = {entry + off: action for off, action in info.traps.items()}
        for address in self._trap_actions:
            hooks.append(uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_trap, None, address, address))
        if hooks:
            uc.ctl_remove_cache(entry, entry + self.slot_size)
        count = self._overhead + self.options.budget
        row = np.empty(n_cases, dtype=np.uint8)
        try:
            for c in range(n_cases):
                self._reset_state(info.stack_risk, info.machine_state)
                self._point_at(batch, 0, c)
                fault = self._emu(hz.full_reset, hz.case_stored, count)
                if fault is None and uc.reg_read(self._pc) != hz.case_stored:
                    fault = Outcome.TIMEOUT
                row[c] = Outcome.OK if fault is None else fault
        finally:
            for h in hooks:
                uc.hook_del(h)
            if hooks:
                uc.ctl_remove_cache(entry, entry + self.slot_size)
            self._trap_actions = {}
        out = np.frombuffer(uc.mem_read(batch["outputs"], 8 * n_cases), dtype=np.uint64)
        outputs[i] = np.where(row == Outcome.OK, out, 0)
        outcomes[i] = row

    def _reset_state(self, stack: bool, machine: bool) -> None:
        """State the harness does not reset and this slow-lane genome may change (triage says
        which): the stack below the scratch area; FP control/status and TLS."""
        if stack:
            self.uc.mem_write(MM.STACK_BASE, self._zero_stack)
        if not machine:
            return
        if self.isa.name == "arm64":
            self.uc.reg_write_batch(((A.UC_ARM64_REG_FPCR, 0), (A.UC_ARM64_REG_FPSR, 0),
                                     (A.UC_ARM64_REG_TPIDR_EL0, 0)))
        else:
            self.uc.reg_write(X.UC_X86_REG_EFLAGS, 0x202)

    # ----------------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the emulator; idempotent."""
        if not self._closed:
            self._closed = True
            self._watchdog.stop()
            self.uc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
