/*
 * The pull's read-ahead: a thread that requests and parses the next
 * /_changes page while the previous one is being applied, so the network,
 * the master's serialisation and the JSON parsing overlap with the slave's
 * writing. The next request continues from the previous answer's cursor,
 * read from the parsed answer (members may come in any order, and a row
 * may have columns named cursor or more), and only from an answer that
 * says it continues from the cursor asked for.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "sync/internal.h"

#define DEPTH 2 /* answers ready ahead of the applier */

typedef struct answer {
    verso_buf body; /* freed once parsed */
    verso_json *doc;
    int status;
    int rc;
} answer;

struct verso__sync_fetch {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    verso__sync_http *http;
    char *suffix;    /* query after since=N */
    int64_t since;   /* of the next request */
    int64_t horizon; /* reported by the first answer, sent with the next ones; -1 before */
    int64_t target;  /* stop after an answer ending at or past it */
    answer ring[DEPTH];
    int first, count;
    bool ended;
    atomic_int stop;
    verso__sync_cancel cancel; /* stop, for the requests of the thread */
};

/* The answer continues from since: its cursor and more. */
static bool continues(const verso_json *doc, int64_t since, int64_t *cursor, bool *more)
{
    const cJSON *root = verso_json_root(doc);
    int64_t from;

    if (verso__sync_json_get_i64(&from, root, "since") < 0 || from != since ||
        verso__sync_json_get_i64(cursor, root, "cursor") < 0 || *cursor < since)
        return false;
    *more = verso__sync_json_get_bool(root, "more");
    return true;
}

/* Fetches and parses one answer into a; true when another request should follow. */
static bool fetch_one(verso__sync_fetch *f, answer *a, int64_t since)
{
    verso_buf path = VERSO_BUF_INIT;
    int64_t cursor = 0;
    bool more = false;

    a->rc = verso_buf_printf(&path, "/_changes?since=%lld%s", (long long)since, f->suffix);
    if (a->rc == 0 && f->horizon >= 0) /* this read began under that horizon */
        a->rc = verso_buf_printf(&path, "&horizon=%lld", (long long)f->horizon);
    if (a->rc == 0)
        a->rc = verso__sync_http_get(&a->body, &a->status, f->http, path.data, &f->cancel);
    verso_buf_free(&path);
    if (a->rc < 0 || a->status != 200 ||
        verso_json_parse(&a->doc, a->body.data ? a->body.data : "", a->body.len, 0, NULL, 0) < 0)
        return false; /* the applier parses the body again and says what is wrong */
    verso_buf_free(&a->body);
    if (!continues(a->doc, since, &cursor, &more))
        return false;
    pthread_mutex_lock(&f->lock);
    f->since = cursor;
    if (f->horizon < 0 &&
        verso__sync_json_get_i64(&f->horizon, verso_json_root(a->doc), "horizon") < 0)
        f->horizon = -1;
    pthread_mutex_unlock(&f->lock);
    return more || cursor < f->target;
}

static void *run(void *arg)
{
    verso__sync_fetch *f = arg;
    bool go = true;

    while (go) {
        answer a = {VERSO_BUF_INIT, NULL, 0, 0};
        int64_t since;
        bool stopping;
        pthread_mutex_lock(&f->lock);
        while (f->count == DEPTH && !atomic_load(&f->stop))
            pthread_cond_wait(&f->cond, &f->lock);
        since = f->since;
        stopping = atomic_load(&f->stop);
        pthread_mutex_unlock(&f->lock);
        if (stopping)
            break;
        go = fetch_one(f, &a, since);
        pthread_mutex_lock(&f->lock);
        f->ring[(f->first + f->count++) % DEPTH] = a;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_lock(&f->lock);
    f->ended = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

int verso__sync_fetch_start(verso__sync_fetch **out, verso__sync_http *http, const char *suffix,
                            int64_t since, int64_t target)
{
    verso__sync_fetch *f = verso__calloc(1, sizeof(*f));

    *out = NULL;
    if (!f || !(f->suffix = verso__strdup(suffix))) {
        verso__free(f);
        return VERSO_ENOMEM;
    }
    f->http = http;
    f->cancel.flag = &f->stop;
    f->since = since;
    f->horizon = -1;
    f->target = target;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (pthread_create(&f->thread, NULL, run, f) != 0) {
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        verso__free(f->suffix);
        verso__free(f);
        return VERSO_ENOMEM;
    }
    *out = f;
    return 0;
}

int verso__sync_fetch_next(verso_buf *body, verso_json **doc, int *status, verso__sync_fetch *f,
                           const verso__sync_cancel *stop)
{
    int rc = 0;

    pthread_mutex_lock(&f->lock);
    while (f->count == 0 && !f->ended && !verso__sync_cancelled(stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    if (f->count > 0) {
        answer *a = &f->ring[f->first];
        verso_buf_free(body);
        *body = a->body;
        *doc = a->doc;
        *status = a->status;
        rc = a->rc;
        memset(a, 0, sizeof(*a));
        f->first = (f->first + 1) % DEPTH;
        f->count--;
        pthread_cond_broadcast(&f->cond);
    } else {
        rc = verso__sync_cancelled(stop) ? VERSO_EINTERRUPTED : VERSO_ESTATE;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void verso__sync_fetch_stop(verso__sync_fetch *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    atomic_store(&f->stop, 1);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->count; i++) {
        verso_buf_free(&f->ring[(f->first + i) % DEPTH].body);
        verso_json_free(f->ring[(f->first + i) % DEPTH].doc);
    }
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    verso__free(f->suffix);
    verso__free(f);
}
