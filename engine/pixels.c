/* Passes over the pixels of a tile for engine/pixels.py, compiled on first use by
 * engine/native.py (-ffp-contract=off: the roundings of the numpy code it mirrors).
 *
 * Moments: pixels in raster order, pixel i in lane i % LANES; each lane sums in float64 in
 * order, a partial last group adding 0.0 to the lanes it lacks. Pixels outside the mask count
 * as 0.0 (sums) and are never the maximum. Each lane keeps its largest pixel above 0 and the
 * first index reaching it. numpy gives these bits with cumulative sums down the lanes.
 *
 * 2x2 means: ((top-left + bottom-left) + (top-right + bottom-right)) * 0.25 in float64, an
 * odd last row or column as the mean of its two pixels, an odd corner as itself; then cast.
 */
#include <stddef.h>
#include <stdint.h>

#define LANES 8

/* The value of pixel i as a lane sees it: 0.0 outside the mask or past n. */
#define VALUE(x, mask, i, n) ((i) < (n) && ((mask) == NULL || (mask)[i]) ? (double)(x)[i] : 0.0)

/* sums[LANES] of the pixels inside the mask (mask NULL: every pixel), the largest such pixel
 * above 0 in *max and the raster index of its first occurrence in *first (-1: none). A NaN
 * pixel makes its lane's sum NaN (the caller then reports no maximum). Pixels go BLOCK at a time (a multiple of LANES):
 * the lanes of a block vectorise, and the first block holding the maximum is scanned again
 * for its first index. */
#define BLOCK 2048
#define MOMENTS(NAME, T)                                                                      \
    void NAME(const T *x, const uint8_t *mask, int64_t n, double *sums, double *max,        \
                 int64_t *first) {                                                            \
        double s[LANES] = {0}, best = 0.0;                                                    \
        int64_t where = -1, full = n - n % LANES;                                             \
        for (int64_t b = 0; b < n; b += BLOCK) {                                              \
            double m[LANES] = {0};                                                            \
            int64_t end = b + BLOCK < full ? b + BLOCK : full;                                \
            if (mask == NULL) {                                                               \
                for (int64_t i = b; i < end; i += LANES)                                      \
                    for (int l = 0; l < LANES; l++) {                                         \
                        double v = (double)x[i + l];                                          \
                        s[l] += v;                                                            \
                        m[l] = v > m[l] ? v : m[l];                                           \
                    }                                                                         \
            } else {                                                                          \
                for (int64_t i = b; i < end; i += LANES)                                      \
                    for (int l = 0; l < LANES; l++) {                                         \
                        double v = mask[i + l] ? (double)x[i + l] : 0.0;                      \
                        s[l] += v;                                                            \
                        m[l] = v > m[l] ? v : m[l];                                           \
                    }                                                                         \
            }                                                                                 \
            if (end == full && full < n && b + BLOCK >= n)                                    \
                for (int l = 0; l < LANES; l++) { /* the last, partial group */               \
                    double v = VALUE(x, mask, full + l, n);                                   \
                    s[l] += v;                                                                \
                    m[l] = v > m[l] ? v : m[l];                                               \
                }                                                                             \
            for (int l = 0; l < LANES; l++)                                                   \
                if (m[l] > best) {                                                            \
                    best = m[l];                                                              \
                    where = b;                                                                \
                }                                                                             \
        }                                                                                     \
        for (int l = 0; l < LANES; l++) sums[l] = s[l];                                       \
        *max = best;                                                                          \
        *first = -1;                                                                          \
        for (int64_t i = where; i >= 0 && i < n; i++)                                         \
            if (VALUE(x, mask, i, n) == best) {                                               \
                *first = i;                                                                   \
                break;                                                                        \
            }                                                                                 \
    }

/* sums[LANES] of (pixel - mean)^2 inside the mask, lanes as MOMENTS. */
#define DEVIATIONS(NAME, T)                                                                   \
    void NAME(const T *x, const uint8_t *mask, int64_t n, double mean, double *sums) {       \
        double s[LANES] = {0};                                                                \
        int64_t full = n - n % LANES;                                                         \
        if (mask == NULL) {                                                                   \
            for (int64_t i = 0; i < full; i += LANES)                                         \
                for (int l = 0; l < LANES; l++) {                                             \
                    double d = (double)x[i + l] - mean;                                       \
                    s[l] += d * d;                                                            \
                }                                                                             \
        } else {                                                                              \
            for (int64_t i = 0; i < full; i += LANES)                                         \
                for (int l = 0; l < LANES; l++) {                                             \
                    double d = mask[i + l] ? (double)x[i + l] - mean : 0.0;                   \
                    s[l] += d * d;                                                            \
                }                                                                             \
        }                                                                                     \
        if (full < n)                                                                         \
            for (int l = 0; l < LANES; l++) {                                                 \
                int inside = full + l < n && (mask == NULL || mask[full + l]);                \
                double d = inside ? (double)x[full + l] - mean : 0.0;                         \
                s[l] += d * d;                                                                \
            }                                                                                 \
        for (int l = 0; l < LANES; l++) sums[l] = s[l];                                       \
    }

/* out (ceil(rows/2), ceil(cols/2)) = 2x2 means of x (rows, cols). */
#define BIN2X2(NAME, T, U)                                                                    \
    void NAME(const T *x, int64_t rows, int64_t cols, U *out) {                               \
        int64_t orows = (rows + 1) / 2, ocols = (cols + 1) / 2, even = cols / 2;              \
        for (int64_t r = 0; r < rows / 2; r++) {                                              \
            const T *top = x + 2 * r * cols, *bottom = top + cols;                            \
            U *o = out + r * ocols;                                                           \
            for (int64_t c = 0; c < even; c++) {                                              \
                double left = (double)top[2 * c] + (double)bottom[2 * c];                     \
                double right = (double)top[2 * c + 1] + (double)bottom[2 * c + 1];            \
                o[c] = (U)((left + right) * 0.25);                                            \
            }                                                                                 \
            if (cols % 2)                                                                     \
                o[even] = (U)(((double)top[cols - 1] + (double)bottom[cols - 1]) * 0.5);      \
        }                                                                                     \
        if (rows % 2) {                                                                       \
            const T *last = x + (rows - 1) * cols;                                            \
            U *o = out + (orows - 1) * ocols;                                                 \
            for (int64_t c = 0; c < even; c++)                                                \
                o[c] = (U)(((double)last[2 * c] + (double)last[2 * c + 1]) * 0.5);            \
            if (cols % 2) o[even] = (U)last[cols - 1];                                        \
        }                                                                                     \
    }

MOMENTS(bt_moments_f32, float)
MOMENTS(bt_moments_f64, double)
DEVIATIONS(bt_deviations_f32, float)
DEVIATIONS(bt_deviations_f64, double)
BIN2X2(bt_bin2x2_f32_f32, float, float)
BIN2X2(bt_bin2x2_f32_f64, float, double)
BIN2X2(bt_bin2x2_f64_f32, double, float)
BIN2X2(bt_bin2x2_f64_f64, double, double)
BIN2X2(bt_bin2x2_u16_f32, uint16_t, float)
BIN2X2(bt_bin2x2_u16_f64, uint16_t, double)
BIN2X2(bt_bin2x2_u32_f32, uint32_t, float)
BIN2X2(bt_bin2x2_u32_f64, uint32_t, double)
