/*
 * demo - verso in one minute: a master and a live slave on SQLite files
 * in a temporary directory. Writes go to the master's REST API (plain
 * HTTP over a socket, as any client would send them); the slave follows
 * over a WebSocket and prints each transaction it applies. Exits by itself
 * with a summary: the two files hold the same rows with the same versions.
 *
 *   demo          (./scripts/demo.sh builds and runs it)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the slave's callback: runs after each slave commit ---- */

static void on_apply(const verso_sync_change *changes, size_t n, int64_t cursor, bool reset,
                     void *arg)
{
    static const char *const kinds[] = {"?", "added", "updated", "deleted"};

    (void)arg;
    printf("    slave applied up to version %lld:", (long long)cursor);
    if (reset && n == 0)
        printf(" bootstrapped from a snapshot of the master's file");
    for (size_t i = 0; i < n; i++)
        printf(" %s %s #%lld (v%lld)%s", kinds[changes[i].kind], changes[i].table,
               (long long)changes[i].id, (long long)changes[i].version, i + 1 < n ? "," : "");
    printf("\n");
    fflush(stdout);
}

/* ---- a minimal HTTP/1.1 client over a socket ---- */

/* Sends one request; returns the status, the version of the answer in *version (0 if none). */
static int http(int port, const char *method, const char *path, const char *body, int64_t *version)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[1024], resp[4096];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
    const char *v;

    *version = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto done;
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 method, path, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, req, (size_t)n) != n)
        goto done;
    while (got < sizeof(resp) - 1 && (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    sscanf(resp, "HTTP/1.%*d %d", &status);
    if ((v = strstr(resp, "\"version\":")))
        *version = strtoll(v + 10, NULL, 10);
done:
    if (fd >= 0)
        close(fd);
    return status;
}

/* ---- the demo ---- */

typedef struct demo {
    char dir[256], master_path[300], slave_path[300];
    verso_db *db;
    verso_sync_master *sync;
    verso_rest *srv;
    verso_slave *slave;
    int port;
    int64_t waits_us[16];
    int nwaits;
} demo;

/* Sends a write through REST and waits until the slave has it (read-your-writes). */
static void step(demo *d, const char *what, const char *method, const char *path, const char *body)
{
    int64_t version, t0;
    int status = http(d->port, method, path, body, &version);

    if (version == 0) { /* a 204 carries no row: the tombstone's version is the head */
        verso_info info;
        verso_db_info(&info, d->db);
        version = info.head;
    }
    printf("REST %s %s %s -> HTTP %d, version %lld   (%s)\n", method, path, body ? body : "",
           status, (long long)version, what);
    fflush(stdout);
    t0 = mono_us();
    if (verso_slave_wait(d->slave, version, 5000) == 0 && d->nwaits < 16)
        d->waits_us[d->nwaits++] = mono_us() - t0;
}

static int start(demo *d)
{
    char open_why[256] = "";
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_slave_options so = VERSO_SLAVE_OPTIONS_INIT;
    const char *tmp = getenv("TMPDIR");
    char why[256] = "", url[64];

    snprintf(d->dir, sizeof(d->dir), "%s/verso-demo.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(d->dir))
        return fprintf(stderr, "demo: cannot create a temporary directory\n"), -1;
    snprintf(d->master_path, sizeof(d->master_path), "%s/master.db", d->dir);
    snprintf(d->slave_path, sizeof(d->slave_path), "%s/slave.db", d->dir);
    dbo.tables = tables;
    dbo.ntables = 1;
    if (verso_db_open(&d->db, d->master_path, &dbo, open_why, sizeof(open_why)) < 0)
        return fprintf(stderr, "demo: %s\n", open_why), -1;
    if (verso_sync_master_new(&d->sync, d->master_path, NULL, why, sizeof(why)) < 0)
        return fprintf(stderr, "demo: %s\n", why), -1;
    verso_sync_master_mount(d->sync, &ro);
    ro.port = VERSO_REST_PORT_ANY;
    if (verso_rest_start(&d->srv, d->db, &ro, why, sizeof(why)) < 0)
        return fprintf(stderr, "demo: %s\n", why), -1;
    verso_sync_master_watch(d->sync, d->db);
    d->port = verso_rest_port(d->srv);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", d->port);
    so.client.on_apply = on_apply;
    if (verso_slave_start(&d->slave, d->slave_path, url, &so, why, sizeof(why)) < 0)
        return fprintf(stderr, "demo: %s\n", why), -1;
    printf("master %s serves REST and /_sync on %s\nslave  %s follows it live\n\n", d->master_path,
           url, d->slave_path);
    return 0;
}

static void stop(demo *d)
{
    char cmd[300];

    verso_slave_stop(d->slave);
    if (d->sync && d->db)
        verso_sync_master_unwatch(d->sync, d->db);
    verso_rest_stop(d->srv);
    verso_sync_master_close(d->sync);
    verso_db_close(d->db);
    if (d->dir[0] && strstr(d->dir, "verso-demo.")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "demo: could not remove %s\n", d->dir);
    }
}

/* Rows and versions of product in a file, as "id:version:name:price;" text. */
static int fingerprint(verso_buf *out, const char *path, int64_t *rows)
{
    verso_query q = VERSO_QUERY_INIT;
    verso_iter *it = NULL;
    verso_db *db = NULL;
    int rc;

    *rows = 0;
    if ((rc = verso_db_open(&db, path, NULL, NULL, 0)) < 0)
        return rc;
    q.table = "product";
    if ((rc = verso_query_open(&it, db, &q)) == 0) {
        while ((rc = verso_iter_next(it)) == 1) {
            (*rows)++;
            rc = verso_json_iter_row(out, it);
            if (rc < 0)
                break;
        }
    }
    verso_iter_close(it);
    verso_db_close(db);
    return rc;
}

static int summary(demo *d)
{
    verso_buf a = VERSO_BUF_INIT, b = VERSO_BUF_INIT;
    verso_slave_state st;
    verso_info info;
    int64_t ra = 0, rb = 0, worst = 0;
    bool same;

    verso_db_info(&info, d->db);
    verso_slave_state_get(&st, d->slave);
    fingerprint(&a, d->master_path, &ra);
    fingerprint(&b, d->slave_path, &rb);
    same = a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
    for (int i = 0; i < d->nwaits; i++)
        worst = d->waits_us[i] > worst ? d->waits_us[i] : worst;
    printf("\nsummary\n");
    printf("  master: head version %lld, %lld rows, identity %s\n", (long long)info.head,
           (long long)ra, info.identity);
    printf("  slave:  cursor %lld, %lld rows, %lld transactions applied, lag %lld versions\n",
           (long long)st.cursor, (long long)rb, (long long)st.commits, (long long)st.lag_versions);
    printf("  every REST write was on the slave %lld us or less after its HTTP answer\n",
           (long long)worst);
    printf("  the two files hold %s rows with the same versions\n",
           same ? "the same" : "DIFFERENT");
    verso_buf_free(&a);
    verso_buf_free(&b);
    return same && st.cursor == info.head ? 0 : 1;
}

/* A transfer of stock between two products in one ORM transaction: the
 * slave applies it as one transaction too. */
static void transfer(demo *d)
{
    product a = {0}, b = {0};
    verso_info info;

    verso_db_begin(d->db);
    verso_record_get(&a, d->db, &product_table, 1);
    verso_record_get(&b, d->db, &product_table, 2);
    a.stock -= 3;
    b.stock += 3;
    verso_record_update(d->db, &product_table, &a, 0);
    verso_record_update(d->db, &product_table, &b, 0);
    verso_db_commit(d->db);
    verso_record_clear(&product_table, &a);
    verso_record_clear(&product_table, &b);
    verso_db_info(&info, d->db);
    printf("ORM  transaction: 3 in stock moved from product 1 to 2 -> version %lld\n",
           (long long)info.head);
    fflush(stdout);
    verso_slave_wait(d->slave, info.head, 5000);
}

int main(void)
{
    demo d;
    int rc = 1;

    memset(&d, 0, sizeof(d));
    if (start(&d) == 0) {
        step(&d, "add", "POST", "/product", "{\"name\":\"apple\",\"price\":1.25,\"stock\":10}");
        step(&d, "add", "POST", "/product", "{\"name\":\"pear\",\"price\":2.5,\"stock\":4}");
        step(&d, "add", "POST", "/product", "{\"name\":\"plum\",\"price\":0.75,\"stock\":7}");
        step(&d, "update", "PATCH", "/product/1", "{\"price\":1.1}");
        step(&d, "delete", "DELETE", "/product/3", NULL);
        transfer(&d);
        rc = summary(&d);
    }
    stop(&d);
    return rc;
}
