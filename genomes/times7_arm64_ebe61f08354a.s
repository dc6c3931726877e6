// Melvin: times7 (7 * x) on arm64
// solved by evolution (seed 0), minimised from 15 to 4 instructions, verified on 10017 held-out cases
// verification: equivalence proven, independence proven (10017 held-out cases; z3 5.4.1, 0.02 s)
// inputs x0; result x0; the return instruction is appended
add x2, x0, x0
add x1, x2, x0
add x1, x1, x1
add x0, x1, x0
