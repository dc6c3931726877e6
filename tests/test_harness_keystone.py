"""The Unicorn harness survives a keystone engine that refuses a block (seen late in a run)."""
from __future__ import annotations

import keystone
import pytest

from core.executors.unicorn import harness as H


def test_a_refusing_keystone_engine_is_replaced_once(monkeypatch):
    """Check that _arm64_words makes a second engine when the first refuses, gives the same
    words as a sound engine, and raises when the second refuses too."""
    real = keystone.Ks
    made = []

    def flaky(refusals):
        class Engine:
            def __init__(self, *args):
                made.append(self)
                self._ks, self._bad = real(*args), len(made) <= refusals

            def asm(self, text, addr):
                if self._bad:
                    raise keystone.KsError(keystone.KS_ERR_ASM)
                return self._ks.asm(text, addr)
        return Engine

    lines = ("movz x1, #24576, lsl #16", "fmov x0, d30")
    want = bytes(real(keystone.KS_ARCH_ARM64, keystone.KS_MODE_LITTLE_ENDIAN).asm("\n".join(lines), 0)[0])
    monkeypatch.setattr(keystone, "Ks", flaky(1))
    assert H._arm64_words.__wrapped__(lines) == want and len(made) == 2
    made.clear()
    monkeypatch.setattr(keystone, "Ks", flaky(2))
    with pytest.raises(keystone.KsError):
        H._arm64_words.__wrapped__(lines)
