/* Tokens scoped to databases (rest/config.c): the line
 * "token <sha256-hex> <role> [db=<name>] [<table>]", its refusals (a bad
 * name is a config error naming the file and line), and what each grant
 * allows where: a grant without db= everywhere, one with db= only inside
 * that database, never on the server-wide routes (db NULL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/internal.h"
#include "support/orm_support.h"

static int parse(verso__config *c, const char *text, char *why, size_t whylen)
{
    memset(c, 0, sizeof(*c));
    c->port = -1;
    why[0] = 0;
    return verso__config_parse(c, text, strlen(text), why, whylen);
}

static void token_hash(char out[65], const char *token)
{
    unsigned char h[32];

    verso__sha256(h, token, strlen(token));
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void test_db_lines(void **state)
{
    char h[65], text[1024], why[256];
    verso__config c;

    (void)state;
    token_hash(h, "t");
    snprintf(text, sizeof(text),
             "token %s read db=tenant_1\n"
             "token %s write db=B-2 items\n"
             "token %s admin\n"
             "token %s replicate orders\n",
             h, h, h, h);
    assert_int_equal(parse(&c, text, why, sizeof(why)), 0);
    assert_int_equal(c.ngrants, 4);
    assert_string_equal(c.grants[0].db, "tenant_1");
    assert_null(c.grants[0].table);
    assert_string_equal(c.grants[1].db, "B-2");
    assert_string_equal(c.grants[1].table, "items");
    assert_null(c.grants[2].db);
    assert_null(c.grants[3].db);
    assert_string_equal(c.grants[3].table, "orders");
    verso__config_free(&c);
}

static void test_db_lines_refused(void **state)
{
    static const struct {
        const char *rest; /* after "token HASH " */
        const char *why;
    } cases[] = {
        {"read db=", "token: db=: the database name is empty: database names are 1 to 64 letters"},
        {"read db=..", "is not a database name: database names are"},
        {"read db=a.db", "is not a database name: database names are"},
        {"read db=a/b", "is not a database name: database names are"},
        {"read db=%2e%2e", "is not a database name: database names are"},
        {"read db=\xef\xbd\x81", "is not a database name: database names are"},
        {"read db=-a", "is not a database name: database names are"},
        {"read db=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "(65 bytes) is not a database name"},
        {"read db=a db=b", "db= is given once, before the table"},
        {"read items db=a", "a token line is \"token <sha256-hex> <role> [db=<name>] [<table>]\""},
        {"read db=a items extra", "a token line is"},
        {"boss db=a", "unknown role"},
    };
    char h[65], text[512], why[400];
    verso__config c;

    (void)state;
    token_hash(h, "t");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "port 1\ntoken %s %s\n", h, cases[i].rest);
        assert_int_equal(parse(&c, text, why, sizeof(why)), VERSO_EINVAL);
        if (strncmp(why, "config line 2: ", 15) || !strstr(why, cases[i].why))
            fail_msg("\"%s\": %s", cases[i].rest, why);
        assert_true(verso__utf8_valid(why, strlen(why)));
        verso__config_free(&c);
    }
}

/* A config file names itself and the line. */
static void test_db_line_in_file(void **state)
{
    char path[1024], h[65], why[400];
    verso__config c;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("unit_dbscope"));
    token_hash(h, "t");
    f = fopen(path, "w");
    fprintf(f, "# tenants\ntoken %s read db=ok\ntoken %s read db=../etc\n", h, h);
    fclose(f);
    memset(&c, 0, sizeof(c));
    c.port = -1;
    assert_int_equal(verso__config_load(&c, path, why, sizeof(why)), VERSO_EINVAL);
    assert_int_equal(strncmp(why, path, strlen(path)), 0);
    assert_non_null(strstr(why, ":3: token: db=: \"../etc\" is not a database name"));
    verso__config_free(&c);
    remove(path);
}

static void test_db_matrix(void **state)
{
    enum { R = VERSO__CAP_READ, W = VERSO__CAP_WRITE, F = VERSO__CAP_FEED, ALL = VERSO__CAP_ALL };
    static const char *const tokens[] = {"tenant-admin", "reader", "global"};
    static const struct {
        int token;
        const char *db; /* NULL: one-database server or server-wide route */
        const char *table;
        unsigned caps;
    } cases[] = {
        {0, NULL, NULL, 0}, /* admin db=a: no /_databases, /_metrics, /_status */
        {0, NULL, "t", 0},  /* nor a one-database server's tables */
        {0, "a", NULL, ALL},   {0, "a", "t", ALL},     {0, "b", NULL, 0},
        {0, "b", "t", 0},      {0, "A", NULL, 0}, /* names compare exactly */
        {1, "a", "x", R},      {1, "a", NULL, R},      {1, "b", "items", R | W},
        {1, "b", "other", 0},  {1, "b", NULL, 0},      {1, NULL, NULL, 0},
        {1, NULL, "items", 0}, {2, NULL, NULL, R | F}, {2, NULL, "t", R | F},
        {2, "a", "t", R | F},  {2, "c", NULL, ALL}, /* a global grant and a database grant add up */
        {2, "c", "t", ALL},    {2, "d", "t", R | F},
    };
    char h[3][65], text[1024], header[64], why[256];
    verso__config c;

    (void)state;
    for (int i = 0; i < 3; i++)
        token_hash(h[i], tokens[i]);
    snprintf(text, sizeof(text),
             "token %s admin db=a\n"
             "token %s read db=a\n"
             "token %s write db=b items\n"
             "token %s replicate\n"
             "token %s admin db=c\n",
             h[0], h[1], h[1], h[2], h[2]);
    assert_int_equal(parse(&c, text, why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__auth a;
        unsigned got;

        snprintf(header, sizeof(header), "Bearer %s", tokens[cases[i].token]);
        verso__auth_identify(&a, &c, header);
        assert_int_equal(a.state, 1);
        got = verso__auth_caps(&a, &c, cases[i].db, cases[i].table);
        if (got != cases[i].caps)
            fail_msg("case %zu: %s on %s/%s: caps %u, want %u", i, tokens[cases[i].token],
                     cases[i].db ? cases[i].db : "(server)", cases[i].table ? cases[i].table : "-",
                     got, cases[i].caps);
        for (unsigned need = 1; need <= ALL; need++)
            assert_int_equal(verso__auth_check(&a, &c, cases[i].db, cases[i].table, need),
                             (cases[i].caps & need) == need ? 0 : 403);
    }
    verso__config_free(&c);
}

static void test_db_roles_in_words(void **state)
{
    char h[65], text[512], why[256], out[160];
    verso__config c;
    verso__auth a;

    (void)state;
    token_hash(h, "r");
    snprintf(text, sizeof(text), "token %s read db=a\ntoken %s write db=b items\n", h, h);
    assert_int_equal(parse(&c, text, why, sizeof(why)), 0);
    verso__auth_identify(&a, &c, "Bearer r");
    verso__auth_roles(out, sizeof(out), &a, &c, "a", "x");
    assert_string_equal(out, "read (this database)");
    verso__auth_roles(out, sizeof(out), &a, &c, "b", "items");
    assert_string_equal(out, "write (this table of this database)");
    verso__auth_roles(out, sizeof(out), &a, &c, "b", NULL);
    assert_string_equal(out, "no role on this database");
    verso__auth_roles(out, sizeof(out), &a, &c, NULL, NULL);
    assert_string_equal(out, "no role for the server's routes");
    verso__config_free(&c);
}

/* Who may list the databases it may replicate (GET /_databases, the
 * events channel): a grant for whole databases with the role, any db=. */
static void test_auth_any(void **state)
{
    static const struct {
        const char *token;
        bool feed, admin;
    } cases[] = {
        {"rep-a", true, false},  {"read-a", false, false}, {"rep-table", false, false},
        {"admin-x", true, true}, {"root", true, true},     {"nobody", false, false},
    };
    char h[5][65], text[1024], header[64], why[256];
    verso__config c;

    (void)state;
    token_hash(h[0], "rep-a");
    token_hash(h[1], "read-a");
    token_hash(h[2], "rep-table");
    token_hash(h[3], "admin-x");
    token_hash(h[4], "root");
    snprintf(text, sizeof(text),
             "token %s replicate db=a\ntoken %s read db=a\ntoken %s replicate items\n"
             "token %s admin db=x\ntoken %s admin\n",
             h[0], h[1], h[2], h[3], h[4]);
    assert_int_equal(parse(&c, text, why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__auth a;
        snprintf(header, sizeof(header), "Bearer %s", cases[i].token);
        verso__auth_identify(&a, &c, header);
        if (verso__auth_any(&a, &c, VERSO__CAP_FEED) != cases[i].feed ||
            verso__auth_any(&a, &c, VERSO__CAP_ADMIN) != cases[i].admin)
            fail_msg("%s", cases[i].token);
    }
    verso__config_free(&c);
    memset(&c, 0, sizeof(c));
    {
        verso__auth a;
        verso__auth_identify(&a, &c, NULL);
        assert_true(verso__auth_any(&a, &c, VERSO__CAP_ADMIN)); /* no token configured */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_lines),          cmocka_unit_test(test_db_lines_refused),
        cmocka_unit_test(test_db_line_in_file),   cmocka_unit_test(test_db_matrix),
        cmocka_unit_test(test_db_roles_in_words), cmocka_unit_test(test_auth_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
