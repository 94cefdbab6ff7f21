/*
 * Options structs: zero in any member means its default (a zeroed struct
 * is the defaults), the INIT macros set the version, and a version newer
 * than the library's is refused. The REST server's port comes from the
 * config file when the options leave it at 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

static char g_dir[512];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

/* A port nobody listens on right now (bound then released). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* A zeroed verso_db_options is the defaults: the file is created. */
static void test_zeroed_db_options_are_defaults(void **state)
{
    char open_why[256] = "";
    verso_db_options zero;
    verso_db *db = NULL;
    char p[600];

    (void)state;
    memset(&zero, 0, sizeof(zero));
    path_of(p, sizeof(p), "zero.db");
    unlink(p);
    if (verso_db_open(&db, p, &zero, open_why, sizeof(open_why)) < 0)
        fail_msg("open with zeroed options: %s", open_why);
    verso_db_close(db);
    assert_int_equal(access(p, F_OK), 0);

    /* must_exist refuses a missing file and creates nothing */
    {
        verso_db_options o = VERSO_DB_OPTIONS_INIT;
        path_of(p, sizeof(p), "missing.db");
        unlink(p);
        o.must_exist = true;
        assert_true(verso_db_open(&db, p, &o, NULL, 0) < 0);
        assert_null(db);
        assert_int_equal(access(p, F_OK), -1);
    }
}

/* Options of a newer library version are refused, not misread. */
static void test_newer_version_refused(void **state)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_db *db = NULL;
    verso_rest *srv = NULL;
    char p[600], why[256] = "";

    (void)state;
    assert_int_equal(o.version, VERSO_OPTIONS_VERSION);
    assert_int_equal(ro.version, VERSO_OPTIONS_VERSION);
    path_of(p, sizeof(p), "newer.db");
    o.version = VERSO_OPTIONS_VERSION + 1;
    assert_int_equal(verso_db_open(&db, p, &o, NULL, 0), VERSO_EINVAL);
    assert_null(db);
    ro.version = VERSO_OPTIONS_VERSION + 1;
    ro.db_path = p;
    ro.port = VERSO_REST_PORT_ANY;
    assert_int_equal(verso_rest_start(&srv, NULL, &ro, why, sizeof(why)), VERSO_EINVAL);
    assert_null(srv);
}

/* With port 0 (the INIT value) the config file's port is used; an explicit
 * port wins over it; VERSO_REST_PORT_ANY picks a free one. */
static void test_config_port_used_when_options_leave_it(void **state)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_rest *srv = NULL;
    char db[600], cfg[600], why[256] = "";
    int port = 0, rc = -1;
    FILE *f;

    (void)state;
    path_of(db, sizeof(db), "port.db");
    path_of(cfg, sizeof(cfg), "port.conf");
    {
        verso_db *d = NULL;
        assert_int_equal(verso_db_open(&d, db, NULL, NULL, 0), 0);
        verso_db_close(d);
    }
    ro.db_path = db;
    ro.config_path = cfg;
    for (int attempt = 0; attempt < 5 && rc < 0; attempt++) { /* the port may be taken meanwhile */
        port = free_port();
        f = fopen(cfg, "w");
        assert_non_null(f);
        fprintf(f, "port %d\n", port);
        fclose(f);
        rc = verso_rest_start(&srv, NULL, &ro, why, sizeof(why));
    }
    if (rc < 0)
        fail_msg("start: %s", why);
    assert_int_equal(verso_rest_port(srv), port);
    verso_rest_stop(srv);

    ro.port = VERSO_REST_PORT_ANY;
    assert_int_equal(verso_rest_start(&srv, NULL, &ro, why, sizeof(why)), 0);
    assert_true(verso_rest_port(srv) > 0);
    verso_rest_stop(srv);
}

int main(void)
{
    const char *tmp = getenv("VERSO_TEST_TMP");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_db_options_are_defaults),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_config_port_used_when_options_leave_it),
    };
    int rc;

    snprintf(g_dir, sizeof(g_dir), "%s/options.%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(g_dir, 0755);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            rc = 1;
    }
    return rc;
}
