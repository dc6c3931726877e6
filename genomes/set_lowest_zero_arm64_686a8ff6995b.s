// Melvin: set_lowest_zero (turn on the rightmost 0 bit (p06)) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.01 s)
// inputs x0; result x0; the return instruction is appended
add x1, x0, #1
orr x0, x0, x1
