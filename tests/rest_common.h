/*
 * rest_common.h - shared by the tests/test_rest_*.c programs (included, not
 * linked: tests/support/ may only use the ORM API, and a test built
 * without rest/ must still link).
 *
 * A database with the table "items", a server on 127.0.0.1 port 0 in the
 * test process, URLs, and a fingerprint of the database to prove that a
 * request changed nothing.
 */
#ifndef VERSO_TEST_REST_COMMON_H
#define VERSO_TEST_REST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "support/orm_support.h"
#include "support/rest_http.h"
#include "verso/orm.h"
#include "verso/advanced.h"
#include "verso/rest.h"

typedef struct rc_item {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
    bool active;
    char *sku;
} rc_item;

static const verso_field rc_item_fields[] = {
    VERSO_FIELD_ID_OF(rc_item, id),
    VERSO_FIELD_VERSION_OF(rc_item, version),
    VERSO_FIELD(rc_item, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(rc_item, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(rc_item, qty, VERSO_INT64, VERSO_FIELD_INDEX),
    VERSO_FIELD(rc_item, active, VERSO_BOOL, 0),
    VERSO_FIELD(rc_item, sku, VERSO_TEXT, VERSO_FIELD_UNIQUE),
};

static const verso_table_def rc_item_def = VERSO_TABLE_DEF("items", rc_item, rc_item_fields);
static const verso_table_def *const rc_tables[] = {&rc_item_def};

/* One test's world: the app's handle, the server, its base URL. */
typedef struct rc_env {
    const char *path;
    verso_db *db;
    verso_rest *srv;
    char base[64];
} rc_env;

static inline verso_db *rc_open(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = rc_tables;
    o.ntables = 1;
    assert_int_equal(verso_db_open(&db, path, &o, NULL, 0), 0);
    return db;
}

static inline void rc_start_with(rc_env *e, const char *tag, verso_rest_options *o)
{
    char why[256] = "";

    memset(e, 0, sizeof(*e));
    if (o->port == 0) /* tests run side by side: a free port, not the config's or 8080 */
        o->port = VERSO_REST_PORT_ANY;
    e->path = strdup(orm_tmp_path(tag));
    e->db = rc_open(e->path);
    assert_int_equal(verso_rest_start(&e->srv, e->db, o, why, sizeof(why)), 0);
    assert_true(verso_rest_port(e->srv) > 0);
    snprintf(e->base, sizeof(e->base), "%s://127.0.0.1:%d",
             verso_rest_tls(e->srv) ? "https" : "http", verso_rest_port(e->srv));
}

static inline void rc_start(rc_env *e, const char *tag)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    rc_start_with(e, tag, &o);
}

static inline void rc_stop(rc_env *e)
{
    verso_rest_stop(e->srv);
    verso_db_close(e->db);
    free((char *)e->path);
    memset(e, 0, sizeof(*e));
}

/* A request to base + path; returns the status. */
static inline long rc_call(rt_resp *r, const rc_env *e, const char *method, const char *path,
                           const char *body, const char *const *headers)
{
    char url[8192];

    snprintf(url, sizeof(url), "%s%s", e->base, path);
    rt_request(r, method, url, body, body ? strlen(body) : 0, headers);
    return r->status;
}

/* Same, discarding the answer. */
static inline long rc_status(const rc_env *e, const char *method, const char *path,
                             const char *body, const char *const *headers)
{
    rt_resp r;
    long st = rc_call(&r, e, method, path, body, headers);

    rt_resp_free(&r);
    return st;
}

/* Inserts n items through the ORM: name "item-<i>", price i/2, qty i % 10. */
static inline void rc_seed(verso_db *db, int n)
{
    char name[32];

    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 1; i <= n; i++) {
        rc_item it = {.name = name, .price = i / 2.0, .qty = i % 10, .active = i % 2};
        snprintf(name, sizeof(name), "item-%d", i);
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
}

/* Everything a request could change: rows (dump), head and the tombstones' count. */
static inline char *rc_fingerprint(verso_db *db)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_info info;
    verso_feed *f = NULL;
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *en;

    assert_int_equal(verso_fixture_dump(&b, db, NULL), 0);
    assert_int_equal(verso_db_info(&info, db), 0);
    verso_buf_printf(&b, "|head=%lld|", (long long)info.head);
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    while (verso_feed_next(&en, f) == 1)
        verso_buf_printf(&b, "%s:%lld:%lld:%d;", en->table_name, (long long)en->id,
                         (long long)en->version, en->deleted);
    verso_feed_close(f);
    return verso_buf_detach(&b);
}

/* Parses a JSON answer (cJSON; numbers as doubles are enough in tests). */
static inline cJSON *rc_json(const rt_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->nbody);

    if (!j)
        fprintf(stderr, "not JSON: %.*s\n", (int)(r->nbody > 300 ? 300 : r->nbody), r->body);
    assert_non_null(j);
    return j;
}

/* The error code string of an error answer ("" if none). */
static inline const char *rc_error_code(cJSON *j)
{
    cJSON *e = cJSON_GetObjectItem(j, "error"), *c = e ? cJSON_GetObjectItem(e, "code") : NULL;

    return cJSON_IsString(c) ? c->valuestring : "";
}

/* Writes text to a file under $VERSO_TEST_TMP; returns its path (malloc'd). */
static inline char *rc_write_file(const char *tag, const char *text)
{
    char *path = strdup(orm_tmp_path(tag));
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
