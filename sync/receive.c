/*
 * The slave side of /_sync's messages, shared by the live slave (slave.c)
 * and the pull's bootstrap (bootstrap.c): reading what the master sends,
 * writing subscribe, and receiving a file snapshot chunk by chunk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "orm/service.h"
#include "sync/internal.h"

/* First occurrence of key (n bytes) in msg (len bytes), or NULL. */
static const char *find(const char *msg, size_t len, const char *key, size_t n)
{
    for (const char *p = msg; p && (size_t)(msg + len - p) >= n;
         p = memchr(p + 1, key[0], (size_t)(msg + len - p - 1))) {
        if (memcmp(p, key, n) == 0)
            return p;
    }
    return NULL;
}

/* A snapshot message in the master's form, "data" last: 1 = read, 0 = not in that form. */
static int read_snapshot(verso__sync_msg *m, const char *text, size_t len, char *why, size_t whylen)
{
    static const char prefix[] = "{\"type\":\"snapshot\",", key[] = ",\"data\":\"";
    verso_buf head = VERSO_BUF_INIT;
    const char *at;
    int rc;

    if (len < sizeof(prefix) || memcmp(text, prefix, sizeof(prefix) - 1) != 0 ||
        memcmp(text + len - 2, "\"}", 2) != 0 || !(at = find(text, len, key, sizeof(key) - 1)))
        return 0;
    rc = verso_buf_append(&head, text, (size_t)(at - text));
    if (rc == 0)
        rc = verso_buf_puts(&head, "}");
    if (rc == 0 && verso_json_parse(&m->doc, head.data, head.len, 0, why, whylen) < 0)
        rc = VERSO_EPROTO;
    verso_buf_free(&head);
    if (rc < 0)
        return rc;
    m->data = at + sizeof(key) - 1;
    m->datalen = (size_t)(text + len - 2 - m->data);
    return 1;
}

int verso__sync_msg_read(verso__sync_msg *m, const char *text, size_t len, char *why, size_t whylen)
{
    const cJSON *data;
    int rc;

    memset(m, 0, sizeof(*m));
    if (why && whylen)
        why[0] = '\0';
    if ((rc = read_snapshot(m, text, len, why, whylen)) < 0)
        return rc;
    if (rc == 0 && verso_json_parse(&m->doc, text, len, 0, why, whylen) < 0)
        return VERSO_EPROTO;
    m->type = verso__sync_json_get_str(verso_json_root(m->doc), "type");
    if (m->data || !m->type || strcmp(m->type, "snapshot") != 0)
        return 0;
    data = cJSON_GetObjectItemCaseSensitive(verso_json_root(m->doc), "data");
    if (cJSON_IsString(data)) {
        m->data = data->valuestring;
        m->datalen = verso_json_strlen(data);
    }
    return 0;
}

void verso__sync_msg_free(verso__sync_msg *m)
{
    verso_json_free(m->doc);
    memset(m, 0, sizeof(*m));
}

int verso__sync_hello_read(verso__sync_hello *out, const cJSON *msg)
{
    const char *id = verso__sync_json_get_str(msg, "identity");

    if (!id || strlen(id) != 36 || verso__sync_json_get_i64(&out->head, msg, "head") < 0 ||
        verso__sync_json_get_i64(&out->horizon, msg, "horizon") < 0)
        return VERSO_EPROTO;
    memcpy(out->identity, id, sizeof(out->identity));
    if (verso__sync_json_get_i64(&out->heartbeat_ms, msg, "heartbeat_ms") < 0 ||
        out->heartbeat_ms <= 0)
        out->heartbeat_ms = 5000;
    return 0;
}

static int tables_json(verso_buf *b, char *const *tables, size_t n)
{
    int rc = verso_buf_puts(b, ",\"tables\":[");

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = i ? verso_buf_puts(b, ",") : 0;
        if (rc == 0)
            rc = verso_json_string(b, tables[i], strlen(tables[i]));
    }
    return rc == 0 ? verso_buf_puts(b, "]") : rc;
}

int verso__sync_subscribe_json(verso_buf *b, const verso__sync_subscription *sub)
{
    int rc = verso_buf_printf(b,
                              "{\"type\":\"subscribe\",\"identity\":\"%s\",\"cursor\":%lld,"
                              "\"reset\":%s,%s\"name\":",
                              sub->identity, (long long)sub->cursor, sub->reset ? "true" : "false",
                              sub->snapshot ? "\"snapshot\":true," : "");

    if (rc == 0)
        rc = verso_json_string(b, sub->name, strlen(sub->name));
    if (rc == 0 && sub->tables)
        rc = tables_json(b, sub->tables, sub->ntables);
    return rc == 0 ? verso_buf_puts(b, "}") : rc;
}

/* ---- receiving a file snapshot ---- */

void verso__sync_snaprx_init(verso__sync_snaprx *rx, verso_db *db)
{
    memset(rx, 0, sizeof(*rx));
    rx->db = db;
    verso__sync_snapshot_sweep(verso_db_path(db));
}

void verso__sync_snaprx_discard(verso__sync_snaprx *rx)
{
    if (rx->file)
        fclose(rx->file);
    rx->file = NULL;
    rx->offset = 0;
    if (rx->path[0])
        unlink(rx->path);
}

static int append(verso__sync_snaprx *rx, const char *b64, size_t len)
{
    ptrdiff_t n = verso_base64_decoded_len(b64, len);
    unsigned char *raw = n >= 0 ? verso__malloc((size_t)n + 1) : NULL;
    int rc = VERSO_EPROTO;

    if (raw && verso_base64_decode(raw, b64, len) == 0)
        rc = fwrite(raw, 1, (size_t)n, rx->file) == (size_t)n ? 0 : VERSO_EIO;
    rx->offset += rc == 0 ? n : 0;
    verso__free(raw);
    return rc;
}

static int install(verso__sync_snaprx *rx, const char *master, int64_t head)
{
    int rc = fclose(rx->file) == 0 ? 0 : VERSO_EIO;

    rx->file = NULL;
    rx->offset = 0;
    if (rc == 0)
        verso__crashpoint("snapshot.received");
    if (rc == 0)
        rc = verso__sync_snapshot_install(rx->db, rx->path, master, head, rx->why, sizeof(rx->why));
    if (rc < 0)
        return rc;
    memcpy(rx->master, master, sizeof(rx->master));
    rx->head = head;
    return 1;
}

int verso__sync_snaprx_chunk(verso__sync_snaprx *rx, const verso__sync_msg *m)
{
    const cJSON *msg = verso_json_root(m->doc);
    const char *master = verso__sync_json_get_str(msg, "identity");
    int64_t off, head;
    int rc = VERSO_EPROTO;

    rx->why[0] = '\0';
    if (!m->data || !master || strlen(master) != 36 ||
        verso__sync_json_get_i64(&off, msg, "offset") < 0 || off != rx->offset ||
        verso__sync_json_get_i64(&head, msg, "head") < 0)
        goto done;
    if (off == 0) {
        verso__sync_snaprx_discard(rx);
        verso__sync_snapshot_name(rx->path, sizeof(rx->path), verso_db_path(rx->db));
        rc = (rx->file = fopen(rx->path, "wb")) ? 0 : VERSO_EIO;
    }
    if (rx->file && (rc = append(rx, m->data, m->datalen)) == 0 &&
        verso__sync_json_get_bool(msg, "last"))
        rc = install(rx, master, head);
done:
    if (rc < 0)
        verso__sync_snaprx_discard(rx);
    return rc;
}
