/* The context objective's SGD updates, compiled (wrapped by auxpretrain/pretraining/kernels.py).
 *
 * sgd_passes runs a training step's passes of word2vec's skip-gram with a shared noise pool
 * (auxpretrain/model/objectives.py, `context_windows`) on a block of table rows: the rows the
 * step touches, gathered once by the graph. Each pass is one SGD update computed from the rows
 * as the previous pass left them, exactly as the TensorFlow loop in
 * auxpretrain/pretraining/graph.py computes it: every sentence's scores, then every row's
 * summed delta. Here a row is read and written in place (a few nanoseconds) instead of through
 * TensorFlow's gather and scatter-add (~70 and ~200 ns a row of 128 floats), and the
 * products run on a sentence at a time, whose rows stay in the cache.
 *
 * `threads` POSIX threads claim a pass's sentences as they come (scores and deltas, each
 * sentence's deltas in a place of their own), then parts of the rows (r % 16), whose deltas
 * they add sentence after sentence, word after word: every row gets its deltas in the same
 * order whatever the number of threads, so the result does not depend on it. Scratch rows are
 * padded to a multiple of 8 floats, so any dimension works.
 *
 * rows_of numbers the distinct ids of a step (the rows to gather), ascending.
 *
 * context_passes_in_place runs the same passes on whole tables, in place: the TensorFlow op
 * (auxpretrain/pretraining/context_op.cc) calls it on its variables' memory, with no gather or
 * scatter. Compiled with -DCONTEXT_CORE_ONLY, this file is that core alone, without Python.
 *
 * The module uses only the Python C API (no NumPy headers): arrays come in as buffers.
 */
#ifdef CONTEXT_CORE_ONLY
#include <stddef.h>
typedef ptrdiff_t Py_ssize_t;
#else
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#include <pthread.h>
#define HAVE_THREADS 1
#else
#define HAVE_THREADS 0
#endif

#define ABI_VERSION 1
#define MAX_THREADS 64

typedef struct {
    const float *in_source, *out_source;  /* the rows as the step starts, copied into: */
    float *in_rows, *out_rows;   /* [Ui, dim], [Uo, dim]: the block, updated in place */
    Py_ssize_t in_count, out_count;       /* Ui, Uo */
    const int32_t *in_index;     /* [S, T]: each word's row in in_rows */
    const int32_t *out_index;    /* [S, P + T]: each noise word's then each word's row in out_rows */
    const int32_t *reach;        /* [S, T]: window reach of each word as a target, 0 at padding */
    Py_ssize_t sentences_per_pass, width, pool, dim;
    float scale;                 /* -learning rate x objective weight */
    float noise_per_use;         /* negatives per pair / pool */
} Problem;

typedef struct {
    const Problem *p;
    Py_ssize_t s;                /* the sentence, of the whole batch */
    float *in_delta, *out_delta; /* its deltas' place: [T, padded(dim)] and [P + T, padded(dim)] */
    float *scores;               /* [2, T, padded(P + T)] scratch: scores, weights */
    float *rows;                 /* [T + P + T, padded(dim)] scratch: a sentence's rows, copied */
    double loss, pairs;          /* out: its summed pair losses and its pairs */
    Py_ssize_t words;            /* out: its words */
} Work;

/* the number of words of sentence s (kept words are left-aligned, padding has reach 0) */
static Py_ssize_t words_of(const Problem *p, Py_ssize_t s) {
    const int32_t *reach = p->reach + s * p->width;
    Py_ssize_t n = 0;
    while (n < p->width && reach[n] > 0)
        n++;
    return n;
}

/* On x86-64 with GCC, the hot functions are compiled twice, for the baseline and for AVX2 with
 * FMA (x86-64-v3), and the loader picks the one the CPU runs (GNU ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* n rounded up to a multiple of 8: the scratch rows' floats, zero-padded */
static inline Py_ssize_t padded(Py_ssize_t n) { return (n + 7) / 8 * 8; }

/* Vectors of 8 floats (GCC and Clang vector extensions: one AVX register, two SSE ones). */
typedef float v8f __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

static inline __attribute__((always_inline)) float sum8(v8f v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* score[i * stride + j] = x_i . o_j for i < n, j < c (x, o: rows of D floats, D a multiple of 8) */
static inline __attribute__((always_inline)) void products(const float *x, const float *o, Py_ssize_t n, Py_ssize_t c,
                                                           Py_ssize_t D, float *score, Py_ssize_t stride) {
    Py_ssize_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const float *x0 = x + i * D, *x1 = x0 + D;
        Py_ssize_t j = 0;
        for (; j + 4 <= c; j += 4) {
            const float *o0 = o + j * D, *o1 = o0 + D, *o2 = o1 + D, *o3 = o2 + D;
            v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
            for (Py_ssize_t k = 0; k < D; k += 8) {
                v8f u = load8(x0 + k), v = load8(x1 + k), b0 = load8(o0 + k), b1 = load8(o1 + k),
                    b2 = load8(o2 + k), b3 = load8(o3 + k);
                a00 += u * b0; a01 += u * b1; a02 += u * b2; a03 += u * b3;
                a10 += v * b0; a11 += v * b1; a12 += v * b2; a13 += v * b3;
            }
            float *s0 = score + i * stride + j, *s1 = s0 + stride;
            s0[0] = sum8(a00); s0[1] = sum8(a01); s0[2] = sum8(a02); s0[3] = sum8(a03);
            s1[0] = sum8(a10); s1[1] = sum8(a11); s1[2] = sum8(a12); s1[3] = sum8(a13);
        }
        for (; j < c; j++) {
            const float *o0 = o + j * D;
            v8f a0 = {0}, a1 = {0};
            for (Py_ssize_t k = 0; k < D; k += 8) {
                v8f b = load8(o0 + k);
                a0 += load8(x0 + k) * b;
                a1 += load8(x1 + k) * b;
            }
            score[i * stride + j] = sum8(a0);
            score[(i + 1) * stride + j] = sum8(a1);
        }
    }
    for (; i < n; i++)
        for (Py_ssize_t j = 0; j < c; j++) {
            v8f a = {0};
            for (Py_ssize_t k = 0; k < D; k += 8)
                a += load8(x + i * D + k) * load8(o + j * D + k);
            score[i * stride + j] = sum8(a);
        }
}

/* out[r] = sum_q g[r * gr + q * gq] b[q] for r < rows, q < inner (b, out: rows of D floats):
 * with (gr, gq) = (c, 1) the input rows' deltas (g times the output rows), with (1, c) the
 * output rows' deltas (g transposed times the input rows) */
static inline __attribute__((always_inline)) void combine(const float *g, Py_ssize_t gr, Py_ssize_t gq, const float *b, Py_ssize_t rows,
                    Py_ssize_t inner, Py_ssize_t D, float *out) {
    Py_ssize_t r = 0;
    if (D % 32 == 0)  /* 2 rows x 32 floats a tile: 6 loads for 8 multiply-adds */
        for (; r + 2 <= rows; r += 2)
            for (Py_ssize_t k = 0; k < D; k += 32) {
                v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
                for (Py_ssize_t q = 0; q < inner; q++) {
                    const float *v = b + q * D + k;
                    v8f v0 = load8(v), v1 = load8(v + 8), v2 = load8(v + 16), v3 = load8(v + 24);
                    float g0 = g[r * gr + q * gq], g1 = g[(r + 1) * gr + q * gq];
                    a0 += g0 * v0; a1 += g0 * v1; a2 += g0 * v2; a3 += g0 * v3;
                    c0 += g1 * v0; c1 += g1 * v1; c2 += g1 * v2; c3 += g1 * v3;
                }
                float *o0 = out + r * D + k, *o1 = o0 + D;
                store8(o0, a0); store8(o0 + 8, a1); store8(o0 + 16, a2); store8(o0 + 24, a3);
                store8(o1, c0); store8(o1 + 8, c1); store8(o1 + 16, c2); store8(o1 + 24, c3);
            }
    for (; r + 4 <= rows; r += 4)
        for (Py_ssize_t k = 0; k < D; k += 8) {
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (Py_ssize_t q = 0; q < inner; q++) {
                v8f v = load8(b + q * D + k);
                const float *gg = g + r * gr + q * gq;
                a0 += gg[0] * v; a1 += gg[gr] * v; a2 += gg[2 * gr] * v; a3 += gg[3 * gr] * v;
            }
            store8(out + r * D + k, a0); store8(out + (r + 1) * D + k, a1);
            store8(out + (r + 2) * D + k, a2); store8(out + (r + 3) * D + k, a3);
        }
    for (; r < rows; r++)
        for (Py_ssize_t k = 0; k < D; k += 8) {
            v8f a = {0};
            for (Py_ssize_t q = 0; q < inner; q++)
                a += g[r * gr + q * gq] * load8(b + q * D + k);
            store8(out + r * D + k, a);
        }
}

typedef int32_t v8i __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8f splat8(float a) { return (v8f){a, a, a, a, a, a, a, a}; }

/* a where m is set, else b (m: all bits of a lane set or none, as comparisons give) */
static inline __attribute__((always_inline)) v8f select8(v8i m, v8f a, v8f b) {
    return (v8f)(((v8i)a & m) | ((v8i)b & ~m));
}

/* exp(t) for t <= 0 (Cephes' expf: relative error ~1e-7; 0 below -87) */
static inline __attribute__((always_inline)) v8f exp_nonpositive(v8f t) {
    v8i tiny = t < splat8(-87.0f);
    t = select8(tiny, splat8(-87.0f), t);
    v8f fx = t * splat8(1.44269504088896341f) + splat8(0.5f);
    v8i n = __builtin_convertvector(fx, v8i);                  /* truncated toward 0 */
    v8f nf = __builtin_convertvector(n, v8f);
    v8i above = nf > fx;                                        /* floor for negative fx */
    n += above;                                                 /* -1 where above */
    nf = __builtin_convertvector(n, v8f);
    v8f r = t - nf * splat8(0.693359375f) - nf * splat8(-2.12194440e-4f);
    v8f y = splat8(1.9875691500e-4f);
    y = y * r + splat8(1.3981999507e-3f);
    y = y * r + splat8(8.3334519073e-3f);
    y = y * r + splat8(4.1665795894e-2f);
    y = y * r + splat8(1.6666665459e-1f);
    y = y * r + splat8(5.0000001201e-1f);
    y = y * r * r + r + splat8(1.0f);
    v8f scale = (v8f)((n + 127) << 23);                         /* 2^n */
    return select8(tiny, splat8(0.0f), y * scale);
}

/* log(1 + a) for 0 <= a <= 1 (Cephes' logf on 1 + a: absolute error ~1e-7) */
static inline __attribute__((always_inline)) v8f log1p_unit(v8f a) {
    v8f u = splat8(1.0f) + a;
    v8i big = u > splat8(1.41421356237f);
    v8f x = select8(big, u * splat8(0.5f), u) - splat8(1.0f);
    v8f e = select8(big, splat8(1.0f), splat8(0.0f));
    v8f z = x * x;
    v8f y = splat8(7.0376836292e-2f);
    y = y * x - splat8(1.1514610310e-1f);
    y = y * x + splat8(1.1676998740e-1f);
    y = y * x - splat8(1.2420140846e-1f);
    y = y * x + splat8(1.4249322787e-1f);
    y = y * x - splat8(1.6668057665e-1f);
    y = y * x + splat8(2.0000714765e-1f);
    y = y * x - splat8(2.4999993993e-1f);
    y = y * x + splat8(3.3333331174e-1f);
    y = y * x * z + e * splat8(-2.12194440e-4f) - splat8(0.5f) * z;
    return x + y + e * splat8(0.693359375f);
}

/* A row of scores -> their steps, in place: a noise score s (j < pool) steps by
 * weight x scale x sigmoid(s) and loses weight x softplus(s), a real pair's by
 * weight x scale x (sigmoid(s) - 1) and loses weight x softplus(-s); weight 0 steps 0.
 * Returns the row's loss. `count` is a multiple of 8. */
static inline __attribute__((always_inline)) float steps(float *row, const float *weight, Py_ssize_t count,
                                                         Py_ssize_t pool, float scale) {
    v8f loss = splat8(0.0f), zero = splat8(0.0f), one = splat8(1.0f);
    for (Py_ssize_t j = 0; j < count; j += 8) {
        v8f s = load8(row + j), w = load8(weight + j);
        v8f index = {0, 1, 2, 3, 4, 5, 6, 7};
        v8i noise = index + splat8((float)j) < splat8((float)pool);
        v8i positive = s >= zero;
        v8f a = exp_nonpositive(select8(positive, -s, s));      /* exp(-|s|) */
        v8f inverse = one / (one + a);
        v8f probability = select8(positive, inverse, a * inverse);
        v8f relu = select8(noise, select8(positive, s, zero), select8(positive, zero, -s));
        loss += w * (relu + log1p_unit(a));
        v8f gradient = select8(noise, probability, probability - one);
        store8(row + j, w * splat8(scale) * gradient);
    }
    return sum8(loss);
}

/* a row of D floats, then zeros up to padded(D) */
static inline __attribute__((always_inline)) void copy_row(const float *from, float *to, Py_ssize_t D) {
    Py_ssize_t k = 0;
    for (; k + 8 <= D; k += 8)
        store8(to + k, load8(from + k));
    for (; k < D; k++)
        to[k] = from[k];
    for (; k < padded(D); k++)
        to[k] = 0.0f;
}

/* asks the cache for the rows of sentence s (if there is one) */
static inline __attribute__((always_inline)) void prefetch_rows(const Problem *p, Py_ssize_t s) {
#if defined(__GNUC__)
    if (s % p->sentences_per_pass == 0)
        return;  /* s starts the next pass (or there is none) */
    const Py_ssize_t T = p->width, P = p->pool, D = p->dim, n = words_of(p, s);
    const int32_t *ii = p->in_index + s * T, *oi = p->out_index + s * (P + T);
    for (Py_ssize_t i = 0; i < n; i++)
        for (Py_ssize_t k = 0; k < D; k += 16)
            __builtin_prefetch(p->in_rows + (Py_ssize_t)ii[i] * D + k);
    for (Py_ssize_t j = 0; j < P + n; j++)
        for (Py_ssize_t k = 0; k < D; k += 16)
            __builtin_prefetch(p->out_rows + (Py_ssize_t)oi[j] * D + k);
#else
    (void)p;
    (void)s;
#endif
}

/* Scores and deltas of sentence w->s, to w->in_delta and w->out_delta (rows of W =
 * padded(dim) floats). The rows are copied next to each other first (x: [n, W], o: [P + n, W]),
 * so that the products run on cached, contiguous rows. A sentence of fewer than 2 words has no
 * pair and writes no delta. */
HOT static void sentence_deltas(Work *w) {
    const Problem *p = w->p;
    const Py_ssize_t T = p->width, P = p->pool, D = p->dim, W = padded(D), C = P + T;
    float *x = w->rows, *o = w->rows + T * W, *din = w->in_delta, *dout = w->out_delta;
    const Py_ssize_t s = w->s, n = words_of(p, s), c = P + n;
    w->words = n;
    if (n < 2)
        return;  /* no pair */
    const int32_t *ii = p->in_index + s * T, *oi = p->out_index + s * C, *reach = p->reach + s * T;
    for (Py_ssize_t i = 0; i < n; i++)
        copy_row(p->in_rows + (Py_ssize_t)ii[i] * D, x + i * W, D);
    for (Py_ssize_t j = 0; j < c; j++)
        copy_row(p->out_rows + (Py_ssize_t)oi[j] * D, o + j * W, D);
    prefetch_rows(p, s + 1);  /* likely this thread's next: its rows load while this one runs */
    /* rows of scores and of their weights, 8-aligned: padded with weight 0 */
    Py_ssize_t stride = padded(c);
    float *score = w->scores, *weight = w->scores + T * stride;
    products(x, o, n, c, W, score, stride);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* the real pairs of input i: targets j != i with |i - j| <= reach[j] */
        float *wrow = weight + i * stride;
        int uses = 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            Py_ssize_t distance = i > j ? i - j : j - i;
            int real = distance > 0 && distance <= reach[j];
            wrow[P + j] = real ? 1.0f : 0.0f;
            uses += real;
        }
        float noise_weight = (float)uses * p->noise_per_use;
        for (Py_ssize_t j = 0; j < P; j++)
            wrow[j] = noise_weight;
        for (Py_ssize_t j = c; j < stride; j++) {
            wrow[j] = 0.0f;
            score[i * stride + j] = 0.0f;
        }
        w->pairs += uses;
        w->loss += steps(score + i * stride, wrow, stride, P, p->scale);
    }
    /* d in_i = sum_j step_ij out_j; d out_j = sum_i step_ij in_i */
    combine(score, stride, 1, o, n, c, W, din);
    combine(score, 1, stride, x, c, n, W, dout);
}

static inline __attribute__((always_inline)) void add_row(const float *delta, float *row, Py_ssize_t D) {
    Py_ssize_t k = 0;
    for (; k + 8 <= D; k += 8)
        store8(row + k, load8(row + k) + load8(delta + k));
    for (; k < D; k++)
        row[k] += delta[k];
}

/* the rows are added in this many parts (a power of 2), claimed by the threads as they come */
#define ROW_PARTS 16

/* Adds the deltas of a pass's sentences to the rows r of the block with r % ROW_PARTS == part,
 * sentence after sentence, word after word: each row gets its deltas in the same order
 * whichever thread adds them. words[s]: the words of sentence s of the pass. */
HOT static void add_deltas(const Problem *p, Py_ssize_t pass, const Py_ssize_t *words, const float *in_delta,
                           const float *out_delta, int part) {
    const Py_ssize_t B = p->sentences_per_pass, T = p->width, P = p->pool, D = p->dim, W = padded(D), C = P + T;
    for (Py_ssize_t s = 0; s < B; s++) {
        Py_ssize_t n = words[s];
        if (n < 2)
            continue;
        const float *din = in_delta + s * T * W;
        const float *dout = out_delta + s * C * W;
        const int32_t *ii = p->in_index + (pass * B + s) * T, *oi = p->out_index + (pass * B + s) * C;
        for (Py_ssize_t i = 0; i < n; i++)
            if ((ii[i] & (ROW_PARTS - 1)) == part)
                add_row(din + i * W, p->in_rows + (Py_ssize_t)ii[i] * D, D);
        for (Py_ssize_t j = 0; j < P + n; j++)
            if ((oi[j] & (ROW_PARTS - 1)) == part)
                add_row(dout + j * W, p->out_rows + (Py_ssize_t)oi[j] * D, D);
    }
}

typedef struct {
    const Problem *p;
    Py_ssize_t passes;
    int threads;
    float *in_delta, *out_delta;  /* a pass's: [B, T, padded(dim)], [B, P + T, padded(dim)] */
    double *loss, *pairs;         /* per sentence of a pass */
    Py_ssize_t *words;            /* per sentence of a pass: its words */
    float *scores, *rows;         /* scratch, per thread */
    double total_loss, total_pairs;
    Py_ssize_t *next;             /* per pass: the next sentence, then the next row part, to claim */
#if HAVE_THREADS
    pthread_mutex_t lock;
    pthread_cond_t turn;
    int waiting, go;
    long generation;
#endif
} Run;

/* a thread that waits at a barrier checks this many times before it sleeps: most waits are a
 * few microseconds (the other thread finishing its last sentence), shorter than a sleep and a
 * wake-up */
#define SPINS 4000

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* every thread waits here until all have arrived */
static void barrier(Run *r) {
#if HAVE_THREADS && defined(__GNUC__)
    if (r->threads <= 1)
        return;
    long generation = __atomic_load_n(&r->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&r->waiting, 1, __ATOMIC_ACQ_REL) == r->threads) {
        __atomic_store_n(&r->waiting, 0, __ATOMIC_RELAXED);
        pthread_mutex_lock(&r->lock);
        __atomic_store_n(&r->generation, generation + 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&r->turn);
        pthread_mutex_unlock(&r->lock);
        return;
    }
    for (int spin = 0; spin < SPINS; spin++) {
        if (__atomic_load_n(&r->generation, __ATOMIC_ACQUIRE) != generation)
            return;
        relax();
    }
    pthread_mutex_lock(&r->lock);
    while (__atomic_load_n(&r->generation, __ATOMIC_ACQUIRE) == generation)
        pthread_cond_wait(&r->turn, &r->lock);
    pthread_mutex_unlock(&r->lock);
#elif HAVE_THREADS
    if (r->threads <= 1)
        return;
    pthread_mutex_lock(&r->lock);
    long generation = r->generation;
    if (++r->waiting == r->threads) {
        r->waiting = 0;
        r->generation++;
        pthread_cond_broadcast(&r->turn);
    } else {
        while (generation == r->generation)
            pthread_cond_wait(&r->turn, &r->lock);
    }
    pthread_mutex_unlock(&r->lock);
#else
    (void)r;
#endif
}

typedef struct {
    Run *run;
    int part;
} Part;

/* *counter, then counter + 1: threads claim sentences and row parts as they come, so that one
 * that the system pauses does not hold the others up (the results do not depend on who does
 * what: each sentence's deltas have their own place, each row its own order) */
static Py_ssize_t claim(Run *r, Py_ssize_t *counter) {
#if HAVE_THREADS && defined(__GNUC__)
    (void)r;
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
#elif HAVE_THREADS
    pthread_mutex_lock(&r->lock);
    Py_ssize_t k = (*counter)++;
    pthread_mutex_unlock(&r->lock);
    return k;
#else
    (void)r;
    return (*counter)++;
#endif
}

/* thread `part` of the run: per pass, sentences' deltas as it claims them, then parts of the rows */
static void *run_part(void *arg) {
    Part *me = arg;
    Run *r = me->run;
#if HAVE_THREADS
    if (me->part > 0) {  /* wait until the number of threads is known */
        pthread_mutex_lock(&r->lock);
        while (!r->go)
            pthread_cond_wait(&r->turn, &r->lock);
        pthread_mutex_unlock(&r->lock);
    }
#endif
    const Problem *p = r->p;
    const Py_ssize_t B = p->sentences_per_pass, T = p->width, C = p->pool + p->width, D = p->dim, W = padded(D);
    /* the copy of the rows, a share each */
    const float *sources[2] = {p->in_source, p->out_source};
    float *targets[2] = {p->in_rows, p->out_rows};
    Py_ssize_t counts[2] = {p->in_count, p->out_count};
    for (int k = 0; k < 2; k++) {
        Py_ssize_t first = counts[k] * me->part / r->threads, last = counts[k] * (me->part + 1) / r->threads;
        if (last > first && sources[k] != targets[k])
            memcpy(targets[k] + first * D, sources[k] + first * D, sizeof(float) * (size_t)((last - first) * D));
    }
    barrier(r);
    for (Py_ssize_t pass = 0; pass < r->passes; pass++) {
        Py_ssize_t s;
        while ((s = claim(r, &r->next[2 * pass])) < B) {
            Work w = {p, pass * B + s, r->in_delta + s * T * W, r->out_delta + s * C * W,
                      r->scores + me->part * 2 * T * padded(C), r->rows + me->part * (T + C) * W, 0, 0, 0};
            sentence_deltas(&w);
            r->loss[s] = w.loss;
            r->pairs[s] = w.pairs;
            r->words[s] = w.words;
        }
        barrier(r);
        Py_ssize_t part;
        while ((part = claim(r, &r->next[2 * pass + 1])) < ROW_PARTS)
            add_deltas(p, pass, r->words, r->in_delta, r->out_delta, (int)part);
        if (me->part == 0)
            for (Py_ssize_t s = 0; s < B; s++) {
                r->total_loss += r->loss[s];
                r->total_pairs += r->pairs[s];
            }
        barrier(r);  /* the next pass reads what this one wrote */
    }
    return NULL;
}

/* Scratch areas kept from call to call: fresh memory of this size costs page faults on every
 * call (freed blocks above glibc's mmap threshold go back to the system; TensorFlow's generator
 * dataset sets it to 128 KiB). A call that finds one in use allocates its own. */
typedef struct {
#if HAVE_THREADS
    pthread_mutex_t lock;
#endif
    void *area;
    size_t size;
} Kept;

#if HAVE_THREADS
#define KEPT_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0}
#else
#define KEPT_INIT {NULL, 0}
#endif
static Kept kept_run = KEPT_INIT, kept_index = KEPT_INIT;

static void *take_scratch(Kept *kept, size_t size, int *owned) {
    *owned = 0;
#if HAVE_THREADS
    if (pthread_mutex_trylock(&kept->lock) == 0) {
#endif
        if (kept->size < size) {
            free(kept->area);
            kept->area = malloc(size);
            kept->size = kept->area ? size : 0;
        }
        if (kept->area)
            return kept->area;
#if HAVE_THREADS
        pthread_mutex_unlock(&kept->lock);
    }
#endif
    *owned = 1;
    return malloc(size);
}

static void give_scratch(Kept *kept, void *area, int owned) {
    if (owned) {
        free(area);
        return;
    }
#if HAVE_THREADS
    pthread_mutex_unlock(&kept->lock);
#else
    (void)kept;
#endif
}

/* the passes on `threads` threads (fewer if they cannot be started); -1 on a failed allocation
 * (nothing written then) */
static int run_passes(const Problem *p, Py_ssize_t passes, int threads, double *loss, double *pairs) {
    const Py_ssize_t B = p->sentences_per_pass, T = p->width, C = p->pool + p->width, W = padded(p->dim);
    if (threads > B)
        threads = B > 0 ? (int)B : 1;
    Run r = {p, passes, threads};
    /* in floats (a double or a Py_ssize_t takes 2; every part starts 8-float aligned) */
    size_t sizes[7] = {(size_t)(B * T * W), (size_t)(B * C * W), (size_t)(threads * 2 * T * padded(C)),
                       (size_t)(threads * (T + C) * W), (size_t)(4 * B), (size_t)(4 * passes), (size_t)(2 * B)};
    size_t total = 0;
    for (int k = 0; k < 7; k++)
        total += (sizes[k] + 7) / 8 * 8;
    int owned;
    float *area = take_scratch(&kept_run, sizeof(float) * (total + 8), &owned);
    if (area == NULL)
        return -1;
    float *at = area;
    float **parts_of[4] = {&r.in_delta, &r.out_delta, &r.scores, &r.rows};
    for (int k = 0; k < 4; k++) {
        *parts_of[k] = at;
        at += (sizes[k] + 7) / 8 * 8;
    }
    r.loss = (double *)at;
    r.pairs = r.loss + B;
    at += (sizes[4] + 7) / 8 * 8;
    r.next = (Py_ssize_t *)at;
    memset(r.next, 0, sizeof(Py_ssize_t) * (size_t)(2 * passes));
    at += (sizes[5] + 7) / 8 * 8;
    r.words = (Py_ssize_t *)at;
    Part parts[MAX_THREADS];
    parts[0] = (Part){&r, 0};
#if HAVE_THREADS
    pthread_t tid[MAX_THREADS];
    int started = 1;
    if (threads > 1) {
        pthread_mutex_init(&r.lock, NULL);
        pthread_cond_init(&r.turn, NULL);
        for (; started < threads; started++) {
            parts[started] = (Part){&r, started};
            if (pthread_create(&tid[started], NULL, run_part, &parts[started]) != 0)
                break;  /* the work is split over the threads that started */
        }
        pthread_mutex_lock(&r.lock);
        r.threads = started;
        r.go = 1;
        pthread_cond_broadcast(&r.turn);
        pthread_mutex_unlock(&r.lock);
    }
    run_part(&parts[0]);
    if (threads > 1) {
        for (int t = 1; t < started; t++)
            pthread_join(tid[t], NULL);
        pthread_mutex_destroy(&r.lock);
        pthread_cond_destroy(&r.turn);
    }
#else
    run_part(&parts[0]);
#endif
    *loss = r.total_loss;
    *pairs = r.total_pairs;
    give_scratch(&kept_run, area, owned);
    return 0;
}

/* the first of count ids outside [0, limit), or -1: a bad id would read or write outside a
 * block or a table */
static Py_ssize_t first_outside(const int32_t *ids, Py_ssize_t count, Py_ssize_t limit) {
    for (Py_ssize_t k = 0; k < count; k++)
        if (ids[k] < 0 || ids[k] >= limit)
            return k;
    return -1;
}

/* The passes on whole tables, in place: in_table float32 [in_count, dim], out_table [out_count,
 * dim]; ids and reach int32 [S, T] (S = passes x sentences a pass), noise int32 [S, P]; the
 * rows are the ids themselves. -> 0; -1 on a failed allocation, -2 for an id outside its table
 * (nothing written then). */
int context_passes_in_place(float *in_table, Py_ssize_t in_count, float *out_table, Py_ssize_t out_count,
                            Py_ssize_t dim, const int32_t *ids, const int32_t *reach, const int32_t *noise,
                            Py_ssize_t passes, Py_ssize_t S, Py_ssize_t T, Py_ssize_t P, float scale, int negatives,
                            int threads, double *loss, double *pairs) {
    *loss = *pairs = 0;
    if (first_outside(ids, S * T, in_count < out_count ? in_count : out_count) >= 0 ||
        first_outside(noise, S * P, out_count) >= 0)
        return -2;
    if (S == 0 || T == 0)
        return 0;
    /* each sentence's output rows: its noise words, then its words */
    int owned;
    int32_t *out_index = take_scratch(&kept_index, sizeof(int32_t) * (size_t)(S * (P + T)), &owned);
    if (out_index == NULL)
        return -1;
    for (Py_ssize_t s = 0; s < S; s++) {
        memcpy(out_index + s * (P + T), noise + s * P, sizeof(int32_t) * (size_t)P);
        memcpy(out_index + s * (P + T) + P, ids + s * T, sizeof(int32_t) * (size_t)T);
    }
    Problem p = {in_table, out_table, in_table, out_table, in_count, out_count, ids, out_index, reach,
                 S / passes, T, P, dim, scale, P > 0 ? (float)negatives / (float)P : 0.0f};
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    int status = run_passes(&p, passes, threads < 1 ? 1 : threads, loss, pairs);
    give_scratch(&kept_index, out_index, owned);
    return status;
}

#ifndef CONTEXT_CORE_ONLY
static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *format, int ndim,
                      const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    /* "f" / "i": float32 / int32 (a buffer may spell them with a byte-order prefix) */
    const char *f = view->format[0] == '<' || view->format[0] == '=' || view->format[0] == '@'
                        ? view->format + 1 : view->format;
    if (view->itemsize != 4 || strcmp(f, format) != 0 || view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-d%s buffer of %s", name, ndim,
                     writable ? " writable" : "", format[0] == 'f' ? "float32" : "int32");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(sgd_passes_doc,
"sgd_passes(in_rows, out_rows, in_source, out_source, in_index, out_index, reach, passes,\n"
"           scale, negatives, threads) -> (loss, pairs)\n\n"
"The context objective's `passes` SGD updates on a block of rows.\n"
"in_rows float32 [Ui, dim], out_rows float32 [Uo, dim] (writable): the embedding's and the\n"
"output table's rows the step touches, copied from in_source and out_source (the same\n"
"shapes; the same buffers: updated in place). in_index int32 [S, T]: each kept word's row in\n"
"in_rows; out_index int32 [S, P + T]: each noise word's, then each word's row in out_rows;\n"
"reach int32 [S, T]: each word's window reach as a target (0 at padding). S = passes x\n"
"sentences a pass. scale: -learning rate x weight; negatives: noise words a pair.\n"
"-> (the summed pair losses as each update saw them, the number of pairs).");

static PyObject *sgd_passes(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    Py_ssize_t passes;
    float scale;
    int negatives, threads;
    if (!PyArg_ParseTuple(args, "OOOOOOOnfii", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &objs[6], &passes, &scale, &negatives, &threads))
        return NULL;
    static const char *names[7] = {"in_rows", "out_rows", "in_source", "out_source", "in_index", "out_index",
                                   "reach"};
    Py_buffer views[7];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++)
        if (get_buffer(objs[got], &views[got], got < 2, got < 4 ? "f" : "i", 2, names[got]) < 0)
            goto done;
    Py_ssize_t dim = views[0].shape[1], S = views[4].shape[0], T = views[4].shape[1];
    Py_ssize_t P = views[5].shape[1] - T;
    if (views[1].shape[1] != dim || views[5].shape[0] != S || P < 0 || views[6].shape[0] != S ||
        views[6].shape[1] != T || passes < 1 || S % passes != 0 || threads < 1 || dim < 1 ||
        views[2].shape[0] != views[0].shape[0] || views[2].shape[1] != dim ||
        views[3].shape[0] != views[1].shape[0] || views[3].shape[1] != dim) {
        PyErr_SetString(PyExc_ValueError, "sgd_passes: inconsistent shapes");
        goto done;
    }
    /* every index must name a row of its block: a bad one would write outside it */
    const int32_t *ii = views[4].buf, *oi = views[5].buf;
    if (first_outside(ii, S * T, views[0].shape[0]) >= 0) {
        PyErr_SetString(PyExc_ValueError, "sgd_passes: in_index outside in_rows");
        goto done;
    }
    if (first_outside(oi, S * (P + T), views[1].shape[0]) >= 0) {
        PyErr_SetString(PyExc_ValueError, "sgd_passes: out_index outside out_rows");
        goto done;
    }
    Problem p = {views[2].buf, views[3].buf, views[0].buf, views[1].buf, views[0].shape[0], views[1].shape[0],
                 ii, oi, views[6].buf, S / passes, T, P, dim, scale, P > 0 ? (float)negatives / (float)P : 0.0f};
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    double loss = 0, pairs = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = run_passes(&p, passes, threads, &loss, &pairs);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_BuildValue("(dd)", loss, pairs);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&views[k]);
    return result;
}

PyDoc_STRVAR(rows_of_doc,
"rows_of(ids, vocab_size, rows, index) -> count\n\n"
"The distinct ids of int32 ids (1-d, each in [0, vocab_size)), ascending, into\n"
"rows[:count], and each id's position among them into index (int32, ids' size).");

static PyObject *rows_of(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    Py_ssize_t vocab;
    if (!PyArg_ParseTuple(args, "OnOO", &objs[0], &vocab, &objs[1], &objs[2]))
        return NULL;
    Py_buffer views[3];
    int got = 0;
    PyObject *result = NULL;
    static const char *names[3] = {"ids", "rows", "index"};
    for (; got < 3; got++)
        if (get_buffer(objs[got], &views[got], got > 0, "i", 1, names[got]) < 0)
            goto done;
    Py_ssize_t count = views[0].len / 4;
    if (views[2].len / 4 != count || vocab < 1) {
        PyErr_SetString(PyExc_ValueError, "rows_of: index must have the size of ids");
        goto done;
    }
    const int32_t *ids = views[0].buf;
    Py_ssize_t bad = first_outside(ids, count, vocab);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "rows_of: id %d outside [0, %zd)", (int)ids[bad], vocab);
        goto done;
    }
    int32_t *slot = calloc((size_t)vocab, sizeof(int32_t));
    if (slot == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t *rows = views[1].buf, *index = views[2].buf;
    Py_ssize_t room = views[1].len / 4, distinct = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++)
        slot[ids[k]] = 1;
    for (Py_ssize_t v = 0; v < vocab; v++)
        if (slot[v]) {
            if (distinct < room)
                rows[distinct] = (int32_t)v;
            slot[v] = (int32_t)distinct++;
        }
    if (distinct <= room)
        for (Py_ssize_t k = 0; k < count; k++)
            index[k] = slot[ids[k]];
    Py_END_ALLOW_THREADS
    free(slot);
    if (distinct > room)
        PyErr_SetString(PyExc_ValueError, "rows_of: rows is too small");
    else
        result = PyLong_FromSsize_t(distinct);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&views[k]);
    return result;
}

static PyMethodDef module_methods[] = {
    {"sgd_passes", sgd_passes, METH_VARARGS, sgd_passes_doc},
    {"rows_of", rows_of, METH_VARARGS, rows_of_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ccontext",
    "The context objective's SGD updates on a block of rows (see auxpretrain/pretraining/kernels.py).",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit_ccontext(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "THREADS", HAVE_THREADS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
#endif  /* CONTEXT_CORE_ONLY */
