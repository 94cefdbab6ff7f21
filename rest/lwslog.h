/* rest/lwslog.h - libwebsockets' log level, one setting for the process
 * (internal; used by rest/ and sync/). */
#ifndef VERSO_REST_LWSLOG_H
#define VERSO_REST_LWSLOG_H

/*
 * Sets libwebsockets' process-wide log level once, before the first
 * context verso creates: silent (verso reports failures itself, once),
 * unless the environment variable VERSO_LWS_LOG gives lws's level mask
 * (for example 7: errors, warnings, notices). Any thread; idempotent.
 */
void verso__lws_log_init(void);

#endif
