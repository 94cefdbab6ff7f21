/*
 * slave - a live slave that prints each transaction it applies.
 *
 *   slave URL DB      (e.g. slave http://127.0.0.1:8080 copy.db)
 *
 * It follows the master over a WebSocket, in its own thread, creating the
 * master's tables in DB; the callback runs after each slave commit with
 * the changes it contained. Every 5 seconds it prints its state (lag).
 * Stops on Ctrl-C; run it again and it resumes from where it stopped.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <verso/sync.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void print_value(const verso_value *v)
{
    switch (v->type) {
    case VERSO_INT64:
    case VERSO_BOOL:
        printf("%lld", (long long)v->u.i);
        break;
    case VERSO_DOUBLE:
        printf("%g", v->u.d);
        break;
    case VERSO_TEXT:
    case VERSO_UUID:
        printf("\"%.*s\"", (int)v->u.b.n, (const char *)v->u.b.p);
        break;
    case VERSO_BLOB:
        printf("<%zu bytes>", v->u.b.n);
        break;
    default:
        printf("null");
    }
}

static void on_apply(const verso_sync_change *changes, size_t n, int64_t cursor, bool reset,
                     void *arg)
{
    static const char *const kinds[] = {"?", "added", "updated", "deleted"};

    (void)arg;
    printf("slave: transaction up to version %lld%s, %zu change(s)\n", (long long)cursor,
           reset ? " (full resync)" : "", n);
    for (size_t i = 0; i < n; i++) {
        const verso_sync_change *c = &changes[i];
        printf("  %-7s %s id %lld version %lld", kinds[c->kind], c->table, (long long)c->id,
               (long long)c->version);
        for (size_t k = 0; k < c->ncolumns; k++) {
            printf(" %s=", c->columns[k]);
            print_value(&c->values[k]);
        }
        printf("\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256];

    if (argc != 3) {
        fprintf(stderr, "usage: slave URL DB\n");
        return 2;
    }
    o.client.on_apply = on_apply;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (verso_slave_start(&s, argv[2], argv[1], &o, why, sizeof(why)) < 0) {
        fprintf(stderr, "slave: %s\n", why);
        return 1;
    }
    for (int t = 1; !stop; t++) {
        verso_slave_state st;
        sleep(1);
        if (t % 5 || verso_slave_state_get(&st, s) < 0)
            continue;
        printf("slave: %s, cursor %lld, lag %lld versions / %lld ms%s%s\n",
               st.connected ? "connected" : "reconnecting", (long long)st.cursor,
               (long long)st.lag_versions, (long long)st.lag_ms, st.last_error[0] ? ", " : "",
               st.last_error);
        fflush(stdout);
    }
    verso_slave_stop(s);
    return 0;
}
