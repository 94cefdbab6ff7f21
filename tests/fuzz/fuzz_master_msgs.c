/*
 * libFuzzer harness: a master's handling of what a slave sends on /_sync
 * (subscribe, ack, heartbeat, anything else), through the master's own
 * WebSocket handler without libwebsockets (verso__master_handler(),
 * verso__master_conn_next()), on a database with rows (one with a blob
 * long enough to be sent as {"blob_fetch":N}), a deletion and two tables.
 * The input is one connection: messages separated by '\n'.
 *
 * Properties beyond "no crash, no leak":
 *   - every message the master sends is a JSON object of a type
 *     docs/protocol.md lists; its changes batches continue one another
 *     (from = the previous to, or the subscription's cursor), carry
 *     versions in (from, to] in increasing order, and only `more:false`
 *     ends a sequence;
 *   - a message the protocol refuses (not JSON, no known type, an ack
 *     without an integer version >= 0 or beyond what was sent, a subscribe
 *     without a cursor or naming an unknown table) is answered by an
 *     `error` of the right code and the close; any other is not;
 *   - the master's database never changes (rows, versions, tombstones,
 *     identity, head, horizon).
 * With VERSO_FUZZ_CAPTURE=FILE every message the master sends is appended
 * to FILE, one a line (seeds for fuzz_slave_msgs).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "sync/internal.h"

static verso_sync_master *g_m;
static verso_db *g_obs; /* the master's file, read on a handle of our own */
static verso_buf g_base = VERSO_BUF_INIT;
static FILE *g_capture;

/* The database as the protocol sees it: identity, head, horizon, every change since 0. */
static void dump(verso_buf *b)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e;
    verso_feed *f = NULL;
    verso_info info;
    int rc;

    verso_buf_clear(b);
    fo.limit = 100000;
    fo.blob_inline = VERSO_SYNC_BLOB_INLINE; /* as the master reads it: the long blob's length */
    if (verso_db_info(&info, g_obs) < 0 || verso_feed_open(&f, g_obs, &fo) < 0)
        abort();
    verso_buf_printf(b, "%s %lld %lld\n", info.identity, (long long)info.head,
                     (long long)info.horizon);
    while ((rc = verso_feed_next(&e, f)) == 1)
        if (verso_json_feed_entry(b, e) < 0 || verso_buf_puts(b, "\n") < 0)
            abort();
    if (rc < 0)
        abort();
    verso_feed_close(f);
}

static void make_master(const char *path)
{
    static const char *const sql[] = {
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, qty INTEGER)",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body BLOB, extra)",
    };
    static const char *const rows[] = {
        ("INSERT INTO items(name, price, qty) VALUES ('pear', 2.5, 3), ('cup', 6.0, 119), "
         "('saucer', 3.25, 0), ('big', 1e300, 9223372036854775807)"),
        "INSERT INTO notes(body, extra) VALUES (x'00ff', 'n/a'), (NULL, -9223372036854775808)",
        "UPDATE items SET qty = qty - 1 WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "INSERT INTO notes(body, extra) VALUES (x'61', 1.5)",
        /* a long blob: sent as {"blob_fetch":262145}, never read by the feed */
        "INSERT INTO notes(body, extra) VALUES (zeroblob(262145), x'01')",
    };
    char why[256];
    verso_db *db;

    if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0)
        abort();
    for (size_t i = 0; i < 2; i++)
        if (verso_db_exec(db, sql[i]) < 0)
            abort();
    if (verso_db_track(db, "items", NULL) < 0 || verso_db_track(db, "notes", NULL) < 0)
        abort();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (verso_db_exec(db, rows[i]) < 0)
            abort();
    verso_db_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/verso_fuzz_XXXXXX", path[64], why[256];
    verso_sync_master_options o = VERSO_SYNC_MASTER_OPTIONS_INIT;
    const char *cap = getenv("VERSO_FUZZ_CAPTURE");

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/m.db", dir);
    make_master(path);
    o.chunk = 2; /* catch-up in several batches */
    if (verso_sync_master_new(&g_m, path, &o, why, sizeof(why)) < 0 ||
        verso_db_open(&g_obs, path, NULL, why, sizeof(why)) < 0)
        abort();
    dump(&g_base);
    if (cap && !(g_capture = fopen(cap, "a")))
        abort();
    return 0;
}

/* What the harness knows of the connection, from what the master said. */
typedef struct model {
    bool subscribed;  /* a changes batch or the snapshot answered the last subscribe */
    bool in_sequence; /* the last batch said more */
    bool sub_pending; /* a subscribe got no answer yet */
    int64_t to;       /* the last to sent on the subscription (or its cursor) */
    int64_t last_version;
    bool closed;
    char error[16]; /* the code of the error sent, if any */
    char identity[37];
} model;

static const char *const types[] = {"hello",     "schema", "changes", "snapshot",
                                    "heartbeat", "resync", "error"};

static bool known_type(const char *t)
{
    for (size_t i = 0; t && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

static void check_changes(model *md, const cJSON *msg)
{
    const cJSON *e, *entries = cJSON_GetObjectItemCaseSensitive(msg, "entries");
    int64_t from, to, v;

    if (verso__sync_json_get_i64(&from, msg, "from") < 0 ||
        verso__sync_json_get_i64(&to, msg, "to") < 0 || !cJSON_IsArray(entries) ||
        (md->subscribed && from != md->to) || to < from)
        abort();
    if (!md->subscribed || !md->in_sequence)
        md->last_version = from;
    cJSON_ArrayForEach(e, entries)
    {
        if (verso__sync_json_get_i64(&v, e, "version") < 0 || v <= md->last_version || v > to)
            abort();
        md->last_version = v;
    }
    md->subscribed = true;
    md->to = to;
    md->in_sequence = verso__sync_json_get_bool(msg, "more");
}

static void check_out(model *md, const char *text, size_t len, int last)
{
    verso__sync_msg m;
    const cJSON *root;
    const char *code;

    if (g_capture)
        fprintf(g_capture, "%.*s\n", (int)len, text);
    if (verso__sync_msg_read(&m, text, len, NULL, 0) < 0 ||
        !cJSON_IsObject(verso_json_root(m.doc)) || !known_type(m.type))
        abort(); /* not JSON, or a type protocol.md does not list */
    root = verso_json_root(m.doc);
    md->sub_pending = false;
    if (strcmp(m.type, "changes") == 0)
        check_changes(md, root);
    else if (strcmp(m.type, "resync") == 0)
        md->subscribed = false;
    else if (strcmp(m.type, "snapshot") == 0 && verso__sync_json_get_bool(root, "last") &&
             verso__sync_json_get_i64(&md->to, root, "head") == 0)
        md->subscribed = true, md->in_sequence = false;
    if (strcmp(m.type, "error") == 0) {
        code = verso__sync_json_get_str(root, "code");
        if (!code || !last)
            abort(); /* an error is always followed by the close */
        snprintf(md->error, sizeof(md->error), "%s", code);
    }
    if (last && strcmp(m.type, "error") != 0)
        abort(); /* the master closes only after an error */
    md->closed = md->closed || last;
    verso__sync_msg_free(&m);
}

/* Everything the connection has to send now; waits a little for a snapshot being copied. */
static void drain(model *md, void *cp)
{
    verso_buf b = VERSO_BUF_INIT;
    int rc, idle = 0;

    for (int i = 0; i < 256 && !md->closed; i++) {
        if ((rc = verso__master_conn_next(g_m, cp, &b)) < 0)
            abort();
        if (b.len == 0) {
            if (!md->sub_pending || ++idle > 3000)
                break;
            usleep(1000);
            continue;
        }
        check_out(md, b.data, b.len, rc);
    }
    verso_buf_free(&b);
}

/* The error code the protocol requires for msg, "" for none. */
static const char *expected_error(const model *md, const char *text, size_t len)
{
    verso_json *doc = NULL;
    const cJSON *root, *t, *tables;
    const char *type, *id, *want = "";
    int64_t v;

    if (verso_json_parse(&doc, text, len, 8, NULL, 0) < 0)
        return "protocol";
    root = verso_json_root(doc);
    type = verso__sync_json_get_str(root, "type");
    if (!type || (strcmp(type, "subscribe") && strcmp(type, "ack") && strcmp(type, "heartbeat"))) {
        want = "protocol";
    } else if (strcmp(type, "ack") == 0) {
        id = verso__sync_json_get_str(root, "identity");
        if (verso__sync_json_get_i64(&v, root, "version") < 0 || v < 0)
            want = "protocol";
        else if (md->subscribed && (!id || strcmp(id, md->identity) == 0) && v > md->to)
            want = "protocol";
    } else if (strcmp(type, "subscribe") == 0) {
        tables = cJSON_GetObjectItemCaseSensitive(root, "tables");
        tables = cJSON_IsArray(tables) ? tables : NULL;
        if (verso__sync_json_get_i64(&v, root, "cursor") < 0 || v < 0)
            want = "subscribe";
        cJSON_ArrayForEach(t, tables)
        {
            if (!verso_json_cstr(t) || !verso_db_table(g_obs, t->valuestring))
                want = "subscribe";
        }
    }
    verso_json_free(doc);
    return want;
}

/* A subscribe resets what the harness knows; its cursor is where acks may go. */
static void note_subscribe(model *md, const char *text, size_t len)
{
    verso_json *doc = NULL;
    const cJSON *root;
    const char *type;

    if (verso_json_parse(&doc, text, len, 8, NULL, 0) < 0)
        return;
    root = verso_json_root(doc);
    type = verso__sync_json_get_str(root, "type");
    if (type && strcmp(type, "subscribe") == 0) {
        md->subscribed = false;
        md->in_sequence = false;
        md->sub_pending = true;
    }
    verso_json_free(doc);
}

static void feed(model *md, const verso_ws_handler *h, void *cp, const char *text, size_t len)
{
    const char *want = expected_error(md, text, len);

    md->error[0] = '\0';
    note_subscribe(md, text, len);
    if (h->on_message(NULL, cp, text, len, h->arg) < 0)
        abort(); /* a message never fails the handler: it answers */
    drain(md, cp);
    if (strcmp(want, md->error) != 0) {
        fprintf(stderr, "message %.*s: error \"%s\" expected, \"%s\" sent\n", (int)len, text, want,
                md->error);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const verso_ws_handler *h = verso__master_handler(g_m);
    const char *p = (const char *)data, *end = p + size;
    verso_buf now = VERSO_BUF_INIT;
    verso_info info;
    model md = {.to = 0};
    void *cp = NULL;

    if (verso_db_info(&info, g_obs) < 0 || h->on_open(NULL, &cp, h->arg) < 0)
        abort();
    memcpy(md.identity, info.identity, sizeof(md.identity));
    drain(&md, cp); /* the hello */
    while (p < end && !md.closed) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        feed(&md, h, cp, p, len);
        p += len + 1;
    }
    h->on_close(NULL, cp, h->arg);
    dump(&now);
    if (now.len != g_base.len || memcmp(now.data, g_base.data, now.len) != 0)
        abort(); /* the master's database changed */
    verso_buf_free(&now);
    return 0;
}
