// Melvin: clear_lowest (turn off the rightmost 1 bit (p01)) on arm64
// solved by evolution (seed 0), minimised from 5 to 4 instructions, verified on 10017 held-out cases
// verification: equivalence proven, independence proven (10017 held-out cases; z3 5.4.1, 0.75 s)
// inputs x0; result x0; the return instruction is appended
orn x1, x1, x1
sdiv x2, x0, x1
mvn x2, x2
and x0, x2, x0
