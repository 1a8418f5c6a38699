/* One blocking HTTP exchange with libcurl's easy interface (see ledger.h).
 *
 * A call sets up an easy handle (the caller's, so a ledger_client keeps its
 * connections alive between calls, or a fresh one for the one-shot
 * ledger_http_request), runs curl_easy_perform, and turns libcurl's result
 * into a LEDGER_CLIENT_* code and a one-line reason. Connecting is bounded
 * by min(timeout, LEDGER_CLIENT_CONNECT_MS), the whole exchange by the
 * timeout. Whether any byte of the request left (CURLINFO_REQUEST_SIZE)
 * tells a connect failure (ECONNECT: nothing was delivered, any endpoint
 * may be tried) from a failure after sending (EIO: the outcome is unknown).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "client_int.h"

#define CLIENT__MAX_BODY (256u << 20) /* Refuse responses above 256 MiB. */

static pthread_once_t clientOnce = PTHREAD_ONCE_INIT;
static void clientGlobalInit(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Growable byte buffer, always NUL-terminated once allocated. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static int bufAppend(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *data;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        data = realloc(b->data, cap);
        if (data == NULL) {
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

struct exchange {
    struct buf body;
    struct buf headers;
    int too_big;
    void *easy;
    struct client_sink *sink; /* NULL: the body goes to `body`. */
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void ledger_http_response_free(struct ledger_http_response *r)
{
    if (r == NULL) {
        return;
    }
    free(r->content_type);
    free(r->retry_after);
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

static size_t writeFn(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct exchange *x = userdata;
    size_t n = size * nmemb;
    if (x->sink != NULL) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            if (x->sink->fn(x->sink->arg, ptr, n) != 0) {
                x->sink->stopped = 1;
                return 0;
            }
            return n;
        }
    }
    if (x->body.len + n > CLIENT__MAX_BODY) {
        x->too_big = 1;
        return 0;
    }
    return bufAppend(&x->body, ptr, n) == 0 ? n : 0;
}

static size_t headerFn(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct exchange *x = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        x->headers.len = 0; /* a new response (after 100 Continue) */
        return n;
    }
    return bufAppend(&x->headers, ptr, n) == 0 ? n : 0;
}

/* Copy of header `name`'s value, or NULL (also when absent). */
static char *headerDup(const char *raw, const char *name, int *found)
{
    size_t nl = strlen(name);
    const char *p = raw;

    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            char *out;
            while (vl > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
                vl--;
            }
            if (found != NULL) {
                *found = 1;
            }
            out = malloc(vl + 1);
            if (out != NULL) {
                memcpy(out, v, vl);
                out[vl] = '\0';
            }
            return out;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

/* "HOST:PORT", "http://HOST:PORT" or "https://HOST:PORT" with a numeric
 * port: 0, else -1. *https tells the scheme. */
int client__parse_endpoint(const char *addr, const char **hostport, int *https)
{
    const char *colon;
    const char *p;

    *https = 0;
    if (strncmp(addr, "https://", 8) == 0) {
        *https = 1;
        addr += 8;
    } else if (strncmp(addr, "http://", 7) == 0) {
        addr += 7;
    }
    colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0' ||
        strlen(colon + 1) > 5) {
        return -1;
    }
    for (p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
    }
    *hostport = addr;
    return 0;
}

/* Header lines "Name: value\r\n" into a curl_slist; NULL on OOM. */
static struct curl_slist *headerList(const char *headers, int one_shot,
                                     int *oom)
{
    struct curl_slist *l = NULL;
    struct curl_slist *t;
    const char *p = headers;
    char line[4096];

    *oom = 0;
    t = curl_slist_append(l, "Expect:");
    if (t == NULL) {
        goto out_oom;
    }
    l = t;
    if (one_shot) {
        t = curl_slist_append(l, "Connection: close");
        if (t == NULL) {
            goto out_oom;
        }
        l = t;
    }
    if (headers == NULL || strcasestr(headers, "Content-Type:") == NULL) {
        /* No form content type made up by libcurl for a POST. */
        t = curl_slist_append(l, "Content-Type:");
        if (t == NULL) {
            goto out_oom;
        }
        l = t;
    }
    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (ll > 0 && ll < sizeof line) {
            memcpy(line, p, ll);
            line[ll] = '\0';
            t = curl_slist_append(l, line);
            if (t == NULL) {
                goto out_oom;
            }
            l = t;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return l;

out_oom:
    curl_slist_free_all(l);
    *oom = 1;
    return NULL;
}

/* strerror() with a lower-case first letter, to read well after a colon. */
static const char *errnoText(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z')) {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
    return buf;
}

int client__exchange(void *easy, const struct client_tls *tls, int one_shot,
                     const char *addr, const char *method, const char *path,
                     const char *headers, const char *body, size_t body_len,
                     unsigned timeout_ms, struct ledger_http_response *out,
                     char *err, size_t errlen, struct client_sink *sink)
{
    CURL *e = easy;
    const char *hostport;
    int https;
    char url[2304];
    struct exchange x;
    struct curl_slist *hl;
    unsigned connect_ms;
    CURLcode rc;
    long code = 0;
    long sent = 0;
    long os_errno = 0;
    int oom;
    int rv;
    char ebuf[96];

    memset(out, 0, sizeof *out);
    memset(&x, 0, sizeof x);
    x.easy = easy;
    x.sink = sink;
    if (client__parse_endpoint(addr, &hostport, &https) != 0) {
        errf(err, errlen,
             "bad address '%s': expected HOST:PORT, e.g. 127.0.0.1:8001", addr);
        return LEDGER_CLIENT_EINVAL;
    }
    if (!https && tls != NULL &&
        (tls->ca != NULL || tls->cert != NULL || tls->key != NULL) &&
        strncmp(addr, "http://", 7) != 0) {
        https = 1; /* TLS files given: HOST:PORT means https. */
    }
    if (path[0] != '/' ||
        (size_t)snprintf(url, sizeof url, "%s://%s%s", https ? "https" : "http",
                         hostport, path) >= sizeof url) {
        errf(err, errlen, "bad path '%.64s'", path);
        return LEDGER_CLIENT_EINVAL;
    }
    hl = headerList(headers, one_shot, &oom);
    if (oom) {
        errf(err, errlen, "out of memory");
        return LEDGER_CLIENT_ENOMEM;
    }
    connect_ms = timeout_ms < LEDGER_CLIENT_CONNECT_MS
                     ? timeout_ms
                     : LEDGER_CLIENT_CONNECT_MS;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, writeFn);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, headerFn);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
    if (sink != NULL) {
        /* A long transfer: bounded by progress, not by its length. */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                         (long)(sink->stall_ms + 999) / 1000);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (strcmp(method, "POST") != 0) {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        }
    }
    if (tls != NULL) {
        if (tls->ca != NULL) {
            curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca);
        }
        if (tls->cert != NULL) {
            curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert);
        }
        if (tls->key != NULL) {
            curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key);
        }
    }

    rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent);
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    curl_slist_free_all(hl);

    switch (rc) {
    case CURLE_OK:
        rv = LEDGER_CLIENT_OK;
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        errf(err, errlen, "connect %s: %s", addr,
             os_errno != 0 ? errnoText((int)os_errno, ebuf, sizeof ebuf)
                           : curl_easy_strerror(rc));
        rv = LEDGER_CLIENT_ECONNECT;
        goto out_fail;
    case CURLE_OPERATION_TIMEDOUT:
        if (sink != NULL && sent != 0) {
            errf(err, errlen, "%s %s on %s: no data for %u s", method, path,
                 addr, (sink->stall_ms + 999) / 1000);
            rv = LEDGER_CLIENT_EIO;
        } else if (sent == 0) {
            errf(err, errlen, "connect %s: no connection after %u ms", addr,
                 connect_ms);
            rv = LEDGER_CLIENT_ECONNECT;
        } else {
            errf(err, errlen, "%s %s on %s: no answer after %u ms", method,
                 path, addr, timeout_ms);
            rv = LEDGER_CLIENT_EIO;
        }
        goto out_fail;
    case CURLE_OUT_OF_MEMORY:
        errf(err, errlen, "out of memory");
        rv = LEDGER_CLIENT_ENOMEM;
        goto out_fail;
    case CURLE_WRITE_ERROR:
        if (sink != NULL && sink->stopped) {
            errf(err, errlen, "%s %s on %s: stopped by the receiver", method,
                 path, addr);
            rv = LEDGER_CLIENT_EIO;
            goto out_fail;
        }
        errf(err, errlen, "%s %s on %s: %s", method, path, addr,
             x.too_big ? "response body over 256 MiB" : "out of memory");
        rv = x.too_big ? LEDGER_CLIENT_EPROTO : LEDGER_CLIENT_ENOMEM;
        goto out_fail;
    case CURLE_GOT_NOTHING:
        errf(err, errlen, "%s %s on %s: connection closed without a response",
             method, path, addr);
        rv = LEDGER_CLIENT_EPROTO;
        goto out_fail;
    case CURLE_PARTIAL_FILE:
        errf(err, errlen,
             "%s %s on %s: connection closed in the middle of the response",
             method, path, addr);
        rv = LEDGER_CLIENT_EPROTO;
        goto out_fail;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
        errf(err, errlen, "%s %s on %s: malformed HTTP response", method, path,
             addr);
        rv = LEDGER_CLIENT_EPROTO;
        goto out_fail;
    default:
        errf(err, errlen, "%s %s on %s: %s", method, path, addr,
             curl_easy_strerror(rc));
        rv = sent == 0 ? LEDGER_CLIENT_ECONNECT : LEDGER_CLIENT_EIO;
        goto out_fail;
    }

    out->status = (int)code;
    if (x.headers.data != NULL) {
        out->content_type = headerDup(x.headers.data, "Content-Type", NULL);
        out->retry_after = headerDup(x.headers.data, "Retry-After", NULL);
        free(headerDup(x.headers.data, "X-Ledger-Duplicate", &out->duplicate));
    }
    if (x.body.data == NULL && bufAppend(&x.body, "", 0) != 0) {
        ledger_http_response_free(out);
        free(x.headers.data);
        errf(err, errlen, "out of memory");
        return LEDGER_CLIENT_ENOMEM;
    }
    out->body = x.body.data;
    out->body_len = x.body.len;
    out->headers = x.headers.data;
    return LEDGER_CLIENT_OK;

out_fail:
    free(x.body.data);
    free(x.headers.data);
    return rv;
}

void *client__easy_new(void)
{
    pthread_once(&clientOnce, clientGlobalInit);
    return curl_easy_init();
}

void client__easy_free(void *easy)
{
    curl_easy_cleanup(easy);
}

int ledger_http_request_tls(const char *addr, const char *method,
                            const char *path, const char *headers,
                            const char *body, size_t body_len,
                            unsigned timeout_ms, const char *ca_file,
                            const char *cert_file, const char *key_file,
                            struct ledger_http_response *out, char *err,
                            size_t errlen)
{
    struct client_tls tls = {(char *)ca_file, (char *)cert_file,
                             (char *)key_file};
    void *e = client__easy_new();
    int rv;

    if (e == NULL) {
        memset(out, 0, sizeof *out);
        errf(err, errlen, "out of memory");
        return LEDGER_CLIENT_ENOMEM;
    }
    rv = client__exchange(e, &tls, 1, addr, method, path, headers, body,
                          body_len, timeout_ms, out, err, errlen, NULL);
    client__easy_free(e);
    return rv;
}

int ledger_http_request(const char *addr, const char *method, const char *path,
                        const char *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, struct ledger_http_response *out,
                        char *err, size_t errlen)
{
    return ledger_http_request_tls(addr, method, path, headers, body, body_len,
                                   timeout_ms, NULL, NULL, NULL, out, err,
                                   errlen);
}

const char *ledger_client_strerror(int code)
{
    switch (code) {
    case LEDGER_CLIENT_OK:
        return "ok";
    case LEDGER_CLIENT_ECONNECT:
        return "connect";
    case LEDGER_CLIENT_EIO:
        return "io";
    case LEDGER_CLIENT_EPROTO:
        return "protocol";
    case LEDGER_CLIENT_ENOMEM:
        return "out of memory";
    case LEDGER_CLIENT_EINVAL:
        return "invalid argument";
    case LEDGER_CLIENT_ENOENDPOINT:
        return "no endpoint";
    default:
        return "unknown";
    }
}

char *ledger_http_response_header(const struct ledger_http_response *r,
                                  const char *name)
{
    return r->headers != NULL ? headerDup(r->headers, name, NULL) : NULL;
}
