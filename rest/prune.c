/* rest/prune.c - POST /_prune (admin role): deletes old tombstones and
 * moves the horizon, over verso_db_prune_version() / verso_db_prune_age().
 * Body: {"keep_versions":N} keeps the tombstones of the last N versions;
 * {"older_than_seconds":S} deletes those written more than S seconds ago.
 * Answer: {"horizon":H,"previous_horizon":P}. Slaves and readers whose
 * cursor is below the new horizon resynchronise (docs/protocol.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "rest/internal.h"

/* The one member of the body: its name in *which, its value in *n (>= 0). */
static int prune_request(const cJSON *root, const char **which, int64_t *n)
{
    const cJSON *m;

    if (!cJSON_IsObject(root) || !(m = root->child) || m->next)
        return -1;
    if (strcmp(m->string, "keep_versions") && strcmp(m->string, "older_than_seconds"))
        return -1;
    *which = m->string;
    return cJSON_IsNumber(m) && verso_json_int64(n, m) == 0 && *n >= 0 ? 0 : -1;
}

static int prune(verso_rest *srv, int64_t *horizon, const char *which, int64_t n)
{
    verso_info info;
    int rc;

    if (!strcmp(which, "older_than_seconds"))
        return verso_db_prune_age(horizon, srv->db, n > INT64_MAX / 1000 ? INT64_MAX : n * 1000);
    if ((rc = verso_db_info(&info, srv->db)) < 0)
        return rc;
    if (info.head - n <= info.horizon) { /* nothing that old is left: the horizon stays */
        *horizon = info.horizon;
        return 0;
    }
    return verso_db_prune_version(horizon, srv->db, info.head - n);
}

void verso__route_prune(verso__req *rq, verso__resp *rs)
{
    verso_rest *srv = rq->srv;
    verso_json *doc = NULL;
    char why[160] = "";
    const char *which = NULL;
    int64_t n = 0, horizon = 0;
    verso_info before;
    int rc;

    if (verso_json_parse(&doc, rq->body ? rq->body : "", rq->nbody, srv->cfg.limits.max_depth, why,
                         sizeof(why)) < 0 ||
        prune_request(verso_json_root(doc), &which, &n) < 0) {
        verso__error(rs, 400,
                     "expected {\"keep_versions\":N} or {\"older_than_seconds\":S}, N and S "
                     "integers >= 0%s%s",
                     why[0] ? ": " : "", why);
        goto done;
    }
    if ((rc = verso_db_info(&before, srv->db)) < 0 || (rc = prune(srv, &horizon, which, n)) < 0) {
        verso__error_orm(rs, srv, rc);
        goto done;
    }
    rs->status = 200;
    if (verso_buf_printf(rs->body, "{\"horizon\":%lld,\"previous_horizon\":%lld}",
                         (long long)horizon, (long long)before.horizon) < 0)
        verso__error(rs, 500, "cannot write the answer");
done:
    verso_json_free(doc);
}
