/*
 * rest/dir.h - the dir server's interface used by the admin routes
 * (contract section 3). Declarations only, as the contract gives them: the
 * dir server (branch i11-dir) implements them and owns this file; at merge
 * its version replaces this one.
 */
#ifndef VERSO_REST_DIR_H
#define VERSO_REST_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "rest/internal.h"

typedef struct verso__dir verso__dir; /* srv->dir; NULL on a one-database server */
const char *verso__dir_path(const verso__dir *d);
/* Live slaves (/db/<name>/_sync WebSockets, subscribed) of name; 0 when closed. */
int verso__dir_followers(verso__dir *d, const char *name);
/* Closes name if open: its WebSockets get close 1001, later requests reopen it. */
void verso__dir_evict(verso__dir *d, const char *name);
/* head and identity of name (opens it briefly when closed); ENOTFOUND. */
int verso__dir_head(verso__dir *d, const char *name, int64_t *head, char *identity, size_t idlen);
/* Tell the events channel: name was created or changed / was deleted. */
void verso__dir_changed(verso__dir *d, const char *name);
void verso__dir_deleted(verso__dir *d, const char *name);

#endif
