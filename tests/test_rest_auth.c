/* End-to-end: the access matrix (role x route x method) with tokens from a
 * config file, and the refusal to serve a network address without tokens. */
#include "rest_common.h"

enum {
    R_NONE,
    R_BAD,
    R_READ,
    R_WRITE,
    R_REPL,
    R_ADMIN,
    R_OTHER,
    R_ITEMS,
    R_READ_ITEMS,
    R_REPL_ITEMS,
    NROLES
};

static const char *const k_tokens[NROLES] = {
    [R_NONE] = NULL,
    [R_BAD] = "not-a-known-token",
    [R_READ] = "tok-read",
    [R_WRITE] = "tok-write",
    [R_REPL] = "tok-replicate",
    [R_ADMIN] = "tok-admin",
    [R_OTHER] = "tok-other",
    [R_ITEMS] = "tok-items-writer",
    [R_READ_ITEMS] = "tok-items-reader",
    [R_REPL_ITEMS] = "tok-items-replicator",
};

static rc_env g_env;

/* SHA-256 hex of s, computed by the sha256sum command. */
static void sha256_hex(char out[65], const char *s)
{
    char cmd[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | sha256sum", s);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    pclose(p);
    assert_int_equal(strlen(out), 64);
}

static int setup(void **state)
{
    static const char *const roles[NROLES] = {[R_READ] = "read",
                                              [R_WRITE] = "write",
                                              [R_REPL] = "replicate",
                                              [R_ADMIN] = "admin",
                                              [R_OTHER] = "write other",
                                              [R_ITEMS] = "write items",
                                              [R_READ_ITEMS] = "read items",
                                              [R_REPL_ITEMS] = "replicate items"};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char text[2048] = "# tokens for the auth test\nmax-body 65536\nclient-token ignored\n", h[65];
    char *cfg;

    (void)state;
    for (int r = R_READ; r < NROLES; r++) {
        sha256_hex(h, k_tokens[r]);
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "token %s %s\n", h, roles[r]);
    }
    cfg = rc_write_file("rest_auth.conf", text);
    o.config_path = cfg;
    rc_start_with(&g_env, "rest_auth", &o);
    free(cfg);
    rc_seed(g_env.db, 300);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

typedef struct cell {
    const char *method;
    const char *path; /* %d (also in body) = a row id distinct per role and cell */
    const char *body;
    long want[NROLES];
} cell;

#define OPEN                                                                                       \
    {                                                                                              \
        200, 200, 200, 200, 200, 200, 200, 200, 200, 200                                           \
    }

static const cell k_matrix[] = {
    {"GET", "/_health", NULL, OPEN},
    {"GET", "/_info", NULL, {401, 401, 200, 200, 200, 200, 403, 403, 403, 403}},
    {"GET", "/_status", NULL, {401, 401, 403, 403, 403, 200, 403, 403, 403, 403}},
    {"GET", "/_metrics", NULL, {401, 401, 403, 403, 403, 200, 403, 403, 403, 403}},
    {"GET", "/_changes?since=0&limit=5", NULL, {401, 401, 403, 403, 200, 200, 403, 403, 403, 403}},
    {"GET",
     "/_changes?since=0&limit=5&tables=items",
     NULL,
     {401, 401, 403, 403, 200, 200, 403, 403, 403, 200}},
    {"GET", "/items", NULL, {401, 401, 200, 200, 200, 200, 403, 200, 200, 200}},
    {"GET", "/items/%d", NULL, {401, 401, 200, 200, 200, 200, 403, 200, 200, 200}},
    {"POST", "/items", "{\"name\":\"x\"}", {401, 401, 403, 201, 403, 201, 403, 201, 403, 403}},
    {"PUT", "/items/%d", "{\"qty\":1}", {401, 401, 403, 200, 403, 200, 403, 200, 403, 403}},
    {"PATCH", "/items/%d", "{\"qty\":2}", {401, 401, 403, 200, 403, 200, 403, 200, 403, 403}},
    {"DELETE", "/items/%d", NULL, {401, 401, 403, 204, 403, 204, 403, 204, 403, 403}},
    {"POST",
     "/_batch",
     "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"b\"}}]",
     {401, 401, 403, 200, 403, 200, 403, 200, 403, 403}},
    /* An empty batch changes nothing, but still needs a known token. */
    {"POST", "/_batch", "[]", {401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"POST",
     "/_batch",
     "[{\"op\":\"delete\",\"table\":\"items\",\"id\":%d}]",
     {401, 401, 403, 200, 403, 200, 403, 200, 403, 403}},
};

/* %d in the path and body is replaced by id. */
static long call_as(int role, const cell *c, int id)
{
    char path[128], body[256], authz[128];
    const char *headers[2] = {NULL, NULL};

    snprintf(path, sizeof(path), c->path, id);
    if (c->body)
        snprintf(body, sizeof(body), c->body, id);
    if (k_tokens[role]) {
        snprintf(authz, sizeof(authz), "Authorization: Bearer %s", k_tokens[role]);
        headers[0] = authz;
    }
    return rc_status(&g_env, c->method, path, c->body ? body : NULL, headers);
}

/* Reads and empty batches change nothing; every other success changes the database. */
static bool changes_nothing(const cell *c)
{
    return !strcmp(c->method, "GET") || (c->body && !strcmp(c->body, "[]"));
}

static void test_matrix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_matrix) / sizeof(k_matrix[0]); i++) {
        for (int role = 0; role < NROLES; role++) {
            const cell *c = &k_matrix[i];
            char *before = rc_fingerprint(g_env.db), *after;
            long st = call_as(role, c, 10 + role + NROLES * (int)i);
            if (st != c->want[role])
                fprintf(stderr, "%s %s as %s: %ld, want %ld\n", c->method, c->path,
                        k_tokens[role] ? k_tokens[role] : "(none)", st, c->want[role]);
            assert_int_equal(st, c->want[role]);
            after = rc_fingerprint(g_env.db);
            if (st >= 400 || changes_nothing(c))
                assert_string_equal(before, after);
            else
                assert_string_not_equal(before, after);
            verso_free(before);
            verso_free(after);
        }
    }
}

static void test_error_bodies(void **state)
{
    rt_resp r;
    cJSON *j;
    char h[128];

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/items", NULL,
                             (const char *[]){"Authorization: Basic dXNlcjpwYXNz", NULL}),
                     401);
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "unauthorized");
    assert_string_equal(rt_header(&r, "Content-Type", h, sizeof(h)), "application/json");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &g_env, "DELETE", "/items/5", NULL,
                             (const char *[]){"Authorization: Bearer tok-read", NULL}),
                     403);
    j = rc_json(&r);
    assert_string_equal(rc_error_code(j), "forbidden");
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(
        rc_status(&g_env, "GET", "/items", NULL, (const char *[]){"Authorization: Bearer ", NULL}),
        401);
    assert_int_equal(rc_status(&g_env, "GET", "/items", NULL,
                               (const char *[]){"Authorization: Bearer tok-read ", NULL}),
                     401);
    assert_int_equal(rc_status(&g_env, "GET", "/items", NULL,
                               (const char *[]){"Authorization: bearer tok-read", NULL}),
                     200);
    /* The config file's max-body (65536) applies. */
    char *big = calloc(1, 70000);
    memset(big, ' ', 69999);
    memcpy(big, "{\"name\":\"x\"}", 12);
    assert_int_equal(rc_status(&g_env, "POST", "/items", big,
                               (const char *[]){"Authorization: Bearer tok-admin", NULL}),
                     413);
    big[60000] = 0;
    assert_int_equal(rc_status(&g_env, "POST", "/items", big,
                               (const char *[]){"Authorization: Bearer tok-admin", NULL}),
                     201);
    free(big);
}

static void test_refuses_network_without_token(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    verso_rest *srv = (verso_rest *)&o;
    char why[256] = "";

    (void)state;
    o.host = "0.0.0.0";
    o.db_path = g_env.path;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EAUTH);
    assert_null(srv);
    assert_non_null(strstr(why, "token"));
    assert_non_null(strstr(why, "0.0.0.0"));
}

/* "localhost" is bound as its loopback address: open without tokens. */
static void test_localhost_without_token(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    rc_env e;
    char why[256] = "";

    (void)state;
    memset(&e, 0, sizeof(e));
    o.host = "localhost";
    o.db_path = g_env.path;
    assert_int_equal(verso_rest_start(&e.srv, NULL, &o, why, sizeof(why)), 0);
    assert_string_equal(verso_rest_host(e.srv), "127.0.0.1");
    snprintf(e.base, sizeof(e.base), "http://127.0.0.1:%d", verso_rest_port(e.srv));
    assert_int_equal(rc_status(&e, "GET", "/items/1", NULL, NULL), 200);
    verso_rest_stop(e.srv);
}

static void test_bad_config(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    verso_rest *srv = NULL;
    char why[256] = "";
    char *cfg = rc_write_file("rest_bad.conf", "max-body 10\nno-such-setting 1\n");

    (void)state;
    o.db_path = g_env.path;
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
    assert_non_null(strstr(why, ":2: unknown setting \"no-such-setting\""));
    assert_int_equal(strncmp(why, cfg, strlen(cfg)), 0);
    free(cfg);
    cfg = rc_write_file("rest_bad2.conf", "token abcd read\n");
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
    free(cfg);
    o.config_path = "/nonexistent/verso.conf";
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), VERSO_EINVAL);
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_refuses_network_without_token),
        cmocka_unit_test(test_localhost_without_token),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
