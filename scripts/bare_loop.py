"""The bare loop native ``run()`` is measured against (issue 15): written apart from the executor.

It shares no code with :mod:`core.executors.native`: its own mmap, its own LLVM IR (a loop over
genomes x cases with ``_setjmp`` before each case and a plain call of the code with the case's
two inputs), no signal handlers, no entry state, no sandbox. Only for well-behaved code (the
benchmark's genomes write caller-saved registers only), so it runs in a process of its own:

    python scripts/bare_loop.py < batch     # prints the best seconds of the loop

``batch``: u32 n_codes, u32 n_cases, u32 repeat, n_codes x u32 lengths, the codes, then
n_cases x 2 u64 inputs (little-endian). :func:`time_bare_loop` writes it and reads the answer.
"""
from __future__ import annotations

import ctypes
import mmap
import struct
import subprocess
import sys
import time

import numpy as np

_IR = """
declare i32 @_setjmp(ptr) returns_twice

define void @bare(ptr %entries, i64 %g_n, ptr %inputs, i64 %c_n, ptr %out, ptr %jb) {
entry:
  br label %gl
gl:
  %g = phi i64 [0, %entry], [%g1, %gn]
  %ep = getelementptr i64, ptr %entries, i64 %g
  %e = load i64, ptr %ep
  %fp = inttoptr i64 %e to ptr
  br label %cl
cl:
  %c = phi i64 [0, %gl], [%c1, %cl2]
  %r = call i32 @_setjmp(ptr %jb) returns_twice
  %c2 = mul i64 %c, 2
  %ip = getelementptr i64, ptr %inputs, i64 %c2
  %a0 = load i64, ptr %ip
  %ip1 = getelementptr i64, ptr %ip, i64 1
  %a1 = load i64, ptr %ip1
  %v = call i64 %fp(i64 %a0, i64 %a1)
  br label %cl2
cl2:
  %gc = mul i64 %g, %c_n
  %oi = add i64 %gc, %c
  %op = getelementptr i64, ptr %out, i64 %oi
  store i64 %v, ptr %op
  %c1 = add i64 %c, 1
  %cd = icmp eq i64 %c1, %c_n
  br i1 %cd, label %gn, label %cl
gn:
  %g1 = add i64 %g, 1
  %gd = icmp eq i64 %g1, %g_n
  br i1 %gd, label %done, label %gl
done:
  ret void
}
"""

_RET = {"x86_64": b"\xc3", "aarch64": bytes.fromhex("c0035fd6"), "arm64": bytes.fromhex("c0035fd6")}


def _child() -> None:
    import platform

    import llvmlite.binding as llvm
    raw = sys.stdin.buffer.read()
    n, cases, repeat = struct.unpack_from("<III", raw)
    lengths = np.frombuffer(raw, np.uint32, n, 12)
    off = 12 + 4 * n
    ret = _RET[platform.machine()]
    slot = -(-(int(lengths.max()) + len(ret)) // 64) * 64
    size = -(-n * slot // 4096) * 4096
    mem = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    for i, ln in enumerate(lengths):
        mem[i * slot:i * slot + ln + len(ret)] = raw[off:off + ln] + ret
        off += int(ln)
    inputs = np.frombuffer(raw, np.uint64, 2 * cases, off).copy()
    base = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    if platform.machine() == "aarch64":
        cc = ctypes.CDLL("libgcc_s.so.1").__clear_cache
        cc.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        cc(base, base + size)
    entries = base + slot * np.arange(n, dtype=np.uint64)
    out = np.zeros(n * cases, np.uint64)
    jb = ctypes.create_string_buffer(1024)
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    mod = llvm.parse_assembly(_IR)
    engine = llvm.create_mcjit_compiler(mod, llvm.Target.from_default_triple().create_target_machine(opt=2))
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                          ctypes.c_void_p)(engine.get_function_address("bare"))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(entries.ctypes.data, n, inputs.ctypes.data, cases, out.ctypes.data, jb)
        best = min(best, time.perf_counter() - t0)
    sys.stdout.write(f"{best!r}\n")
    del entries, fn
    engine.close()


def time_bare_loop(codes: list[bytes], inputs: np.ndarray, repeat: int = 5, prefix: list[str] = ()) -> float:
    """Best seconds of ``repeat`` bare loops over ``codes`` x ``inputs[:, :2]``, in a child process
    (``prefix``: its launcher, e.g. the qemu lane's)."""
    head = struct.pack("<III", len(codes), inputs.shape[0], repeat)
    lengths = np.array([len(c) for c in codes], np.uint32).tobytes()
    payload = head + lengths + b"".join(codes) + np.ascontiguousarray(inputs[:, :2], np.uint64).tobytes()
    done = subprocess.run([*prefix, sys.executable, __file__], input=payload, capture_output=True, check=True)
    return float(done.stdout)


if __name__ == "__main__":
    _child()
