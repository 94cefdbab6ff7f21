/*
 * Writes and reads: records from C structs, generic rows by column name,
 * raw SQL. Statements are prepared once per (table, kind, column set) and
 * cached on the table; struct members are bound in place.
 */
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "orm/internal.h"

/* ---- statement cache ---- */

static void cols_list(verso_buf *b, const verso_table *t, uint64_t mask, const char *sep,
                      const char *fmt_prefix)
{
    bool first = true;
    for (size_t c = 0; c < t->ncols; c++) {
        if (!(mask >> c & 1))
            continue;
        verso_buf_puts(b, first ? "" : sep);
        if (fmt_prefix)
            verso_buf_printf(b, "%s=%s%s", t->qcols[c], fmt_prefix, t->qcols[c]);
        else
            verso_buf_puts(b, t->qcols[c]);
        first = false;
    }
}

static void placeholders(verso_buf *b, uint64_t mask)
{
    for (int c = 0; mask; mask &= mask - 1, c++)
        verso_buf_puts(b, c ? ",?" : "?");
}

static void build_sql(verso_buf *b, const verso_table *t, int kind, uint64_t mask)
{
    const char *qi = t->qcols[t->id_idx], *qv = t->qcols[t->ver_idx];
    uint64_t set = mask & ~(1ull << t->id_idx);
    switch (kind) {
    case VERSO__ST_INSERT:
    case VERSO__ST_UPSERT:
        verso_buf_printf(b, "INSERT INTO %s(", t->qname);
        cols_list(b, t, mask, ",", NULL);
        verso_buf_puts(b, ") VALUES (");
        placeholders(b, mask);
        verso_buf_puts(b, ")");
        if (kind == VERSO__ST_INSERT)
            break;
        verso_buf_printf(b, " ON CONFLICT(%s) DO UPDATE SET ", qi);
        cols_list(b, t, set, ",", "excluded.");
        verso_buf_printf(b, " WHERE %s.%s IS NOT excluded.%s", t->qname, qv, qv);
        break;
    case VERSO__ST_UPDATE:
        verso_buf_printf(b, "UPDATE %s SET ", t->qname);
        cols_list(b, t, set, "=?,", NULL);
        verso_buf_printf(b, "=? WHERE %s=?", qi);
        break;
    case VERSO__ST_DELETE:
        verso_buf_printf(b, "DELETE FROM %s WHERE %s=?1", t->qname, qi);
        break;
    case VERSO__ST_GET:
        verso_buf_puts(b, "SELECT ");
        cols_list(b, t, mask, ",", NULL);
        verso_buf_printf(b, " FROM %s WHERE %s=?1", t->qname, qi);
        break;
    default:
        verso_buf_printf(b, "SELECT %s FROM %s WHERE %s=?1", qv, t->qname, qi);
        break;
    }
}

int verso__stmt(sqlite3_stmt **out, verso_db *db, verso_table *t, int kind, uint64_t mask)
{
    verso__stmt_slot *slot = NULL;
    for (size_t i = 0; i < VERSO__STMT_CACHE; i++) {
        verso__stmt_slot *s = &t->slots[i];
        if (s->st && s->kind == kind && s->mask == mask) {
            *out = s->st;
            return 0;
        }
        if (!s->st && !slot)
            slot = s;
    }
    if (!slot) {
        slot = &t->slots[t->next_victim++ % VERSO__STMT_CACHE];
        sqlite3_finalize(slot->st);
        slot->st = NULL;
    }
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    build_sql(&b, t, kind, mask);
    if (!b.data || verso__nomem_count() != mark) {
        verso_buf_free(&b);
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    }
    int src =
        sqlite3_prepare_v3(db->sq, b.data, (int)b.len, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL);
    verso_buf_free(&b);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "preparing");
    slot->kind = kind;
    slot->mask = mask;
    *out = slot->st;
    return 0;
}

void verso__stmt_cache_free(verso_table *t)
{
    for (size_t i = 0; i < VERSO__STMT_CACHE; i++) {
        sqlite3_finalize(t->slots[i].st);
        t->slots[i].st = NULL;
    }
    for (size_t i = 0; i < 2; i++) {
        sqlite3_finalize(t->feed_st[i]);
        t->feed_st[i] = NULL;
    }
}

/* ---- values ---- */

int verso__bind_value(sqlite3_stmt *st, int pos, const verso_value *v)
{
    switch (v->type) {
    case VERSO_INT64:
    case VERSO_BOOL:
        return sqlite3_bind_int64(st, pos, v->u.i);
    case VERSO_DOUBLE:
        return sqlite3_bind_double(st, pos, v->u.d);
    case VERSO_TEXT:
    case VERSO_UUID:
        return sqlite3_bind_text64(st, pos, v->u.b.p ? v->u.b.p : "", v->u.b.n, SQLITE_STATIC,
                                   SQLITE_UTF8);
    case VERSO_BLOB: /* no bytes but a length: that many zeros, filled in later */
        if (!v->u.b.p && v->u.b.n)
            return sqlite3_bind_zeroblob64(st, pos, v->u.b.n);
        return sqlite3_bind_blob64(st, pos, v->u.b.p ? v->u.b.p : "", v->u.b.n, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, pos);
    }
}

static void storage_value(verso_value *out, sqlite3_stmt *st, int i, int stype)
{
    switch (stype) {
    case SQLITE_INTEGER:
        *out = VERSO_VALUE_INT(sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        *out = VERSO_VALUE_DOUBLE(sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT:
        out->type = VERSO_TEXT;
        out->u.b.p = sqlite3_column_text(st, i);
        out->u.b.n = (size_t)sqlite3_column_bytes(st, i);
        break;
    case SQLITE_BLOB:
        out->type = VERSO_BLOB;
        out->u.b.p = sqlite3_column_blob(st, i);
        out->u.b.n = (size_t)sqlite3_column_bytes(st, i);
        break;
    default:
        *out = VERSO_VALUE_NULL;
    }
}

void verso__column_value(verso_value *out, sqlite3_stmt *st, int i, verso_type ct)
{
    int stype = sqlite3_column_type(st, i);
    storage_value(out, st, i, stype);
    if (ct == VERSO_BOOL && stype == SQLITE_INTEGER)
        out->type = VERSO_BOOL;
    else if (ct == VERSO_UUID && stype == SQLITE_TEXT)
        out->type = VERSO_UUID;
}

/* ---- struct members ---- */

static bool field_is_null(const verso_field *f, const char *rec)
{
    if (f->null_offset >= 0 && *(const bool *)(rec + f->null_offset))
        return true;
    if (f->type == VERSO_TEXT)
        return *(char *const *)(rec + f->offset) == NULL;
    if (f->type == VERSO_BLOB)
        return ((const verso_blob *)(rec + f->offset))->data == NULL;
    return false;
}

static int bind_field(verso_db *db, sqlite3_stmt *st, int pos, const verso_field *f,
                      const char *rec)
{
    const char *p = rec + f->offset;
    if (field_is_null(f, rec))
        return sqlite3_bind_null(st, pos);
    switch (f->type) {
    case VERSO_INT64:
        return sqlite3_bind_int64(st, pos, *(const int64_t *)p);
    case VERSO_DOUBLE:
        return sqlite3_bind_double(st, pos, *(const double *)p);
    case VERSO_BOOL:
        return sqlite3_bind_int(st, pos, *(const bool *)p);
    case VERSO_TEXT:
        return sqlite3_bind_text(st, pos, *(char *const *)p, -1, SQLITE_STATIC);
    case VERSO_BLOB: {
        const verso_blob *b = (const verso_blob *)p;
        return sqlite3_bind_blob64(st, pos, b->data, b->size, SQLITE_STATIC);
    }
    default: {
        char *txt = db->uuidtext[pos % VERSO__MAX_COLUMNS];
        uuid_unparse_lower(((const verso_uuid *)p)->bytes, txt);
        return sqlite3_bind_text(st, pos, txt, 36, SQLITE_STATIC);
    }
    }
}

static void *dup_bytes(const void *p, size_t n)
{
    char *d = verso__malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static int read_field(verso_db *db, sqlite3_stmt *st, int i, const verso_field *f, char *rec)
{
    char *p = rec + f->offset;
    bool null = sqlite3_column_type(st, i) == SQLITE_NULL;
    if (f->null_offset >= 0)
        *(bool *)(rec + f->null_offset) = null;
    if (null)
        return 0;
    switch (f->type) {
    case VERSO_INT64:
        *(int64_t *)p = sqlite3_column_int64(st, i);
        return 0;
    case VERSO_DOUBLE:
        *(double *)p = sqlite3_column_double(st, i);
        return 0;
    case VERSO_BOOL:
        *(bool *)p = sqlite3_column_int64(st, i) != 0;
        return 0;
    case VERSO_TEXT: {
        const unsigned char *s = sqlite3_column_text(st, i);
        *(char **)p = dup_bytes(s, (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    case VERSO_BLOB: {
        verso_blob *b = (verso_blob *)p;
        const void *s = sqlite3_column_blob(st, i);
        b->size = (size_t)sqlite3_column_bytes(st, i);
        b->data = dup_bytes(s, b->size);
        if (!b->data)
            b->size = 0;
        return b->data ? 0 : verso__err(db, VERSO_ENOMEM, "out of memory");
    }
    default: {
        const char *s = (const char *)sqlite3_column_text(st, i);
        if (!s || uuid_parse(s, ((verso_uuid *)p)->bytes) != 0)
            return verso__err(db, VERSO_ETYPE, "column %s: \"%s\" is not a UUID", f->name,
                              s ? s : "");
        return 0;
    }
    }
    return *(char **)p ? 0 : verso__err(db, VERSO_ENOMEM, "out of memory");
}

void verso_record_clear(const verso_table_def *def, void *rec)
{
    if (!def || !rec)
        return;
    for (size_t i = 0; i < def->nfields; i++) {
        const verso_field *f = &def->fields[i];
        char *p = (char *)rec + f->offset;
        if (f->type == VERSO_TEXT) {
            verso__free(*(char **)p);
            *(char **)p = NULL;
        } else if (f->type == VERSO_BLOB) {
            verso__free(((verso_blob *)p)->data);
            memset(p, 0, sizeof(verso_blob));
        }
    }
}

/* Fills rec from the current row of st; column k of st is t's column cols[k]. */
int verso__read_record(verso_db *db, sqlite3_stmt *st, const verso_table_def *def,
                       const int *field_of_result, int nresult, void *rec)
{
    int rc = 0;
    for (int k = 0; rc == 0 && k < nresult; k++)
        if (field_of_result[k] >= 0)
            rc = read_field(db, st, k, &def->fields[field_of_result[k]], rec);
    if (rc < 0)
        verso_record_clear(def, rec);
    return rc;
}

/* ---- records from C structs ---- */

static int64_t *rec_i64(const verso_table_def *def, void *rec, int col, const verso_table *t)
{
    return (int64_t *)((char *)rec + def->fields[t->field_of_col[col]].offset);
}

static size_t bit_count(uint64_t m)
{
    size_t n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

static int check_struct_table(verso_table **t, verso_db *db, const verso_table_def *def,
                              const void *rec, bool writing)
{
    int rc = verso__table_of_def(t, db, def);
    if (rc == 0 && !rec)
        rc = verso__err(db, VERSO_EINVAL, "record is NULL");
    if (rc == 0 && writing && (*t)->replicated && !db->applying)
        rc = verso__err(db, VERSO_EREADONLY, "table %s is replicated (read-only here)", def->name);
    if (rc == 0 && bit_count((*t)->def_mask) != def->nfields)
        rc = verso__err(db, VERSO_ESCHEMA, "table %s lacks columns of its declaration", def->name);
    return rc;
}

static int bind_record(verso_db *db, sqlite3_stmt *st, const verso_table *t, uint64_t mask,
                       const void *rec, int64_t id, int64_t version)
{
    int pos = 1, rc = 0;
    for (size_t c = 0; rc == 0 && c < t->ncols; c++) {
        if (!(mask >> c & 1))
            continue;
        if ((int)c == t->id_idx)
            rc = id ? sqlite3_bind_int64(st, pos, id) : sqlite3_bind_null(st, pos);
        else if ((int)c == t->ver_idx)
            rc = sqlite3_bind_int64(st, pos, version);
        else
            rc = bind_field(db, st, pos, &t->def->fields[t->field_of_col[c]], rec);
        pos++;
    }
    return rc == SQLITE_OK ? pos : verso__sqlerr(db, rc, "binding");
}

static int step_write(verso_db *db, sqlite3_stmt *st, const char *table)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_DONE || src == SQLITE_ROW)
        return 0;
    return verso__sqlerr(db, src, table);
}

/* After a write, the row it touched: 0 rows means the row is missing, or a
 * trigger said RAISE(IGNORE). */
static int check_written(int64_t *id, verso_db *db, const verso_table *t, verso_change_kind kind)
{
    if (sqlite3_changes(db->sq) == 0)
        return kind == VERSO_CHANGE_INSERT
                   ? verso__err(db, VERSO_ECONSTRAINT, "%s: a trigger ignored the insert", t->name)
                   : verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name,
                                (long long)*id);
    if (!*id)
        *id = sqlite3_last_insert_rowid(db->sq); /* the trigger programs' inserts do not count */
    return 0;
}

int verso__row_version(int64_t *version, bool *found, verso_db *db, verso_table *t, int64_t id)
{
    sqlite3_stmt *st;
    int rc = verso__stmt(&st, db, t, VERSO__ST_VERSION, 0);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (*found)
        *version = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, t->name);
}

/* An insert or update of a table with triggers of its own, run with the
 * triggers live. Its version (bound as db->head + 1) is reserved in
 * _verso_head first, so rows the user's triggers write to tracked tables get
 * the versions after it; the counter is reloaded after the statement. */
static int write_fired(int64_t *id, int64_t *version, verso_db *db, verso_table *t,
                       sqlite3_stmt *st, verso_change_kind kind)
{
    verso__fired x;
    int64_t lo = db->head;
    db->head = lo + 1;
    int rc = verso__fire_begin(&x, db, lo);
    if (rc < 0) {
        db->head = lo;
        return rc;
    }
    rc = step_write(db, st, t->name);
    if (rc == 0)
        rc = check_written(id, db, t, kind);
    rc = verso__fire_end(&x, rc, t, *id, kind);
    *version = lo + 1;
    bool found;
    if (rc == 0 && db->head > lo + 1) /* a trigger may have written this row again */
        rc = verso__row_version(version, &found, db, t, *id);
    return rc;
}

/* Steps a bound insert or update of row *id (0: an insert's new rowid) whose
 * version is bound as db->head + 1; *version receives it. */
static int write_row(int64_t *id, int64_t *version, verso_db *db, verso_table *t, sqlite3_stmt *st,
                     verso_change_kind kind)
{
    if (db->trig_on && t->user_triggers)
        return write_fired(id, version, db, t, st, kind);
    int rc = step_write(db, st, t->name);
    if (rc == 0)
        rc = check_written(id, db, t, kind);
    if (rc < 0)
        return rc;
    *version = ++db->head;
    return verso__record_change(db, t, *id, *version, kind);
}

static int insert_steps(verso_db *db, verso_table *t, const verso_table_def *def, void *rec)
{
    sqlite3_stmt *st;
    int64_t *idp = rec_i64(def, rec, t->id_idx, t);
    int64_t id = *idp, version = db->head + 1;
    int rc = verso__stmt(&st, db, t, VERSO__ST_INSERT, t->def_mask);
    if (rc == 0 && (rc = bind_record(db, st, t, t->def_mask, rec, id, version)) > 0)
        rc = write_row(&id, &version, db, t, st, VERSO_CHANGE_INSERT);
    if (rc < 0)
        return rc;
    *idp = id;
    *rec_i64(def, rec, t->ver_idx, t) = version;
    return 0;
}

int verso_record_insert(verso_db *db, const verso_table_def *def, void *rec)
{
    verso_table *t;
    bool implicit;
    int rc = check_struct_table(&t, db, def, rec, true);
    if (rc < 0 || (rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = verso__table_current(&t, db)) == 0)
        rc = insert_steps(db, t, def, rec);
    return verso__wend(db, implicit, rc);
}

int verso_record_get(void *rec, verso_db *db, const verso_table_def *def, int64_t id)
{
    verso_table *t;
    sqlite3_stmt *st;
    int map[VERSO__MAX_COLUMNS], n = 0, src;
    int rc = check_struct_table(&t, db, def, rec, false);
    if (rc == 0)
        rc = verso__stmt(&st, db, t, VERSO__ST_GET, t->def_mask);
    if (rc < 0)
        return rc;
    for (size_t c = 0; c < t->ncols; c++)
        if (t->def_mask >> c & 1)
            map[n++] = t->field_of_col[c];
    sqlite3_bind_int64(st, 1, id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        rc = verso__read_record(db, st, def, map, n, rec);
    else if (src == SQLITE_DONE)
        rc = verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)id);
    else
        rc = verso__sqlerr(db, src, t->name);
    sqlite3_reset(st);
    return rc;
}

int verso_record_mask(uint64_t *out, const verso_table_def *def, const char *const *names, size_t n)
{
    *out = 0;
    if (!def || (n && !names))
        return VERSO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t f = 0;
        while (f < def->nfields && (!names[i] || sqlite3_stricmp(def->fields[f].name, names[i])))
            f++;
        if (f == def->nfields)
            return VERSO_EINVAL;
        *out |= 1ull << f;
    }
    return 0;
}

static uint64_t update_mask(const verso_table *t, const verso_table_def *def, uint64_t fmask)
{
    uint64_t m = 0;
    if (!fmask)
        return t->def_mask;
    for (size_t f = 0; f < def->nfields && f < 64; f++)
        if (fmask >> f & 1)
            m |= 1ull << t->col_of_field[f];
    return m | 1ull << t->ver_idx;
}

static int update_steps(verso_db *db, verso_table *t, const verso_table_def *def, void *rec,
                        uint64_t fmask)
{
    sqlite3_stmt *st;
    uint64_t mask = update_mask(t, def, fmask) | 1ull << t->ver_idx;
    int64_t id = *rec_i64(def, rec, t->id_idx, t), version = db->head + 1;
    int pos, rc = verso__stmt(&st, db, t, VERSO__ST_UPDATE, mask & ~(1ull << t->id_idx));
    if (rc < 0)
        return rc;
    if ((pos = bind_record(db, st, t, mask & ~(1ull << t->id_idx), rec, id, version)) < 0)
        return pos;
    sqlite3_bind_int64(st, pos, id);
    if ((rc = write_row(&id, &version, db, t, st, VERSO_CHANGE_UPDATE)) == 0)
        *rec_i64(def, rec, t->ver_idx, t) = version;
    return rc;
}

int verso_record_update(verso_db *db, const verso_table_def *def, void *rec, uint64_t mask)
{
    verso_table *t;
    bool implicit;
    int rc = check_struct_table(&t, db, def, rec, true);
    if (rc < 0 || (rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = verso__table_current(&t, db)) == 0)
        rc = update_steps(db, t, def, rec, mask);
    return verso__wend(db, implicit, rc);
}

/* ---- deletes ---- */

static int check_expected(verso_db *db, verso_table *t, int64_t id, int64_t expect)
{
    int64_t have = 0;
    bool found;
    int rc = verso__row_version(&have, &found, db, t, id);
    if (rc < 0)
        return rc;
    if (!found)
        return verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)id);
    if (expect > 0 && have != expect)
        return verso__err(db, VERSO_ECONFLICT, "%s: row %lld has version %lld, not %lld", t->name,
                          (long long)id, (long long)have, (long long)expect);
    return 0;
}

/* With triggers on, the tracking trigger writes the tombstone (and the
 * user's triggers may write more): the counter is flushed first, reloaded
 * after. */
static int delete_fired(verso_db *db, verso_table *t, sqlite3_stmt *st, int64_t id)
{
    verso__fired x;
    int rc = verso__fire_begin(&x, db, db->head);
    if (rc < 0)
        return rc;
    rc = step_write(db, st, t->name);
    if (rc == 0 && sqlite3_changes(db->sq) == 0)
        rc = verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)id);
    return verso__fire_end(&x, rc, t, id, VERSO_CHANGE_DELETE);
}

static int delete_steps(verso_db *db, verso_table *t, int64_t id, int64_t expect)
{
    sqlite3_stmt *st;
    int rc = expect > 0 ? check_expected(db, t, id, expect) : 0;
    if (rc == 0)
        rc = verso__stmt(&st, db, t, VERSO__ST_DELETE, 0);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (db->trig_on)
        return delete_fired(db, t, st, id);
    if ((rc = step_write(db, st, t->name)) < 0)
        return rc;
    if (sqlite3_changes(db->sq) == 0)
        return verso__err(db, VERSO_ENOTFOUND, "%s: no row with id %lld", t->name, (long long)id);
    if ((rc = verso__tomb_add(db, t, id, db->head + 1)) < 0)
        return rc;
    db->head++;
    return verso__record_change(db, t, id, db->head, VERSO_CHANGE_DELETE);
}

int verso__tombstone(verso_db *db, const verso_table *t, int64_t id, int64_t version)
{
    sqlite3_stmt *st = db->q[VERSO__Q_TOMBSTONE_REP];
    sqlite3_bind_int64(st, 1, version);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_int64(st, 4, verso_now_ms());
    return step_write(db, st, "writing a tombstone");
}

int verso__tomb_add(verso_db *db, const verso_table *t, int64_t id, int64_t version)
{
    int rc = db->ntombs == VERSO__TOMB_BATCH ? verso__tomb_flush(db) : 0;
    if (rc == 0)
        db->tombs[db->ntombs++] = (struct verso__tomb){version, id, verso_now_ms(), t->name};
    return rc;
}

static int tomb_write(verso_db *db)
{
    const struct verso__tomb *q = db->tombs;
    sqlite3_stmt *st = db->q[VERSO__Q_TOMBSTONE_32];
    size_t i = 0, n = db->ntombs;
    int rc = 0;
    if (n == VERSO__TOMB_BATCH) {
        for (; i < n; i++) {
            sqlite3_bind_int64(st, (int)(4 * i + 1), q[i].version);
            sqlite3_bind_text(st, (int)(4 * i + 2), q[i].tbl, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, (int)(4 * i + 3), q[i].id);
            sqlite3_bind_int64(st, (int)(4 * i + 4), q[i].at);
        }
        return step_write(db, st, "writing tombstones");
    }
    st = db->q[VERSO__Q_TOMBSTONE];
    for (; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, q[i].version);
        sqlite3_bind_text(st, 2, q[i].tbl, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, q[i].id);
        sqlite3_bind_int64(st, 4, q[i].at);
        rc = step_write(db, st, "writing a tombstone");
    }
    return rc;
}

int verso__tomb_flush(verso_db *db)
{
    if (!db->ntombs)
        return 0;
    int rc = tomb_write(db);
    db->ntombs = 0;
    if (rc < 0)
        verso__txn_rollback(db); /* never leave a row deleted without its tombstone */
    return rc;
}

static int delete_in(verso_db *db, verso_table *t, int64_t id, int64_t expect)
{
    bool implicit;
    int rc;
    if (t->replicated)
        return verso__err(db, VERSO_EREADONLY, "table %s is replicated (read-only here)", t->name);
    if ((rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = verso__table_current(&t, db)) == 0)
        rc = delete_steps(db, t, id, expect);
    return verso__wend(db, implicit, rc);
}

int verso_record_delete(verso_db *db, const verso_table_def *def, int64_t id)
{
    verso_table *t;
    int rc = verso__table_of_def(&t, db, def);
    return rc < 0 ? rc : delete_in(db, t, id, 0);
}

int verso_row_delete(verso_db *db, const char *table, int64_t id, int64_t expect_version)
{
    verso_table *t;
    int rc = verso__table_find(&t, db, table);
    return rc < 0 ? rc : delete_in(db, t, id, expect_version);
}

/* ---- generic rows ---- */

typedef struct row_args {
    uint64_t mask;
    int valmap[VERSO__MAX_COLUMNS]; /* value index per column, -1 */
    int64_t id;
} row_args;

/* Resolves (column, value) pairs: names checked, types checked, id extracted. */
static int resolve_row(row_args *a, verso_db *db, const verso_table *t, const char *const *cols,
                       const verso_value *vals, size_t n)
{
    int rc = 0;
    memset(a, 0, sizeof *a);
    memset(a->valmap, -1, sizeof a->valmap);
    if (n && (!cols || !vals))
        return verso__err(db, VERSO_EINVAL, "columns or values is NULL");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int c = verso_table_column_index(t, cols[i]);
        if (c < 0)
            return verso__err(db, VERSO_EINVAL, "table %s has no column \"%s\"", t->name,
                              cols[i] ? cols[i] : "(null)");
        if (a->mask >> c & 1)
            return verso__err(db, VERSO_EINVAL, "column %s given twice", t->cols[c].name);
        if (c == t->ver_idx && !db->applying)
            return verso__err(db, VERSO_EINVAL, "column %s is the version; it cannot be written",
                              t->cols[c].name);
        rc = verso__value_check(db, t, (size_t)c, &vals[i]);
        if (c == t->id_idx && rc == 0) {
            a->id = vals[i].type == VERSO_NULL ? 0 : vals[i].u.i;
            continue;
        }
        a->mask |= 1ull << c;
        a->valmap[c] = (int)i;
    }
    return rc;
}

/* The write lock is held: if the schema check of the transaction replaced t,
 * the pairs are resolved again against its current object. */
static int current_row(verso_table **t, row_args *a, verso_db *db, const char *const *cols,
                       const verso_value *vals, size_t n)
{
    if (!(*t)->retired)
        return 0;
    int rc = verso__table_current(t, db);
    return rc < 0 ? rc : resolve_row(a, db, *t, cols, vals, n);
}

static int bind_row(verso_db *db, sqlite3_stmt *st, const verso_table *t, const row_args *a,
                    const verso_value *vals, int64_t version)
{
    int pos = 1, src = SQLITE_OK;
    for (size_t c = 0; src == SQLITE_OK && c < t->ncols; c++) {
        if (!(a->mask >> c & 1))
            continue;
        if ((int)c == t->id_idx)
            src = a->id ? sqlite3_bind_int64(st, pos, a->id) : sqlite3_bind_null(st, pos);
        else if ((int)c == t->ver_idx && a->valmap[c] < 0)
            src = sqlite3_bind_int64(st, pos, version);
        else
            src = verso__bind_value(st, pos, &vals[a->valmap[c]]);
        pos++;
    }
    return src == SQLITE_OK ? pos : verso__sqlerr(db, src, "binding");
}

static int row_insert_steps(int64_t *id, int64_t *ver, verso_db *db, verso_table *t, row_args *a,
                            const verso_value *vals)
{
    sqlite3_stmt *st;
    int64_t version = db->head + 1;
    a->mask |= 1ull << t->id_idx | 1ull << t->ver_idx;
    int rc = verso__stmt(&st, db, t, VERSO__ST_INSERT, a->mask);
    *id = a->id;
    if (rc == 0 && (rc = bind_row(db, st, t, a, vals, version)) > 0)
        rc = write_row(id, &version, db, t, st, VERSO_CHANGE_INSERT);
    *ver = version;
    return rc;
}

int verso_row_insert(int64_t *out_id, int64_t *out_version, verso_db *db, const char *table,
                     const char *const *columns, const verso_value *values, size_t n)
{
    verso_table *t;
    row_args a;
    bool implicit;
    int64_t id = 0, ver = 0;
    int rc = verso__table_find(&t, db, table);
    if (rc == 0 && t->replicated)
        rc = verso__err(db, VERSO_EREADONLY, "table %s is replicated (read-only here)", t->name);
    if (rc == 0)
        rc = resolve_row(&a, db, t, columns, values, n);
    if (rc < 0 || (rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = current_row(&t, &a, db, columns, values, n)) == 0)
        rc = row_insert_steps(&id, &ver, db, t, &a, values);
    rc = verso__wend(db, implicit, rc);
    if (rc == 0 && out_id)
        *out_id = id;
    if (rc == 0 && out_version)
        *out_version = ver;
    return rc;
}

static int row_update_steps(int64_t *ver, verso_db *db, verso_table *t, row_args *a,
                            const verso_value *vals, int64_t id, int64_t expect)
{
    sqlite3_stmt *st;
    int64_t version = db->head + 1;
    int pos, rc = check_expected(db, t, id, expect);
    a->mask |= 1ull << t->ver_idx;
    if (rc == 0)
        rc = verso__stmt(&st, db, t, VERSO__ST_UPDATE, a->mask);
    if (rc < 0)
        return rc;
    if ((pos = bind_row(db, st, t, a, vals, version)) < 0)
        return pos;
    sqlite3_bind_int64(st, pos, id);
    rc = write_row(&id, &version, db, t, st, VERSO_CHANGE_UPDATE);
    *ver = version;
    return rc;
}

int verso_row_update(int64_t *out_version, verso_db *db, const char *table, int64_t id,
                     const char *const *columns, const verso_value *values, size_t n,
                     int64_t expect_version)
{
    verso_table *t;
    row_args a;
    bool implicit;
    int64_t ver = 0;
    int rc = verso__table_find(&t, db, table);
    if (rc == 0 && t->replicated)
        rc = verso__err(db, VERSO_EREADONLY, "table %s is replicated (read-only here)", t->name);
    if (rc == 0)
        rc = resolve_row(&a, db, t, columns, values, n);
    if (rc == 0 && a.id && a.id != id)
        rc = verso__err(db, VERSO_EINVAL, "the id of a row cannot be changed (%lld to %lld)",
                        (long long)id, (long long)a.id);
    if (rc < 0 || (rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    if ((rc = current_row(&t, &a, db, columns, values, n)) == 0)
        rc = row_update_steps(&ver, db, t, &a, values, id, expect_version);
    rc = verso__wend(db, implicit, rc);
    if (rc == 0 && out_version)
        *out_version = ver;
    return rc;
}

/* Exposed for apply.c: binds a resolved row with explicit id and version. */
int verso__row_upsert(verso_db *db, verso_table *t, const char *const *cols,
                      const verso_value *vals, size_t n, int64_t *id, int64_t *version)
{
    row_args a;
    sqlite3_stmt *st;
    int rc = resolve_row(&a, db, t, cols, vals, n);
    if (rc == 0 &&
        (!a.id || a.valmap[t->ver_idx] < 0 || vals[a.valmap[t->ver_idx]].type != VERSO_INT64))
        rc = verso__err(db, VERSO_EINVAL, "%s: an applied row needs its id and version", t->name);
    if (rc < 0)
        return rc;
    *id = a.id;
    *version = vals[a.valmap[t->ver_idx]].u.i;
    a.mask |= 1ull << t->id_idx;
    if ((rc = verso__stmt(&st, db, t, VERSO__ST_UPSERT, a.mask)) == 0 &&
        (rc = bind_row(db, st, t, &a, vals, 0)) > 0)
        rc = step_write(db, st, t->name);
    return rc;
}
