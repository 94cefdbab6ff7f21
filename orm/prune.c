/*
 * Tombstone pruning. The horizon records how far the deletion log was cut:
 * a change-feed reader whose cursor is below it gets VERSO_EHORIZON instead
 * of silently missing deletions.
 */
#include "orm/internal.h"

static int prune_to(int64_t *horizon, verso_db *db, int64_t up_to)
{
    sqlite3_stmt *st = NULL;
    int64_t cur;
    int rc = verso__tomb_flush(db);
    if (rc == 0)
        rc = verso__meta_get_int(&cur, db, "horizon");
    if (rc < 0)
        return rc;
    if (up_to > db->head)
        up_to = db->head;
    *horizon = cur;
    if (up_to <= cur)
        return 0;
    int src = sqlite3_prepare_v2(db->sq, "DELETE FROM _verso_tombstones WHERE version <= ?1", -1,
                                 &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, up_to);
        src = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return verso__sqlerr(db, src, "pruning tombstones");
    if ((rc = verso__meta_set_int(db, "horizon", up_to)) == 0)
        *horizon = up_to;
    return rc;
}

int verso_db_prune_version(int64_t *out_horizon, verso_db *db, int64_t up_to)
{
    bool implicit;
    int64_t h = 0;
    int rc = verso__wbegin(db, &implicit);
    if (rc < 0)
        return rc;
    rc = prune_to(&h, db, up_to);
    rc = verso__wend(db, implicit, rc);
    if (rc == 0 && out_horizon)
        *out_horizon = h;
    return rc;
}

static int oldest_to_prune(int64_t *out, verso_db *db, int64_t max_age_ms)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq, "SELECT max(version) FROM _verso_tombstones WHERE at < ?1",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, verso_now_ms() - max_age_ms);
        src = sqlite3_step(st);
    }
    *out = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return src == SQLITE_ROW ? 0 : verso__sqlerr(db, src, "reading tombstones");
}

int verso_db_prune_age(int64_t *out_horizon, verso_db *db, int64_t max_age_ms)
{
    bool implicit;
    int64_t h = 0, up_to = 0;
    int rc;
    if (max_age_ms < 0)
        return verso__err(db, VERSO_EINVAL, "max_age_ms is negative");
    if ((rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    rc = oldest_to_prune(&up_to, db, max_age_ms);
    if (rc == 0)
        rc = prune_to(&h, db, up_to);
    rc = verso__wend(db, implicit, rc);
    if (rc == 0 && out_horizon)
        *out_horizon = h;
    return rc;
}
