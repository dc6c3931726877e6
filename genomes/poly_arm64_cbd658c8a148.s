// Melvin: poly (3x + y + 5) on arm64
// solved by evolution (seed 0), minimised from 11 to 4 instructions, verified on 10289 held-out cases
// verification: equivalence proven, independence proven (10289 held-out cases; z3 5.4.1, 0.01 s)
// inputs x0, x1; result x0; the return instruction is appended
add x1, x0, x1
add x1, x0, x1
add x1, x0, x1
add x0, x1, #5
