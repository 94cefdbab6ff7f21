/* End-to-end: the filter grammar, select/order/limit/offset, and keyset
 * pagination through 10,000 rows by following the Link header. */
#include "rest_common.h"

#define NROWS 10000

static rc_env g_env;

static int setup(void **state)
{
    (void)state;
    rc_start(&g_env, "rest_query");
    rc_seed(g_env.db, NROWS);
    assert_int_equal(verso_db_exec(g_env.db, "UPDATE items SET sku = 'SKU-' || id WHERE id <= 5"),
                     0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

/* GET path; returns the parsed array; *next gets the Link target ("" if none). */
static cJSON *get_page(const char *path, long want, char *next, size_t nnext)
{
    rt_resp r;
    cJSON *j;
    char link[4096];
    long st = rc_call(&r, &g_env, "GET", path, NULL, NULL);

    if (st != want)
        fprintf(stderr, "GET %s -> %ld %s\n", path, st, r.body);
    assert_int_equal(st, want);
    j = rc_json(&r);
    next[0] = 0;
    if (rt_header(&r, "Link", link, sizeof(link))) {
        char *lt = strchr(link, '<'), *gt = strchr(link, '>');
        assert_non_null(lt);
        assert_non_null(gt);
        assert_non_null(strstr(gt, "rel=\"next\""));
        snprintf(next, nnext, "%.*s", (int)(gt - lt - 1), lt + 1);
    }
    rt_resp_free(&r);
    return j;
}

static int64_t count_of(const char *path)
{
    char next[16];
    cJSON *j = get_page(path, 200, next, sizeof(next));
    int64_t n = cJSON_GetArraySize(j);

    cJSON_Delete(j);
    return n;
}

static double field(cJSON *o, const char *k)
{
    cJSON *j = cJSON_GetObjectItem(o, k);

    assert_true(cJSON_IsNumber(j));
    return j->valuedouble;
}

static void test_paginate_all_rows(void **state)
{
    static unsigned char seen[NROWS + 1];
    char path[4096] = "/items?limit=137", next[4096];
    int total = 0, pages = 0;
    double last = 0;

    (void)state;
    memset(seen, 0, sizeof(seen));
    do {
        cJSON *j = get_page(path, 200, next, sizeof(next)), *row;
        cJSON_ArrayForEach(row, j)
        {
            int id = (int)field(row, "id");
            assert_true(id >= 1 && id <= NROWS);
            assert_int_equal(seen[id], 0);
            assert_true(id > last);
            seen[id] = 1;
            last = id;
            total++;
        }
        cJSON_Delete(j);
        snprintf(path, sizeof(path), "%s", next);
        pages++;
    } while (path[0] && pages < 200);
    assert_int_equal(total, NROWS);
    assert_int_equal(pages, NROWS / 137 + 1);
}

/* Ordered by a non-unique column, descending, with a filter: the cursor
 * carries (qty, name, id) so ties never lose or repeat a row. */
static void test_paginate_ordered_filtered(void **state)
{
    static unsigned char seen[NROWS + 1];
    char path[4096] = "/items?qty=gte.3&order=qty.desc,name&limit=250&select=id,qty", next[4096];
    int total = 0, pages = 0;
    double lastq = 1e9;
    int64_t expect = 0;
    verso_cond c = {.column = "qty", .op = VERSO_GTE, .value = VERSO_VALUE_INT(3)};

    (void)state;
    memset(seen, 0, sizeof(seen));
    assert_int_equal(verso_query_count(&expect, g_env.db, "items", &c, 1), 0);
    do {
        cJSON *j = get_page(path, 200, next, sizeof(next)), *row;
        cJSON_ArrayForEach(row, j)
        {
            int id = (int)field(row, "id");
            double q = field(row, "qty");
            assert_null(cJSON_GetObjectItem(row, "name"));
            assert_true(q >= 3 && q <= lastq);
            assert_int_equal(seen[id], 0);
            seen[id] = 1;
            lastq = q;
            total++;
        }
        cJSON_Delete(j);
        snprintf(path, sizeof(path), "%s", next);
        pages++;
    } while (path[0] && pages < 200);
    assert_int_equal(total, expect);
}

/* Writes while paging: rows inserted meanwhile (higher ids) are seen once,
 * rows deleted before their page is read are not seen, every other row once. */
static void test_paginate_while_writing(void **state)
{
    static unsigned char seen[NROWS + 200], gone[NROWS + 200];
    char path[4096] = "/items?limit=500&select=id", next[4096];
    int pages = 0, inserted = 0;
    int64_t max_seen = 0, total_before = 0;

    (void)state;
    memset(seen, 0, sizeof(seen));
    memset(gone, 0, sizeof(gone));
    assert_int_equal(verso_query_count(&total_before, g_env.db, "items", NULL, 0), 0);
    do {
        cJSON *j = get_page(path, 200, next, sizeof(next)), *row;
        cJSON_ArrayForEach(row, j)
        {
            int id = (int)field(row, "id");
            assert_true(id > 0 && id < NROWS + 200);
            assert_int_equal(seen[id], 0);
            assert_int_equal(gone[id], 0);
            seen[id] = 1;
            max_seen = id;
        }
        cJSON_Delete(j);
        /* The application writes between pages: one new row, one row ahead deleted. */
        rc_item it = {.name = "late"};
        assert_int_equal(verso_record_insert(g_env.db, &rc_item_def, &it), 0);
        inserted++;
        if (max_seen + 7 <= NROWS) {
            assert_int_equal(verso_record_delete(g_env.db, &rc_item_def, max_seen + 7), 0);
            gone[max_seen + 7] = 1;
        }
        snprintf(path, sizeof(path), "%s", next);
        pages++;
    } while (path[0] && pages < 100);
    /* Each inserted row but the last (written after the final page) was seen. */
    assert_int_equal(total_before, NROWS);
    for (int i = 1; i <= inserted; i++)
        assert_int_equal(seen[NROWS + i], i < inserted);
    for (int id = 1; id <= NROWS; id++)
        assert_true(seen[id] != gone[id]);
}

static void test_filters(void **state)
{
    (void)state;
    assert_int_equal(count_of("/items?id=eq.42"), 1);
    assert_int_equal(count_of("/items?id=lte.10"), 10);
    assert_int_equal(count_of("/items?id=lt.10"), 9);
    assert_int_equal(count_of("/items?id=gt.9990"), 10);
    assert_int_equal(count_of("/items?id=gte.9990"), 11);
    assert_int_equal(count_of("/items?id=lte.10&qty=neq.3"), 9);
    assert_int_equal(count_of("/items?id=in.(1,2,3,99999)"), 3);
    assert_int_equal(count_of("/items?id=in.4,5"), 2);
    assert_int_equal(count_of("/items?name=like.item-999*"), 11);
    assert_int_equal(count_of("/items?name=eq.item-7"), 1);
    assert_int_equal(count_of("/items?sku=is.notnull"), 5);
    assert_int_equal(count_of("/items?sku=is.null&id=lte.8"), 3);
    assert_int_equal(count_of("/items?price=gt.4999.5"), 1);
    assert_int_equal(count_of("/items?active=eq.true&id=lte.10"), 5);
    assert_int_equal(count_of("/items?id=gt.100&id=lt.105"), 4);
    assert_int_equal(count_of("/items?name=eq.it%27s%20%22quoted%22"), 0);
    assert_int_equal(count_of("/items"), 100);
    assert_int_equal(count_of("/items?limit=5000"), 1000);
    assert_int_equal(count_of("/items?price=gte.-1e308&id=lte.3"), 3);
}

static void test_select_order_offset(void **state)
{
    char next[4096];
    cJSON *j, *row;

    (void)state;
    j = get_page("/items?select=name&order=id.desc&limit=3", 200, next, sizeof(next));
    assert_int_equal(cJSON_GetArraySize(j), 3);
    row = cJSON_GetArrayItem(j, 0);
    assert_string_equal(cJSON_GetObjectItem(row, "name")->valuestring, "item-10000");
    assert_null(cJSON_GetObjectItem(row, "id"));
    assert_null(cJSON_GetObjectItem(row, "version"));
    assert_true(next[0] != 0);
    cJSON_Delete(j);
    /* The cursor continues after the last row even though id was not selected. */
    j = get_page(next, 200, next, sizeof(next));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "name")->valuestring,
                        "item-9997");
    cJSON_Delete(j);

    j = get_page("/items?order=id&offset=20&limit=2", 200, next, sizeof(next));
    assert_true(field(cJSON_GetArrayItem(j, 0), "id") == 21);
    cJSON_Delete(j);

    /* Two order parameters: qty descending, then name descending. */
    j = get_page("/items?order=qty.desc&order=name.desc&select=id,qty,name&limit=2", 200, next,
                 sizeof(next));
    assert_true(field(cJSON_GetArrayItem(j, 0), "qty") == 9);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "name")->valuestring,
                        "item-9999");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "name")->valuestring,
                        "item-999");
    cJSON_Delete(j);

    /* The default page is 100 rows, with a Link to the next. */
    j = get_page("/items?select=id", 200, next, sizeof(next));
    assert_int_equal(cJSON_GetArraySize(j), 100);
    assert_non_null(strstr(next, "after="));
    cJSON_Delete(j);
}

static void test_bad_queries(void **state)
{
    static const char *const bad[] = {
        "/items?nosuch=eq.1",
        "/items?qty=eq.abc",
        "/items?qty=zz.1",
        "/items?qty=1",
        "/items?qty=in.()",
        "/items?qty=is.maybe",
        "/items?select=nosuch",
        "/items?order=nosuch",
        "/items?order=id.sideways",
        "/items?limit=0",
        "/items?limit=-5",
        "/items?limit=ten",
        "/items?offset=99999999",
        "/items?after=WzFd&order=qty",
        "/items?after=bm90IGpzb24",
        "/items?after=WyJ4Il0",
        "/items?price=like.1",
        "/items?active=eq.maybe",
        "/items?offset=1&after=WzFd",
        "/items?qty=eq.1%3B%20DROP%20TABLE%20items",
        "/items?price=eq.nan",
        "/items?price=gt.inf",
        "/items?price=lt.1e999",
        "/items?order=qty&order=nosuch",
    };
    char path[2048];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rt_resp r;
        long st = rc_call(&r, &g_env, "GET", bad[i], NULL, NULL);
        if (st != 400)
            fprintf(stderr, "%s -> %ld %s\n", bad[i], st, r.body);
        assert_int_equal(st, 400);
        cJSON *j = rc_json(&r);
        assert_string_equal(rc_error_code(j), "bad_request");
        cJSON_Delete(j);
        rt_resp_free(&r);
    }
    /* max_filters (32) filters are fine, one more is 400. */
    n = (size_t)snprintf(path, sizeof(path), "/items?");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "%sid=gte.%d", i ? "&" : "", i);
    assert_int_equal(rc_status(&g_env, "GET", path, NULL, NULL), 200);
    snprintf(path + n, sizeof(path) - n, "&id=gte.32");
    assert_int_equal(rc_status(&g_env, "GET", path, NULL, NULL), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paginate_all_rows), cmocka_unit_test(test_paginate_ordered_filtered),
        cmocka_unit_test(test_filters),           cmocka_unit_test(test_select_order_offset),
        cmocka_unit_test(test_bad_queries),       cmocka_unit_test(test_paginate_while_writing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
