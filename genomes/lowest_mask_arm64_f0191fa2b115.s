// Melvin: lowest_mask (mask of the rightmost 1 and trailing 0s (p04)) on arm64
// solved by evolution (seed 0), minimised from 15 to 8 instructions, verified on 10017 held-out cases
// verification: equivalence tested, independence proven (10017 held-out cases; z3 5.4.1, 10.05 s); equivalence not proven (solver: timeout)
// inputs x0; result x0; the return instruction is appended
orn x2, x1, x1
umulh x1, x0, x2
bic x3, x0, x1
rbit x1, x3
cmn x0, x2
and x3, x1, #0xfffffffffffffffe
csinc x3, x3, x3, ge
udiv x0, x2, x3
