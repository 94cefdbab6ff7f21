/*
 * Rounds for the benchmarks: each figure is measured once per round, a
 * ratio is formed inside each round (subject and baseline measured next to
 * each other), and the rounds are summarised as median, min and max. A
 * shared 2-core machine moves single measurements by up to 2x; the spread
 * says how far a figure can be trusted.
 */
#ifndef VERSO_BENCH_ROUNDS_H
#define VERSO_BENCH_ROUNDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_ROUNDS     64
#define BENCH_DEFAULT_ROUNDS 5

/* One figure, one value per round. */
typedef struct bench_series {
    double v[BENCH_MAX_ROUNDS];
    int n;
} bench_series;

static inline void bench_add(bench_series *s, double x)
{
    if (s->n < BENCH_MAX_ROUNDS)
        s->v[s->n++] = x;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median, min and max of a series (zeros when it is empty). */
static inline void bench_spread(const bench_series *s, double *med, double *lo, double *hi)
{
    double v[BENCH_MAX_ROUNDS];
    int n = s->n;

    *med = *lo = *hi = 0;
    if (n == 0)
        return;
    memcpy(v, s->v, (size_t)n * sizeof(v[0]));
    qsort(v, (size_t)n, sizeof(v[0]), bench_cmp_double);
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *lo = v[0];
    *hi = v[n - 1];
}

static inline double bench_median(const bench_series *s)
{
    double med, lo, hi;

    bench_spread(s, &med, &lo, &hi);
    return med;
}

/* Per round: subject / baseline of that same round. */
static inline void bench_ratio(bench_series *out, const bench_series *subject,
                               const bench_series *baseline)
{
    out->n = 0;
    for (int i = 0; i < subject->n && i < baseline->n; i++)
        bench_add(out, baseline->v[i] > 0 ? subject->v[i] / baseline->v[i] : 0);
}

/* Prints `name M`, `name_median M`, `name_min m`, `name_max x`: the bare
 * name stays the median, as single-pass versions of the programs printed. */
static inline void bench_print_spread(const char *name, const bench_series *s, int decimals)
{
    double med, lo, hi;

    bench_spread(s, &med, &lo, &hi);
    printf("%s %.*f\n%s_median %.*f\n", name, decimals, med, name, decimals, med);
    printf("%s_min %.*f\n%s_max %.*f\n", name, decimals, lo, name, decimals, hi);
}

/* ROUNDS from an argument, else VERSO_BENCH_ROUNDS, else the default;
 * -1 when the value given is not 1..BENCH_MAX_ROUNDS. */
static inline int bench_rounds(const char *arg)
{
    const char *s = arg ? arg : getenv("VERSO_BENCH_ROUNDS");
    char *end;
    long n;

    if (!s || !s[0])
        return BENCH_DEFAULT_ROUNDS;
    n = strtol(s, &end, 10);
    return *end == '\0' && n >= 1 && n <= BENCH_MAX_ROUNDS ? (int)n : -1;
}

#endif
