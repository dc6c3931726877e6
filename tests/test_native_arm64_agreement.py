"""Differential test on arm64: the emulator on this host against the native backend under qemu
user mode (the CI's ARM64 lane, prepared by ``scripts/arm64-qemu.sh --prepare``).

Both run the same 2,000 random genomes (gene-alphabet code and random 32-bit words) with the same
seed. Excluded, as documented differences (``core/executors/native.py``): genomes whose result
depends on where code sits or on state the backends set differently (PC-relative words, system
registers and timers, the return address in x30, branches leaving the genome, SP writes — qemu does not check SP alignment —
and stack words outside the scratch area), and cases that time out on either side (an instruction
budget against a time budget). qemu runs as a Cortex-A72, the CPU Unicorn emulates: its default CPU
has every extension (SVE, ...), which a Jetson Orin (Cortex-A78AE) lacks too.
"""
from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.asm import assemble, disassembler
from core.executors import open_executor
from core.executors.batch_state import CaseStates
from core.executors.unicorn.triage import _arm64_word, triage
from core.isa import ARM64
from core.outcome import Outcome
from evolve.genes import alphabet_for
from test_a64_simd import EXPECTED, IDIOMS, simd_genome

ROOT = Path(__file__).resolve().parent.parent
LANE = ROOT / ".qemu-arm64" / ".ready"
pytestmark = pytest.mark.skipif(ARM64.is_host() or not LANE.exists(),
                                reason="needs the qemu lane prepared (scripts/arm64-qemu.sh --prepare, as .ci/run "
                                       "does) on a non-arm64 host")
DIFFERENCES = ("PC-relative", "system instruction", "writes sp", "reads sp", "stack access outside",
               "indirect branch", "backward or out-of-code branch", "register-indexed stack access")


def explained(code: bytes) -> bool:
    """True when a documented difference may apply: any word with such a reason, a branch
    leaving the genome, or a read of x30 (the return address differs: harness vs trampoline)."""
    for off in range(0, len(code), 4):
        info = _arm64_word(code[off:off + 4])
        if any(d in info.reason for d in DIFFERENCES):
            return True
        if info.branch is not None and not 0 < off + info.branch <= len(code):
            return True
    cs = disassembler(ARM64, detail=True)
    for off in range(0, len(code), 4):
        insn = next(cs.disasm(code[off:off + 4], 0, 1), None)
        if insn is None:
            continue
        try:
            reads, _ = insn.regs_access()
        except Exception:
            return True
        if {insn.reg_name(r) for r in reads} & {"lr", "x30", "w30"}:
            return True
    return False


def genomes(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = alphabet_for("arm64")
    codes = []
    for i in range(n):
        if i % 2:
            codes.append(b"".join(rng.getrandbits(32).to_bytes(4, "little") for _ in range(rng.randint(1, 6))))
        else:
            codes.append(alphabet.encode([alphabet.random_gene(rng) for _ in range(rng.randint(1, 12))]))
    return codes


def neon_genomes(n: int, seed: int) -> list[bytes]:
    """gcc's NEON bit-count idioms, then random genomes of their words among integer ones
    (vector registers at entry: the batch's, loaded by both backends)."""
    rng = np.random.default_rng(seed)
    return [assemble(lines) for lines in IDIOMS.values()] + [simd_genome(rng) for _ in range(n)]


def test_native_arm64_agrees_with_the_emulator(tmp_path):
    """Check identical outcome classes and outputs on 2,000 random arm64 genomes and 400 NEON
    bit-count genomes, native vs emulated."""
    neon = neon_genomes(400, 9)
    codes = genomes(2000, 7) + neon
    inputs = np.random.default_rng(8).integers(0, 2**64, size=(16, 2), dtype=np.uint64)
    inputs[:4] = [[0, 0], [1, 2], [2**64 - 1, 1], [2**63, 3]]
    with open_executor("arm64", backend="emulated", seed=5, budget=512) as ex:
        emu = ex.run(codes, inputs)
    offsets = np.cumsum([0] + [len(c) for c in codes], dtype=np.uint64)
    np.savez(tmp_path / "in.npz", blob=np.frombuffer(b"".join(codes), np.uint8), offsets=offsets, inputs=inputs,
             isa="arm64", seed=5, time_budget=0.05)
    # qemu-user defaults to a CPU with every extension (SVE...): use Unicorn's model, Cortex-A72
    env = dict(os.environ, QEMU_CPU="cortex-a72")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "arm64-qemu.sh"), "--", str(ROOT / "scripts" / "native_batch.py"),
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nat = np.load(tmp_path / "out.npz")
    compared = neon_compared = 0
    for i, code in enumerate(codes):
        reason = triage(code, ARM64, 256).reason
        if explained(code):
            continue
        keep = (emu.outcomes[i] != Outcome.TIMEOUT) & (nat["outcomes"][i] != Outcome.TIMEOUT)
        assert (nat["outcomes"][i][keep] == emu.outcomes[i][keep]).all(), (i, code.hex(), reason)
        assert (nat["outputs"][i][keep] == emu.outputs[i][keep]).all(), (i, code.hex(), reason)
        compared += 1
        neon_compared += i >= 2000
    assert compared - neon_compared >= 1200, compared   # most genomes are comparable
    assert neon_compared >= 350, neon_compared          # and nearly all NEON ones
    for k, name in enumerate(IDIOMS):          # gcc's idioms, natively: the counts themselves
        assert (nat["outcomes"][2000 + k] == Outcome.OK).all(), name
        assert nat["outputs"][2000 + k].tolist() == [EXPECTED[name](int(x)) for x in inputs[:, 0]], name
    assert (nat["outcomes"] != Outcome.WORKER_LOST).all()


def test_native_arm64_agrees_with_the_emulator_on_per_case_states(tmp_path):
    """Check that per-genome entries keep per-case states exact on arm64: 600 random genomes,
    every case under its own registers, SIMD registers and scratch, native (qemu) vs emulated."""
    codes = genomes(600, 17)
    inputs = np.random.default_rng(18).integers(0, 2**64, size=(12, 2), dtype=np.uint64)
    inputs[4:8] = inputs[:4]   # same arguments, other states: results differ through the states
    with open_executor("arm64", backend="emulated", budget=512) as ex:
        states = CaseStates.from_seed(21, len(inputs), ex.options.scratch)
        emu = ex.run(codes, inputs, states=states)
    offsets = np.cumsum([0] + [len(c) for c in codes], dtype=np.uint64)
    np.savez(tmp_path / "in.npz", blob=np.frombuffer(b"".join(codes), np.uint8), offsets=offsets, inputs=inputs,
             isa="arm64", seed=5, time_budget=0.05, states_seed=21)
    env = dict(os.environ, QEMU_CPU="cortex-a72")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "arm64-qemu.sh"), "--", str(ROOT / "scripts" / "native_batch.py"),
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nat = np.load(tmp_path / "out.npz")
    compared = varied = 0
    for i, code in enumerate(codes):
        if explained(code):
            continue
        keep = (emu.outcomes[i] != Outcome.TIMEOUT) & (nat["outcomes"][i] != Outcome.TIMEOUT)
        assert (nat["outcomes"][i][keep] == emu.outcomes[i][keep]).all(), (i, code.hex())
        assert (nat["outputs"][i][keep] == emu.outputs[i][keep]).all(), (i, code.hex())
        compared += 1
        ok = (emu.outcomes[i] == Outcome.OK).all()
        varied += bool(ok and (emu.outputs[i][:4] != emu.outputs[i][4:8]).any())
    assert compared >= 350 and varied >= 50, (compared, varied)   # the states reach the code
