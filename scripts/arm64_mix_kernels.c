/* Small bit-manipulation kernels (Hacker's Delight style) for scripts/measure_arm64_mix.py:
 * compiled with aarch64-linux-gnu-gcc -O2 -c, their .text is the "kernels" source of the
 * instruction mix. Mixed 32- and 64-bit on purpose; no builtins that would hide the idioms. */
#include <stdint.h>

uint64_t popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (x * 0x0101010101010101ull) >> 56;
}
uint32_t popcount32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (x * 0x01010101u) >> 24;
}
uint32_t parity32(uint32_t x) { x ^= x >> 16; x ^= x >> 8; x ^= x >> 4; return (0x6996u >> (x & 15)) & 1; }
uint64_t clear_lowest(uint64_t x) { return x & (x - 1); }
uint64_t isolate_lowest(uint64_t x) { return x & -x; }
uint32_t smear_right(uint32_t x) { return x | (x - 1); }
uint64_t trailing_mask(uint64_t x) { return ~x & (x - 1); }
int32_t abs32(int32_t x) { int32_t s = x >> 31; return (x ^ s) - s; }
int64_t abs64(int64_t x) { return x < 0 ? -x : x; }
int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
uint32_t maxu32(uint32_t a, uint32_t b) { return a > b ? a : b; }
int64_t sext_n(int64_t x, int n) { int s = 64 - n; return (int64_t)((uint64_t)x << s) >> s; }
int64_t sext8(int64_t x) { return (int8_t)x; }
int64_t sext16_32(int32_t x) { return (int16_t)x + (int64_t)x; }
uint32_t bswap32(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}
uint64_t bswap64_halves(uint64_t x) {
    x = ((x & 0x00ff00ff00ff00ffull) << 8) | ((x >> 8) & 0x00ff00ff00ff00ffull);
    x = ((x & 0x0000ffff0000ffffull) << 16) | ((x >> 16) & 0x0000ffff0000ffffull);
    return (x << 32) | (x >> 32);
}
uint64_t avg_floor(uint64_t a, uint64_t b) { return (a & b) + ((a ^ b) >> 1); }
uint32_t avg_ceil(uint32_t a, uint32_t b) { return (a | b) - ((a ^ b) >> 1); }
uint32_t sat_addu32(uint32_t a, uint32_t b) { uint32_t s = a + b; return s < a ? 0xffffffffu : s; }
int32_t sat_add32(int32_t a, int32_t b) {
    int64_t s = (int64_t)a + b;
    return s > 2147483647 ? 2147483647 : s < -2147483647 - 1 ? -2147483647 - 1 : (int32_t)s;
}
uint64_t sat_subu64(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
int sign64(int64_t x) { return (x > 0) - (x < 0); }
uint64_t rotl64(uint64_t x, unsigned r) { return (x << (r & 63)) | (x >> (-r & 63)); }
uint32_t rotr32_7(uint32_t x) { return (x >> 7) | (x << 25); }
uint64_t extract_bits(uint64_t x) { return (x >> 13) & 0x7ff; }
uint32_t insert_bits(uint32_t x, uint32_t y) { return (x & ~(0xffu << 8)) | ((y & 0xff) << 8); }
uint64_t is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }
uint32_t next_pow2(uint32_t x) {
    x--; x |= x >> 1; x |= x >> 2; x |= x >> 4; x |= x >> 8; x |= x >> 16; return x + 1;
}
uint64_t reverse_bits64(uint64_t x) {
    x = ((x >> 1) & 0x5555555555555555ull) | ((x & 0x5555555555555555ull) << 1);
    x = ((x >> 2) & 0x3333333333333333ull) | ((x & 0x3333333333333333ull) << 2);
    x = ((x >> 4) & 0x0f0f0f0f0f0f0f0full) | ((x & 0x0f0f0f0f0f0f0f0full) << 4);
    x = ((x >> 8) & 0x00ff00ff00ff00ffull) | ((x & 0x00ff00ff00ff00ffull) << 8);
    x = ((x >> 16) & 0x0000ffff0000ffffull) | ((x & 0x0000ffff0000ffffull) << 16);
    return (x >> 32) | (x << 32);
}
uint32_t nlz32(uint32_t x) {
    uint32_t n = 0;
    if (x <= 0x0000ffffu) { n += 16; x <<= 16; }
    if (x <= 0x00ffffffu) { n += 8; x <<= 8; }
    if (x <= 0x0fffffffu) { n += 4; x <<= 4; }
    if (x <= 0x3fffffffu) { n += 2; x <<= 2; }
    if (x <= 0x7fffffffu) { n += 1; }
    return x ? n : 32;
}
uint64_t mulhi_u64(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }
uint32_t div_by_7(uint32_t x) { return x / 7; }
int32_t div_by_4_signed(int32_t x) { return x / 4; }
uint64_t mod_pow2(uint64_t x, unsigned k) { return x & ((1ull << k) - 1); }
uint64_t interleave_lo(uint32_t x) {
    uint64_t v = x;
    v = (v | (v << 16)) & 0x0000ffff0000ffffull;
    v = (v | (v << 8)) & 0x00ff00ff00ff00ffull;
    v = (v | (v << 4)) & 0x0f0f0f0f0f0f0f0full;
    v = (v | (v << 2)) & 0x3333333333333333ull;
    return (v | (v << 1)) & 0x5555555555555555ull;
}
uint64_t index_scale(const uint64_t *p, int32_t i, uint32_t j) { return p[i] + p[j]; }
uint64_t add_u32_to_u64(uint64_t a, uint32_t b, int32_t c) { return a + b + ((uint64_t)c << 3); }
int cmp_three_way(int64_t a, int64_t b) { return (a > b) - (a < b); }
uint64_t select_bits(uint64_t m, uint64_t a, uint64_t b) { return (a & m) | (b & ~m); }
uint32_t gray_encode(uint32_t x) { return x ^ (x >> 1); }
uint32_t gray_decode(uint32_t x) { x ^= x >> 16; x ^= x >> 8; x ^= x >> 4; x ^= x >> 2; return x ^ (x >> 1); }
uint64_t hash_mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}
uint32_t count_leading_sign(int32_t x) { return nlz32((uint32_t)(x ^ (x >> 31))) - 1; }
uint64_t umul_add(uint64_t a, uint64_t b, uint64_t c) { return a * b + c; }
int64_t smull_sub(int32_t a, int32_t b, int64_t c) { return c - (int64_t)a * b; }
uint32_t bit_test_set(uint32_t x, unsigned k) { return (x >> (k & 31)) & 1 ? x : x | (1u << (k & 31)); }
