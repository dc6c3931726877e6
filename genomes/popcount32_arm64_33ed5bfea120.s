// Melvin: popcount32 (number of 1 bits in the low 32 bits) on arm64
// solved by evolution (seed 0), minimised from 5 to 5 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.04 s)
// inputs x0; result x0; the return instruction is appended
lsl x0, x0, #32
fmov d0, x0
cnt v0.8b, v0.8b
addv b0, v0.8b
fmov x0, d0
