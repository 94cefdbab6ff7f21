/*
 * Replication apply of a long blob: the row was written with zeroblob(n)
 * (a blob value with data NULL), then its bytes go in with incremental
 * blob I/O, chunk by chunk, inside the same apply transaction. SQLite
 * spills dirty pages to the WAL once its page cache is full, so memory
 * stays that of the cache plus one chunk, whatever n is.
 */
#include <string.h>

#include "orm/internal.h"
#include "orm/service.h"

#define CHUNK (64 * 1024)

static int open_blob(sqlite3_blob **b, verso_db *db, const verso_table *t, const char *column,
                     int64_t id, int64_t n)
{
    int src = sqlite3_blob_open(db->sq, "main", t->name, column, id, 1, b);
    if (src == SQLITE_ERROR && sqlite3_errcode(db->sq) == SQLITE_ERROR)
        return verso__err(db, VERSO_ENOTFOUND, "%s #%lld, column %s: no such row or column",
                          t->name, (long long)id, column);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, t->name);
    if (sqlite3_blob_bytes(*b) != n)
        return verso__err(db, VERSO_EPROTO, "%s #%lld, column %s: %d bytes where %lld were written",
                          t->name, (long long)id, column, sqlite3_blob_bytes(*b), (long long)n);
    return 0;
}

static int copy_chunks(verso_db *db, sqlite3_blob *b, int64_t n, verso__blob_fill_fn fill,
                       void *arg)
{
    unsigned char *buf = verso__malloc(CHUNK);
    int rc = buf ? 0 : verso__err(db, VERSO_ENOMEM, "out of memory");
    for (int64_t off = 0; rc == 0 && off < n; off += CHUNK) {
        size_t len = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
        if ((rc = fill(buf, len, off, arg)) < 0)
            break;
        int src = sqlite3_blob_write(b, buf, (int)len, (int)off);
        if (src != SQLITE_OK)
            rc = verso__sqlerr(db, src, "writing a blob");
    }
    verso__free(buf);
    return rc;
}

int verso__apply_blob(verso_db *db, const char *table, int64_t id, const char *column, int64_t n,
                      verso__blob_fill_fn fill, void *arg)
{
    const verso_table *t = table ? verso_db_table(db, table) : NULL;
    sqlite3_blob *b = NULL;
    int rc = 0;
    if (!db->applying)
        return verso__err(db, VERSO_ESTATE, "not inside verso_apply_begin()");
    if (!t || !t->replicated || verso_table_column_index(t, column ? column : "") < 0)
        return verso__err(db, VERSO_ENOTFOUND, "no replicated table %s with a column %s",
                          table ? table : "(null)", column ? column : "(null)");
    if (n < 0 || n > INT32_MAX)
        return verso__err(db, VERSO_EPROTO, "a blob of %lld bytes", (long long)n);
    if ((rc = open_blob(&b, db, t, column, id, n)) == 0)
        rc = copy_chunks(db, b, n, fill, arg);
    int src = sqlite3_blob_close(b);
    if (rc == 0 && src != SQLITE_OK)
        rc = verso__sqlerr(db, src, "writing a blob");
    if (rc < 0)
        verso__after_error(db);
    return rc;
}
