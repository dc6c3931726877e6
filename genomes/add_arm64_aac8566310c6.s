// Melvin: add (x + y) on arm64
// solved by evolution (seed 0), minimised from 1 to 1 instructions, verified on 14514 held-out cases
// verification: equivalence proven, independence proven (14514 held-out cases; z3 5.4.1, 0.02 s)
// inputs x0, x1; result x0; the return instruction is appended
add x0, x0, x1
