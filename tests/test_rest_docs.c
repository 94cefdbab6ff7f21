/* docs/rest.md: every ```sh example runs, in order, against a server whose
 * table "items" is empty ($VERSO_URL): the page's first example inserts the
 * rows the others read. Its answers are what the text says. */
#include "rest_common.h"

static rc_env g_env;

static int setup(void **state)
{
    char url[96];

    (void)state;
    rc_start(&g_env, "rest_docs");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", verso_rest_port(g_env.srv));
    setenv("VERSO_URL", url, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

static char *read_doc(void)
{
    const char *src = getenv("VERSO_SOURCE_DIR");
    char path[1024];
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    FILE *f;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/docs/rest.md", src);
    f = fopen(path, "r");
    assert_non_null(f);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

/* Runs one block with sh -e; appends its output to all. */
static void run_block(const char *block, size_t n, verso_buf *all)
{
    char *script = strndup(block, n), *path = rc_write_file("rest_docs.sh", script);
    char cmd[1100], line[4096];
    FILE *p;
    int status;

    snprintf(cmd, sizeof(cmd), "sh -e '%s' 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p))
        verso_buf_puts(all, line);
    status = pclose(p);
    if (status != 0)
        fprintf(stderr, "example failed (%d):\n%s\n", status, script);
    assert_int_equal(status, 0);
    free(script);
    free(path);
}

static void test_examples_run(void **state)
{
    char *doc = read_doc();
    verso_buf all = VERSO_BUF_INIT;
    int blocks = 0;

    (void)state;
    for (char *p = strstr(doc, "\n```sh\n"); p; p = strstr(p, "\n```sh\n")) {
        char *start = p + 7, *end = strstr(start, "\n```");
        assert_non_null(end);
        run_block(start, (size_t)(end - start + 1), &all);
        blocks++;
        p = end + 4;
    }
    assert_true(blocks >= 10);
    /* the walkthrough's first GET finds the rows its first POST made */
    assert_non_null(strstr(all.data, "\"id\":3,\"version\":3,\"name\":\"item-3\""));
    assert_non_null(strstr(all.data, "\"name\":\"lamp\""));
    assert_non_null(strstr(all.data, "rel=\"next\""));
    assert_non_null(strstr(all.data, "304"));
    assert_non_null(strstr(all.data, "precondition_failed"));
    assert_non_null(strstr(all.data, "204"));
    assert_non_null(strstr(all.data, "\"results\""));
    assert_non_null(strstr(all.data, "\"changes\""));
    assert_non_null(strstr(all.data, "verso_head_version"));
    assert_null(strstr(all.data, "bad_request"));
    assert_null(strstr(all.data, "not_found"));
    assert_null(strstr(all.data, "internal_error"));
    verso_buf_free(&all);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
