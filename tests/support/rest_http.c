/* An HTTP client for the REST tests (libcurl + libc only). */
#include "rest_http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *rt_cainfo;

typedef struct sink {
    char *p;
    size_t n;
} sink;

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
    sink *s = arg;
    size_t n = size * nmemb;
    char *grown = realloc(s->p, s->n + n + 1);

    if (!grown)
        return 0;
    memcpy(grown + s->n, data, n);
    s->n += n;
    grown[s->n] = 0;
    s->p = grown;
    return n;
}

static struct curl_slist *make_headers(const char *const *headers)
{
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");

    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    return list;
}

int rt_request(rt_resp *out, const char *method, const char *url, const char *body, size_t nbody,
               const char *const *headers)
{
    sink b = {0}, h = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *list = make_headers(headers);
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (rt_cainfo)
        curl_easy_setopt(c, CURLOPT_CAINFO, rt_cainfo);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)nbody);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = b.p ? b.p : calloc(1, 1);
    out->nbody = b.n;
    out->headers = h.p ? h.p : calloc(1, 1);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

const char *rt_header(const rt_resp *r, const char *name, char *buf, size_t n)
{
    size_t len = strlen(name);

    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t line = eol ? (size_t)(eol - p) : strlen(p);
        if (line > len && p[len] == ':' && !strncasecmp(p, name, len)) {
            const char *v = p + len + 1;
            while (*v == ' ')
                v++;
            size_t vn = line - (size_t)(v - p);
            if (vn >= n)
                vn = n - 1;
            memcpy(buf, v, vn);
            buf[vn] = 0;
            return buf;
        }
        p += line + (eol ? 2 : 0);
    }
    return NULL;
}

void rt_resp_free(rt_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}
