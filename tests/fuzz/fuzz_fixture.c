/*
 * libFuzzer harness: fixtures (verso_fixture_load, verso_fixture_dump) on
 * two tracked tables, one of them with a column of every type. The input
 * is a fixture document.
 *
 * Properties beyond "no crash, no leak":
 *   - a refused fixture changes nothing (same dump, same head);
 *   - an accepted one dumps to text that loads into a fresh database and
 *     dumps there to the very same text, and loads into the database it
 *     came from without changing its dump (dump -> load -> dump is the
 *     identity);
 *   - an integer literal loaded into an int64 column is stored as that
 *     exact INTEGER (read back with SQL, compared with the literal's own
 *     digits), and one outside the int64 range is refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "verso/advanced.h"
#include "verso/orm.h"

static char g_dir[64];
static verso_buf g_empty = VERSO_BUF_INIT; /* the dump of the template */

static const char *path_of(const char *name)
{
    static char path[2][128];
    static int k;

    k ^= 1;
    snprintf(path[k], sizeof(path[k]), "%s/%s", g_dir, name);
    return path[k];
}

static verso_db *open_db(const char *name)
{
    char why[256];
    verso_db *db;

    if (verso_db_open(&db, path_of(name), NULL, why, sizeof(why)) < 0)
        abort();
    return db;
}

static void dump(verso_buf *b, verso_db *db)
{
    verso_buf_clear(b);
    if (verso_fixture_dump(b, db, NULL) < 0)
        abort(); /* whatever a load stored can be dumped */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    verso_db *db;

    (void)argc;
    (void)argv;
    snprintf(g_dir, sizeof(g_dir), "/tmp/verso_fuzz_XXXXXX");
    if (!mkdtemp(g_dir))
        abort();
    db = open_db("template.db");
    if (verso_db_exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                          "price REAL, qty INTEGER)") < 0 ||
        verso_db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, d REAL, s TEXT, "
                          "b BLOB, bo BOOLEAN, u UUID TEXT, a)") < 0 ||
        verso_db_track(db, "items", NULL) < 0 || verso_db_track(db, "t", NULL) < 0)
        abort();
    dump(&g_empty, db);
    verso_db_close(db);
    return 0;
}

static verso_db *fresh(const char *name)
{
    char buf[65536], side[160];
    FILE *in = fopen(path_of("template.db"), "rb"), *out = fopen(path_of(name), "wb");
    size_t n;

    if (!in || !out)
        abort();
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            abort();
    fclose(in);
    if (fclose(out) != 0)
        abort();
    for (size_t i = 0; i < 2; i++) {
        snprintf(side, sizeof(side), "%s%s", path_of(name), i ? "-shm" : "-wal");
        unlink(side);
    }
    return open_db(name);
}

/* ---- int64 literals ---- */

/* An integer literal's value from its own digits: 1 = in range, 0 = out of range, -1 = not an
 * integer literal. */
static int literal(int64_t *out, const cJSON *v)
{
    const char *s = cJSON_IsNumber(v) ? v->valuestring : NULL;
    long long x;
    char *end;

    if (!s || strpbrk(s, ".eE"))
        return -1;
    errno = 0;
    x = strtoll(s, &end, 10);
    if (end == s || *end)
        return -1;
    *out = x;
    return errno == ERANGE ? 0 : 1;
}

static bool int64_column(const char *table, const char *col)
{
    return strcasecmp(col, "id") == 0 || (strcmp(table, "items") == 0 && !strcasecmp(col, "qty")) ||
           (strcmp(table, "t") == 0 && !strcasecmp(col, "i"));
}

static void check_cell(verso_db *db, const char *table, int64_t id, const char *col, int64_t want)
{
    char *sql = sqlite3_mprintf("SELECT typeof(\"%w\"), \"%w\" FROM \"%w\" WHERE id = %lld", col,
                                col, table, (long long)id);
    sqlite3_stmt *st;

    if (!sql || sqlite3_prepare_v2(verso_db_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_free(sql);
    if (sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "integer") != 0 ||
        sqlite3_column_int64(st, 1) != want) {
        fprintf(stderr, "%s %lld %s: %lld expected\n", table, (long long)id, col, (long long)want);
        abort();
    }
    sqlite3_finalize(st);
}

/* The row's id when it is a plain nonzero integer literal (the row then updates or inserts
 * exactly that id), else 0. */
static int64_t plain_id(const cJSON *row)
{
    int64_t id = 0;
    const cJSON *m;

    cJSON_ArrayForEach(m, row)
    {
        if (m->string && strcasecmp(m->string, "id") == 0 && literal(&id, m) != 1)
            return 0;
    }
    return id;
}

/* For each int64 cell of a row of the table, whether a later row (with the same id) names it. */
static bool named_later(const cJSON *row, int64_t id, const char *col)
{
    for (const cJSON *r = row->next; r; r = r->next) {
        const cJSON *m;
        if (plain_id(r) != id)
            continue;
        cJSON_ArrayForEach(m, r)
        {
            if (m->string && strcasecmp(m->string, col) == 0)
                return true;
        }
    }
    return false;
}

/* After a load: every int64 literal is stored exactly (the last row naming a cell gives its
 * value), and none was out of range. */
static void check_literals(verso_db *db, const char *text, size_t len)
{
    verso_json *doc = NULL;
    const cJSON *tables, *rows, *row, *m;
    int out_of_range = 0;

    if (verso_json_parse(&doc, text, len, 0, NULL, 0) < 0)
        abort(); /* it loaded */
    tables = cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "tables");
    tables = cJSON_IsObject(tables) ? tables : NULL;
    cJSON_ArrayForEach(rows, tables)
    {
        bool known = rows->string && (!strcmp(rows->string, "items") || !strcmp(rows->string, "t"));
        const cJSON *list = known && cJSON_IsArray(rows) ? rows : NULL;
        cJSON_ArrayForEach(row, list)
        {
            int64_t id = plain_id(row), v;
            const cJSON *cells = cJSON_IsObject(row) ? row : NULL;
            cJSON_ArrayForEach(m, cells)
            {
                if (!m->string || !int64_column(rows->string, m->string))
                    continue;
                int lit = literal(&v, m);
                out_of_range |= lit == 0;
                if (lit == 1 && id && !named_later(row, id, m->string))
                    check_cell(db, rows->string, id, m->string, v);
            }
        }
    }
    verso_json_free(doc);
    if (out_of_range)
        abort(); /* an int64 column took a literal it cannot hold exactly */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verso_db *a = fresh("a.db"), *b;
    verso_buf d1 = VERSO_BUF_INIT, d2 = VERSO_BUF_INIT;
    verso_info info;

    if (verso_fixture_load(a, (const char *)data, size) < 0) {
        dump(&d1, a);
        if (verso_db_info(&info, a) < 0 || info.head != 0 || d1.len != g_empty.len ||
            memcmp(d1.data, g_empty.data, d1.len) != 0)
            abort(); /* a refused fixture left something behind */
        goto done;
    }
    check_literals(a, (const char *)data, size);
    dump(&d1, a);
    b = fresh("b.db");
    if (verso_fixture_load(b, d1.data, d1.len) < 0) {
        fprintf(stderr, "the dump does not load: %s\n%s\n", verso_db_errmsg(b), d1.data);
        abort();
    }
    dump(&d2, b);
    verso_db_close(b);
    if (d1.len != d2.len || memcmp(d1.data, d2.data, d1.len) != 0) {
        fprintf(stderr, "dump -> load -> dump differs:\n%s\n%s\n", d1.data, d2.data);
        abort();
    }
    if (verso_fixture_load(a, d1.data, d1.len) < 0)
        abort();
    dump(&d2, a);
    if (d1.len != d2.len || memcmp(d1.data, d2.data, d1.len) != 0)
        abort(); /* loading its own dump changed the database */
done:
    verso_db_close(a);
    verso_buf_free(&d1);
    verso_buf_free(&d2);
    return 0;
}
