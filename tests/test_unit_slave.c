/* sync/slave.c's message handling in isolation (verso__slave_detached(),
 * verso__slave_receive()): a hand-written master's messages, the slave's
 * answers, and what a reader of the slave's file sees after each. Cases
 * that fuzz_slave_msgs found are here as regressions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/internal.h"
#include "support/orm_support.h"

#define MASTER "0d6c0000-0000-4000-8000-000000000001"

static const char k_hello[] = "{\"type\":\"hello\",\"protocol\":1,\"identity\":\"" MASTER
                              "\",\"head\":9,\"horizon\":0,\"heartbeat_ms\":5000}";
static const char k_schema[] = "{\"type\":\"schema\",\"tables\":[{\"name\":\"items\",\"columns\":["
                               "{\"name\":\"id\",\"type\":\"int64\",\"id\":true},"
                               "{\"name\":\"version\",\"type\":\"int64\",\"version\":true},"
                               "{\"name\":\"name\",\"type\":\"text\"}]}]}";

typedef struct fixture {
    verso_slave *s;
    verso_db *reader; /* a second handle: committed states only */
    verso_buf out;
} fixture;

/* A slave on a database with a table of its own (so it asks for rows), after hello and schema. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *path = orm_tmp_path("unit_slave");
    char why[256];
    verso_db *db;

    if (!f || verso_db_open(&db, path, NULL, why, sizeof(why)) < 0)
        return -1;
    if (verso_db_exec(db, "CREATE TABLE mine(id INTEGER PRIMARY KEY, x)") < 0)
        return -1;
    verso_db_close(db);
    if (verso__slave_detached(&f->s, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_open(&f->reader, path, NULL, why, sizeof(why)) < 0)
        return -1;
    if (verso__slave_receive(f->s, k_hello, strlen(k_hello), &f->out) < 0 ||
        !strstr(f->out.data ? f->out.data : "", "\"type\":\"subscribe\"") ||
        verso__slave_receive(f->s, k_schema, strlen(k_schema), &f->out) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    verso__slave_detached_free(f->s);
    verso_db_close(f->reader);
    verso_buf_free(&f->out);
    free(f);
    return 0;
}

static int receive(fixture *f, const char *msg)
{
    return verso__slave_receive(f->s, msg, strlen(msg), &f->out);
}

static void assert_cursor(fixture *f, const char *master, int64_t version)
{
    verso_cursor c;

    assert_int_equal(verso_db_cursor(&c, f->reader), 0);
    assert_string_equal(c.master, master);
    assert_int_equal(c.version, version);
}

static int64_t count_items(fixture *f)
{
    int64_t n = -1;
    verso_iter *it = NULL;
    verso_query q = VERSO_QUERY_INIT;

    q.table = "items";
    if (!verso_db_table(f->reader, "items") && verso_db_refresh_schema(f->reader) < 0)
        return -1;
    if (!verso_db_table(f->reader, "items"))
        return 0; /* not created yet */
    if (verso_query_open(&it, f->reader, &q) < 0)
        return -1;
    for (n = 0; verso_iter_next(it) == 1; n++)
        ;
    verso_iter_close(it);
    return n;
}

#define ROW(id, v)                                                                                 \
    "{\"table\":\"items\",\"id\":" #id ",\"version\":" #v ",\"row\":{\"id\":" #id                  \
    ",\"version\":" #v ",\"name\":\"n\"}}"

/* Batches with more:true stay invisible; the one with more:false commits (identity, to) and the
 * slave acknowledges exactly that. */
static void test_sequence_commits_at_its_end(void **state)
{
    fixture *f = *state;

    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(1, 1) "," ROW(
                                    2, 4) "],\"from\":0,\"to\":4,\"more\":true,\"head\":9}"),
                     0);
    assert_int_equal(f->out.len, 0);
    assert_int_equal(count_items(f), 0);
    assert_cursor(f, "", 0);
    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(
                                    3, 9) "],\"from\":4,\"to\":9,\"more\":false,\"head\":9}"),
                     0);
    assert_non_null(strstr(f->out.data, "{\"type\":\"ack\",\"version\":9,"));
    assert_int_equal(count_items(f), 3);
    assert_cursor(f, MASTER, 9);
}

/* Regression (fuzz_slave_msgs): a change whose version is beyond the batch's "to" was applied
 * and the cursor silently raised to it, past the master's head, while the slave acknowledged
 * "to". The batch is refused and nothing is written. */
static void test_entry_beyond_to_refused(void **state)
{
    fixture *f = *state;

    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(
                                    1, 50) "],\"from\":0,\"to\":9,\"more\":false,\"head\":9}"),
                     VERSO_EPROTO);
    assert_int_equal(count_items(f), 0);
    assert_cursor(f, "", 0);
}

/* The same for a change at or below the batch's "from": the slave holds that state already. */
static void test_entry_not_after_from_refused(void **state)
{
    fixture *f = *state;

    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(
                                    1, 2) "],\"from\":0,\"to\":4,\"more\":false,\"head\":9}"),
                     0);
    assert_cursor(f, MASTER, 4);
    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(
                                    1, 4) "],\"from\":4,\"to\":9,\"more\":false,\"head\":9}"),
                     VERSO_EPROTO);
    assert_int_equal(count_items(f), 1);
    assert_cursor(f, MASTER, 4);
}

/* Regression (fuzz_slave_msgs): a row whose own "version" (or "id") differs
 * from its entry's was written with the row's: the version check of the
 * entry passed, and the stored cursor was raised past "to" (ack 4, cursor
 * 8). The batch is refused and nothing is written. */
static void test_row_disagreeing_with_its_entry_refused(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {
        "{\"table\":\"items\",\"id\":1,\"version\":4,\"row\":{\"id\":1,\"version\":8,"
        "\"name\":\"n\"}}",
        "{\"table\":\"items\",\"id\":1,\"version\":4,\"row\":{\"id\":2,\"version\":4,"
        "\"name\":\"n\"}}",
        "{\"table\":\"items\",\"id\":1,\"version\":4,\"row\":{\"id\":1,\"name\":\"n\"}}",
        "{\"table\":\"items\",\"id\":1,\"version\":4,\"row\":{\"version\":4,\"name\":\"n\"}}",
        "{\"table\":\"items\",\"id\":1,\"version\":4,\"row\":{\"id\":1,\"version\":{"
        "\"text\":\"4\"},\"name\":\"n\"}}",
    };
    char msg[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg),
                 "{\"type\":\"changes\",\"entries\":[%s],\"from\":0,\"to\":4,\"more\":false,"
                 "\"head\":4}",
                 bad[i]);
        assert_int_equal(receive(f, msg), VERSO_EPROTO);
        assert_int_equal(count_items(f), 0);
        assert_cursor(f, "", 0);
        /* the link ended: the next connection starts with hello and schema */
        assert_int_equal(receive(f, k_hello), 0);
        assert_int_equal(receive(f, k_schema), 0);
    }
    assert_int_equal(receive(f, "{\"type\":\"changes\",\"entries\":[" ROW(
                                    1, 4) "],\"from\":0,\"to\":4,\"more\":false,\"head\":4}"),
                     0);
    assert_cursor(f, MASTER, 4);
}

/* ---- file snapshots ---- */

/* A master file with rows, its snapshot's bytes (malloc'd) in *raw, the head it holds; edit,
 * unless NULL, is run on the snapshot file first (with writable_schema on). */
static size_t master_snapshot_edited(unsigned char **raw, int64_t *head, const char *edit)
{
    char master[512], snap[600], why[256];
    verso_db *db;
    FILE *f;
    long n;

    snprintf(master, sizeof(master), "%s", orm_tmp_path("unit_slave_master"));
    snprintf(snap, sizeof(snap), "%s.copy", master);
    assert_int_equal(verso_db_open(&db, master, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_db_exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)"), 0);
    assert_int_equal(verso_db_track(db, "items", NULL), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO items(name) VALUES ('a'), ('b'), ('c')"), 0);
    verso_db_close(db);
    assert_int_equal(verso__snapshot_make(head, master, snap, why, sizeof(why)), 0);
    if (edit) {
        sqlite3 *q = NULL;
        assert_int_equal(sqlite3_open(snap, &q), SQLITE_OK);
        if (sqlite3_exec(q, edit, NULL, NULL, NULL) != SQLITE_OK)
            fail_msg("%s: %s", edit, sqlite3_errmsg(q));
        sqlite3_close(q);
    }
    assert_non_null(f = fopen(snap, "rb"));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    assert_non_null(*raw = malloc((size_t)n));
    assert_int_equal(fread(*raw, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    remove(snap);
    return (size_t)n;
}

static size_t master_snapshot(unsigned char **raw, int64_t *head)
{
    return master_snapshot_edited(raw, head, NULL);
}

/* An empty slave that said hello and asked for a snapshot. */
static int setup_empty(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *path = orm_tmp_path("unit_slave_empty");
    char why[256];

    if (!f || verso__slave_detached(&f->s, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_open(&f->reader, path, NULL, why, sizeof(why)) < 0 ||
        verso__slave_receive(f->s, k_hello, strlen(k_hello), &f->out) < 0 ||
        !strstr(f->out.data ? f->out.data : "", "\"snapshot\":true"))
        return -1;
    *state = f;
    return 0;
}

/* Sends the file as one chunk announced at head. */
static int send_snapshot(fixture *f, const unsigned char *raw, size_t n, int64_t head)
{
    verso_buf m = VERSO_BUF_INIT;
    int rc;

    assert_int_equal(verso_buf_printf(&m,
                                      "{\"type\":\"snapshot\",\"identity\":\"" MASTER
                                      "\",\"head\":%lld,\"size\":%zu,\"offset\":0,"
                                      "\"last\":true,\"data\":\"",
                                      (long long)head, n),
                     0);
    assert_int_equal(verso_base64_encode(&m, raw, n), 0);
    assert_int_equal(verso_buf_puts(&m, "\"}"), 0);
    rc = verso__slave_receive(f->s, m.data, m.len, &f->out);
    verso_buf_free(&m);
    return rc;
}

static void assert_still_empty(fixture *f)
{
    sqlite3_stmt *st;

    assert_cursor(f, "", 0);
    assert_int_equal(sqlite3_prepare_v2(verso_db_sqlite(f->reader),
                                        "SELECT count(*) FROM sqlite_master WHERE name = 'items'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
}

static void test_snapshot_installs(void **state)
{
    fixture *f = *state;
    unsigned char *raw;
    int64_t head;
    size_t n = master_snapshot(&raw, &head);

    assert_int_equal(send_snapshot(f, raw, n, head), 0);
    assert_non_null(strstr(f->out.data, "\"type\":\"ack\""));
    assert_cursor(f, MASTER, head);
    assert_int_equal(count_items(f), 3);
    free(raw);
}

/* Regression (fuzz_slave_msgs): a snapshot file damaged on the way (a b-tree page whose cell
 * count runs off the page) was installed, leaving the slave a corrupt database. It is refused
 * and the slave's file stays as it was. */
static void test_corrupt_snapshot_refused(void **state)
{
    fixture *f = *state;
    unsigned char *raw;
    int64_t head;
    size_t n = master_snapshot(&raw, &head);

    assert_true(n > 2 * 4096);
    raw[4096 + 3] = 0xff; /* page 2's cell count */
    raw[4096 + 4] = 0xff;
    assert_true(send_snapshot(f, raw, n, head) < 0);
    assert_still_empty(f);
    free(raw);
}

/* A file that does not hold the head its message announces would store a cursor naming
 * another state than the data's: refused. */
static void test_snapshot_head_mismatch_refused(void **state)
{
    fixture *f = *state;
    unsigned char *raw;
    int64_t head;
    size_t n = master_snapshot(&raw, &head);

    assert_true(send_snapshot(f, raw, n, head + 5) < 0);
    assert_still_empty(f);
    free(raw);
}

/*
 * Regression (fuzz_slave_msgs, CI of 2026-12-06): a sound SQLite file that verso cannot read
 * as a database of its own passed integrity_check and was installed; the schema reload after it
 * failed, and the refused message had replaced the slave's file with one verso cannot open.
 * The first two (a column of the table of tracked tables renamed; an id column that is not
 * there) were installed so; the last two (a tracked table that is not there, no meta table)
 * were already refused and stay so. Each is refused before anything is written.
 */
static void test_snapshot_verso_cannot_read_refused(void **state)
{
    static const char *const edits[] = {
        "PRAGMA writable_schema=ON; UPDATE sqlite_master SET sql = replace(sql, 'id_column', "
        "'id_colunn') WHERE name = '_verso_tables'",
        "UPDATE _verso_tables SET id_column = 'nope'",
        "UPDATE _verso_tables SET name = 'ghost'",
        "DROP TABLE _verso_meta",
    };
    fixture *f = *state;

    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        unsigned char *raw;
        int64_t head;
        size_t n = master_snapshot_edited(&raw, &head, edits[i]);
        int rc = send_snapshot(f, raw, n, head);
        if (rc >= 0)
            fail_msg("a snapshot after \"%s\" was installed", edits[i]);
        assert_still_empty(f);
        assert_int_equal(verso_db_refresh_schema(f->reader), 0);
        free(raw);
        /* the link ended: the next one starts with hello, and asks for a snapshot again */
        verso_buf_clear(&f->out);
        assert_int_equal(verso__slave_receive(f->s, k_hello, strlen(k_hello), &f->out), 0);
        assert_non_null(strstr(f->out.data ? f->out.data : "", "\"snapshot\":true"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequence_commits_at_its_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_beyond_to_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_not_after_from_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_disagreeing_with_its_entry_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_installs, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_snapshot_refused, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_head_mismatch_refused, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_verso_cannot_read_refused, setup_empty,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
