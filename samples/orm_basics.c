/*
 * orm_basics - the first verso program to read.
 *
 * Declares a table as a C struct, opens a database, inserts, updates and
 * deletes rows, then prints the change feed as JSON lines: every change got
 * its own version, and the delete left a tombstone.
 *
 *   orm_basics [DB]      (default: a fresh file in $TMPDIR or /tmp)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <verso/orm.h>

/* The record: an id and a version, plus whatever the program needs. */
typedef struct product {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t stock;
    bool active;
} product;

/* The table, declared once, as data. */
static const verso_field product_fields[] = {
    VERSO_FIELD_ID_OF(product, id),
    VERSO_FIELD_VERSION_OF(product, version),
    VERSO_FIELD(product, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(product, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(product, stock, VERSO_INT64, VERSO_FIELD_INDEX),
    VERSO_FIELD(product, active, VERSO_BOOL, 0),
};
static const verso_table_def product_table = VERSO_TABLE_DEF("product", product, product_fields);

static int check(int rc, verso_db *db, const char *what)
{
    if (rc < 0)
        fprintf(stderr, "orm_basics: %s: %s (%s)\n", what, verso_strerror(rc),
                db ? verso_db_errmsg(db) : "");
    return rc;
}

/* Writes three products, changes one, deletes another. */
static int write_some(verso_db *db)
{
    product p[] = {
        {.name = "teapot", .price = 24.5, .stock = 10, .active = true},
        {.name = "cup", .price = 6.0, .stock = 120, .active = true},
        {.name = "saucer", .price = 3.25, .stock = 0, .active = false},
    };
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        rc = check(verso_record_insert(db, &product_table, &p[i]), db, "insert");
        if (rc == 0)
            printf("inserted %s: id %lld, version %lld\n", p[i].name, (long long)p[i].id,
                   (long long)p[i].version);
    }
    if (rc < 0)
        return rc;

    /* Change only the stock of the cup: the row gets a new version. */
    uint64_t mask;
    const char *stock[] = {"stock"};
    p[1].stock = 119;
    if ((rc = check(verso_record_mask(&mask, &product_table, stock, 1), db, "mask")) < 0 ||
        (rc = check(verso_record_update(db, &product_table, &p[1], mask), db, "update")) < 0)
        return rc;
    printf("updated cup: version %lld\n", (long long)p[1].version);

    /* Deleting leaves a tombstone with a version of its own. */
    if ((rc = check(verso_record_delete(db, &product_table, p[2].id), db, "delete")) < 0)
        return rc;
    printf("deleted saucer\n");
    return 0;
}

/* Prints every change since version 0, one JSON object per line. */
static int print_changes(verso_db *db)
{
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    verso_feed *feed = NULL;
    const verso_feed_entry *e;
    verso_buf line = VERSO_BUF_INIT;
    int rc = check(verso_feed_open(&feed, db, &o), db, "feed");
    if (rc < 0)
        return rc;
    printf("changes since 0 (head %lld):\n", (long long)verso_feed_head(feed));
    while ((rc = verso_feed_next(&e, feed)) == 1) {
        verso_buf_clear(&line);
        if ((rc = verso_json_feed_entry(&line, e)) < 0)
            break;
        printf("%s\n", line.data);
    }
    verso_buf_free(&line);
    verso_feed_close(feed);
    return check(rc, db, "feed");
}

int main(int argc, char **argv)
{
    char path[512], why[256] = "";
    const verso_table_def *tables[] = {&product_table};
    verso_db_options opts = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    bool temp = argc < 2;
    int rc;

    if (temp) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/orm_basics_%ld.db", dir && *dir ? dir : "/tmp",
                 (long)getpid());
    } else {
        snprintf(path, sizeof path, "%s", argv[1]);
    }
    opts.tables = tables;
    opts.ntables = 1;
    if ((rc = verso_db_open(&db, path, &opts, why, sizeof(why))) < 0) {
        fprintf(stderr, "orm_basics: %s\n", why); /* the path and what is wrong */
        return 1;
    }
    printf("database %s, identity %s\n", path, verso_db_identity(db));

    if ((rc = write_some(db)) == 0)
        rc = print_changes(db);
    verso_db_close(db);

    if (temp) {
        char side[600];
        unlink(path);
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    return rc < 0 ? 1 : 0;
}
