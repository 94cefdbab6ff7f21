/*
 * rest/direvents.c - the events WebSocket of a dir server (/_databases,
 * subprotocol verso-databases.1).
 */
#include <string.h>

#include "rest/dirint.h"

void verso__dir_changed(verso__dir *d, const char *name)
{
    (void)d;
    (void)name;
}

void verso__dir_deleted(verso__dir *d, const char *name)
{
    (void)d;
    (void)name;
}

static int ev_open(verso_ws *ws, void **cp, void *arg)
{
    (void)ws;
    (void)cp;
    (void)arg;
    return -1;
}

verso_ws_handler verso__direvents_handler(verso__dir *d)
{
    return (verso_ws_handler){.path = "/_databases",
                              .subprotocol = "verso-databases.1",
                              .role = "replicate",
                              .on_open = ev_open,
                              .arg = d};
}

int verso__direvents_open(verso__dir *d)
{
    (void)d;
    return 0;
}

void verso__direvents_close(verso__dir *d)
{
    (void)d;
}

void verso__direvents_tick(verso__dir *d)
{
    (void)d;
}
