/* The per-synapse update of rule dfa (docs/arithmetic.md §7.2: two SplitMix64 finalisers, the
 * stochastic roundings, the clamp and the weight code of §2) in three C forms with the same bits,
 * timed in one run; docs/performance.md's vectorisation report explains them.
 *
 *   generated  the loop as `futhark multicore` writes it (benchmarks/update_loop.fut's
 *              step_only): pointers that may alias (6 arrays: 12 run-time alias checks, more
 *              than gcc's limit of 10), the decay branch inside the loop, __builtin_clzll;
 *   restrict   the same with restrict pointers and the decay branch hoisted out of the loop;
 *   vector     also the bit length of |L| (< 2^21, §1) read from its exact float exponent in
 *              32-bit lanes instead of a 64-bit count of leading zeros, which AVX2 lacks.
 *
 * Build and run (gcc, the flags CMakeLists.txt uses for the multicore module):
 *   gcc -O3 -march=native -std=c99 benchmarks/update_loop.c -o /tmp/update_loop && /tmp/update_loop
 * It prints ns per synapse of each form, their ratios to `generated`, and checks the bits.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LATENT_MAX 2097151 /* 2^21 - 1 (§1) */

static inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* What the step needs besides the arrays: the rule's shifts and step, the layer's kmax, the
 * rounding key and the index of the first synapse. */
typedef struct {
  uint64_t key;
  int64_t base, step;
  int32_t b1, b2, decay, kmax;
} params;

static inline int32_t code_weight(int64_t nw, int32_t bl, int32_t kmax) {
  int32_t a = (int32_t)(nw < 0 ? -nw : nw); /* |L| < 2^21 (§1) */
  int32_t e = bl + ((a >> (bl >= 2 ? bl - 2 : 0)) & (bl >= 2));
  int32_t k = 21 - e > 0 ? 21 - e : 0;
  int32_t code = (a == 0 || k > kmax) ? 0 : (nw > 0 ? k + 1 : -(k + 1));
  int32_t wm = code == 0 ? 0 : 1 << (kmax - ((code < 0 ? -code : code) - 1));
  return code > 0 ? wm : -wm;
}

#define STEP_BODY(BITLEN, DECAY)                                                                 \
  uint64_t r = mix64(p.key ^ mix64((uint64_t)(p.base + h) + 0x9E3779B97F4A7C15ull));            \
  int64_t mm = mom[h], l = lat[h], diff = (int64_t)g[h] - mm;                                    \
  int64_t c = mm + ((diff + (int64_t)(r & 0x1fffff & m1)) >> p.b1);                              \
  int64_t nw = l - p.step * ((c > 0) - (c < 0));                                                 \
  DECAY;                                                                                         \
  nw = nw > LATENT_MAX ? LATENT_MAX : nw < -LATENT_MAX ? -LATENT_MAX : nw;                       \
  int64_t m2 = mm + ((diff + (int64_t)((r >> 21) & 0x1fffff & m2mask)) >> p.b2);                 \
  lat2[h] = (int32_t)nw;                                                                         \
  mom2[h] = (int32_t)m2;                                                                         \
  w[h] = code_weight(nw, BITLEN, p.kmax);

#define DECAY_STEP nw -= (l + (int64_t)((r >> 42) & md)) >> p.decay

static inline int32_t bitlen_clz(int64_t nw) {
  uint64_t a = (uint64_t)(nw < 0 ? -nw : nw);
  return 64 - (a == 0 ? 64 : __builtin_clzll(a));
}

/* |nw| < 2^21 converts to float exactly, so its exponent field is floor(log2 |nw|) + 127
 * (and 0 for 0). */
static inline int32_t bitlen_float(int64_t nw) {
  /* A branch-free |nw|: gcc will not if-convert a conversion to float that sits in a branch
   * (it "could trap" under -ftrapping-math), and then vectorises nothing. */
  int32_t x = (int32_t)nw, sign = x >> 31;
  union {
    float f;
    int32_t i;
  } u = {.f = (float)((x ^ sign) - sign)};
  int32_t b = (u.i >> 23) - 126;
  return b > 0 ? b : 0;
}

#define MASKS                                                                                  \
  uint64_t m1 = (1ull << p.b1) - 1, m2mask = (1ull << p.b2) - 1, md = (1ull << p.decay) - 1

/* The decay branch outside the loops: one loop with it, one without. */
#define HOISTED_LOOPS(BITLEN)                                                                  \
  if (p.decay > 0) {                                                                           \
    for (int64_t h = 0; h < n; h++) {                                                          \
      STEP_BODY(BITLEN, DECAY_STEP)                                                            \
    }                                                                                          \
  } else {                                                                                     \
    for (int64_t h = 0; h < n; h++) {                                                          \
      STEP_BODY(BITLEN, (void)md)                                                              \
    }                                                                                          \
  }

void generated(int64_t n, const int32_t *g, const int32_t *lat, const int32_t *mom, int32_t *lat2,
               int32_t *mom2, int32_t *w, params p) {
  MASKS;
  for (int64_t h = 0; h < n; h++) {
    STEP_BODY(bitlen_clz(nw), if (p.decay > 0) DECAY_STEP)
  }
}

void restricted(int64_t n, const int32_t *restrict g, const int32_t *restrict lat,
                const int32_t *restrict mom, int32_t *restrict lat2, int32_t *restrict mom2,
                int32_t *restrict w, params p) {
  MASKS;
  HOISTED_LOOPS(bitlen_clz(nw))
}

void vector(int64_t n, const int32_t *restrict g, const int32_t *restrict lat,
            const int32_t *restrict mom, int32_t *restrict lat2, int32_t *restrict mom2,
            int32_t *restrict w, params p) {
  MASKS;
  HOISTED_LOOPS(bitlen_float(nw))
}

typedef void (*step_fn)(int64_t, const int32_t *, const int32_t *, const int32_t *, int32_t *,
                        int32_t *, int32_t *, params);

/* CPU time of this thread: the machines this runs on are shared, and their wall time is noisy. */
static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
  const int64_t n = 784 * 512; /* the first layer of 784-512-10 */
  const int reps = 40;
  int32_t *in = malloc(3 * n * sizeof *in), *out = malloc(6 * n * sizeof *out);
  uint64_t s = 12345;
  for (int64_t i = 0; i < 3 * n; i++) {
    s = mix64(s + 1);
    in[i] = (int32_t)(s % (2 * LATENT_MAX + 1)) - LATENT_MAX;
  }
  const char *names[] = {"generated", "restrict", "vector"};
  step_fn fns[] = {generated, restricted, vector};
  for (int decay = 0; decay <= 20; decay += 20) {
    double best[3];
    params p = {mix64(7), 0, 1 << 12, 3, 6, decay, 9};
    for (int f = 0; f < 3; f++) {
      best[f] = 1e30;
      for (int rep = 0; rep < reps; rep++) {
        p.base = (int64_t)rep * n;
        double t0 = seconds();
        fns[f](n, in, in + n, in + 2 * n, out + (f ? 3 * n : 0), out + (f ? 4 * n : n),
               out + (f ? 5 * n : 2 * n), p);
        double t = seconds() - t0;
        if (t < best[f]) best[f] = t;
      }
      if (f && memcmp(out, out + 3 * n, 3 * n * sizeof *out) != 0) {
        printf("%s: DIFFERENT BITS from generated\n", names[f]);
        return 1;
      }
    }
    printf("decay_shift=%d:", decay);
    for (int f = 0; f < 3; f++)
      printf("  %s %.2f ns/synapse (%.2fx)", names[f], 1e9 * best[f] / n, best[0] / best[f]);
    printf("\n");
  }
  printf("bits: identical in every form\n");
  free(in);
  free(out);
  return 0;
}
