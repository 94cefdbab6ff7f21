/*
 * nats_harness.c - the bodies of tests/nats_harness.h (see there).
 *
 * Linked into every test through the support library: the process part uses
 * only POSIX; the JetStream part exists only when libnats does.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "nats_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef VERSO_HAVE_NATS
#include <cjson/cJSON.h>
#endif

/* ---- ports ---- */

#define HN_MAX_PORTS 256

static int hn_ports[HN_MAX_PORTS];
static int hn_nports;

static bool hn_port_given(int port)
{
    for (int i = 0; i < hn_nports; i++)
        if (hn_ports[i] == port)
            return true;
    return false;
}

static int hn_bind_any(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int hn_free_port(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int port = hn_bind_any();
        if (port > 0 && !hn_port_given(port)) {
            if (hn_nports < HN_MAX_PORTS)
                hn_ports[hn_nports++] = port;
            return port;
        }
    }
    fail_msg("no free port on 127.0.0.1");
    return -1;
}

/* ---- the children ---- */

#define HN_MAX_CHILDREN 32

static pid_t hn_children[HN_MAX_CHILDREN];
static bool hn_atexit_set;

static void hn_child_add(pid_t pid)
{
    if (!hn_atexit_set) {
        atexit(hn_kill_all);
        hn_atexit_set = true;
    }
    for (int i = 0; i < HN_MAX_CHILDREN; i++)
        if (hn_children[i] == 0) {
            hn_children[i] = pid;
            return;
        }
}

static void hn_child_remove(pid_t pid)
{
    for (int i = 0; i < HN_MAX_CHILDREN; i++)
        if (hn_children[i] == pid)
            hn_children[i] = 0;
}

void hn_kill_all(void)
{
    for (int i = 0; i < HN_MAX_CHILDREN; i++)
        if (hn_children[i] > 0) {
            kill(hn_children[i], SIGKILL);
            waitpid(hn_children[i], NULL, 0);
            hn_children[i] = 0;
        }
}

bool hn_have_server(void)
{
    const char *path = getenv("PATH");
    char buf[4096], *save = NULL;

    snprintf(buf, sizeof(buf), "%s:/usr/sbin:/usr/bin:/sbin", path ? path : "");
    for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/nats-server", d);
        if (access(p, X_OK) == 0)
            return true;
    }
    return false;
}

/* After fork, before exec: only async-signal-safe calls. */
static void hn_exec_child(const hn_server *s, int logfd, pid_t parent)
{
    char *const args[] = {"nats-server", "-js", "-c", (char *)s->conf, NULL};
    char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan when the test dies */
    if (getppid() != parent)
        _exit(1);
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    /* the test's sockets (a REST port it restarts later) must not live on in the server */
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    execve("/usr/sbin/nats-server", args, env);
    execve("/usr/bin/nats-server", args, env);
    _exit(127);
}

static void hn_spawn(hn_server *s)
{
    pid_t parent = getpid();
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    assert_true(logfd >= 0);
    fflush(NULL);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0)
        hn_exec_child(s, logfd, parent);
    close(logfd);
    hn_child_add(s->pid);
}

bool hn_wait_info(int port, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char buf[8] = "";
        bool ok = false;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ok = poll(&p, 1, 2000) == 1 && recv(fd, buf, 5, MSG_WAITALL) == 5 &&
                 !memcmp(buf, "INFO ", 5);
        }
        if (fd >= 0)
            close(fd);
        if (ok)
            return true;
        h_sleep_ms(20);
    }
    return false;
}

static void hn_write_conf(const hn_server *s, const char *cluster, const int *routes, int nroutes)
{
    FILE *f = fopen(s->conf, "w");

    assert_non_null(f);
    fprintf(f, "server_name: %s\nlisten: \"127.0.0.1:%d\"\n", s->name, s->port);
    fprintf(f, "log_file: \"%s\"\n", s->log);
    fprintf(f,
            "jetstream {\n  store_dir: \"%s/store\"\n  max_memory_store: 64MB\n"
            "  max_file_store: 1GB\n}\n",
            s->dir);
    if (cluster) {
        fprintf(f, "cluster {\n  name: %s\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", cluster,
                s->cluster_port);
        for (int i = 0; i < nroutes; i++)
            if (routes[i] != s->cluster_port)
                fprintf(f, "    \"nats-route://127.0.0.1:%d\"\n", routes[i]);
        fprintf(f, "  ]\n}\n");
    }
    fclose(f);
}

static void hn_init(hn_server *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->dir, sizeof(s->dir), "%s/%s", h_dir, name);
    mkdir(s->dir, 0755);
    snprintf(s->conf, sizeof(s->conf), "%s/server.conf", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    s->port = hn_free_port();
    snprintf(s->url, sizeof(s->url), "nats://127.0.0.1:%d", s->port);
}

void hn_start(hn_server *s, const char *name)
{
    hn_init(s, name);
    hn_write_conf(s, NULL, NULL, 0);
    hn_spawn(s);
    if (!hn_wait_info(s->port, 15000))
        fail_msg("nats-server %s did not answer on port %d (log %s)", s->name, s->port, s->log);
#ifdef VERSO_HAVE_NATS
    if (!hn_js_wait(s->url, 1, 15000))
        fail_msg("nats-server %s: JetStream not ready (log %s)", s->name, s->log);
#endif
}

void hn_kill(hn_server *s, int sig)
{
    int64_t deadline = h_now_ms() + 10000;
    int status;

    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    while (waitpid(s->pid, &status, sig == SIGKILL ? 0 : WNOHANG) == 0) {
        if (h_now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        h_sleep_ms(10);
    }
    hn_child_remove(s->pid);
    s->pid = 0;
}

void hn_restart(hn_server *s)
{
    assert_int_equal(s->pid, 0);
    hn_spawn(s);
    if (!hn_wait_info(s->port, 15000))
        fail_msg("nats-server %s did not come back on port %d (log %s)", s->name, s->port, s->log);
}

static int hn_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void hn_remove_tree(const char *path)
{
    nftw(path, hn_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the cluster ---- */

void hn_cluster_start(hn_cluster *c, const char *prefix)
{
    int routes[HN_NODES];
    size_t off = 0;

    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", prefix);
    for (int i = 0; i < HN_NODES; i++) {
        char name[40];
        snprintf(name, sizeof(name), "%s%d", prefix, i + 1);
        hn_init(&c->node[i], name);
        routes[i] = c->node[i].cluster_port = hn_free_port();
    }
    for (int i = 0; i < HN_NODES; i++) {
        hn_write_conf(&c->node[i], prefix, routes, HN_NODES);
        hn_spawn(&c->node[i]);
        off += (size_t)snprintf(c->urls + off, sizeof(c->urls) - off, "%s%s", i ? "," : "",
                                c->node[i].url);
    }
    for (int i = 0; i < HN_NODES; i++)
        if (!hn_wait_info(c->node[i].port, 15000))
            fail_msg("cluster node %s did not answer (log %s)", c->node[i].name, c->node[i].log);
#ifdef VERSO_HAVE_NATS
    if (!hn_js_wait(c->urls, HN_NODES, 30000))
        fail_msg("cluster %s: no JetStream meta leader within 30 s (logs in %s)", prefix, h_dir);
#endif
}

void hn_cluster_stop(hn_cluster *c)
{
    for (int i = 0; i < HN_NODES; i++)
        hn_kill(&c->node[i], SIGKILL);
}

#ifdef VERSO_HAVE_NATS

/* ---- JetStream ---- */

/* libnats 3.4's natsOptions_SetURL does not take a list (its "No server
 * available" for "nats://a,nats://b"): the servers are given one by one. */
static natsStatus hn_set_servers(natsOptions *o, const char *urls)
{
    char buf[512], *save = NULL;
    const char *list[8];
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", urls);
    for (char *u = strtok_r(buf, ",", &save); u && n < 8; u = strtok_r(NULL, ",", &save))
        list[n++] = u;
    return natsOptions_SetServers(o, list, n);
}

natsConnection *hn_connect(const char *urls, jsCtx **js, char *why, size_t whylen)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    natsStatus s;

    *js = NULL;
    s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = hn_set_servers(o, urls);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 50);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, o);
    if (s == NATS_OK)
        s = natsConnection_JetStream(js, nc, NULL);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        snprintf(why, whylen, "%s: %s", urls, natsStatus_GetText(s));
        natsConnection_Destroy(nc);
        *js = NULL;
        return NULL;
    }
    return nc;
}

void hn_disconnect(natsConnection *nc, jsCtx *js)
{
    jsCtx_Destroy(js);
    if (nc)
        natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

/* One attempt: account info, then (replicas > 1) a probe stream created and deleted. */
static bool hn_js_try(jsCtx *js, int replicas)
{
    jsAccountInfo *ai = NULL;
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    const char *subjects[] = {"hn.probe"};
    jsErrCode jerr = 0;
    bool ok;

    if (js_GetAccountInfo(&ai, js, NULL, &jerr) != NATS_OK)
        return false;
    jsAccountInfo_Destroy(ai);
    if (replicas <= 1)
        return true;
    jsStreamConfig_Init(&cfg);
    cfg.Name = "HN_PROBE";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    cfg.Replicas = replicas;
    ok = js_AddStream(&si, js, &cfg, NULL, &jerr) == NATS_OK;
    jsStreamInfo_Destroy(si);
    if (ok)
        js_DeleteStream(js, "HN_PROBE", NULL, &jerr);
    return ok;
}

bool hn_js_wait(const char *urls, int replicas, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    bool ok = false;

    while (!ok && h_now_ms() < deadline) {
        char why[256];
        jsCtx *js = NULL;
        natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
        ok = nc && hn_js_try(js, replicas);
        hn_disconnect(nc, js);
        if (!ok)
            h_sleep_ms(100);
    }
    return ok;
}

bool hn_stream_info(jsCtx *js, const char *stream, uint64_t *first, uint64_t *last, uint64_t *msgs)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;

    if (js_GetStreamInfo(&si, js, stream, NULL, &jerr) != NATS_OK)
        return false;
    if (first)
        *first = si->State.FirstSeq;
    if (last)
        *last = si->State.LastSeq;
    if (msgs)
        *msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return true;
}

int64_t hn_header_int(natsMsg *m, const char *key)
{
    const char *v = NULL;
    char *end;
    long long x;

    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v || !v[0])
        return -1;
    x = strtoll(v, &end, 10);
    return *end ? -1 : (int64_t)x;
}

natsMsg *hn_last_msg(jsCtx *js, const char *stream, const char *subject)
{
    uint64_t first, last, msgs = 0;
    jsErrCode jerr = 0;
    natsMsg *m = NULL;

    if (!hn_stream_info(js, stream, &first, &last, &msgs) || msgs == 0 ||
        js_GetLastMsg(&m, js, stream, subject, NULL, &jerr) != NATS_OK)
        return NULL;
    return m;
}

/* ---- the chain check ---- */

#define HN_MAX_IDS 16

typedef struct hn_id_chain {
    char identity[37];
    int64_t next_from; /* -1: none seen (and no master message) */
} hn_id_chain;

typedef struct hn_walk {
    hn_chain *out;
    hn_id_chain ids[HN_MAX_IDS];
    int nids;
    char **msgids;
    size_t nmsgids, capmsgids;
    char *why;
    size_t whylen;
} hn_walk;

static hn_id_chain *hn_walk_id(hn_walk *w, const char *identity)
{
    for (int i = 0; i < w->nids; i++)
        if (!strcmp(w->ids[i].identity, identity))
            return &w->ids[i];
    if (w->nids == HN_MAX_IDS)
        return NULL;
    snprintf(w->ids[w->nids].identity, 37, "%s", identity);
    w->ids[w->nids].next_from = -1;
    return &w->ids[w->nids++];
}

static int hn_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool hn_walk_msgid(hn_walk *w, natsMsg *m, uint64_t seq)
{
    const char *id = NULL;

    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || !id) {
        snprintf(w->why, w->whylen, "seq %llu: no Nats-Msg-Id", (unsigned long long)seq);
        return false;
    }
    if (w->nmsgids == w->capmsgids) {
        size_t cap = w->capmsgids ? w->capmsgids * 2 : 256;
        char **p = realloc(w->msgids, cap * sizeof(*p));
        assert_non_null(p);
        w->msgids = p;
        w->capmsgids = cap;
    }
    w->msgids[w->nmsgids] = strdup(id);
    assert_non_null(w->msgids[w->nmsgids]);
    w->nmsgids++;
    return true;
}

static bool hn_walk_master(hn_walk *w, natsMsg *m, uint64_t seq)
{
    cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "identity");
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(j, "head");
    hn_id_chain *c = cJSON_IsString(id) ? hn_walk_id(w, id->valuestring) : NULL;
    bool ok = c && cJSON_IsNumber(head);

    if (!ok)
        snprintf(w->why, w->whylen, "seq %llu: master message without identity/head: %.*s",
                 (unsigned long long)seq, natsMsg_GetDataLength(m), natsMsg_GetData(m));
    else if (c->next_from < 0) /* a second master message of the same identity changes nothing */
        c->next_from = (int64_t)head->valuedouble;
    cJSON_Delete(j);
    w->out->masters++;
    return ok;
}

static bool hn_walk_body(hn_walk *w, natsMsg *m, uint64_t seq, int64_t from, int64_t to)
{
    cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "from");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "to");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "entries");
    bool ok = cJSON_IsString(t) && !strcmp(t->valuestring, "changes") && cJSON_IsNumber(f) &&
              cJSON_IsNumber(o) && (int64_t)f->valuedouble == from &&
              (int64_t)o->valuedouble == to && cJSON_IsArray(e);

    if (!ok)
        snprintf(w->why, w->whylen, "seq %llu: body does not match its headers %lld..%lld",
                 (unsigned long long)seq, (long long)from, (long long)to);
    else
        w->out->entries += cJSON_GetArraySize(e);
    cJSON_Delete(j);
    return ok;
}

bool hn_chain_allow_redundant;

static bool hn_walk_changes(hn_walk *w, natsMsg *m, uint64_t seq)
{
    const char *identity = NULL;
    int64_t from = hn_header_int(m, "Verso-From"), to = hn_header_int(m, "Verso-To");
    hn_id_chain *c;

    if (natsMsgHeader_Get(m, "Verso-Identity", &identity) != NATS_OK || !identity ||
        strlen(identity) != 36 || from < 0 || to < from) {
        snprintf(w->why, w->whylen, "seq %llu: bad headers (identity %s, from %lld, to %lld)",
                 (unsigned long long)seq, identity ? identity : "-", (long long)from,
                 (long long)to);
        return false;
    }
    if (!(c = hn_walk_id(w, identity)))
        return false;
    if (hn_chain_allow_redundant && c->next_from >= 0 && from < c->next_from && to <= c->next_from)
        return true; /* a range the chain already holds, again: no gap, no move back */
    if (c->next_from >= 0 && from != c->next_from) {
        snprintf(w->why, w->whylen, "seq %llu: identity %s goes on from %lld, expected %lld",
                 (unsigned long long)seq, identity, (long long)from, (long long)c->next_from);
        return false;
    }
    c->next_from = to;
    w->out->messages++;
    w->out->last_to = to;
    snprintf(w->out->last_identity, 37, "%s", identity);
    return hn_walk_body(w, m, seq, from, to);
}

static bool hn_walk_msg(hn_walk *w, natsMsg *m, uint64_t seq, const char *prefix)
{
    const char *subj = natsMsg_GetSubject(m);
    size_t pl = strlen(prefix);

    if (!hn_walk_msgid(w, m, seq))
        return false;
    if (!strncmp(subj, prefix, pl) && !strcmp(subj + pl, ".master"))
        return hn_walk_master(w, m, seq);
    if (!strncmp(subj, prefix, pl) && !strcmp(subj + pl, ".changes"))
        return hn_walk_changes(w, m, seq);
    snprintf(w->why, w->whylen, "seq %llu: unexpected subject %s", (unsigned long long)seq, subj);
    return false;
}

static bool hn_walk_dups(hn_walk *w)
{
    qsort(w->msgids, w->nmsgids, sizeof(char *), hn_cmp_str);
    for (size_t i = 1; i < w->nmsgids; i++)
        if (!strcmp(w->msgids[i - 1], w->msgids[i])) {
            snprintf(w->why, w->whylen, "Nats-Msg-Id %s appears twice", w->msgids[i]);
            return false;
        }
    return true;
}

bool hn_chain_check(hn_chain *out, jsCtx *js, const char *stream, const char *prefix, char *why,
                    size_t whylen)
{
    hn_walk w = {.out = out, .why = why, .whylen = whylen};
    uint64_t first = 0, last = 0;
    bool ok = true;

    memset(out, 0, sizeof(*out));
    why[0] = '\0';
    if (!hn_stream_info(js, stream, &first, &last, NULL)) {
        snprintf(why, whylen, "no stream %s", stream);
        return false;
    }
    for (uint64_t seq = first; ok && last > 0 && seq <= last; seq++) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        if (js_GetMsg(&m, js, stream, seq, NULL, &jerr) != NATS_OK)
            continue; /* deleted (a hostile test's purge) */
        ok = hn_walk_msg(&w, m, seq, prefix);
        natsMsg_Destroy(m);
    }
    if (ok)
        ok = hn_walk_dups(&w);
    out->identities = w.nids;
    for (size_t i = 0; i < w.nmsgids; i++)
        free(w.msgids[i]);
    free(w.msgids);
    return ok;
}

#endif /* VERSO_HAVE_NATS */

/* ---- other children ---- */

static void hn_proc_exec(char *const *argv, int outfd, pid_t parent)
{
    int null = open("/dev/null", O_WRONLY);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    dup2(outfd >= 0 ? outfd : null, STDOUT_FILENO);
    dup2(outfd >= 0 ? outfd : null, STDERR_FILENO);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

void hn_proc_spawn(hn_proc *p, char *const *argv, bool capture)
{
    pid_t parent = getpid();
    int fds[2] = {-1, -1};

    if (capture)
        assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0)
        hn_proc_exec(argv, fds[1], parent);
    hn_child_add(p->pid);
    p->out = NULL;
    if (capture) {
        close(fds[1]);
        assert_non_null(p->out = fdopen(fds[0], "r"));
    }
}

int hn_proc_wait(hn_proc *p, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int status = 0;
    pid_t r;

    if (p->pid <= 0)
        return -1;
    while ((r = waitpid(p->pid, &status, WNOHANG)) == 0) {
        if (h_now_ms() > deadline)
            return -1;
        h_sleep_ms(10);
    }
    hn_child_remove(p->pid);
    p->pid = 0;
    if (p->out)
        fclose(p->out);
    p->out = NULL;
    if (r < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int hn_proc_kill(hn_proc *p, int sig)
{
    int rc;

    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    if ((rc = hn_proc_wait(p, 10000)) == -1) {
        kill(p->pid, SIGKILL);
        rc = hn_proc_wait(p, 10000);
    }
    return rc;
}

bool hn_proc_read_until(hn_proc *p, const char *text, int timeout_ms, char *all, size_t n)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    char line[1024];

    while (p->out && h_now_ms() < deadline) {
        struct pollfd pf = {.fd = fileno(p->out), .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        if (!fgets(line, sizeof(line), p->out))
            return false;
        if (all && strlen(all) + strlen(line) < n)
            strcat(all, line);
        if (strstr(line, text))
            return true;
    }
    return false;
}

int hn_run(char *const *argv, int timeout_ms, char *out, size_t n)
{
    hn_proc p;
    int rc;

    if (out && n)
        out[0] = '\0';
    hn_proc_spawn(&p, argv, true);
    hn_proc_read_until(&p, "\x01never\x01", timeout_ms, out, n); /* to EOF */
    if ((rc = hn_proc_wait(&p, 2000)) == -1)
        hn_proc_kill(&p, SIGKILL); /* still running: rc stays -1 */
    return rc;
}

void hn_shell(const char *db, const char *sql)
{
    char *argv[] = {"/usr/bin/sqlite3", "-bail",     "-cmd", ".timeout 5000",
                    (char *)db,         (char *)sql, NULL};
    char out[1024];

    if (hn_run(argv, 20000, out, sizeof(out)) != 0)
        fail_msg("sqlite3 %s: %s", sql, out);
}

/* ---- verso's publisher and follower ---- */

verso_nats_publisher *hn_pub_start(const char *db, const char *urls, const char *stream,
                                   verso_nats_publish_options *o)
{
    verso_nats_publish_options d = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *p = NULL;
    char why[256] = "";
    int rc;

    if (!o) {
        o = &d;
        o->snapshot_every_ms = -1;
    }
    o->stream = stream;
    if (!o->db.ntables)
        h_db_options(&o->db);
    o->retry_min_ms = o->retry_min_ms ? o->retry_min_ms : 20;
    o->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : 300;
    if ((rc = verso_nats_publish_start(&p, db, urls, o, why, sizeof(why))) < 0)
        fail_msg("publisher of %s to %s: %s (%s)", db, urls, why, verso_strerror(rc));
    return p;
}

const char *hn_follow_url(char *buf, size_t n, const char *urls, const char *stream)
{
    char list[512], *save = NULL;
    size_t off = (size_t)snprintf(buf, n, "nats://");

    snprintf(list, sizeof(list), "%s", urls);
    for (char *u = strtok_r(list, ",", &save); u && off < n; u = strtok_r(NULL, ",", &save)) {
        if (!strncmp(u, "nats://", 7))
            u += 7;
        off += (size_t)snprintf(buf + off, n - off, "%s%s", off > 7 ? "," : "", u);
    }
    if (off < n)
        snprintf(buf + off, n - off, "/%s", stream);
    return buf;
}

verso_nats_follower *hn_follow_start(const char *db, const char *urls, const char *stream,
                                     const char *master_url, verso_nats_follow_options *o)
{
    verso_nats_follow_options d = VERSO_NATS_FOLLOW_OPTIONS_INIT;
    verso_nats_follower *f = NULL;
    char why[256] = "", url[600];
    int rc;

    if (!o)
        o = &d;
    /* no C tables: a follower's file takes the master's (a file snapshot needs that too) */
    o->master_url = master_url;
    o->slave.retry_min_ms = o->slave.retry_min_ms ? o->slave.retry_min_ms : 20;
    o->slave.retry_max_ms = o->slave.retry_max_ms ? o->slave.retry_max_ms : 300;
    hn_follow_url(url, sizeof(url), urls, stream);
    if ((rc = verso_nats_follow_start(&f, db, url, o, why, sizeof(why))) < 0)
        fail_msg("follower of %s into %s: %s (%s)", url, db, why, verso_strerror(rc));
    return f;
}

void hn_follow_wait_head(verso_nats_follower *f, const char *mpath, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    verso_slave_state st;
    verso_info info;

    for (;;) {
        verso_db *db = h_open(mpath);
        assert_int_equal(verso_db_info(&info, db), 0);
        verso_db_close(db);
        assert_int_equal(verso_nats_follow_state_get(&st, f), 0);
        if (st.cursor == info.head && !strcmp(st.master, info.identity))
            return;
        if (h_now_ms() > deadline)
            fail_msg("follower at %lld of %s, master head %lld of %s (link %s, resyncs %lld, "
                     "error '%s')",
                     (long long)st.cursor, st.master, (long long)info.head, info.identity,
                     verso_slave_link_name(st.link), (long long)st.resyncs, st.last_error);
        h_sleep_ms(20);
    }
}

void hn_pub_wait_head(verso_nats_publisher *p, const char *mpath, int timeout_ms)
{
    int64_t head = h_head(mpath);
    verso_nats_publish_state st;

    if (verso_nats_publish_wait(p, head, timeout_ms) == 0)
        return;
    verso_nats_publish_state_get(&st, p);
    fail_msg("publisher: stream at %lld, head %lld (connected %d, error '%s')",
             (long long)st.published, (long long)head, st.connected, st.last_error);
}

#ifdef VERSO_HAVE_NATS

static const char *hn_hdr(natsMsg *m, const char *key)
{
    const char *v = NULL;

    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v ? v : "-";
}

void hn_dump_stream(FILE *f, const char *urls, const char *stream)
{
    char why[256];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    uint64_t first = 0, last = 0;

    if (!nc || !hn_stream_info(js, stream, &first, &last, NULL)) {
        fprintf(f, "# stream %s: cannot read it\n", stream);
        hn_disconnect(nc, js);
        return;
    }
    fprintf(f, "# stream %s, sequences %llu..%llu\n", stream, (unsigned long long)first,
            (unsigned long long)last);
    for (uint64_t seq = first; last > 0 && seq <= last; seq++) {
        natsMsg *m = NULL;
        jsErrCode jerr = 0;
        if (js_GetMsg(&m, js, stream, seq, NULL, &jerr) != NATS_OK)
            continue;
        fprintf(f, "#  %llu %s id=%.8s from=%s to=%s more=%s msgid=%s body=%.60s\n",
                (unsigned long long)seq, natsMsg_GetSubject(m), hn_hdr(m, "Verso-Identity"),
                hn_hdr(m, "Verso-From"), hn_hdr(m, "Verso-To"), hn_hdr(m, "Verso-More"),
                hn_hdr(m, "Nats-Msg-Id"), natsMsg_GetData(m) ? natsMsg_GetData(m) : "");
        natsMsg_Destroy(m);
    }
    hn_disconnect(nc, js);
}

void hn_assert_chain(hn_chain *out, const char *urls, const char *stream, const char *prefix)
{
    char why[512];
    jsCtx *js = NULL;
    natsConnection *nc = hn_connect(urls, &js, why, sizeof(why));
    bool ok;

    if (!nc)
        fail_msg("connect: %s", why);
    ok = hn_chain_check(out, js, stream, prefix, why, sizeof(why));
    hn_disconnect(nc, js);
    if (!ok) {
        hn_dump_stream(stderr, urls, stream);
        fail_msg("stream %s: %s", stream, why);
    }
}

#endif
