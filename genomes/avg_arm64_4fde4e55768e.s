// Melvin: avg (floor((x + y) / 2) without overflow (Hacker's Delight p14)) on arm64
// solved by evolution (seed 0), minimised from 3 to 3 instructions, verified on 14514 held-out cases
// verification: equivalence proven, independence proven (14514 held-out cases; z3 5.4.1, 0.05 s)
// inputs x0, x1; result x0; the return instruction is appended
and x2, x0, x1
eor x0, x0, x1
add x0, x2, x0, lsr #1
