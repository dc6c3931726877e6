// Melvin: isolate_lowest (isolate the rightmost 1 bit (p03)) on arm64
// solved by evolution (seed 0), minimised from 16 to 9 instructions, verified on 10017 held-out cases
// verification: equivalence tested, independence proven (10017 held-out cases; z3 5.4.1, 10.97 s); equivalence not proven (solver: timeout)
// inputs x0; result x0; the return instruction is appended
rbit x2, x0
orn x3, x2, x2
smulh x1, x2, x3
umulh x3, x0, x1
orn x2, x2, x1
bic x0, x0, x3
umulh x3, x2, x0
add x3, x3, #1
sdiv x0, x0, x3
