// Melvin: times7 (7 * x) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 1.16 s)
// inputs x0; result x0; the return instruction is appended
sub x0, x0, x0, lsl #3
neg x0, x0
