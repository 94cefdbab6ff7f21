/* The CLI and REST describe a table the same way: `verso info DB` and the
 * server's GET /_info name the same column properties (`notnull`, not
 * `not_null`), with the same values, and REST's filter `is.notnull` is the
 * operator docs/rest.md names. */
#include <sys/wait.h>

#include "rest_common.h"

static char *run_info(const char *db)
{
    const char *bin = getenv("VERSO_BIN");
    char cmd[1200], chunk[1024];
    verso_buf out = VERSO_BUF_INIT;
    size_t n;
    assert_non_null(bin);
    snprintf(cmd, sizeof cmd, "'%s' info '%s'", bin, db);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        assert_int_equal(verso_buf_append(&out, chunk, n), 0);
    assert_int_equal(pclose(p), 0);
    return verso_buf_detach(&out);
}

static const cJSON *columns_of(const cJSON *info, const char *table)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(info, "tables"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, table) == 0)
            return cJSON_GetObjectItemCaseSensitive(t, "columns");
    }
    fail_msg("no table %s", table);
    return NULL;
}

static bool prop(const cJSON *col, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(col, key));
}

static void test_info_column_properties_agree(void **state)
{
    rc_env e;
    rt_resp r;
    (void)state;
    rc_start(&e, "agree");
    assert_int_equal(rc_call(&r, &e, "GET", "/_info", NULL, NULL), 200);
    cJSON *rest = rc_json(&r);
    char *text = run_info(e.path);
    cJSON *cli = cJSON_Parse(text);
    assert_non_null(cli);
    assert_null(strstr(text, "not_null"));
    const cJSON *rc = columns_of(rest, "items"), *cc = columns_of(cli, "items");
    assert_int_equal(cJSON_GetArraySize(rc), cJSON_GetArraySize(cc));
    int notnull = 0;
    for (int i = 0; i < cJSON_GetArraySize(rc); i++) {
        const cJSON *a = cJSON_GetArrayItem(rc, i), *b = cJSON_GetArrayItem(cc, i);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "name")->valuestring,
                            cJSON_GetObjectItemCaseSensitive(b, "name")->valuestring);
        assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(a, "notnull")));
        assert_int_equal(prop(a, "notnull"), prop(b, "notnull"));
        assert_int_equal(prop(a, "id"), prop(b, "id"));
        assert_int_equal(prop(a, "version"), prop(b, "version"));
        notnull += prop(b, "notnull");
    }
    assert_int_equal(notnull, 1); /* items.name */
    cJSON_Delete(cli);
    cJSON_Delete(rest);
    free(text);
    rt_resp_free(&r);
    rc_stop(&e);
}

/* The filter docs/rest.md documents for "not null" is accepted. */
static void test_notnull_filter(void **state)
{
    rc_env e;
    (void)state;
    rc_start(&e, "agree_filter");
    rc_seed(e.db, 2);
    assert_int_equal(rc_status(&e, "GET", "/items?name=is.notnull", NULL, NULL), 200);
    assert_int_equal(rc_status(&e, "GET", "/items?name=is.null", NULL, NULL), 200);
    assert_int_equal(rc_status(&e, "GET", "/items?name=is.not_null", NULL, NULL), 400);
    rc_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_column_properties_agree),
        cmocka_unit_test(test_notnull_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
