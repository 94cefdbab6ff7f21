/*
 * libFuzzer harness: a live slave's handling of what a master sends on
 * /_sync (hello, schema, changes, snapshot chunks, heartbeat, resync,
 * error, anything else), through the slave's own message handler without
 * libwebsockets (verso__slave_detached(), verso__slave_receive()), on a
 * database file of its own. The first byte chooses that database (even:
 * empty, so the slave asks for a file snapshot; odd: with a table of the
 * user's, so it asks for rows); the rest is one link's messages separated
 * by '\n' (a refused message ends the link and the next one starts
 * another, as a reconnection would).
 *
 * Properties beyond "no crash, no leak", checked after every message on a
 * connection of our own (readers see committed states only):
 *   - a refused message changes nothing: every table, metadata included
 *     (rows, versions, tombstones, cursor), dumps the same before and after;
 *   - what the slave stores is a state its cursor names: no row or
 *     tombstone of a tracked table has a version above the stored cursor,
 *     and the committed data or cursor changes only with an ack of exactly
 *     the stored cursor as the slave's next message;
 *   - PRAGMA integrity_check is ok (a snapshot installs a valid database
 *     or leaves the former one as it was: a refused last chunk is a
 *     refused message);
 *   - what the slave sends is a subscribe, an ack or a heartbeat;
 *   - differential: a twin slave on a copy of the same file gets the same
 *     messages through the general path only (verso__sync_scan_off), and
 *     both agree on every message's result and on the data after it
 *     (every table, but the identity a reset draws and a tombstone's time).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "sync/internal.h"

static char g_dir[64];

static void make_db(const char *name, const char *sql)
{
    char path[128], why[256];
    verso_db *db;

    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 || (sql && verso_db_exec(db, sql) < 0))
        abort();
    verso_db_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* in memory when possible: every commit and snapshot syncs its files */
    snprintf(g_dir, sizeof(g_dir), "/dev/shm/verso_fuzz_XXXXXX");
    if (!mkdtemp(g_dir)) {
        snprintf(g_dir, sizeof(g_dir), "/tmp/verso_fuzz_XXXXXX");
        if (!mkdtemp(g_dir))
            abort();
    }
    make_db("empty.db", NULL);
    make_db("own.db",
            "CREATE TABLE mine(id INTEGER PRIMARY KEY, x); INSERT INTO mine(x) VALUES (1)");
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    size_t n;

    if (!in || !out)
        abort();
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            abort();
    fclose(in);
    if (fclose(out) != 0)
        abort();
}

static void fresh(char *path, size_t cap, int mode, const char *name)
{
    char src[128], side[160];

    snprintf(path, cap, "%s/%s", g_dir, name);
    snprintf(src, sizeof(src), "%s/%s", g_dir, mode ? "own.db" : "empty.db");
    for (size_t i = 0; i < 3; i++) {
        snprintf(side, sizeof(side), "%s%s", path,
                 (const char *[]){"-wal", "-shm", ".snapshot"}[i]);
        unlink(side);
    }
    copy_file(src, path);
}

/* What a table's dump selects: for the twins' comparison, not what a reset draws at random or
 * a tombstone's time. */
static char *select_all(const char *table, bool twin)
{
    if (twin && strcmp(table, "_verso_meta") == 0)
        return sqlite3_mprintf("SELECT * FROM _verso_meta WHERE key <> 'identity' ORDER BY rowid");
    if (twin && strcmp(table, "_verso_tombstones") == 0)
        return sqlite3_mprintf("SELECT version, tbl, id FROM _verso_tombstones ORDER BY rowid");
    return sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY rowid", table);
}

/* Every table of the file, in name order, every row in rowid order, with storage classes. */
static void dump_as(verso_buf *b, sqlite3 *q, bool twin)
{
    sqlite3_stmt *tables, *rows;

    verso_buf_clear(b);
    if (sqlite3_exec(q, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                           -1, &tables, NULL) != SQLITE_OK)
        abort();
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char *sql = select_all((const char *)sqlite3_column_text(tables, 0), twin);
        if (!sql || sqlite3_prepare_v2(q, sql, -1, &rows, NULL) != SQLITE_OK)
            abort();
        sqlite3_free(sql);
        verso_buf_printf(b, "[%s]\n", (const char *)sqlite3_column_text(tables, 0));
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(rows); i++) {
                const void *p = sqlite3_column_blob(rows, i);
                int n = sqlite3_column_bytes(rows, i);
                verso_buf_printf(b, "%d:%d:", sqlite3_column_type(rows, i), n);
                if (n)
                    verso_buf_append(b, p, (size_t)n);
                verso_buf_puts(b, "|");
            }
            verso_buf_puts(b, "\n");
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(tables);
    sqlite3_exec(q, "COMMIT", NULL, NULL, NULL);
}

static void dump(verso_buf *b, sqlite3 *q)
{
    dump_as(b, q, false);
}

static int64_t scalar(sqlite3 *q, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = 0;

    if (sqlite3_prepare_v2(q, sql, -1, &st, NULL) != SQLITE_OK)
        return 0; /* a tracked table's name that no longer exists */
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The stored cursor version, after checking no tracked row or tombstone is beyond it. */
static int64_t check_versions(sqlite3 *q)
{
    int64_t cursor, top;
    sqlite3_stmt *st;

    if (sqlite3_exec(q, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        abort();
    top = scalar(q, "SELECT max(version) FROM _verso_tombstones");
    if (sqlite3_prepare_v2(q, "SELECT name, version_column FROM _verso_tables", -1, &st, NULL) !=
        SQLITE_OK)
        abort();
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *sql = sqlite3_mprintf("SELECT max(\"%w\") FROM \"%w\"", sqlite3_column_text(st, 1),
                                    sqlite3_column_text(st, 0));
        int64_t v = scalar(q, sql);
        sqlite3_free(sql);
        top = v > top ? v : top;
    }
    sqlite3_finalize(st);
    cursor = scalar(q, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'");
    sqlite3_exec(q, "COMMIT", NULL, NULL, NULL);
    if (top > cursor) {
        fprintf(stderr, "a stored version (%lld) is beyond the cursor (%lld)\n", (long long)top,
                (long long)cursor);
        abort();
    }
    return cursor;
}

static void check_integrity(sqlite3 *q)
{
    sqlite3_stmt *st;
    const unsigned char *r = NULL;

    if (sqlite3_prepare_v2(q, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW || !(r = sqlite3_column_text(st, 0)) ||
        strcmp((const char *)r, "ok") != 0) {
        fprintf(stderr, "integrity_check: %s\n", r ? (const char *)r : sqlite3_errmsg(q));
        abort();
    }
    sqlite3_finalize(st);
}

/* What the slave sends: a subscribe, an ack (its version in *ack), a heartbeat, or nothing. */
static void check_out(const verso_buf *out, int64_t *ack)
{
    verso_json *doc = NULL;
    const char *type;

    *ack = -1;
    if (out->len == 0)
        return;
    if (verso_json_parse(&doc, out->data, out->len, 0, NULL, 0) < 0 ||
        !(type = verso__sync_json_get_str(verso_json_root(doc), "type")))
        abort();
    if (strcmp(type, "ack") == 0) {
        if (verso__sync_json_get_i64(ack, verso_json_root(doc), "version") < 0)
            abort();
    } else if (strcmp(type, "subscribe") != 0 && strcmp(type, "heartbeat") != 0) {
        abort();
    }
    verso_json_free(doc);
}

/* The state after a message: when no other connection committed (PRAGMA data_version did not
 * move) it is the state before, checked already. */
static int64_t look(verso_buf *after, const verso_buf *before, sqlite3 *q, int64_t *seen)
{
    int64_t dv = scalar(q, "PRAGMA data_version"), cursor;

    if (dv == *seen) {
        verso_buf_clear(after);
        if (before->len && verso_buf_append(after, before->data, before->len) < 0)
            abort();
        return scalar(q, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'");
    }
    *seen = dv;
    dump(after, q);
    check_integrity(q);
    cursor = check_versions(q);
    return cursor;
}

/* The twin: the general path only. */
typedef struct twin {
    verso_slave *s;
    sqlite3 *q;
} twin;

static int twin_receive(twin *t, const char *text, size_t len)
{
    verso_buf out = VERSO_BUF_INIT;
    int rc;

    verso__sync_scan_off = true;
    rc = verso__slave_receive(t->s, text, len, &out);
    verso__sync_scan_off = false;
    verso_buf_free(&out);
    return rc;
}

static void twin_compare(twin *t, sqlite3 *q, int rc, int twin_rc)
{
    verso_buf a = VERSO_BUF_INIT, b = VERSO_BUF_INIT;

    if (rc != twin_rc) {
        fprintf(stderr, "the fast path returned %d, the general path %d\n", rc, twin_rc);
        abort();
    }
    dump_as(&a, q, true);
    dump_as(&b, t->q, true);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
        fprintf(stderr, "the fast and general paths wrote different data:\n%.*s\n---\n%.*s\n",
                (int)a.len, a.data, (int)b.len, b.data);
        abort();
    }
    verso_buf_free(&a);
    verso_buf_free(&b);
}

static void one_message(verso_slave *s, twin *t, sqlite3 *q, int64_t *seen, verso_buf *before,
                        verso_buf *after, const char *text, size_t len)
{
    verso_buf out = VERSO_BUF_INIT;
    int64_t cursor, ack;
    int rc = verso__slave_receive(s, text, len, &out);

    twin_compare(t, q, rc, twin_receive(t, text, len));

    if (getenv("VERSO_FUZZ_VERBOSE")) /* for seeds: what each message did */
        fprintf(stderr, "%.60s -> %d, sends %.80s\n", text, rc, out.data ? out.data : "");
    cursor = look(after, before, q, seen);
    check_out(&out, &ack);
    bool changed = before->len != after->len || memcmp(before->data, after->data, after->len);
    if (changed && rc < 0) {
        fprintf(stderr, "a refused message (%d) changed the database\n", rc);
        abort();
    }
    if (changed && ack != cursor) {
        fprintf(stderr, "the database changed; ack %lld, cursor %lld\n", (long long)ack,
                (long long)cursor);
        abort();
    }
    verso_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verso_buf a = VERSO_BUF_INIT, b = VERSO_BUF_INIT;
    const char *p, *end;
    char path[128], tpath[128], why[256];
    verso_slave *s = NULL;
    sqlite3 *q = NULL;
    twin t = {NULL, NULL};
    int64_t seen;

    if (size < 1)
        return 0;
    fresh(path, sizeof(path), data[0] & 1, "s.db");
    fresh(tpath, sizeof(tpath), data[0] & 1, "t.db");
    if (verso__slave_detached(&s, path, NULL, why, sizeof(why)) < 0 ||
        sqlite3_open_v2(path, &q, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        verso__slave_detached(&t.s, tpath, NULL, why, sizeof(why)) < 0 ||
        sqlite3_open_v2(tpath, &t.q, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        abort();
    sqlite3_busy_timeout(t.q, 1000);
    sqlite3_busy_timeout(q, 1000);
    dump(&a, q);
    seen = scalar(q, "PRAGMA data_version");
    for (p = (const char *)data + 1, end = (const char *)data + size; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        verso_buf tmp;
        one_message(s, &t, q, &seen, &a, &b, p, len);
        tmp = a, a = b, b = tmp; /* the state after is the next one's before */
        p += len + 1;
    }
    verso__slave_detached_free(s);
    verso__slave_detached_free(t.s);
    sqlite3_close(q);
    sqlite3_close(t.q);
    verso_buf_free(&a);
    verso_buf_free(&b);
    return 0;
}
