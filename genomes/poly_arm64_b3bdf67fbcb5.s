// Melvin: poly (3x + y + 5) on arm64
// solved by evolution (seed 0), minimised from 3 to 3 instructions, verified on 14514 held-out cases
// verification: equivalence proven, independence proven (14514 held-out cases; z3 5.4.1, 0.02 s)
// inputs x0, x1; result x0; the return instruction is appended
add x2, x0, #5
add x0, x1, x0, lsl #1
add x0, x2, x0
