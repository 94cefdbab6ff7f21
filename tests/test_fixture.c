/* Fixtures: verso_fixture_dump / verso_fixture_load (orm/fixture.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "verso/orm.h"

typedef struct note {
    int64_t id;
    int64_t version;
    char *title;
    double score;
    int64_t big;
    verso_blob raw;
    bool done;
    verso_uuid ref;
    bool ref_null;
} note;

static const verso_field note_fields[] = {
    VERSO_FIELD_ID_OF(note, id),
    VERSO_FIELD_VERSION_OF(note, version),
    VERSO_FIELD(note, title, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(note, score, VERSO_DOUBLE, 0),
    VERSO_FIELD(note, big, VERSO_INT64, 0),
    VERSO_FIELD(note, raw, VERSO_BLOB, 0),
    VERSO_FIELD(note, done, VERSO_BOOL, 0),
    VERSO_FIELD_NULLABLE(note, ref, VERSO_UUID, 0, ref_null),
};
static const verso_table_def note_def = VERSO_TABLE_DEF("note", note, note_fields);

static char tmpdir[400];
static int dbseq;

typedef struct dbs {
    verso_db *a;
    verso_db *b;
    char pa[512];
    char pb[512];
} dbs;

static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A database with the struct table and a tracked plain table "tag". */
static verso_db *open_fresh(char *path, size_t len)
{
    char open_why[256] = "";
    const verso_table_def *defs[] = {&note_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    snprintf(path, len, "%s/test_fixture_%d_%d.db", tmpdir, (int)getpid(), dbseq++);
    remove_db(path);
    o.tables = defs;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) < 0) {
        fprintf(stderr, "open %s: %s\n", path, open_why);
        return NULL;
    }
    if (verso_db_exec(db, "CREATE TABLE tag(id INTEGER PRIMARY KEY, label TEXT UNIQUE, "
                          "weight REAL, extra)") < 0 ||
        verso_db_track(db, "tag", NULL) < 0) {
        fprintf(stderr, "tag: %s\n", verso_db_errmsg(db));
        verso_db_close(db);
        return NULL;
    }
    return db;
}

static int setup(void **state)
{
    dbs *d = calloc(1, sizeof *d);
    d->a = open_fresh(d->pa, sizeof d->pa);
    d->b = open_fresh(d->pb, sizeof d->pb);
    *state = d;
    return d->a && d->b ? 0 : -1;
}

static int teardown(void **state)
{
    dbs *d = *state;
    verso_db_close(d->a);
    verso_db_close(d->b);
    remove_db(d->pa);
    remove_db(d->pb);
    free(d);
    return 0;
}

static void insert_note(verso_db *db, const char *title, double score, int64_t big, const void *raw,
                        size_t rawlen, bool done)
{
    note n = {.title = (char *)title, .score = score, .big = big, .done = done};
    n.raw.data = (void *)raw;
    n.raw.size = rawlen;
    n.ref_null = true;
    if (verso_record_insert(db, &note_def, &n) < 0)
        fail_msg("insert: %s", verso_db_errmsg(db));
}

/* Rows of every type and edge: the source of the round trips. */
static void fill(verso_db *db)
{
    insert_note(db, "plain", 1.5, 1, "", 0, false);
    insert_note(db, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ \n", 0.1, INT64_MAX, "\0\x01\xff", 3,
                true);
    insert_note(db, "", -0.0, INT64_MIN, NULL, 0, true);
    insert_note(db, "big", 1e300, 9007199254740993LL, "abc", 3, false);
    const char *sql = "INSERT INTO tag(label, weight, extra) VALUES ('red', 2.5, 7);"
                      "INSERT INTO tag(label, weight, extra) VALUES ('blue', NULL, 'text');"
                      "INSERT INTO tag(id, label, weight, extra) VALUES (100, 'green', 3, 1.25);"
                      "INSERT INTO tag(label) VALUES ('gone');"
                      "DELETE FROM tag WHERE label = 'gone';"
                      "UPDATE note SET ref = '0f8fad5b-d9cb-469f-a165-70867728950e' WHERE id = 1;";
    if (verso_db_exec(db, sql) < 0)
        fail_msg("exec: %s", verso_db_errmsg(db));
}

static char *dump(verso_db *db, const char *table)
{
    verso_buf b = VERSO_BUF_INIT;
    int rc = verso_fixture_dump(&b, db, table);
    if (rc < 0)
        fail_msg("dump: %s", verso_db_errmsg(db));
    return verso_buf_detach(&b);
}

static int64_t head_of(verso_db *db)
{
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    return info.head;
}

static int load(verso_db *db, const char *text)
{
    return verso_fixture_load(db, text, strlen(text));
}

static void test_roundtrip(void **state)
{
    dbs *d = *state;
    fill(d->a);
    char *one = dump(d->a, NULL);
    assert_non_null(strstr(one, "\"verso\":1"));
    assert_null(strstr(one, "\"version\""));
    assert_non_null(strstr(one, "9223372036854775807"));
    assert_non_null(strstr(one, "-9223372036854775808"));
    assert_non_null(strstr(one, "9007199254740993"));
    assert_non_null(strstr(one, "\"AAH/\""));
    assert_null(strstr(one, "gone"));

    int rc = load(d->b, one);
    if (rc < 0)
        fail_msg("load: %s", verso_db_errmsg(d->b));
    char *two = dump(d->b, NULL);
    assert_string_equal(one, two);

    /* Loaded rows keep their ids and get versions of the new database. */
    int64_t count = 0;
    assert_int_equal(verso_query_count(&count, d->b, "note", NULL, 0), 0);
    assert_int_equal(count, 4);
    assert_int_equal(verso_query_count(&count, d->b, "tag", NULL, 0), 0);
    assert_int_equal(count, 3);
    assert_true(head_of(d->b) == 7);
    note n = {0};
    assert_int_equal(verso_record_get(&n, d->b, &note_def, 2), 0);
    assert_int_equal(n.raw.size, 3);
    assert_memory_equal(n.raw.data, "\0\x01\xff", 3);
    assert_true(n.big == INT64_MAX);
    assert_true(n.score == 0.1);
    verso_record_clear(&note_def, &n);

    /* Loading again updates every row in place: same data, new versions. */
    int64_t head = head_of(d->b);
    assert_int_equal(load(d->b, one), 0);
    assert_true(head_of(d->b) == head + 7);
    assert_int_equal(verso_query_count(&count, d->b, "note", NULL, 0), 0);
    assert_int_equal(count, 4);
    char *three = dump(d->b, NULL);
    assert_string_equal(one, three);
    free(one);
    free(two);
    free(three);
}

static void test_dump_one_table(void **state)
{
    dbs *d = *state;
    fill(d->a);
    char *t = dump(d->a, "tag");
    assert_non_null(strstr(t, "\"tag\":["));
    assert_null(strstr(t, "\"note\""));
    free(t);
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_buf_puts(&b, "keep"), 0);
    assert_int_equal(verso_fixture_dump(&b, d->a, "nope"), VERSO_ENOTFOUND);
    assert_string_equal(b.data, "keep");
    verso_buf_free(&b);
    /* An empty database dumps its tables with no rows. */
    char *e = dump(d->b, NULL);
    assert_string_equal(e, "{\"verso\":1,\"tables\":{\n\"note\":[],\n\"tag\":[]\n}}\n");
    free(e);
}

static void test_load_upsert(void **state)
{
    dbs *d = *state;
    fill(d->a);
    int64_t head = head_of(d->a);
    /* Row 1 exists (updated, other columns kept), 500 is new, one row has no id,
     * and a stale version in the fixture is ignored. */
    const char *fx = "{\"verso\":1,\"tables\":{\"note\":["
                     "{\"id\":1,\"title\":\"renamed\",\"version\":999},"
                     "{\"id\":500,\"title\":\"new\",\"big\":-1},"
                     "{\"title\":\"no id\"}],"
                     "\"tag\":[{\"id\":100,\"extra\":null}]}}";
    int rc = load(d->a, fx);
    if (rc < 0)
        fail_msg("load: %s", verso_db_errmsg(d->a));
    assert_true(head_of(d->a) == head + 4);
    note n = {0};
    assert_int_equal(verso_record_get(&n, d->a, &note_def, 1), 0);
    assert_string_equal(n.title, "renamed");
    assert_true(n.score == 1.5);
    assert_true(n.version > head && n.version != 999);
    verso_record_clear(&note_def, &n);
    memset(&n, 0, sizeof n);
    assert_int_equal(verso_record_get(&n, d->a, &note_def, 500), 0);
    assert_string_equal(n.title, "new");
    assert_true(n.big == -1);
    verso_record_clear(&note_def, &n);
    verso_cond c = {"title", VERSO_EQ, VERSO_VALUE_TEXT("no id"), NULL, 0};
    int64_t count = 0;
    assert_int_equal(verso_query_count(&count, d->a, "note", &c, 1), 0);
    assert_int_equal(count, 1);
    verso_cond e = {"extra", VERSO_IS_NULL, VERSO_VALUE_NULL, NULL, 0};
    assert_int_equal(verso_query_count(&count, d->a, "tag", &e, 1), 0);
    assert_int_equal(count, 1); /* green's extra was set to null */
}

/* Each broken fixture fails, names what is wrong, and changes nothing. */
static void test_load_broken(void **state)
{
    dbs *d = *state;
    fill(d->a);
    static const struct {
        const char *text;
        int code;
        const char *needle;
    } cases[] = {
        {"{\"verso\":1,\"tables\":{\"note\":[{\"id\":1,\"title\":\"x\"},{\"title\":\"y\"},"
         "{\"title\":\"z\",\"big\":1.5}]}}",
         VERSO_ETYPE, "row 2"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"x\"},{\"nope\":1}]}}", VERSO_EINVAL,
         "nope"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"x\"}],\"missing\":[]}}", VERSO_ENOTFOUND,
         "missing"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"x\"},{\"title\":null}]}}",
         VERSO_ECONSTRAINT, "row 1"},
        {"{\"verso\":1,\"tables\":{\"tag\":[{\"label\":\"x\"},{\"label\":\"x\"}]}}",
         VERSO_ECONSTRAINT, "tag"},
        {"{\"verso\":1,\"tables\":{\"note\":{}}}", VERSO_EINVAL, "array"},
        {"{\"verso\":1,\"tables\":{\"note\":[5]}}", VERSO_EINVAL, "row 0"},
        {"{\"verso\":2,\"tables\":{}}", VERSO_EINVAL, "verso"},
        {"{\"tables\":{}}", VERSO_EINVAL, "verso"},
        {"{\"verso\":1}", VERSO_EINVAL, "tables"},
        {"[]", VERSO_EINVAL, "object"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"x\"}]}", VERSO_EJSON, "byte"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"\xc3\x28\"}]}}", VERSO_EUTF8, "UTF-8"},
        {"{\"verso\":1,\"tables\":{\"note\":[{\"title\":\"x\",\"raw\":\"***\"}]}}", VERSO_ETYPE,
         "raw"},
    };
    char *before = dump(d->a, NULL);
    int64_t head = head_of(d->a);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = load(d->a, cases[i].text);
        if (rc != cases[i].code)
            fail_msg("case %zu: got %s (%s), want %s", i, verso_errname(rc), verso_db_errmsg(d->a),
                     verso_errname(cases[i].code));
        if (!strstr(verso_db_errmsg(d->a), cases[i].needle))
            fail_msg("case %zu: message <%s> lacks <%s>", i, verso_db_errmsg(d->a),
                     cases[i].needle);
        assert_true(head_of(d->a) == head);
        char *after = dump(d->a, NULL);
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
}

static void test_load_in_transaction(void **state)
{
    dbs *d = *state;
    assert_int_equal(verso_db_begin(d->a), 0);
    assert_int_equal(load(d->a, "{\"verso\":1,\"tables\":{}}"), VERSO_ESTATE);
    assert_int_equal(verso_db_rollback(d->a), 0);
    assert_int_equal(load(d->a, "{\"verso\":1,\"tables\":{}}"), 0);
}

/* Inside a write transaction the dump sees its writes; with a feed open on
 * the handle it reads the feed's snapshot. */
static void test_dump_in_transaction(void **state)
{
    dbs *d = *state;
    assert_int_equal(verso_db_begin(d->a), 0);
    insert_note(d->a, "pending", 1, 1, NULL, 0, false);
    char *in = dump(d->a, "note");
    assert_non_null(strstr(in, "pending"));
    assert_int_equal(verso_db_rollback(d->a), 0);
    char *out = dump(d->a, "note");
    assert_null(strstr(out, "pending"));

    verso_feed *feed = NULL;
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    assert_int_equal(verso_feed_open(&feed, d->a, &o), 0);
    char *during = dump(d->a, "note");
    assert_string_equal(during, out);
    verso_feed_close(feed);
    free(in);
    free(out);
    free(during);
}

int main(void)
{
    const char *t = getenv("VERSO_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s", t ? t : "/tmp");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_one_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_in_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_in_transaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
