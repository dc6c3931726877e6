// Melvin: propagate_lowest (right-propagate the rightmost 1 (p05)) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.03 s)
// inputs x0; result x0; the return instruction is appended
sub x1, x0, #1
orr x0, x0, x1
