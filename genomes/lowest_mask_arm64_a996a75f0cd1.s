// Melvin: lowest_mask (mask of the rightmost 1 and trailing 0s (p04)) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 0.05 s)
// inputs x0; result x0; the return instruction is appended
sub x1, x0, #1
eor x0, x0, x1
