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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_cut_on_a_character, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_table_cut_on_a_character, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
