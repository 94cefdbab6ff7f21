/*
 * nats_common.c - what the NATS publisher and follower share; in a build
 * without libnats, the verso_nats_* functions that say so.
 */
#include "verso/nats.h"

#ifndef VERSO_HAVE_NATS

#include <stdio.h>

static int notsup(char *why, size_t whylen)
{
    if (why && whylen)
        snprintf(why, whylen, "verso was built without libnats (install libnats-dev and rebuild)");
    return VERSO_ENOTSUP;
}

int verso_nats_publish_start(verso_nats_publisher **out, const char *db_path, const char *nats_url,
                             const verso_nats_publish_options *o, char *why, size_t whylen)
{
    (void)db_path, (void)nats_url, (void)o;
    if (out)
        *out = NULL;
    return notsup(why, whylen);
}

int verso_nats_publish_state_get(verso_nats_publish_state *out, verso_nats_publisher *p)
{
    (void)p;
    if (out)
        memset(out, 0, sizeof *out);
    return VERSO_ENOTSUP;
}

int verso_nats_publish_wait(verso_nats_publisher *p, int64_t v, int timeout_ms)
{
    (void)p, (void)v, (void)timeout_ms;
    return VERSO_ENOTSUP;
}

void verso_nats_publish_stop(verso_nats_publisher *p)
{
    (void)p;
}

int verso_nats_follow_start(verso_nats_follower **out, const char *db_path, const char *url,
                            const verso_nats_follow_options *o, char *why, size_t whylen)
{
    (void)db_path, (void)url, (void)o;
    if (out)
        *out = NULL;
    return notsup(why, whylen);
}

int verso_nats_follow_state_get(verso_slave_state *out, verso_nats_follower *f)
{
    (void)f;
    if (out)
        memset(out, 0, sizeof *out);
    return VERSO_ENOTSUP;
}

int verso_nats_follow_wait(verso_nats_follower *f, int64_t version, int timeout_ms)
{
    (void)f, (void)version, (void)timeout_ms;
    return VERSO_ENOTSUP;
}

int verso_nats_follow_mount(verso_nats_follower *f, verso_rest_options *ro)
{
    (void)f, (void)ro;
    return VERSO_ENOTSUP;
}

void verso_nats_follow_stop(verso_nats_follower *f)
{
    (void)f;
}

#else /* VERSO_HAVE_NATS */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync/nats.h"

#define MAX_SERVERS 16

static int split_servers(char **urls, int *n, const char *servers)
{
    const char *p = servers;

    *n = 0;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool scheme = len > 7 && strncmp(p, "nats://", 7) == 0;
        const char *other = strstr(p, "://"); /* http://, tls://: not what we speak */

        if (len == 0 || (scheme && len == 7) || *n == MAX_SERVERS ||
            (other && other < p + len && !scheme))
            return VERSO_EINVAL;
        if (!(urls[*n] = verso__malloc(len + 8)))
            return VERSO_ENOMEM;
        snprintf(urls[(*n)++], len + 8, "%s%.*s", scheme ? "" : "nats://", (int)len, p);
        p += len + (end ? 1 : 0);
    }
    return *n ? 0 : VERSO_EINVAL;
}

static natsStatus set_options(natsOptions *o, char **urls, int n, const char *token)
{
    natsStatus s = natsOptions_SetServers(o, (const char **)urls, n);

    if (s == NATS_OK && token && *token)
        s = natsOptions_SetToken(o, token);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1); /* for ever: we never rebuild a connection */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 100);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(o, 2000); /* a dead server is noticed within seconds */
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, 2);
    if (s == NATS_OK)
        s = natsOptions_SetNoRandomize(o, true);
    return s;
}

int verso__nats_connect(verso__nats_conn *c, const char *servers, const char *token, char *why,
                        size_t whylen)
{
    char *urls[MAX_SERVERS] = {0};
    natsOptions *o = NULL;
    jsOptions jo;
    natsStatus s = NATS_OK;
    int n = 0, rc = split_servers(urls, &n, servers ? servers : "");

    memset(c, 0, sizeof(*c));
    if (rc < 0)
        verso__sync_why(why, whylen, "bad NATS server list \"%s\"", servers ? servers : "");
    if (rc == 0 && (s = natsOptions_Create(&o)) == NATS_OK)
        s = set_options(o, urls, n, token);
    if (rc == 0 && s == NATS_OK)
        s = natsConnection_Connect(&c->nc, o);
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    if (rc == 0 && s == NATS_OK)
        s = natsConnection_JetStream(&c->js, c->nc, &jo);
    if (rc == 0 && s != NATS_OK) {
        verso__nats_why(why, whylen, servers, s, 0);
        rc = s == NATS_NO_MEMORY ? VERSO_ENOMEM : VERSO_ENET;
        verso__nats_close(c);
    }
    natsOptions_Destroy(o);
    for (int i = 0; i < n; i++)
        verso__free(urls[i]);
    return rc;
}

struct timespec verso__nats_deadline(int ms)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

void verso__nats_close(verso__nats_conn *c)
{
    jsCtx_Destroy(c->js);
    if (c->nc)
        natsConnection_Destroy(c->nc); /* closes it: its read loop ends */
    for (int i = 0; i < c->nretired; i++)
        natsSubscription_Destroy(c->retired[i]);
    memset(c, 0, sizeof(*c));
}

#define SUB_END_FLUSH_MS 2000

void verso__nats_sub_end(verso__nats_conn *c, natsSubscription *sub)
{
    if (!sub)
        return;
    natsSubscription_Unsubscribe(sub);
    if (!c->nc || natsConnection_FlushTimeout(c->nc, SUB_END_FLUSH_MS) == NATS_OK ||
        natsConnection_IsClosed(c->nc) || c->nretired == VERSO__NATS_RETIRED_MAX) {
        natsSubscription_Destroy(sub);
        return;
    }
    c->retired[c->nretired++] = sub;
}

bool verso__nats_connected(const verso__nats_conn *c)
{
    return c->nc && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

static bool token_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || ch == '-';
}

bool verso__nats_stream_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    for (size_t i = 0; i < n; i++)
        if (!token_char(name[i]))
            return false;
    return n >= 1 && n <= 64;
}

bool verso__nats_subject_ok(const char *p)
{
    size_t n = p ? strlen(p) : 0;

    if (n == 0 || n > 128 || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!token_char(p[i]) && !(p[i] == '.' && p[i + 1] != '.'))
            return false;
    return true;
}

static int copy_part(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return VERSO_EINVAL;
    memcpy(dst, p, n);
    dst[n] = 0;
    return 0;
}

int verso__nats_url_parse(const char *url, char *servers, size_t nservers, char *stream,
                          size_t nstream, char *subject, size_t nsubject)
{
    const char *rest, *slash, *q;

    if (!url || strncmp(url, "nats://", 7) != 0)
        return VERSO_EINVAL;
    rest = url + 7;
    if (!(slash = strchr(rest, '/')) || slash == rest)
        return VERSO_EINVAL;
    q = strchr(slash, '?');
    subject[0] = 0;
    if (copy_part(servers, nservers, rest, (size_t)(slash - rest)) < 0 ||
        copy_part(stream, nstream, slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1)) < 0)
        return VERSO_EINVAL;
    if (q && (strncmp(q, "?subject=", 9) != 0 ||
              copy_part(subject, nsubject, q + 9, strlen(q + 9)) < 0 ||
              !verso__nats_subject_ok(subject)))
        return VERSO_EINVAL;
    return verso__nats_stream_name_ok(stream) ? 0 : VERSO_EINVAL;
}

void verso__nats_why(char *why, size_t whylen, const char *what, natsStatus s, jsErrCode jerr)
{
    const char *last = nats_GetLastError(NULL);

    if (jerr)
        verso__sync_why(why, whylen, "%s: %s (JetStream error %d)%s%s", what, natsStatus_GetText(s),
                        (int)jerr, last && *last ? ": " : "", last ? last : "");
    else
        verso__sync_why(why, whylen, "%s: %s%s%s", what, natsStatus_GetText(s),
                        last && *last && strcmp(last, natsStatus_GetText(s)) ? ": " : "",
                        last && strcmp(last, natsStatus_GetText(s)) ? last : "");
}

int verso__nats_rc(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_NO_MEMORY:
        return VERSO_ENOMEM;
    case NATS_TIMEOUT:
        return VERSO_ETIMEOUT;
    case NATS_NOT_PERMITTED:
        return VERSO_EAUTH;
    default:
        return VERSO_ENET;
    }
}

const char *verso__nats_hdr(natsMsg *m, const char *key)
{
    const char *v = NULL;

    return natsMsgHeader_Get(m, key, &v) == NATS_OK ? v : NULL;
}

int verso__nats_hdr_i64(int64_t *out, natsMsg *m, const char *key)
{
    const char *v = verso__nats_hdr(m, key);
    char *end;
    long long x;

    if (!v || !*v || !(isdigit((unsigned char)v[0]) || v[0] == '-'))
        return VERSO_EPROTO;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (*end || errno)
        return VERSO_EPROTO;
    *out = x;
    return 0;
}

static int get_done(natsMsg **out, natsStatus s, jsErrCode jerr, const char *what, char *why,
                    size_t whylen)
{
    if (s == NATS_OK)
        return 0;
    *out = NULL;
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    verso__nats_why(why, whylen, what, s, jerr);
    return verso__nats_rc(s);
}

int verso__nats_get(natsMsg **out, verso__nats_conn *c, const char *stream, uint64_t seq, char *why,
                    size_t whylen)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(out, c->js, stream, seq, NULL, &jerr);

    return get_done(out, s, jerr, "reading the stream", why, whylen);
}

/*
 * nats-server 2.9.10 (Debian 12's) can crash (a nil message in its msg-get handler) when a
 * "last message of a subject" request reaches a stream its publisher is creating at that
 * moment: a follower or a reader started beside the publisher hit it about one start in two
 * (tests/test_nats_core.c test_reader_beside_creation). The stream's state is asked first
 * (stream info does not crash) and the request made only when the stream holds messages: an
 * empty one has no last message anyway.
 */
int verso__nats_get_last(natsMsg **out, verso__nats_conn *c, const char *stream,
                         const char *subject, char *why, size_t whylen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, stream, NULL, &jerr);
    bool empty = s == NATS_OK && si->State.Msgs == 0;

    jsStreamInfo_Destroy(si);
    *out = NULL;
    if (empty)
        return 0;
    if (s == NATS_OK)
        s = js_GetLastMsg(out, c->js, stream, subject, NULL, &jerr);
    return get_done(out, s, jerr, "reading the stream's last message", why, whylen);
}

int verso__nats_stream_seqs(uint64_t *first, uint64_t *last, verso__nats_conn *c,
                            const char *stream, char *why, size_t whylen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, c->js, stream, NULL, &jerr);

    if (s != NATS_OK) {
        verso__nats_why(why, whylen, stream, s, jerr);
        return jerr == JSStreamNotFoundErr ? VERSO_ENOTFOUND : verso__nats_rc(s);
    }
    *first = si->State.Msgs ? si->State.FirstSeq : 0;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

void verso__nats_nap(const atomic_int *stop, int64_t ms)
{
    int64_t end = verso__sync_mono_ms() + ms;

    while (!atomic_load(stop) && verso__sync_mono_ms() < end) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int verso__nats_backoff(int cur, int min, int max, uint64_t *seed)
{
    int next = cur <= 0 ? min : cur * 2 > max ? max : cur * 2;

    *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return next - (int)((*seed >> 33) % (uint64_t)(next / 4 + 1)); /* up to a quarter less */
}

bool verso__nats_chain_id(natsMsg *m, const char *identity, int64_t from, int64_t to)
{
    const char *id = verso__nats_hdr(m, "Nats-Msg-Id");
    char want[96];

    snprintf(want, sizeof(want), "%s:%lld:%lld", identity, (long long)from, (long long)to);
    return id && strcmp(id, want) == 0;
}

bool verso__nats_master_id(natsMsg *m, const char *identity)
{
    const char *id = verso__nats_hdr(m, "Nats-Msg-Id");
    size_t n = strlen(identity);

    return id && strncmp(id, identity, n) == 0 && strncmp(id + n, ":master", 7) == 0 &&
           (id[n + 7] == '\0' || id[n + 7] == ':');
}

int verso__nats_master_read(char identity[37], int64_t *head, natsMsg *m)
{
    verso_json *doc = NULL;
    const char *id;
    int rc =
        verso_json_parse(&doc, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 8, NULL, 0);

    if (rc < 0)
        return VERSO_EPROTO;
    id = verso__sync_json_get_str(verso_json_root(doc), "identity");
    if (!id || strlen(id) != 36 || verso__sync_json_get_i64(head, verso_json_root(doc), "head") < 0)
        rc = VERSO_EPROTO;
    else
        memcpy(identity, id, 37);
    verso_json_free(doc);
    return rc;
}

#endif /* VERSO_HAVE_NATS */
