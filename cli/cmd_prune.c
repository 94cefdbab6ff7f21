/*
 * verso prune DB --keep-versions N | --older-than DURATION
 *
 * Deletes old tombstones (the deletion log) of DB and moves its horizon:
 * --keep-versions N keeps those of the last N versions, --older-than
 * deletes those written more than DURATION ago. Prints the new horizon.
 * Readers and slaves whose cursor is below it resynchronise (full copy).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "verso/orm.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: verso prune DB --keep-versions N | --older-than DURATION\n\n"
                 "Deletes old tombstones (records of deleted rows) and moves the horizon;\n"
                 "readers and slaves whose cursor is below it resynchronise with a full copy.\n\n"
                 "arguments:\n"
                 "  DB                      the database file (must exist)\n\n"
                 "options:\n"
                 "  --keep-versions N       keep the tombstones of the last N versions\n"
                 "  --older-than DURATION   delete tombstones written more than DURATION ago:\n"
                 "                          a number with a unit, s, m, h or d (90m, 7d);\n"
                 "                          a bare number is seconds\n");
    verso_cli_help_end(out, "  verso prune app.db --older-than 30d\n"
                            "  verso prune app.db --keep-versions 100000\n");
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "verso prune: %s%s\n", what, arg);
    usage(stderr);
    return 2;
}

/* "90", "90s", "15m", "12h", "7d" in milliseconds; -1 if malformed. */
static int64_t parse_duration_ms(const char *s)
{
    static const struct {
        char unit;
        int64_t ms;
    } k_units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    char *end = NULL;
    long long v = strtoll(s, &end, 10);

    if (!*s || *s == '-' || *s == '+' || end == s || v < 0)
        return -1;
    if (!*end)
        return v > INT64_MAX / 1000 ? -1 : v * 1000;
    for (size_t i = 0; i < sizeof(k_units) / sizeof(k_units[0]); i++)
        if (end[0] == k_units[i].unit && !end[1])
            return v > INT64_MAX / k_units[i].ms ? -1 : v * k_units[i].ms;
    return -1;
}

static int parse_count(int64_t *out, const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);

    if (!*s || *s == '-' || *s == '+' || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

typedef struct prune_args {
    const char *db;
    const char *keep;  /* --keep-versions */
    const char *older; /* --older-than */
} prune_args;

/* The option's slot in a, when argv[i] names one (alone or as --name=value). */
static const char **option_slot(prune_args *a, const char *arg, const char **inline_value)
{
    static const char *const names[] = {"--keep-versions", "--older-than"};
    const char **slots[] = {&a->keep, &a->older};

    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg, names[k], n) || (arg[n] && arg[n] != '='))
            continue;
        *inline_value = arg[n] ? arg + n + 1 : NULL;
        return slots[k];
    }
    return NULL;
}

/* 0 ok, 1 --help, 2 usage error (reported). */
static int parse_args(prune_args *a, int argc, char **argv)
{
    bool options = true;

    for (int i = 1; i < argc; i++) {
        const char *value = NULL, **slot = options ? option_slot(a, argv[i], &value) : NULL;
        if (options && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")))
            return 1;
        if (options && !strcmp(argv[i], "--")) {
            options = false;
            continue;
        }
        if (slot && !value && i + 1 == argc)
            return usage_error("missing value for ", argv[i]);
        if (slot) {
            *slot = value ? value : argv[++i];
            continue;
        }
        if (options && argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option ", argv[i]);
        if (a->db)
            return usage_error("unexpected argument ", argv[i]);
        a->db = argv[i];
    }
    if (!a->db)
        return usage_error("missing argument ", "DB");
    if (!a->keep == !a->older)
        return usage_error("give one of --keep-versions N or --older-than DURATION", "");
    return 0;
}

static int prune(int64_t *horizon, verso_db *db, const prune_args *a, int64_t n)
{
    verso_info info;
    int rc;

    if (a->older)
        return verso_db_prune_age(horizon, db, n);
    if ((rc = verso_db_info(&info, db)) < 0)
        return rc;
    if (info.head - n <= info.horizon) { /* nothing that old is left */
        *horizon = info.horizon;
        return 0;
    }
    return verso_db_prune_version(horizon, db, info.head - n);
}

int verso_cli_prune(int argc, char **argv)
{
    prune_args a = {0};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    verso_info before;
    char why[256] = "";
    int64_t n = 0, horizon = 0;
    int rc = parse_args(&a, argc, argv);

    if (rc)
        return rc == 1 ? (usage(stdout), 0) : rc;
    if (a.keep && parse_count(&n, a.keep) < 0)
        return usage_error("--keep-versions needs a whole number >= 0, not ", a.keep);
    if (a.older && (n = parse_duration_ms(a.older)) < 0)
        return usage_error("--older-than needs a duration such as 90s, 15m, 12h or 7d, not ",
                           a.older);
    o.must_exist = true;
    if ((rc = verso_db_open(&db, a.db, &o, why, sizeof(why))) < 0) {
        fprintf(stderr, "verso prune: cannot open %s: %s\n", a.db, why);
        return verso_cli_status(rc);
    }
    if ((rc = verso_db_info(&before, db)) < 0 || (rc = prune(&horizon, db, &a, n)) < 0) {
        fprintf(stderr, "verso prune: %s: %s\n", a.db,
                verso_db_errmsg(db)[0] ? verso_db_errmsg(db) : verso_strerror(rc));
        verso_db_close(db);
        return verso_cli_status(rc);
    }
    verso_db_close(db);
    if (horizon == before.horizon)
        printf("verso prune: nothing to prune: the horizon stays at %lld\n", (long long)horizon);
    else
        printf("verso prune: horizon %lld (was %lld): tombstones up to version %lld deleted; "
               "slaves behind it resynchronise\n",
               (long long)horizon, (long long)before.horizon, (long long)horizon);
    return 0;
}
