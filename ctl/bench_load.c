/* Closed-loop HTTP load engine on one libuv loop (see bench.h).
 *
 * Client states: IDLE (nothing open; a retry timer may be pending),
 * CONNECTING, BUSY (a request written or being answered), READY (connected,
 * between requests; only transiently), and CLOSING (its TCP handle is being
 * closed). A client's TCP handle is open exactly in CONNECTING, BUSY, READY
 * and CLOSING; its retry timer lives as long as the run.
 *
 * HTTPS (a TLS context given to bench_run): each connection gets a TLS
 * session (http/tls.h); requests are encrypted on the way out (the first
 * one waits inside the session for the handshake, so the first latency of
 * a connection includes it), responses decrypted into `plain` and parsed
 * from there. Every ciphertext write is its own heap buffer.
 *
 * Stop: the deadline timer sets `stopping`; idle and connecting clients are
 * closed at once, busy ones when their answer arrives (it is not counted:
 * only answers received before the deadline are). The drain timer closes
 * everything left after BENCH_DRAIN_MS. uv_run then returns, the timers are
 * closed, and the loop is closed.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <uv.h>

#include "bench.h"
#include "http/addr.h"
#include "http/buf.h"
#include "http/tls.h"

enum { C_IDLE, C_CONNECTING, C_BUSY, C_READY, C_CLOSING };

struct bench;

struct bench_client {
    struct bench *b;
    size_t idx;
    int state;
    struct sockaddr_in addr;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t retry;
    http_parser parser;
    http_tls_session *ssl; /* HTTPS: this connection's session. */
    struct http_buf plain; /* HTTPS: decrypted, not yet parsed. */
    char host[64];         /* The server's IP (its certificate names it). */
    struct http_buf body;
    int complete;
    int keep_alive;
    uint64_t t0; /* uv_hrtime() when the request was written. */
    char inbuf[65536];
};

struct bench {
    uv_loop_t loop;
    http_tls *tls; /* NULL: plain HTTP. */
    const struct bench_workload *w;
    struct bench_client *clients;
    size_t n_clients;
    size_t n_open; /* TCP handles not yet closed. */
    int stopping;
    uint64_t start_ns;
    uint64_t stop_ns;
    uv_timer_t deadline;
    uv_timer_t drain;
    struct bench_result *res;
    size_t cap_lat;
};

static void clientStart(struct bench_client *c);
static void clientSend(struct bench_client *c);
static void stopNow(struct bench *b);

/* Retry timer callbacks: the timer's data is its client. */
static void retryStartCb(uv_timer_t *t)
{
    clientStart(t->data);
}

static void retrySendCb(uv_timer_t *t)
{
    clientSend(t->data);
}

static void noteError(struct bench *b, const char *fmt, const char *what)
{
    snprintf(b->res->last_error, sizeof b->res->last_error, fmt, what);
}

static void recordLatency(struct bench *b, uint64_t ns)
{
    struct bench_result *r = b->res;
    uint64_t us = ns / 1000;

    if (r->n_lat == b->cap_lat) {
        size_t cap = b->cap_lat ? b->cap_lat * 2 : 65536;
        uint32_t *p = realloc(r->lat_us, cap * sizeof *p);
        if (p == NULL) {
            return; /* The sample is lost, the count is not. */
        }
        r->lat_us = p;
        b->cap_lat = cap;
    }
    r->lat_us[r->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* ---- Closing ------------------------------------------------------------ */

static void maybeFinished(struct bench *b)
{
    if (b->stopping && b->n_open == 0) {
        uv_timer_stop(&b->drain);
    }
}

static void tcpClosedCb(uv_handle_t *h)
{
    struct bench_client *c = h->data;
    struct bench *b = c->b;

    b->n_open--;
    c->state = C_IDLE;
    http_tls_session_free(c->ssl);
    c->ssl = NULL;
    c->plain.len = 0;
    if (b->stopping) {
        maybeFinished(b);
        return;
    }
    uv_timer_start(&c->retry, retryStartCb, BENCH_RETRY_MS, 0);
}

/* Close the client's connection; unless stopping, it reconnects later. */
static void clientClose(struct bench_client *c)
{
    if (c->state == C_IDLE || c->state == C_CLOSING) {
        return;
    }
    c->state = C_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, tcpClosedCb);
}

static void clientFail(struct bench_client *c, const char *what)
{
    if (!c->b->stopping) {
        c->b->res->errors++;
        noteError(c->b, "%s", what);
    }
    clientClose(c);
}

/* ---- Response parsing ------------------------------------------------- */

static int onMessageBegin(http_parser *p)
{
    struct bench_client *c = p->data;
    c->body.len = 0;
    return 0;
}

static int onBody(http_parser *p, const char *at, size_t len)
{
    struct bench_client *c = p->data;
    return http_buf_append(&c->body, at, len);
}

static int onMessageComplete(http_parser *p)
{
    struct bench_client *c = p->data;
    if (p->status_code >= 100 && p->status_code < 200) {
        return 0;
    }
    c->complete = 1;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parserSettings = {
    .on_message_begin = onMessageBegin,
    .on_body = onBody,
    .on_message_complete = onMessageComplete,
};

/* A whole response arrived. */
static void clientAnswered(struct bench_client *c)
{
    struct bench *b = c->b;
    uint64_t now = uv_hrtime();
    int status = (int)c->parser.status_code;
    char err[200];
    long n;

    c->state = C_READY;
    if (b->stopping) {
        clientClose(c);
        return;
    }
    if (status >= 200 && status < 300) {
        err[0] = '\0';
        n = b->w->response(b->w->arg, c->idx, status, http_buf_str(&c->body),
                           c->body.len, err, sizeof err);
        if (n < 0) {
            b->res->errors++;
            noteError(b, "bad response body: %s", err);
        } else {
            b->res->requests++;
            b->res->events += (uint64_t)n;
            recordLatency(b, now - c->t0);
            if (b->w->max_events > 0 && b->res->events >= b->w->max_events) {
                stopNow(b);
                clientClose(c);
                return;
            }
        }
    } else if (status == 429 || status == 503) {
        b->res->rejected++;
        if (c->keep_alive) {
            uv_timer_start(&c->retry, retrySendCb, BENCH_RETRY_MS, 0);
        } else {
            clientClose(c);
        }
        return;
    } else {
        char what[160];
        snprintf(what, sizeof what, "HTTP %d: %.120s", status,
                 http_buf_str(&c->body));
        b->res->errors++;
        noteError(b, "%s", what);
    }
    if (!c->keep_alive) {
        clientClose(c);
        return;
    }
    clientSend(c);
}

/* ---- I/O ---------------------------------------------------------------- */

static void allocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bench_client *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->inbuf, sizeof c->inbuf);
}

struct tls_write {
    uv_write_t req;
    struct bench_client *c;
    char data[];
};

static void tlsWriteCb(uv_write_t *req, int status)
{
    struct tls_write *w = req->data;
    struct bench_client *c = w->c;
    free(w);
    if (status < 0 && (c->state == C_BUSY || c->state == C_READY)) {
        clientFail(c, uv_strerror(status));
    }
}

/* HTTPS: write the ciphertext the session has waiting. 0 or -1 (failed). */
static int tlsFlush(struct bench_client *c)
{
    size_t n = http_tls_session_pending(c->ssl);
    struct tls_write *w;
    uv_buf_t buf;

    if (n == 0) {
        return 0;
    }
    w = malloc(sizeof *w + n);
    if (w == NULL) {
        clientFail(c, "out of memory");
        return -1;
    }
    n = http_tls_session_take(c->ssl, w->data, n);
    w->c = c;
    w->req.data = w;
    buf = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, tlsWriteCb) != 0) {
        free(w);
        clientFail(c, "write failed");
        return -1;
    }
    return 0;
}

static void readCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bench_client *c = s->data;
    const char *data = buf->base;
    size_t len = (size_t)nread;
    size_t used;

    if (nread == 0 || c->state == C_CLOSING) {
        return;
    }
    if (nread < 0) {
        clientFail(c, nread == UV_EOF ? "connection closed by the server"
                                      : uv_strerror((int)nread));
        return;
    }
    if (c->ssl != NULL) {
        int rv = http_tls_session_recv(c->ssl, data, len, &c->plain);
        if (tlsFlush(c) != 0) {
            return;
        }
        if (rv == HTTP_TLS_ERROR) {
            char what[240];
            snprintf(what, sizeof what, "TLS: %s",
                     http_tls_session_error(c->ssl));
            clientFail(c, what);
            return;
        }
        if (c->plain.len == 0) {
            if (rv == HTTP_TLS_CLOSED) {
                clientFail(c, "connection closed by the server");
            }
            return; /* Handshake records, session tickets. */
        }
        data = c->plain.p;
        len = c->plain.len;
        c->plain.len = 0; /* Parsed at once below. */
    }
    if (c->state != C_BUSY) {
        clientFail(c, "unexpected bytes from the server");
        return;
    }
    used = http_parser_execute(&c->parser, &parserSettings, data, len);
    if (c->complete) {
        if (used < len) {
            /* Bytes after the answer: the server pipelines nothing. */
            clientFail(c, "extra bytes after a response");
            return;
        }
        clientAnswered(c);
        return;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        clientFail(c, http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
    }
}

static void writeCb(uv_write_t *req, int status)
{
    struct bench_client *c = req->data;
    if (status < 0 && c->state == C_BUSY) {
        clientFail(c, uv_strerror(status));
    }
}

static void clientSend(struct bench_client *c)
{
    struct bench *b = c->b;
    size_t len = 0;
    const char *req;
    uv_buf_t buf;
    int rv;

    if (c->state != C_READY) {
        return; /* Retry timer of a client closed meanwhile. */
    }
    if (b->stopping) {
        clientClose(c);
        return;
    }
    req = b->w->request(b->w->arg, c->idx, &len);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->complete = 0;
    c->body.len = 0;
    c->state = C_BUSY;
    c->t0 = uv_hrtime();
    if (c->ssl != NULL) {
        if (http_tls_session_send(c->ssl, req, len) != HTTP_TLS_OK) {
            clientFail(c, "TLS: cannot encrypt the request");
            return;
        }
        tlsFlush(c);
        return;
    }
    buf = uv_buf_init((char *)req, (unsigned)len);
    c->write.data = c;
    rv = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, writeCb);
    if (rv != 0) {
        clientFail(c, uv_strerror(rv));
    }
}

static void connectCb(uv_connect_t *req, int status)
{
    struct bench_client *c = req->data;
    int rv;

    if (c->state != C_CONNECTING) {
        return; /* Closed meanwhile (stop). */
    }
    if (status < 0) {
        clientFail(c, uv_strerror(status));
        return;
    }
    rv = uv_read_start((uv_stream_t *)&c->tcp, allocCb, readCb);
    if (rv != 0) {
        clientFail(c, uv_strerror(rv));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->b->tls != NULL) {
        c->ssl = http_tls_session_connect(c->b->tls, c->host);
        if (c->ssl == NULL || http_tls_session_start(c->ssl) != HTTP_TLS_OK ||
            tlsFlush(c) != 0) {
            if (c->state == C_CONNECTING) {
                clientFail(c, "TLS: cannot start a session");
            }
            return;
        }
    }
    c->state = C_READY;
    clientSend(c);
}

static void clientStart(struct bench_client *c)
{
    struct bench *b = c->b;
    int rv;

    if (b->stopping || c->state != C_IDLE) {
        return;
    }
    rv = uv_tcp_init(&b->loop, &c->tcp);
    if (rv != 0) {
        b->res->errors++;
        noteError(b, "%s", uv_strerror(rv));
        uv_timer_start(&c->retry, retryStartCb, BENCH_RETRY_MS, 0);
        return;
    }
    b->n_open++;
    c->tcp.data = c;
    c->connect.data = c;
    c->state = C_CONNECTING;
    rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&c->addr,
                        connectCb);
    if (rv != 0) {
        clientFail(c, uv_strerror(rv));
    }
}

/* ---- Run ---------------------------------------------------------------- */

static void drainCb(uv_timer_t *t)
{
    struct bench *b = t->data;
    for (size_t i = 0; i < b->n_clients; i++) {
        clientClose(&b->clients[i]);
    }
}

static void stopNow(struct bench *b)
{
    if (b->stopping) {
        return;
    }
    b->stopping = 1;
    uv_timer_stop(&b->deadline);
    b->stop_ns = uv_hrtime();
    uv_timer_start(&b->drain, drainCb, BENCH_DRAIN_MS, 0);
    for (size_t i = 0; i < b->n_clients; i++) {
        struct bench_client *c = &b->clients[i];
        uv_timer_stop(&c->retry);
        if (c->state == C_CONNECTING || c->state == C_READY) {
            clientClose(c);
        }
    }
    maybeFinished(b);
}

static void deadlineCb(uv_timer_t *t)
{
    stopNow(t->data);
}

static int cmpU32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int bench_run(const char *const *addrs, size_t n_addrs, size_t n_clients,
              unsigned duration_s, http_tls *tls,
              const struct bench_workload *w, struct bench_result *out)
{
    struct bench *b;
    size_t i;
    int rv;

    memset(out, 0, sizeof *out);
    if (n_addrs == 0 || n_clients == 0) {
        snprintf(out->last_error, sizeof out->last_error, "nothing to drive");
        return -1;
    }
    b = calloc(1, sizeof *b);
    if (b != NULL) {
        b->clients = calloc(n_clients, sizeof *b->clients);
    }
    if (b == NULL || b->clients == NULL) {
        if (b != NULL) {
            free(b);
        }
        snprintf(out->last_error, sizeof out->last_error, "out of memory");
        return -1;
    }
    b->w = w;
    b->tls = tls;
    b->res = out;
    b->n_clients = n_clients;
    for (i = 0; i < n_clients; i++) {
        const char *a = addrs[i % n_addrs];
        if (strncmp(a, "https://", 8) == 0) {
            a += 8;
        } else if (strncmp(a, "http://", 7) == 0) {
            a += 7;
        }
        snprintf(b->clients[i].host, sizeof b->clients[i].host, "%.*s",
                 (int)(strrchr(a, ':') != NULL ? strrchr(a, ':') - a : 0), a);
        if (http_addr_parse(a, &b->clients[i].addr) != 0) {
            snprintf(out->last_error, sizeof out->last_error,
                     "endpoint '%s' is not a numeric HOST:PORT", a);
            free(b->clients);
            free(b);
            return -1;
        }
    }
    rv = uv_loop_init(&b->loop);
    if (rv != 0) {
        snprintf(out->last_error, sizeof out->last_error, "uv_loop_init: %s",
                 uv_strerror(rv));
        free(b->clients);
        free(b);
        return -1;
    }
    uv_timer_init(&b->loop, &b->deadline);
    uv_timer_init(&b->loop, &b->drain);
    b->deadline.data = b;
    b->drain.data = b;
    for (i = 0; i < n_clients; i++) {
        struct bench_client *c = &b->clients[i];
        c->b = b;
        c->idx = i;
        c->state = C_IDLE;
        uv_timer_init(&b->loop, &c->retry);
        c->retry.data = c;
    }
    b->start_ns = uv_hrtime();
    uv_timer_start(&b->deadline, deadlineCb, (uint64_t)duration_s * 1000, 0);
    for (i = 0; i < n_clients; i++) {
        clientStart(&b->clients[i]);
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);

    /* Every TCP handle is closed and every timer stopped: close the timers. */
    uv_close((uv_handle_t *)&b->deadline, NULL);
    uv_close((uv_handle_t *)&b->drain, NULL);
    for (i = 0; i < n_clients; i++) {
        uv_close((uv_handle_t *)&b->clients[i].retry, NULL);
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&b->loop);
    assert(rv == 0);
    (void)rv;

    out->secs =
        (double)((b->stop_ns ? b->stop_ns : uv_hrtime()) - b->start_ns) / 1e9;
    if (out->n_lat > 0) {
        qsort(out->lat_us, out->n_lat, sizeof *out->lat_us, cmpU32);
    }
    for (i = 0; i < n_clients; i++) {
        http_buf_free(&b->clients[i].body);
        http_buf_free(&b->clients[i].plain);
    }
    free(b->clients);
    free(b);
    return 0;
}

double bench_quantile_ms(const struct bench_result *r, double q)
{
    size_t i;
    if (r->n_lat == 0) {
        return 0;
    }
    i = (size_t)(q * (double)r->n_lat);
    if (i >= r->n_lat) {
        i = r->n_lat - 1;
    }
    return (double)r->lat_us[i] / 1000.0;
}
