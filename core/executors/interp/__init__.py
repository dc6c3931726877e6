"""The interpreter tier: a Numba interpreter for a subset of AArch64.

* :mod:`~core.executors.interp.decoder`: the one AArch64 decoder (words -> micro-op table), read
  by the interpreter and by Unicorn's triage (:func:`~core.executors.interp.decoder.word_facts`);
* :mod:`~core.executors.interp.bits`: the Arm pseudocode's bit helpers;
* :mod:`~core.executors.interp.undefined`: the words the decoder refuses that Unicorn's A72
  certainly rejects (SIGILL rows);
* :mod:`~core.executors.interp.memory`: where a load or store goes, per case;
* :mod:`~core.executors.interp.liveness`: rows whose results nothing reads (skipped);
* :mod:`~core.executors.interp.execute`: runs the table (:func:`interpret` is the entry point).

It is not a backend by itself: :mod:`core.executors.tiered` runs it first and defers to Unicorn
the genomes it refuses.
"""
from core.executors.interp.execute import interpret

__all__ = ["interpret"]
