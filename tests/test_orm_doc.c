/*
 * docs/orm.md stays true: the C program under "A complete example" is
 * extracted, compiled against this build's library, run on a new database,
 * and its output compared with the text block that follows it; the same for
 * the allocator example of docs/hardening.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/orm_support.h"
#include "verso/verso.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    if (!f)
        fail_msg("cannot read %s", path);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

/* Copies the body of the first ``` block with the given tag at or after from. */
static char *block(const char **from, const char *tag)
{
    char fence[32];
    snprintf(fence, sizeof fence, "```%s\n", tag);
    const char *start = strstr(*from, fence);
    assert_non_null(start);
    start += strlen(fence);
    const char *end = strstr(start, "\n```");
    assert_non_null(end);
    *from = end + 4;
    size_t n = (size_t)(end - start) + 1;
    char *s = malloc(n + 1);
    memcpy(s, start, n);
    s[n] = '\0';
    return s;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The sanitizer flags of this build (set by ctest): the program must be instrumented too. */
static const char *sanitize_flags(void)
{
    const char *flags = getenv("VERSO_SANITIZE_FLAGS");
    return flags ? flags : "";
}

static void run_example(const char *doc_name, const char *heading);

static void test_example_compiles_runs_and_prints_the_documented_output(void **state)
{
    (void)state;
    run_example("orm.md", "## A complete example");
}

/* docs/orm.md "A query, page by page": verso_query_open, keyset pagination, count. */
static void test_query_example(void **state)
{
    (void)state;
    run_example("orm.md", "### A query, page by page");
}

/* docs/hardening.md: a program's own allocator (verso_config_allocator). */
static void test_allocator_example(void **state)
{
    (void)state;
    run_example("hardening.md", "## Allocation failure");
}

/* Compiles the first C block after heading in docs/doc_name, runs it on a
 * new database and compares its output with the text block after it. */
static void run_example(const char *doc_name, const char *heading)
{
    const char *src = getenv("VERSO_SOURCE_DIR"), *build = getenv("VERSO_BUILD_DIR");
    if (!src || !build)
        fail_msg("VERSO_SOURCE_DIR and VERSO_BUILD_DIR must be set (run under ctest)");
    if (system("cc --version >/dev/null 2>&1") != 0)
        skip();
    char path[1024], prog[1100], exe[1100], cmd[4096];
    snprintf(path, sizeof path, "%s/docs/%s", src, doc_name);
    char *doc = slurp(path);
    const char *p = strstr(doc, heading);
    assert_non_null(p);
    char *code = block(&p, "c"), *expect = block(&p, "text");

    const char *db = orm_tmp_path("doc");
    snprintf(prog, sizeof prog, "%s.c", db);
    snprintf(exe, sizeof exe, "%s.exe", db);
    write_file(prog, code);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Wpedantic -Werror %s -I'%s/include' '%s' -o '%s' "
             "'%s/libverso.a' $(pkg-config --libs sqlite3 uuid libcjson libwebsockets) -lm "
             "-lpthread",
             sanitize_flags(), src, prog, exe, build);
    assert_int_equal(system(cmd), 0);

    snprintf(cmd, sizeof cmd, "'%s' '%s'", exe, db);
    FILE *out = popen(cmd, "r");
    assert_non_null(out);
    verso_buf got = VERSO_BUF_INIT;
    char chunk[512];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, out)) > 0)
        verso_buf_append(&got, chunk, n);
    assert_int_equal(pclose(out), 0);
    assert_non_null(got.data);
    assert_string_equal(got.data, expect);

    remove(prog);
    remove(exe);
    verso_buf_free(&got);
    free(code);
    free(expect);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_compiles_runs_and_prints_the_documented_output),
        cmocka_unit_test(test_allocator_example),
        cmocka_unit_test(test_query_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
