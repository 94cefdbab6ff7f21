/* CORS for browser clients: no CORS headers by default; allowed origins
 * (verso_rest_options.cors_origins, config cors-origin lines) get their
 * preflight answered (204 with Allow-Origin/Methods/Headers/Max-Age) without
 * a token, and Access-Control-Allow-Origin, Expose-Headers and Vary: Origin
 * on ordinary answers; other origins get none of it. */
#include "rest_common.h"

#define APP "https://app.example.com"

static const char *const k_preflight_app[] = {
    "Origin: " APP, "Access-Control-Request-Method: POST",
    "Access-Control-Request-Headers: authorization, content-type", NULL};
static const char *const k_preflight_evil[] = {"Origin: https://evil.example",
                                               "Access-Control-Request-Method: DELETE", NULL};
static const char *const k_from_app[] = {"Origin: " APP, NULL};
static const char *const k_from_evil[] = {"Origin: https://evil.example", NULL};

static bool has_header(const rt_resp *r, const char *name)
{
    char buf[256];

    return rt_header(r, name, buf, sizeof(buf)) != NULL;
}

static void expect_header(const rt_resp *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = rt_header(r, name, buf, sizeof(buf));

    if (!v || strcmp(v, want))
        fail_msg("%s: got \"%s\", want \"%s\"\n%s", name, v ? v : "(absent)", want, r->headers);
}

static void expect_no_cors(const rt_resp *r)
{
    assert_false(has_header(r, "Access-Control-Allow-Origin"));
    assert_false(has_header(r, "Access-Control-Allow-Methods"));
    assert_false(has_header(r, "Access-Control-Expose-Headers"));
}

static void start_cors(rc_env *e, const char *tag, const char *const *origins, size_t n)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    o.cors_origins = origins;
    o.ncors_origins = n;
    rc_start_with(e, tag, &o);
    rc_seed(e->db, 2);
}

static void test_default_no_cors(void **state)
{
    rc_env e;
    rt_resp r;
    cJSON *j;

    (void)state;
    rc_start(&e, "rest_cors_default");
    rc_seed(e.db, 1);
    assert_int_equal(rc_call(&r, &e, "GET", "/items/1", NULL, k_from_app), 200);
    expect_no_cors(&r);
    assert_false(has_header(&r, "Vary"));
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items", NULL, k_preflight_app), 403);
    expect_no_cors(&r);
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "forbidden");
    assert_non_null(strstr(r.body, "cross-origin requests from " APP " are not allowed: add the "
                                   "line \\\"cors-origin " APP "\\\" to the server's config file"));
    cJSON_Delete(j);
    rt_resp_free(&r);
    rc_stop(&e);
}

static void test_preflight(void **state)
{
    static const char *const origins[] = {APP, "http://localhost:3000"};
    rc_env e;
    rt_resp r;
    char *before, *after;

    (void)state;
    start_cors(&e, "rest_cors_preflight", origins, 2);
    before = rc_fingerprint(e.db);
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items", NULL, k_preflight_app), 204);
    expect_header(&r, "Access-Control-Allow-Origin", APP);
    expect_header(&r, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE");
    expect_header(&r, "Access-Control-Allow-Headers",
                  "Authorization, Content-Type, If-Match, If-None-Match");
    expect_header(&r, "Access-Control-Max-Age", "600");
    expect_header(&r, "Vary", "Origin");
    assert_int_equal(r.nbody, 0);
    rt_resp_free(&r);
    /* a row path, a server path and the second origin too */
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items/1", NULL, k_preflight_app), 204);
    rt_resp_free(&r);
    {
        const char *const h[] = {"Origin: http://localhost:3000",
                                 "Access-Control-Request-Method: GET", NULL};
        assert_int_equal(rc_call(&r, &e, "OPTIONS", "/_info", NULL, h), 204);
        expect_header(&r, "Access-Control-Allow-Origin", "http://localhost:3000");
        rt_resp_free(&r);
    }
    /* another origin: refused, no CORS headers */
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items/1", NULL, k_preflight_evil), 403);
    expect_no_cors(&r);
    expect_header(&r, "Vary", "Origin");
    assert_non_null(strstr(r.body, "cors-origin https://evil.example"));
    rt_resp_free(&r);
    /* a similar origin is another origin */
    {
        const char *const h[] = {"Origin: " APP ":443", "Access-Control-Request-Method: GET", NULL};
        assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items", NULL, h), 403);
        expect_no_cors(&r);
        rt_resp_free(&r);
    }
    /* OPTIONS that is not a preflight: as before, 405 with Allow */
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items", NULL, k_from_app), 405);
    rt_resp_free(&r);
    after = rc_fingerprint(e.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
    rc_stop(&e);
}

static void test_answers(void **state)
{
    static const char *const origins[] = {APP};
    rc_env e;
    rt_resp r;

    (void)state;
    start_cors(&e, "rest_cors_answers", origins, 1);
    assert_int_equal(rc_call(&r, &e, "GET", "/items?limit=1", NULL, k_from_app), 200);
    expect_header(&r, "Access-Control-Allow-Origin", APP);
    expect_header(&r, "Access-Control-Expose-Headers", "ETag, Link, Location");
    expect_header(&r, "Vary", "Origin");
    assert_true(has_header(&r, "Link"));
    assert_false(has_header(&r, "Access-Control-Allow-Methods"));
    rt_resp_free(&r);
    /* errors too, so the page can read the message */
    assert_int_equal(rc_call(&r, &e, "GET", "/nosuch", NULL, k_from_app), 404);
    expect_header(&r, "Access-Control-Allow-Origin", APP);
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &e, "POST", "/items", "{\"name\":\"b\"}", k_from_app), 201);
    expect_header(&r, "Access-Control-Allow-Origin", APP);
    rt_resp_free(&r);
    /* other origins and no origin: no CORS headers, Vary still */
    assert_int_equal(rc_call(&r, &e, "GET", "/items/1", NULL, k_from_evil), 200);
    expect_no_cors(&r);
    expect_header(&r, "Vary", "Origin");
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &e, "GET", "/items/1", NULL, NULL), 200);
    expect_no_cors(&r);
    rt_resp_free(&r);
    rc_stop(&e);
}

static void test_any_origin_and_tokens(void **state)
{
    static const char *const origins[] = {"*"};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char text[200], *cfg;
    rc_env e;
    rt_resp r;

    (void)state;
    /* the hash of "t" */
    snprintf(text, sizeof(text), "token %s admin\n",
             "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8");
    cfg = rc_write_file("rest_cors_tokens.conf", text);
    o.config_path = cfg;
    o.cors_origins = origins;
    o.ncors_origins = 1;
    rc_start_with(&e, "rest_cors_any", &o);
    free(cfg);
    /* a preflight carries no token, and needs none */
    assert_int_equal(rc_call(&r, &e, "OPTIONS", "/items", NULL, k_preflight_evil), 204);
    expect_header(&r, "Access-Control-Allow-Origin", "https://evil.example");
    rt_resp_free(&r);
    /* the request itself still does */
    assert_int_equal(rc_call(&r, &e, "DELETE", "/items/1", NULL, k_from_evil), 401);
    expect_header(&r, "Access-Control-Allow-Origin", "https://evil.example");
    rt_resp_free(&r);
    rc_stop(&e);
}

static void test_config_file_origins(void **state)
{
    static const char *const replace[] = {"http://other.example:8000"};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char *cfg = rc_write_file("rest_cors.conf", "# browsers\ncors-origin " APP "\n"
                                                "cors-origin http://[::1]:8080\n");
    rc_env e;
    rt_resp r;

    (void)state;
    o.config_path = cfg;
    rc_start_with(&e, "rest_cors_file", &o);
    assert_int_equal(rc_call(&r, &e, "GET", "/_health", NULL, k_from_app), 200);
    expect_header(&r, "Access-Control-Allow-Origin", APP);
    rt_resp_free(&r);
    rc_stop(&e);
    /* the options' list replaces the file's */
    o = (verso_rest_options)VERSO_REST_OPTIONS_INIT;
    o.config_path = cfg;
    o.cors_origins = replace;
    o.ncors_origins = 1;
    rc_start_with(&e, "rest_cors_file2", &o);
    assert_int_equal(rc_call(&r, &e, "GET", "/_health", NULL, k_from_app), 200);
    expect_no_cors(&r);
    rt_resp_free(&r);
    rc_stop(&e);
    free(cfg);
}

static void test_bad_origins(void **state)
{
    static const char *const bad[] = {"https://app.example.com/",
                                      "app.example.com",
                                      "https://app.example.com/x",
                                      "https://",
                                      "https://a.example:",
                                      "https://a.example:8o",
                                      "",
                                      "null"};
    char path[512];

    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("rest_cors_bad"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        verso_rest_options o = VERSO_REST_OPTIONS_INIT;
        verso_rest *srv = NULL;
        char why[512] = "", want[300];
        verso_db *db = rc_open(path);
        o.port = VERSO_REST_PORT_ANY;
        o.cors_origins = &bad[i];
        o.ncors_origins = 1;
        assert_int_equal(verso_rest_start(&srv, db, &o, why, sizeof(why)), VERSO_EINVAL);
        assert_null(srv);
        snprintf(want, sizeof(want), "cors-origin: \"%s\" is not an origin", bad[i]);
        if (strncmp(why, want, strlen(want)))
            fail_msg("got  %s\nwant %s", why, want);
        verso_db_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_no_cors),
        cmocka_unit_test(test_preflight),
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_any_origin_and_tokens),
        cmocka_unit_test(test_config_file_origins),
        cmocka_unit_test(test_bad_origins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
