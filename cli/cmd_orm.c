/* verso track / changes / dump / load / info: the database commands. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "verso/orm.h"

#define FEED_CHUNK 1000 /* changes read per feed snapshot */
#define MAX_TABLES 64   /* --table given at most this often */

/* ---------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------ */

typedef enum opt_id { OPT_COLUMN, OPT_SINCE, OPT_LIMIT, OPT_TABLE } opt_id;

typedef struct cli_opt {
    const char *name; /* "--since" */
    opt_id id;
} cli_opt;

typedef struct cli_spec {
    const char *name;     /* "changes" */
    const char *usage;    /* arguments after the command name */
    const char *help;     /* what it does, then "options:" and its option lines */
    const char *examples; /* "  verso ...\n" lines */
    size_t npos;          /* positional arguments required */
    const cli_opt *opts;
    size_t nopts;
} cli_spec;

typedef struct cli_args {
    const char *pos[2];
    size_t npos;
    const char *column;
    int64_t since;
    int64_t limit;
    const char *tables[MAX_TABLES];
    size_t ntables;
} cli_args;

/* Prints "verso <cmd>: <message>" on stderr; returns status 1. */
static int fail(const cli_spec *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int fail(const cli_spec *s, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "verso %s: ", s->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static int usage_error(const cli_spec *s, const char *what, const char *arg)
{
    fprintf(stderr, "verso %s: %s%s\nusage: verso %s %s\n", s->name, what, arg, s->name, s->usage);
    return 2;
}

/* Strict decimal integer >= min: digits only (no sign, no space), no overflow. */
static int parse_int64(int64_t *out, const char *s, int64_t min)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int apply_opt(cli_args *a, const cli_spec *s, opt_id id, const char *val)
{
    switch (id) {
    case OPT_COLUMN:
        a->column = val;
        return 0;
    case OPT_SINCE:
        return parse_int64(&a->since, val, 0) < 0
                   ? usage_error(s, "--since needs a version >= 0, not ", val)
                   : 0;
    case OPT_LIMIT:
        return parse_int64(&a->limit, val, 1) < 0
                   ? usage_error(s, "--limit needs a count >= 1, not ", val)
                   : 0;
    case OPT_TABLE:
        if (a->ntables == MAX_TABLES)
            return usage_error(s, "too many --table options", "");
        a->tables[a->ntables++] = val;
        return 0;
    }
    return 2;
}

/* Handles one "--name value" or "--name=value" at argv[*i]. */
static int parse_opt(cli_args *a, const cli_spec *s, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    for (size_t k = 0; k < s->nopts; k++) {
        size_t n = strlen(s->opts[k].name);
        if (strncmp(arg, s->opts[k].name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
            continue;
        if (arg[n] == '=')
            return apply_opt(a, s, s->opts[k].id, arg + n + 1);
        if (*i + 1 >= argc)
            return usage_error(s, "missing value for ", arg);
        return apply_opt(a, s, s->opts[k].id, argv[++*i]);
    }
    return usage_error(s, "unknown option ", arg);
}

static void print_help(const cli_spec *s)
{
    printf("usage: verso %s %s\n\n%s", s->name, s->usage, s->help);
    verso_cli_help_end(stdout, s->examples);
}

/* 0: run the command; otherwise the exit status (help printed: 0 via -1). */
static int parse_args(cli_args *a, const cli_spec *s, int argc, char **argv)
{
    bool only_pos = false;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (!only_pos && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            print_help(s);
            return -1;
        }
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true;
        } else if (!only_pos && arg[0] == '-' && arg[1] != '\0') {
            if ((rc = parse_opt(a, s, argc, argv, &i)) != 0)
                return rc;
        } else if (a->npos < s->npos) {
            a->pos[a->npos++] = arg;
        } else {
            return usage_error(s, "unexpected argument ", arg);
        }
    }
    if (a->npos < s->npos)
        return usage_error(s, "missing arguments", "");
    return 0;
}

/* Runs parse_args and maps "help printed" to status 0. */
static int get_args(cli_args *a, const cli_spec *s, int argc, char **argv, int *status)
{
    int rc = parse_args(a, s, argc, argv);
    *status = rc < 0 ? 0 : rc;
    return rc;
}

/* ---------------------------------------------------------------------
 * Shared
 * ------------------------------------------------------------------ */

static int open_db(verso_db **db, const cli_spec *s, const char *path, bool readonly)
{
    char open_why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    o.must_exist = true;
    o.readonly = readonly;
    int rc = verso_db_open(db, path, &o, open_why, sizeof(open_why));
    if (rc < 0) {
        const char *m = open_why;
        size_t n = strlen(path);
        if (strncmp(m, path, n) == 0 && m[n] == ':') /* the detail names the path already */
            m += n + 1 + (m[n + 1] == ' ');
        fail(s, "cannot open %s: %s", path, m);
        return verso_cli_status(rc);
    }
    return 0;
}

static int db_fail(const cli_spec *s, verso_db *db, int rc)
{
    const char *m = verso_db_errmsg(db);
    fail(s, "%s", m && m[0] ? m : verso_strerror(rc));
    return verso_cli_status(rc);
}

static int write_out(const cli_spec *s, const verso_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
        return fail(s, "writing output: %s", strerror(errno));
    return 0;
}

static int flush_out(const cli_spec *s)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(s, "writing output: %s", strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------------
 * track
 * ------------------------------------------------------------------ */

static const cli_opt track_opts[] = {{"--column", OPT_COLUMN}};
static const cli_spec track_spec = {
    .name = "track",
    .usage = "DB TABLE [--column NAME]",
    .help = "Puts an existing plain SQLite table under tracking: adds the version column\n"
            "(default \"version\") if missing, gives every existing row a version, and\n"
            "installs the index and the triggers that version writes made by any program.\n"
            "TABLE needs an INTEGER PRIMARY KEY. Running it again changes nothing.\n\n"
            "options:\n"
            "  --column NAME   name of the version column (default: version)\n",
    .examples = "  verso track shop.db items\n"
                "  verso track shop.db orders --column rev\n",
    .npos = 2,
    .opts = track_opts,
    .nopts = sizeof track_opts / sizeof track_opts[0],
};

int verso_cli_track(int argc, char **argv)
{
    const cli_spec *s = &track_spec;
    cli_args a;
    verso_db *db = NULL;
    verso_info info;
    int status, rc;
    if (get_args(&a, s, argc, argv, &status) != 0)
        return status;
    if ((status = open_db(&db, s, a.pos[0], false)) != 0)
        goto done;
    if ((rc = verso_db_track(db, a.pos[1], a.column)) < 0 || (rc = verso_db_info(&info, db)) < 0) {
        status = db_fail(s, db, rc);
        goto done;
    }
    const verso_table *t = verso_db_table(db, a.pos[1]);
    if (!t && (rc = verso_db_refresh_schema(db)) == 0)
        t = verso_db_table(db, a.pos[1]);
    if (!t) {
        status = fail(s, "%s is not listed as tracked after tracking it", a.pos[1]);
        goto done;
    }
    const verso_column *vc = verso_table_column_at(t, (size_t)verso_table_version_index(t));
    printf("tracked %s (version column \"%s\"), head %" PRId64 "\n", verso_table_name(t), vc->name,
           info.head);
    status = flush_out(s);
done:
    verso_db_close(db);
    return status;
}

/* ---------------------------------------------------------------------
 * changes
 * ------------------------------------------------------------------ */

static const cli_opt changes_opts[] = {
    {"--since", OPT_SINCE}, {"--limit", OPT_LIMIT}, {"--table", OPT_TABLE}};
static const cli_spec changes_spec = {
    .name = "changes",
    .usage = "DB [--since V] [--limit N] [--table T]...",
    .help =
        "Prints the changes with a version above V, in version order, one JSON object\n"
        "per line: {\"table\":T,\"id\":ID,\"version\":V,\"row\":{...}} for an insert or\n"
        "update (the row as it is now), {\"table\":T,\"id\":ID,\"version\":V,\"deleted\":true}\n"
        "for a delete. Each row appears once, at its latest version.\n\n"
        "options:\n"
        "  --since V   start after version V (default 0: everything)\n"
        "  --limit N   print at most N changes (default: all)\n"
        "  --table T   only table T; repeat for several tables (default: all)\n",
    .examples = "  verso changes shop.db\n"
                "  verso changes shop.db --since 120 --table items --limit 100\n",
    .npos = 1,
    .opts = changes_opts,
    .nopts = sizeof changes_opts / sizeof changes_opts[0],
};

/*
 * Reads one chunk of the feed into b. A chunk shorter than its limit means
 * the snapshot had nothing more; otherwise the next chunk starts after the
 * last version returned (*since).
 */
static int feed_chunk(verso_buf *b, int64_t *got, verso_db *db, const verso_feed_options *o,
                      int64_t *since)
{
    verso_feed *f = NULL;
    const verso_feed_entry *e;
    int rc = verso_feed_open(&f, db, o);
    *got = 0;
    while (rc == 0 && (rc = verso_feed_next(&e, f)) == 1) {
        if ((rc = verso_json_feed_entry(b, e)) == 0)
            rc = verso_buf_append(b, "\n", 1);
        *since = e->version;
        ++*got;
    }
    verso_feed_close(f);
    return rc;
}

int verso_cli_changes(int argc, char **argv)
{
    const cli_spec *s = &changes_spec;
    cli_args a;
    verso_db *db = NULL;
    verso_buf b = VERSO_BUF_INIT;
    int status, rc;
    if (get_args(&a, s, argc, argv, &status) != 0)
        return status;
    if ((status = open_db(&db, s, a.pos[0], true)) != 0)
        goto done;
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    int64_t since = a.since, left = a.limit, got = 0;
    o.tables = a.ntables ? a.tables : NULL;
    o.ntables = a.ntables;
    do {
        o.since = since;
        o.limit = a.limit && left < FEED_CHUNK ? left : FEED_CHUNK;
        if ((rc = feed_chunk(&b, &got, db, &o, &since)) < 0) {
            status = db_fail(s, db, rc);
            goto done;
        }
        left -= got;
        if ((status = write_out(s, &b)) != 0)
            goto done;
        verso_buf_clear(&b);
    } while (got == o.limit && (a.limit == 0 || left > 0));
    status = flush_out(s);
done:
    verso_buf_free(&b);
    verso_db_close(db);
    return status;
}

/* ---------------------------------------------------------------------
 * dump
 * ------------------------------------------------------------------ */

static const cli_opt dump_opts[] = {{"--table", OPT_TABLE}};
static const cli_spec dump_spec = {
    .name = "dump",
    .usage = "DB [--table T]",
    .help = "Writes the tracked tables (or only table T) as a JSON fixture on stdout:\n"
            "{\"verso\":1,\"tables\":{\"T\":[{row},...],...}}, rows in id order, without\n"
            "their version column. 'verso load' reads it back.\n\n"
            "options:\n"
            "  --table T   only table T\n",
    .examples = "  verso dump shop.db > shop.json\n"
                "  verso dump shop.db --table items\n",
    .npos = 1,
    .opts = dump_opts,
    .nopts = sizeof dump_opts / sizeof dump_opts[0],
};

int verso_cli_dump(int argc, char **argv)
{
    const cli_spec *s = &dump_spec;
    cli_args a;
    verso_db *db = NULL;
    verso_buf b = VERSO_BUF_INIT;
    int status, rc;
    if (get_args(&a, s, argc, argv, &status) != 0)
        return status;
    if (a.ntables > 1) {
        status = usage_error(s, "--table may be given once", "");
        goto done;
    }
    if ((status = open_db(&db, s, a.pos[0], true)) != 0)
        goto done;
    if ((rc = verso_fixture_dump(&b, db, a.ntables ? a.tables[0] : NULL)) < 0) {
        status = db_fail(s, db, rc);
        goto done;
    }
    if ((status = write_out(s, &b)) == 0)
        status = flush_out(s);
done:
    verso_buf_free(&b);
    verso_db_close(db);
    return status;
}

/* ---------------------------------------------------------------------
 * load
 * ------------------------------------------------------------------ */

static const cli_spec load_spec = {
    .name = "load",
    .usage = "DB FILE",
    .help = "Loads a JSON fixture (the format 'verso dump' writes) into DB, in one\n"
            "transaction: a row whose id exists is updated, any other row is inserted with\n"
            "its id. Every loaded row gets a new version. On any error nothing changes.\n"
            "FILE '-' reads standard input.\n\n"
            "options:\n",
    .examples = "  verso load copy.db shop.json\n"
                "  verso dump shop.db | verso load copy.db -\n",
    .npos = 2,
    .opts = NULL,
    .nopts = 0,
};

static int read_all(verso_buf *b, FILE *in)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        if (verso_buf_append(b, chunk, n) < 0)
            return VERSO_ENOMEM;
    return ferror(in) ? VERSO_EIO : 0;
}

static int read_file(verso_buf *b, const cli_spec *s, const char *path)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *in = is_stdin ? stdin : fopen(path, "rb");
    int rc;
    if (!in)
        return fail(s, "cannot open %s: %s", path, strerror(errno));
    rc = read_all(b, in);
    if (rc < 0)
        fail(s, "reading %s: %s", is_stdin ? "standard input" : path,
             rc == VERSO_EIO ? strerror(errno) : verso_strerror(rc));
    if (!is_stdin)
        fclose(in);
    return rc < 0 ? 1 : 0;
}

int verso_cli_load(int argc, char **argv)
{
    const cli_spec *s = &load_spec;
    cli_args a;
    verso_db *db = NULL;
    verso_buf b = VERSO_BUF_INIT;
    verso_info before, after;
    int status, rc;
    if (get_args(&a, s, argc, argv, &status) != 0)
        return status;
    if ((status = read_file(&b, s, a.pos[1])) != 0)
        goto done;
    if (b.len == 0) {
        status = fail(s, "%s is empty", a.pos[1]);
        goto done;
    }
    if ((status = open_db(&db, s, a.pos[0], false)) != 0)
        goto done;
    if ((rc = verso_db_info(&before, db)) < 0 || (rc = verso_fixture_load(db, b.data, b.len)) < 0 ||
        (rc = verso_db_info(&after, db)) < 0) {
        status = db_fail(s, db, rc);
        goto done;
    }
    printf("loaded %s: %" PRId64 " rows written, head %" PRId64 "\n", a.pos[1],
           after.head - before.head, after.head);
    status = flush_out(s);
done:
    verso_buf_free(&b);
    verso_db_close(db);
    return status;
}

/* ---------------------------------------------------------------------
 * info
 * ------------------------------------------------------------------ */

static const cli_spec info_spec = {
    .name = "info",
    .usage = "DB",
    .help = "Prints the database identity (a UUID made at creation), the head version\n"
            "(highest committed version), the horizon (deletions up to it may have been\n"
            "pruned), the replication cursor if DB is a replica, and every tracked table\n"
            "with its columns and types, as JSON.\n\n"
            "options:\n",
    .examples = "  verso info shop.db\n",
    .npos = 1,
    .opts = NULL,
    .nopts = 0,
};

static int info_column(verso_buf *b, const verso_column *c, bool first)
{
    int rc = verso_buf_puts(b, first ? "\n      {\"name\": " : ",\n      {\"name\": ");
    if (rc == 0)
        rc = verso_json_string(b, c->name, strlen(c->name));
    if (rc == 0)
        rc = verso_buf_printf(b, ", \"type\": \"%s\"%s%s%s}", verso_type_name(c->type),
                              c->flags & VERSO_FIELD_ID ? ", \"id\": true" : "",
                              c->flags & VERSO_FIELD_VERSION ? ", \"version\": true" : "",
                              c->flags & VERSO_FIELD_NOTNULL ? ", \"notnull\": true" : "");
    return rc;
}

static int info_table(verso_buf *b, const verso_table *t, bool first)
{
    const char *name = verso_table_name(t);
    int rc = verso_buf_puts(b, first ? "\n    {\"name\": " : ",\n    {\"name\": ");
    if (rc == 0)
        rc = verso_json_string(b, name, strlen(name));
    if (rc == 0)
        rc = verso_buf_printf(b, ", \"replicated\": %s, \"columns\": [",
                              verso_table_is_replicated(t) ? "true" : "false");
    for (size_t i = 0; rc == 0 && i < verso_table_ncolumns(t); i++)
        rc = info_column(b, verso_table_column_at(t, i), i == 0);
    if (rc == 0)
        rc = verso_buf_puts(b, "\n    ]}");
    return rc;
}

static int info_json(verso_buf *b, verso_db *db)
{
    verso_info info;
    verso_cursor cur;
    size_t n = verso_db_ntables(db);
    int rc;
    if ((rc = verso_db_info(&info, db)) < 0 || (rc = verso_db_cursor(&cur, db)) < 0)
        return rc;
    rc = verso_buf_printf(
        b, "{\n  \"identity\": \"%s\",\n  \"head\": %" PRId64 ",\n  \"horizon\": %" PRId64 ",\n",
        info.identity, info.head, info.horizon);
    if (rc == 0 && cur.master[0])
        rc = verso_buf_printf(b, "  \"cursor\": {\"master\": \"%s\", \"version\": %" PRId64 "},\n",
                              cur.master, cur.version);
    if (rc == 0)
        rc = verso_buf_puts(b, "  \"tables\": [");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = info_table(b, verso_db_table_at(db, i), i == 0);
    if (rc == 0)
        rc = verso_buf_puts(b, n ? "\n  ]\n}\n" : "]\n}\n");
    return rc;
}

int verso_cli_info(int argc, char **argv)
{
    const cli_spec *s = &info_spec;
    cli_args a;
    verso_db *db = NULL;
    verso_buf b = VERSO_BUF_INIT;
    int status, rc;
    if (get_args(&a, s, argc, argv, &status) != 0)
        return status;
    if ((status = open_db(&db, s, a.pos[0], true)) != 0)
        goto done;
    if ((rc = info_json(&b, db)) < 0) {
        status = db_fail(s, db, rc);
        goto done;
    }
    if ((status = write_out(s, &b)) == 0)
        status = flush_out(s);
done:
    verso_buf_free(&b);
    verso_db_close(db);
    return status;
}
