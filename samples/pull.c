/*
 * pull - brings a database up to a master's head once, over HTTP.
 *
 *   pull URL DB       (e.g. pull http://127.0.0.1:8080 copy.db)
 *
 * Run it as often as you like: each run applies only what changed since
 * the previous one (a full resynchronisation when the master was
 * recreated or pruned deletions this copy never saw).
 */
#include <stdio.h>

#include <verso/sync.h>

static void on_progress(const verso_sync_progress *p, void *arg)
{
    (void)arg;
    fprintf(stderr, "pull: %lld changes, cursor %lld of %lld, %lld ms\n", (long long)p->rows,
            (long long)p->cursor, (long long)p->master_head, (long long)p->elapsed_ms);
}

int main(int argc, char **argv)
{
    char open_why[256] = "";
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    verso_pull_result res;
    verso_db *db = NULL;
    char why[256];
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: pull URL DB\n");
        return 2;
    }
    if (verso_db_open(&db, argv[2], NULL, open_why, sizeof(open_why)) < 0) {
        fprintf(stderr, "pull: %s: %s\n", argv[2], open_why);
        return 1;
    }
    c.on_progress = on_progress;
    rc = verso_sync_pull(&res, db, argv[1], &c, why, sizeof(why));
    verso_db_close(db);
    if (rc < 0) {
        fprintf(stderr, "pull: %s\n", why);
        return 1;
    }
    printf("pull: %lld changes applied; %s now equals master %s at version %lld%s\n",
           (long long)res.rows, argv[2], res.master, (long long)res.cursor,
           res.resynced ? " (full resync)" : "");
    return 0;
}
