/*
 * libFuzzer harness: database names (verso__dbname_valid,
 * verso__dbname_check, verso__dbfile_path; rest/dbnames.c) and the db=
 * scope of a token line (verso__config_parse; rest/config.c).
 *
 * Input: the name's bytes (any, NUL included).
 *
 * Properties beyond "no crash, no leak":
 *   - valid exactly when a second statement of the rule says so: 1..64
 *     bytes, each in [A-Za-z0-9_-], the first not '_' or '-';
 *   - the check agrees with the predicate; its reason is short, valid
 *     UTF-8 without control characters, and states the rule;
 *   - the path of a valid name is DIR "/" name ".db" and nothing else (no
 *     other '/', no ".."); an invalid name gets no path;
 *   - "token <hash> read db=<name>" parses exactly when the name is valid
 *     (names holding a space, tab, CR, LF or NUL are not one word: skipped).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/databases.h"
#include "rest/internal.h"

static bool model(const uint8_t *s, size_t n)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

    if (n < 1 || n > 64 || s[0] == '_' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !memchr(set, s[i], sizeof(set) - 1))
            return false;
    return true;
}

static void check_why(const char *why)
{
    size_t n = strlen(why);

    if (!n || n > 300 || !verso__utf8_valid(why, n) || !strstr(why, "database names are"))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)why[i] < 0x20)
            abort();
}

static void check_path(const char *name, bool valid)
{
    char out[128];
    int rc = verso__dbfile_path(out, sizeof(out), "/d", name);
    size_t n = strlen(name);

    if (!valid) {
        if (rc != VERSO_EINVAL)
            abort();
        return;
    }
    if (rc != 0 || strncmp(out, "/d/", 3) || strncmp(out + 3, name, n) ||
        strcmp(out + 3 + n, ".db") || strchr(out + 3, '/') || strstr(out, ".."))
        abort();
}

static void check_config(const char *name, bool valid)
{
    char text[200];
    verso__config c;
    char why[256];
    int rc;

    if (strpbrk(name, " \t\r\n"))
        return;
    snprintf(text, sizeof(text), "token %064d read db=%s\n", 0, name);
    memset(&c, 0, sizeof(c));
    c.port = -1;
    rc = verso__config_parse(&c, text, strlen(text), why, sizeof(why));
    if ((rc == 0) != valid || (rc == 0 && (c.ngrants != 1 || strcmp(c.grants[0].db, name))))
        abort();
    verso__config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[400] = "", *name;
    bool valid = verso__dbname_valid((const char *)data, size);

    if (valid != model(data, size))
        abort();
    if ((verso__dbname_check((const char *)data, size, why, sizeof(why)) == 0) != valid)
        abort();
    if (!valid)
        check_why(why);
    if (size > 200 || memchr(data, 0, size) || !(name = malloc(size + 1)))
        return 0;
    memcpy(name, data, size);
    name[size] = 0;
    check_path(name, valid);
    check_config(name, valid);
    free(name);
    return 0;
}
