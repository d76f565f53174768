/* Photon-noise draws for engine/noise.py, compiled on first use by engine/noise_native.py.
 *
 * The same integers and the same float64 operations as noise.py's numpy path:
 * Philox4x32-10 keyed by the 64-bit seed, counter (pixel low word, pixel high word, frame,
 * draw); a uniform in (0, 1) from 52 bits of two words; Poisson counts of means below 12 by
 * inversion of the CDF (C nanoBragg's poidev branch), p_k = p_{k-1} * mean / k; ADU as
 * engine/response.py makes them. Philox runs 8 (AVX-512) or 4 (AVX2) pixels at a time, each
 * 32-bit word in a 64-bit lane (the unsigned 32x32 -> 64-bit multiply of those lanes), with a
 * scalar loop for the rest and for other CPUs: the same integers on every path.
 * Built with -ffp-contract=off: no fused multiply-add changes a rounding.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PIECE 1024            /* pixels per piece: the uniforms stay in L1 */
#define SMALL_MEAN_LIMIT 12.0 /* C poidev: inversion below */
#define MAX_INVERSION_STEPS 100
/* exp(-m) > 1 - m for m > 0: a uniform this far below 1 - m is below the computed exp(-m)
 * whatever its last bits, so that pixel draws 0 photons without calling exp. */
#define SURE_ZERO (1.0 - 1e-9)

static void keys(uint64_t seed, uint32_t k0[10], uint32_t k1[10]) {
    uint32_t a = (uint32_t)seed, b = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        k0[r] = a;
        k1[r] = b;
        a += PHILOX_W0;
        b += PHILOX_W1;
    }
}

static inline double unit(uint32_t hi, uint32_t lo) {
    int64_t bits = ((int64_t)(hi >> 6) << 26) | (int64_t)(lo >> 6);
    return ((double)bits + 0.5) * 0x1p-52;
}

/* One Philox4x32-10 block: counter words c[0..3] in place. */
static inline void philox(uint32_t c[4], const uint32_t k0[10], const uint32_t k1[10]) {
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)c[0] * PHILOX_M0, p1 = (uint64_t)c[2] * PHILOX_M1;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0[r];
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1[r];
        c[1] = (uint32_t)p1;
        c[3] = (uint32_t)p0;
        c[0] = n0;
        c[2] = n2;
    }
}

#ifdef __AVX2__
#include <immintrin.h>

/* (hi >> 6) << 26 | (lo >> 6) of the low 32 bits of each 64-bit lane, as float64 + 0.5,
 * times 2^-52: the bits (< 2^52) enter the mantissa of 2^52 exactly. */
static inline __m256d unit4(__m256i hi, __m256i lo) {
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFF);
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000LL); /* 2^52 */
    __m256i bits = _mm256_or_si256(
        _mm256_slli_epi64(_mm256_srli_epi64(_mm256_and_si256(hi, low32), 6), 26),
        _mm256_srli_epi64(_mm256_and_si256(lo, low32), 6));
    __m256d value = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(bits, magic)),
                                  _mm256_set1_pd(0x1p52));
    return _mm256_mul_pd(_mm256_add_pd(value, _mm256_set1_pd(0.5)), _mm256_set1_pd(0x1p-52));
}

/* Four pixels at a time, each 32-bit word in a 64-bit lane: _mm256_mul_epu32 multiplies the
 * low halves, so the high halves may hold anything until the words are read. */
static int64_t uniforms4(const int64_t *index, int64_t n, const uint32_t k0[10],
                         const uint32_t k1[10], uint32_t frame, uint32_t draw, double *u,
                         double *v) {
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i pixel = _mm256_loadu_si256((const __m256i *)(index + i));
        __m256i c0 = pixel, c1 = _mm256_srli_epi64(pixel, 32);
        __m256i c2 = _mm256_set1_epi64x(frame), c3 = _mm256_set1_epi64x(draw);
        for (int r = 0; r < 10; r++) {
            __m256i p0 = _mm256_mul_epu32(c0, m0), p1 = _mm256_mul_epu32(c2, m1);
            c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1),
                                  _mm256_set1_epi64x(k0[r]));
            c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3),
                                  _mm256_set1_epi64x(k1[r]));
            c1 = p1;
            c3 = p0;
        }
        _mm256_storeu_pd(u + i, unit4(c0, c1));
        if (v) _mm256_storeu_pd(v + i, unit4(c2, c3));
    }
    return i;
}

#ifdef __AVX512F__
static inline __m512d unit8(__m512i hi, __m512i lo) {
    const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFF);
    const __m512i magic = _mm512_set1_epi64(0x4330000000000000LL); /* 2^52 */
    __m512i bits = _mm512_or_si512(
        _mm512_slli_epi64(_mm512_srli_epi64(_mm512_and_si512(hi, low32), 6), 26),
        _mm512_srli_epi64(_mm512_and_si512(lo, low32), 6));
    __m512d value = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(bits, magic)),
                                  _mm512_set1_pd(0x1p52));
    return _mm512_mul_pd(_mm512_add_pd(value, _mm512_set1_pd(0.5)), _mm512_set1_pd(0x1p-52));
}

/* uniforms4 with eight pixels at a time. */
static int64_t uniforms8(const int64_t *index, int64_t n, const uint32_t k0[10],
                         const uint32_t k1[10], uint32_t frame, uint32_t draw, double *u,
                         double *v) {
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i pixel = _mm512_loadu_si512((const void *)(index + i));
        __m512i c0 = pixel, c1 = _mm512_srli_epi64(pixel, 32);
        __m512i c2 = _mm512_set1_epi64(frame), c3 = _mm512_set1_epi64(draw);
        for (int r = 0; r < 10; r++) {
            __m512i p0 = _mm512_mul_epu32(c0, m0), p1 = _mm512_mul_epu32(c2, m1);
            c0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1),
                                  _mm512_set1_epi64(k0[r]));
            c2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3),
                                  _mm512_set1_epi64(k1[r]));
            c1 = p1;
            c3 = p0;
        }
        _mm512_storeu_pd(u + i, unit8(c0, c1));
        if (v) _mm512_storeu_pd(v + i, unit8(c2, c3));
    }
    return i;
}
#endif
#endif

/* Uniforms u (words 0, 1) and, when v is not NULL, v (words 2, 3) of n pixel indices. */
void bt_uniforms(const int64_t *index, int64_t n, uint64_t seed, uint32_t frame, uint32_t draw,
                 double *u, double *v) {
    uint32_t k0[10], k1[10];
    keys(seed, k0, k1);
    int64_t i = 0;
#ifdef __AVX512F__
    i = uniforms8(index, n, k0, k1, frame, draw, u, v);
#endif
#ifdef __AVX2__
    i += uniforms4(index + i, n - i, k0, k1, frame, draw, u + i, v ? v + i : NULL);
#endif
    for (; i < n; i++) {
        uint64_t pixel = (uint64_t)index[i];
        uint32_t c[4] = {(uint32_t)pixel, (uint32_t)(pixel >> 32), frame, draw};
        philox(c, k0, k1);
        u[i] = unit(c[0], c[1]);
        if (v) v[i] = unit(c[2], c[3]);
    }
}

/* Poisson counts of means below 12 (0 for means <= 0) into counts; the positions of the
 * other means (>= 12) into rest. Returns how many went to rest, or -1 if a mean is NaN or
 * infinite (nothing else is then promised). MEAN is float or double. */
#define POISSON_SMALL(NAME, MEAN)                                                              \
    int64_t NAME(const MEAN *mean, const int64_t *index, int64_t n, uint64_t seed,             \
                 uint32_t frame, double *counts, int64_t *rest) {                              \
        double u[PIECE];                                                                       \
        int64_t others = 0;                                                                    \
        for (int64_t start = 0; start < n; start += PIECE) {                                   \
            int64_t m = n - start < PIECE ? n - start : PIECE;                                 \
            bt_uniforms(index + start, m, seed, frame, 0, u, NULL);                            \
            for (int64_t j = 0; j < m; j++) {                                                  \
                double lam = (double)mean[start + j];                                          \
                if (!isfinite(lam)) return -1;                                                 \
                double k = 0.0;                                                                \
                if (lam >= SMALL_MEAN_LIMIT) {                                                 \
                    rest[others++] = start + j;                                                \
                } else if (lam > 0.0 && !(u[j] < (1.0 - lam) * SURE_ZERO)) {                   \
                    double p = exp(-lam), cdf = p;                                             \
                    for (int step = 1; step <= MAX_INVERSION_STEPS && u[j] > cdf; step++) {    \
                        p = p * lam / step;                                                    \
                        cdf = cdf + p;                                                         \
                        k = (double)step;                                                      \
                    }                                                                          \
                }                                                                              \
                counts[start + j] = k;                                                         \
            }                                                                                  \
        }                                                                                      \
        return others;                                                                         \
    }

POISSON_SMALL(bt_poisson_small_f32, float)
POISSON_SMALL(bt_poisson_small_f64, double)

/* ADU of n counts, as engine/response.py's detector_image: counts * gain, + extra (read-out
 * noise, ADU) when extra is not NULL, + offset; 0 where inside is 0 (when not NULL); then
 * clipped to [0, overload] and truncated, into out (OUT: uint16_t or uint32_t). Returns the
 * overloads: pixels above overload before clipping. */
#define ADU(NAME, OUT)                                                                         \
    int64_t NAME(const double *counts, const double *extra, const uint8_t *inside, int64_t n,  \
                 double gain, double offset, double overload, OUT *out) {                     \
        int64_t overloads = 0;                                                                 \
        for (int64_t i = 0; i < n; i++) {                                                      \
            double value = counts[i] * gain;                                                   \
            if (extra) value = value + extra[i];                                               \
            value = value + offset;                                                            \
            if (inside && !inside[i]) value = 0.0;                                             \
            overloads += value > overload;                                                     \
            value = value > overload ? overload : value < 0.0 ? 0.0 : value;                   \
            out[i] = (OUT)value;                                                               \
        }                                                                                      \
        return overloads;                                                                      \
    }

ADU(bt_adu_u16, uint16_t)
ADU(bt_adu_u32, uint32_t)
