/* Photon-noise draws for engine/noise.py, compiled on first use by engine/native.py.
 *
 * The same integers and the same float64 operations as noise.py's numpy path:
 * Philox4x32-10 keyed by the 64-bit seed, counter (pixel low word, pixel high word, frame,
 * draw); a uniform in (0, 1) from 52 bits of two words; Poisson counts of means below 12 by
 * inversion of the CDF (C nanoBragg's poidev branch), p_k = p_{k-1} * mean / k; ADU as
 * engine/response.py makes them, or counts and ADU in one pass over a window of means with
 * the pixel indices made on the fly (bt_noise_adu_*). Philox runs 8 (AVX-512, four vectors
 * interleaved) or 4 (AVX2) pixels at a time, each 32-bit word in a 64-bit lane (the unsigned
 * 32x32 -> 64-bit multiply of those lanes), with a scalar loop for the rest and for other
 * CPUs: the same integers on every path.
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

/* Philox of w (1 to 4) vectors of eight pixels each, interleaved so that the multiplies of
 * one vector wait while the others run (each round depends on the one before); inlined with
 * w a constant, the arrays live in registers. */
static inline __attribute__((always_inline)) void philox8(const int64_t *index, int w,
                                                          const uint32_t k0[10],
                                                          const uint32_t k1[10], uint32_t frame,
                                                          uint32_t draw, double *u, double *v) {
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    __m512i c0[4], c1[4], c2[4], c3[4];
    for (int j = 0; j < w; j++) {
        c0[j] = _mm512_loadu_si512((const void *)(index + 8 * j));
        c1[j] = _mm512_srli_epi64(c0[j], 32);
        c2[j] = _mm512_set1_epi64(frame);
        c3[j] = _mm512_set1_epi64(draw);
    }
    for (int r = 0; r < 10; r++) {
        __m512i a = _mm512_set1_epi64(k0[r]), b = _mm512_set1_epi64(k1[r]);
        for (int j = 0; j < w; j++) {
            __m512i p0 = _mm512_mul_epu32(c0[j], m0), p1 = _mm512_mul_epu32(c2[j], m1);
            /* 0x96: the three-way exclusive or */
            c0[j] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[j], a, 0x96);
            c2[j] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[j], b, 0x96);
            c1[j] = p1;
            c3[j] = p0;
        }
    }
    for (int j = 0; j < w; j++) {
        _mm512_storeu_pd(u + 8 * j, unit8(c0[j], c1[j]));
        if (v) _mm512_storeu_pd(v + 8 * j, unit8(c2[j], c3[j]));
    }
}

/* uniforms4 with eight pixels a vector, four vectors at a time. */
static int64_t uniforms8(const int64_t *index, int64_t n, const uint32_t k0[10],
                         const uint32_t k1[10], uint32_t frame, uint32_t draw, double *u,
                         double *v) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        philox8(index + i, 4, k0, k1, frame, draw, u + i, v ? v + i : NULL);
    for (; i + 8 <= n; i += 8)
        philox8(index + i, 1, k0, k1, frame, draw, u + i, v ? v + i : NULL);
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

/* The Poisson count of a mean lam in (0, 12) (0 for lam <= 0) drawn with uniform u. */
static inline double inversion(double lam, double u) {
    double k = 0.0;
    if (lam > 0.0 && !(u < (1.0 - lam) * SURE_ZERO)) {
        double p = exp(-lam), cdf = p;
        for (int step = 1; step <= MAX_INVERSION_STEPS && u > cdf; step++) {
            p = p * lam / step;
            cdf = cdf + p;
            k = (double)step;
        }
    }
    return k;
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
                if (lam >= SMALL_MEAN_LIMIT)                                                   \
                    rest[others++] = start + j;                                                \
                else                                                                           \
                    k = inversion(lam, u[j]);                                                  \
                counts[start + j] = k;                                                         \
            }                                                                                  \
        }                                                                                      \
        return others;                                                                         \
    }

POISSON_SMALL(bt_poisson_small_f32, float)
POISSON_SMALL(bt_poisson_small_f64, double)

/* An ADU value clipped to [0, overload] (truncated by the caller's cast). */
static inline double clip_adu(double value, double overload) {
    return value > overload ? overload : value < 0.0 ? 0.0 : value;
}

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
            out[i] = (OUT)clip_adu(value, overload);                                           \
        }                                                                                      \
        return overloads;                                                                      \
    }

ADU(bt_adu_u16, uint16_t)
ADU(bt_adu_u32, uint32_t)

/* ADU of the Poisson counts of a rows x cols window of means (rows `stride` means apart)
 * whose first pixel is (slow0, fast0) of a detector fast_pixels wide, in one pass: pixel
 * index slow * fast_pixels + fast, its uniform as bt_uniforms (draw 0), its count as
 * POISSON_SMALL, its ADU as ADU without extra, into out (rows x cols). Means >= 12 go to rest
 * (raster positions in the window; out 0 there, no overload counted) for the caller. Returns
 * how many, or -1 if a mean is NaN or infinite; *overloads: the overloads of the others.
 *
 * Most pixels of a frame draw 0 photons for sure (mean <= 0, or u < (1 - mean) x SURE_ZERO),
 * and their ADU is that of a count of 0: loops over a piece that vectorise flag the others
 * and write that value everywhere; a last one visits only the flagged pixels. */
/* ADU of a count before clipping: count x gain + offset, 0 outside the ROI (in = 0). */
static inline double raw_adu(double count, double gain, double offset, int in) {
    double value = count * gain;
    value = value + offset;
    return in ? value : 0.0;
}

#define NOISE_ADU(NAME, MEAN, OUT)                                                             \
    int64_t NAME(const MEAN *mean, int64_t rows, int64_t cols, int64_t stride, int64_t slow0,  \
                 int64_t fast0, int64_t fast_pixels, uint64_t seed, uint32_t frame,           \
                 const uint8_t *inside, double gain, double offset, double overload,          \
                 OUT *out, int64_t *rest, int64_t *overloads) {                                \
        int64_t index[PIECE], flagged[PIECE], others = 0, over = 0;                            \
        double u[PIECE];                                                                       \
        const double zero = raw_adu(0.0, gain, offset, 1);                                     \
        const OUT adu_in = (OUT)clip_adu(zero, overload), adu_out = (OUT)clip_adu(0.0, overload); \
        for (int64_t r = 0; r < rows; r++) {                                                   \
            for (int64_t c0 = 0; c0 < cols; c0 += PIECE) {                                     \
                int64_t m = cols - c0 < PIECE ? cols - c0 : PIECE;                             \
                int64_t first = (slow0 + r) * fast_pixels + fast0 + c0;                        \
                for (int64_t j = 0; j < m; j++) index[j] = first + j;                          \
                bt_uniforms(index, m, seed, frame, 0, u, NULL);                                \
                const MEAN *row = mean + r * stride + c0;                                      \
                const uint8_t *in = inside ? inside + r * cols + c0 : NULL;                    \
                OUT *o = out + r * cols + c0;                                                  \
                int64_t bad = 0, in_roi = m;                                                   \
                for (int64_t j = 0; j < m; j++) { /* vectorises: one lane width */             \
                    double lam = (double)row[j];                                               \
                    int64_t drawn = !(u[j] < (1.0 - lam) * SURE_ZERO);                         \
                    bad += lam - lam != 0.0; /* NaN and infinities */                          \
                    flagged[j] = ((lam > 0.0) & drawn) | (lam >= SMALL_MEAN_LIMIT);            \
                }                                                                              \
                if (bad) return -1;                                                            \
                if (in) {                                                                      \
                    in_roi = 0;                                                                \
                    for (int64_t j = 0; j < m; j++) {                                          \
                        o[j] = in[j] ? adu_in : adu_out;                                       \
                        in_roi += in[j] != 0;                                                  \
                    }                                                                          \
                } else {                                                                       \
                    for (int64_t j = 0; j < m; j++) o[j] = adu_in;                             \
                }                                                                              \
                for (int64_t j = 0; j < m; j++) {                                              \
                    if (!flagged[j]) continue;                                                 \
                    int is_in = in ? in[j] != 0 : 1;                                           \
                    in_roi -= is_in; /* counted below, not as a zero */                        \
                    double lam = (double)row[j];                                               \
                    if (lam >= SMALL_MEAN_LIMIT) {                                             \
                        rest[others++] = r * cols + c0 + j;                                    \
                        o[j] = 0;                                                              \
                        continue;                                                              \
                    }                                                                          \
                    double value = raw_adu(inversion(lam, u[j]), gain, offset, is_in);         \
                    over += value > overload;                                                  \
                    o[j] = (OUT)clip_adu(value, overload);                                     \
                }                                                                              \
                over += (zero > overload) * in_roi;                                            \
            }                                                                                  \
        }                                                                                      \
        *overloads = over;                                                                     \
        return others;                                                                         \
    }

NOISE_ADU(bt_noise_adu_f32_u16, float, uint16_t)
NOISE_ADU(bt_noise_adu_f32_u32, float, uint32_t)
NOISE_ADU(bt_noise_adu_f64_u16, double, uint16_t)
NOISE_ADU(bt_noise_adu_f64_u32, double, uint32_t)
