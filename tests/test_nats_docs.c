/*
 * docs/scale-out.md stays true: the ```sh block under "## Example" is run
 * line by line in a scratch directory (`verso` is this build's command,
 * the ports 4222 and 8080 are replaced by a real nats-server's and a free
 * one; a line ending in " &" runs in the background until the test ends),
 * and its last command is repeated (bounded) until it prints the ```text
 * block that follows. Without libnats: skipped, saying why.
 */
#include "nats_harness.h"

#ifdef VERSO_HAVE_NATS

#define MAX_LINES 32
#define MAX_BG    8

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

/* The body of the first ```tag block after from (malloc'd). */
static char *block(const char *from, const char *tag)
{
    char fence[32];
    const char *start, *end;
    char *s;

    snprintf(fence, sizeof(fence), "```%s\n", tag);
    if (!(start = strstr(from, fence)))
        fail_msg("no ```%s block", tag);
    start += strlen(fence);
    if (!(end = strstr(start, "```")))
        fail_msg("unterminated ```%s block", tag);
    s = strndup(start, (size_t)(end - start));
    assert_non_null(s);
    return s;
}

/* Replaces every occurrence of from by to in line (in place, n bytes). */
static void replace(char *line, size_t n, const char *from, const char *to)
{
    char out[2048], *p = line;
    size_t off = 0, fl = strlen(from);
    char *hit;

    while ((hit = strstr(p, from)) && off < sizeof(out)) {
        off += (size_t)snprintf(out + off, sizeof(out) - off, "%.*s%s", (int)(hit - p), p, to);
        p = hit + fl;
    }
    if (off < sizeof(out))
        snprintf(out + off, sizeof(out) - off, "%s", p);
    snprintf(line, n, "%s", out);
}

static void run_line(const char *line, hn_proc *bg, int *nbg)
{
    char cmd[2700], out[4096];
    size_t len = strlen(line);
    bool background = len > 2 && !strcmp(line + len - 2, " &");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd), "cd '%s' && exec %.*s", h_dir, (int)(background ? len - 2 : len),
             line);
    if (background) {
        assert_true(*nbg < MAX_BG);
        hn_proc_spawn(&bg[(*nbg)++], argv, false);
    } else if (hn_run(argv, 20000, out, sizeof(out)) != 0) {
        fail_msg("`%s` failed: %s", line, out);
    }
}

static void test_example_runs(void **state)
{
    const char *src = getenv("VERSO_SOURCE_DIR"), *bin = getenv("VERSO_BIN");
    char path[600], nport[16], hport[16], *doc, *sh, *expect, *lines[MAX_LINES], *save = NULL;
    char cmd[2700], out[4096] = "";
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    hn_proc bg[MAX_BG];
    int nlines = 0, nbg = 0;
    hn_server ns;
    int64_t deadline;

    (void)state;
    assert_non_null(src);
    assert_non_null(bin);
    snprintf(path, sizeof(path), "%s/docs/scale-out.md", src);
    doc = slurp(path);
    assert_non_null(strstr(doc, "\n## Example"));
    sh = block(strstr(doc, "\n## Example"), "sh");
    expect = block(strstr(strstr(doc, "\n## Example"), "```sh") + 5, "text");
    hn_start(&ns, "nats");
    snprintf(nport, sizeof(nport), "%d", ns.port);
    snprintf(hport, sizeof(hport), "%d", hn_free_port());
    for (char *l = strtok_r(sh, "\n", &save); l && nlines < MAX_LINES;
         l = strtok_r(NULL, "\n", &save))
        lines[nlines++] = l;
    assert_true(nlines >= 2);
    for (int i = 0; i < nlines; i++) {
        char line[2048];
        snprintf(line, sizeof(line), "%s", lines[i]);
        replace(line, sizeof(line), "4222", nport);
        replace(line, sizeof(line), "8080", hport);
        if (!strncmp(line, "verso ", 6)) {
            char full[2048];
            snprintf(full, sizeof(full), "'%s' %s", bin, line + 6);
            snprintf(line, sizeof(line), "%s", full);
        }
        if (i < nlines - 1) {
            run_line(line, bg, &nbg);
            continue;
        }
        /* the last command, until it prints what the doc says */
        snprintf(cmd, sizeof(cmd), "cd '%s' && %s", h_dir, line);
        deadline = h_now_ms() + 20000;
        while (hn_run(argv, 10000, out, sizeof(out)) != 0 || strcmp(out, expect)) {
            if (h_now_ms() > deadline)
                fail_msg("`%s` printed\n%s\nnot\n%s", lines[i], out, expect);
            h_sleep_ms(50);
        }
    }
    for (int i = 0; i < nbg; i++)
        assert_int_equal(hn_proc_kill(&bg[i], SIGTERM), 0);
    hn_kill(&ns, SIGKILL);
    free(expect);
    free(sh);
    free(doc);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_example_runs)};
    int failed;

    H_MAIN_DISPATCH(argc, argv);
    if (!hn_have_server()) {
        printf("# skipped: nats-server is not installed (scripts/setup.sh installs it)\n");
        return 0;
    }
    if (getenv("VERSO_TEST_ONLY")) /* a development aid: one test by name (glob) */
        cmocka_set_test_filter(getenv("VERSO_TEST_ONLY"));
    if (getenv("VERSO_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("VERSO_TEST_SKIP"));
    h_init_dir("nats_docs");
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    hn_kill_all();
    if (!failed)
        hn_remove_tree(h_dir);
    return failed;
}

#else

static void test_skipped(void **state)
{
    (void)state;
    printf("# skipped: verso was built without libnats (install libnats-dev and rebuild)\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_skipped)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
