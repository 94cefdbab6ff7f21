/*
 * master - a replication master: C struct tables, the REST API and the
 * /_sync replication endpoint on one port.
 *
 *   master DB [PORT]      (PORT default 8080; 0 picks a free one)
 *
 * Every two seconds it changes a product's price through the ORM, so a
 * slave (samples/slave, `verso replicate`) has something to follow. Writes
 * through REST (curl -X POST http://127.0.0.1:PORT/product -d '{...}') and
 * through the sqlite3 shell on DB are replicated too. Stops on Ctrl-C.
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <verso/orm.h>
#include <verso/rest.h>
#include <verso/sync.h>

typedef struct product {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t stock;
} product;

static const verso_field product_fields[] = {
    VERSO_FIELD_ID_OF(product, id),
    VERSO_FIELD_VERSION_OF(product, version),
    VERSO_FIELD(product, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    VERSO_FIELD(product, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(product, stock, VERSO_INT64, 0),
};
static const verso_table_def product_table = VERSO_TABLE_DEF("product", product, product_fields);
static const verso_table_def *const tables[] = {&product_table};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Gives the table a few rows the first time. */
static int seed(verso_db *db)
{
    static const char *const names[] = {"apple", "pear", "plum"};
    int64_t n = 0;
    int rc = verso_query_count(&n, db, "product", NULL, 0);

    for (size_t i = 0; rc == 0 && n == 0 && i < 3; i++) {
        product p = {.name = (char *)names[i], .price = 1.0 + (double)i, .stock = 10};
        rc = verso_record_insert(db, &product_table, &p);
    }
    return rc;
}

static void reprice(verso_db *db, int tick)
{
    product p = {0};
    int64_t id = 1 + tick % 3;

    if (verso_record_get(&p, db, &product_table, id) < 0)
        return;
    p.price = 1.0 + (double)(tick % 7) / 4.0;
    if (verso_record_update(db, &product_table, &p, 0) == 0)
        printf("master: product %lld price %.2f version %lld\n", (long long)id, p.price,
               (long long)p.version);
    verso_record_clear(&product_table, &p);
}

int main(int argc, char **argv)
{
    char open_why[256] = "";
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_sync_master *m = NULL;
    verso_rest *srv = NULL;
    verso_db *db = NULL;
    char why[256] = "";
    int rc = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: master DB [PORT]\n");
        return 2;
    }
    dbo.tables = tables;
    dbo.ntables = 1;
    if (verso_db_open(&db, argv[1], &dbo, open_why, sizeof(open_why)) < 0 || seed(db) < 0) {
        fprintf(stderr, "master: %s: %s\n", argv[1], db ? verso_db_errmsg(db) : open_why);
        goto done;
    }
    if (verso_sync_master_new(&m, argv[1], NULL, why, sizeof(why)) < 0)
        goto fail;
    verso_sync_master_mount(m, &ro); /* /_sync, commit watch, status and metrics */
    ro.port = argc > 2 ? atoi(argv[2]) : VERSO_REST_PORT_DEFAULT;
    if (argc > 2 && ro.port == 0)
        ro.port = VERSO_REST_PORT_ANY; /* "0": a free port, as the usage says */
    if (verso_rest_start(&srv, db, &ro, why, sizeof(why)) < 0)
        goto fail;
    verso_sync_master_watch(m, db); /* push our own commits at once */
    signal(SIGINT, on_signal);      /* before saying we are up: a stop then always ends well */
    signal(SIGTERM, on_signal);
    printf("master: serving %s on http://127.0.0.1:%d (Ctrl-C stops)\n", argv[1],
           verso_rest_port(srv));
    fflush(stdout);
    for (int tick = 0; !stop; tick++) {
        sleep(2);
        if (!stop)
            reprice(db, tick);
        fflush(stdout);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "master: %s\n", why);
done:
    if (m && db)
        verso_sync_master_unwatch(m, db);
    verso_rest_stop(srv);
    verso_sync_master_close(m);
    verso_db_close(db);
    return rc;
}
