/*
 * The --all slave's events link: a WebSocket on the server's /_databases
 * (subprotocol verso-databases.1), through wsc.c, on a thread of its own.
 * What it hears becomes the table of databases (all.c): the full list at
 * each connection reconciles it, each announcement marks one database due,
 * each deletion settles one.
 *
 * The link's life is verso__all_link, moved by link_move() only; each
 * state but WAITING has a deadline (connecting and the first list: the
 * connect timeout; live: silence). Every end of an attempt arrives as
 * wsc's one on_ended(), and link_end() is the one way to WAITING.
 *
 * A message is checked whole before any of it is applied: a malformed
 * one changes nothing, ends the link and is said in last_error.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sync/all.h"

#define TO(state)    (1u << (state))
#define IGNORED_SAID 10 /* names refused in one message that are told one by one */

static const struct {
    const char *name;
    unsigned next;
    const char *timeout;
    const char *closed;
} steps[] = {
    [VERSO__ALL_WAITING] = {"waiting", TO(VERSO__ALL_CONNECTING), NULL, NULL},
    [VERSO__ALL_CONNECTING] = {"connecting", TO(VERSO__ALL_LISTING) | TO(VERSO__ALL_WAITING),
                               "timed out connecting to the server", "cannot connect"},
    [VERSO__ALL_LISTING] = {"listing", TO(VERSO__ALL_LIVE) | TO(VERSO__ALL_WAITING),
                            "timed out waiting for the server's list of databases",
                            "connection closed before the list of databases"},
    [VERSO__ALL_LIVE] = {"live", TO(VERSO__ALL_WAITING), "timed out: nothing heard from the server",
                         "connection closed"},
};

static void link_move(verso_sync_all *a, verso__all_link to)
{
    bool ok = steps[a->link].next & TO(to);

    assert(ok);
    (void)ok;
    a->link = to;
    a->step_ms = verso__sync_mono_ms();
}

/* ---- reading the server's messages ---- */

typedef struct entry {
    const char *name;
    size_t len;
    bool valid; /* the name passes the rule: then identity and head are read */
    const char *identity;
    int64_t head;
} entry;

static bool identity_ok(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++)
        if (!strchr("0123456789abcdefABCDEF-", s[i]))
            return false;
    return true;
}

static int refuse(verso_sync_all *a, const char *fmt, const char *arg)
{
    char cut[96];

    snprintf(cut, sizeof(cut), "%.95s", arg);
    snprintf(a->link_error, sizeof(a->link_error), fmt, cut);
    return VERSO_EPROTO;
}

static int read_entry(verso_sync_all *a, entry *e, const cJSON *o)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
    char shown[96];

    memset(e, 0, sizeof(*e));
    if (!cJSON_IsString(n) || !n->valuestring)
        return refuse(a, "a database without a name in the server's message%s", "");
    e->name = n->valuestring;
    e->len = verso_json_strlen(n);
    e->valid = verso__all_name_ok(e->name, e->len) && strlen(e->name) == e->len;
    if (!e->valid)
        return 0;
    e->identity = verso__sync_json_get_str(o, "identity");
    if (!identity_ok(e->identity) || verso__sync_json_get_i64(&e->head, o, "head") < 0 ||
        e->head < 0) {
        verso__all_printable(shown, sizeof(shown), e->name, e->len);
        return refuse(a, "database %s: no identity or head in the server's message", shown);
    }
    return 0;
}

/* A refused name: counted, and told (the first few of a message). */
static void ignored(verso_sync_all *a, const entry *e, int64_t *said)
{
    char shown[280];

    a->st.ignored++;
    if ((*said)++ >= IGNORED_SAID)
        return;
    verso__all_printable(shown, sizeof(shown), e->name, e->len);
    verso__all_queue(a, VERSO_ALL_IGNORED, shown,
                     "database names are 1 to 64 letters, digits, '_' or '-', the first a letter "
                     "or digit: ignored",
                     0, 0, 0);
}

static void said_more(verso_sync_all *a, int64_t said)
{
    char more[64];

    if (said <= IGNORED_SAID)
        return;
    snprintf(more, sizeof(more), "and %lld more names like these",
             (long long)(said - IGNORED_SAID));
    verso__all_queue(a, VERSO_ALL_IGNORED, "...", more, 0, 0, 0);
}

static int read_list(verso_sync_all *a, const cJSON *list, entry **out, int *n)
{
    const cJSON *o;
    int i = 0, rc = 0;

    *n = cJSON_GetArraySize(list);
    *out = NULL;
    if (!cJSON_IsArray(list))
        return refuse(a, "the server's list of databases is not an array%s", "");
    if (*n > VERSO__ALL_LIST_MAX)
        return refuse(a,
                      "the server lists more than "
                      "100000"
                      " databases%s",
                      "");
    if (*n && !(*out = verso__calloc((size_t)*n, sizeof(**out))))
        return VERSO_ENOMEM;
    cJSON_ArrayForEach(o, list)
    {
        if ((rc = read_entry(a, &(*out)[i++], o)) < 0)
            break;
    }
    return rc;
}

/* Everything the list does not name is gone (from the end: settling may drop the record). */
static void reconcile(verso_sync_all *a)
{
    for (size_t i = a->nrecs; i-- > 0;) {
        verso__all_rec *r = a->recs[i];
        if (!r->seen && (r->listed || r->local || r->temp))
            verso__all_gone(a, r);
    }
}

static void listed(verso_sync_all *a, int64_t n)
{
    if (a->link != VERSO__ALL_LISTING)
        return;
    link_move(a, VERSO__ALL_LIVE);
    a->retry_ms = 0;
    a->lives++;
    a->st.connected = true;
    a->st.last_error[0] = '\0';
    if (a->lives > 1)
        a->st.reconnects++;
    verso__all_queue(a, VERSO_ALL_CONNECTED, "", "", 0, 0, n);
}

static int on_databases(verso_sync_all *a, const cJSON *root)
{
    entry *e = NULL;
    int n = 0, rc = read_list(a, cJSON_GetObjectItemCaseSensitive(root, "databases"), &e, &n);
    int64_t said = 0, valid = 0;

    if (rc < 0) {
        verso__free(e);
        return rc;
    }
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->nrecs; i++)
        a->recs[i]->seen = false;
    for (int i = 0; i < n && rc == 0; i++) {
        verso__all_rec *r;
        if (!e[i].valid) {
            ignored(a, &e[i], &said);
        } else if (!(r = verso__all_get(a, e[i].name))) {
            rc = VERSO_ENOMEM;
        } else {
            verso__all_announce(a, r, e[i].identity, e[i].head);
            r->seen = true;
            valid++;
        }
    }
    said_more(a, said);
    if (rc == 0) {
        reconcile(a);
        listed(a, valid);
    }
    pthread_mutex_unlock(&a->lock);
    verso__free(e);
    return rc;
}

static int on_database(verso_sync_all *a, const cJSON *root)
{
    entry e;
    int64_t said = 0;
    int rc = read_entry(a, &e, root);
    verso__all_rec *r;

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->lock);
    if (!e.valid)
        ignored(a, &e, &said);
    else if (!(r = verso__all_get(a, e.name)))
        rc = VERSO_ENOMEM;
    else
        verso__all_announce(a, r, e.identity, e.head);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

static int on_deleted(verso_sync_all *a, const cJSON *root)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "name");
    entry e = {0};
    int64_t said = 0;
    verso__all_rec *r;

    if (!cJSON_IsString(n) || !n->valuestring)
        return refuse(a, "a deletion without a name in the server's message%s", "");
    e.name = n->valuestring;
    e.len = verso_json_strlen(n);
    pthread_mutex_lock(&a->lock);
    if (!verso__all_name_ok(e.name, e.len) || strlen(e.name) != e.len)
        ignored(a, &e, &said);
    else if ((r = verso__all_find(a, e.name)))
        verso__all_gone(a, r);
    pthread_mutex_unlock(&a->lock);
    return 0;
}

static const struct {
    const char *type;
    int (*fn)(verso_sync_all *a, const cJSON *root);
} k_messages[] = {
    {"databases", on_databases},
    {"database", on_database},
    {"deleted", on_deleted},
};

static int dispatch(verso_sync_all *a, const cJSON *root)
{
    const char *type = verso__sync_json_get_str(root, "type");

    if (!cJSON_IsObject(root) || !type)
        return refuse(a, "a message of the server without a type%s", "");
    for (size_t i = 0; i < sizeof(k_messages) / sizeof(k_messages[0]); i++)
        if (!strcmp(type, k_messages[i].type))
            return k_messages[i].fn(a, root);
    return 0; /* heartbeat, or a type of a later version */
}

static int on_message(const char *data, size_t len, void *arg)
{
    verso_sync_all *a = arg;
    verso_json *doc = NULL;
    char jwhy[160];
    int rc;

    if (verso_json_parse(&doc, data, len, 16, jwhy, sizeof(jwhy)) < 0)
        rc = refuse(a, "the server sent malformed JSON: %s", jwhy);
    else
        rc = dispatch(a, verso_json_root(doc));
    verso_json_free(doc);
    if (rc < 0 && a->link_error[0]) {
        pthread_mutex_lock(&a->lock);
        verso__all_queue(a, VERSO_ALL_ERROR, "", a->link_error, 0, 0, 0);
        pthread_mutex_unlock(&a->lock);
    }
    verso__all_flush(a);
    return rc;
}

/* ---- the link's life ---- */

static void link_end(verso_sync_all *a, const char *why)
{
    bool was_live = a->link == VERSO__ALL_LIVE;
    int64_t jitter;

    a->retry_ms = a->retry_ms ? a->retry_ms * 2 : a->o.retry_min_ms;
    if (a->retry_ms > a->o.retry_max_ms)
        a->retry_ms = a->o.retry_max_ms;
    pthread_mutex_lock(&a->lock);
    jitter = (int64_t)(verso__all_random(a) % (uint64_t)(a->retry_ms / 4 + 1));
    a->next_connect_ms = verso__sync_mono_ms() + a->retry_ms - jitter;
    snprintf(a->st.last_error, sizeof(a->st.last_error), "%.127s",
             a->link_error[0] ? a->link_error : why);
    a->st.connected = false;
    if (was_live)
        verso__all_queue(a, VERSO_ALL_DISCONNECTED, "", a->st.last_error, 0, 0, 0);
    pthread_mutex_unlock(&a->lock);
    link_move(a, VERSO__ALL_WAITING);
    verso__all_flush(a);
}

static void refused(verso_sync_all *a, unsigned status)
{
    const char *fmt;

    switch (status) {
    case 401:
        fmt = "not authorized (HTTP 401 to the WebSocket upgrade on %.60s): check the token";
        a->retry_ms = a->o.retry_max_ms;
        break;
    case 403:
        fmt = "not authorized (HTTP 403 to the WebSocket upgrade on %.40s): the token needs the "
              "replicate or admin role";
        a->retry_ms = a->o.retry_max_ms;
        break;
    case 404:
        fmt = "the server has no %.60s (HTTP 404): is it a server of databases (verso serve "
              "--dir)?";
        break;
    default:
        fmt = "the server refused the WebSocket upgrade on %.80s";
        break;
    }
    {
        char path[300];
        snprintf(path, sizeof(path), "%s%s", a->u.prefix, VERSO_DATABASES_PATH);
        snprintf(a->link_error, sizeof(a->link_error), fmt, path);
        if (status && status != 401 && status != 403 && status != 404)
            snprintf(a->link_error + strlen(a->link_error),
                     sizeof(a->link_error) - strlen(a->link_error), " (HTTP %u)", status);
    }
}

static void on_ended(verso__wsc_end how, const char *why, unsigned status, void *arg)
{
    verso_sync_all *a = arg;

    if (how == VERSO__WSC_FAILED && status && status != 101)
        refused(a, status);
    if (how == VERSO__WSC_ENDED && !strcmp(why, "message too large")) {
        snprintf(a->link_error, sizeof(a->link_error),
                 "the server sent a message over %zu bytes: refused", a->o.max_message);
        pthread_mutex_lock(&a->lock);
        verso__all_queue(a, VERSO_ALL_ERROR, "", a->link_error, 0, 0, 0);
        pthread_mutex_unlock(&a->lock);
    }
    link_end(a, how == VERSO__WSC_CLOSED ? steps[a->link].closed : why);
}

static void on_open(void *arg)
{
    link_move(arg, VERSO__ALL_LISTING);
}

static int on_writeable(verso_buf *msg, void *arg)
{
    (void)msg; /* the server needs nothing from us */
    (void)arg;
    return 0;
}

static void try_connect(verso_sync_all *a)
{
    a->link_error[0] = '\0';
    link_move(a, VERSO__ALL_CONNECTING);
    verso__wsc_connect(a->ws, VERSO_DATABASES_PATH);
}

static bool expired(const verso_sync_all *a, int64_t now)
{
    if (a->link == VERSO__ALL_LIVE)
        return verso__wsc_silent_ms(a->ws) > a->o.silence_ms;
    return now > a->step_ms + a->o.connect_timeout_ms;
}

static void on_timer(void *arg)
{
    verso_sync_all *a = arg;
    int64_t now = verso__sync_mono_ms();

    if (a->link == VERSO__ALL_WAITING) {
        if (now >= a->next_connect_ms)
            try_connect(a);
    } else if (expired(a, now)) {
        snprintf(a->link_error, sizeof(a->link_error), "%s", steps[a->link].timeout);
        verso__wsc_kill(a->ws, steps[a->link].timeout);
    }
    verso__wsc_timer(a->ws, 50);
}

static const verso__wsc_handler k_handler = {
    .on_upgrading = NULL,
    .on_open = on_open,
    .on_message = on_message,
    .on_writeable = on_writeable,
    .on_ended = on_ended,
    .on_timer = on_timer,
};

int verso__all_link_new(verso_sync_all *a)
{
    int rc = verso__wsc_new(&a->ws, &a->u, a->token, a->o.client.insecure, &k_handler, a);

    if (rc == 0)
        verso__wsc_limits(a->ws, VERSO_DATABASES_SUBPROTOCOL, a->o.max_message);
    return rc;
}

void *verso__all_link_run(void *arg)
{
    verso_sync_all *a = arg;

    a->next_connect_ms = verso__sync_mono_ms();
    verso__wsc_timer(a->ws, 1);
    while (!atomic_load(&a->stop))
        verso__wsc_service(a->ws);
    return NULL;
}
