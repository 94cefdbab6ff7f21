/* docs/databases-dir.md: every ```sh example runs, in order, against a dir
 * server ($VERSO_URL) whose DIR holds template.db (the table "items",
 * empty). Its answers are what the text says. */
#define _GNU_SOURCE
#include "dir_common.h"

static int setup(void **state)
{
    (void)state;
    dc_make_dirs("dirdocs");
    dc_make_db("template");
    dc_start(NULL);
    setenv("VERSO_URL", DC.base, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_stop();
    return 0;
}

static char *read_doc(void)
{
    const char *src = getenv("VERSO_SOURCE_DIR");
    verso_buf b = VERSO_BUF_INIT;
    char path[1024], chunk[4096];
    size_t n;
    FILE *f;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/docs/databases-dir.md", src);
    assert_non_null(f = fopen(path, "r"));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

/* Runs one block with sh -e; appends its output to all. */
static void run_block(const char *block, size_t n, verso_buf *all)
{
    char *script = strndup(block, n), path[700], cmd[800], line[4096];
    FILE *p;
    int status;

    snprintf(path, sizeof(path), "%s/example.sh", DC.root);
    assert_non_null(p = fopen(path, "w"));
    fputs(script, p);
    fclose(p);
    snprintf(cmd, sizeof(cmd), "sh -e '%s' 2>&1", path);
    assert_non_null(p = popen(cmd, "r"));
    while (fgets(line, sizeof(line), p))
        verso_buf_puts(all, line);
    status = pclose(p);
    if (status != 0)
        fprintf(stderr, "example failed (%d):\n%s\n", status, script);
    assert_int_equal(status, 0);
    free(script);
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
    assert_int_equal(blocks, 3);
    assert_non_null(strstr(all.data, "{\"databases\":[{\"name\":\"template\""));
    assert_non_null(strstr(all.data, "{\"name\":\"tenant-1\",\"head\":0,"));
    assert_non_null(strstr(all.data, "\"name\":\"lamp\""));
    assert_non_null(strstr(all.data, "\"changes\":[{\"table\":\"items\",\"id\":1,\"version\":1"));
    assert_non_null(strstr(all.data, "this server serves databases: use /db/<name>/<table>"));
    assert_true(strstr(all.data, "\n404\n") || strstr(all.data, "\n400\n"));
    assert_non_null(strstr(all.data, "\\\"-x\\\" is not a database name"));
    assert_non_null(strstr(all.data, "\"databases\":2,"));
    assert_non_null(strstr(all.data, "verso_database_head_version{database=\"tenant-1\"} 1\n"));
    assert_non_null(strstr(all.data, "\n204\n"));
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
