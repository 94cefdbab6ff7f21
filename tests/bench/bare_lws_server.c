/*
 * bare_lws_server - the baseline of the REST benchmark: a libwebsockets HTTP
 * server that answers every request (after reading its body) with the same
 * fixed ~200-byte JSON body, headers and body in one write.
 *
 * usage: bare_lws_server [port]   (port 0 = pick; prints "port N" on stdout)
 * Runs until SIGINT/SIGTERM.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop;

static const char k_body[] =
    "{\"id\":4242,\"version\":4243,\"name\":\"item number 4242\",\"price\":12.5,"
    "\"qty\":7,\"note\":\"a fixed body of about two hundred bytes, the size of a "
    "typical row of the benchmark table\",\"ok\":true}";

static int send_fixed(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    char len[24];
    int n = snprintf(len, sizeof(len), "%zu", sizeof(k_body) - 1);

    if (lws_add_http_header_status(wsi, 200, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (const unsigned char *)len,
                                     n, &p, end) ||
        lws_finalize_http_header(wsi, &p, end))
        return -1;
    memcpy(p, k_body, sizeof(k_body) - 1);
    p += sizeof(k_body) - 1;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int has_body(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (has_body(wsi) && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
            return 0;
        return send_fixed(wsi);
    case LWS_CALLBACK_HTTP_BODY:
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return send_fixed(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols k_protocols[] = {
    {.name = "http", .callback = callback},
    {0},
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    struct lws_context *ctx;

    memset(&info, 0, sizeof(info));
    info.port = argc > 1 ? atoi(argv[1]) : 0;
    info.iface = "127.0.0.1";
    info.protocols = k_protocols;
    info.alpn = "http/1.1";
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    lws_set_log_level(LLL_ERR, NULL);
    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "bare_lws_server: cannot listen\n");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("port %d\n", lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default")));
    fflush(stdout);
    while (!g_stop && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    return 0;
}
