/*
 * A replica never destroys what it does not own. Pull (C API and `verso
 * pull`) and live slaves into SQLite files that hold the user's own
 * tables, views, indexes and triggers: those stay exactly as they were
 * (schema, every value and its typeof); a file snapshot is installed only
 * into a file with no object of its own; a master table whose name an
 * object of the file already has is refused, with a message that says how
 * to opt in, and nothing changes, unless the caller opted in; a failed
 * `verso pull` leaves no file behind it did not find.
 */
#include <glob.h>

#include <cjson/cJSON.h>

#include "sync/internal.h" /* verso__sync_snapshot_install */

#include "sync_harness.h"

/* A user's file: a table holding every storage class, an index, a view, a trigger. */
static const char user_objects[] =
    "CREATE TABLE notes(k INTEGER PRIMARY KEY, v);"
    "INSERT INTO notes(v) VALUES (42), (-0.0), (2.5), ('text'), (x'00ff'), (NULL),"
    " ('9007199254740993'), (9007199254740993);"
    "CREATE INDEX notes_v ON notes(v);"
    "CREATE VIEW note_texts AS SELECT v FROM notes WHERE typeof(v) = 'text';"
    "CREATE TRIGGER notes_touch AFTER UPDATE ON notes BEGIN SELECT 1; END;";

static void sql_file(const char *path, const char *sql)
{
    sqlite3 *s = NULL;

    h_remove_db(path);
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", path, sqlite3_errmsg(s));
    sqlite3_close(s);
}

/* Appends every row of sql, cells separated by '|'. */
static void append_rows(verso_buf *out, sqlite3 *s, const char *sql)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK) {
        verso_buf_printf(out, "[%s]\n", sqlite3_errmsg(s));
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            verso_buf_printf(out, "%s|", t ? (const char *)t : "NULL");
        }
        verso_buf_puts(out, "\n");
    }
    sqlite3_finalize(st);
}

/* Every cell of table: its typeof, quote() and hex(), in rowid order. */
static void append_cells(verso_buf *out, sqlite3 *s, const char *table)
{
    verso_buf sql = VERSO_BUF_INIT;
    sqlite3_stmt *st = NULL;
    char q[200];

    snprintf(q, sizeof(q), "SELECT name FROM pragma_table_info('%s') ORDER BY cid", table);
    assert_int_equal(sqlite3_prepare_v2(s, q, -1, &st, NULL), SQLITE_OK);
    verso_buf_puts(&sql, "SELECT rowid");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st, 0);
        verso_buf_printf(&sql, ", typeof(\"%s\"), quote(\"%s\"), hex(\"%s\")", c, c, c);
    }
    sqlite3_finalize(st);
    verso_buf_printf(&sql, " FROM \"%s\" ORDER BY rowid", table);
    verso_buf_printf(out, "table %s:\n", table);
    append_rows(out, s, sql.data);
    verso_buf_free(&sql);
}

/*
 * What the user owns in path: every object that is not verso's (nor, with
 * skip_master, one of the master's tables items and accounts), with its
 * SQL, and every cell of the tables named in tables (NULL-terminated).
 */
static void fingerprint(verso_buf *out, const char *path, bool skip_master,
                        const char *const *tables)
{
    sqlite3 *s = NULL;

    verso_buf_clear(out);
    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    append_rows(out, s,
                skip_master ? "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT "
                              "LIKE 'sqlite^_%' ESCAPE '^' AND name NOT LIKE '^_verso^_%' ESCAPE "
                              "'^' AND tbl_name NOT IN ('items', 'accounts') ORDER BY name"
                            : "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT "
                              "LIKE 'sqlite^_%' ESCAPE '^' AND name NOT LIKE '^_verso^_%' ESCAPE "
                              "'^' ORDER BY name");
    for (size_t i = 0; tables && tables[i]; i++)
        append_cells(out, s, tables[i]);
    sqlite3_close(s);
}

static void assert_same_text(const verso_buf *before, const verso_buf *after, const char *what)
{
    if (strcmp(before->data ? before->data : "", after->data ? after->data : "") != 0)
        fail_msg("%s changed:\n--- before\n%s--- after\n%s", what, before->data, after->data);
}

/* The cursor stored in path, read without opening it as a verso database. */
static int64_t raw_cursor(const char *path)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;

    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(s, "SELECT value FROM _verso_meta WHERE key = 'cursor_version'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

/* Runs $VERSO_BIN with args; its stderr goes to err (may be NULL). Exit status. */
static int run_cli(const char *const *args, verso_buf *err)
{
    int fds[2], status = 0;
    char buf[4096];
    ssize_t n;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(getenv("VERSO_BIN"), (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    if (err)
        verso_buf_clear(err);
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        if (err)
            verso_buf_append(err, buf, (size_t)n);
    close(fds[0]);
    waitpid(pid, &status, 0);
    if (err)
        verso_buf_append(err, "", 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int pull_c(verso_pull_result *res, const char *url, const char *path, bool replace,
                  char *why, size_t whylen)
{
    char open_why[256] = "";
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    verso_db *db = NULL;
    int rc;

    c.replace_tables = replace;
    if (verso_db_open(&db, path, NULL, open_why, sizeof(open_why)) < 0)
        fail_msg("open %s: %s", path, open_why);
    rc = verso_sync_pull(res, db, url, &c, why, whylen);
    verso_db_close(db);
    return rc;
}

static void start_master(h_master *m, const char *mp, uint64_t seed, const char *const *extra)
{
    verso_db *db = h_open(mp);

    h_seed(seed);
    h_seed_accounts(db, 100);
    h_orm_workload(db, 40, 8);
    verso_db_close(db);
    h_master_start(m, mp, extra);
}

/* ---- tables the replica does not replicate stay as they were ---- */

static void test_pull_keeps_user_objects(void **state)
{
    static const char *const notes[] = {"notes", NULL}, *const mine[] = {"mine", NULL};
    char mp[600], p1[600], p2[600], p3[600], why[256] = "";
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    verso_pull_result res;
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "keep-master.db");
    h_path(p1, sizeof(p1), "keep-objects.db");
    h_path(p2, sizeof(p2), "keep-empty-table.db");
    h_path(p3, sizeof(p3), "keep-view.db");
    start_master(&m, mp, 51, NULL);

    /* C API: a table of every storage class, an index, a view, a trigger */
    sql_file(p1, user_objects);
    fingerprint(&before, p1, true, notes);
    if (pull_c(&res, m.url, p1, false, why, sizeof(why)) < 0)
        fail_msg("pull: %s", why);
    assert_false(res.snapshot); /* the file has objects of its own: rows, not pages */
    fingerprint(&after, p1, true, notes);
    assert_same_text(&before, &after, "the user's objects");
    h_assert_converged(mp, p1);

    /* `verso pull`: a file holding one empty table */
    sql_file(p2, "CREATE TABLE mine(a TEXT, b BLOB);");
    fingerprint(&before, p2, true, mine);
    {
        const char *args[] = {"verso", "pull", "--quiet", m.url, p2, NULL};
        assert_int_equal(run_cli(args, NULL), 0);
    }
    fingerprint(&after, p2, true, mine);
    assert_same_text(&before, &after, "an empty user table");
    h_assert_converged(mp, p2);

    /* a view alone (no table at all) */
    sql_file(p3, "CREATE VIEW answer AS SELECT 42 AS a;");
    fingerprint(&before, p3, true, NULL);
    if (pull_c(&res, m.url, p3, false, why, sizeof(why)) < 0)
        fail_msg("pull: %s", why);
    assert_false(res.snapshot);
    fingerprint(&after, p3, true, NULL);
    assert_same_text(&before, &after, "a user view");
    h_assert_converged(mp, p3);

    verso_buf_free(&before);
    verso_buf_free(&after);
    h_master_kill(&m, SIGTERM);
}

static void test_live_keeps_user_objects(void **state)
{
    static const char *const notes[] = {"notes", NULL};
    char mp[600], sp[600], why[256] = "";
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    verso_slave *s = NULL;
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "live-keep-master.db");
    h_path(sp, sizeof(sp), "live-keep-slave.db");
    start_master(&m, mp, 52, NULL);
    sql_file(sp, user_objects);
    fingerprint(&before, sp, true, notes);
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, h_head(mp), 20000) < 0) {
        verso_slave_state_get(&st, s);
        fail_msg("the live slave did not follow: %s", st.last_error);
    }
    verso_slave_stop(s);
    fingerprint(&after, sp, true, notes);
    assert_same_text(&before, &after, "the user's objects");
    h_assert_converged(mp, sp);
    verso_buf_free(&before);
    verso_buf_free(&after);
    h_master_kill(&m, SIGTERM);
}

/* ---- a name collision is refused, unless the caller opts in ---- */

static void expect_refused(const char *url, const char *path, const char *table, const char *sql,
                           const char *const *tables)
{
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    verso_pull_result res;
    char why[256] = "", what[64];

    sql_file(path, sql);
    fingerprint(&before, path, false, tables);
    assert_int_equal(pull_c(&res, url, path, false, why, sizeof(why)), VERSO_ESCHEMA);
    snprintf(what, sizeof(what), "table %s", table);
    if (!strstr(why, what) || !strstr(why, "replace"))
        fail_msg("unclear refusal: '%s'", why);
    assert_int_equal(res.cursor, 0);
    fingerprint(&after, path, false, tables);
    assert_same_text(&before, &after, path);
    assert_int_equal(raw_cursor(path), 0);
    verso_buf_free(&before);
    verso_buf_free(&after);
}

static void test_collision_is_refused(void **state)
{
    static const char *const items[] = {"items", "notes", NULL},
                             *const accounts[] = {"accounts", NULL},
                             *const upper[] = {"ITEMS", NULL};
    char mp[600], p[600], why[256] = "";
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT, err = VERSO_BUF_INIT;
    verso_pull_result res;
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "clash-master.db");
    start_master(&m, mp, 53, NULL);

    /* a table with rows, an empty one, another case, a view: the C API */
    h_path(p, sizeof(p), "clash-rows.db");
    {
        char sql[1024];
        snprintf(sql, sizeof(sql),
                 "%sCREATE TABLE items(id INTEGER PRIMARY KEY, note TEXT, n);"
                 "INSERT INTO items VALUES (1, 'mine', 7), (2, 'also mine', x'01');",
                 user_objects);
        expect_refused(m.url, p, "items", sql, items);
    }
    h_path(p, sizeof(p), "clash-empty.db");
    expect_refused(m.url, p, "accounts", "CREATE TABLE accounts(x);", accounts);
    h_path(p, sizeof(p), "clash-case.db");
    expect_refused(m.url, p, "items",
                   "CREATE TABLE ITEMS(id INTEGER PRIMARY KEY, v);"
                   "INSERT INTO ITEMS VALUES (1, 1.5);",
                   upper);
    h_path(p, sizeof(p), "clash-view.db");
    expect_refused(m.url, p, "items", "CREATE VIEW items AS SELECT 1 AS id;", NULL);

    /* `verso pull` says so and how to opt in; with the flag the table is replaced */
    h_path(p, sizeof(p), "clash-cli.db");
    {
        char sql[1024];
        const char *args[] = {"verso", "pull", "--quiet", m.url, p, NULL};
        const char *opt[] = {"verso", "pull", "--quiet", "--replace-tables", m.url, p, NULL};
        snprintf(sql, sizeof(sql), "%sCREATE TABLE items(id INTEGER PRIMARY KEY, note TEXT);",
                 user_objects);
        sql_file(p, sql);
        fingerprint(&before, p, false, items);
        assert_int_equal(run_cli(args, &err), 4); /* data: a schema conflict */
        if (!strstr(err.data, "items") || !strstr(err.data, "--replace-tables"))
            fail_msg("verso pull's refusal does not say how to opt in: %s", err.data);
        fingerprint(&after, p, false, items);
        assert_same_text(&before, &after, "the CLI's refusal");

        fingerprint(&before, p, true, (const char *const[]){"notes", NULL});
        assert_int_equal(run_cli(opt, &err), 0);
        fingerprint(&after, p, true, (const char *const[]){"notes", NULL});
        assert_same_text(&before, &after, "the other user objects");
        h_assert_converged(mp, p);
    }

    /* the C API's opt-in replaces a view, and a table whose name differs in case */
    h_path(p, sizeof(p), "clash-view.db");
    if (pull_c(&res, m.url, p, true, why, sizeof(why)) < 0)
        fail_msg("pull with replace_tables: %s", why);
    h_assert_converged(mp, p);
    h_path(p, sizeof(p), "clash-case.db");
    if (pull_c(&res, m.url, p, true, why, sizeof(why)) < 0)
        fail_msg("pull with replace_tables: %s", why);
    h_assert_converged(mp, p);

    verso_buf_free(&before);
    verso_buf_free(&after);
    verso_buf_free(&err);
    h_master_kill(&m, SIGTERM);
}

static void test_live_collision_is_refused(void **state)
{
    static const char *const accounts[] = {"accounts", "notes", NULL}, *const notes[] = {"notes",
                                                                                         NULL};
    char mp[600], sp[600], sql[1024], why[256] = "";
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT, kept = VERSO_BUF_INIT;
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    verso_slave *s = NULL;
    int64_t deadline;
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "live-clash-master.db");
    h_path(sp, sizeof(sp), "live-clash-slave.db");
    start_master(&m, mp, 54, NULL);
    snprintf(sql, sizeof(sql),
             "%sCREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT);"
             "INSERT INTO accounts VALUES (1, 'me');",
             user_objects);
    sql_file(sp, sql);
    fingerprint(&before, sp, false, accounts);
    fingerprint(&kept, sp, true, notes);
    o.retry_min_ms = 20;
    o.retry_max_ms = 100;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    deadline = h_now_ms() + 10000;
    do {
        h_sleep_ms(10);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    } while (!strstr(st.last_error, "table accounts") && h_now_ms() < deadline);
    verso_slave_stop(s);
    if (!strstr(st.last_error, "table accounts") || !strstr(st.last_error, "replace"))
        fail_msg("the live slave's last error: '%s'", st.last_error);
    assert_int_equal(st.commits, 0);
    fingerprint(&after, sp, false, accounts);
    assert_same_text(&before, &after, "the slave's file");

    o.client.replace_tables = true;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, h_head(mp), 20000) < 0) {
        verso_slave_state_get(&st, s);
        fail_msg("the opted-in slave did not follow: %s", st.last_error);
    }
    verso_slave_stop(s);
    h_assert_converged(mp, sp);
    fingerprint(&after, sp, true, notes);
    assert_same_text(&kept, &after, "the other user objects");
    verso_buf_free(&kept);
    verso_buf_free(&before);
    verso_buf_free(&after);
    h_master_kill(&m, SIGTERM);
}

/* ---- a failed `verso pull` leaves no file it did not find ---- */

static bool any_file(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal", ".snapshot*"};
    char p[700];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        glob_t g;
        bool found;
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        found = glob(p, 0, NULL, &g) == 0 && g.gl_pathc > 0;
        globfree(&g);
        if (found)
            return true;
    }
    return false;
}

static void test_failed_pull_leaves_no_file(void **state)
{
    static const char *const notes[] = {"notes", NULL};
    char mp[600], p[600], cfg[600];
    const char *extra[] = {"--config", cfg, NULL};
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    h_master m;
    FILE *f;

    (void)state;
    h_path(mp, sizeof(mp), "fail-master.db");
    h_path(p, sizeof(p), "fail-slave.db");
    h_path(cfg, sizeof(cfg), "fail-server.conf");
    assert_non_null(f = fopen(cfg, "w"));
    fprintf(f, /* sha256("s3cret-token") */
            "token a81e611a041b13f078bf8ebe5dab4d4fd63fcc5594661c918bec093a2f416a7e replicate\n");
    fclose(f);
    start_master(&m, mp, 55, extra);
    {
        const char *bad_token[] = {"verso", "pull", "--quiet", "--token", "wrong", m.url, p, NULL};
        const char *no_table[] = {"verso",   "pull", "--quiet", "--token", "s3cret-token",
                                  "--table", "nope", m.url,     p,         NULL};
        const char *no_master[] = {"verso", "pull", "--quiet", "http://127.0.0.1:1", p, NULL};
        h_remove_db(p);
        assert_int_equal(run_cli(bad_token, NULL), 3); /* access */
        assert_false(any_file(p));
        assert_int_equal(run_cli(no_table, NULL), 4); /* data: no such table */
        assert_false(any_file(p));
        assert_int_equal(run_cli(no_master, NULL), 75); /* temporary: nothing listening */
        assert_false(any_file(p));

        /* a file that was there stays, as it was */
        sql_file(p, user_objects);
        fingerprint(&before, p, false, notes);
        assert_int_equal(run_cli(bad_token, NULL), 3); /* access */
        assert_true(access(p, F_OK) == 0);
        fingerprint(&after, p, false, notes);
        assert_same_text(&before, &after, "an existing file after a failed pull");
    }
    verso_buf_free(&before);
    verso_buf_free(&after);
    h_master_kill(&m, SIGTERM);
}

/* ---- the same rules one level down ---- */

/* The ORM's apply: a user object's name is refused, replaced only on request. */
static void test_apply_table_refuses_user_objects(void **state)
{
    static const char *const thing[] = {"thing", NULL};
    verso_column cols[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                           {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                           {"label", VERSO_TEXT, 0}};
    const char *names[] = {"id", "version", "label"};
    verso_value row[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(3), VERSO_VALUE_TEXT("master's")};
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    char sp[600];
    verso_db *s = NULL;

    (void)state;
    h_path(sp, sizeof(sp), "apply-user.db");
    sql_file(sp, "CREATE TABLE Thing(id INTEGER PRIMARY KEY, note);"
                 "INSERT INTO Thing VALUES (1, 'mine'), (2, 2.5);"
                 "CREATE INDEX thing_note ON Thing(note);");
    fingerprint(&before, sp, false, (const char *const[]){"Thing", NULL});
    assert_int_equal(verso_db_open(&s, sp, NULL, NULL, 0), 0);
    assert_int_equal(verso_apply_replace(s, "thing"), VERSO_ESTATE); /* not inside apply */
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "thing", cols, 3), VERSO_ESCHEMA);
    assert_string_equal(verso_db_errmsg(s),
                        "table thing: the table Thing of this database is not a "
                        "replica; not replaced (opt in with --replace-tables)");
    assert_int_equal(verso_apply_abort(s), 0);
    fingerprint(&after, sp, false, (const char *const[]){"Thing", NULL});
    assert_same_text(&before, &after, "the user's table after a refusal");

    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_replace(s, "thing"), 0);
    assert_int_equal(verso_apply_replace(s, "thing"), 0); /* nothing left to replace */
    assert_int_equal(verso_apply_table(s, "thing", cols, 3), 0);
    assert_int_equal(verso_apply_upsert(s, "thing", names, row, 3), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 3), 0);
    assert_true(verso_table_is_replicated(verso_db_table(s, "thing")));
    verso_db_close(s);
    assert_int_equal(h_count(sp, "thing"), 1);
    fingerprint(&after, sp, true, thing);
    assert_null(strstr(after.data, "thing_note")); /* the user's index went with the table */
    verso_buf_free(&before);
    verso_buf_free(&after);
}

/* Copies src into dst with the backup API (a snapshot file as a master makes one). */
static void copy_db(const char *src, const char *dst)
{
    sqlite3 *in = NULL, *out = NULL;
    sqlite3_backup *bk;

    h_remove_db(dst);
    assert_int_equal(sqlite3_open(src, &in), SQLITE_OK);
    assert_int_equal(sqlite3_open(dst, &out), SQLITE_OK);
    assert_non_null(bk = sqlite3_backup_init(out, "main", in, "main"));
    assert_int_equal(sqlite3_backup_step(bk, -1), SQLITE_DONE);
    assert_int_equal(sqlite3_backup_finish(bk), SQLITE_OK);
    assert_int_equal(sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(out);
    sqlite3_close(in);
}

/* A table made after the decision to take a snapshot is not replaced by it. */
static void test_snapshot_install_refuses_a_file_with_objects(void **state)
{
    static const char *const late[] = {"late", NULL};
    verso_buf before = VERSO_BUF_INIT, after = VERSO_BUF_INIT;
    char mp[600], snap[600], sp[600], ep[600], why[256] = "", id[37];
    verso_db *m, *s = NULL;
    int64_t head;

    (void)state;
    h_path(mp, sizeof(mp), "install-master.db");
    h_path(snap, sizeof(snap), "install.snapshot");
    h_path(sp, sizeof(sp), "install-late.db");
    h_path(ep, sizeof(ep), "install-empty.db");
    m = h_open(mp);
    h_seed(56);
    h_orm_workload(m, 10, 3);
    head = h_head(mp);
    snprintf(id, sizeof(id), "%s", verso_db_identity(m));
    verso_db_close(m);

    h_remove_db(sp);
    assert_int_equal(verso_db_open(&s, sp, NULL, NULL, 0), 0);
    assert_true(verso__sync_snapshot_fits(s));
    {
        sqlite3 *other = NULL; /* another program, meanwhile */
        assert_int_equal(sqlite3_open(sp, &other), SQLITE_OK);
        assert_int_equal(sqlite3_exec(other, "CREATE TABLE late(x); INSERT INTO late VALUES (1);",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(other);
    }
    fingerprint(&before, sp, false, late);
    copy_db(mp, snap);
    assert_int_equal(verso__sync_snapshot_install(s, snap, id, head, why, sizeof(why)),
                     VERSO_ESTATE);
    assert_non_null(strstr(why, "not replaced"));
    verso_db_close(s);
    fingerprint(&after, sp, false, late);
    assert_same_text(&before, &after, "a file with a table made late");
    assert_int_equal(access(snap, F_OK), -1); /* the received file is removed either way */

    h_remove_db(ep); /* and an empty one takes it */
    assert_int_equal(verso_db_open(&s, ep, NULL, NULL, 0), 0);
    copy_db(mp, snap);
    if (verso__sync_snapshot_install(s, snap, id, head, why, sizeof(why)) < 0)
        fail_msg("install: %s", why);
    assert_true(verso_table_is_replicated(verso_db_table(s, "items")));
    verso_db_close(s);
    h_assert_table_equal(mp, ep, "items");
    verso_buf_free(&before);
    verso_buf_free(&after);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_keeps_user_objects),
        cmocka_unit_test(test_live_keeps_user_objects),
        cmocka_unit_test(test_collision_is_refused),
        cmocka_unit_test(test_live_collision_is_refused),
        cmocka_unit_test(test_failed_pull_leaves_no_file),
        cmocka_unit_test(test_apply_table_refuses_user_objects),
        cmocka_unit_test(test_snapshot_install_refuses_a_file_with_objects),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_own");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
