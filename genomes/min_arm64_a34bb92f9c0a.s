// Melvin: min (unsigned minimum) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 14514 held-out cases
// verification: equivalence proven, independence proven (14514 held-out cases; z3 5.4.1, 0.32 s)
// inputs x0, x1; result x0; the return instruction is appended
cmp x0, x1
csel x0, x0, x1, lo
