/*
 * nats_harness.h - real nats-server processes for the tests/test_nats_*.c
 * programs and the NATS benchmark; the bodies are in
 * tests/support/nats_harness.c.
 *
 * Each server is a child `nats-server -js -c CONF` bound to 127.0.0.1 on
 * ports picked free by binding, its config, log and JetStream store under
 * the test's directory (h_dir, see sync_harness.h). Readiness is a TCP
 * connection that reads the server's INFO line; JetStream readiness (and a
 * cluster's meta leader) is a JetStream API call that succeeds, polled with
 * a deadline. Children die with the test: PR_SET_PDEATHSIG, and an atexit
 * handler that kills every server still running (a failed cmocka test
 * returns through longjmp, the process still exits through it).
 *
 * Without libnats (VERSO_HAVE_NATS undefined) the process part still
 * builds; the JetStream calls (hn_js_*, hn_connect, hn_chain_*) do not exist.
 */
#ifndef VERSO_TEST_NATS_HARNESS_H
#define VERSO_TEST_NATS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef VERSO_HAVE_NATS
#include <nats/nats.h>
#endif

#include "sync_harness.h"
#include "verso/nats.h"

/* True when a nats-server binary is on PATH (the tests skip otherwise). */
bool hn_have_server(void);

/* A port of 127.0.0.1 free when asked (never one this process handed out before). */
int hn_free_port(void);

typedef struct hn_server {
    pid_t pid;        /* 0 when not running */
    int port;         /* client port */
    int cluster_port; /* 0 for a standalone server */
    char name[32];    /* server_name */
    char dir[560];    /* its directory: config, log, store */
    char conf[600];   /* config file */
    char log[600];    /* log file (stdout and stderr too) */
    char url[64];     /* nats://127.0.0.1:port */
} hn_server;

/* Starts a standalone JetStream server named name (dir h_dir/name) and
 * waits until it answers, JetStream included; fails the test otherwise. */
void hn_start(hn_server *s, const char *name);
/* Sends sig (SIGKILL, SIGTERM, ...) and reaps the child; a server that does
 * not exit within 10 s of a SIGTERM is killed. No-op when not running. */
void hn_kill(hn_server *s, int sig);
/* Starts s again with the same ports, config and store; waits for its INFO
 * line (not for JetStream: a cluster node's readiness is the cluster's). */
void hn_restart(hn_server *s);
/* Waits until a TCP connection to port reads an INFO line. */
bool hn_wait_info(int port, int timeout_ms);
/* Kills (SIGKILL) and reaps every server this process started; atexit calls it. */
void hn_kill_all(void);
/* Removes h_dir/<name> recursively (a server's store): for a passing test. */
void hn_remove_tree(const char *path);

/* ---- other children: `verso publish`, `verso replicate`, the sqlite3 shell ---- */

typedef struct hn_proc {
    pid_t pid; /* 0 when not running */
    FILE *out; /* its stdout and stderr, merged (NULL when not captured) */
} hn_proc;

/* Starts argv (argv[0] is a path) with stdout and stderr into p->out (capture) or
 * /dev/null; it dies with the test (PR_SET_PDEATHSIG, atexit). */
void hn_proc_spawn(hn_proc *p, char *const *argv, bool capture);
/* Waits at most timeout_ms for p to exit: its exit code, 128 + signal, or -1 (still running). */
int hn_proc_wait(hn_proc *p, int timeout_ms);
/* Sends sig, waits (SIGKILL after 10 s) and returns what hn_proc_wait returns. */
int hn_proc_kill(hn_proc *p, int sig);
/* Reads p's output lines until one contains text (true) or timeout_ms pass / EOF (false);
 * everything read is appended to all (may be NULL), truncated to n bytes. */
bool hn_proc_read_until(hn_proc *p, const char *text, int timeout_ms, char *all, size_t n);
/* Runs argv to its end (at most timeout_ms); returns its exit code (-1 on timeout) and its
 * output in out (may be NULL). */
int hn_run(char *const *argv, int timeout_ms, char *out, size_t n);
/* One transaction through the sqlite3 shell program on db. */
void hn_shell(const char *db, const char *sql);

#define HN_NODES 3

typedef struct hn_cluster {
    hn_server node[HN_NODES];
    char urls[256]; /* nats://127.0.0.1:p1,nats://127.0.0.1:p2,nats://127.0.0.1:p3 */
    char name[32];  /* the cluster's name */
} hn_cluster;

/* Starts a 3-node JetStream cluster (names <prefix>1..3, routes to each
 * other) and waits until a stream of 3 replicas can be created; fails the
 * test otherwise. */
void hn_cluster_start(hn_cluster *c, const char *prefix);
void hn_cluster_stop(hn_cluster *c);

#ifdef VERSO_HAVE_NATS

/* A connection to urls (comma-separated) with a JetStream context; NULL on
 * failure (the reason into why). The caller destroys both with hn_disconnect. */
natsConnection *hn_connect(const char *urls, jsCtx **js, char *why, size_t whylen);
void hn_disconnect(natsConnection *nc, jsCtx *js);
/* Polls a JetStream API call until it succeeds (a cluster: until a meta
 * leader answers and a stream of replicas copies can be created). */
bool hn_js_wait(const char *urls, int replicas, int timeout_ms);
/* Last sequence and message count of a stream (false if it does not exist). */
bool hn_stream_info(jsCtx *js, const char *stream, uint64_t *first, uint64_t *last, uint64_t *msgs);

/* The value of header key of m as an int64 (-1 when missing or not a number). */
int64_t hn_header_int(natsMsg *m, const char *key);
/* The last message of subject in stream (NULL: none, or no stream): asked only once the
 * stream holds messages, as sync/nats_common.c does (nats-server 2.9.10 can crash on a
 * last-message request that meets the stream's creation). */
natsMsg *hn_last_msg(jsCtx *js, const char *stream, const char *subject);

/*
 * Reads a whole stream (js_GetMsg from its first to its last sequence) and
 * checks the publisher's promises on the subject <prefix>.changes: for each
 * identity, Verso-From of a message equals Verso-To of the previous message
 * of that identity (the first message of an identity starts at the head its
 * <prefix>.master message announced, when that one is still in the stream);
 * Verso-To > Verso-From; no Nats-Msg-Id appears twice; the last message of
 * an identity may have Verso-More 1 only as the stream's last. The failure
 * is described in why (false) so the test can print it.
 */
typedef struct hn_chain {
    int64_t messages;   /* <prefix>.changes messages read */
    int64_t masters;    /* <prefix>.master messages read */
    int64_t identities; /* distinct Verso-Identity values of changes messages */
    int64_t last_to;    /* Verso-To of the last changes message */
    int64_t entries;    /* entries of all changes bodies */
    char last_identity[37];
} hn_chain;

bool hn_chain_check(hn_chain *out, jsCtx *js, const char *stream, const char *prefix, char *why,
                    size_t whylen);
/* Prints every message of the stream (sequence, subject, Verso-* headers, Nats-Msg-Id, the
 * first bytes of the body) to f: what a failing test shows. */
void hn_dump_stream(FILE *f, const char *urls, const char *stream);
/* When set, a changes message that repeats a range the chain already holds (from below and to
 * at most where it stands) is accepted: two publishers of one database may race to publish the
 * same states (harmless to followers: a duplicate of what they have). Never a gap. */
extern bool hn_chain_allow_redundant;

/* hn_chain_check on a new connection to urls; fails the test with why when the chain is broken. */
void hn_assert_chain(hn_chain *out, const char *urls, const char *stream, const char *prefix);

#endif /* VERSO_HAVE_NATS */

/* ---- verso's publisher and follower in this process (every build has the symbols) ---- */

/* Starts a publisher of db to urls on stream (o may be NULL: defaults, the test tables,
 * fast retries); fails the test with why otherwise. */
verso_nats_publisher *hn_pub_start(const char *db, const char *urls, const char *stream,
                                   verso_nats_publish_options *o);
/* Starts a follower of nats://.../stream into db, bootstrapping from master_url (may be
 * NULL); o may be NULL. Fails the test with why otherwise. */
verso_nats_follower *hn_follow_start(const char *db, const char *urls, const char *stream,
                                     const char *master_url, verso_nats_follow_options *o);
/* Writes "nats://h:p[,h:p...]/stream" for urls ("nats://h:p[,nats://h:p...]") into buf. */
const char *hn_follow_url(char *buf, size_t n, const char *urls, const char *stream);
/* Waits (bounded) until the follower's cursor is the master file's head under its identity;
 * fails the test with the follower's state otherwise. */
void hn_follow_wait_head(verso_nats_follower *f, const char *mpath, int timeout_ms);
/* Waits (bounded) until the publisher's stream holds the master file's head. */
void hn_pub_wait_head(verso_nats_publisher *p, const char *mpath, int timeout_ms);

#endif
