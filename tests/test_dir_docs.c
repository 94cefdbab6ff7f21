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

/* docs/databases.md: the tour's ```sh blocks run in order, in a scratch
 * directory, with verso on PATH, against the same server. */
static void test_tour_runs(void **state)
{
    const char *src = getenv("VERSO_SOURCE_DIR"), *bin = getenv("VERSO_BIN");
    char path[1024], cmd[3000], line[4096], *doc;
    verso_buf all = VERSO_BUF_INIT, text = VERSO_BUF_INIT;
    int blocks = 0;
    FILE *f;

    (void)state;
    assert_non_null(src);
    assert_non_null(bin);
    snprintf(path, sizeof(path), "%s/docs/databases.md", src);
    assert_non_null(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f))
        verso_buf_puts(&text, line);
    fclose(f);
    doc = verso_buf_detach(&text);
    for (char *p = strstr(doc, "\n```sh\n"); p; p = strstr(p, "\n```sh\n")) {
        char *start = p + 7, *end = strstr(start, "\n```");
        FILE *out;
        int status;

        assert_non_null(end);
        snprintf(path, sizeof(path), "%s/tour.sh", DC.root);
        assert_non_null(out = fopen(path, "w"));
        fwrite(start, 1, (size_t)(end - start + 1), out);
        fclose(out);
        snprintf(cmd, sizeof(cmd), "cd '%s' && PATH=\"$(dirname '%s'):$PATH\" sh -e tour.sh 2>&1",
                 DC.root, bin);
        assert_non_null(out = popen(cmd, "r"));
        while (fgets(line, sizeof(line), out))
            verso_buf_puts(&all, line);
        status = pclose(out);
        if (status != 0)
            fprintf(stderr, "tour block %d failed (%d); output so far:\n%s\n", blocks, status,
                    all.data ? all.data : "");
        assert_int_equal(status, 0);
        blocks++;
        p = end + 4;
    }
    assert_int_equal(blocks, 5);
    assert_non_null(strstr(all.data, "{\"name\":\"photos\",\"head\":0,"));
    assert_non_null(strstr(all.data, "{\"id\":1,\"title\":\"sunset\",\"version\":1,"));
    assert_non_null(strstr(all.data, "{\"id\":1,\"version\":2,\"size\":1000000}"));
    assert_non_null(strstr(all.data, "the same bytes\n"));
    assert_non_null(strstr(all.data, "{\"name\":\"albums\",\"head\":0,"));
    assert_non_null(strstr(all.data, "\"name\":\"template\"\n\"name\":\"photos\"") ||
                    strstr(all.data, "\"name\":\"albums\"\n\"name\":\"photos\"\n"));
    assert_non_null(strstr(all.data, "1|sunset|2|1000000\n"));
    assert_non_null(strstr(all.data, "\n204\n"));
    assert_non_null(strstr(all.data, "no database \\\"albums\\\""));
    assert_null(strstr(all.data, "internal_error"));
    verso_buf_free(&all);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_run),
        cmocka_unit_test(test_tour_runs),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
