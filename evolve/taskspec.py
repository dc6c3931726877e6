"""A task from the command line's ``--task`` string: built-in, ``file.py:func`` or ``file.c:func``.

The one resolver every run uses (single, islands, resume, replay): Python tasks are
:func:`evolve.tasks.get_task`'s, C functions :func:`evolve.ctask.c_task`'s (compiled with ``cc``
and ``cflags``). It lives apart from :mod:`evolve.tasks` because machine-code tasks build on it.
"""
from __future__ import annotations

from evolve import tasks as T


def is_c_spec(spec: str) -> bool:
    """Whether ``spec`` names a C function (``path/file.c:func``)."""
    return spec.rpartition(":")[0].endswith(".c")


def get_task(spec: str, cc: str | None = None, cflags: str | None = None) -> T.Task:
    """The task ``spec`` names; TaskError (one line) when it cannot be used."""
    if is_c_spec(spec):
        from evolve.ctask import c_task
        return c_task(spec, cc=cc, cflags=cflags)
    return T.get_task(spec)
