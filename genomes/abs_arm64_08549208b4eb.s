// Melvin: abs (absolute value of a signed int (p09)) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.06 s)
// inputs x0; result x0; the return instruction is appended
cmp x0, #0
csneg x0, x0, x0, ge
