/* rest/rows.c - the table routes: list, get, create, update, delete and
 * /_batch. GET by id uses a prepared statement cached per table. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm/service.h"
#include "rest/internal.h"

/* ---- GET by id ---- */

int verso__write_row_by_id(verso_buf *b, int64_t *version, verso_rest *srv, const verso_table *t,
                           int64_t id)
{
    bool reloaded = false;
    int rc = verso__row_json(b, version, &reloaded, srv->db, verso_table_name(t), id);

    if (reloaded)
        srv->metrics.schema_reloads++;
    return rc;
}

/* ---- ETags ---- */

int verso__parse_etag(int64_t *out, const char *s)
{
    char num[24];
    size_t n;

    if (!strcmp(s, "*")) {
        *out = 0;
        return 0;
    }
    if (!strncmp(s, "W/", 2))
        s += 2;
    n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    if (!n || n >= sizeof(num))
        return VERSO_EINVAL;
    memcpy(num, s, n);
    num[n] = 0;
    return verso__parse_i64(out, num) < 0 || *out < 1 ? VERSO_EINVAL : 0;
}

/* ---- list and get ---- */

/* Appends `,"name":` (no comma for the first member) without printf. */
static int put_key(verso_buf *b, const char *name, bool first)
{
    size_t n = strlen(name);
    char *p;

    if (verso_buf_reserve(b, n + 5) < 0)
        return VERSO_ENOMEM;
    p = b->data + b->len;
    if (!first)
        *p++ = ',';
    *p++ = '"';
    memcpy(p, name, n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    *p = 0;
    b->len = (size_t)(p - b->data);
    return 0;
}

static int write_iter_row(verso_buf *b, const verso_iter *it, const verso__listq *lq)
{
    int rc = verso_buf_puts(b, "{");
    bool first = true;

    for (size_t i = 0; rc == 0 && i < verso_iter_ncolumns(it); i++) {
        verso_value v;
        if (!verso__listq_emit(lq, i))
            continue;
        if ((rc = verso_iter_value(&v, it, i)) < 0 ||
            (rc = put_key(b, verso_iter_column_name(it, i), first)) < 0)
            break;
        rc = verso_json_value(b, &v, verso_iter_column(it, i)->type);
        first = false;
    }
    return rc < 0 ? rc : verso_buf_puts(b, "}");
}

static int write_link(verso__req *rq, verso__resp *rs, const verso__listq *lq, const verso_iter *it)
{
    int rc;
    size_t mark;

    if ((rc = verso_buf_printf(rs->link, "<%s?", rq->path)) < 0)
        return rc;
    mark = rs->link->len;
    if ((rc = verso__query_string_without_cursor(rs->link, rq)) < 0 ||
        (rc = verso_buf_puts(rs->link, rs->link->len > mark ? "&after=" : "after=")) < 0 ||
        (rc = verso__listq_cursor(rs->link, lq, it)) < 0)
        return rc;
    return verso_buf_puts(rs->link, ">; rel=\"next\"");
}

static int write_list(verso__req *rq, verso__resp *rs, const verso__listq *lq, verso_iter *it)
{
    int64_t limit = verso__listq_query(lq)->limit, n = 0;
    int rc = verso_buf_puts(rs->body, "[");

    while (rc == 0 && (rc = verso_iter_next(it)) == 1) {
        if ((n && (rc = verso_buf_puts(rs->body, ",")) < 0) ||
            (rc = write_iter_row(rs->body, it, lq)) < 0)
            break;
        if (++n == limit) {
            rc = write_link(rq, rs, lq, it);
            break;
        }
    }
    rs->rows = n;
    return rc < 0 ? rc : verso_buf_puts(rs->body, "]");
}

void verso__route_list(verso__req *rq, verso__resp *rs, const char *table)
{
    const verso_table *t = verso_db_table(rq->srv->db, table);
    verso__listq *lq = NULL;
    verso_iter *it = NULL;
    int rc;

    if (verso__listq_parse(&lq, rq, t, rs) < 0)
        return;
    if ((rc = verso_query_open(&it, rq->srv->db, verso__listq_query(lq))) < 0)
        verso__error_orm(rs, rq->srv, rc);
    else if ((rc = write_list(rq, rs, lq, it)) < 0)
        verso__error_rc(rs, rq->srv, rc, NULL);
    verso_iter_close(it);
    verso__listq_free(lq);
}

/* True if the If-None-Match value (a list of ETags, or *) names version. */
static bool etag_listed(const char *list, int64_t version)
{
    char one[32];
    int64_t want;

    while (*(list += strspn(list, " \t,"))) {
        size_t n = strcspn(list, ",");
        while (n && (list[n - 1] == ' ' || list[n - 1] == '\t'))
            n--;
        if (n < sizeof(one)) {
            memcpy(one, list, n);
            one[n] = 0;
            if (verso__parse_etag(&want, one) == 0 && (want == 0 || want == version))
                return true;
        }
        list += strcspn(list, ",");
    }
    return false;
}

/* The answer when verso__write_row_by_id() fails: its codes are made here. */
static void row_error(verso__resp *rs, verso_rest *srv, const verso_table *t, int64_t id, int rc)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "%s: no row with id %lld", verso_table_name(t), (long long)id);
    verso__error_rc(rs, srv, rc, rc == VERSO_ENOTFOUND ? msg : NULL);
}

void verso__route_get(verso__req *rq, verso__resp *rs, const char *table, int64_t id)
{
    const verso_table *t = verso_db_table(rq->srv->db, table);
    int64_t version = 0;
    int rc = verso__write_row_by_id(rs->body, &version, rq->srv, t, id);

    if (rc < 0) {
        row_error(rs, rq->srv, t, id, rc);
        return;
    }
    rs->etag = version;
    rs->rows = 1;
    if (rq->if_none_match && etag_listed(rq->if_none_match, version)) {
        rs->status = 304;
        verso_buf_clear(rs->body);
    }
}

/* ---- writes ---- */

static int parse_body(verso_json **doc, verso__req *rq, verso__resp *rs)
{
    char why[160];
    int rc =
        verso_json_parse(doc, rq->body, rq->nbody, rq->srv->cfg.limits.max_depth, why, sizeof(why));

    if (rc == VERSO_ENOMEM)
        verso__error_nomem(rs);
    else if (rc == VERSO_ETOOBIG)
        verso__error(rs, 400, "JSON nested too deeply");
    else if (rc < 0)
        verso__error(rs, 400, "%s", why[0] ? why : verso_strerror(rc));
    return rc;
}

/* A member that names no column: the answer names it and lists the columns. */
static bool unknown_member(verso__resp *rs, const verso_table *t, const cJSON *obj)
{
    char quoted[80], list[240];

    for (const cJSON *j = obj->child; j; j = j->next) {
        if (j->string && verso_table_column_index(t, j->string) >= 0)
            continue;
        verso__columns_list(list, sizeof(list), t);
        verso__error(rs, 400, "unknown column \"%s\": table %s has %s",
                     verso__rest_quote(quoted, sizeof(quoted), j->string, 64), verso_table_name(t),
                     list);
        return true;
    }
    return false;
}

/* Converts obj to column values; the version column is refused. */
static int to_values(const char ***cols, verso_value **vals, size_t *n, const verso_table *t,
                     const cJSON *obj, verso__resp *rs)
{
    const verso_column *vc = verso_table_column_at(t, (size_t)verso_table_version_index(t));
    char why[160] = "";
    int rc;

    if (cJSON_GetObjectItemCaseSensitive(obj, vc->name)) {
        verso__error(rs, 400, "clients never set versions: remove \"%s\"", vc->name);
        return VERSO_EINVAL;
    }
    if (unknown_member(rs, t, obj))
        return VERSO_EINVAL;
    if ((rc = verso_json_to_values(cols, vals, n, t, obj, why, sizeof(why))) == VERSO_ENOMEM)
        verso__error_nomem(rs);
    else if (rc < 0)
        verso__error(rs, 400, "%s", why[0] ? why : verso_strerror(rc));
    return rc;
}

static int insert_one(int64_t *id, int64_t *version, verso__req *rq, verso__resp *rs,
                      const verso_table *t, const cJSON *obj)
{
    const char **cols = NULL;
    verso_value *vals = NULL;
    size_t n = 0;
    int rc;

    if ((rc = to_values(&cols, &vals, &n, t, obj, rs)) < 0)
        return rc;
    if ((rc = verso_row_insert(id, version, rq->srv->db, verso_table_name(t), cols, vals, n)) < 0)
        verso__error_orm(rs, rq->srv, rc);
    verso_free(cols);
    verso_free(vals);
    return rc;
}

/* A write and the read of its result share one transaction, so that a
 * request whose answer cannot be made changes nothing. */
static int begin_txn(verso__req *rq, verso__resp *rs)
{
    int rc = verso_db_begin(rq->srv->db);

    if (rc < 0)
        verso__error_orm(rs, rq->srv, rc);
    return rc;
}

/* Commits if rc is 0, else rolls back; the error answer is written once. */
static int end_txn(verso__req *rq, verso__resp *rs, int rc)
{
    if (rc == 0 && (rc = verso_db_commit(rq->srv->db)) == 0)
        return 0;
    if (rs->status < 400 && rc == VERSO_ENOMEM)
        verso__error_rc(rs, rq->srv, rc, NULL);
    else if (rs->status < 400)
        verso__error_orm(rs, rq->srv, rc); /* the commit's */
    verso_db_rollback(rq->srv->db);
    return rc;
}

/* Appends row id of t; on failure writes the error answer. */
static int read_back(int64_t *version, verso__req *rq, verso__resp *rs, const verso_table *t,
                     int64_t id)
{
    int rc = verso__write_row_by_id(rs->body, version, rq->srv, t, id);

    if (rc < 0)
        row_error(rs, rq->srv, t, id, rc);
    return rc;
}

static int create_one(verso__req *rq, verso__resp *rs, const verso_table *t, const cJSON *obj)
{
    int64_t id = 0, version = 0;
    int rc;

    if ((rc = begin_txn(rq, rs)) < 0)
        return rc;
    if ((rc = insert_one(&id, &version, rq, rs, t, obj)) == 0)
        rc = read_back(&version, rq, rs, t, id);
    if ((rc = end_txn(rq, rs, rc)) < 0)
        return rc;
    rs->etag = version;
    return verso_buf_printf(rs->location, "/%s/%lld", verso_table_name(t), (long long)id);
}

static int create_many(verso__req *rq, verso__resp *rs, const verso_table *t, const cJSON *arr)
{
    const cJSON *obj;
    int rc, i = 0;

    if ((rc = begin_txn(rq, rs)) < 0)
        return rc;
    verso_buf_puts(rs->body, "[");
    cJSON_ArrayForEach(obj, arr)
    {
        int64_t id = 0, version = 0;
        if ((i++ && (rc = verso_buf_puts(rs->body, ",")) < 0) ||
            (rc = insert_one(&id, &version, rq, rs, t, obj)) < 0 ||
            (rc = read_back(&version, rq, rs, t, id)) < 0)
            break;
    }
    if ((rc = end_txn(rq, rs, rc)) < 0)
        return rc;
    return verso_buf_puts(rs->body, "]");
}

void verso__route_create(verso__req *rq, verso__resp *rs, const char *table)
{
    const verso_table *t = verso_db_table(rq->srv->db, table);
    verso_json *doc = NULL;
    const cJSON *root;
    int rc;

    if ((rc = parse_body(&doc, rq, rs)) < 0)
        goto done;
    root = verso_json_root(doc);
    if (cJSON_IsArray(root)) {
        rc = create_many(rq, rs, t, root);
    } else if (cJSON_IsObject(root)) {
        rc = create_one(rq, rs, t, root);
    } else {
        verso__error(rs, 400, "expected a JSON object or an array of objects");
        rc = VERSO_EINVAL;
    }
    if (rc == 0)
        rs->status = 201;
done:
    verso_json_free(doc);
}

/* If-Match and a "version" member both say which version the client edits. */
static int expected_version(int64_t *out, verso__req *rq, cJSON *obj, const verso_table *t,
                            verso__resp *rs)
{
    const verso_column *vc = verso_table_column_at(t, (size_t)verso_table_version_index(t));
    cJSON *v = obj ? cJSON_DetachItemFromObjectCaseSensitive(obj, vc->name) : NULL;
    int64_t body = 0;
    int rc = 0;

    *out = 0;
    if (rq->if_match && (verso__parse_etag(out, rq->if_match) < 0)) {
        verso__error(rs, 400, "bad If-Match header");
        rc = VERSO_EINVAL;
    } else if (v && (!cJSON_IsNumber(v) || verso_json_int64(&body, v) < 0 || body < 1)) {
        verso__error(rs, 400, "\"%s\" must be a positive integer", vc->name);
        rc = VERSO_EINVAL;
    } else if (v && *out > 0 && body != *out) {
        verso__error(rs, 412, "If-Match and the body's version disagree");
        rc = VERSO_ECONFLICT;
    } else if (v) {
        *out = body;
    }
    cJSON_Delete(v);
    return rc;
}

/* Drops an "id" member equal to the URL's id; a different id is an error. */
static int strip_id(cJSON *obj, const verso_table *t, int64_t id, verso__resp *rs)
{
    const verso_column *ic = verso_table_column_at(t, (size_t)verso_table_id_index(t));
    cJSON *j = cJSON_DetachItemFromObjectCaseSensitive(obj, ic->name);
    int64_t given = 0;
    int rc = 0;

    if (j && (!cJSON_IsNumber(j) || verso_json_int64(&given, j) < 0 || given != id)) {
        verso__error(rs, 400, "the body's \"%s\" differs from the URL", ic->name);
        rc = VERSO_EINVAL;
    }
    cJSON_Delete(j);
    return rc;
}

static int update_row(int64_t *version, verso__req *rq, verso__resp *rs, const verso_table *t,
                      int64_t id, cJSON *obj, int64_t expect)
{
    const char **cols = NULL;
    verso_value *vals = NULL;
    size_t n = 0;
    int rc;

    if (!cJSON_IsObject(obj)) {
        verso__error(rs, 400, "expected a JSON object");
        return VERSO_EINVAL;
    }
    if ((rc = strip_id(obj, t, id, rs)) < 0 || (rc = to_values(&cols, &vals, &n, t, obj, rs)) < 0)
        return rc;
    if (!n) {
        verso__error(rs, 400, "no column to update");
        rc = VERSO_EINVAL;
    } else if ((rc = verso_row_update(version, rq->srv->db, verso_table_name(t), id, cols, vals, n,
                                      expect)) < 0) {
        verso__error_orm(rs, rq->srv, rc);
    }
    verso_free(cols);
    verso_free(vals);
    return rc;
}

void verso__route_update(verso__req *rq, verso__resp *rs, const char *table, int64_t id)
{
    const verso_table *t = verso_db_table(rq->srv->db, table);
    verso_json *doc = NULL;
    cJSON *root;
    int64_t expect = 0, version = 0;
    int rc;

    if (parse_body(&doc, rq, rs) < 0)
        goto done;
    root = verso_json_root(doc);
    if (expected_version(&expect, rq, cJSON_IsObject(root) ? root : NULL, t, rs) < 0 ||
        begin_txn(rq, rs) < 0)
        goto done;
    if ((rc = update_row(&version, rq, rs, t, id, root, expect)) == 0)
        rc = read_back(&version, rq, rs, t, id);
    if (end_txn(rq, rs, rc) < 0)
        goto done;
    rs->etag = version;
    rs->rows = 1;
done:
    verso_json_free(doc);
}

void verso__route_delete(verso__req *rq, verso__resp *rs, const char *table, int64_t id)
{
    const verso_table *t = verso_db_table(rq->srv->db, table);
    int64_t expect = 0;
    int rc;

    if (expected_version(&expect, rq, NULL, t, rs) < 0)
        return;
    if ((rc = verso_row_delete(rq->srv->db, table, id, expect)) < 0) {
        verso__error_orm(rs, rq->srv, rc);
        return;
    }
    rs->status = 204;
}

/* ---- /_batch ---- */

enum { OP_INSERT, OP_UPDATE, OP_DELETE };

typedef struct batch_op {
    const char *name;
    int kind;
} batch_op;

static const batch_op k_batch_ops[] = {
    {"insert", OP_INSERT}, {"create", OP_INSERT}, {"update", OP_UPDATE},
    {"patch", OP_UPDATE},  {"put", OP_UPDATE},    {"delete", OP_DELETE},
};

typedef struct batch_item {
    int kind;
    const verso_table *t;
    int64_t id;
    int64_t expect;
    cJSON *row;
} batch_item;

static int batch_kind(const cJSON *op)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(op, "op");

    for (size_t i = 0; verso_json_cstr(j) && i < sizeof(k_batch_ops) / sizeof(k_batch_ops[0]); i++)
        if (!strcmp(k_batch_ops[i].name, j->valuestring))
            return k_batch_ops[i].kind;
    return -1;
}

static int batch_int(int64_t *out, const cJSON *op, const char *name, bool required)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(op, name);

    *out = 0;
    if (!j)
        return required ? VERSO_EINVAL : 0;
    return cJSON_IsNumber(j) && verso_json_int64(out, j) == 0 && *out >= 1 ? 0 : VERSO_EINVAL;
}

/* Reads and checks one operation object; on failure rs holds the error. */
static int batch_decode(batch_item *it, verso__req *rq, verso__resp *rs, cJSON *op)
{
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(op, "table");
    int st;

    if ((it->kind = batch_kind(op)) < 0 || !verso_json_cstr(tn)) {
        verso__error(rs, 400, "each operation needs \"op\" (insert, update, delete) and \"table\"");
        return VERSO_EINVAL;
    }
    if ((st = verso__auth_check(&rq->auth, &rq->srv->cfg, rq->db, tn->valuestring,
                                VERSO__CAP_WRITE))) {
        verso__error_auth(rs, rq, st, tn->valuestring, VERSO__CAP_WRITE, "writing rows");
        return VERSO_EAUTH;
    }
    if (tn->valuestring[0] == '_' || !(it->t = verso_db_table(rq->srv->db, tn->valuestring))) {
        verso__error_no_table(rs, rq, tn->valuestring);
        return VERSO_ENOTFOUND;
    }
    it->row = cJSON_GetObjectItemCaseSensitive(op, "row");
    if (batch_int(&it->id, op, "id", it->kind != OP_INSERT) < 0 ||
        batch_int(&it->expect, op, "version", false) < 0 || (it->kind == OP_INSERT && it->expect) ||
        (it->kind != OP_DELETE && !cJSON_IsObject(it->row))) {
        verso__error(rs, 400,
                     "bad operation: ids and versions are positive integers, "
                     "insert and update need a \"row\" object, insert takes no version");
        return VERSO_EINVAL;
    }
    return 0;
}

static int batch_run(batch_item *it, verso__req *rq, verso__resp *rs, verso_buf *out)
{
    int64_t id = it->id, version = 0;
    const char *name = verso_table_name(it->t);
    int rc;

    if (it->kind == OP_INSERT)
        rc = insert_one(&id, &version, rq, rs, it->t, it->row);
    else if (it->kind == OP_UPDATE)
        rc = update_row(&version, rq, rs, it->t, id, it->row, it->expect);
    else if ((rc = verso_row_delete(rq->srv->db, name, id, it->expect)) < 0)
        verso__error_orm(rs, rq->srv, rc);
    if (rc < 0)
        return rc;
    if (it->kind == OP_DELETE)
        return verso_buf_printf(out, "{\"status\":204,\"table\":\"%s\",\"id\":%lld}", name,
                                (long long)id);
    return verso_buf_printf(out, "{\"status\":%d,\"table\":\"%s\",\"id\":%lld,\"version\":%lld}",
                            it->kind == OP_INSERT ? 201 : 200, name, (long long)id,
                            (long long)version);
}

static int batch_all(verso__req *rq, verso__resp *rs, cJSON *ops, verso_buf *out, int *failed)
{
    cJSON *op;
    int rc = 0, i = 0;

    cJSON_ArrayForEach(op, ops)
    {
        batch_item it = {0};
        *failed = i;
        if ((i && (rc = verso_buf_puts(out, ",")) < 0) ||
            (rc = batch_decode(&it, rq, rs, op)) < 0 || (rc = batch_run(&it, rq, rs, out)) < 0)
            return rc;
        i++;
    }
    return 0;
}

/* The error answer of a failed batch also names the failed operation. */
static void batch_failed(verso__resp *rs, int failed)
{
    verso__error(rs, rs->status, "operation %d: %s (nothing was changed)", failed, rs->errmsg);
    if (rs->body->len >= 2) {
        rs->body->len -= 2;
        verso_buf_printf(rs->body, ",\"operation\":%d}}", failed);
    }
}

void verso__route_batch(verso__req *rq, verso__resp *rs)
{
    verso_buf out = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    cJSON *root;
    int rc, failed = 0;

    if (rq->srv->cfg.ngrants && rq->auth.state != 1) {
        verso__error_auth(rs, rq, 401, NULL, VERSO__CAP_WRITE, "writing rows");
        goto done;
    }
    if (parse_body(&doc, rq, rs) < 0)
        goto done;
    root = verso_json_root(doc);
    if (!cJSON_IsArray(root)) {
        verso__error(rs, 400, "expected a JSON array of operations");
        goto done;
    }
    if ((rc = verso_db_begin(rq->srv->db)) < 0) {
        verso__error_orm(rs, rq->srv, rc);
        goto done;
    }
    if ((rc = batch_all(rq, rs, root, &out, &failed)) < 0 ||
        (rc = verso_db_commit(rq->srv->db)) < 0) {
        if (rs->status < 400 && rc == VERSO_ENOMEM)
            verso__error_rc(rs, rq->srv, rc, NULL);
        else if (rs->status < 400)
            verso__error_orm(rs, rq->srv, rc); /* the commit's */
        verso_db_rollback(rq->srv->db);
        batch_failed(rs, failed);
        goto done;
    }
    verso_buf_printf(rs->body, "{\"results\":[%s]}", out.data ? out.data : "");
done:
    verso_json_free(doc);
    verso_buf_free(&out);
}
