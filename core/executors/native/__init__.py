"""The native tier: genome code at hardware speed, in sandbox worker processes (host ISA only).

* :mod:`~core.executors.native.backend`: :class:`NativeExecutor`, the backend the owner of a
  population talks to (chunks, sentinels, bisection of a genome that breaks workers);
* :mod:`~core.executors.native.sandbox`: the worker processes and their protocol;
* :mod:`~core.executors.native.jit`: the one small room for unsafe code (ctypes, mmap, signals,
  seccomp), imported only inside workers;
* :mod:`~core.executors.native.trampoline`: the LLVM IR and assembly stubs it compiles (text);
* :mod:`~core.executors.native.light`: what each genome's entry must set up (static plans);
* :mod:`~core.executors.native.prologue`: the per-genome entry code a plan gives (bytes).

Nothing here imports Numba: the ARM64 lane runs this package under qemu, where it is absent.
"""
