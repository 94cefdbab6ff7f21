/*
 * Installation: `cmake --install` into a scratch prefix, then a separate
 * project finds the library with find_package(verso) and another with
 * pkg-config; both programs open a database and print its head.
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

/* Runs program and checks it printed "head 0 ok". */
static void expect_program_output(const char *program)
{
    char line[256] = "";
    FILE *p;

    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "cd %s && ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 "
             "LD_LIBRARY_PATH=%s/prefix/lib %s",
             g_dir, g_dir, program);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    assert_string_equal(line, "head 0 ok\n");
}

static const char k_consumer_c[] =
    "#include <stdio.h>\n"
    "#include <verso/orm.h>\n"
    "int main(void)\n"
    "{\n"
    "    verso_db *db = NULL;\n"
    "    verso_info info;\n"
    "    if (verso_db_open(&db, \"consumer.db\", NULL) < 0 || verso_db_info(&info, db) < 0)\n"
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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    run("rm -rf '%s'", g_dir);
    return rc;
}
