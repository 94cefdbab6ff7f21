/* sync/master.c's handling of a slave's messages in isolation
 * (verso__master_handler(), verso__master_conn_next()): a connection
 * without a socket, the messages the master answers with. Cases that
 * fuzz_master_msgs found are here as regressions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "support/internal.h"
#include "support/orm_support.h"

typedef struct fixture {
    verso_sync_master *m;
    const verso_ws_handler *h;
    void *conn;
    verso_buf out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *path = orm_tmp_path("unit_master_msgs");
    char why[256];
    verso_db *db;

    if (!f || verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)") < 0 ||
        verso_db_track(db, "items", NULL) < 0 ||
        verso_db_exec(db, "INSERT INTO items(name) VALUES ('a'), ('b')") < 0)
        return -1;
    verso_db_close(db);
    if (verso_sync_master_new(&f->m, path, NULL, why, sizeof(why)) < 0)
        return -1;
    f->h = verso__master_handler(f->m);
    if (f->h->on_open(NULL, &f->conn, f->h->arg) < 0 ||
        verso__master_conn_next(f->m, f->conn, &f->out) != 0 ||
        !strstr(f->out.data, "\"type\":\"hello\""))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    f->h->on_close(NULL, f->conn, f->h->arg);
    verso_sync_master_close(f->m);
    verso_buf_free(&f->out);
    free(f);
    return 0;
}

/* Sends msg; the master's next message must be an error of that code, the last before the
 * close, and valid JSON. */
static void assert_error_answer(fixture *f, const char *msg, const char *code)
{
    verso_json *doc = NULL;

    assert_int_equal(f->h->on_message(NULL, f->conn, msg, strlen(msg), f->h->arg), 0);
    assert_int_equal(verso__master_conn_next(f->m, f->conn, &f->out), 1);
    assert_int_equal(verso_json_parse(&doc, f->out.data, f->out.len, 0, NULL, 0), 0);
    assert_string_equal(verso__sync_json_get_str(verso_json_root(doc), "type"), "error");
    assert_string_equal(verso__sync_json_get_str(verso_json_root(doc), "code"), code);
    verso_json_free(doc);
}

static void test_unknown_type(void **state)
{
    assert_error_answer(*state, "{\"type\":\"bogus\"}", "protocol");
}

/* Regression (fuzz_master_msgs): the error message names the unknown type cut to 40 bytes; cut
 * inside a multi-byte character it was not UTF-8, the error message could not be written and
 * the connection failed without it. */
static void test_unknown_type_cut_on_a_character(void **state)
{
    /* 39 ASCII bytes, then 3-byte characters: byte 40 is inside one */
    assert_error_answer(*state,
                        "{\"type\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "\\u237c\\u237c\\u237c\"}",
                        "protocol");
}

/* The same for an unknown table's name that fills the message. */
static void test_unknown_table_cut_on_a_character(void **state)
{
    verso_buf msg = VERSO_BUF_INIT;

    assert_int_equal(verso_buf_puts(&msg, "{\"type\":\"subscribe\",\"cursor\":0,\"tables\":[\""),
                     0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(verso_buf_puts(&msg, "\xc3\xa9"), 0); /* é */
    assert_int_equal(verso_buf_puts(&msg, "\"]}"), 0);
    assert_error_answer(*state, msg.data, "subscribe");
    verso_buf_free(&msg);
}

/* A new connection on f's master, subscribed at cursor 0 with the master's identity and sent
 * the changes up to the head (2): returns it; *id is the master's identity. */
static void *subscribed(fixture *f, char id[37])
{
    void *conn = NULL;
    verso_json *doc = NULL;
    char msg[160];

    assert_int_equal(f->h->on_open(NULL, &conn, f->h->arg), 0);
    assert_int_equal(verso__master_conn_next(f->m, conn, &f->out), 0);
    assert_int_equal(verso_json_parse(&doc, f->out.data, f->out.len, 0, NULL, 0), 0);
    snprintf(id, 37, "%s", verso__sync_json_get_str(verso_json_root(doc), "identity"));
    verso_json_free(doc);
    snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"%s\"}", id);
    assert_int_equal(f->h->on_message(NULL, conn, msg, strlen(msg), f->h->arg), 0);
    for (int i = 0; i < 4 && !strstr(f->out.data ? f->out.data : "", "\"more\":false"); i++)
        assert_true(verso__master_conn_next(f->m, conn, &f->out) >= 0);
    assert_non_null(strstr(f->out.data, "\"type\":\"changes\""));
    assert_non_null(strstr(f->out.data, "\"to\":2"));
    return conn;
}

static int64_t acked_of(fixture *f)
{
    verso_sync_peer *p = NULL;
    size_t n = 0;
    int64_t a;

    assert_int_equal(verso_sync_master_peers(&p, &n, f->m), 0);
    assert_int_equal(n, 1);
    a = p[0].acked;
    verso_free(p);
    return a;
}

/*
 * How acks of every shape are judged: counted, ignored (another master's identity) or refused
 * as a protocol error. Each message goes to a fresh subscription (sent up to version 2, acked
 * 0): the acked version after it, or -1 for a protocol error.
 */
static void test_acks_judged(void **state)
{
    fixture *f = *state;
    char id[37];
    static const struct {
        const char *fmt; /* %s: the master's identity */
        int64_t acked;
    } cases[] = {
        {"{\"type\":\"ack\",\"version\":1}", 1},
        {"{\"type\":\"ack\",\"version\":2,\"identity\":\"%s\",\"time\":1733000000000}", 2},
        {"{\"type\":\"ack\",\"version\":2,\"identity\":\"%s\"}", 2},
        {"{\"type\":\"ack\",\"version\":0}", 0},
        {"{\"type\":\"ack\",\"version\":2,\"identity\":\"\"}", 0}, /* another master's */
        {"{\"type\":\"ack\",\"version\":2,\"identity\":\"0000-other\",\"time\":5}", 0},
        {"{\"type\":\"ack\",\"version\":1 }", 1},
        {"{\"type\":\"ack\",\"version\":1,\"time\":-5}", 1},
        {"{\"type\":\"ack\",\"version\":1,\"time\":1.5}", 1},
        {"{\"version\":1,\"type\":\"ack\"}", 1},
        {"{\"type\":\"ack\",\"version\":2.0}", -1}, /* the protocol's integers have no point */
        {"{\"type\":\"ack\",\"version\":3}", -1},   /* beyond what was sent */
        {"{\"type\":\"ack\",\"version\":01}", -1},
        {"{\"type\":\"ack\",\"version\":-1}", -1},
        {"{\"type\":\"ack\",\"version\":1}x", -1},
        {"{\"type\":\"ack\",\"version\":1000000000000000000}", -1},
        {"{\"type\":\"ack\",\"version\":99999999999999999999}", -1},
        {"{\"type\":\"ack\",\"version\":1,\"time\":}", -1},
        {"{\"type\":\"ack\",\"version\":1,\"identity\":\"%s\"", -1},
        {"{\"type\":\"ack\",\"version\":\"1\"}", -1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *conn = subscribed(f, id);
        char msg[200];
        int rc;
        snprintf(msg, sizeof(msg), cases[i].fmt, id);
        rc = f->h->on_message(NULL, conn, msg, strlen(msg), f->h->arg);
        if (cases[i].acked < 0) {
            verso_json *doc = NULL;
            assert_int_equal(rc, 0);
            assert_int_equal(verso__master_conn_next(f->m, conn, &f->out), 1);
            assert_int_equal(verso_json_parse(&doc, f->out.data, f->out.len, 0, NULL, 0), 0);
            if (strcmp(verso__sync_json_get_str(verso_json_root(doc), "type"), "error") != 0)
                fail_msg("case %zu (%s): no error", i, msg);
            verso_json_free(doc);
        } else if (rc != 0 || acked_of(f) != cases[i].acked) {
            fail_msg("case %zu (%s): rc %d, acked %lld, not %lld", i, msg, rc,
                     (long long)acked_of(f), (long long)cases[i].acked);
        }
        f->h->on_close(NULL, conn, f->h->arg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_cut_on_a_character, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_table_cut_on_a_character, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_judged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
