/* Helpers shared by the ORM tests. */
#include "support/orm_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const verso_field orm_item_fields[] = {
    VERSO_FIELD_ID_OF(orm_item, id),
    VERSO_FIELD_VERSION_OF(orm_item, version),
    VERSO_FIELD(orm_item, name, VERSO_TEXT, VERSO_FIELD_INDEX),
    VERSO_FIELD_NULLABLE(orm_item, price, VERSO_DOUBLE, 0, price_null),
    VERSO_FIELD(orm_item, qty, VERSO_INT64, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(orm_item, active, VERSO_BOOL, 0),
    VERSO_FIELD(orm_item, data, VERSO_BLOB, 0),
    VERSO_FIELD(orm_item, uid, VERSO_UUID, 0),
};

const verso_table_def orm_item_def = VERSO_TABLE_DEF("item", orm_item, orm_item_fields);

const char *orm_tmp_path(const char *tag)
{
    static char path[1024];
    static unsigned counter;
    const char *dir = getenv("VERSO_TEST_TMP");
    char side[1100];
    snprintf(path, sizeof path, "%s/orm_%s_%ld_%u.db", dir && dir[0] ? dir : "/tmp", tag,
             (long)getpid(), counter++);
    remove(path);
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
    return path;
}

int orm_sqlite_shell(const char *path, const char *sql, char *out, size_t outlen)
{
    char cmd[1200], script[1100];
    snprintf(script, sizeof script, "%s.sql", path);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    fputs(sql, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sqlite3 -bail '%s' < '%s' 2>&1", path, script);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    if (out && outlen)
        out[0] = '\0';
    char buf[512];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && n + 1 < outlen) {
            size_t k = got < outlen - n - 1 ? got : outlen - n - 1;
            memcpy(out + n, buf, k);
            n += k;
            out[n] = '\0';
        }
    }
    int st = pclose(p);
    remove(script);
    return st;
}
