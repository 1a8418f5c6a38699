/* Asynchronous HTTP client: libcurl's multi interface on a libuv loop (see
 * client.h), the way curl's docs/examples/multi-uv.c does it:
 * CURLMOPT_SOCKETFUNCTION starts and stops one uv_poll_t per socket,
 * CURLMOPT_TIMERFUNCTION arms one uv_timer_t, each event runs
 * curl_multi_socket_action, and curl_multi_info_read reports finished
 * transfers.
 *
 * Objects:
 * - struct http_client: the multi handle, its timer, a free list of easy
 *   handles (curl_easy_reset keeps their connection-independent caches),
 *   and the calls in flight.
 * - struct http_call: one transfer: its easy handle, header list, copied
 *   body, and the response being collected.
 * - struct client_sock: one uv_poll_t per socket curl asks us to watch,
 *   attached to the socket with curl_multi_assign and freed in its close
 *   callback.
 *
 * Invariants:
 * - User callbacks run only from finishDone(), which is called from a uv
 *   callback after curl_multi_socket_action returned: never inside a curl
 *   callback, never inside http_client_request or http_call_cancel. It
 *   first takes every finished transfer out of the multi handle, then calls
 *   back one by one; a call cancelled meanwhile (by an earlier callback) is
 *   skipped.
 * - A call is in exactly one of: running (in the multi handle), finishing
 *   (taken out, callback pending), or freed.
 * - The client is freed once http_client_close ran, every call is freed
 *   and the timer and every poll handle are closed.
 */
#include "http/client.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http/buf.h"

#define CLIENT__MAX_IDLE 64                  /* Default idle connections. */
#define CLIENT__MAX_BODY (64u * 1024 * 1024) /* Default response cap. */
#define CLIENT__MAX_HEADERS (64 * 1024)      /* Response header cap. */
#define CLIENT__FREE_EASY 32                 /* Easy handles kept for reuse. */

struct http_call {
    http_client *c;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body; /* Copy of the request body (curl does not copy it). */
    http_client_cb cb;
    void *arg;
    struct http_buf resp_body;
    struct http_buf resp_headers;
    bool too_big;
    bool finishing;
    bool cancelled;
    CURLcode result;
    struct http_call *next; /* In c->calls, or the finishing list. */
    struct http_call *prev;
};

struct client_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    http_client *c;
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct http_call *calls; /* Running. */
    size_t n_calls;          /* Running and finishing. */
    CURL *free_easy[CLIENT__FREE_EASY];
    size_t n_free_easy;
    size_t max_body;
    char *ca_file;
    char *cert_file;
    char *key_file;
    bool https;     /* Addresses without a scheme are https. */
    size_t n_socks; /* Poll handles not yet closed. */
    bool closing;
    bool timer_closed;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static pthread_once_t clientOnce = PTHREAD_ONCE_INIT;
static void clientGlobalInit(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- Errors ---------------------------------------------------------- */

static int uvError(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_CONNECT:
        return UV_ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return UV_EAI_NONAME;
    case CURLE_OPERATION_TIMEDOUT:
        return UV_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return UV_ENOMEM;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        return UV_E2BIG;
    case CURLE_SEND_ERROR:
        return UV_EPIPE;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return UV_ECONNRESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return UV_ECONNABORTED;
    case CURLE_URL_MALFORMAT:
        return UV_EINVAL;
    default:
        return UV_EPROTO;
    }
}

/* ---- Client lifecycle ------------------------------------------------ */

static void clientMaybeFree(http_client *c)
{
    if (!c->closing || !c->timer_closed || c->n_socks > 0 || c->n_calls > 0) {
        return;
    }
    void (*cb)(void *) = c->close_cb;
    void *arg = c->close_arg;
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
    if (cb != NULL) {
        cb(arg);
    }
}

static void timerClosedCb(uv_handle_t *h)
{
    http_client *c = h->data;
    c->timer_closed = true;
    clientMaybeFree(c);
}

static void sockClosedCb(uv_handle_t *h)
{
    struct client_sock *s = h->data;
    http_client *c = s->c;
    free(s);
    c->n_socks--;
    clientMaybeFree(c);
}

/* ---- Finishing transfers --------------------------------------------- */

static void callFree(struct http_call *call)
{
    http_client *c = call->c;
    if (call->easy != NULL) {
        if (c->n_free_easy < CLIENT__FREE_EASY && !c->closing) {
            curl_easy_reset(call->easy);
            c->free_easy[c->n_free_easy++] = call->easy;
        } else {
            curl_easy_cleanup(call->easy);
        }
    }
    curl_slist_free_all(call->hdrs);
    free(call->body);
    http_buf_free(&call->resp_body);
    http_buf_free(&call->resp_headers);
    free(call);
    c->n_calls--;
}

static void unlinkCall(struct http_call *call)
{
    http_client *c = call->c;
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->next = call->prev = NULL;
}

static const char *headerIn(const char *raw, const char *name, char *buf,
                            size_t len)
{
    size_t nl = strlen(name);
    const char *p = raw;

    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
                vl--;
            }
            if (vl >= len) {
                vl = len - 1;
            }
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

const char *http_client_response_header(const struct http_client_response *r,
                                        const char *name, char *buf, size_t len)
{
    if (r == NULL || r->headers_raw == NULL || len == 0) {
        return NULL;
    }
    return headerIn(r->headers_raw, name, buf, len);
}

static void callBack(struct http_call *call)
{
    struct http_client_response resp;
    char ctype[128];
    char retry[32];
    long code = 0;
    long sent = 0;
    int status;

    memset(&resp, 0, sizeof resp);
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(call->easy, CURLINFO_REQUEST_SIZE, &sent);
    status = call->too_big ? UV_E2BIG : uvError(call->result);
    resp.status = (int)code;
    resp.sent = sent > 0;
    resp.body = http_buf_str(&call->resp_body);
    resp.body_len = call->resp_body.len;
    resp.headers_raw = http_buf_str(&call->resp_headers);
    resp.content_type =
        headerIn(resp.headers_raw, "Content-Type", ctype, sizeof ctype);
    resp.retry_after =
        headerIn(resp.headers_raw, "Retry-After", retry, sizeof retry);
    call->cb(call->arg, status, &resp);
}

/* Take every finished transfer out of the multi handle, then call back. */
static void finishDone(http_client *c)
{
    struct http_call *done = NULL;
    struct http_call **tail = &done;
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        struct http_call *call = NULL;
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        call->result = msg->data.result;
        curl_multi_remove_handle(c->multi, call->easy);
        unlinkCall(call);
        call->finishing = true;
        *tail = call;
        tail = &call->next;
    }
    while (done != NULL) {
        struct http_call *call = done;
        done = call->next;
        call->next = NULL;
        if (!call->cancelled) {
            callBack(call);
        }
        callFree(call);
    }
    clientMaybeFree(c);
}

/* ---- libcurl <-> libuv ------------------------------------------------ */

static void pollCb(uv_poll_t *p, int status, int events)
{
    struct client_sock *s = p->data;
    http_client *c = s->c;
    int flags = 0;
    int running;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    finishDone(c);
}

static void timerCb(uv_timer_t *t)
{
    http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    finishDone(c);
}

static int socketCb(CURL *easy, curl_socket_t fd, int action, void *userp,
                    void *socketp)
{
    http_client *c = userp;
    struct client_sock *s = socketp;
    int events = 0;
    (void)easy;

    if (action == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sockClosedCb);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            return -1;
        }
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->c = c;
        s->poll.data = s;
        c->n_socks++;
        curl_multi_assign(c->multi, fd, s);
    }
    if (action != CURL_POLL_OUT) {
        events |= UV_READABLE;
    }
    if (action != CURL_POLL_IN) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, events, pollCb);
    return 0;
}

static int timerFn(CURLM *multi, long timeout_ms, void *userp)
{
    http_client *c = userp;
    (void)multi;
    if (c->closing) {
        return 0; /* the timer belongs to closeTimerCb now */
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, timerCb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- Transfers -------------------------------------------------------- */

static size_t writeFn(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nmemb;
    if (call->resp_body.len + n > call->c->max_body) {
        call->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (http_buf_append(&call->resp_body, ptr, n) != 0) {
        return 0;
    }
    return n;
}

static size_t headerFn(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nmemb;

    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the last. */
        call->resp_headers.len = 0;
        return n;
    }
    if (call->resp_headers.len + n > CLIENT__MAX_HEADERS) {
        call->too_big = true;
        return 0;
    }
    if (http_buf_append(&call->resp_headers, ptr, n) != 0) {
        return 0;
    }
    return n;
}

/* Copy "Name: value\r\n" lines into a curl_slist. */
static int headerList(struct http_call *call, const char *headers)
{
    const char *p = headers;
    char line[2048];
    struct curl_slist *l;

    /* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
    l = curl_slist_append(call->hdrs, "Expect:");
    if (l == NULL) {
        return UV_ENOMEM;
    }
    call->hdrs = l;
    if (headers == NULL || strcasestr(headers, "Content-Type:") == NULL) {
        /* No form content type made up by libcurl for a POST. */
        l = curl_slist_append(call->hdrs, "Content-Type:");
        if (l == NULL) {
            return UV_ENOMEM;
        }
        call->hdrs = l;
    }
    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (ll >= sizeof line) {
            return UV_EINVAL;
        }
        if (ll > 0) {
            memcpy(line, p, ll);
            line[ll] = '\0';
            l = curl_slist_append(call->hdrs, line);
            if (l == NULL) {
                return UV_ENOMEM;
            }
            call->hdrs = l;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return 0;
}

static int setupEasy(struct http_call *call, const struct http_call_spec *s)
{
    http_client *c = call->c;
    CURL *e = call->easy;
    char url[2304];
    bool plain = strncmp(s->addr, "http://", 7) == 0;
    bool https = strncmp(s->addr, "https://", 8) == 0;
    const char *host = https ? s->addr + 8 : (plain ? s->addr + 7 : s->addr);
    int n;

    https = https || (c->https && !plain);
    n = snprintf(url, sizeof url, "%s://%s%s", https ? "https" : "http", host,
                 s->path);
    if (n < 0 || (size_t)n >= sizeof url) {
        return UV_EINVAL;
    }
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK) {
        return UV_EINVAL;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, writeFn);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, headerFn);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->hdrs);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(s->connect_timeout_ms != 0 ? s->connect_timeout_ms
                                                       : s->timeout_ms));
    if (strcmp(s->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(s->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                         call->body != NULL ? call->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)s->body_len);
        if (strcmp(s->method, "POST") != 0) {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
        }
    }
    if (https) {
        /* Read the CA file for each new connection (not cached for a day):
         * a reloaded CA applies at once. Connections are kept alive, so
         * this is rare. */
        curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
        if (c->ca_file != NULL) {
            curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
        }
        if (c->cert_file != NULL) {
            curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
        }
        if (c->key_file != NULL) {
            curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
        }
    }
    return 0;
}

int http_client_request(http_client *c, const struct http_call_spec *spec,
                        http_client_cb cb, void *arg, http_call **out)
{
    struct http_call *call;
    int rv;

    if (c == NULL || c->closing) {
        return UV_ECANCELED;
    }
    if (spec->addr == NULL || spec->method == NULL || spec->path == NULL ||
        spec->path[0] != '/') {
        return UV_EINVAL;
    }
    call = calloc(1, sizeof *call);
    if (call == NULL) {
        return UV_ENOMEM;
    }
    call->c = c;
    call->cb = cb;
    call->arg = arg;
    c->n_calls++;
    if (spec->body_len > 0) {
        call->body = malloc(spec->body_len);
        if (call->body == NULL) {
            rv = UV_ENOMEM;
            goto err_after_call;
        }
        memcpy(call->body, spec->body, spec->body_len);
    }
    rv = headerList(call, spec->headers);
    if (rv != 0) {
        goto err_after_call;
    }
    call->easy =
        c->n_free_easy > 0 ? c->free_easy[--c->n_free_easy] : curl_easy_init();
    if (call->easy == NULL) {
        rv = UV_ENOMEM;
        goto err_after_call;
    }
    rv = setupEasy(call, spec);
    if (rv != 0) {
        goto err_after_call;
    }
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
        rv = UV_ENOMEM;
        goto err_after_call;
    }
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    if (out != NULL) {
        *out = call;
    }
    return 0;

err_after_call:
    callFree(call);
    return rv;
}

void http_call_cancel(http_call *call)
{
    if (call->finishing) {
        call->cancelled = true; /* finishDone skips and frees it */
        return;
    }
    curl_multi_remove_handle(call->c->multi, call->easy);
    unlinkCall(call);
    /* A connection cut mid-request cannot be reused. */
    curl_easy_cleanup(call->easy);
    call->easy = NULL;
    callFree(call);
}

int http_client_create(uv_loop_t *loop, const struct http_client_options *opts,
                       http_client **out)
{
    http_client *c;

    pthread_once(&clientOnce, clientGlobalInit);
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return UV_ENOMEM;
    }
    c->loop = loop;
    c->https = opts != NULL && opts->https;
    c->max_body =
        opts != NULL && opts->max_body != 0 ? opts->max_body : CLIENT__MAX_BODY;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return UV_ENOMEM;
    }
    if (opts != NULL && http_client_set_tls(c, opts->ca_file, opts->cert_file,
                                            opts->key_file) != 0) {
        curl_multi_cleanup(c->multi);
        free(c);
        return UV_ENOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socketCb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timerFn);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
                      (long)(opts != NULL && opts->max_idle != 0
                                 ? opts->max_idle
                                 : CLIENT__MAX_IDLE));
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    *out = c;
    return 0;
}

static char *dupOrNull(const char *s, bool *oom)
{
    char *d;
    if (s == NULL) {
        return NULL;
    }
    d = strdup(s);
    if (d == NULL) {
        *oom = true;
    }
    return d;
}

int http_client_set_tls(http_client *c, const char *ca_file,
                        const char *cert_file, const char *key_file)
{
    bool oom = false;
    char *ca = dupOrNull(ca_file, &oom);
    char *cert = dupOrNull(cert_file, &oom);
    char *key = dupOrNull(key_file, &oom);

    if (oom) {
        free(ca);
        free(cert);
        free(key);
        return UV_ENOMEM;
    }
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    c->ca_file = ca;
    c->cert_file = cert;
    c->key_file = key;
    return 0;
}

size_t http_client_calls(const http_client *c)
{
    return c != NULL ? c->n_calls : 0;
}

/* Cancelled calls call back from the loop, not from inside close. */
static void closeTimerCb(uv_timer_t *t)
{
    http_client *c = t->data;
    struct http_call *call;

    while ((call = c->calls) != NULL) {
        struct http_client_response resp;
        long sent = 0;
        curl_multi_remove_handle(c->multi, call->easy);
        unlinkCall(call);
        curl_easy_getinfo(call->easy, CURLINFO_REQUEST_SIZE, &sent);
        memset(&resp, 0, sizeof resp);
        resp.sent = sent > 0;
        resp.body = "";
        resp.headers_raw = "";
        call->cb(call->arg, UV_ECANCELED, &resp);
        callFree(call);
    }
    while (c->n_free_easy > 0) {
        curl_easy_cleanup(c->free_easy[--c->n_free_easy]);
    }
    /* Closes every cached connection (CURL_POLL_REMOVE for each socket). */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_close((uv_handle_t *)&c->timer, timerClosedCb);
}

void http_client_close(http_client *c, void (*cb)(void *arg), void *arg)
{
    if (c == NULL) {
        if (cb != NULL) {
            cb(arg);
        }
        return;
    }
    assert(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;
    uv_timer_start(&c->timer, closeTimerCb, 0, 0);
}
