/*
 * Every --help has one layout (cli/help.c): usage line, a description,
 * options (with -h, --help), examples of that command, exit statuses, in
 * this order. `cmake --install` installs a man page per command, rendered
 * by groff without warnings and by man -l, and a bash completion that
 * offers the commands and each command's options. The commands are those
 * `verso --help` lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAXCMD 32

static char g_prefix[600];
static char g_cmds[MAXCMD][32];
static size_t g_ncmds;

/* Runs a shell command; returns its stdout (malloc'd) and sets *status. */
static char *capture(int *status, const char *fmt, ...)
{
    char cmd[4096], chunk[4096];
    size_t n, len = 0;
    char *out = calloc(1, 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0) {
        out = realloc(out, len + n + 1);
        memcpy(out + len, chunk, n);
        len += n;
        out[len] = '\0';
    }
    *status = pclose(p);
    return out;
}

static char *help_of(const char *cmd)
{
    int st;
    char *out =
        capture(&st, "ASAN_OPTIONS=detect_leaks=0 '%s' %s --help", getenv("VERSO_BIN"), cmd);
    assert_int_equal(st, 0);
    return out;
}

/* The names under "commands:" in verso --help. */
static void read_commands(void)
{
    char *top = help_of(""), *p = strstr(top, "\ncommands:\n");
    assert_non_null(p);
    p += strlen("\ncommands:\n");
    while (strncmp(p, "  ", 2) == 0 && g_ncmds < MAXCMD) {
        assert_int_equal(sscanf(p + 2, "%31s", g_cmds[g_ncmds]), 1);
        g_ncmds++;
        p = strchr(p, '\n') + 1;
    }
    free(top);
    assert_true(g_ncmds >= 9);
}

/* The sections appear in this order, each once. */
static void expect_layout(const char *cmd, const char *text)
{
    char usage[128], example[128];
    snprintf(usage, sizeof usage, "usage: verso %.31s", cmd);
    snprintf(example, sizeof example, "\n  verso %.31s ", cmd);
    assert_true(strncmp(text, usage, strlen(usage)) == 0);
    const char *desc = strstr(text, "\n\n");
    assert_non_null(desc);
    desc += 2;
    assert_true(*desc >= 'A' && *desc <= 'Z'); /* a sentence, not an option */
    const char *opts = strstr(desc, "\noptions:\n"), *ex = strstr(desc, "\n\nexamples:\n"),
               *st = strstr(desc, "\n\nexit status:\n");
    if (!opts || !ex || !st || !(opts < ex && ex < st))
        fail_msg("verso %s --help: sections missing or out of order:\n%s", cmd, text);
    const char *h = strstr(opts, "\n  -h, --help ");
    assert_true(h && h < ex);
    const char *first = strstr(ex, example);
    if (!first || first > st)
        fail_msg("verso %s --help: no example of the command", cmd);
    assert_null(strstr(st + 2, "\nexit status:\n"));
    assert_non_null(strstr(st, "\n  75  "));
}

static void test_every_help_has_the_sections(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_ncmds; i++) {
        char *text = help_of(g_cmds[i]);
        expect_layout(g_cmds[i], text);
        free(text);
    }
    char *top = help_of("");
    assert_non_null(strstr(top, "\n\nexamples:\n  verso "));
    assert_non_null(strstr(top, "\n\nexit status:\n"));
    free(top);
}

static void test_man_pages_install_and_render(void **state)
{
    (void)state;
    int st, have_groff = system("groff --version >/dev/null 2>&1") == 0,
            have_man = system("man --version >/dev/null 2>&1") == 0;
    for (size_t i = 0; i <= g_ncmds; i++) {
        char page[1200];
        if (i == g_ncmds)
            snprintf(page, sizeof page, "%s/share/man/man1/verso.1", g_prefix);
        else
            snprintf(page, sizeof page, "%s/share/man/man1/verso-%.31s.1", g_prefix, g_cmds[i]);
        if (access(page, R_OK) != 0)
            fail_msg("not installed: %s", page);
        if (have_groff) {
            char *warn = capture(&st, "groff -man -Tutf8 -ww -z '%s' 2>&1", page);
            assert_int_equal(st, 0);
            if (*warn)
                fail_msg("groff warns about %s:\n%s", page, warn);
            free(warn);
        }
        if (have_man) {
            char *text = capture(&st, "MANWIDTH=80 man -l '%s' 2>/dev/null", page);
            assert_int_equal(st, 0);
            assert_non_null(strstr(text, "SYNOPSIS"));
            assert_non_null(strstr(text, "EXIT STATUS"));
            if (i < g_ncmds) {
                assert_non_null(strstr(text, "OPTIONS"));
                assert_non_null(strstr(text, "EXAMPLES"));
                assert_non_null(strstr(text, g_cmds[i]));
            }
            free(text);
        }
    }
}

/* COMPREPLY of _verso for the words (the last one being completed). */
static char *complete(const char *words)
{
    int st;
    char *out = capture(&st,
                        "bash -c 'source \"%s/share/bash-completion/completions/verso\" && "
                        "COMP_WORDS=(%s) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _verso && "
                        "echo \" ${COMPREPLY[*]} \"'",
                        g_prefix, words);
    assert_int_equal(st, 0);
    return out;
}

static void expect_word(const char *reply, const char *word)
{
    char key[80];
    snprintf(key, sizeof key, " %s ", word);
    if (!strstr(reply, key))
        fail_msg("completion lacks %s: %s", word, reply);
}

static void test_completion_offers_commands_and_options(void **state)
{
    (void)state;
    if (system("bash --version >/dev/null 2>&1") != 0)
        skip();
    char *r = complete("verso \"\"");
    for (size_t i = 0; i < g_ncmds; i++)
        expect_word(r, g_cmds[i]);
    free(r);
    r = complete("verso se");
    assert_string_equal(r, " serve \n");
    free(r);
    /* each command: every option its --help lists */
    for (size_t i = 0; i < g_ncmds; i++) {
        char words[128], *help = help_of(g_cmds[i]);
        snprintf(words, sizeof words, "verso %.31s -", g_cmds[i]);
        r = complete(words);
        const char *p = strstr(help, "\noptions:\n"), *end = strstr(help, "\n\nexamples:");
        for (p = strstr(p, "\n  --"); p && p < end; p = strstr(p + 1, "\n  --")) {
            char opt[40];
            assert_int_equal(sscanf(p + 3, "%39[^ ,\n]", opt), 1);
            expect_word(r, opt);
        }
        free(r);
        free(help);
    }
    r = complete("verso replicate --g");
    assert_string_equal(r, " --give-up-after \n");
    free(r);
}

int main(void)
{
    const char *tmp = getenv("VERSO_TEST_TMP"), *build = getenv("VERSO_BUILD_DIR");
    if (!tmp || !build || !getenv("VERSO_BIN")) {
        fprintf(stderr, "test_cli_help: run it through ctest\n");
        return 1;
    }
    snprintf(g_prefix, sizeof g_prefix, "%s/help.%d", tmp, (int)getpid());
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cmake --install '%s' --prefix '%s' >/dev/null",
             g_prefix, build, g_prefix);
    if (system(cmd) != 0)
        return 1;
    read_commands();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_help_has_the_sections),
        cmocka_unit_test(test_man_pages_install_and_render),
        cmocka_unit_test(test_completion_offers_commands_and_options),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_prefix);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
