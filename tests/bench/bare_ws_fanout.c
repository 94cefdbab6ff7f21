/*
 * bare_ws_fanout - the baseline of fanout_bench: what libwebsockets alone
 * does on this machine with N subscribers. A WebSocket server (protocol
 * verso-sync.1, any path) that greets each connection with a hello, takes
 * its subscribe and acks (read, then dropped), and for each line "I" read
 * on stdin (transaction I committed, sent by fanout_bench's writer) sends
 * every subscriber one text message shaped like the master's: ten entries
 * of about the same size, each with "qty":I. No SQLite, no JSON encoding
 * per commit (the message is built once), no state per subscriber beyond
 * the next message it is owed: the rest of what the master does is what
 * fanout_bench's ratio to this server measures.
 *
 * usage: bare_ws_fanout   (prints "http://127.0.0.1:PORT" on stdout; ends at EOF on stdin)
 */
#define _GNU_SOURCE /* memmem */
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS  65536 /* messages kept; a subscriber further behind is dropped */
#define MAX_BURST 4     /* messages per writable turn, as the master */

typedef struct msg {
    unsigned char *buf; /* LWS_PRE bytes, then the text */
    size_t len;
} msg;

static msg g_msgs[MAX_MSGS];
static atomic_long g_made; /* messages built by the reader thread */
static long g_announced;   /* of them, announced to the subscribers (service thread) */
static atomic_int g_eof;
static struct lws_context *g_ctx;

typedef struct conn {
    bool hello_due, subscribed, first_due; /* first_due: the empty batch a subscription gets */
    long next;                             /* the next message it is owed */
} conn;

/* The message of transaction i: ten entries, as the master would send them. */
static msg make(long i)
{
    char text[2048];
    int n = snprintf(text, sizeof(text), "{\"type\":\"changes\",\"entries\":[");
    msg m = {0};

    for (int k = 0; k < 10; k++)
        n += snprintf(text + n, sizeof(text) - (size_t)n,
                      "%s{\"table\":\"items\",\"id\":%ld,\"version\":%ld,\"values\":{\"name\":"
                      "\"fan-out row\",\"qty\":%ld}}",
                      k ? "," : "", i * 10 + k + 1, i * 10 + k + 1, i);
    n += snprintf(text + n, sizeof(text) - (size_t)n,
                  "],\"from\":%ld,\"to\":%ld,\"more\":false,\"head\":%ld,\"time\":0}", i * 10,
                  i * 10 + 10, i * 10 + 10);
    if (!(m.buf = malloc(LWS_PRE + (size_t)n)))
        abort();
    memcpy(m.buf + LWS_PRE, text, (size_t)n);
    m.len = (size_t)n;
    return m;
}

/* Reads "I" lines: each builds its message and wakes the service thread. */
static void *reader(void *arg)
{
    char line[64];

    (void)arg;
    while (fgets(line, sizeof(line), stdin)) {
        long i = atol(line), made = atomic_load(&g_made);
        if (i != made || made >= MAX_MSGS)
            continue; /* in order, bounded */
        g_msgs[made] = make(i);
        atomic_store(&g_made, made + 1);
        lws_cancel_service(g_ctx);
    }
    atomic_store(&g_eof, 1);
    lws_cancel_service(g_ctx);
    return NULL;
}

static int writeable(struct lws *wsi, conn *c)
{
    static const char hello[] = "{\"type\":\"hello\",\"protocol\":1,\"identity\":"
                                "\"00000000-0000-4000-8000-000000000000\",\"head\":0,"
                                "\"heartbeat_ms\":60000}";
    static const char first[] = "{\"type\":\"changes\",\"entries\":[],\"from\":0,\"to\":0,"
                                "\"more\":false,\"head\":0,\"time\":0}";
    unsigned char buf[LWS_PRE + sizeof(hello)];

    if (c->hello_due || c->first_due) {
        const char *text = c->hello_due ? hello : first;
        size_t n = strlen(text);
        c->hello_due = c->first_due = false;
        memcpy(buf + LWS_PRE, text, n);
        if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        if (c->subscribed)
            lws_callback_on_writable(wsi);
        return 0;
    }
    for (int k = 0; k < MAX_BURST && c->subscribed && c->next < g_announced; k++) {
        const msg *m = &g_msgs[c->next++];
        if (lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len)
            return -1;
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (c->subscribed && c->next < g_announced)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        *c = (conn){.hello_due = true};
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE: /* a subscribe, then acks: read and dropped */
        if (!c->subscribed && len > 20 && memmem(in, len, "\"subscribe\"", 11)) {
            c->subscribed = c->first_due = true;
            c->next = g_announced; /* from the head */
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return writeable(wsi, c);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (atomic_load(&g_made) > g_announced) {
            g_announced = atomic_load(&g_made);
            lws_callback_on_writable_all_protocol(g_ctx, lws_get_protocol(wsi));
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"verso-sync.1", callback, sizeof(conn), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(void)
{
    struct lws_context_creation_info info;
    pthread_t t;

    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(0, NULL);
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = 4096;
    if (!(g_ctx = lws_create_context(&info)))
        return 1;
    printf("http://127.0.0.1:%d\n",
           lws_get_vhost_listen_port(lws_get_vhost_by_name(g_ctx, "default")));
    fflush(stdout);
    if (pthread_create(&t, NULL, reader, NULL) != 0)
        return 1;
    while (!atomic_load(&g_eof))
        if (lws_service(g_ctx, 0) < 0)
            break;
    pthread_join(t, NULL);
    lws_context_destroy(g_ctx);
    for (long i = 0; i < atomic_load(&g_made); i++)
        free(g_msgs[i].buf);
    return 0;
}
