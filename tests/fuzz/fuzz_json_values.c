/*
 * libFuzzer harness: a JSON object as a row of a table with a column of
 * every type (int64, double, text, blob, bool, uuid, untyped).
 *
 * Properties beyond "no crash":
 *   - every value accepted writes back (verso_json_value) to JSON that
 *     parses and converts to the same storage class and the same value
 *     (bits of reals, bytes of text and blobs, exact int64);
 *   - that second JSON writes back to the very same text (one encoding per
 *     value).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "verso/advanced.h"
#include "verso/orm.h"

static verso_db *g_db;
static const verso_table *g_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/verso_fuzz_XXXXXX", path[64], why[256];

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/f.db", dir);
    if (verso_db_open(&g_db, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_exec(g_db, "CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, d REAL, s TEXT, "
                            "b BLOB, bo BOOLEAN, u UUID TEXT, a)") < 0 ||
        verso_db_track(g_db, "t", NULL) < 0 || !(g_t = verso_db_table(g_db, "t")))
        abort();
    return 0;
}

static int storage_class(verso_type t)
{
    return t == VERSO_BOOL ? VERSO_INT64 : t == VERSO_UUID ? VERSO_TEXT : (int)t;
}

static int same(const verso_value *a, const verso_value *b)
{
    if (storage_class(a->type) != storage_class(b->type))
        return 0;
    switch (storage_class(a->type)) {
    case VERSO_INT64:
        return a->u.i == b->u.i;
    case VERSO_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case VERSO_TEXT:
    case VERSO_BLOB:
        return a->u.b.n == b->u.b.n && (!a->u.b.n || !memcmp(a->u.b.p, b->u.b.p, a->u.b.n));
    default:
        return 1;
    }
}

/* The values as a JSON object, written back. */
static void write_row(verso_buf *b, const char **cols, const verso_value *vals, size_t n)
{
    verso_buf_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        const verso_column *c =
            verso_table_column_at(g_t, (size_t)verso_table_column_index(g_t, cols[i]));
        if (i)
            verso_buf_puts(b, ",");
        verso_json_string(b, cols[i], strlen(cols[i]));
        verso_buf_puts(b, ":");
        if (verso_json_value(b, &vals[i], c->type) < 0)
            abort(); /* every accepted value has a JSON form */
    }
    verso_buf_puts(b, "}");
}

static int convert(verso_json **doc, const char ***cols, verso_value **vals, size_t *n,
                   const char *text, size_t len)
{
    if (verso_json_parse(doc, text, len, 0, NULL, 0) < 0)
        return -1;
    return verso_json_to_values(cols, vals, n, g_t, verso_json_root(*doc), NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verso_json *d1 = NULL, *d2 = NULL, *d3 = NULL;
    const char **c1 = NULL, **c2 = NULL, **c3 = NULL;
    verso_value *v1 = NULL, *v2 = NULL, *v3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    verso_buf b1 = VERSO_BUF_INIT, b2 = VERSO_BUF_INIT;

    if (convert(&d1, &c1, &v1, &n1, (const char *)data, size) == 0) {
        write_row(&b1, c1, v1, n1);
        if (convert(&d2, &c2, &v2, &n2, b1.data, b1.len) < 0 || n2 != n1)
            abort(); /* what was written back must read back */
        for (size_t i = 0; i < n1; i++)
            if (strcmp(c1[i], c2[i]) || !same(&v1[i], &v2[i]))
                abort();
        write_row(&b2, c2, v2, n2);
        if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len))
            abort(); /* one encoding per value */
        if (convert(&d3, &c3, &v3, &n3, b2.data, b2.len) < 0)
            abort();
    }
    verso_free(c1);
    verso_free(v1);
    verso_free(c2);
    verso_free(v2);
    verso_free(c3);
    verso_free(v3);
    verso_json_free(d1);
    verso_json_free(d2);
    verso_json_free(d3);
    verso_buf_free(&b1);
    verso_buf_free(&b2);
    return 0;
}
