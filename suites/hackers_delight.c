/* Hacker's Delight p01-p25 (without p21), 64-bit forms: the functions of
 * suites/hackers_delight.py in C, for the instruction count of `aarch64-linux-gnu-gcc -O2`
 * (scripts/bench_search.py). Each is written the way a C programmer would state it, so that gcc
 * sees the intent (a comparison for max, __builtin_popcountll for a bit count, a 128-bit product
 * for the high half); the same conventions as the Python suite: booleans are 1/0, signed problems
 * read the word as two's complement, p19 shifts by k mod 64, p20(0) is 0 (AArch64's udiv gives 0
 * for a zero divisor; the division is left plain so gcc emits what it would for the formula). */
#include <stdint.h>

typedef uint64_t u64;
typedef int64_t s64;

u64 p01(u64 x) { return x & (x - 1); }                      /* turn off the rightmost 1 bit */
u64 p02(u64 x) { return x & (x + 1); }                      /* zero iff x is 2**n - 1 */
u64 p03(u64 x) { return x & -x; }                           /* isolate the rightmost 1 bit */
u64 p04(u64 x) { return x ^ (x - 1); }                      /* rightmost 1 and trailing 0s */
u64 p05(u64 x) { return x | (x - 1); }                      /* right-propagate the rightmost 1 */
u64 p06(u64 x) { return x | (x + 1); }                      /* turn on the rightmost 0 bit */
u64 p07(u64 x) { return ~x & (x + 1); }                     /* isolate the rightmost 0 bit */
u64 p08(u64 x) { return ~x & (x - 1); }                     /* mask of the trailing 0s */

u64 p09(u64 x)                                              /* absolute value */
{
    s64 s = (s64)x;
    return s < 0 ? -x : x;
}

u64 p10(u64 x, u64 y) { return (x ^ y) <= (x & y); }        /* nlz(x) == nlz(y) */
u64 p11(u64 x, u64 y) { return (x & ~y) > y; }              /* nlz(x) < nlz(y) */
u64 p12(u64 x, u64 y) { return (y & ~x) <= x; }             /* nlz(x) <= nlz(y) */

u64 p13(u64 x)                                              /* sign: -1, 0, 1 */
{
    s64 s = (s64)x;
    return s > 0 ? 1 : s < 0 ? (u64)-1 : 0;
}

u64 p14(u64 x, u64 y) { return (x & y) + (u64)((s64)(x ^ y) >> 1); }   /* floor average */
u64 p15(u64 x, u64 y) { return (x | y) - (u64)((s64)(x ^ y) >> 1); }   /* ceiling average */

u64 p16(u64 x, u64 y) { return (s64)x >= (s64)y ? x : y; }  /* signed maximum */

u64 p17(u64 x) { return ((x | (x - 1)) + 1) & x; }          /* turn off the rightmost run of 1s */

u64 p18(u64 x) { return x != 0 && (x & (x - 1)) == 0; }     /* power of 2 */

u64 p19(u64 x, u64 m, u64 k)                                /* exchange fields m and m << k */
{
    unsigned s = (unsigned)(k & 63);
    u64 t = ((x >> s) ^ x) & m;
    return x ^ t ^ (t << s);
}

u64 p20(u64 x)                                              /* next higher, same popcount */
{
    u64 smallest = x & -x;
    u64 ripple = x + smallest;
    u64 ones = ((x ^ ripple) >> 2) / smallest;
    return ripple | ones;
}

u64 p22(u64 x) { return (u64)__builtin_parityll(x); }       /* parity */
u64 p23(u64 x) { return (u64)__builtin_popcountll(x); }     /* population count */

u64 p24(u64 x)                                              /* round up to a power of 2 */
{
    x -= 1;
    x |= x >> 1;
    x |= x >> 2;
    x |= x >> 4;
    x |= x >> 8;
    x |= x >> 16;
    x |= x >> 32;
    return x + 1;
}

u64 p25(u64 x, u64 y) { return (u64)(((unsigned __int128)x * y) >> 64); }   /* high product */
