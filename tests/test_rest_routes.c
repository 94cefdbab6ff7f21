/* End-to-end: every route of the REST server, its statuses and headers,
 * with libcurl against a server on 127.0.0.1 port 0. */
#include "rest_common.h"

static rc_env g_env;

static int setup(void **state)
{
    (void)state;
    rc_start(&g_env, "rest_routes");
    rc_seed(g_env.db, 3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

static double num(cJSON *o, const char *k)
{
    cJSON *j = cJSON_GetObjectItem(o, k);

    assert_true(cJSON_IsNumber(j));
    return j->valuedouble;
}

static void test_health_info_status(void **state)
{
    rt_resp r;
    cJSON *j, *t, *cols;
    char h[128];

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_health", NULL, NULL), 200);
    assert_string_equal(rt_header(&r, "Content-Type", h, sizeof(h)), "application/json");
    j = rc_json(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
    cJSON_Delete(j);
    rt_resp_free(&r);

    assert_int_equal(rc_call(&r, &g_env, "GET", "/_info", NULL, NULL), 200);
    j = rc_json(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "identity")->valuestring,
                        verso_db_identity(g_env.db));
    assert_true(num(j, "head") >= 3);
    t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "name")->valuestring, "items");
    cols = cJSON_GetObjectItem(t, "columns");
    assert_int_equal(cJSON_GetArraySize(cols), 7);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cols, 3), "type")->valuestring,
                        "double");
    cJSON_Delete(j);
    rt_resp_free(&r);

    assert_int_equal(rc_call(&r, &g_env, "GET", "/_status", NULL, NULL), 200);
    j = rc_json(&r);
    assert_int_equal((int)num(j, "port"), verso_rest_port(g_env.srv));
    cJSON_Delete(j);
    rt_resp_free(&r);
}

static void test_list_and_get(void **state)
{
    rt_resp r;
    cJSON *j;
    char etag[64], hdr[128];

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items", NULL, NULL), 200);
    j = rc_json(&r);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "name")->valuestring,
                        "item-2");
    cJSON_Delete(j);
    rt_resp_free(&r);

    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/2", NULL, NULL), 200);
    j = rc_json(&r);
    assert_int_equal((int)num(j, "id"), 2);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "active")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "sku")));
    assert_non_null(rt_header(&r, "ETag", etag, sizeof(etag)));
    snprintf(hdr, sizeof(hdr), "\"%lld\"", (long long)num(j, "version"));
    assert_string_equal(etag, hdr);
    cJSON_Delete(j);
    rt_resp_free(&r);

    snprintf(hdr, sizeof(hdr), "If-None-Match: %s", etag);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/2", NULL, (const char *[]){hdr, NULL}),
                     304);
    assert_int_equal(r.nbody, 0);
    rt_resp_free(&r);
    assert_int_equal(
        rc_status(&g_env, "GET", "/items/2", NULL, (const char *[]){"If-None-Match: \"1\"", NULL}),
        200);
    /* A list of ETags: 304 when any names the current version. */
    snprintf(hdr, sizeof(hdr), "If-None-Match: \"998\", W/\"999\" , %s", etag);
    assert_int_equal(rc_status(&g_env, "GET", "/items/2", NULL, (const char *[]){hdr, NULL}), 304);
    assert_int_equal(rc_status(&g_env, "GET", "/items/2", NULL,
                               (const char *[]){"If-None-Match: \"998\", \"999\"", NULL}),
                     200);
    assert_int_equal(
        rc_status(&g_env, "GET", "/items/2", NULL, (const char *[]){"If-None-Match: *", NULL}),
        304);
    assert_int_equal(rc_call(&r, &g_env, "HEAD", "/items/2", NULL, NULL), 200);
    assert_int_equal(r.nbody, 0);
    rt_resp_free(&r);
}

static void test_not_found_and_methods(void **state)
{
    rt_resp r;
    cJSON *j;
    char allow[128];

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/999", NULL, NULL), 404);
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "not_found");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "GET", "/nosuch", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/_nosuch", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/items/abc", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/items/1/x", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/", NULL, NULL), 404);

    assert_int_equal(rc_call(&r, &g_env, "DELETE", "/items", NULL, NULL), 405);
    assert_string_equal(rt_header(&r, "Allow", allow, sizeof(allow)), "GET, HEAD, POST");
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "method_not_allowed");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "POST", "/items/1", "{}", NULL), 405);
    assert_int_equal(rc_status(&g_env, "POST", "/_health", "{}", NULL), 405);
    assert_int_equal(rc_status(&g_env, "GET", "/_batch", NULL, NULL), 405);
}

static void test_create(void **state)
{
    rt_resp r;
    cJSON *j;
    char loc[64], want[64], etag[64];
    int id;

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "POST", "/items",
                             "{\"name\":\"new\",\"price\":1.25,\"qty\":9007199254740993}", NULL),
                     201);
    j = rc_json(&r);
    id = (int)num(j, "id");
    assert_true(strstr(r.body, "\"qty\":9007199254740993") != NULL);
    snprintf(want, sizeof(want), "/items/%d", id);
    assert_string_equal(rt_header(&r, "Location", loc, sizeof(loc)), want);
    snprintf(want, sizeof(want), "\"%lld\"", (long long)num(j, "version"));
    assert_string_equal(rt_header(&r, "ETag", etag, sizeof(etag)), want);
    cJSON_Delete(j);
    rt_resp_free(&r);

    rc_item it = {0};
    assert_int_equal(verso_record_get(&it, g_env.db, &rc_item_def, id), 0);
    assert_string_equal(it.name, "new");
    assert_true(it.qty == 9007199254740993LL);
    verso_record_clear(&rc_item_def, &it);

    assert_int_equal(
        rc_call(&r, &g_env, "POST", "/items", "[{\"name\":\"a\"},{\"name\":\"b\"}]", NULL), 201);
    j = rc_json(&r);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_true(num(cJSON_GetArrayItem(j, 1), "version") >
                num(cJSON_GetArrayItem(j, 0), "version"));
    cJSON_Delete(j);
    rt_resp_free(&r);
}

static void test_update(void **state)
{
    rt_resp r;
    cJSON *j;
    char hdr[64], etag[64];
    double v0, v1;

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/3", NULL, NULL), 200);
    j = rc_json(&r);
    v0 = num(j, "version");
    cJSON_Delete(j);
    rt_resp_free(&r);

    assert_int_equal(rc_call(&r, &g_env, "PUT", "/items/3", "{\"price\":9.5}", NULL), 200);
    j = rc_json(&r);
    v1 = num(j, "version");
    assert_true(v1 > v0);
    assert_true(num(j, "price") == 9.5);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "item-3");
    snprintf(hdr, sizeof(hdr), "\"%lld\"", (long long)v1);
    assert_string_equal(rt_header(&r, "ETag", etag, sizeof(etag)), hdr);
    cJSON_Delete(j);
    rt_resp_free(&r);

    /* A stale If-Match or body version: 412 and nothing changes. */
    snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", (long long)v0);
    assert_int_equal(
        rc_status(&g_env, "PATCH", "/items/3", "{\"price\":1}", (const char *[]){hdr, NULL}), 412);
    snprintf(hdr, sizeof(hdr), "{\"price\":1,\"version\":%lld}", (long long)v0);
    assert_int_equal(rc_status(&g_env, "PATCH", "/items/3", hdr, NULL), 412);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/3", NULL, NULL), 200);
    j = rc_json(&r);
    assert_true(num(j, "price") == 9.5);
    assert_true(num(j, "version") == v1);
    cJSON_Delete(j);
    rt_resp_free(&r);

    snprintf(hdr, sizeof(hdr), "{\"price\":2,\"version\":%lld}", (long long)v1);
    assert_int_equal(rc_status(&g_env, "PATCH", "/items/3", hdr, NULL), 200);
    snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", (long long)v1);
    assert_int_equal(
        rc_status(&g_env, "PUT", "/items/3", "{\"qty\":5}", (const char *[]){hdr, NULL}), 412);
    assert_int_equal(rc_status(&g_env, "PUT", "/items/999", "{\"qty\":5}", NULL), 404);
    /* A stale If-Match keeps the row from being deleted. */
    snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", (long long)v1);
    assert_int_equal(rc_status(&g_env, "DELETE", "/items/3", NULL, (const char *[]){hdr, NULL}),
                     412);
    assert_int_equal(rc_status(&g_env, "GET", "/items/3", NULL, NULL), 200);
    /* PUT with the current version in the body and a matching If-Match. */
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/3", NULL, NULL), 200);
    j = rc_json(&r);
    v1 = num(j, "version");
    cJSON_Delete(j);
    rt_resp_free(&r);
    snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"", (long long)v1);
    snprintf(etag, sizeof(etag), "{\"qty\":6,\"version\":%lld}", (long long)v1);
    assert_int_equal(rc_call(&r, &g_env, "PUT", "/items/3", etag, (const char *[]){hdr, NULL}),
                     200);
    j = rc_json(&r);
    assert_true(num(j, "qty") == 6);
    assert_true(num(j, "version") > v1);
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "PUT", "/items/3", "{\"id\":4,\"qty\":5}", NULL), 400);
}

static void test_conflict_409(void **state)
{
    char *before;

    (void)state;
    assert_int_equal(rc_status(&g_env, "POST", "/items", "{\"name\":\"u\",\"sku\":\"S-1\"}", NULL),
                     201);
    before = rc_fingerprint(g_env.db);
    assert_int_equal(rc_status(&g_env, "POST", "/items", "{\"name\":\"v\",\"sku\":\"S-1\"}", NULL),
                     409);
    assert_int_equal(rc_status(&g_env, "POST", "/items",
                               "[{\"name\":\"w\"},{\"name\":\"x\",\"sku\":\"S-1\"}]", NULL),
                     409);
    char *after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);

    /* A CHECK constraint: 409, without the constraint's SQL text. */
    rt_resp r;
    assert_int_equal(verso_db_exec(g_env.db, "CREATE TABLE checked(id INTEGER PRIMARY KEY, "
                                             "price REAL CHECK (price > 0 AND price < 1000))"),
                     0);
    assert_int_equal(verso_db_track(g_env.db, "checked", NULL), 0);
    assert_int_equal(rc_call(&r, &g_env, "POST", "/checked", "{\"price\":-1}", NULL), 409);
    assert_non_null(strstr(r.body, "CHECK constraint failed"));
    assert_null(strstr(r.body, "price >"));
    assert_null(strstr(r.body, "1000"));
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "POST", "/checked", "{\"price\":1}", NULL), 201);
}

/* Number of changes in a /_changes answer. */
static int feed_size(const char *path)
{
    rt_resp r;
    cJSON *j;
    int n;

    assert_int_equal(rc_call(&r, &g_env, "GET", path, NULL, NULL), 200);
    j = rc_json(&r);
    n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "changes"));
    assert_true(n > 0);
    cJSON_Delete(j);
    rt_resp_free(&r);
    return n;
}

static void test_delete_and_changes(void **state)
{
    rt_resp r;
    cJSON *j, *ch, *last;
    int64_t head;
    char path[128];

    (void)state;
    assert_int_equal(rc_status(&g_env, "DELETE", "/items/1", NULL, NULL), 204);
    assert_int_equal(rc_status(&g_env, "GET", "/items/1", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "DELETE", "/items/1", NULL, NULL), 404);

    assert_int_equal(rc_call(&r, &g_env, "GET", "/_changes?since=0&limit=1000", NULL, NULL), 200);
    j = rc_json(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "identity")->valuestring,
                        verso_db_identity(g_env.db));
    head = (int64_t)num(j, "head");
    assert_true(num(j, "cursor") == head);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "more")));
    ch = cJSON_GetObjectItem(j, "changes");
    last = cJSON_GetArrayItem(ch, cJSON_GetArraySize(ch) - 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(last, "deleted")));
    assert_true(num(last, "id") == 1);
    cJSON_Delete(j);
    rt_resp_free(&r);

    assert_int_equal(
        rc_call(&r, &g_env, "GET", "/_changes?since=0&limit=2&tables=items", NULL, NULL), 200);
    j = rc_json(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "changes")), 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "more")));
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "GET", "/_changes?since=0&tables=nosuch", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/_changes?since=0&tables=,", NULL, NULL), 400);
    /* A table named twice is read once: no change is repeated. */
    assert_int_equal(feed_size("/_changes?since=0&tables=items,items"),
                     feed_size("/_changes?since=0&tables=items"));
    assert_int_equal(rc_status(&g_env, "GET", "/_changes?since=x", NULL, NULL), 400);

    /* Pruning moves the horizon: an older cursor (not 0: a full read) must resynchronise. */
    assert_int_equal(verso_db_prune_version(NULL, g_env.db, head), 0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_changes?since=1", NULL, NULL), 410);
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "gone");
    cJSON_Delete(j);
    rt_resp_free(&r);
    snprintf(path, sizeof(path), "/_changes?since=%lld", (long long)head);
    assert_int_equal(rc_status(&g_env, "GET", path, NULL, NULL), 200);
}

static void test_batch(void **state)
{
    rt_resp r;
    cJSON *j, *res;
    char *before, *after;

    (void)state;
    assert_int_equal(
        rc_call(&r, &g_env, "POST", "/_batch",
                "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"b1\"}},"
                "{\"op\":\"update\",\"table\":\"items\",\"id\":2,\"row\":{\"qty\":42}},"
                "{\"op\":\"delete\",\"table\":\"items\",\"id\":3}]",
                NULL),
        200);
    j = rc_json(&r);
    res = cJSON_GetObjectItem(j, "results");
    assert_int_equal(cJSON_GetArraySize(res), 3);
    assert_true(num(cJSON_GetArrayItem(res, 0), "status") == 201);
    assert_true(num(cJSON_GetArrayItem(res, 2), "status") == 204);
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "GET", "/items/3", NULL, NULL), 404);

    before = rc_fingerprint(g_env.db);
    assert_int_equal(
        rc_call(&r, &g_env, "POST", "/_batch",
                "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"b2\"}},"
                "{\"op\":\"update\",\"table\":\"items\",\"id\":999,\"row\":{\"qty\":1}}]",
                NULL),
        404);
    assert_non_null(strstr(r.body, "operation 1"));
    j = rc_json(&r);
    assert_true(num(cJSON_GetObjectItem(j, "error"), "operation") == 1);
    assert_string_equal(rc_error_code(j), "not_found");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_status(&g_env, "POST", "/_batch",
                               "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"b3\"}},"
                               "{\"op\":\"frobnicate\",\"table\":\"items\"}]",
                               NULL),
                     400);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
}

static void test_outside_writes_visible(void **state)
{
    rt_resp r;
    rc_item it = {.name = "from-app", .qty = 7};
    char path[64], out[256];

    (void)state;
    assert_int_equal(verso_record_insert(g_env.db, &rc_item_def, &it), 0);
    snprintf(path, sizeof(path), "/items/%lld", (long long)it.id);
    assert_int_equal(rc_call(&r, &g_env, "GET", path, NULL, NULL), 200);
    assert_non_null(strstr(r.body, "from-app"));
    rt_resp_free(&r);

    assert_int_equal(orm_sqlite_shell(g_env.path,
                                      "INSERT INTO items(id, name) VALUES (777, 'from-shell');",
                                      out, sizeof(out)),
                     0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items/777", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "from-shell"));
    assert_null(strstr(r.body, "\"version\":null"));
    rt_resp_free(&r);
}

/* A table written only by replication: readable, every write 403. */
static void test_replicated_table_read_only(void **state)
{
    verso_column cols[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                           {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                           {"label", VERSO_TEXT, 0}};
    const char *names[] = {"id", "version", "label"};
    verso_value vals[] = {VERSO_VALUE_INT(5), VERSO_VALUE_INT(1), VERSO_VALUE_TEXT("copy")};
    char *before, *after;
    rt_resp r;

    (void)state;
    assert_int_equal(verso_apply_begin(g_env.db, false), 0);
    assert_int_equal(verso_apply_table(g_env.db, "replica", cols, 3), 0);
    assert_int_equal(verso_apply_upsert(g_env.db, "replica", names, vals, 3), 0);
    assert_int_equal(verso_apply_commit(g_env.db, "11111111-2222-3333-4444-555555555555", 1), 0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/replica/5", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "\"copy\""));
    rt_resp_free(&r);
    before = rc_fingerprint(g_env.db);
    assert_int_equal(rc_status(&g_env, "POST", "/replica", "{\"label\":\"x\"}", NULL), 403);
    assert_int_equal(rc_status(&g_env, "PATCH", "/replica/5", "{\"label\":\"x\"}", NULL), 403);
    assert_int_equal(rc_status(&g_env, "DELETE", "/replica/5", NULL, NULL), 403);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
}

/* The value of the metrics line that starts with name (-1 if absent). */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static char *metrics_text(void)
{
    rt_resp r;
    char ct[128], *text;

    assert_int_equal(rc_call(&r, &g_env, "GET", "/_metrics", NULL, NULL), 200);
    assert_non_null(strstr(rt_header(&r, "Content-Type", ct, sizeof(ct)), "text/plain"));
    text = strdup(r.body);
    rt_resp_free(&r);
    return text;
}

#define GET_200   "verso_http_requests_total{route=\"get\",status=\"200\"}"
#define GET_404   "verso_http_requests_total{route=\"get\",status=\"404\"}"
#define LIST_200  "verso_http_requests_total{route=\"list\",status=\"200\"}"
#define NONE_404  "verso_http_requests_total{route=\"none\",status=\"404\"}"
#define LAT_INF   "verso_http_request_seconds_bucket{le=\"+Inf\"}"
#define LAT_COUNT "verso_http_request_seconds_count"
#define ROWS      "verso_rows_served_total"

/* Counters move by exactly what was asked between two scrapes. */
static void test_metrics(void **state)
{
    char *a, *b;
    verso_info info;

    (void)state;
    assert_int_equal(rc_status(&g_env, "GET", "/items/2", NULL, NULL), 200);
    a = metrics_text();
    for (int i = 0; i < 3; i++)
        assert_int_equal(rc_status(&g_env, "GET", "/items/2", NULL, NULL), 200);
    assert_int_equal(rc_status(&g_env, "GET", "/items/99999", NULL, NULL), 404);
    assert_int_equal(rc_status(&g_env, "GET", "/items?limit=2", NULL, NULL), 200);
    assert_int_equal(rc_status(&g_env, "GET", "/_nosuch", NULL, NULL), 404);
    b = metrics_text();
    assert_true(metric(b, GET_200) - metric(a, GET_200) == 3);
    assert_true(metric(b, GET_404) - (metric(a, GET_404) < 0 ? 0 : metric(a, GET_404)) == 1);
    assert_true(metric(b, LIST_200) - metric(a, LIST_200) == 1);
    assert_true(metric(b, NONE_404) - (metric(a, NONE_404) < 0 ? 0 : metric(a, NONE_404)) == 1);
    /* Seven requests: the six above and the first scrape itself. */
    assert_true(metric(b, LAT_COUNT) - metric(a, LAT_COUNT) == 7);
    assert_true(metric(b, LAT_INF) == metric(b, LAT_COUNT));
    assert_true(metric(b, "verso_http_request_seconds_bucket{le=\"0.0001\"}") <=
                metric(b, "verso_http_request_seconds_bucket{le=\"1\"}"));
    assert_true(metric(b, ROWS) - metric(a, ROWS) == 3 + 2);
    assert_int_equal(verso_db_info(&info, g_env.db), 0);
    assert_true(metric(b, "verso_head_version") == (double)info.head);
    assert_true(metric(b, "verso_horizon_version") == (double)info.horizon);
    free(a);
    free(b);
}

/* Another process changes a table's columns: GET by id answers with the new
 * schema at once, whether or not another route noticed the change first. */
static void test_schema_change_seen(void **state)
{
    rt_resp r;
    char out[256];

    (void)state;
    assert_int_equal(
        verso_db_exec(g_env.db, "CREATE TABLE gadgets(id INTEGER PRIMARY KEY, label TEXT)"), 0);
    assert_int_equal(verso_db_track(g_env.db, "gadgets", NULL), 0);
    assert_int_equal(rc_status(&g_env, "POST", "/gadgets", "{\"id\":1,\"label\":\"g\"}", NULL),
                     201);
    assert_int_equal(rc_status(&g_env, "GET", "/gadgets/1", NULL, NULL), 200);

    assert_int_equal(orm_sqlite_shell(g_env.path,
                                      "ALTER TABLE gadgets ADD COLUMN color TEXT;"
                                      "UPDATE gadgets SET color = 'red' WHERE id = 1;",
                                      out, sizeof(out)),
                     0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/gadgets/1", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "\"color\":\"red\""));
    rt_resp_free(&r);

    assert_int_equal(orm_sqlite_shell(g_env.path,
                                      "ALTER TABLE gadgets ADD COLUMN size INTEGER;"
                                      "UPDATE gadgets SET size = 42 WHERE id = 1;",
                                      out, sizeof(out)),
                     0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/gadgets?id=eq.1", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "\"size\":42"));
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/gadgets/1", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "\"size\":42"));
    assert_non_null(strstr(r.body, "\"color\":\"red\""));
    rt_resp_free(&r);

    /* A dropped column: the cached statement no longer compiles. */
    assert_int_equal(
        orm_sqlite_shell(g_env.path, "ALTER TABLE gadgets DROP COLUMN color;", out, sizeof(out)),
        0);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/gadgets/1", NULL, NULL), 200);
    assert_null(strstr(r.body, "color"));
    assert_non_null(strstr(r.body, "\"size\":42"));
    rt_resp_free(&r);
}

/* A schema reload keeps the old copy until the server stops: unknown names
 * and /_info must not reload an unchanged schema, a change reloads it once. */
static void test_schema_reload_only_on_change(void **state)
{
    char *a, *b, path[64];

    (void)state;
    assert_int_equal(rc_status(&g_env, "GET", "/_info", NULL, NULL), 200);
    a = metrics_text();
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof(path), "/nosuch%d", i);
        assert_int_equal(rc_status(&g_env, "GET", path, NULL, NULL), 404);
        assert_int_equal(rc_status(&g_env, "GET", "/_info", NULL, NULL), 200);
    }
    b = metrics_text();
    assert_true(metric(a, "verso_schema_reloads_total") >= 1);
    assert_true(metric(b, "verso_schema_reloads_total") == metric(a, "verso_schema_reloads_total"));
    free(b);

    assert_int_equal(verso_db_exec(g_env.db, "CREATE TABLE later(id INTEGER PRIMARY KEY, v TEXT)"),
                     0);
    assert_int_equal(verso_db_track(g_env.db, "later", NULL), 0);
    assert_int_equal(rc_status(&g_env, "GET", "/later", NULL, NULL), 200);
    assert_int_equal(rc_status(&g_env, "GET", "/_info", NULL, NULL), 200);
    assert_int_equal(rc_status(&g_env, "GET", "/nosuch", NULL, NULL), 404);
    b = metrics_text();
    assert_true(metric(b, "verso_schema_reloads_total") ==
                metric(a, "verso_schema_reloads_total") + 1);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_info_status),
        cmocka_unit_test(test_list_and_get),
        cmocka_unit_test(test_not_found_and_methods),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_conflict_409),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_delete_and_changes),
        cmocka_unit_test(test_outside_writes_visible),
        cmocka_unit_test(test_replicated_table_read_only),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_schema_change_seen),
        cmocka_unit_test(test_schema_reload_only_on_change),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
