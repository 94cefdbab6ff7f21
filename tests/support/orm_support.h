/* Helpers shared by the ORM tests (libc + public API only). */
#ifndef VERSO_TESTS_ORM_SUPPORT_H
#define VERSO_TESTS_ORM_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "verso/orm.h"
#include "verso/advanced.h"

/* A fresh database path under $VERSO_TEST_TMP (or /tmp), unique per call;
 * any file of that name and its -wal/-shm are removed. Static buffer. */
const char *orm_tmp_path(const char *tag);

/* Runs `sqlite3 path` with sql on stdin; returns the exit status, output in out (may be NULL). */
int orm_sqlite_shell(const char *path, const char *sql, char *out, size_t outlen);

/* The example table used by several tests. */
typedef struct orm_item {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    bool price_null;
    int64_t qty;
    bool active;
    verso_blob data;
    verso_uuid uid;
} orm_item;

extern const verso_table_def orm_item_def;

#endif
