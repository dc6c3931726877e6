// Melvin: popcount (number of 1 bits (gcc -O2: fmov, cnt, addv, fmov)) on arm64
// solved by evolution (seed 0), minimised from 4 to 4 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.16 s)
// inputs x0; result x0; the return instruction is appended
fmov d0, x0
cnt v0.8b, v0.8b
addv b0, v0.8b
fmov x0, d0
