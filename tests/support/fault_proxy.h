/*
 * A fault-injecting TCP proxy for the replication tests (libc + pthreads
 * only). It listens on 127.0.0.1, port 0, and forwards every accepted
 * connection to 127.0.0.1:upstream, on a thread of its own (poll-based).
 * The test switches it between modes at any time; fp_cut() resets every
 * open connection.
 */
#ifndef VERSO_TESTS_FAULT_PROXY_H
#define VERSO_TESTS_FAULT_PROXY_H

#include <stdint.h>

typedef struct fp_proxy fp_proxy;

typedef enum fp_mode {
    FP_PASS,      /* forward both ways */
    FP_STALL,     /* move nothing: bytes wait in the sockets and flow again afterwards;
                     new connections are accepted and connected upstream */
    FP_THROTTLE,  /* forward at most `rate` bytes per second in each direction */
    FP_BLACKHOLE, /* read and drop everything, write nothing; a connection accepted now is
                     never connected upstream. Connections that saw it stay dead for good
                     (silent: no FIN, no RST) until their peer closes them */
} fp_mode;

typedef struct fp_stats {
    int64_t accepted;  /* connections accepted */
    int64_t open;      /* connections open now */
    int64_t cut;       /* connections reset by fp_cut() */
    int64_t forwarded; /* bytes written to either side */
    int64_t dropped;   /* bytes read and dropped (black hole) */
    int64_t refused;   /* upstream connects that failed */
} fp_stats;

/* Starts a proxy to 127.0.0.1:upstream in FP_PASS mode. 0 or -1 (errno). */
int fp_start(fp_proxy **out, int upstream);

/* The port it listens on. */
int fp_port(const fp_proxy *p);

/* Switches mode (rate: bytes per second per direction, used by FP_THROTTLE). Any thread. */
void fp_set(fp_proxy *p, fp_mode mode, int rate);

/* Resets (RST, both sides) every open connection, dead ones included;
 * returns how many. Any thread; returns once done. */
int fp_cut(fp_proxy *p);

void fp_stats_get(fp_stats *out, fp_proxy *p);

/* Stops the thread and closes everything. NULL is a no-op. */
void fp_stop(fp_proxy *p);

#endif
