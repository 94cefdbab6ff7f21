/* Table descriptions, type mapping, the runtime schema, tracking and migration. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "orm/internal.h"

/* ---- identifiers and types ---- */

static bool ident_chars_ok(const char *s)
{
    size_t n = 0;
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (; s[n]; n++)
        if (!(isalnum((unsigned char)s[n]) || s[n] == '_'))
            return false;
    return n <= 64;
}

bool verso__ident_ok(const char *s)
{
    return ident_chars_ok(s) && s[0] != '_' && sqlite3_strnicmp(s, "sqlite_", 7) != 0;
}

/* Names of existing tables and columns put under tracking may start with '_'. */
static bool ident_loose_ok(const char *s)
{
    return ident_chars_ok(s) && sqlite3_strnicmp(s, "_verso", 6) != 0 &&
           sqlite3_strnicmp(s, "sqlite_", 7) != 0;
}

char *verso__quote(const char *s)
{
    size_t n = strlen(s), k = 0;
    char *q = verso__malloc(2 * n + 3);
    if (!q)
        return NULL;
    q[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            q[k++] = '"';
        q[k++] = s[i];
    }
    q[k++] = '"';
    q[k] = '\0';
    return q;
}

static const struct {
    const char *decl;
    verso_type type;
} exact_types[] = {
    {"INTEGER", VERSO_INT64}, {"REAL", VERSO_DOUBLE},  {"TEXT", VERSO_TEXT},
    {"BLOB", VERSO_BLOB},     {"BOOLEAN", VERSO_BOOL}, {"UUID TEXT", VERSO_UUID},
};

static bool contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (sqlite3_strnicmp(s, needle, (int)n) == 0)
            return true;
    return false;
}

verso_type verso__decl_type(const char *decl)
{
    if (!decl || !decl[0])
        return VERSO_ANY;
    for (size_t i = 0; i < sizeof exact_types / sizeof exact_types[0]; i++)
        if (sqlite3_stricmp(decl, exact_types[i].decl) == 0)
            return exact_types[i].type;
    if (contains_ci(decl, "INT"))
        return VERSO_INT64;
    if (contains_ci(decl, "CHAR") || contains_ci(decl, "CLOB") || contains_ci(decl, "TEXT"))
        return VERSO_TEXT;
    if (contains_ci(decl, "BLOB"))
        return VERSO_BLOB;
    if (contains_ci(decl, "REAL") || contains_ci(decl, "FLOA") || contains_ci(decl, "DOUB"))
        return VERSO_DOUBLE;
    return VERSO_ANY;
}

const char *verso__type_decl(verso_type t)
{
    for (size_t i = 0; i < sizeof exact_types / sizeof exact_types[0]; i++)
        if (exact_types[i].type == t)
            return exact_types[i].decl;
    return "";
}

/* ---- table descriptions ---- */

static size_t type_size(verso_type t)
{
    switch (t) {
    case VERSO_INT64:
        return sizeof(int64_t);
    case VERSO_DOUBLE:
        return sizeof(double);
    case VERSO_TEXT:
        return sizeof(char *);
    case VERSO_BLOB:
        return sizeof(verso_blob);
    case VERSO_BOOL:
        return sizeof(bool);
    case VERSO_UUID:
        return sizeof(verso_uuid);
    default:
        return 0;
    }
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), VERSO_ESCHEMA)

static int check_field(const verso_table_def *def, size_t i, char *why, size_t whylen)
{
    const verso_field *f = &def->fields[i];
    const unsigned known = VERSO_FIELD_ID | VERSO_FIELD_VERSION | VERSO_FIELD_NOTNULL |
                           VERSO_FIELD_INDEX | VERSO_FIELD_UNIQUE;
    if (!verso__ident_ok(f->name))
        return WHY("table %s: field %zu: bad column name \"%s\" (want [A-Za-z][A-Za-z0-9_]*, "
                   "at most 64 characters)",
                   def->name, i, f->name ? f->name : "(null)");
    size_t want = type_size(f->type);
    if (!want)
        return WHY("table %s: column %s: type %d is not a column type", def->name, f->name,
                   (int)f->type);
    if (f->size != want)
        return WHY("table %s: column %s: member size %zu does not match type %s (size %zu)",
                   def->name, f->name, f->size, verso_type_name(f->type), want);
    if (f->offset > def->struct_size || f->size > def->struct_size - f->offset)
        return WHY("table %s: column %s: offset %zu is outside the struct (size %zu)", def->name,
                   f->name, f->offset, def->struct_size);
    if (f->flags & ~known)
        return WHY("table %s: column %s: unknown flags 0x%x", def->name, f->name,
                   f->flags & ~known);
    if ((f->flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION)) ==
        (VERSO_FIELD_ID | VERSO_FIELD_VERSION))
        return WHY("table %s: column %s is marked both id and version", def->name, f->name);
    if ((f->flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION)) && f->type != VERSO_INT64)
        return WHY("table %s: column %s: id and version fields must be VERSO_INT64", def->name,
                   f->name);
    if ((f->flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION)) && f->null_offset >= 0)
        return WHY("table %s: column %s: id and version fields cannot be nullable", def->name,
                   f->name);
    if (f->null_offset >= 0 && ((size_t)f->null_offset > def->struct_size ||
                                sizeof(bool) > def->struct_size - (size_t)f->null_offset))
        return WHY("table %s: column %s: null_offset %td is outside the struct", def->name, f->name,
                   f->null_offset);
    for (size_t j = 0; j < i; j++)
        if (sqlite3_stricmp(def->fields[j].name, f->name) == 0)
            return WHY("table %s: duplicate column %s (fields %zu and %zu)", def->name, f->name, j,
                       i);
    return 0;
}

int verso_table_def_check(const verso_table_def *def, char *why, size_t whylen)
{
    char dummy[1];
    size_t nid = 0, nver = 0;
    int rc;
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = '\0';
    if (!def)
        return WHY("table description is NULL");
    if (!verso__ident_ok(def->name))
        return WHY("bad table name \"%s\" (want [A-Za-z][A-Za-z0-9_]*, at most 64 characters, "
                   "not starting with sqlite_)",
                   def->name ? def->name : "(null)");
    if (!def->fields || def->nfields == 0)
        return WHY("table %s has no fields", def->name);
    if (def->nfields > VERSO__MAX_COLUMNS)
        return WHY("table %s has %zu fields (at most %d)", def->name, def->nfields,
                   VERSO__MAX_COLUMNS);
    for (size_t i = 0; i < def->nfields; i++) {
        if ((rc = check_field(def, i, why, whylen)) < 0)
            return rc;
        nid += !!(def->fields[i].flags & VERSO_FIELD_ID);
        nver += !!(def->fields[i].flags & VERSO_FIELD_VERSION);
    }
    if (nid != 1)
        return WHY("table %s has %zu id fields (need exactly one VERSO_FIELD_ID)", def->name, nid);
    if (nver != 1)
        return WHY("table %s has %zu version fields (need exactly one VERSO_FIELD_VERSION)",
                   def->name, nver);
    return 0;
}

static int def_field_index(const verso_table_def *def, unsigned flag)
{
    for (size_t i = 0; i < def->nfields; i++)
        if (def->fields[i].flags & flag)
            return (int)i;
    return -1;
}

/* ---- the runtime schema ---- */

static void table_free(verso_table *t)
{
    if (!t)
        return;
    verso__stmt_cache_free(t);
    for (size_t i = 0; i < t->ncols; i++) {
        verso__free((char *)t->cols[i].name);
        verso__free(t->qcols[i]);
    }
    verso__free(t->cols);
    verso__free(t->qcols);
    verso__free(t->name);
    verso__free(t->qname);
    verso__free(t);
}

static void bind_def(verso_table *t, const verso_table_def *def)
{
    t->def = def;
    t->def_mask = 0;
    memset(t->field_of_col, -1, sizeof t->field_of_col);
    for (size_t f = 0; f < def->nfields; f++) {
        t->col_of_field[f] = -1;
        for (size_t c = 0; c < t->ncols; c++) {
            if (sqlite3_stricmp(t->cols[c].name, def->fields[f].name) == 0) {
                t->col_of_field[f] = (int)c;
                t->field_of_col[c] = (signed char)f;
                t->def_mask |= 1ull << c;
            }
        }
    }
}

static int add_column(verso_db *db, verso_table *t, sqlite3_stmt *info, const char *idc,
                      const char *verc)
{
    if (t->ncols >= VERSO__MAX_COLUMNS)
        return verso__err(db, VERSO_ESCHEMA, "table %s has more than %d columns", t->name,
                          VERSO__MAX_COLUMNS);
    const char *name = (const char *)sqlite3_column_text(info, 0);
    const char *decl = (const char *)sqlite3_column_text(info, 1);
    verso_column *c = &t->cols[t->ncols];
    c->name = verso__strdup(name ? name : "");
    t->qcols[t->ncols] = verso__quote(name ? name : "");
    if (!c->name || !t->qcols[t->ncols]) {
        verso__free((char *)c->name);
        verso__free(t->qcols[t->ncols]);
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    }
    c->type = verso__decl_type(decl);
    c->flags = sqlite3_column_int(info, 2) ? VERSO_FIELD_NOTNULL : 0;
    if (sqlite3_stricmp(c->name, idc) == 0) {
        c->flags |= VERSO_FIELD_ID;
        c->type = VERSO_INT64;
        t->id_idx = (int)t->ncols;
    } else if (sqlite3_stricmp(c->name, verc) == 0) {
        c->flags |= VERSO_FIELD_VERSION;
        c->type = VERSO_INT64;
        t->ver_idx = (int)t->ncols;
    }
    t->ncols++;
    return 0;
}

static int load_columns(verso_db *db, verso_table *t, const char *idc, const char *verc)
{
    sqlite3_stmt *info = NULL;
    int rc = 0, src;
    t->cols = verso__calloc(VERSO__MAX_COLUMNS, sizeof *t->cols);
    t->qcols = verso__calloc(VERSO__MAX_COLUMNS, sizeof *t->qcols);
    if (!t->cols || !t->qcols)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    src = sqlite3_prepare_v2(db->sq, "SELECT name, type, \"notnull\" FROM pragma_table_info(?1)",
                             -1, &info, NULL);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "reading table columns");
    sqlite3_bind_text(info, 1, t->name, -1, SQLITE_STATIC);
    while (rc == 0 && (src = sqlite3_step(info)) == SQLITE_ROW)
        rc = add_column(db, t, info, idc, verc);
    if (rc == 0 && src != SQLITE_DONE)
        rc = verso__sqlerr(db, src, "reading table columns");
    sqlite3_finalize(info);
    if (rc == 0 && (t->id_idx < 0 || t->ver_idx < 0))
        rc = verso__err(db, VERSO_ESCHEMA, "tracked table %s lacks its id or version column",
                        t->name);
    return rc;
}

static const verso_table_def *find_def(verso_db *db, const char *name)
{
    for (size_t i = 0; i < db->ndefs; i++)
        if (strcmp(db->defs[i]->name, name) == 0)
            return db->defs[i];
    return NULL;
}

static int table_load(verso_table **out, verso_db *db, sqlite3_stmt *row)
{
    const char *name = (const char *)sqlite3_column_text(row, 0);
    const char *idc = (const char *)sqlite3_column_text(row, 1);
    const char *verc = (const char *)sqlite3_column_text(row, 2);
    verso_table *t = verso__calloc(1, sizeof *t);
    int rc = 0;
    *out = NULL;
    if (!t)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    if (!name || !idc || !verc) {
        verso__free(t);
        return verso__err(db, VERSO_ESCHEMA, "bad _verso_tables row");
    }
    t->id_idx = t->ver_idx = -1;
    t->replicated = sqlite3_column_int(row, 3) != 0;
    t->name = verso__strdup(name);
    t->qname = verso__quote(name);
    if (!t->name || !t->qname)
        rc = verso__err(db, VERSO_ENOMEM, "out of memory");
    if (rc == 0)
        rc = load_columns(db, t, idc, verc);
    const verso_table_def *def = rc == 0 ? find_def(db, name) : NULL;
    if (def)
        bind_def(t, def);
    if (rc < 0) {
        table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int read_schema_version(int64_t *out, verso_db *db)
{
    sqlite3_stmt *st = db->q[VERSO__Q_SCHEMA_VER];
    sqlite3_reset(st);
    int src = sqlite3_step(st);
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return src == SQLITE_ROW ? 0 : verso__sqlerr(db, src, "reading schema version");
}

static bool table_same(const verso_table *a, const verso_table *b)
{
    if (strcmp(a->name, b->name) != 0 || a->replicated != b->replicated || a->ncols != b->ncols ||
        a->id_idx != b->id_idx || a->ver_idx != b->ver_idx || a->def != b->def)
        return false;
    for (size_t c = 0; c < a->ncols; c++)
        if (strcmp(a->cols[c].name, b->cols[c].name) != 0 || a->cols[c].type != b->cols[c].type ||
            a->cols[c].flags != b->cols[c].flags)
            return false;
    return true;
}

/* Keeps the current object of every table that did not change (its pointer
 * and statements stay valid), and drops it from db->tables. */
static void keep_unchanged(verso_db *db, verso_table **tabs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < db->ntables; j++) {
            if (db->tables[j] && table_same(db->tables[j], tabs[i])) {
                table_free(tabs[i]);
                tabs[i] = db->tables[j];
                db->tables[j] = NULL;
                break;
            }
        }
    }
}

/* The tables left in db->tables were replaced or dropped: they are kept until
 * close, without their statements, so pointers handed out stay valid. The
 * caller has made room for them in db->retired. */
static void retire_tables(verso_db *db)
{
    for (size_t i = 0; i < db->ntables; i++) {
        if (!db->tables[i])
            continue;
        verso__stmt_cache_free(db->tables[i]);
        db->tables[i]->retired = true;
        db->retired[db->nretired++] = db->tables[i];
    }
    verso__free(db->tables);
    db->tables = NULL;
    db->ntables = 0;
    db->last_def_table = NULL;
}

static int read_tables(verso_table ***out, size_t *nout, verso_db *db)
{
    sqlite3_stmt *st = NULL;
    verso_table **tabs = NULL;
    size_t n = 0;
    int rc = 0, src;
    *out = NULL;
    *nout = 0;
    src = sqlite3_prepare_v2(db->sq,
                             "SELECT name, id_column, version_column, replicated FROM "
                             "_verso_tables ORDER BY name",
                             -1, &st, NULL);
    if (src != SQLITE_OK)
        return verso__sqlerr(db, src, "reading tracked tables");
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        verso_table **g = verso__realloc(tabs, (n + 1) * sizeof *g);
        if (!g) {
            rc = verso__err(db, VERSO_ENOMEM, "out of memory");
            break;
        }
        tabs = g;
        if ((rc = table_load(&tabs[n], db, st)) == 0)
            n++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = verso__sqlerr(db, src, "reading tracked tables");
    sqlite3_finalize(st);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            table_free(tabs[i]);
        verso__free(tabs);
        return rc;
    }
    *out = tabs;
    *nout = n;
    return 0;
}

int verso__schema_load(verso_db *db)
{
    verso_table **tabs = NULL;
    size_t n = 0;
    int64_t version;
    int rc = read_schema_version(&version, db);
    if (rc == 0)
        rc = read_tables(&tabs, &n, db);
    if (rc < 0)
        return rc;
    /* Reserve the retired slots first: past this point nothing fails. */
    verso_table **r = verso__realloc(db->retired, (db->nretired + db->ntables + 1) * sizeof *r);
    if (!r) {
        for (size_t i = 0; i < n; i++)
            table_free(tabs[i]);
        verso__free(tabs);
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    }
    db->retired = r;
    keep_unchanged(db, tabs, n);
    retire_tables(db);
    db->tables = tabs;
    db->ntables = n;
    db->schema_version = version;
    db->schema_in_txn = db->schema_in_txn || db->txn;
    return verso__detect_triggers(db);
}

void verso__schema_free(verso_db *db)
{
    for (size_t i = 0; i < db->ntables; i++)
        table_free(db->tables[i]);
    for (size_t i = 0; i < db->nretired; i++)
        table_free(db->retired[i]);
    verso__free(db->tables);
    verso__free(db->retired);
    db->tables = db->retired = NULL;
    db->ntables = db->nretired = 0;
}

int verso__schema_recheck(verso_db *db)
{
    int64_t v;
    int rc = read_schema_version(&v, db);
    if (rc == 0 && v != db->schema_version)
        rc = verso__schema_load(db);
    return rc;
}

int verso__schema_check(verso_db *db)
{
    return db->txn ? 0 : verso__schema_recheck(db);
}

/* A foreign key action (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT)
 * of a tracked table changes its rows when the parent is written, and SQLite
 * runs such actions even with triggers off: writes to the parent then need
 * trigger mode so the tracking triggers version the child rows. */
static int detect_fk_actions(verso_db *db, bool *any)
{
    static const char sql[] =
        "SELECT \"table\" FROM pragma_foreign_key_list(?1) WHERE on_delete NOT IN "
        "('NO ACTION', 'RESTRICT') OR on_update NOT IN ('NO ACTION', 'RESTRICT')";
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    for (size_t i = 0; src == SQLITE_OK && i < db->ntables; i++) {
        sqlite3_bind_text(st, 1, db->tables[i]->name, -1, SQLITE_STATIC);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            const char *parent = (const char *)sqlite3_column_text(st, 0);
            verso_table *pt = parent ? verso__table_lookup(db, parent) : NULL;
            if (pt)
                pt->user_triggers = *any = true;
        }
        sqlite3_reset(st);
        src = src == SQLITE_DONE ? SQLITE_OK : src;
    }
    sqlite3_finalize(st);
    return src == SQLITE_OK ? SQLITE_DONE : src;
}

/* Triggers of the user on tracked tables: any trigger whose name does not
 * start with _verso_, in the file or made TEMP on this connection; and
 * foreign key actions on tracked tables (see detect_fk_actions). */
int verso__detect_triggers(verso_db *db)
{
    static const char sql[] =
        "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, 7) <> "
        "'_verso_' UNION SELECT tbl_name FROM sqlite_temp_master WHERE type = 'trigger'";
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    bool any = false;
    for (size_t i = 0; i < db->ntables; i++)
        db->tables[i]->user_triggers = false;
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *tbl = (const char *)sqlite3_column_text(st, 0);
        for (size_t i = 0; tbl && i < db->ntables; i++) {
            if (sqlite3_stricmp(db->tables[i]->name, tbl) == 0) {
                db->tables[i]->user_triggers = any = true;
            }
        }
        src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (src != SQLITE_DONE && src != SQLITE_OK)
        return verso__sqlerr(db, src, "reading triggers");
    if ((src = detect_fk_actions(db, &any)) != SQLITE_DONE)
        return verso__sqlerr(db, src, "reading foreign keys");
    db->trig_mode = any;
    return verso__triggers_restore(db);
}

int verso__table_current(verso_table **t, verso_db *db)
{
    if (!(*t)->retired)
        return 0;
    verso_table *now = verso__table_lookup(db, (*t)->name);
    if (!now)
        return verso__err(db, VERSO_ENOTFOUND, "table %s is no longer tracked", (*t)->name);
    *t = now;
    return 0;
}

int verso_db_refresh_schema(verso_db *db)
{
    if (db->txn)
        return verso__err(db, VERSO_ESTATE, "cannot refresh the schema inside a transaction");
    return verso__schema_load(db);
}

verso_table *verso__table_lookup(verso_db *db, const char *name)
{
    for (size_t i = 0; i < db->ntables; i++)
        if (strcmp(db->tables[i]->name, name) == 0)
            return db->tables[i];
    return NULL;
}

int verso__table_find(verso_table **out, verso_db *db, const char *name)
{
    int rc;
    *out = NULL;
    if (!name)
        return verso__err(db, VERSO_EINVAL, "table name is NULL");
    if ((rc = verso__schema_check(db)) < 0)
        return rc;
    if (!(*out = verso__table_lookup(db, name)))
        return verso__err(db, VERSO_ENOTFOUND, "no tracked table named \"%s\"", name);
    return 0;
}

int verso__table_of_def(verso_table **out, verso_db *db, const verso_table_def *def)
{
    verso_table *t = db->last_def_table;
    if (t && t->def == def) {
        *out = t;
        return 0;
    }
    *out = NULL;
    for (size_t i = 0; i < db->ntables; i++) {
        if (db->tables[i]->def == def) {
            db->last_def_table = *out = db->tables[i];
            return 0;
        }
    }
    return verso__err(db, VERSO_EINVAL, "table %s was not declared in verso_db_open's options",
                      def && def->name ? def->name : "(null)");
}

size_t verso_db_ntables(const verso_db *db)
{
    return db->ntables;
}

const verso_table *verso_db_table_at(const verso_db *db, size_t i)
{
    return i < db->ntables ? db->tables[i] : NULL;
}

const verso_table *verso_db_table(const verso_db *db, const char *name)
{
    return name ? verso__table_lookup((verso_db *)db, name) : NULL;
}

const char *verso_table_name(const verso_table *t)
{
    return t->name;
}

size_t verso_table_ncolumns(const verso_table *t)
{
    return t->ncols;
}

const verso_column *verso_table_column_at(const verso_table *t, size_t i)
{
    return i < t->ncols ? &t->cols[i] : NULL;
}

int verso_table_column_index(const verso_table *t, const char *name)
{
    for (size_t i = 0; name && i < t->ncols; i++) /* its own name: no comparison (apply) */
        if (t->cols[i].name == name)
            return (int)i;
    for (size_t i = 0; name && i < t->ncols; i++)
        if (sqlite3_stricmp(t->cols[i].name, name) == 0)
            return (int)i;
    return -1;
}

int verso_table_id_index(const verso_table *t)
{
    return t->id_idx;
}

int verso_table_version_index(const verso_table *t)
{
    return t->ver_idx;
}

bool verso_table_is_replicated(const verso_table *t)
{
    return t->replicated;
}

/* ---- value checks for writes ---- */

static bool uuid_text_ok(const verso_value *v)
{
    char s[37];
    uuid_t u;
    if (v->u.b.n != 36 || !v->u.b.p)
        return false;
    memcpy(s, v->u.b.p, 36);
    s[36] = '\0';
    return uuid_parse(s, u) == 0;
}

/*
 * SQLite types values, not columns: the generic row API stores any storage
 * class in any column, as plain SQL can (replicas and fixtures must hold
 * every value the master holds). Only the id and version columns need an
 * integer, and a value typed VERSO_UUID must be one.
 */
int verso__value_check(verso_db *db, const verso_table *t, size_t col, const verso_value *v)
{
    const verso_column *c = &t->cols[col];
    if (v->type == VERSO_NULL)
        return 0;
    if (((int)col == t->id_idx || (int)col == t->ver_idx) && v->type != VERSO_INT64 &&
        v->type != VERSO_BOOL)
        return verso__err(db, VERSO_ETYPE, "column %s.%s is the %s: it takes an integer, not a %s",
                          t->name, c->name, (int)col == t->id_idx ? "id" : "version",
                          verso_type_name(v->type));
    if (v->type == VERSO_UUID && !uuid_text_ok(v))
        return verso__err(db, VERSO_ETYPE,
                          "column %s.%s: a uuid value must be 36 characters "
                          "8-4-4-4-12",
                          t->name, c->name);
    if (v->type < VERSO_NULL || v->type > VERSO_UUID)
        return verso__err(db, VERSO_ETYPE, "column %s.%s: unknown value type %d", t->name, c->name,
                          (int)v->type);
    return 0;
}

/* ---- tracking and migration (inside a write transaction) ---- */

static int exists_in_master(bool *out, verso_db *db, const char *type, const char *name)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        db->sq, "SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2", -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    *out = src == SQLITE_ROW;
    sqlite3_finalize(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "reading schema");
}

/* Column info of an existing table: declared type, pk flag, by name (case-insensitive). */
typedef struct col_info {
    char name[80];
    char decl[64];
    int pk;
} col_info;

static int read_cols(col_info *cols, size_t *n, verso_db *db, const char *table)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq, "SELECT name, type, pk FROM pragma_table_info(?1)", -1,
                                 &st, NULL);
    *n = 0;
    if (src == SQLITE_OK)
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == VERSO__MAX_COLUMNS + 1) {
            sqlite3_finalize(st);
            return verso__err(db, VERSO_ESCHEMA, "table %s has more than %d columns", table,
                              VERSO__MAX_COLUMNS);
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *decl = (const char *)sqlite3_column_text(st, 1);
        snprintf(cols[*n].name, sizeof cols[*n].name, "%s", name ? name : "");
        snprintf(cols[*n].decl, sizeof cols[*n].decl, "%s", decl ? decl : "");
        cols[*n].pk = sqlite3_column_int(st, 2);
        src = SQLITE_OK;
        (*n)++;
    }
    sqlite3_finalize(st);
    return src == SQLITE_DONE || src == SQLITE_OK ? 0 : verso__sqlerr(db, src, "reading columns");
}

static const col_info *find_col(const col_info *cols, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (sqlite3_stricmp(cols[i].name, name) == 0)
            return &cols[i];
    return NULL;
}

/* Runs the SQL in b, unless an allocation failed on this thread since mark
 * (an append that failed leaves b without it: never run a partial statement). */
static int exec_buf(verso_db *db, verso_buf *b, unsigned mark)
{
    int rc =
        b->data && verso__nomem_count() == mark ? 0 : verso__err(db, VERSO_ENOMEM, "out of memory");
    if (rc == 0)
        rc = verso__exec(db, b->data);
    verso_buf_clear(b);
    return rc;
}

static const char trigger_sql[] =
    "CREATE TRIGGER IF NOT EXISTS \"_verso_@T_ins\" AFTER INSERT ON @Q"
    " WHEN NEW.@V IS NULL BEGIN"
    " UPDATE _verso_head SET v = v + 1;"
    " UPDATE @Q SET @V = (SELECT v FROM _verso_head) WHERE @I = NEW.@I; END;"
    "CREATE TRIGGER IF NOT EXISTS \"_verso_@T_upd\" AFTER UPDATE ON @Q"
    " WHEN NEW.@V IS OLD.@V OR NEW.@V IS NULL BEGIN"
    " UPDATE _verso_head SET v = v + 1;"
    " UPDATE @Q SET @V = (SELECT v FROM _verso_head) WHERE @I = NEW.@I; END;"
    "CREATE TRIGGER IF NOT EXISTS \"_verso_@T_idc\" AFTER UPDATE OF @I ON @Q"
    " WHEN NEW.@I IS NOT OLD.@I BEGIN"
    " UPDATE _verso_head SET v = v + 1;"
    " INSERT INTO _verso_tombstones(version, tbl, id, at) VALUES ((SELECT v FROM _verso_head),"
    " '@T', OLD.@I, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;"
    "CREATE TRIGGER IF NOT EXISTS \"_verso_@T_del\" AFTER DELETE ON @Q BEGIN"
    " UPDATE _verso_head SET v = v + 1;"
    " INSERT INTO _verso_tombstones(version, tbl, id, at) VALUES ((SELECT v FROM _verso_head),"
    " '@T', OLD.@I, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;"
    "CREATE INDEX IF NOT EXISTS \"_verso_@T_version\" ON @Q(@V);";

static int register_table(verso_db *db, const char *table, const char *idc, const char *verc,
                          bool replicated)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db->sq,
                                 "INSERT INTO _verso_tables(name, id_column, version_column, "
                                 "replicated) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE "
                                 "SET replicated = max(replicated, excluded.replicated)",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, idc, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, verc, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, replicated);
        src = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : verso__sqlerr(db, src, "registering table");
}

/* Gives every row without a version one (the update trigger assigns it). */
static int version_existing_rows(verso_db *db, const char *qt, const char *qv)
{
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    int rc = verso__head_flush(db);
    if (rc == 0)
        verso_buf_printf(&b, "UPDATE %s SET %s = NULL WHERE %s IS NULL", qt, qv, qv);
    if (rc == 0 && (rc = verso__triggers(db, true)) == 0) {
        rc = exec_buf(db, &b, mark);
        int trc = verso__triggers_restore(db);
        rc = rc < 0 ? rc : trc;
    }
    if (rc == 0)
        rc = verso__head_reload(db);
    verso_buf_free(&b);
    return rc;
}

/* Copies tmpl into b replacing @T, @Q, @I, @V with subst[0..3]. */
static void expand(verso_buf *b, const char *tmpl, const char *const subst[4])
{
    static const char keys[] = "TQIV";
    for (const char *p = tmpl; *p; p++) {
        const char *k = p[0] == '@' && p[1] ? strchr(keys, p[1]) : NULL;
        if (k) {
            verso_buf_puts(b, subst[k - keys]);
            p++;
        } else {
            verso_buf_append(b, p, 1);
        }
    }
}

static int install_tracking(verso_db *db, const char *table, const char *qt, const char *qi,
                            const char *qv, bool has_version)
{
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    int rc = 0;
    if (!has_version) {
        verso_buf_printf(&b, "ALTER TABLE %s ADD COLUMN %s INTEGER", qt, qv);
        rc = exec_buf(db, &b, mark);
    }
    if (rc == 0) {
        const char *subst[] = {table, qt, qi, qv};
        expand(&b, trigger_sql, subst);
        rc = exec_buf(db, &b, mark);
    }
    if (rc == 0)
        rc = version_existing_rows(db, qt, qv);
    verso_buf_free(&b);
    return rc;
}

int verso__track_table(verso_db *db, const char *table, const char *idc, const char *verc,
                       bool replicated)
{
    col_info cols[VERSO__MAX_COLUMNS + 1];
    size_t n;
    char *qt = verso__quote(table), *qi = verso__quote(idc), *qv = verso__quote(verc);
    int rc = qt && qi && qv ? 0 : verso__err(db, VERSO_ENOMEM, "out of memory");
    if (rc == 0)
        rc = read_cols(cols, &n, db, table);
    if (rc == 0 && !find_col(cols, n, verc) && n >= VERSO__MAX_COLUMNS)
        rc = verso__err(db, VERSO_ESCHEMA, "table %s has no room for a version column", table);
    if (rc == 0)
        rc = install_tracking(db, table, qt, qi, qv, find_col(cols, n, verc) != NULL);
    if (rc == 0)
        rc = register_table(db, table, idc, verc, replicated);
    verso__free(qt);
    verso__free(qi);
    verso__free(qv);
    return rc;
}

static void column_sql(verso_buf *b, const verso_field *f, bool adding)
{
    static const char *const zero[] = {
        [VERSO_INT64] = "0",  [VERSO_DOUBLE] = "0.0", [VERSO_TEXT] = "''",
        [VERSO_BLOB] = "x''", [VERSO_BOOL] = "0",     [VERSO_UUID] = "''"};
    char *q = verso__quote(f->name);
    if (!q) {
        verso_buf_free(b);
        return;
    }
    if (f->flags & VERSO_FIELD_ID)
        verso_buf_printf(b, "%s INTEGER PRIMARY KEY", q);
    else if (f->flags & VERSO_FIELD_VERSION)
        verso_buf_printf(b, "%s INTEGER", q);
    else if ((f->flags & VERSO_FIELD_NOTNULL) && adding)
        verso_buf_printf(b, "%s %s NOT NULL DEFAULT %s", q, verso__type_decl(f->type),
                         zero[f->type]);
    else
        verso_buf_printf(b, "%s %s%s", q, verso__type_decl(f->type),
                         (f->flags & VERSO_FIELD_NOTNULL) ? " NOT NULL" : "");
    verso__free(q);
}

static int create_table(verso_db *db, const verso_table_def *def)
{
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    char *qt = verso__quote(def->name);
    if (!qt)
        return verso__err(db, VERSO_ENOMEM, "out of memory");
    verso_buf_printf(&b, "CREATE TABLE %s(", qt);
    for (size_t i = 0; i < def->nfields; i++) {
        if (i)
            verso_buf_puts(&b, ", ");
        column_sql(&b, &def->fields[i], false);
    }
    verso_buf_puts(&b, ")");
    verso__free(qt);
    int rc = exec_buf(db, &b, mark);
    verso_buf_free(&b);
    return rc;
}

static int check_existing(verso_db *db, const verso_table_def *def, const verso_field *f,
                          const col_info *c)
{
    verso_type have = verso__decl_type(c->decl);
    if (f->flags & VERSO_FIELD_ID) {
        if (c->pk != 1 || sqlite3_stricmp(c->decl, "INTEGER") != 0)
            return verso__err(db, VERSO_ESCHEMA,
                              "table %s: column %s is declared as the id but is not the "
                              "INTEGER PRIMARY KEY in the database",
                              def->name, f->name);
        return 0;
    }
    if (f->flags & VERSO_FIELD_VERSION)
        return have == VERSO_INT64 || have == VERSO_ANY
                   ? 0
                   : verso__err(db, VERSO_ESCHEMA, "table %s: version column %s has type %s",
                                def->name, f->name, c->decl);
    if (have != f->type)
        return verso__err(db, VERSO_ESCHEMA,
                          "table %s: column %s is %s (%s) in the database but declared %s",
                          def->name, f->name, c->decl[0] ? c->decl : "untyped",
                          verso_type_name(have), verso_type_name(f->type));
    return 0;
}

static int add_missing_columns(verso_db *db, const verso_table_def *def)
{
    col_info cols[VERSO__MAX_COLUMNS + 1];
    size_t n;
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    char *qt = verso__quote(def->name);
    int rc = qt ? read_cols(cols, &n, db, def->name) : verso__err(db, VERSO_ENOMEM, "no memory");
    for (size_t i = 0; rc == 0 && i < def->nfields; i++) {
        const verso_field *f = &def->fields[i];
        const col_info *c = find_col(cols, n, f->name);
        if (c) {
            rc = check_existing(db, def, f, c);
        } else if (f->flags & VERSO_FIELD_ID) {
            rc = verso__err(db, VERSO_ESCHEMA, "table %s exists without its id column %s",
                            def->name, f->name);
        } else if (!(f->flags & VERSO_FIELD_VERSION)) {
            verso_buf_printf(&b, "ALTER TABLE %s ADD COLUMN ", qt);
            column_sql(&b, f, true);
            rc = exec_buf(db, &b, mark);
        }
    }
    verso_buf_free(&b);
    verso__free(qt);
    return rc;
}

static int create_field_indexes(verso_db *db, const verso_table_def *def)
{
    verso_buf b = VERSO_BUF_INIT;
    unsigned mark = verso__nomem_count();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < def->nfields; i++) {
        const verso_field *f = &def->fields[i];
        if (!(f->flags & (VERSO_FIELD_INDEX | VERSO_FIELD_UNIQUE)) || (f->flags & VERSO_FIELD_ID))
            continue;
        bool uniq = f->flags & VERSO_FIELD_UNIQUE;
        verso_buf_printf(&b, "CREATE %sINDEX IF NOT EXISTS \"_verso_%s_%s_%s\" ON \"%s\"(\"%s\")",
                         uniq ? "UNIQUE " : "", def->name, f->name, uniq ? "uniq" : "idx",
                         def->name, f->name);
        rc = exec_buf(db, &b, mark);
    }
    verso_buf_free(&b);
    return rc;
}

static bool field_current(verso_db *db, const verso_table *t, const verso_field *f,
                          const verso_column *c)
{
    bool exists = true;
    char name[160];
    if (f->flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION))
        return (c->flags & f->flags & (VERSO_FIELD_ID | VERSO_FIELD_VERSION)) != 0;
    if (c->type != f->type)
        return false;
    if (!(f->flags & (VERSO_FIELD_INDEX | VERSO_FIELD_UNIQUE)))
        return true;
    snprintf(name, sizeof name, "_verso_%s_%s_%s", t->name, f->name,
             (f->flags & VERSO_FIELD_UNIQUE) ? "uniq" : "idx");
    return exists_in_master(&exists, db, "index", name) == 0 && exists;
}

bool verso__def_current(verso_db *db, const verso_table_def *def)
{
    verso_table *t = verso__table_lookup(db, def->name);
    char trig[160];
    bool exists = false;
    if (!t || t->def != def)
        return false;
    for (size_t i = 0; i < def->nfields; i++)
        if (t->col_of_field[i] < 0 ||
            !field_current(db, t, &def->fields[i], &t->cols[t->col_of_field[i]]))
            return false;
    snprintf(trig, sizeof trig, "_verso_%s_del", t->name);
    return exists_in_master(&exists, db, "trigger", trig) == 0 && exists;
}

int verso__migrate_def(verso_db *db, const verso_table_def *def)
{
    bool exists;
    int rc = exists_in_master(&exists, db, "table", def->name);
    if (rc == 0)
        rc = exists ? add_missing_columns(db, def) : create_table(db, def);
    if (rc == 0)
        rc = create_field_indexes(db, def);
    if (rc == 0)
        rc = verso__track_table(db, def->name,
                                def->fields[def_field_index(def, VERSO_FIELD_ID)].name,
                                def->fields[def_field_index(def, VERSO_FIELD_VERSION)].name, false);
    return rc;
}

static int find_int_pk(const char **idc, verso_db *db, const char *table, const col_info *cols,
                       size_t n)
{
    int npk = 0;
    *idc = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cols[i].pk) {
            npk++;
            *idc = cols[i].name;
        }
        if (!ident_loose_ok(cols[i].name))
            return verso__err(db, VERSO_ESCHEMA, "table %s: column name \"%s\" is not supported",
                              table, cols[i].name);
    }
    if (npk != 1 || sqlite3_stricmp(find_col(cols, n, *idc)->decl, "INTEGER") != 0)
        return verso__err(db, VERSO_ESCHEMA, "table %s has no INTEGER PRIMARY KEY column", table);
    return 0;
}

static int track_steps(verso_db *db, const char *table, const char *verc)
{
    col_info cols[VERSO__MAX_COLUMNS + 1];
    size_t n;
    const char *idc;
    bool exists;
    int rc = exists_in_master(&exists, db, "table", table);
    if (rc == 0 && !exists)
        rc = verso__err(db, VERSO_ENOTFOUND, "no table named \"%s\"", table);
    if (rc == 0)
        rc = read_cols(cols, &n, db, table);
    if (rc == 0)
        rc = find_int_pk(&idc, db, table, cols, n);
    if (rc == 0 && sqlite3_stricmp(idc, verc) == 0)
        rc = verso__err(db, VERSO_ESCHEMA, "the version column cannot be the id column");
    const col_info *vc = rc == 0 ? find_col(cols, n, verc) : NULL;
    if (vc && verso__decl_type(vc->decl) != VERSO_INT64 && verso__decl_type(vc->decl) != VERSO_ANY)
        rc = verso__err(db, VERSO_ESCHEMA, "table %s: column %s (%s) cannot hold versions", table,
                        verc, vc->decl);
    if (rc == 0)
        rc = verso__track_table(db, table, idc, verc, false);
    return rc;
}

int verso_db_track(verso_db *db, const char *table, const char *version_column)
{
    const char *verc = version_column ? version_column : "version";
    bool implicit;
    int rc;
    if (!table || !ident_loose_ok(table))
        return verso__err(db, VERSO_ESCHEMA, "bad table name \"%s\"", table ? table : "(null)");
    if (!ident_loose_ok(verc))
        return verso__err(db, VERSO_ESCHEMA, "bad version column name \"%s\"", verc);
    if (db->txn)
        return verso__err(db, VERSO_ESTATE, "verso_db_track cannot run inside a transaction");
    if ((rc = verso__wbegin(db, &implicit)) < 0)
        return rc;
    rc = track_steps(db, table, verc);
    rc = verso__wend(db, implicit, rc);
    if (rc == 0)
        rc = verso__schema_load(db);
    return rc;
}
