/* A preloaded library (LD_PRELOAD) that watches torch's calls into MKL's vector math (VML).
 *
 * libtorch_cpu calls vmsSqrt, vmdExp, ... through its PLT, so these definitions come first
 * and forward to libtorch_cpu's own. Each process appends to $VML_FIRST_CALLS_DIR/<pid>.txt,
 * at the moment it happens (worker processes may end without running exit handlers):
 *   "first NAME N": the process's first call of NAME, on N elements;
 *   "large NAME N": its first call of NAME on N >= 2048 elements (torch's parallel grain:
 *                   such a call may run on several intra-op threads at once).
 * The test that builds it is tests/test_vml.py. LP64 MKL: void vmsSqrt(MKL_INT n,
 * const float *a, float *r, MKL_INT64 mode).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { FUNCTIONS = 32, PARALLEL_GRAIN = 2048 };

static atomic_int seen[FUNCTIONS];
static atomic_int seen_large[FUNCTIONS];

static void append(const char *kind, const char *name, int n) {
    const char *dir = getenv("VML_FIRST_CALLS_DIR");
    char path[4096], line[128];
    if (dir == NULL) return;
    snprintf(path, sizeof path, "%s/%d.txt", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    int len = snprintf(line, sizeof line, "%s %s %d\n", kind, name, n);
    if (write(fd, line, len) != len) perror("vml_first_calls");
    close(fd);
}

static void note_call(int i, const char *name, int n) {
    if (atomic_exchange(&seen[i], 1) == 0) append("first", name, n);
    if (n >= PARALLEL_GRAIN && atomic_exchange(&seen_large[i], 1) == 0) append("large", name, n);
}

static void *real_function(const char *name) {
    void *torch = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    return torch != NULL ? dlsym(torch, name) : NULL;
}

#define WATCH(i, name, T)                                                    \
    void name(int n, const T *a, T *r, long long mode) {                    \
        static void (*real)(int, const T *, T *, long long);                \
        if (real == NULL) real = (void (*)(int, const T *, T *, long long)) \
            real_function(#name);                                            \
        note_call(i, #name, n);                                              \
        real(n, a, r, mode);                                                 \
    }

#define WATCH_BOTH(i, op) WATCH(2 * (i), vms##op, float) WATCH(2 * (i) + 1, vmd##op, double)

WATCH_BOTH(0, Acos)
WATCH_BOTH(1, Asin)
WATCH_BOTH(2, Atan)
WATCH_BOTH(3, Cos)
WATCH_BOTH(4, Erf)
WATCH_BOTH(5, Erfc)
WATCH_BOTH(6, ErfInv)
WATCH_BOTH(7, Exp)
WATCH_BOTH(8, Ln)
WATCH_BOTH(9, Log10)
WATCH_BOTH(10, Log2)
WATCH_BOTH(11, Sin)
WATCH_BOTH(12, Sqrt)
WATCH_BOTH(13, Tan)
WATCH_BOTH(14, Tanh)
WATCH_BOTH(15, Trunc)
