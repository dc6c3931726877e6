"""Symbolic semantics of AArch64 code: z3 bit-vector terms from the interpreter's micro-op table.

Testing can miss the inputs a program gets wrong (uniform 64-bit values almost never have many
leading zeros) and the machine states it depends on (a register that is not an argument). A
proof cannot: :func:`translate` reads the code through the interpreter tier's decoder, the same
micro-op rows :func:`core.executors.interp.execute.execute` runs, and builds for loop-free code

* ``result``: x0 at the return, a 64-bit term over the entry state;
* ``crashes``: when the code does not return normally (an undefined word, a branch out of it);

over free variables ``x0``..``x30`` (the registers), ``n``/``z``/``c``/``v`` (the entry flags,
undefined at a function's entry), ``m0``..``mK`` (the scratch area's 64-bit words, little
endian) and ``q0``..``q31`` (the SIMD registers v0-v31, 128 bits, byte ``b`` at bits
``8b+7:8b``; only the bit-count idiom of :mod:`core.executors.interp.simd` reads or writes them).
Forward branches merge as if-then-else; division by zero gives 0, as AArch64 defines. x30 is
the caller's return address at entry (a free variable: independence treats it as any other
non-argument register); code that may reach its return with x30 changed is an indirect branch,
and raises :class:`Unsupported` (the interpreter defers or faults it at run time).
Anything the interpreter itself leaves to Unicorn, backward branches (loops), and memory other
than fixed scratch offsets through SP raise :class:`Unsupported`: the caller falls back to testing.

The proofs (:mod:`core.proofs`) compare terms; :meth:`Program.evaluate` runs them on concrete
states, which is how the differential tests tie this module to the interpreter and Unicorn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    import z3
except ImportError as exc:  # a clear message at first use, naming the package
    raise ImportError("Melvin's proofs need the z3 SMT solver: pip install z3-solver") from exc

from core.executors.interp import decoder as I
from core.executors.interp import simd as V
from core.executors.interp.execute import flatten

W64 = 64
ENTRY_FLAGS = (0, 1, 1, 0)   # NZCV = Z|C: what every executor gives a genome (batch_state)


class Unsupported(ValueError):
    """Code outside the symbolic subset; the message says which word and why."""


def _bv(value: int) -> z3.BitVecRef:
    return z3.BitVecVal(value & ((1 << 64) - 1), W64)


M64 = _bv((1 << 64) - 1)
M32 = _bv(0xFFFFFFFF)
ZERO = _bv(0)
ONE = _bv(1)


@dataclass(frozen=True)
class Program:
    """The meaning of one code: ``result`` and ``crashes`` over the entry state's variables."""
    result: z3.BitVecRef
    crashes: z3.BoolRef
    registers: tuple        #: x0..x30, 64-bit variables
    flags: tuple            #: n, z, c, v at entry, Bool variables
    scratch: tuple          #: m0..: the scratch area's 64-bit words
    vectors: tuple = ()     #: q0..q31: the SIMD registers v0-v31, 128-bit variables

    def state_variables(self, arity: int) -> list:
        """Every variable that is not one of the ``arity`` arguments."""
        return [*self.registers[arity:], *self.flags, *self.scratch, *self.vectors]

    def evaluate(self, args, regs, scratch: bytes, flags=ENTRY_FLAGS, simd: bytes = bytes(512)) -> int | None:
        """x0 for concrete ``args`` (the first len(args) registers), ``regs`` (uint64 [>= 31],
        the other registers' values), scratch bytes and SIMD bytes (``BatchState.simd``: 16 per
        register, little endian); None if the code crashes there."""
        used = self._used()
        subst = [(r, _bv(int(args[k]) if k < len(args) else int(regs[k])))
                 for k, r in enumerate(self.registers) if r.get_id() in used]
        subst += [(f, z3.BoolVal(bool(b))) for f, b in zip(self.flags, flags) if f.get_id() in used]
        padded = bytes(scratch) + bytes(-len(scratch) % 8)
        subst += [(m, _bv(int.from_bytes(padded[8 * k:8 * k + 8], "little")))
                  for k, m in enumerate(self.scratch) if m.get_id() in used]
        subst += [(v, z3.BitVecVal(int.from_bytes(simd[16 * k:16 * k + 16], "little"), 128))
                  for k, v in enumerate(self.vectors) if v.get_id() in used]
        if not z3.is_false(self.crashes) and z3.is_true(z3.simplify(z3.substitute(self.crashes, *subst))):
            return None
        return z3.simplify(z3.substitute(self.result, *subst)).as_long()

    def _used(self) -> set:
        """Ids of the variables ``result`` and ``crashes`` mention (substituting only those is cheaper)."""
        if "_vars" not in self.__dict__:
            object.__setattr__(self, "_vars", {v.get_id() for v in free_variables(self.result, self.crashes)})
        return self.__dict__["_vars"]


def free_variables(*terms) -> list:
    """The uninterpreted constants (variables) of ``terms``, each once."""
    seen, out, todo = set(), [], list(terms)
    while todo:
        t = todo.pop()
        key = t.get_id()
        if key in seen:
            continue
        seen.add(key)
        if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            out.append(t)
        else:
            todo.extend(t.children())
    return out


# ----------------------------------------------------------------------------- operand helpers
def _mask(sf: int) -> z3.BitVecRef:
    return M64 if sf else M32


def _ror(v, r: int, size: int):
    if r == 0:
        return v
    if size == 64:
        return z3.RotateRight(v, r)
    return z3.ZeroExt(32, z3.RotateRight(z3.Extract(31, 0, v), r))


def _sext(v, bits: int):
    return z3.SignExt(64 - bits, z3.Extract(bits - 1, 0, v)) if bits < 64 else v


def _shift(v, sht: int, amt, sf: int):
    """The interpreter's ``_shift``; ``amt`` an int (immediate forms) or a 64-bit term."""
    if isinstance(amt, int):
        if amt == 0:
            return v
        if sht == 3:
            return _ror(v, amt, 64 if sf else 32)
        amt = _bv(amt)
    if sht == 0:
        return (v << amt) & _mask(sf)
    if sht == 1:
        return z3.LShR(v, amt)
    if sht == 2:
        return v >> amt if sf else (_sext(v, 32) >> amt) & M32
    if sf:
        return z3.RotateRight(v, amt)
    return z3.ZeroExt(32, z3.RotateRight(z3.Extract(31, 0, v), z3.Extract(31, 0, amt)))


def _extend(v, opt: int, amt: int, sf: int):
    bits = (8, 16, 32, 64)[opt & 3]
    if bits < 64:
        v = _sext(v, bits) if opt & 4 else z3.ZeroExt(64 - bits, z3.Extract(bits - 1, 0, v))
    return (v << amt) & _mask(sf)


def _holds(cond: int, f):
    n, z, c, v = f
    base = cond >> 1
    r = (z, c, n, v, z3.And(c, z3.Not(z)), n == v, z3.And(n == v, z3.Not(z)), z3.BoolVal(True))[base]
    return z3.Not(r) if cond & 1 and base != 7 else r


def _add_flags(x, y, carry, sf: int):
    """AddWithCarry for operands already reduced to the data size: (result, (n, z, c, v))."""
    carry = carry if isinstance(carry, z3.BitVecRef) else _bv(carry)
    if sf:
        r1 = x + y
        r = r1 + carry
        c = z3.Or(z3.ULT(r1, x), z3.ULT(r, r1))
        top = 63
    else:
        s = x + y + carry
        r = s & M32
        c = z3.Extract(32, 32, s) == 1
        top = 31
    v = z3.Extract(top, top, ~(x ^ y) & (x ^ r)) == 1
    return r, (z3.Extract(top, top, r) == 1, r == 0, c, v)


def clz(v, bits: int = 64):
    """Count of leading zeros of the low ``bits`` of ``v``, as a 64-bit term (for specifications too)."""
    out = _bv(bits)
    for b in range(bits):              # the highest set bit wins: built from the bottom up
        out = z3.If(z3.Extract(b, b, v) == 1, _bv(bits - 1 - b), out)
    return out


def _rbit(v, bits: int):
    return z3.ZeroExt(64 - bits, z3.Concat(*[z3.Extract(b, b, v) for b in range(bits)])) if bits < 64 \
        else z3.Concat(*[z3.Extract(b, b, v) for b in range(64)])


def _bytes_reversed(v, lo: int, hi: int):
    """Bytes lo..hi-1 of ``v`` in reverse order, as one (hi - lo)-byte term."""
    return z3.Concat(*[z3.Extract(8 * b + 7, 8 * b, v) for b in range(lo, hi)])


# ----------------------------------------------------------------------------- the machine
class _State:
    """Registers (33 slots as in the interpreter), flags, scratch bytes and SIMD registers
    (128-bit terms) along one path."""

    def __init__(self, regs, flags, mem, vregs):
        self.regs, self.flags, self.mem, self.vregs = regs, flags, mem, vregs

    def copy(self) -> "_State":
        return _State(list(self.regs), self.flags, list(self.mem), list(self.vregs))

    @staticmethod
    def merge(guarded: list) -> "_State":
        """One state for the paths ``[(guard, state), ...]`` that meet at an instruction."""
        g0, s = guarded[0]
        out = s.copy()
        for g, t in guarded[1:]:
            out.regs = [a if a is b else z3.If(g, b, a) for a, b in zip(out.regs, t.regs)]
            out.flags = tuple(a if a is b else z3.If(g, b, a) for a, b in zip(out.flags, t.flags))
            out.mem = [a if a is b else z3.If(g, b, a) for a, b in zip(out.mem, t.mem)]
            out.vregs = [a if a is b else z3.If(g, b, a) for a, b in zip(out.vregs, t.vregs)]
        return out


def _load(mem, at: int, n: int):
    """The ``n`` bytes at ``at``, little endian, zero-extended to 64 bits."""
    value = mem[at] if n == 1 else z3.Concat(*[mem[at + k] for k in range(n - 1, -1, -1)])
    return value if n == 8 else z3.ZeroExt(64 - 8 * n, value)


def _store(mem, at: int, n: int, value) -> None:
    for k in range(n):
        mem[at + k] = z3.Extract(8 * k + 7, 8 * k, value)


def _mem_op(ctl, imm: int, st: _State, scratch: int, word: int) -> None:
    flags = int(ctl[I.F_MEMF])
    if flags & (I.M_VEC | I.M_LIT) or ctl[I.F_RN] != 31 or ctl[I.F_O2] != I.A_IMM or ctl[I.F_WB]:
        raise Unsupported(f"word {word:#010x}: memory other than the scratch area at a fixed offset")
    n1 = 1 << int(ctl[I.F_SIZE])
    count = 2 if flags & I.M_PAIR else 1
    off = int(np.int64(np.uint64(imm)))
    if off < 0 or off + n1 * count > scratch:
        raise Unsupported(f"word {word:#010x}: an access outside the scratch area")
    for k in range(count):
        rt = int(ctl[I.F_RD] if k == 0 else ctl[I.F_RT2])
        at = off + k * n1
        if flags & I.M_LOAD:
            if rt == 31:
                continue
            v = _load(st.mem, at, n1)
            if flags & I.M_SIGNED:
                v = _sext(v, 8 * n1)
            if flags & I.M_W32:
                v = v & M32
            st.regs[rt] = v
        else:
            _store(st.mem, at, n1, st.regs[rt])


def _step(ctl, imm, st: _State, scratch: int, word: int):
    """Execute one non-branch micro-op on ``st`` in place."""
    kind = int(ctl[I.F_KIND])
    sf = int(ctl[I.F_SF])
    mask = _mask(sf)
    r = st.regs
    rd, rn, rm, ra = (int(ctl[f]) for f in (I.F_RD, I.F_RN, I.F_RM, I.F_RA))
    op = int(ctl[I.F_OP])
    if kind in (I.K_ADDSUB, I.K_LOGIC, I.K_CCMP):
        o2 = int(ctl[I.F_O2])
        if o2 == I.O2_IMM:
            y = _bv(int(imm[I.I_IMM]))
        elif o2 == I.O2_SHIFT:
            y = _shift(r[rm] & mask, int(ctl[I.F_SHT]), int(ctl[I.F_AMT]), sf)
        else:
            y = _extend(r[rm], int(ctl[I.F_SHT]), int(ctl[I.F_AMT]), sf)
        x = r[rn] & mask
        if kind == I.K_ADDSUB:
            res, f = _add_flags(x, ~y & mask, 1, sf) if op else _add_flags(x, y, 0, sf)
            if ctl[I.F_FLAGS]:
                st.flags = f
            r[rd] = res
        elif kind == I.K_LOGIC:
            if op & 4:
                y = ~y & mask
            op &= 3
            res = x | y if op == 1 else x ^ y if op == 2 else x & y
            if op == 3:
                top = 63 if sf else 31
                st.flags = (z3.Extract(top, top, res) == 1, res == 0, z3.BoolVal(False), z3.BoolVal(False))
            r[rd] = res
        else:
            _res, f = _add_flags(x, ~y & mask, 1, sf) if op else _add_flags(x, y, 0, sf)
            nzcv = int(ctl[I.F_FLAGS])
            other = tuple(z3.BoolVal(bool(nzcv >> (3 - k) & 1)) for k in range(4))
            cond = _holds(int(ctl[I.F_COND]), st.flags)
            st.flags = tuple(z3.If(cond, a, b) for a, b in zip(f, other))
    elif kind == I.K_MOVW:
        value = _bv(int(imm[I.I_IMM]))
        if op == 2:
            r[rd] = value
        elif op == 0:
            r[rd] = ~value & mask
        else:
            r[rd] = ((r[rd] & ~_bv(int(imm[I.I_IMM2]))) | value) & mask
    elif kind == I.K_CSEL:
        alt = r[rm]
        alt = alt + ONE if op == 1 else ~alt if op == 2 else -alt if op == 3 else alt
        r[rd] = z3.If(_holds(int(ctl[I.F_COND]), st.flags), r[rn], alt) & mask
    elif kind == I.K_DP2:
        x, y = r[rn] & mask, r[rm] & mask
        if op == 2:
            res = z3.If(y == 0, ZERO, z3.UDiv(x, y))
        elif op == 3:
            if sf:
                res = z3.If(y == 0, ZERO, x / y)
            else:
                q = z3.Extract(31, 0, x) / z3.Extract(31, 0, y)
                res = z3.If(y == 0, ZERO, z3.ZeroExt(32, q))
        else:
            res = _shift(x, op - 8, y & _bv(63 if sf else 31), sf)
        r[rd] = res
    elif kind == I.K_DP3:
        x, y, a = r[rn], r[rm], r[ra]
        if op <= 1:
            p = x * y
        elif op <= 3:
            p = _sext(x, 32) * _sext(y, 32)
        elif op == 4:
            p = z3.Extract(127, 64, z3.SignExt(64, x) * z3.SignExt(64, y))
        elif op <= 11:
            p = (x & M32) * (y & M32)
        else:
            p = z3.Extract(127, 64, z3.ZeroExt(64, x) * z3.ZeroExt(64, y))
        res = p if op in (4, 12) else a - p if op & 1 else a + p
        r[rd] = res & mask
    elif kind == I.K_SP64:
        at = 8 * int(ctl[I.F_AMT])
        if op:
            r[rd] = _load(st.mem, at, 8)
        else:
            _store(st.mem, at, 8, r[rd])
    elif kind == I.K_MEM:
        _mem_op(ctl, imm[I.I_IMM], st, len(st.mem), word)
    elif kind == I.K_BFM:
        size = 64 if sf else 32
        src = r[rn] & mask
        dst = r[ra] & mask if op == 1 else ZERO
        wmask, tmask = _bv(int(imm[I.I_IMM])), _bv(int(imm[I.I_IMM2]))
        bot = (dst & ~wmask) | (_ror(src, int(ctl[I.F_SHT]) & (size - 1), size) & wmask)
        if op == 0:
            b = int(ctl[I.F_AMT]) & (size - 1)
            top = z3.If(z3.Extract(b, b, src) == 1, mask, ZERO)
        else:
            top = dst
        r[rd] = ((top & ~tmask) | (bot & tmask)) & mask
    elif kind == I.K_EXTR:
        lsb = int(ctl[I.F_AMT])
        lo = r[rm] & mask
        if lsb == 0:
            res = lo
        else:
            size = 64 if sf else 32
            res = (z3.LShR(lo, lsb) | ((r[rn] & mask) << (size - lsb))) & mask
        r[rd] = res
    elif kind == I.K_DP1:
        x = r[rn] & mask
        bits = 64 if sf else 32
        if op == 0:
            res = _rbit(x, bits)
        elif op == 1:
            res = z3.Concat(*[_bytes_reversed(x, 2 * h, 2 * h + 2) for h in range(3, -1, -1)]) & mask
        elif op == 2:
            if sf:
                res = z3.Concat(_bytes_reversed(x, 4, 8), _bytes_reversed(x, 0, 4))
            else:
                res = z3.ZeroExt(32, _bytes_reversed(x, 0, 4))
        elif op == 3:
            res = _bytes_reversed(x, 0, 8)
        elif op == 4:
            res = clz(x, bits)
        else:
            low = (z3.LShR(x, 1) ^ x) & (_bv((1 << 63) - 1) if sf else _bv(0x7FFFFFFF))
            res = clz(low, 64) - _bv(1 if sf else 33)
        r[rd] = res & mask
    elif kind == I.K_ADC:
        x, y = r[rn] & mask, r[rm] & mask
        if op:
            y = ~y & mask
        res, f = _add_flags(x, y, z3.If(st.flags[2], ONE, ZERO), sf)
        if ctl[I.F_FLAGS]:
            st.flags = f
        r[rd] = res
    elif kind == I.K_SIMD:
        _simd(ctl, st)
    elif kind != I.K_NOP:
        raise Unsupported(f"word {word:#010x}: micro-op kind {kind} has no symbolic form")
    r[I.ZR_READ] = ZERO


def _byte_counts(x):
    """Each byte of ``x`` (a bit-vector of whole bytes) replaced by its count of 1 bits.

    Summed bit by bit, as a specification counts (:func:`popcount`): with a SWAR form of the
    same counts z3 took ~10 s, not 0.3 s, to prove gcc's popcount idiom equal to one."""
    zero = z3.BitVecVal(0, 8)
    counts = [sum((z3.ZeroExt(7, z3.Extract(8 * b + i, 8 * b + i, x)) for i in range(8)), zero)
              for b in range(x.size() // 8 - 1, -1, -1)]
    return z3.Concat(*counts) if len(counts) > 1 else counts[0]


def popcount(v, bits: int = 64):
    """Count of 1 bits of the low ``bits`` of ``v``, as a 64-bit term (for specifications too)."""
    return sum((z3.ZeroExt(63, z3.Extract(b, b, v)) for b in range(bits)), _bv(0))


def _simd(ctl, st: _State) -> None:
    """One K_SIMD row (:mod:`core.executors.interp.simd`): writes zero every bit above the result."""
    op, width, rd, rn, lane = (int(ctl[f]) for f in (I.F_OP, I.F_SIZE, I.F_RD, I.F_RN, I.F_AMT))
    v = st.vregs
    if op == V.S_TO_V:
        bits = 8 << width
        v[rd] = z3.ZeroExt(128 - bits, z3.Extract(bits - 1, 0, st.regs[rn]))
    elif op in (V.S_FROM_V, V.S_UMOV):
        bits = 8 << width
        value = z3.Extract(bits * (lane + 1) - 1, bits * lane, v[rn])
        st.regs[rd] = z3.ZeroExt(64 - bits, value) if bits < 64 else value
    elif op == V.S_CNT:
        bits = 8 << width
        counts = _byte_counts(z3.Extract(bits - 1, 0, v[rn]))
        v[rd] = z3.ZeroExt(128 - bits, counts) if bits < 128 else counts
    else:
        parts = [z3.Extract(8 * b + 7, 8 * b, v[rn]) for b in range(1 << width)]
        if op == V.S_ADDV:
            v[rd] = z3.ZeroExt(120, sum(parts[1:], parts[0]))
        else:
            wide = [z3.ZeroExt(8, p) for p in parts]
            v[rd] = z3.ZeroExt(112, sum(wide[1:], wide[0]))


def _branch_condition(ctl, st: _State):
    kind = int(ctl[I.F_KIND])
    if kind == I.K_B:
        return _holds(int(ctl[I.F_COND]), st.flags)
    value = st.regs[int(ctl[I.F_RN])]
    if kind == I.K_CBZ:
        t = value & _mask(int(ctl[I.F_SF]))
        return t != 0 if ctl[I.F_OP] else t == 0
    bit = int(ctl[I.F_AMT])
    return (z3.Extract(bit, bit, value) == 1) == bool(ctl[I.F_OP])


def translate(code: bytes, *, scratch: int = 256, budget: int = 2048, solo_size: int = 4096) -> Program:
    """The symbolic meaning of ``code`` (a body, as executors take it); raises Unsupported."""
    if len(code) % 4:
        raise Unsupported("code length is not a multiple of 4")
    words, offsets = flatten([code])
    ctl, imm, supported = I.decode(words, offsets, scratch, budget, solo_size)
    n = len(words)
    if not supported[0]:
        raise Unsupported("a word the interpreter tier leaves to Unicorn")
    if n + 1 > budget:
        raise Unsupported(f"{n} words exceed the instruction budget {budget}")
    registers = tuple(z3.BitVec(f"x{k}", W64) for k in range(31))
    flags = tuple(z3.Bool(f) for f in "nzcv")
    words64 = tuple(z3.BitVec(f"m{k}", W64) for k in range((scratch + 7) // 8))
    mem = [z3.Extract(8 * (b % 8) + 7, 8 * (b % 8), words64[b // 8]) for b in range(scratch)]
    vectors = tuple(z3.BitVec(f"q{k}", 128) for k in range(32))
    start = _State([*registers, ZERO, ZERO], flags, mem, list(vectors))
    incoming: list[list] = [[] for _ in range(n + 1)]
    incoming[0].append((z3.BoolVal(True), start))
    crashes = []
    for pc in range(n):
        if not incoming[pc]:
            continue                                   # unreachable: every branch around it is taken
        guard = z3.Or(*[g for g, _ in incoming[pc]]) if len(incoming[pc]) > 1 else incoming[pc][0][0]
        st = _State.merge(incoming[pc])
        incoming[pc] = []
        row, word = ctl[pc], int(words[pc])
        kind = int(row[I.F_KIND])
        if (word >> 24) & 0x1F == 0b10000:
            raise Unsupported(f"word {word:#010x} at {pc}: adr/adrp, a value that depends on where the code is")
        if kind == I.K_SIGILL:
            crashes.append(guard)
            continue
        if kind == I.K_RET:                            # a return before the end: the same exit
            incoming[n].append((guard, st))
            continue
        if kind in (I.K_B, I.K_CBZ, I.K_TBZ):
            target = int(row[I.F_TGT])
            if target <= pc:
                raise Unsupported(f"word {word:#010x} at {pc}: a backward branch (a loop)")
            cond = _branch_condition(row, st)
            taken, fall = z3.simplify(z3.And(guard, cond)), z3.simplify(z3.And(guard, z3.Not(cond)))
            if target > n:
                crashes.append(taken)                  # into the slot's padding or unmapped memory
            elif not z3.is_false(taken):
                incoming[target].append((taken, st))
            if pc + 1 <= n and not z3.is_false(fall):
                incoming[pc + 1].append((fall, st.copy()))
            continue
        _step(row, imm[pc], st, scratch, word)
        incoming[pc + 1].append((guard, st))
    for _, st in incoming[n]:     # x30 is the caller's return address: a return is one only while
        if not z3.eq(z3.simplify(st.regs[30]), registers[30]):  # x30 still holds it
            raise Unsupported("x30 written before the return: an indirect branch")
    if incoming[n]:
        result = _State.merge(incoming[n]).regs[0]
    else:
        result = ZERO
    crash = z3.simplify(z3.Or(*crashes)) if crashes else z3.BoolVal(False)
    return Program(z3.simplify(result), crash, registers, flags, words64, vectors)
