/*
 * Installation: `cmake --install` into a scratch prefix, then a separate
 * project finds the library with find_package(verso) and another with
 * pkg-config (PKG_CONFIG_PATH, a prefix outside /usr); both programs run
 * without LD_LIBRARY_PATH, open a database and print its head.
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

static char g_dir[512];
static const char *g_build;

static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void write_file(const char *name, const char *text)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs program and checks it printed "head 0 ok". No LD_LIBRARY_PATH: a
 * program built against the scratch prefix finds libverso.so by itself (the
 * build tree's rpath for CMake, the .pc file's -Wl,-rpath for pkg-config). */
static void expect_program_output(const char *program)
{
    char line[256] = "";
    FILE *p;

    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "cd %s && unset LD_LIBRARY_PATH && "
             "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 %s",
             g_dir, program);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    assert_string_equal(line, "head 0 ok\n");
}

static const char k_consumer_c[] = "#include <stdio.h>\n"
                                   "#include <verso/orm.h>\n"
                                   "int main(void)\n"
                                   "{\n"
                                   "    verso_db *db = NULL;\n"
                                   "    verso_info info;\n"
                                   "    if (verso_db_open(&db, \"consumer.db\", NULL, NULL, 0) < 0 "
                                   "|| verso_db_info(&info, db) < 0)\n"
                                   "        return 1;\n"
                                   "    printf(\"head %lld ok\\n\", (long long)info.head);\n"
                                   "    verso_db_close(db);\n"
                                   "    return 0;\n"
                                   "}\n";

static const char k_consumer_cmake[] = "cmake_minimum_required(VERSION 3.18)\n"
                                       "project(consumer C)\n"
                                       "find_package(verso 0.1 REQUIRED)\n"
                                       "add_executable(consumer consumer.c)\n"
                                       "target_link_libraries(consumer PRIVATE verso::verso)\n";

static void test_install_and_consume(void **state)
{
    (void)state;
    assert_int_equal(run("cmake --install '%s' --prefix '%s/prefix' >/dev/null", g_build, g_dir),
                     0);
    write_file("consumer.c", k_consumer_c);
    write_file("CMakeLists.txt", k_consumer_cmake);

    /* find_package(verso) */
    assert_int_equal(run("cmake -S '%s' -B '%s/b' -DCMAKE_PREFIX_PATH='%s/prefix' >/dev/null",
                         g_dir, g_dir, g_dir),
                     0);
    assert_int_equal(run("cmake --build '%s/b' >/dev/null", g_dir), 0);
    expect_program_output("./b/consumer");

    /* pkg-config */
    assert_int_equal(
        run("cd '%s' && cc consumer.c -o pc_consumer "
            "$(PKG_CONFIG_PATH='%s/prefix/lib/pkgconfig' pkg-config --cflags --libs verso)",
            g_dir, g_dir),
        0);
    expect_program_output("./pc_consumer");
}

/* Adds each name of the form verso_xxx found after "VERSO_API" in text to
 * list (newline-separated, each line "\nname\n" searchable). */
static void api_names(char *list, size_t cap, const char *text)
{
    for (const char *p = strstr(text, "VERSO_API "); p; p = strstr(p + 1, "VERSO_API ")) {
        const char *paren = strchr(p, '('), *q;
        size_t len = strlen(list);
        if (!paren)
            continue;
        q = paren; /* the identifier just before the parenthesis */
        while (q > p &&
               (q[-1] == '_' || (q[-1] >= 'a' && q[-1] <= 'z') || (q[-1] >= '0' && q[-1] <= '9')))
            q--;
        if (strncmp(q, "verso_", 6) == 0 && len + (size_t)(paren - q) + 2 < cap)
            snprintf(list + len, cap - len, "%.*s\n", (int)(paren - q), q);
    }
}

/* The shared library exports exactly what the public headers declare with
 * VERSO_API: no internal verso__ function, no public one missing. */
static void test_exports_only_the_api(void **state)
{
    static char api[32768] = "\n", exported[32768] = "\n";
    static const char *const headers[] = {"verso.h", "orm.h",      "rest.h",
                                          "sync.h",  "advanced.h", "nats.h"};
    char cmd[1200], line[256];
    int nexp = 0, napi = 0;
    FILE *p;

    (void)state;
    assert_int_equal(run("cmake --install '%s' --prefix '%s/prefix' >/dev/null", g_build, g_dir),
                     0);
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char path[1024], *text;
        long n;
        FILE *f;
        snprintf(path, sizeof(path), "%s/prefix/include/verso/%s", g_dir, headers[i]);
        f = fopen(path, "r");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        text = calloc(1, (size_t)n + 1);
        assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        api_names(api, sizeof(api), text);
        /* every function a header declares is marked (a declaration starts
         * in column 0 with its type; typedefs, macros and members do not) */
        for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (((*line >= 'a' && *line <= 'z') || !strncmp(line, "const ", 6)) &&
                strstr(line, "verso_") && strchr(line, '(') && strncmp(line, "typedef", 7))
                fail_msg("%s declares without VERSO_API: %s", headers[i], line);
        }
        free(text);
    }
    snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s/prefix/lib/libverso.so'", g_dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p)) {
        char type[8], name[200], key[210];
        if (sscanf(line, "%*s %7s %199s", type, name) != 2 || strcmp(type, "T"))
            continue;
        snprintf(key, sizeof(key), "\n%s\n", name);
        if (!strstr(api, key))
            fail_msg("libverso.so exports %s, which no public header declares with VERSO_API",
                     name);
        strncat(exported, key + 1, sizeof(exported) - strlen(exported) - 1);
        nexp++;
    }
    assert_int_equal(pclose(p), 0);
    for (char *s = api + 1, *e; (e = strchr(s, '\n')); s = e + 1) {
        char key[210];
        snprintf(key, sizeof(key), "\n%.*s\n", (int)(e - s), s);
        if (!strstr(exported, key))
            fail_msg("%.*s is declared VERSO_API but not exported", (int)(e - s), s);
        napi++;
    }
    assert_int_equal(nexp, napi);
    assert_true(napi > 100);
}

int main(void)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    g_build = getenv("VERSO_BUILD_DIR");
    if (!g_build || !tmp) {
        fprintf(stderr, "test_install: run it through ctest (VERSO_BUILD_DIR)\n");
        return 1;
    }
    snprintf(g_dir, sizeof(g_dir), "%s/install.%d", tmp, (int)getpid());
    if (run("rm -rf '%s' && mkdir -p '%s'", g_dir, g_dir) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_and_consume),
        cmocka_unit_test(test_exports_only_the_api),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    run("rm -rf '%s'", g_dir);
    return rc;
}
