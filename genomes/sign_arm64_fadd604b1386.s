// Melvin: sign (sign of a signed int (p13)) on arm64
// solved by evolution (seed 0), minimised from 2 to 2 instructions, verified on 10277 held-out cases
// verification: equivalence proven, independence proven (10277 held-out cases; z3 5.4.1, 1.16 s)
// inputs x0; result x0; the return instruction is appended
udiv x1, x0, x0
orr x0, x1, x0, asr #63
