/* rest/lwslog.c - libwebsockets' log level (see lwslog.h). */
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>

#include "rest/lwslog.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void set_level(void)
{
    const char *lv = getenv("VERSO_LWS_LOG");

    lws_set_log_level(lv ? atoi(lv) : 0, NULL);
}

void verso__lws_log_init(void)
{
    pthread_once(&once, set_level);
}
