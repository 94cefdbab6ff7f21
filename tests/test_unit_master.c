/* sync/master.c in isolation: the master's choice of the next message for
 * one slave (verso__master_choose), from tables of a connection's state and
 * pending facts. The order is docs/protocol.md's: an error ends everything;
 * the hello comes first; a due resync or snapshot comes before any schema or
 * changes; the schema before rows; a commit check before changes; a
 * heartbeat only when nothing else goes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/internal.h"

/* Pending facts, as bits, so a row of the table stays one line. */
enum {
    SCHEMA = 1 << 0,
    BATCH = 1 << 1,
    SEQ = 1 << 2,
    BEHIND = 1 << 3,
    REFRESHED = 1 << 4,
    READY = 1 << 5,
    HB = 1 << 6,
    ALL = (1 << 7) - 1,
};

typedef struct choice_case {
    verso__master_state state;
    unsigned facts;
    verso__master_next want;
} choice_case;

#define S(x) VERSO__MASTER_##x
#define N(x) VERSO__NEXT_##x

static const choice_case k_cases[] = {
    /* what is owed in a state goes first, whatever else is pending */
    {S(CLOSING), 0, N(ERROR)},
    {S(CLOSING), ALL, N(ERROR)},
    {S(HELLO), 0, N(HELLO)},
    {S(HELLO), ALL, N(HELLO)},
    {S(HELLO_RESYNC), 0, N(HELLO)},
    {S(HELLO_RESYNC), ALL, N(HELLO)},
    {S(RESYNC), 0, N(RESYNC)},
    {S(RESYNC), ALL, N(RESYNC)},
    {S(SNAPSHOT_DUE), 0, N(START)},
    {S(SNAPSHOT_DUE), ALL, N(START)},
    /* waiting for a subscribe: heartbeats only; a subscription's facts do not count */
    {S(IDLE), 0, N(NONE)},
    {S(IDLE), SCHEMA | BATCH | SEQ | BEHIND | REFRESHED | READY, N(NONE)},
    {S(IDLE), HB, N(HEARTBEAT)},
    {S(IDLE), ALL, N(HEARTBEAT)},
    /* a snapshot: a chunk once the copy is made; heartbeats while it is made */
    {S(SNAPSHOT), 0, N(NONE)},
    {S(SNAPSHOT), HB, N(HEARTBEAT)},
    {S(SNAPSHOT), SCHEMA | BATCH | SEQ | BEHIND | REFRESHED, N(NONE)},
    {S(SNAPSHOT), READY, N(SNAPSHOT)},
    {S(SNAPSHOT), READY | HB, N(SNAPSHOT)},
    {S(SNAPSHOT), ALL, N(SNAPSHOT)},
    /* subscribed, caught up */
    {S(SUBSCRIBED), 0, N(NONE)},
    {S(SUBSCRIBED), READY, N(NONE)},
    {S(SUBSCRIBED), HB, N(HEARTBEAT)},
    /* the schema before any rows */
    {S(SUBSCRIBED), SCHEMA, N(SCHEMA)},
    {S(SUBSCRIBED), SCHEMA | BATCH | BEHIND | HB, N(SCHEMA)},
    {S(SUBSCRIBED), SCHEMA | REFRESHED, N(SCHEMA)},
    /* changes due: the commit check first, then the changes */
    {S(SUBSCRIBED), BATCH, N(REFRESH)},
    {S(SUBSCRIBED), SEQ, N(REFRESH)},
    {S(SUBSCRIBED), BEHIND, N(REFRESH)},
    {S(SUBSCRIBED), BEHIND | HB, N(REFRESH)},
    {S(SUBSCRIBED), BATCH | REFRESHED, N(CHANGES)},
    {S(SUBSCRIBED), SEQ | REFRESHED | HB, N(CHANGES)},
    {S(SUBSCRIBED), BEHIND | REFRESHED, N(CHANGES)},
    /* the check ran because changes were due: they go even if the head moved back to the cursor */
    {S(SUBSCRIBED), REFRESHED, N(CHANGES)},
};

static verso__master_facts facts(verso__master_state state, unsigned bits)
{
    return (verso__master_facts){
        .state = state,
        .schema_due = bits & SCHEMA,
        .batch_due = bits & BATCH,
        .in_sequence = bits & SEQ,
        .behind = bits & BEHIND,
        .refreshed = bits & REFRESHED,
        .snap_ready = bits & READY,
        .heartbeat_due = bits & HB,
    };
}

static void test_choice_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++) {
        verso__master_facts f = facts(k_cases[i].state, k_cases[i].facts);
        verso__master_next got = verso__master_choose(&f);

        if (got != k_cases[i].want)
            print_error("case %zu: state %d facts 0x%x: got %d, want %d\n", i,
                        (int)k_cases[i].state, k_cases[i].facts, (int)got, (int)k_cases[i].want);
        assert_int_equal(got, k_cases[i].want);
    }
}

/* Every state and every combination of facts gives a step, and one that
 * writes something unless the state owes nothing and no heartbeat is due. */
static void test_choice_total(void **state)
{
    (void)state;
    for (int s = 0; s < VERSO__MASTER_NSTATES; s++) {
        for (unsigned bits = 0; bits <= ALL; bits++) {
            verso__master_facts f = facts((verso__master_state)s, bits);
            verso__master_next got = verso__master_choose(&f);

            assert_true(got >= VERSO__NEXT_NONE && got < VERSO__NEXT_COUNT);
            if (bits & HB)
                assert_int_not_equal(got, VERSO__NEXT_NONE);
            if (got == VERSO__NEXT_REFRESH)
                assert_false(f.refreshed); /* the check runs once per choice */
            if (got == VERSO__NEXT_CHANGES || got == VERSO__NEXT_SCHEMA)
                assert_int_equal(s, VERSO__MASTER_SUBSCRIBED);
        }
    }
}

static void test_changes_due(void **state)
{
    (void)state;
    for (int s = 0; s < VERSO__MASTER_NSTATES; s++) {
        for (unsigned bits = 0; bits <= ALL; bits++) {
            verso__master_facts f = facts((verso__master_state)s, bits);
            bool want = s == VERSO__MASTER_SUBSCRIBED && (bits & (BATCH | SEQ | BEHIND));

            assert_int_equal(verso__master_changes_due(&f), want);
        }
    }
}

static void test_out_of_range(void **state)
{
    verso__master_facts f = facts(VERSO__MASTER_NSTATES, ALL);

    (void)state;
    assert_int_equal(verso__master_choose(&f), VERSO__NEXT_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice_table),
        cmocka_unit_test(test_choice_total),
        cmocka_unit_test(test_changes_due),
        cmocka_unit_test(test_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
