/*
 * The verso command, run as a real process (env VERSO_BIN) on temporary
 * databases; plain tables are made with the real sqlite3 shell.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "verso/orm.h"
#include "verso/advanced.h"

#define MAX_ARGS 16

static const char *verso_bin;
static char tmpdir[400];
static int seq;

typedef struct result {
    int status; /* exit status, or -1 if killed */
    char *out;
    char *err;
} result;

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    assert_non_null(f);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(verso_buf_append(&b, chunk, n), 0);
    fclose(f);
    return verso_buf_detach(&b);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void redirect(const char *path, int fd, int flags)
{
    int f = open(path, flags, 0600);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(127);
    close(f);
}

/* Runs argv (argv[0] looked up in PATH unless it has a slash) with stdin from
 * in (NULL: /dev/null), capturing stdout and stderr. */
static void run_argv(result *r, const char *in, char *const argv[])
{
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/cli_%d_out", tmpdir, (int)getpid());
    snprintf(err, sizeof err, "%s/cli_%d_err", tmpdir, (int)getpid());
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redirect(in ? in : "/dev/null", 0, O_RDONLY);
        redirect(out, 1, O_WRONLY | O_CREAT | O_TRUNC);
        redirect(err, 2, O_WRONLY | O_CREAT | O_TRUNC);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    assert_true(waitpid(pid, &st, 0) == pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = slurp(out);
    r->err = slurp(err);
    unlink(out);
    unlink(err);
}

/* Runs verso with the NULL-terminated arguments. */
static void verso(result *r, const char *in, ...)
{
    char *argv[MAX_ARGS + 2];
    size_t n = 0;
    va_list ap;
    argv[n++] = (char *)verso_bin;
    va_start(ap, in);
    for (char *a; n <= MAX_ARGS && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    run_argv(r, in, argv);
}

/* Runs SQL through the sqlite3 shell; it must succeed. */
static void sqlite3_shell(const char *db, const char *sql)
{
    char *argv[] = {"sqlite3", "-bail", (char *)db, (char *)sql, NULL};
    result r;
    run_argv(&r, NULL, argv);
    if (r.status != 0)
        fail_msg("sqlite3 %s: status %d: %s", sql, r.status, r.err);
    result_free(&r);
}

/* A failure: the given status, nothing on stdout, one line on stderr that
 * starts with prefix. */
static void expect_failure(const result *r, int status, const char *prefix)
{
    if (r->status != status)
        fail_msg("status %d, want %d; stderr: %s", r->status, status, r->err);
    assert_string_equal(r->out, "");
    assert_true(strncmp(r->err, prefix, strlen(prefix)) == 0);
    if (status != 2) {
        char *nl = strchr(r->err, '\n');
        assert_non_null(nl);
        assert_int_equal(nl[1], '\0');
    }
}

static void expect_ok(const result *r)
{
    if (r->status != 0)
        fail_msg("status %d; stderr: %s", r->status, r->err);
    assert_string_equal(r->err, "");
}

static void db_path(char *out, size_t n)
{
    snprintf(out, n, "%s/test_cli_%d_%d.db", tmpdir, (int)getpid(), seq++);
    unlink(out);
}

static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A plain table made by the sqlite3 shell, then tracked by verso. */
static void make_pets(const char *db)
{
    result r;
    sqlite3_shell(db, "CREATE TABLE pets(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER);"
                      "INSERT INTO pets(name, age) VALUES ('rex', 3), ('tom', 5), ('kit', 1);");
    verso(&r, NULL, "track", db, "pets", NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "tracked pets"));
    result_free(&r);
}

/* Parses changes output: checks each line, returns the number of lines. */
static size_t check_changes(const char *out, int64_t since, const char *only_table)
{
    size_t n = 0;
    int64_t last = since;
    for (const char *line = out; *line;) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        verso_json *doc = NULL;
        assert_int_equal(verso_json_parse(&doc, line, (size_t)(nl - line), 0, NULL, 0), 0);
        cJSON *o = verso_json_root(doc);
        int64_t v, id;
        cJSON *t = cJSON_GetObjectItem(o, "table");
        assert_true(cJSON_IsString(t));
        if (only_table)
            assert_string_equal(t->valuestring, only_table);
        assert_int_equal(verso_json_int64(&id, cJSON_GetObjectItem(o, "id")), 0);
        assert_int_equal(verso_json_int64(&v, cJSON_GetObjectItem(o, "version")), 0);
        assert_true(v > last);
        last = v;
        cJSON *row = cJSON_GetObjectItem(o, "row");
        if (row) {
            int64_t rid, rv;
            assert_null(cJSON_GetObjectItem(o, "deleted"));
            assert_int_equal(verso_json_int64(&rid, cJSON_GetObjectItem(row, "id")), 0);
            /* test_track_and_changes tracks "toys" with version column "rev". */
            const char *vcol = strcmp(t->valuestring, "toys") == 0 ? "rev" : "version";
            assert_int_equal(verso_json_int64(&rv, cJSON_GetObjectItem(row, vcol)), 0);
            assert_true(rid == id && rv == v);
        } else {
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "deleted")));
        }
        verso_json_free(doc);
        n++;
        line = nl + 1;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------ */

static void test_usage(void **state)
{
    (void)state;
    result r;
    verso(&r, NULL, "--version", NULL);
    expect_ok(&r);
    assert_string_equal(r.out, "verso " VERSO_VERSION_STRING "\n");
    result_free(&r);

    verso(&r, NULL, "--help", NULL);
    expect_ok(&r);
    static const char *const cmds[] = {"track", "changes", "dump",      "load",
                                       "info",  "serve",   "replicate", "pull"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        assert_non_null(strstr(r.out, cmds[i]));
    result_free(&r);

    verso(&r, NULL, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "usage: verso"));
    result_free(&r);

    verso(&r, NULL, "bogus", NULL);
    expect_failure(&r, 2, "verso: unknown command 'bogus'\n");
    result_free(&r);

    verso(&r, NULL, "help", "bogus", NULL);
    expect_failure(&r, 2, "verso help: unknown command 'bogus'");
    result_free(&r);

    static const char *const ours[] = {"track", "changes", "dump", "load", "info"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: verso %s ", ours[i]);
        verso(&r, NULL, ours[i], "--help", NULL);
        expect_ok(&r);
        assert_true(strncmp(r.out, want, strlen(want)) == 0);
        result_free(&r);
        verso(&r, NULL, "help", ours[i], NULL);
        expect_ok(&r);
        assert_true(strncmp(r.out, want, strlen(want)) == 0);
        result_free(&r);
        verso(&r, NULL, ours[i], NULL); /* no database given */
        expect_failure(&r, 2, "verso ");
        assert_non_null(strstr(r.err, "usage: verso"));
        result_free(&r);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char db[512];
    result r;
    db_path(db, sizeof db);
    make_pets(db);
    static const char *const bad[][2] = {
        {"--since", "abc"}, {"--since", "-1"}, {"--since", "12x"},
        {"--since", ""},    {"--limit", "0"},  {"--since", "99999999999999999999"},
        {"--limit", "-5"},  {"--limit", " 5"}, {"--bogus", "1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        verso(&r, NULL, "changes", db, bad[i][0], bad[i][1], NULL);
        expect_failure(&r, 2, "verso changes: ");
        result_free(&r);
    }
    verso(&r, NULL, "changes", db, "--since", NULL);
    expect_failure(&r, 2, "verso changes: missing value for --since");
    result_free(&r);
    verso(&r, NULL, "changes", db, "extra", NULL);
    expect_failure(&r, 2, "verso changes: unexpected argument extra");
    result_free(&r);
    verso(&r, NULL, "dump", db, "--table", "a", "--table", "b", NULL);
    expect_failure(&r, 2, "verso dump: ");
    result_free(&r);
    verso(&r, NULL, "load", db, NULL);
    expect_failure(&r, 2, "verso load: missing arguments");
    result_free(&r);
    /* --chunk is the pull's request size; a live master sets its own */
    verso(&r, NULL, "replicate", "--chunk", "5", "http://127.0.0.1:1", db, NULL);
    expect_failure(&r, 2, "usage: verso replicate");
    result_free(&r);
    remove_db(db);
}

static void test_track_and_changes(void **state)
{
    (void)state;
    char db[512];
    result r;
    db_path(db, sizeof db);
    make_pets(db);

    /* Writes by the sqlite3 shell are versioned by the triggers. */
    sqlite3_shell(db, "UPDATE pets SET age = 4 WHERE name = 'rex';"
                      "DELETE FROM pets WHERE name = 'tom';"
                      "INSERT INTO pets(name, age) VALUES ('bo', 2);");
    verso(&r, NULL, "changes", db, NULL);
    expect_ok(&r);
    /* kit (v3), rex (v4), tom deleted (v5), bo (v6). */
    assert_int_equal(check_changes(r.out, 0, "pets"), 4);
    const char *rex = strstr(r.out, "\"name\":\"rex\"");
    assert_non_null(rex);
    assert_non_null(strstr(r.out, "\"deleted\":true"));
    assert_non_null(strstr(r.out, "\"row\":{\"id\":1,\"name\":\"rex\",\"age\":4,\"version\":4}"));
    result_free(&r);

    verso(&r, NULL, "changes", db, "--since", "4", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 4, NULL), 2);
    result_free(&r);

    verso(&r, NULL, "changes", db, "--since=3", "--limit=1", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 3, NULL), 1);
    assert_non_null(strstr(r.out, "\"version\":4"));
    result_free(&r);

    /* Tracking is idempotent; unknown tables are errors. */
    verso(&r, NULL, "track", db, "pets", NULL);
    expect_ok(&r);
    result_free(&r);
    verso(&r, NULL, "track", db, "nosuch", NULL);
    expect_failure(&r, 4, "verso track: ");
    result_free(&r);
    verso(&r, NULL, "changes", db, "--table", "nosuch", NULL);
    expect_failure(&r, 4, "verso changes: ");
    result_free(&r);

    /* A second table with its own version column name, and --table. */
    sqlite3_shell(db, "CREATE TABLE toys(id INTEGER PRIMARY KEY, what);"
                      "INSERT INTO toys(what) VALUES ('ball'), (7);");
    verso(&r, NULL, "track", db, "toys", "--column", "rev", NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "\"rev\""));
    result_free(&r);
    verso(&r, NULL, "track", db, "toys", NULL); /* again: reports the existing column */
    expect_ok(&r);
    assert_non_null(strstr(r.out, "tracked toys (version column \"rev\")"));
    result_free(&r);
    verso(&r, NULL, "changes", db, "--table", "toys", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 0, "toys"), 2);
    assert_non_null(strstr(r.out, "\"what\":7,"));
    result_free(&r);
    verso(&r, NULL, "changes", db, "--table", "toys", "--table", "pets", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 0, NULL), 6);
    result_free(&r);
    remove_db(db);
}

/* More changes than one feed chunk: paged internally, none lost or repeated. */
static void test_changes_paging(void **state)
{
    (void)state;
    char db[512];
    result r;
    db_path(db, sizeof db);
    make_pets(db);
    sqlite3_shell(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                      "WHERE i < 2500) INSERT INTO pets(name, age) SELECT 'p' || i, i FROM n;"
                      "DELETE FROM pets WHERE id % 100 = 0;");
    verso(&r, NULL, "changes", db, NULL);
    expect_ok(&r);
    /* 2503 rows inserted, 25 of them deleted (tombstones replace their upserts). */
    assert_int_equal(check_changes(r.out, 0, NULL), 2503);
    result_free(&r);
    /* Exactly two chunks of upserts and nothing else. */
    sqlite3_shell(db, "CREATE TABLE many(id INTEGER PRIMARY KEY, v);"
                      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                      "WHERE i < 2000) INSERT INTO many(v) SELECT i FROM n;");
    verso(&r, NULL, "track", db, "many", NULL);
    expect_ok(&r);
    result_free(&r);
    verso(&r, NULL, "changes", db, "--table", "many", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 0, "many"), 2000);
    result_free(&r);
    verso(&r, NULL, "changes", db, "--table", "many", "--limit", "1000", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 0, "many"), 1000);
    result_free(&r);
    verso(&r, NULL, "changes", db, "--limit", "2222", "--since", "1", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 1, NULL), 2222);
    result_free(&r);
    remove_db(db);
}

static void test_info(void **state)
{
    (void)state;
    char db[512];
    result r;
    db_path(db, sizeof db);
    make_pets(db);
    verso(&r, NULL, "info", db, NULL);
    expect_ok(&r);
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, r.out, strlen(r.out), 0, NULL, 0), 0);
    cJSON *o = verso_json_root(doc);
    int64_t head, horizon;
    assert_int_equal(strlen(cJSON_GetObjectItem(o, "identity")->valuestring), 36);
    assert_int_equal(verso_json_int64(&head, cJSON_GetObjectItem(o, "head")), 0);
    assert_true(head == 3);
    assert_int_equal(verso_json_int64(&horizon, cJSON_GetObjectItem(o, "horizon")), 0);
    assert_true(horizon == 0);
    cJSON *tables = cJSON_GetObjectItem(o, "tables");
    assert_int_equal(cJSON_GetArraySize(tables), 1);
    cJSON *pets = cJSON_GetArrayItem(tables, 0);
    assert_string_equal(cJSON_GetObjectItem(pets, "name")->valuestring, "pets");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(pets, "replicated")));
    cJSON *cols = cJSON_GetObjectItem(pets, "columns");
    static const char *const want[][2] = {
        {"id", "int64"}, {"name", "text"}, {"age", "int64"}, {"version", "int64"}};
    assert_int_equal(cJSON_GetArraySize(cols), 4);
    for (int i = 0; i < 4; i++) {
        cJSON *c = cJSON_GetArrayItem(cols, i);
        assert_string_equal(cJSON_GetObjectItem(c, "name")->valuestring, want[i][0]);
        assert_string_equal(cJSON_GetObjectItem(c, "type")->valuestring, want[i][1]);
    }
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(cols, 0), "id")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(cols, 3), "version")));
    verso_json_free(doc);
    result_free(&r);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.db", tmpdir);
    verso(&r, NULL, "info", missing, NULL);
    expect_failure(&r, 4, "verso info: cannot open");
    result_free(&r);
    remove_db(db);
}

static void test_dump_load(void **state)
{
    (void)state;
    char a[512], b[512], file[600], broken[600];
    result r;
    db_path(a, sizeof a);
    db_path(b, sizeof b);
    make_pets(a);
    make_pets(b); /* same schema; its rows are overwritten by id */
    sqlite3_shell(a, "INSERT INTO pets(id, name, age) VALUES (10, 'caf\xc3\xa9 \"x\"', NULL);"
                     "UPDATE pets SET name = 'REX' WHERE id = 1;");
    sqlite3_shell(b, "INSERT INTO pets(id, name, age) VALUES (77, 'only in b', 0);");

    verso(&r, NULL, "dump", a, NULL);
    expect_ok(&r);
    char *dump_a = r.out;
    r.out = NULL;
    result_free(&r);
    assert_non_null(strstr(dump_a, "\"name\":\"caf\xc3\xa9 \\\"x\\\"\",\"age\":null}"));
    verso(&r, NULL, "dump", a, "--table", "pets", NULL);
    expect_ok(&r);
    assert_string_equal(r.out, dump_a);
    result_free(&r);
    verso(&r, NULL, "dump", a, "--table", "nosuch", NULL);
    expect_failure(&r, 4, "verso dump: ");
    result_free(&r);

    snprintf(file, sizeof file, "%s/cli_%d_fixture.json", tmpdir, (int)getpid());
    write_file(file, dump_a);
    verso(&r, NULL, "load", b, file, NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "4 rows written"));
    result_free(&r);

    /* b now holds a's rows plus its own row 77. */
    verso(&r, NULL, "dump", b, NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "only in b"));
    result_free(&r);
    sqlite3_shell(b, "DELETE FROM pets WHERE id = 77;");
    verso(&r, NULL, "dump", b, NULL);
    expect_ok(&r);
    assert_string_equal(r.out, dump_a);
    result_free(&r);

    /* From standard input. */
    verso(&r, file, "load", b, "-", NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "loaded -:"));
    result_free(&r);

    /* A broken fixture changes nothing and says where it broke. */
    snprintf(broken, sizeof broken, "%s/cli_%d_broken.json", tmpdir, (int)getpid());
    write_file(broken, "{\"verso\":1,\"tables\":{\"pets\":[{\"id\":1,\"name\":\"changed\"},"
                       "{\"id\":2,\"name\":\"x\",\"age\":\"old\"}]}}");
    verso(&r, NULL, "load", b, broken, NULL);
    expect_failure(&r, 4, "verso load: ");
    assert_non_null(strstr(r.err, "row 1"));
    result_free(&r);
    write_file(broken, "{\"verso\":1,");
    verso(&r, NULL, "load", b, broken, NULL);
    expect_failure(&r, 4, "verso load: ");
    result_free(&r);
    verso(&r, NULL, "dump", b, NULL);
    expect_ok(&r);
    assert_string_equal(r.out, dump_a);
    result_free(&r);

    char nofile[600];
    snprintf(nofile, sizeof nofile, "%s/cli_no_such_file.json", tmpdir);
    verso(&r, NULL, "load", b, nofile, NULL);
    expect_failure(&r, 1, "verso load: cannot open");
    result_free(&r);

    unlink(file);
    unlink(broken);
    free(dump_a);
    remove_db(a);
    remove_db(b);
}

/* Reading from before the horizon is an error, not a silent gap. */
static void test_changes_horizon(void **state)
{
    (void)state;
    char db[512];
    result r;
    db_path(db, sizeof db);
    make_pets(db);
    sqlite3_shell(db, "DELETE FROM pets WHERE id = 1; DELETE FROM pets WHERE id = 2;");
    verso_db *h = NULL;
    assert_int_equal(verso_db_open(&h, db, NULL, NULL, 0), 0);
    int64_t horizon = 0;
    assert_int_equal(verso_db_prune_version(&horizon, h, 4), 0);
    verso_db_close(h);
    assert_true(horizon == 4);
    verso(&r, NULL, "changes", db, "--since", "2", NULL);
    expect_failure(&r, 1, "verso changes: ");
    result_free(&r);
    verso(&r, NULL, "changes", db, "--since", "4", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 4, NULL), 1);
    result_free(&r);
    verso(&r, NULL, "info", db, NULL);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "\"horizon\": 4"));
    result_free(&r);
    remove_db(db);
}

/* samples/orm_basics, the README's main program: exits 0 and prints a feed
 * whose last line is the delete. */
static void test_sample_orm_basics(void **state)
{
    (void)state;
    const char *build = getenv("VERSO_BUILD_DIR");
    char prog[600], db[512];
    if (!build)
        skip();
    snprintf(prog, sizeof prog, "%s/samples/orm_basics", build);
    if (access(prog, X_OK) != 0)
        skip(); /* samples not built */
    db_path(db, sizeof db);
    char *argv[] = {prog, db, NULL};
    result r;
    run_argv(&r, NULL, argv);
    expect_ok(&r);
    const char *feed = strstr(r.out, "\n{");
    assert_non_null(feed);
    assert_int_equal(check_changes(feed + 1, 0, "product"), 3);
    const char *last = strrchr(feed, '{');
    assert_non_null(strstr(last, "\"deleted\":true"));
    result_free(&r);

    /* The database it leaves is a verso database the command can read. */
    verso(&r, NULL, "changes", db, "--since", "4", NULL);
    expect_ok(&r);
    assert_int_equal(check_changes(r.out, 4, "product"), 1);
    result_free(&r);
    remove_db(db);
}

/* ---------------------------------------------------------------------
 * docs/cli.md: every ```console block is run and its output compared
 * ------------------------------------------------------------------ */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Replaces every canonical UUID in s with "<uuid>" (identities differ per run). */
static void mask_uuids(char *s)
{
    for (char *p = s; *p; p++) {
        size_t i = 0;
        for (; i < 36 && p[i]; i++)
            if ((i == 8 || i == 13 || i == 18 || i == 23) ? p[i] != '-' : !is_hex(p[i]))
                break;
        if (i == 36) {
            memcpy(p, "<uuid>", 6);
            memmove(p + 6, p + 36, strlen(p + 36) + 1);
        }
    }
}

/* Runs one documented command in dir; compares with the documented output. */
static void run_doc_command(const char *dir, const char *cmd, const char *expect)
{
    verso_buf sh = VERSO_BUF_INIT;
    assert_int_equal(verso_buf_printf(&sh, "cd '%s' && { %s ; } 2>&1", dir, cmd), 0);
    char *argv[] = {"/bin/sh", "-c", sh.data, NULL};
    result r;
    run_argv(&r, NULL, argv);
    char *want = strdup(expect);
    mask_uuids(r.out);
    mask_uuids(want);
    if (strcmp(r.out, want) != 0)
        fail_msg("docs/cli.md: $ %s\n--- documented:\n%s--- actual:\n%s", cmd, want, r.out);
    free(want);
    result_free(&r);
    verso_buf_free(&sh);
}

static void test_docs_examples(void **state)
{
    (void)state;
    const char *src = getenv("VERSO_SOURCE_DIR");
    char path[600], dir[600], bindir[600];
    if (!src)
        skip();
    snprintf(path, sizeof path, "%s/docs/cli.md", src);
    snprintf(dir, sizeof dir, "%s/cli_docs_%d", tmpdir, (int)getpid());
    snprintf(bindir, sizeof bindir, "%s", verso_bin);
    *strrchr(bindir, '/') = '\0';
    verso_buf env = VERSO_BUF_INIT;
    assert_int_equal(verso_buf_printf(&env, "%s:%s", bindir, getenv("PATH")), 0);
    assert_int_equal(setenv("PATH", env.data, 1), 0);
    verso_buf_free(&env);
    assert_int_equal(mkdir(dir, 0700), 0);

    char *doc = slurp(path);
    verso_buf expect = VERSO_BUF_INIT;
    const char *cmd = NULL;
    bool in_block = false;
    int ncommands = 0;
    for (char *line = doc, *next; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        bool fence = strncmp(line, "```", 3) == 0;
        if (!in_block) {
            in_block = fence && strcmp(line, "```console") == 0;
            continue;
        }
        if (cmd && (fence || strncmp(line, "$ ", 2) == 0)) {
            run_doc_command(dir, cmd, expect.data ? expect.data : "");
            verso_buf_clear(&expect);
            cmd = NULL;
            ncommands++;
        }
        if (fence)
            in_block = false;
        else if (strncmp(line, "$ ", 2) == 0)
            cmd = line + 2;
        else
            assert_int_equal(verso_buf_printf(&expect, "%s\n", line), 0);
    }
    assert_true(ncommands >= 10);
    verso_buf_free(&expect);
    free(doc);

    char *argv[] = {"rm", "-rf", dir, NULL};
    result r;
    run_argv(&r, NULL, argv);
    result_free(&r);
}

int main(void)
{
    const char *t = getenv("VERSO_TEST_TMP");
    verso_bin = getenv("VERSO_BIN");
    snprintf(tmpdir, sizeof tmpdir, "%s", t ? t : "/tmp");
    if (!verso_bin || access(verso_bin, X_OK) != 0) {
        fprintf(stderr, "test_cli: VERSO_BIN must name the built verso command\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_track_and_changes),
        cmocka_unit_test(test_changes_paging),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_dump_load),
        cmocka_unit_test(test_changes_horizon),
        cmocka_unit_test(test_docs_examples),
        cmocka_unit_test(test_sample_orm_basics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
