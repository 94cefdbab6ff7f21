/* orm/feed.c against a model: a seeded history of inserts, updates and
 * deletes over three tables (ORM calls and plain SQL, ids deleted and
 * inserted again, transactions rolled back) is recorded by a commit hook;
 * the feed must return exactly the model's changes, in version order, for
 * every since and every limit 1..N+1, pages continuing from the cursor
 * without a gap, also while another handle writes between pages, and with
 * the horizon moving under the reader. */
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

#define NTABLES 3
#define MAXID   2048
#define MAXE    4096

static const char *const k_tables[NTABLES] = {"a", "b", "Caps"};
static const char k_schema[] = "CREATE TABLE a(id INTEGER PRIMARY KEY, n INTEGER, s TEXT);"
                               "CREATE TABLE b(id INTEGER PRIMARY KEY, x REAL);"
                               "CREATE TABLE \"Caps\"(id INTEGER PRIMARY KEY, v);";

/* One change as the feed reports it. */
typedef struct entry {
    int table;
    int64_t id, version;
    bool deleted;
} entry;

/* The model: the current version of every row (0 = absent) and every tombstone. */
typedef struct model {
    int64_t rows[NTABLES][MAXID];
    entry tombs[MAXE];
    size_t ntombs;
    int64_t head;
} model;

static uint64_t g_rng;

static uint32_t rnd(uint32_t n)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33) % n;
}

static int table_index(const char *name)
{
    for (int i = 0; i < NTABLES; i++)
        if (!strcmp(k_tables[i], name))
            return i;
    fail_msg("unknown table %s", name);
    return -1;
}

/* The commit hook: the only writer of the model. */
static void on_commit(verso_db *db, const verso_change *ch, size_t n, void *arg)
{
    model *m = arg;

    (void)db;
    for (size_t i = 0; i < n; i++) {
        int t = table_index(ch[i].table);
        assert_true(ch[i].id > 0 && ch[i].id < MAXID);
        assert_true(ch[i].version > m->head); /* in version order, after every earlier commit */
        m->head = ch[i].version;
        if (ch[i].kind == VERSO_CHANGE_DELETE) {
            m->rows[t][ch[i].id] = 0;
            assert_true(m->ntombs < MAXE);
            m->tombs[m->ntombs++] = (entry){t, ch[i].id, ch[i].version, true};
        } else {
            m->rows[t][ch[i].id] = ch[i].version;
        }
    }
}

static verso_db *open_db(const char *path)
{
    char open_why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) < 0)
        fail_msg("open %s: %s", path, open_why);
    return db;
}

static verso_db *create_db(const char *path)
{
    verso_db *db = open_db(path);

    assert_int_equal(verso_db_exec(db, k_schema), 0);
    for (int t = 0; t < NTABLES; t++)
        assert_int_equal(verso_db_track(db, k_tables[t], NULL), 0);
    return db;
}

/* An existing id of table t in the model, 0 if none. */
static int64_t pick(const model *m, int t)
{
    int64_t start = 1 + rnd(MAXID - 1);

    for (int64_t k = 0; k < MAXID - 1; k++) {
        int64_t id = 1 + (start + k - 1) % (MAXID - 1);
        if (m->rows[t][id])
            return id;
    }
    return 0;
}

/* An id of table t that is absent in the model. */
static int64_t pick_free(const model *m, int t)
{
    int64_t id;

    do
        id = 1 + rnd(MAXID / 2);
    while (m->rows[t][id]);
    return id;
}

/* One random write; a row gone earlier in the same transaction may make it
 * VERSO_ENOTFOUND or VERSO_ECONSTRAINT, which changes nothing. */
static void one_op(verso_db *db, const model *m)
{
    int t = (int)rnd(NTABLES), rc = 0;
    const char *tn = k_tables[t];
    int64_t id = pick(m, t);
    char sql[200];
    const char *cols[2];
    verso_value vals[2];
    uint32_t r = rnd(20);

    if (r < 6 || !id) {
        cols[0] = t == 0 ? "n" : t == 1 ? "x" : "v";
        vals[0] = t == 1 ? VERSO_VALUE_DOUBLE(rnd(1000) / 8.0) : VERSO_VALUE_INT(rnd(1000));
        rc = verso_row_insert(NULL, NULL, db, tn, cols, vals, 1);
    } else if (r < 8) { /* an id again, maybe one deleted before */
        cols[0] = "id";
        vals[0] = VERSO_VALUE_INT(pick_free(m, t));
        rc = verso_row_insert(NULL, NULL, db, tn, cols, vals, 1);
    } else if (r < 12) {
        cols[0] = t == 0 ? "s" : t == 1 ? "x" : "v";
        vals[0] = t == 1 ? VERSO_VALUE_DOUBLE(rnd(50)) : VERSO_VALUE_TEXT("upd");
        rc = verso_row_update(NULL, db, tn, id, cols, vals, 1, 0);
    } else if (r < 15) {
        rc = verso_row_delete(db, tn, id, 0);
    } else if (r < 17) { /* several rows by plain SQL, through the triggers */
        snprintf(sql, sizeof(sql), "UPDATE \"%s\" SET id = id WHERE id %% 7 = %u", tn, rnd(7));
        rc = verso_db_exec(db, sql);
    } else if (r < 19) {
        snprintf(sql, sizeof(sql),
                 "DELETE FROM \"%s\" WHERE id IN (SELECT id FROM \"%s\" ORDER BY random() LIMIT 2)",
                 tn, tn);
        rc = verso_db_exec(db, sql);
    } else { /* insert and delete inside the transaction: only the tombstone remains */
        int64_t nid = 0;
        cols[0] = "id";
        vals[0] = VERSO_VALUE_INT(pick_free(m, t));
        if ((rc = verso_row_insert(&nid, NULL, db, tn, cols, vals, 1)) == 0)
            rc = verso_row_delete(db, tn, nid, 0);
    }
    if (rc < 0 && rc != VERSO_ENOTFOUND && rc != VERSO_ECONSTRAINT)
        fail_msg("%s: %s %s", tn, verso_strerror(rc), verso_db_errmsg(db));
}

/* ntx transactions of 1..6 writes; about one in eight is rolled back. */
static void history(verso_db *db, const model *m, int ntx)
{
    for (int i = 0; i < ntx; i++) {
        int n = 1 + (int)rnd(6);
        bool single = rnd(10) == 0;
        if (single) { /* each write its own transaction */
            for (int k = 0; k < n; k++)
                one_op(db, m);
            continue;
        }
        assert_int_equal(verso_db_begin(db), 0);
        for (int k = 0; k < n; k++)
            one_op(db, m);
        assert_int_equal(rnd(8) ? verso_db_commit(db) : verso_db_rollback(db), 0);
    }
}

/* The model's changes after since, limited to the tables in mask, in version order. */
static size_t expected(entry *out, const model *m, int64_t since, int64_t horizon, unsigned mask)
{
    size_t n = 0;

    for (int t = 0; t < NTABLES; t++)
        for (int64_t id = 1; (mask >> t & 1) && id < MAXID; id++)
            if (m->rows[t][id] > since)
                out[n++] = (entry){t, id, m->rows[t][id], false};
    for (size_t i = 0; i < m->ntombs; i++)
        if ((mask >> m->tombs[i].table & 1) && m->tombs[i].version > since &&
            m->tombs[i].version > horizon)
            out[n++] = m->tombs[i];
    /* insertion sort: versions are distinct */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j].version < out[j - 1].version; j--) {
            entry x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    return n;
}

/* The rows of every table as the file holds them match the model. */
static void assert_model_matches_file(verso_db *db, const model *m)
{
    static const char *const cols[] = {"id", "version"};

    for (int t = 0; t < NTABLES; t++) {
        verso_query q = VERSO_QUERY_INIT;
        verso_iter *it = NULL;
        int64_t seen = 0, want = 0;
        int rc;

        q.table = k_tables[t];
        q.columns = cols;
        q.ncolumns = 2;
        assert_int_equal(verso_query_open(&it, db, &q), 0);
        while ((rc = verso_iter_next(it)) == 1) {
            verso_value id, v;
            assert_int_equal(verso_iter_value(&id, it, 0), 0);
            assert_int_equal(verso_iter_value(&v, it, 1), 0);
            if (m->rows[t][id.u.i] != v.u.i)
                fail_msg("%s id %lld: version %lld in the file, %lld in the model", k_tables[t],
                         (long long)id.u.i, (long long)v.u.i, (long long)m->rows[t][id.u.i]);
            seen++;
        }
        assert_int_equal(rc, 0);
        verso_iter_close(it);
        for (int64_t id = 1; id < MAXID; id++)
            want += m->rows[t][id] != 0;
        assert_int_equal(seen, want);
    }
}

typedef struct read_opts {
    int64_t since, limit;
    const char *const *tables;
    size_t ntables;
} read_opts;

/* One feed read; every entry checked on the way. *cursor, *more as the feed says. */
static size_t read_once(entry *out, size_t max, verso_db *db, const read_opts *ro, int64_t *cursor,
                        bool *more, int64_t *head)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    const verso_feed_entry *e;
    int64_t last = ro->since;
    size_t n = 0;
    int rc;

    fo.since = ro->since;
    fo.limit = ro->limit;
    fo.tables = ro->tables;
    fo.ntables = ro->ntables;
    if ((rc = verso_feed_open(&f, db, &fo)) < 0)
        fail_msg("feed since %lld: %s %s", (long long)ro->since, verso_strerror(rc),
                 verso_db_errmsg(db));
    *head = verso_feed_head(f);
    while ((rc = verso_feed_next(&e, f)) == 1) {
        entry *x = &out[n];
        assert_true(n < max);
        assert_true(e->version > last); /* strictly increasing, after since */
        assert_true(e->version <= *head);
        last = e->version;
        x->table = table_index(e->table_name);
        x->id = e->id;
        x->version = e->version;
        x->deleted = e->deleted;
        assert_non_null(e->table);
        assert_string_equal(verso_table_name(e->table), e->table_name);
        if (e->deleted) {
            assert_int_equal(e->ncolumns, 0);
        } else {
            assert_int_equal(e->ncolumns, verso_table_ncolumns(e->table));
            assert_int_equal(e->values[verso_table_id_index(e->table)].u.i, e->id);
            assert_int_equal(e->values[verso_table_version_index(e->table)].u.i, e->version);
        }
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(verso_feed_next(&e, f), 0); /* stays done */
    assert_null(e);
    *more = verso_feed_more(f);
    *cursor = verso_feed_cursor(f);
    if (ro->limit > 0)
        assert_true(n <= (size_t)ro->limit);
    if (*more) {
        /* only a full page says more, and continues from its last change */
        assert_true(ro->limit > 0 && n == (size_t)ro->limit);
        assert_int_equal(*cursor, last);
    } else {
        assert_int_equal(*cursor, *head);
    }
    verso_feed_close(f);
    return n;
}

/* Pages of limit until the feed says no more; returns the changes, *pages the reads. */
static size_t read_pages(entry *out, size_t max, verso_db *db, read_opts ro, int *pages)
{
    size_t n = 0;
    bool more = true;

    for (*pages = 0; more; (*pages)++) {
        int64_t cursor, head;
        n += read_once(out + n, max - n, db, &ro, &cursor, &more, &head);
        /* forward, or back to the head for a since beyond it */
        assert_true(cursor >= ro.since || (!more && cursor == head));
        ro.since = cursor;
    }
    return n;
}

static void assert_same(const entry *got, size_t ngot, const entry *want, size_t nwant,
                        const char *what, int64_t arg)
{
    for (size_t i = 0; i < ngot && i < nwant; i++)
        if (memcmp(&got[i], &want[i], sizeof(entry)))
            fail_msg("%s %lld: change %zu is %s %lld v%lld%s, the model has %s %lld v%lld%s", what,
                     (long long)arg, i, k_tables[got[i].table], (long long)got[i].id,
                     (long long)got[i].version, got[i].deleted ? " (deleted)" : "",
                     k_tables[want[i].table], (long long)want[i].id, (long long)want[i].version,
                     want[i].deleted ? " (deleted)" : "");
    if (ngot != nwant)
        fail_msg("%s %lld: %zu changes, the model has %zu", what, (long long)arg, ngot, nwant);
}

static entry g_want[MAXE], g_got[MAXE];

/* Every limit from 1 to N+1 over the whole history, and every since. */
static void test_every_limit_every_since(void **state)
{
    model *m = calloc(1, sizeof(*m));
    verso_db *db = create_db(orm_tmp_path("unit_feed"));
    size_t nall;
    int pages;

    (void)state;
    g_rng = 11;
    assert_int_equal(verso_db_on_commit(db, on_commit, m), 0);
    history(db, m, 150);
    assert_model_matches_file(db, m);
    nall = expected(g_want, m, 0, 0, 7);
    assert_true(nall > 150);
    assert_true(m->ntombs > 30);

    for (int64_t limit = 1; limit <= (int64_t)nall + 1; limit++) {
        read_opts ro = {.since = 0, .limit = limit};
        size_t n = read_pages(g_got, MAXE, db, ro, &pages);
        assert_same(g_got, n, g_want, nall, "limit", limit);
        /* the page that fills up exactly knows it is the last */
        assert_int_equal(pages, nall ? (int)((nall + (size_t)limit - 1) / (size_t)limit) : 1);
    }
    for (int64_t since = 0; since <= m->head + 2; since++) {
        read_opts ro = {.since = since};
        size_t want = expected(g_want, m, since, 0, 7);
        size_t n = read_pages(g_got, MAXE, db, ro, &pages);
        assert_same(g_got, n, g_want, want, "since", since);
        assert_int_equal(pages, 1);
        ro.limit = 1 + since % 5; /* and paged from there */
        n = read_pages(g_got, MAXE, db, ro, &pages);
        assert_same(g_got, n, g_want, want, "since (paged)", since);
    }
    assert_int_equal(verso_db_on_commit_remove(db, on_commit, m), 0);
    verso_db_close(db);
    free(m);
}

/* Table filters: the same stream restricted, paged with small limits. */
static void test_tables_filter(void **state)
{
    static const struct {
        const char *names[3];
        size_t n;
        unsigned mask;
    } sets[] = {
        {{"a"}, 1, 1},
        {{"b", "Caps"}, 2, 6},
        {{"Caps", "a", "Caps"}, 3, 5}, /* named twice: read once */
        {{"a", "b", "Caps"}, 3, 7},
    };
    model *m = calloc(1, sizeof(*m));
    verso_db *db = create_db(orm_tmp_path("unit_feed_tables"));
    int pages;

    (void)state;
    g_rng = 23;
    assert_int_equal(verso_db_on_commit(db, on_commit, m), 0);
    history(db, m, 80);
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (int64_t limit = 0; limit <= 9; limit++) {
            read_opts ro = {.limit = limit, .tables = sets[s].names, .ntables = sets[s].n};
            size_t want = expected(g_want, m, 0, 0, sets[s].mask);
            size_t n = read_pages(g_got, MAXE, db, ro, &pages);
            assert_same(g_got, n, g_want, want, "table set", (int64_t)s);
        }
    }
    /* unknown or differently cased names are refused, and nothing is opened */
    static const char *const bad[][1] = {{"caps"}, {"nope"}, {""}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f = (verso_feed *)&fo;
        fo.tables = bad[i];
        fo.ntables = 1;
        assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_ENOTFOUND);
        assert_null(f);
    }
    assert_int_equal(verso_db_begin(db), 0); /* no read transaction was left open */
    assert_int_equal(verso_db_rollback(db), 0);
    verso_db_close(db);
    free(m);
}

/* A second handle writes between the pages: the reader that continues from
 * each cursor ends with exactly the file's rows. */
static void test_writes_between_pages(void **state)
{
    char path[1024];
    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("unit_feed_live"));
    verso_db *w = create_db(path), *r = open_db(path);
    model *m = calloc(1, sizeof(*m)), *replica = calloc(1, sizeof(*replica));

    assert_int_equal(verso_db_on_commit(w, on_commit, m), 0);
    for (int64_t limit = 1; limit <= 7; limit++) {
        read_opts ro = {.since = 0, .limit = limit};
        bool more = true;
        int rounds = 0;

        g_rng = 100 + (uint64_t)limit;
        memset(replica, 0, sizeof(*replica));
        history(w, m, 20);
        while (more || rounds < 40) {
            int64_t cursor, head;
            size_t n = read_once(g_got, MAXE, r, &ro, &cursor, &more, &head);
            for (size_t i = 0; i < n; i++)
                replica->rows[g_got[i].table][g_got[i].id] =
                    g_got[i].deleted ? 0 : g_got[i].version;
            ro.since = cursor;
            if (++rounds < 40)
                history(w, m, (int)rnd(3));
        }
        assert_int_equal(ro.since, m->head);
        assert_memory_equal(replica->rows, m->rows, sizeof(m->rows));
    }
    assert_model_matches_file(r, m);
    verso_db_close(r);
    verso_db_close(w);
    free(m);
    free(replica);
}

/* Pruned tombstones: since below the horizon is VERSO_EHORIZON, at or above
 * it the changes since; 0 is a full read without what was pruned. */
static void test_horizon(void **state)
{
    model *m = calloc(1, sizeof(*m));
    verso_db *db = create_db(orm_tmp_path("unit_feed_horizon"));
    int64_t horizon = 0, h;
    int pages;

    (void)state;
    g_rng = 37;
    assert_int_equal(verso_db_on_commit(db, on_commit, m), 0);
    history(db, m, 100);
    for (int step = 0; step < 4; step++) {
        int64_t to = horizon + 1 + (m->head - horizon) / 4;
        assert_int_equal(verso_db_prune_version(&h, db, to), 0);
        assert_int_equal(h, to);
        horizon = h;
        for (int64_t since = 0; since <= m->head; since++) {
            verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
            verso_feed *f = NULL;
            char msg[160];
            fo.since = since;
            if (since > 0 && since < horizon) {
                assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_EHORIZON);
                assert_null(f);
                snprintf(msg, sizeof(msg), "changes since %lld were pruned (horizon %lld)",
                         (long long)since, (long long)horizon);
                assert_non_null(strstr(verso_db_errmsg(db), msg));
                continue;
            }
            assert_int_equal(verso_feed_open(&f, db, &fo), 0);
            assert_int_equal(verso_feed_horizon(f), horizon);
            verso_feed_close(f);
            /* A full read is one page here: its next page, from a cursor below
             * the horizon, is refused like any other reader's. */
            read_opts ro = {.since = since, .limit = since ? 1 + since % 4 : 0};
            size_t want = expected(g_want, m, since, horizon, 7);
            size_t n = read_pages(g_got, MAXE, db, ro, &pages);
            assert_same(g_got, n, g_want, want, "since (pruned)", since);
        }
        history(db, m, 20);
    }

    /* the horizon passes a reader between two pages: it must resynchronise */
    read_opts ro = {.since = horizon, .limit = 2};
    int64_t cursor, head;
    bool more;
    read_once(g_got, MAXE, db, &ro, &cursor, &more, &head);
    assert_true(more);
    assert_int_equal(verso_db_prune_version(&h, db, cursor), 0); /* up to the cursor: fine */
    ro.since = cursor;
    read_once(g_got, MAXE, db, &ro, &cursor, &more, &head);
    assert_true(more);
    assert_int_equal(verso_db_prune_version(&h, db, cursor + 1), 0);
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    fo.since = cursor;
    assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_EHORIZON);
    /* the horizon never moves back */
    assert_int_equal(verso_db_prune_version(&h, db, 1), 0);
    assert_int_equal(h, cursor + 1);
    verso_db_close(db);
    free(m);
}

/* Reads that stop early, since beyond the head, limits <= 0. */
static void test_edges(void **state)
{
    model *m = calloc(1, sizeof(*m));
    verso_db *db = create_db(orm_tmp_path("unit_feed_edges"));
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e;
    verso_feed *f = NULL;
    int64_t cursor, head;
    bool more;
    int pages;

    (void)state;
    /* an empty database: one empty page at head 0 */
    read_opts ro = {.limit = 3};
    assert_int_equal(read_pages(g_got, MAXE, db, ro, &pages), 0);
    assert_int_equal(pages, 1);

    g_rng = 5;
    assert_int_equal(verso_db_on_commit(db, on_commit, m), 0);
    history(db, m, 40);
    size_t nall = expected(g_want, m, 0, 0, 7);

    /* no limit: negative and zero read everything */
    for (int64_t limit = -2; limit <= 0; limit++) {
        ro = (read_opts){.limit = limit};
        assert_int_equal(read_once(g_got, MAXE, db, &ro, &cursor, &more, &head), nall);
        assert_false(more);
    }
    /* a negative since is 0 */
    ro = (read_opts){.since = -5};
    assert_same(g_got, read_once(g_got, MAXE, db, &ro, &cursor, &more, &head), g_want, nall,
                "since", -5);
    /* since beyond the head: nothing, the cursor is the head */
    ro = (read_opts){.since = m->head + 10, .limit = 1};
    assert_int_equal(read_once(g_got, MAXE, db, &ro, &cursor, &more, &head), 0);
    assert_int_equal(cursor, m->head);

    /* a reader that stops before the feed said 0 has not seen the end: more
     * may follow, and its cursor is its last change */
    fo.limit = 5;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(verso_feed_next(&e, f), 1);
    assert_true(verso_feed_more(f));
    assert_int_equal(verso_feed_cursor(f), g_want[4].version);
    verso_feed_close(f);
    fo.limit = 0;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    assert_int_equal(verso_feed_next(&e, f), 1);
    assert_true(verso_feed_more(f));
    assert_int_equal(verso_feed_cursor(f), g_want[0].version);
    verso_feed_close(f);
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    assert_true(verso_feed_more(f)); /* nothing read yet */
    assert_int_equal(verso_feed_cursor(f), 0);
    verso_feed_close(f);

    /* ntables without tables */
    fo.tables = NULL;
    fo.ntables = 1;
    f = (verso_feed *)&fo;
    assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_EINVAL);
    assert_null(f);
    verso_db_close(db);
    free(m);
}

/* Two feeds on one handle share one snapshot, closed in either order; the
 * handle can write once both are closed. */
static void test_shared_snapshot(void **state)
{
    char path[1024];
    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("unit_feed_snap"));
    verso_db *w = create_db(path), *r = open_db(path);
    model *m = calloc(1, sizeof(*m));
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const verso_feed_entry *e;
    verso_feed *f1 = NULL, *f2 = NULL;
    int64_t head;
    size_t n = 0;
    int rc;

    g_rng = 9;
    assert_int_equal(verso_db_on_commit(w, on_commit, m), 0);
    history(w, m, 30);
    head = m->head;
    size_t nall = expected(g_want, m, 0, 0, 7);

    for (int order = 0; order < 2; order++) {
        assert_int_equal(verso_feed_open(&f1, r, &fo), 0);
        assert_int_equal(verso_feed_next(&e, f1), 1);
        history(w, m, 5); /* not seen by either feed */
        assert_int_equal(verso_feed_open(&f2, r, &fo), 0);
        assert_int_equal(verso_feed_head(f2), head);
        assert_int_equal(verso_feed_head(f1), head);
        if (order == 0) {
            verso_feed_close(f1);
            f1 = NULL;
        }
        for (n = 0; (rc = verso_feed_next(&e, f2)) == 1; n++) {
            assert_true(n < nall);
            assert_int_equal(e->version, g_want[n].version);
        }
        assert_int_equal(rc, 0);
        assert_int_equal(n, nall);
        verso_feed_close(f2);
        verso_feed_close(f1);
        /* the snapshot is gone: a new read sees the writes, the handle can write */
        assert_int_equal(verso_feed_open(&f1, r, &fo), 0);
        assert_int_equal(verso_feed_head(f1), m->head);
        verso_feed_close(f1);
        assert_int_equal(verso_db_begin(r), 0);
        assert_int_equal(verso_db_exec(r, "INSERT INTO a(n) VALUES (1)"), 0);
        assert_int_equal(verso_db_commit(r), 0);
        /* the next round's stream, r's own insert included */
        assert_int_equal(verso_feed_open(&f1, r, &fo), 0);
        head = verso_feed_head(f1);
        for (nall = 0; verso_feed_next(&e, f1) == 1; nall++)
            g_want[nall].version = e->version;
        verso_feed_close(f1);
    }
    verso_db_close(r);
    verso_db_close(w);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_limit_every_since),
        cmocka_unit_test(test_tables_filter),
        cmocka_unit_test(test_writes_between_pages),
        cmocka_unit_test(test_horizon),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_shared_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
