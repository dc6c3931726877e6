"""Sandbox workers: the processes where genome code runs, fed through shared memory.

A :class:`Worker` is the owner's handle on one process. The process builds a
:class:`core.executors.native.jit.Machine` once, reports ``ready`` and then serves commands
over a pipe; batches travel through a file in ``/dev/shm`` that both sides map:

========  ===========================================  ======================
part      contents                                     written by
========  ===========================================  ======================
inputs    uint64 [n_cases, 4] argument registers       owner
outputs   uint64 [n_genomes, n_cases]                  worker
outcomes  uint8 [n_genomes, n_cases] (0xFF = not run)  worker
offsets   uint64 [n_genomes + 1] into the code blob    owner
plans     uint64 [n_genomes] entry plans (light.py)    owner
states    uint8 [n_cases, 768 + scratch] (optional)    owner
blob      the genomes' code, concatenated (last: the   owner
          rest of the file, so views keep their shape)
========  ===========================================  ======================

Workers are fresh interpreters (``python -m core.executors.native.sandbox``) connected by a socket
pair: nothing of the owner's state (threads, locks, the user's ``__main__``) leaks into them. A
worker never trusts its own survival: the owner judges it by its exit, its deadline and the
sentinel genomes' results (:mod:`core.executors.native.backend`).
"""
from __future__ import annotations

import math
import mmap
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing.connection import Connection

import numpy as np

from core.executors.batch_state import BatchState

#: test hook: genome bytes -> what the worker does when a batch contains them
#: ("exit": die, "hang": stop answering, "corrupt": falsify the last genome's outputs)
FAULT_ACTIONS = ("exit", "hang", "corrupt")


@dataclass(frozen=True)
class WorkerSpec:
    isa: str
    scratch: int
    slot_size: int
    pad: bytes
    ret: bytes
    seccomp: bool = True
    faults: tuple = ()   #: ((code bytes, action), ...) for tests of the owner's recovery
    last_cases: int | None = None   #: cases the last genome runs (None: all)


# per-batch messages, packed (no pickle on the hot path): the owner's command (then the batch
# file's path) and the worker's answer (its loop, command-to-answer and CPU seconds)
_RUN = struct.Struct("<cqqqqdqqq")
_DONE = struct.Struct("<cddd")
_MODES = ("stub", "bare", "percall")


def _unpack_run(msg: bytes) -> tuple:
    _, size, n_genomes, n_cases, blob_len, budget, mode, repeat, state_bytes = _RUN.unpack_from(msg)
    path, seed = msg[_RUN.size:].decode().split("\0")   # (a seed may be any int)
    return path, size, n_genomes, n_cases, blob_len, int(seed), budget, _MODES[mode], repeat, state_bytes


class WorkerLost(RuntimeError):
    """The worker died, missed its deadline or answered nonsense."""


@lru_cache(maxsize=64)
def _layout(n_genomes: int, n_cases: int, state_bytes: int = 0) -> dict[str, tuple[int, int]]:
    """Offsets and sizes of the shared batch file's parts; ``state_bytes``: bytes of one case's
    entry state (per-case states: registers, SIMD, scratch as ``CaseStates`` has them; 0: none).
    The code blob comes last and takes the rest of the file, so a batch of the same shape keeps
    the same layout (and views) whatever its codes' lengths."""
    parts, off = {}, 0
    for name, size in (("inputs", 32 * n_cases), ("outputs", 8 * n_genomes * n_cases),
                       ("outcomes", n_genomes * n_cases), ("offsets", 8 * (n_genomes + 1)), ("plans", 8 * n_genomes),
                       ("states", state_bytes * n_cases)):
        off = -(-off // 64) * 64
        parts[name] = (off, size)
        off += size
    parts["blob"] = (-(-off // 64) * 64, 0)
    return parts


def _views(buf, layout: dict, n_genomes: int, n_cases: int) -> dict[str, np.ndarray]:
    def v(name, dtype, shape):
        off, size = layout[name]
        return np.frombuffer(buf, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=off).reshape(shape)

    blob_at = layout["blob"][0]
    return {"inputs": v("inputs", np.uint64, (n_cases, 4)), "outputs": v("outputs", np.uint64, (n_genomes, n_cases)),
            "outcomes": v("outcomes", np.uint8, (n_genomes, n_cases)), "offsets": v("offsets", np.uint64, (n_genomes + 1,)),
            "plans": v("plans", np.uint64, (n_genomes,)),
            "blob": np.frombuffer(buf, np.uint8, len(buf) - blob_at, blob_at),
            "states": v("states", np.uint8, (n_cases, layout["states"][1] // n_cases))}


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of a worker process: build the machine, then serve batches until EOF."""
    from core.executors.native.jit import Machine, PreflightError
    try:
        machine = Machine(spec.isa, spec.scratch, spec.slot_size, spec.pad, spec.seccomp)
    except (PreflightError, OSError) as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready", {"pid": os.getpid(), "seccomp": machine.seccomp}))
    faults = dict(spec.faults)
    mapped: tuple[str, int, mmap.mmap] | None = None
    state, state_seed = None, None
    cached: tuple = (None, None)   # (layout key, views) of the last batch
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            break
        t_in, cpu_in = time.perf_counter(), time.thread_time()
        if msg[:1] != b"R":   # b"Q": quit
            break
        path, size, n_genomes, n_cases, blob_len, seed, budget, mode, repeat, state_bytes = _unpack_run(msg)
        if mapped is None or mapped[0] != path or mapped[1] != size:
            cached = (None, None)
            with open(path, "r+b") as f:
                mapped = (path, size, mmap.mmap(f.fileno(), size))
        key = (path, size, n_genomes, n_cases, state_bytes)
        if cached[0] != key:
            cached = (key, _views(mapped[2], _layout(n_genomes, n_cases, state_bytes), n_genomes, n_cases))
        views = cached[1]
        if state is None or state_seed != seed:
            state, state_seed = BatchState.from_seed(seed, spec.scratch), seed
        machine.set_state(state.regs, state.simd, state.scratch, seed)   # per-case states overwrite it
        offsets, blob = views["offsets"], views["blob"][:blob_len]
        entries = machine.load(blob, offsets, spec.ret, views["plans"])
        flags = machine.flags
        action = None
        if faults:
            for i in range(n_genomes):
                action = faults.get(bytes(blob[int(offsets[i]):int(offsets[i + 1])])) or action
        if action == "exit":
            os._exit(3)
        if action == "hang":
            time.sleep(3600)
        t0 = time.perf_counter()
        for _ in range(repeat):
            if mode == "percall":   # the benchmark's baseline: one ctypes call per case
                rows = views["inputs"].ctypes.data + 32 * np.arange(n_cases)
                for g in range(n_genomes):
                    e = int(entries[g])
                    for c in range(n_cases):
                        views["outputs"][g, c] = machine.run_one(e, int(rows[c]), int(flags[g]))
                views["outcomes"][:] = 0
            else:                   # per-case states: the trampoline copies row c in before case c
                machine.run(entries, views["inputs"].ctypes.data, views["outputs"], views["outcomes"], n_cases,
                            budget, bare=mode == "bare", flags=flags,
                            states=views["states"] if state_bytes else None, last_cases=spec.last_cases)
        elapsed = time.perf_counter() - t0
        if action == "corrupt":
            views["outputs"][-2] ^= np.uint64(1)
        del views, offsets, blob, entries, flags
        conn.send_bytes(_DONE.pack(b"D", elapsed, time.perf_counter() - t_in, time.thread_time() - cpu_in))
    machine.close()


class Worker:
    """Owner-side handle of one sandbox process and its shared batch file."""

    def __init__(self, spec: WorkerSpec, start_timeout: float):
        self.spec = spec
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[3])   # the repository: core/executors/native/
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        t0 = time.perf_counter()
        # MELVIN_WORKER_PREFIX: a launcher for the worker interpreter, e.g. the qemu lane's
        # "qemu-aarch64-static -L ROOTFS" (no binfmt_misc there: a guest cannot exec the guest's ELF)
        prefix = os.environ.get("MELVIN_WORKER_PREFIX", "").split()
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "core.executors.native.sandbox",
                                      str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), env=env, cwd=root, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(spec)
        self.path, self.size, self.buf, self._fd = "", 0, None, -1
        self.blob_len, self.state_bytes = 0, 0
        self._cached: tuple = (None, None)   # (layout key, views) of the last batch
        self.views: dict[str, np.ndarray] = {}
        self._poller = None
        #: the last batch's seconds in the worker: its genome loop, from command to answer (wall),
        #: and the worker thread's CPU time in between
        self.last_loop, self.last_busy, self.last_cpu = 0.0, 0.0, 0.0
        if not self.conn.poll(start_timeout):
            self.kill()
            raise WorkerLost(f"native worker did not start within {start_timeout:.0f} s")
        try:
            msg = self.conn.recv()
        except EOFError:
            self.kill()
            raise WorkerLost(f"native worker died while starting (exit code {self.proc.poll()})") from None
        if msg[0] == "error":
            self.kill()
            from core.executors.native.jit import PreflightError
            raise PreflightError(msg[2]) if msg[1] == "PreflightError" else OSError(msg[2])
        self.info = msg[1]
        self.start_seconds = time.perf_counter() - t0

    def buffer(self, n_genomes: int, n_cases: int, blob_len: int, state_bytes: int = 0) -> dict[str, np.ndarray]:
        """Views of the shared batch file (also ``self.views``), grown (a new file) when the
        batch needs more room; the views stay the same while the batch's shape does."""
        layout = _layout(n_genomes, n_cases, state_bytes)
        need = max(4096, layout["blob"][0] + blob_len)
        if need > self.size:
            self._release()
            size = -(-max(need, 2 * self.size) // 4096) * 4096
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, self.path = tempfile.mkstemp(prefix="melvin-native-", dir=shm)
            os.ftruncate(fd, size)
            self.buf, self.size, self._fd = mmap.mmap(fd, size), size, fd
        self.blob_len, self.state_bytes = blob_len, state_bytes
        key = (n_genomes, n_cases, state_bytes, self.path)
        if self._cached[0] != key:   # a population's batches keep their shape
            self._cached = (key, _views(self.buf, layout, n_genomes, n_cases))
        self.views = self._cached[1]
        return self.views

    def submit(self, n_genomes: int, n_cases: int, seed: int, budget: float, mode: str = "stub",
               repeat: int = 1) -> None:
        """Run the batch in the buffer (per-case states when the buffer was made with them)."""
        try:
            self.conn.send_bytes(_RUN.pack(b"R", self.size, n_genomes, n_cases, self.blob_len, budget,
                                           _MODES.index(mode), repeat, self.state_bytes)
                                 + f"{self.path}\0{seed}".encode())
        except (BrokenPipeError, OSError):
            pass   # the answer (EOF) tells the owner it is lost

    def ready(self, timeout: float) -> bool:
        """True once the worker has answered (or hung up), waiting up to ``timeout`` seconds
        (one poll object per worker: ``Connection.poll`` builds a selector per call)."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.conn.fileno(), select.POLLIN)
        return bool(self._poller.poll(max(0, math.ceil(timeout * 1000))))

    def result(self, deadline: float) -> float:
        """Wait for the batch until ``deadline`` (time.monotonic); the worker's own run time."""
        if not self.ready(deadline - time.monotonic()):
            raise WorkerLost("native worker missed its batch deadline")
        try:
            msg = self.conn.recv_bytes()
        except (EOFError, OSError):
            raise WorkerLost(f"native worker died (exit code {_wait(self.proc, 1.0)})") from None
        if len(msg) != _DONE.size or msg[:1] != b"D":
            raise WorkerLost(f"native worker answered {msg[:64]!r}")
        self.last_loop, self.last_busy, self.last_cpu = _DONE.unpack(msg)[1:]
        return self.last_loop

    def _release(self) -> None:
        self._cached, self.views = (None, None), {}
        if self.buf is not None:
            try:
                self.buf.close()
            except BufferError:
                pass   # views still alive: the mapping goes with them
            os.close(self._fd)
            os.unlink(self.path)
            self.buf, self.size = None, 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        _wait(self.proc, 5.0)
        self.conn.close()
        self._release()

    def close(self) -> None:
        """Ask the process to quit, then make sure it is gone (idempotent)."""
        if not self.conn.closed:
            try:
                self.conn.send_bytes(b"Q")
            except (BrokenPipeError, OSError):
                pass
            _wait(self.proc, 2.0)
            self.kill()


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


if __name__ == "__main__":
    _conn = Connection(int(sys.argv[1]))
    worker_main(_conn, _conn.recv())
