/*
 * docs/replication.md stays true: the program under "A complete example"
 * is extracted, compiled against this build's library, run in a scratch
 * directory, and its output compared with the text block that follows it.
 */
#include "sync_harness.h"

static char *slurp(const char *path)
{
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (!f)
        fail_msg("cannot read %s", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

/* The body of the first ```tag block at or after *from (malloc'd). */
static char *block(const char **from, const char *tag)
{
    char fence[32];
    const char *start, *end;
    char *s;
    size_t n;

    snprintf(fence, sizeof(fence), "```%s\n", tag);
    start = strstr(*from, fence);
    assert_non_null(start);
    start += strlen(fence);
    end = strstr(start, "\n```");
    assert_non_null(end);
    *from = end + 4;
    n = (size_t)(end - start) + 1;
    s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, start, n);
    s[n] = '\0';
    return s;
}

/* The sanitizer flags of this build (set by ctest): the program must be instrumented too. */
static const char *sanitize_flags(void)
{
    const char *flags = getenv("VERSO_SANITIZE_FLAGS");

    return flags ? flags : "";
}

static void test_example_runs_as_documented(void **state)
{
    const char *src = getenv("VERSO_SOURCE_DIR"), *build = getenv("VERSO_BUILD_DIR"), *p;
    char path[1024], prog[1100], exe[1100], cmd[4096], chunk[512];
    verso_buf got = VERSO_BUF_INIT;
    char *doc, *code, *expect;
    size_t n;
    FILE *f;

    (void)state;
    if (!src || !build)
        fail_msg("VERSO_SOURCE_DIR and VERSO_BUILD_DIR must be set (run under ctest)");
    snprintf(path, sizeof(path), "%s/docs/replication.md", src);
    doc = slurp(path);
    p = strstr(doc, "## A complete example");
    assert_non_null(p);
    code = block(&p, "c");
    expect = block(&p, "text");
    h_path(prog, sizeof(prog), "example.c");
    h_path(exe, sizeof(exe), "example");
    assert_non_null(f = fopen(prog, "wb"));
    fputs(code, f);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd),
             "cc -std=c11 -Wall -Wextra -Wpedantic -Werror %s -I'%s/include' '%s' -o '%s' "
             "'%s/libverso.a' $(pkg-config --libs sqlite3 uuid libcjson libwebsockets) -lm "
             "-lpthread",
             sanitize_flags(), src, prog, exe, build);
    assert_int_equal(system(cmd), 0);

    snprintf(cmd, sizeof(cmd), "'%s' '%s'", exe, h_dir);
    assert_non_null(f = popen(cmd, "r"));
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(verso_buf_append(&got, chunk, n), 0);
    assert_int_equal(pclose(f), 0);
    assert_non_null(got.data);
    assert_string_equal(got.data, expect);
    verso_buf_free(&got);
    free(code);
    free(expect);
    free(doc);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_runs_as_documented),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_doc");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
