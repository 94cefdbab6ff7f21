/* End-to-end: HTTPS with a self-signed certificate made by the test with the
 * openssl command; certificate checks on the client side; plain HTTP on the
 * TLS port is refused; unusable certificate files refuse to start. */
#include "rest_common.h"

static char g_cert[512], g_key[512];
static rc_env g_env;

static void make_cert(void)
{
    char cmd[2048];

    snprintf(g_cert, sizeof(g_cert), "%s", orm_tmp_path("rest_tls_cert.pem"));
    snprintf(g_key, sizeof(g_key), "%s", orm_tmp_path("rest_tls_key.pem"));
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 2 "
             "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
             ">/dev/null 2>&1",
             g_key, g_cert);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    make_cert();
    o.tls_cert = g_cert;
    o.tls_key = g_key;
    rc_start_with(&g_env, "rest_tls", &o);
    rc_seed(g_env.db, 5);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

static void test_https_roundtrip(void **state)
{
    rt_resp r;
    cJSON *j;
    char loc[64], path[80];

    (void)state;
    assert_true(verso_rest_tls(g_env.srv));
    assert_int_equal(strncmp(g_env.base, "https://", 8), 0);
    rt_cainfo = g_cert;
    assert_int_equal(rc_status(&g_env, "GET", "/_health", NULL, NULL), 200);
    assert_int_equal(rc_call(&r, &g_env, "POST", "/items", "{\"name\":\"secure\"}", NULL), 201);
    assert_non_null(rt_header(&r, "Location", loc, sizeof(loc)));
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &g_env, "GET", loc, NULL, NULL), 200);
    j = rc_json(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "secure");
    cJSON_Delete(j);
    rt_resp_free(&r);
    /* A chunked body over TLS (answered with Connection: close). */
    assert_int_equal(rc_call(&r, &g_env, "POST", "/items", "{\"name\":\"chunked\"}",
                             (const char *[]){"Transfer-Encoding: chunked", NULL}),
                     201);
    assert_non_null(strstr(r.body, "\"chunked\""));
    rt_resp_free(&r);
    snprintf(path, sizeof(path), "/items?limit=2");
    assert_int_equal(rc_call(&r, &g_env, "GET", path, NULL, NULL), 200);
    assert_non_null(rt_header(&r, "Link", loc, sizeof(loc)));
    rt_resp_free(&r);
    rt_cainfo = NULL;
}

static void test_untrusted_and_plain_refused(void **state)
{
    rc_env plain = g_env;
    rt_resp r;

    (void)state;
    /* Without our CA the client must refuse the self-signed certificate. */
    rt_cainfo = NULL;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_health", NULL, NULL), 0);
    rt_resp_free(&r);
    /* Plain HTTP to the TLS port never gets a 200. */
    snprintf(plain.base, sizeof(plain.base), "http://127.0.0.1:%d", verso_rest_port(g_env.srv));
    assert_int_not_equal(rc_call(&r, &plain, "GET", "/_health", NULL, NULL), 200);
    rt_resp_free(&r);
    rt_cainfo = g_cert;
    assert_int_equal(rc_status(&g_env, "GET", "/_health", NULL, NULL), 200);
    rt_cainfo = NULL;
}

static void test_bad_tls_files(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    verso_rest *srv = NULL;
    char why[256] = "";

    (void)state;
    o.db_path = g_env.path;
    o.tls_cert = g_key; /* a key is not a certificate */
    o.tls_key = g_cert;
    assert_true(verso_rest_start(&srv, NULL, &o, why, sizeof(why)) < 0);
    assert_null(srv);
    assert_non_null(strstr(why, "TLS"));
    o.tls_cert = g_cert;
    o.tls_key = NULL;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_roundtrip),
        cmocka_unit_test(test_untrusted_and_plain_refused),
        cmocka_unit_test(test_bad_tls_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
