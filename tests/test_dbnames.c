/* rest/dbnames.c: the database name rule with every hostile name of the
 * contract, and the files of a dir server's directory: create, scan, adopt
 * (tracked, untracked, WAL-mode, slave copies; text, empty, cut, damaged
 * uploads refused), from (schema, no rows), remove. Every refusal is
 * checked to leave the directory and its parent as they were. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rest/databases.h"
#include "support/internal.h"

typedef struct fx {
    char parent[512]; /* a fresh directory; DIR is parent/dir */
    char dir[600];
} fx;

static int setup(void **state)
{
    const char *base = getenv("VERSO_TEST_TMP");
    fx *f = calloc(1, sizeof(*f));

    snprintf(f->parent, sizeof(f->parent), "%s/dbnames-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(f->parent))
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/dir", f->parent);
    if (mkdir(f->dir, 0700) < 0)
        return -1;
    *state = f;
    return 0;
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[1200];

    while (d && (e = readdir(d))) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(sub);
        else
            unlink(sub);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int teardown(void **state)
{
    fx *f = *state;

    rm_tree(f->parent);
    free(f);
    return 0;
}

/* "name size mtime-ns\n" of each entry of dir, sorted: a change of any shows. */
static void listing(char *out, size_t n, const char *dir)
{
    struct dirent **ents = NULL;
    int k = scandir(dir, &ents, NULL, alphasort);
    size_t o = 0;

    out[0] = 0;
    for (int i = 0; i < k; i++) {
        char p[1200];
        struct stat st = {0};
        snprintf(p, sizeof(p), "%s/%s", dir, ents[i]->d_name);
        lstat(p, &st);
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, ".."))
            o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s %lld %lld.%09ld\n",
                                  ents[i]->d_name, (long long)st.st_size,
                                  S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_mtim.tv_sec,
                                  S_ISDIR(st.st_mode) ? 0L : st.st_mtim.tv_nsec);
        free(ents[i]);
    }
    free(ents);
}

typedef struct snap {
    char parent[4096];
    char dir[8192];
} snap;

static void take(snap *s, const fx *f)
{
    listing(s->parent, sizeof(s->parent), f->parent);
    listing(s->dir, sizeof(s->dir), f->dir);
}

static void assert_unchanged(const snap *before, const fx *f)
{
    snap *now = malloc(sizeof(*now));

    take(now, f);
    assert_string_equal(now->parent, before->parent);
    assert_string_equal(now->dir, before->dir);
    free(now);
}

static bool exists(const char *dir, const char *file)
{
    char p[1200];

    snprintf(p, sizeof(p), "%s/%s", dir, file);
    return access(p, F_OK) == 0;
}

static void sql(const char *path, const char *text)
{
    sqlite3 *s = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    if (sqlite3_exec(s, text, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", text, err);
    sqlite3_close(s);
}

/* The first column of the first row of q, as text (or "(null)"). */
static void sql_text(char *out, size_t n, const char *path, const char *q)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(s, q, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", q, sqlite3_errmsg(s));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, n, "%s",
             sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "(null)");
    sqlite3_finalize(st);
    sqlite3_close(s);
}

static int64_t sql_int(const char *path, const char *q)
{
    char t[64];

    sql_text(t, sizeof(t), path, q);
    return strtoll(t, NULL, 10);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static size_t read_file(const char *path, unsigned char **out)
{
    FILE *fp = fopen(path, "rb");
    long n;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    assert_int_equal(fread(*out, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return (size_t)n;
}

static void path_of(char *out, size_t n, const fx *f, const char *file)
{
    snprintf(out, n, "%s/%s", f->dir, file);
}

/* ---- names ---- */

static const char *const k_valid[] = {"a", "A", "0", "a_b", "a-b", "Tenant_42", "con", "9z-_"};

typedef struct bad_name {
    const char *name;
    size_t len; /* 0: strlen */
} bad_name;

static const bad_name k_hostile[] = {
    {"..", 0},        {".", 0},     {"%2e%2e", 0},       {"a/b", 0},  {"a%2fb", 0},
    {"a\0b", 3},      {"a%00b", 0}, {"\xef\xbd\x81", 0}, /* fullwidth a */
    {"\xd0\xb0", 0},                                     /* Cyrillic a */
    {"a\xd0\xb0", 0},                                    /* latin a then a Cyrillic one */
    {"a.", 0},        {"a ", 0},    {" a", 0},           {"a.db", 0}, {"", 0},
    {"-a", 0},        {"_a", 0},    {"a\\b", 0},         {"\\", 0},   {"/etc/passwd", 0},
    {"../x", 0},      {"a\nb", 0},  {"a\tb", 0},         {"a:b", 0},  {"a*", 0},
    {"~", 0},         {"a\xff", 0},
};

static void check_refused(const char *name, size_t len)
{
    char why[400] = "";
    char out[256];

    assert_false(verso__dbname_valid(name, len));
    assert_int_equal(verso__dbname_check(name, len, why, sizeof(why)), VERSO_EINVAL);
    if (!strstr(why, "database names are 1 to 64 letters, digits, '_' or '-'"))
        fail_msg("why: %s", why);
    /* quoted safely: valid UTF-8, no control character */
    assert_true(verso__utf8_valid(why, strlen(why)));
    for (const char *p = why; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    if (len == strlen(name))
        assert_int_equal(verso__dbfile_path(out, sizeof(out), "/srv", name), VERSO_EINVAL);
}

static void test_name_rule(void **state)
{
    char long_name[5001], out[256];

    (void)state;
    for (size_t i = 0; i < sizeof(k_valid) / sizeof(k_valid[0]); i++) {
        assert_true(verso__dbname_valid(k_valid[i], strlen(k_valid[i])));
        assert_int_equal(verso__dbname_check(k_valid[i], strlen(k_valid[i]), NULL, 0), 0);
    }
    for (size_t i = 0; i < sizeof(k_hostile) / sizeof(k_hostile[0]); i++)
        check_refused(k_hostile[i].name,
                      k_hostile[i].len ? k_hostile[i].len : strlen(k_hostile[i].name));
    memset(long_name, 'a', sizeof(long_name));
    long_name[64] = 0;
    assert_true(verso__dbname_valid(long_name, 64)); /* 64 bytes: the limit */
    long_name[64] = 'a';
    long_name[65] = 0;
    check_refused(long_name, 65);
    long_name[5000] = 0;
    check_refused(long_name, 5000);
    assert_false(verso__dbname_valid(NULL, 0));
    /* a name that is valid for the length given and not for strlen */
    assert_true(verso__dbname_valid("ab/c", 2));
    assert_false(verso__dbname_valid("ab/c", 4));

    assert_int_equal(verso__dbfile_path(out, sizeof(out), "/srv/dbs", "a_1"), 0);
    assert_string_equal(out, "/srv/dbs/a_1.db");
    assert_int_equal(verso__dbfile_path(out, 10, "/srv/dbs", "a_1"), VERSO_ETOOBIG);
}

/* The why of a 5000-byte name is short and cut, not the name in full. */
static void test_name_why_bounded(void **state)
{
    char name[5001], why[400];

    (void)state;
    memset(name, 'x', 5000);
    name[5000] = 0;
    assert_int_equal(verso__dbname_check(name, 5000, why, sizeof(why)), VERSO_EINVAL);
    assert_true(strlen(why) < 250);
    assert_non_null(strstr(why, "(5000 bytes) is not a database name"));
    assert_int_equal(verso__dbname_check("a\0b", 3, why, sizeof(why)), VERSO_EINVAL);
    assert_non_null(strstr(why, "\"a?b\""));
}

/* Every file operation refuses every hostile name, and nothing moves. */
static void test_hostile_names_touch_nothing(void **state)
{
    fx *f = *state;
    snap *before = malloc(sizeof(*before));
    char src[1200], why[400], long_name[5001];

    path_of(src, sizeof(src), f, ".upload");
    write_file(src, "not a database", 14);
    assert_int_equal(verso__dbfile_create(f->dir, "base", why, sizeof(why)), 0);
    take(before, f);
    for (size_t i = 0; i <= sizeof(k_hostile) / sizeof(k_hostile[0]) + 1; i++) {
        const char *name =
            i < sizeof(k_hostile) / sizeof(k_hostile[0]) ? k_hostile[i].name : long_name;
        memset(long_name, 'b', 5000);
        long_name[i == sizeof(k_hostile) / sizeof(k_hostile[0]) ? 65 : 5000] = 0;
        if (i < sizeof(k_hostile) / sizeof(k_hostile[0]) && k_hostile[i].len)
            continue; /* "a\0b" is "a" as a C string: the routes see the length */
        assert_int_equal(verso__dbfile_create(f->dir, name, why, sizeof(why)), VERSO_EINVAL);
        assert_int_equal(verso__dbfile_adopt(f->dir, name, src, why, sizeof(why)), VERSO_EINVAL);
        assert_int_equal(verso__dbfile_from(f->dir, name, "base", why, sizeof(why)), VERSO_EINVAL);
        assert_int_equal(verso__dbfile_from(f->dir, "fresh", name, why, sizeof(why)), VERSO_EINVAL);
        assert_int_equal(verso__dbfile_remove(f->dir, name, why, sizeof(why)), VERSO_EINVAL);
        assert_non_null(strstr(why, "database names are"));
        assert_unchanged(before, f);
    }
    /* the path rule is not the only guard: "..": no ../.db, no parent file */
    assert_false(exists(f->parent, ".db"));
    assert_false(exists(f->dir, "..db"));
    free(before);
}

/* ---- create, scan, remove ---- */

static void test_create(void **state)
{
    fx *f = *state;
    char why[400], p[1200], id[64];
    unsigned char *bytes;
    size_t n;

    assert_int_equal(verso__dbfile_create(f->dir, "t1", why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "t1.db");
    /* nothing else in DIR: no temporary file, no -wal left */
    {
        char l[1024];
        listing(l, sizeof(l), f->dir);
        if (strncmp(l, "t1.db ", 6) || strchr(l, '\n')[1])
            fail_msg("DIR holds:\n%s", l);
    }
    sql_text(id, sizeof(id), p, "SELECT value FROM _verso_meta WHERE key = 'identity'");
    assert_int_equal(strlen(id), 36);
    assert_int_equal(sql_int(p, "SELECT v FROM _verso_head"), 0);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_tables"), 0);
    n = read_file(p, &bytes);
    assert_true(n >= 100);
    assert_int_equal(bytes[18], 2); /* WAL */
    assert_int_equal(bytes[19], 2);
    free(bytes);
    /* taken */
    snap *before = malloc(sizeof(*before));
    take(before, f);
    assert_int_equal(verso__dbfile_create(f->dir, "t1", why, sizeof(why)), VERSO_ECONFLICT);
    assert_non_null(strstr(why, "\"t1\" exists"));
    assert_unchanged(before, f);
    /* names are case-sensitive */
    assert_int_equal(verso__dbfile_create(f->dir, "T1", why, sizeof(why)), 0);
    assert_true(exists(f->dir, "T1.db"));
    free(before);
}

/* Stale side files of a database once deleted are not taken for the new one's. */
static void test_create_over_stale_wal(void **state)
{
    fx *f = *state;
    char why[400], p[1200], wal[1300];

    path_of(p, sizeof(p), f, "s.db");
    snprintf(wal, sizeof(wal), "%s-wal", p);
    write_file(wal, "stale wal bytes that are no WAL at all", 38);
    assert_int_equal(verso__dbfile_create(f->dir, "s", why, sizeof(why)), 0);
    assert_false(exists(f->dir, "s.db-wal"));
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_meta WHERE key = 'identity'"), 1);
}

typedef struct seen {
    char names[16][VERSO__DBNAME_MAX + 1];
    int n;
    int stop_at;
} seen;

static int note(const char *name, void *arg)
{
    seen *s = arg;

    snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
    return s->n == s->stop_at ? 7 : 0;
}

static void test_scan(void **state)
{
    fx *f = *state;
    static const char *const files[] = {"b.db",
                                        "a.db",
                                        "B.db",
                                        ".hidden.db",
                                        "a.db-wal",
                                        "a.db-shm",
                                        "x.txt",
                                        "bad name.db",
                                        "-x.db",
                                        "\xd0\xb0.db",
                                        "c.db.journal",
                                        "two.dots.db",
                                        ".verso-new-q-123456",
                                        "db",
                                        ".db"};
    char p[1200];
    seen s = {.stop_at = 0};

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        path_of(p, sizeof(p), f, files[i]);
        write_file(p, "x", 1);
    }
    path_of(p, sizeof(p), f, "sub.db"); /* a directory is no database */
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(verso__dbfile_scan(f->dir, note, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[0], "B");
    assert_string_equal(s.names[1], "a");
    assert_string_equal(s.names[2], "b");
    memset(&s, 0, sizeof(s));
    s.stop_at = 2;
    assert_int_equal(verso__dbfile_scan(f->dir, note, &s), 7);
    assert_int_equal(s.n, 2);
    path_of(p, sizeof(p), f, "missing");
    assert_int_equal(verso__dbfile_scan(p, note, &s), VERSO_EIO);
}

static void test_remove(void **state)
{
    fx *f = *state;
    char why[400], p[1200], side[1300];

    assert_int_equal(verso__dbfile_create(f->dir, "r", why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "r.db");
    snprintf(side, sizeof(side), "%s-wal", p);
    write_file(side, "w", 1);
    snprintf(side, sizeof(side), "%s-shm", p);
    write_file(side, "s", 1);
    snprintf(side, sizeof(side), "%s-journal", p);
    write_file(side, "j", 1);
    assert_int_equal(verso__dbfile_create(f->dir, "keep", why, sizeof(why)), 0);
    assert_int_equal(verso__dbfile_remove(f->dir, "r", why, sizeof(why)), 0);
    assert_false(exists(f->dir, "r.db"));
    assert_false(exists(f->dir, "r.db-wal"));
    assert_false(exists(f->dir, "r.db-shm"));
    assert_false(exists(f->dir, "r.db-journal"));
    assert_true(exists(f->dir, "keep.db"));
    assert_int_equal(verso__dbfile_remove(f->dir, "r", why, sizeof(why)), VERSO_ENOTFOUND);
    assert_non_null(strstr(why, "no database named \"r\""));
}

/* ---- adopt ---- */

/* A verso database at path with a tracked table items (3 rows, one deleted)
 * and an untracked table notes. */
static void make_verso_file(const char *path)
{
    verso_db *db = NULL;
    char why[256];

    assert_int_equal(verso_db_open(&db, path, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_db_exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT "
                                       "NOT NULL, qty INTEGER DEFAULT 0);"
                                       "CREATE INDEX items_name ON items(name);"
                                       "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                                       "INSERT INTO notes(body) VALUES ('private')"),
                     0);
    assert_int_equal(verso_db_track(db, "items", NULL), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO items(name, qty) VALUES ('a', 1), ('b', 2), "
                                       "('c', 3); DELETE FROM items WHERE name = 'b'"),
                     0);
    verso_db_close(db);
}

static void identity_of(char out[64], const char *path)
{
    sql_text(out, 64, path, "SELECT value FROM _verso_meta WHERE key = 'identity'");
}

static void upload_copy(char *dst, size_t n, const fx *f, const char *src)
{
    unsigned char *bytes;
    size_t len = read_file(src, &bytes);

    path_of(dst, n, f, ".verso-spool-test");
    write_file(dst, bytes, len);
    free(bytes);
}

static void test_adopt_verso_file(void **state)
{
    fx *f = *state;
    char orig[1200], up[1200], p[1200], why[400], id0[64], id1[64];
    int64_t head;

    snprintf(orig, sizeof(orig), "%s/orig.db", f->parent);
    make_verso_file(orig);
    identity_of(id0, orig);
    head = sql_int(orig, "SELECT v FROM _verso_head");
    assert_true(head >= 4);
    upload_copy(up, sizeof(up), f, orig);
    assert_int_equal(verso__dbfile_adopt(f->dir, "shop", up, why, sizeof(why)), 0);
    assert_false(exists(f->dir, ".verso-spool-test")); /* renamed in */
    path_of(p, sizeof(p), f, "shop.db");
    identity_of(id1, p);
    assert_int_equal(strlen(id1), 36);
    assert_string_not_equal(id0, id1); /* a new database: a new identity */
    assert_int_equal(sql_int(p, "SELECT v FROM _verso_head"), head);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM items"), 2);
    assert_int_equal(sql_int(p, "SELECT sum(version) FROM items"),
                     sql_int(orig, "SELECT sum(version) FROM items"));
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_tombstones"), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_tables WHERE name = 'items'"), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM notes"), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'items_name'"), 1);
    /* still tracked: a write gets the next version */
    sql(p, "INSERT INTO items(name) VALUES ('d')");
    assert_int_equal(sql_int(p, "SELECT version FROM items WHERE name = 'd'"), head + 1);
    /* the original is untouched */
    identity_of(id1, orig);
    assert_string_equal(id0, id1);
}

/* A slave's copy becomes a master of its own; a head below its rows is raised. */
static void test_adopt_slave_copy(void **state)
{
    fx *f = *state;
    char orig[1200], up[1200], p[1200], why[400], t[64];
    verso_db *db = NULL;

    snprintf(orig, sizeof(orig), "%s/slave.db", f->parent);
    make_verso_file(orig);
    sql(orig, "UPDATE _verso_tables SET replicated = 1;"
              "INSERT OR REPLACE INTO _verso_meta(key, value) VALUES "
              "('cursor_master', '11111111-2222-3333-4444-555555555555'), ('cursor_version', 4);"
              "UPDATE _verso_head SET v = 1");
    upload_copy(up, sizeof(up), f, orig);
    assert_int_equal(verso__dbfile_adopt(f->dir, "copy", up, why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "copy.db");
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_tables WHERE replicated"), 0);
    sql_text(t, sizeof(t), p, "SELECT value FROM _verso_meta WHERE key = 'cursor_master'");
    assert_string_equal(t, "");
    assert_int_equal(sql_int(p, "SELECT v FROM _verso_head"),
                     sql_int(orig, "SELECT max(version) FROM (SELECT version FROM items UNION "
                                   "ALL SELECT version FROM _verso_tombstones)"));
    assert_int_equal(verso_db_open(&db, p, NULL, why, sizeof(why)), 0);
    assert_false(verso_table_is_replicated(verso_db_table(db, "items")));
    verso_db_close(db);
}

static void test_adopt_untracked_sqlite(void **state)
{
    fx *f = *state;
    char up[1200], p[1200], why[400], id[64];
    verso_db *db = NULL;

    path_of(up, sizeof(up), f, ".verso-spool-plain");
    sql(up, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
            "INSERT INTO notes(body) VALUES ('x'), ('y')");
    assert_int_equal(verso__dbfile_adopt(f->dir, "plain", up, why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "plain.db");
    identity_of(id, p);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM notes"), 2);
    assert_int_equal(verso_db_open(&db, p, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_db_ntables(db), 0); /* tracked as it was: not at all */
    verso_db_close(db);
}

static void test_adopt_wal_file(void **state)
{
    fx *f = *state;
    char up[1200], p[1200], why[400];
    unsigned char *bytes;

    path_of(up, sizeof(up), f, ".verso-spool-wal");
    sql(up, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
            "INSERT INTO t(v) VALUES (1), (2), (3)");
    assert_true(read_file(up, &bytes) >= 100);
    assert_int_equal(bytes[18], 2);
    free(bytes);
    assert_int_equal(verso__dbfile_adopt(f->dir, "walled", up, why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "walled.db");
    assert_int_equal(sql_int(p, "SELECT count(*) FROM t"), 3);
    assert_false(exists(f->dir, ".verso-spool-wal-wal"));
    assert_false(exists(f->dir, ".verso-spool-wal-shm"));
}

/* A SQLite file with pages that fail integrity_check: an index whose
 * entries no longer match the table (written with the schema tampered). */
static void make_corrupt(const char *path)
{
    sql(path, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
              "CREATE INDEX t_v ON t(v);"
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)"
              " INSERT INTO t(v) SELECT 'value ' || i FROM n;"
              "PRAGMA writable_schema = ON;"
              "UPDATE sqlite_master SET sql = 'CREATE INDEX t_v ON t(id)' WHERE name = 't_v';"
              "PRAGMA writable_schema = OFF");
}

typedef struct refused_upload {
    const char *what;
    int kind;
} refused_upload;

enum { U_TEXT, U_EMPTY, U_HEADER_CUT, U_PAGES_CUT, U_CORRUPT, U_BAD_PAGE_SIZE };

static void write_upload(const char *up, int kind, const char *good)
{
    unsigned char *bytes;
    size_t n;

    if (kind == U_TEXT) {
        write_file(up, "id,name\n1,hello\n", 16);
        return;
    }
    if (kind == U_EMPTY) {
        write_file(up, "", 0);
        return;
    }
    if (kind == U_CORRUPT) {
        make_corrupt(up);
        return;
    }
    n = read_file(good, &bytes);
    if (kind == U_HEADER_CUT)
        n = 60;
    else if (kind == U_PAGES_CUT)
        n = n - 100;
    else
        bytes[16] = 3, bytes[17] = 0; /* page size 768 */
    write_file(up, bytes, n);
    free(bytes);
}

static void test_adopt_refused(void **state)
{
    fx *f = *state;
    static const refused_upload k_uploads[] = {
        {"text", U_TEXT},
        {"zero-length", U_EMPTY},
        {"header cut at 60 bytes", U_HEADER_CUT},
        {"last page cut", U_PAGES_CUT},
        {"fails integrity_check", U_CORRUPT},
        {"bad page size", U_BAD_PAGE_SIZE},
    };
    char good[1200], up[1200], why[400];
    snap *before = malloc(sizeof(*before));

    snprintf(good, sizeof(good), "%s/good.db", f->parent);
    make_verso_file(good);
    for (size_t i = 0; i < sizeof(k_uploads) / sizeof(k_uploads[0]); i++) {
        path_of(up, sizeof(up), f, ".verso-spool-bad");
        unlink(up);
        write_upload(up, k_uploads[i].kind, good);
        take(before, f);
        why[0] = 0;
        if (verso__dbfile_adopt(f->dir, "bad", up, why, sizeof(why)) != VERSO_EINVAL)
            fail_msg("%s: adopted (%s)", k_uploads[i].what, why);
        if (strncmp(why, "the upload is not a SQLite database: ", 37))
            fail_msg("%s: %s", k_uploads[i].what, why);
        assert_null(strstr(why, f->dir)); /* no server path in the reason */
        assert_unchanged(before, f);      /* the upload stays for the caller; nothing else */
        assert_false(exists(f->dir, "bad.db"));
    }
    unlink(up);
    free(before);
}

static void test_adopt_corrupt_says_integrity(void **state)
{
    fx *f = *state;
    char up[1200], why[400];

    path_of(up, sizeof(up), f, ".verso-spool-c");
    make_corrupt(up);
    assert_int_equal(verso__dbfile_adopt(f->dir, "c", up, why, sizeof(why)), VERSO_EINVAL);
    if (!strstr(why, "integrity_check fails"))
        fail_msg("%s", why);
}

static void test_adopt_name_taken(void **state)
{
    fx *f = *state;
    char up[1200], p[1200], why[400], id0[64], id1[64];
    snap *before = malloc(sizeof(*before));

    assert_int_equal(verso__dbfile_create(f->dir, "taken", why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "taken.db");
    identity_of(id0, p);
    path_of(up, sizeof(up), f, ".verso-spool-t");
    sql(up, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    take(before, f);
    assert_int_equal(verso__dbfile_adopt(f->dir, "taken", up, why, sizeof(why)), VERSO_ECONFLICT);
    assert_unchanged(before, f);
    identity_of(id1, p);
    assert_string_equal(id0, id1);
    free(before);
}

/* ---- from ---- */

static void test_from(void **state)
{
    fx *f = *state;
    char tpl[1200], p[1200], why[400], id0[64], id1[64];
    snap *before = malloc(sizeof(*before));
    verso_db *db = NULL;
    int64_t id = 0, version = 0;
    verso_value v = VERSO_VALUE_TEXT("new");
    const char *col = "name";

    path_of(tpl, sizeof(tpl), f, "template.db");
    make_verso_file(tpl);
    identity_of(id0, tpl);
    assert_int_equal(verso__dbfile_from(f->dir, "tenant1", "template", why, sizeof(why)), 0);
    path_of(p, sizeof(p), f, "tenant1.db");
    identity_of(id1, p);
    assert_int_equal(strlen(id1), 36);
    assert_string_not_equal(id0, id1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM items"), 0);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM _verso_tombstones"), 0);
    assert_int_equal(sql_int(p, "SELECT v FROM _verso_head"), 0);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'items_name'"), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'notes'"), 0);
    /* the template is untouched */
    assert_int_equal(sql_int(tpl, "SELECT count(*) FROM items"), 2);
    /* the columns are the template's, and the table is tracked and writable */
    assert_int_equal(verso_db_open(&db, p, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_db_ntables(db), 1);
    assert_int_equal(verso_table_ncolumns(verso_db_table(db, "items")), 4);
    assert_int_equal(verso_row_insert(&id, &version, db, "items", &col, &v, 1), 0);
    assert_int_equal(version, 1);
    verso_db_close(db);

    take(before, f);
    assert_int_equal(verso__dbfile_from(f->dir, "tenant2", "nope", why, sizeof(why)),
                     VERSO_ENOTFOUND);
    assert_non_null(strstr(why, "\"nope\""));
    assert_int_equal(verso__dbfile_from(f->dir, "tenant1", "template", why, sizeof(why)),
                     VERSO_ECONFLICT);
    assert_unchanged(before, f);
    free(before);
}

/* Temporary files of a process that died mid-way go; nothing else does. */
static void test_sweep(void **state)
{
    fx *f = *state;
    static const char *const gone[] = {".verso-new-a-123456", ".verso-new-a-123456-wal",
                                       ".verso-upload-XyZ123", ".verso-upload-XyZ123-journal"};
    static const char *const kept[] = {"a.db", ".verso-spool-1", ".hidden", "x.verso-new-1",
                                       ".verso-newer"};
    char p[1200], why[400];
    struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};

    assert_int_equal(verso__dbfile_create(f->dir, "a", why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        path_of(p, sizeof(p), f, gone[i]);
        write_file(p, "x", 1);
        assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    }
    for (size_t i = 1; i < sizeof(kept) / sizeof(kept[0]); i++) {
        path_of(p, sizeof(p), f, kept[i]);
        write_file(p, "x", 1);
        assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    }
    path_of(p, sizeof(p), f, ".verso-upload-fresh"); /* being written now: kept */
    write_file(p, "x", 1);
    assert_int_equal(verso__dbfile_sweep(f->dir, 300), 4);
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        assert_false(exists(f->dir, gone[i]));
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_true(exists(f->dir, kept[i]));
    assert_true(exists(f->dir, ".verso-upload-fresh"));
    /* once old, it goes too (an explicit time: file times and time() may
     * disagree by a tick within the same second) */
    path_of(p, sizeof(p), f, ".verso-upload-fresh");
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    assert_int_equal(verso__dbfile_sweep(f->dir, 0), 1);
    path_of(p, sizeof(p), f, "missing");
    assert_int_equal(verso__dbfile_sweep(p, 0), VERSO_EIO);
}

/* An upload spooled on another file system is copied in, then named. */
static void test_adopt_other_fs(void **state)
{
    fx *f = *state;
    char up[256] = "/dev/shm/verso-dbnames-XXXXXX", p[1200], why[400], l[2048];
    struct stat a, b;
    int fd;

    if ((fd = mkstemp(up)) < 0) {
        skip();
        return;
    }
    close(fd);
    if (stat(up, &a) < 0 || stat(f->dir, &b) < 0 || a.st_dev == b.st_dev) {
        unlink(up);
        skip(); /* one file system here: the copy path is not reached */
        return;
    }
    unlink(up);
    sql(up, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t(v) VALUES (1), (2)");
    assert_int_equal(verso__dbfile_adopt(f->dir, "moved", up, why, sizeof(why)), 0);
    assert_int_equal(access(up, F_OK), -1); /* taken, as a rename would */
    listing(l, sizeof(l), f->dir);          /* no temporary file left */
    if (strncmp(l, "moved.db ", 9) || strchr(l, '\n')[1])
        fail_msg("DIR holds:\n%s", l);
    path_of(p, sizeof(p), f, "moved.db");
    assert_int_equal(sql_int(p, "SELECT count(*) FROM t"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_rule),
        cmocka_unit_test(test_name_why_bounded),
        cmocka_unit_test_setup_teardown(test_hostile_names_touch_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_over_stale_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_verso_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_slave_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_untracked_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_wal_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_corrupt_says_integrity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_name_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_other_fs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
