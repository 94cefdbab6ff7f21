/*
 * orm/crashpoint.c - named crash points for the kill -9 tests (contract in
 * orm/service.h).
 *
 * A test that kills a process at a random moment rarely lands between two
 * particular writes; a crash point makes the process kill itself exactly
 * there, and its marker proves the place was reached. The hooks are
 * compiled in by default (CMake option VERSO_CRASHPOINTS, ON): unarmed, a
 * hook is one relaxed load and a branch that is never taken, and only the
 * process's own environment can arm it, so a release build keeps them and
 * the tests run against the code that ships. -DVERSO_CRASHPOINTS=OFF
 * compiles every hook to nothing.
 *
 * The points (VERSO_CRASH_AT=name or name:N, the Nth time it is reached):
 *
 *   slave.apply.begin      slave: apply transaction open, before the first
 *                          write of a batch of changes
 *   slave.apply.delete     slave: before a deletion (the rows before it in
 *                          the batch written)
 *   slave.apply.blob       slave: a row with a long blob written (zeros
 *                          where the blob goes), before its fetch
 *   slave.blob.received    slave: a piece of a long blob's body received
 *                          (name:N: the Nth piece, mid-fetch)
 *   slave.apply.written    slave: the batch's data written, cursor not yet
 *   slave.apply.cursor     slave: cursor and head written, before COMMIT
 *   slave.apply.committed  slave: after COMMIT, before the ack or the next
 *                          request
 *   snapshot.received      slave: snapshot file downloaded, not installed
 *   snapshot.fixing        slave: inside the copy's own transaction that
 *                          gives it the slave's identity and cursor, before
 *                          its COMMIT
 *   snapshot.fixed         slave: copy ready, before the install begins
 *   snapshot.locked        slave: install holds the write lock, before the
 *                          pages are copied
 *   snapshot.installed     slave: installed (cursor recorded with it),
 *                          before the schema reload and the file's removal
 *   master.snapshot.copying  master: a snapshot for an empty slave copied
 *                          to its file, before it is trimmed and sent
 *   master.changes.built   master: a changes message read from the feed,
 *                          not yet written to the socket
 *   master.ws.queued       master: a message written to a slave's socket
 *   rest.changes.built     REST GET /_changes: answer built, not yet sent
 *   orm.commit             ORM write transaction (not a replica's apply):
 *                          versions and head written, before COMMIT
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orm/internal.h"
#include "orm/service.h"

#ifdef VERSO_CRASHPOINTS

enum { UNREAD, UNARMED, ARMED };

atomic_int verso__crash_state = UNREAD;

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t arm_lock = PTHREAD_MUTEX_INITIALIZER;
static char armed_name[64];
static char mark_path[512];
static long armed_nth;
static long reached;

/* "name" or "name:N" (N >= 1) into the armed state; 0 or VERSO_EINVAL. */
static int parse(const char *spec, const char *mark)
{
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    char *end = NULL;
    long nth = colon ? strtol(colon + 1, &end, 10) : 1;

    if (n == 0 || n >= sizeof(armed_name) || nth < 1 || (colon && (end == colon + 1 || *end)) ||
        (mark && strlen(mark) >= sizeof(mark_path)))
        return VERSO_EINVAL;
    memcpy(armed_name, spec, n);
    armed_name[n] = '\0';
    snprintf(mark_path, sizeof(mark_path), "%s", mark ? mark : "");
    armed_nth = nth;
    reached = 0;
    return 0;
}

static void read_env(void)
{
    const char *spec = getenv("VERSO_CRASH_AT");
    int armed = spec && *spec && parse(spec, getenv("VERSO_CRASH_MARK")) == 0;

    pthread_mutex_lock(&arm_lock);
    if (atomic_load(&verso__crash_state) == UNREAD) /* verso__crashpoint_arm() wins */
        atomic_store(&verso__crash_state, armed ? ARMED : UNARMED);
    pthread_mutex_unlock(&arm_lock);
}

int verso__crashpoint_arm(const char *spec, const char *mark)
{
    int rc = 0;

    pthread_once(&env_once, read_env);
    pthread_mutex_lock(&arm_lock);
    if (spec && (rc = parse(spec, mark)) == 0)
        atomic_store(&verso__crash_state, ARMED);
    else if (!spec)
        atomic_store(&verso__crash_state, UNARMED);
    pthread_mutex_unlock(&arm_lock);
    return rc;
}

/* Only async-signal-safe calls once the point is chosen: another thread may hold any lock. */
static void die(const char *name)
{
    char line[128];
    int fd = mark_path[0] ? open(mark_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : STDERR_FILENO;
    int n = snprintf(line, sizeof(line), "%s%s\n", mark_path[0] ? "" : "verso: crash point ", name);

    if (fd >= 0 && n > 0 && write(fd, line, (size_t)n) < 0)
        n = 0; /* nothing to do about it: dying anyway */
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

void verso__crashpoint_reached(const char *name)
{
    bool now;

    pthread_once(&env_once, read_env);
    if (atomic_load(&verso__crash_state) != ARMED)
        return;
    pthread_mutex_lock(&arm_lock);
    now = atomic_load(&verso__crash_state) == ARMED && strcmp(name, armed_name) == 0 &&
          ++reached == armed_nth;
    pthread_mutex_unlock(&arm_lock);
    if (now)
        die(name);
}

#else

int verso__crashpoint_arm(const char *spec, const char *mark)
{
    (void)spec;
    (void)mark;
    return VERSO_ESTATE;
}

#endif
