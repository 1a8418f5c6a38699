/* Mutual TLS on the Raft port (see raft_tls.h).
 *
 * Objects:
 * - struct raft_tls: the transport. Owns the listening socket and a list
 *   of pumps, one per connection (accepted or dialled), in any state.
 * - struct pump: one connection: the TCP handle, its TLS session, a
 *   deadline timer and, once handed to Raft, our end of the socketpair
 *   (`local`). The other end belongs to Raft from the hand-off on.
 *
 * States of a pump:
 *   HANDSHAKE  TLS handshake, then Raft's handshake (accepted: read and
 *              checked; dialled: the server's id checked, ours sent).
 *              Nothing reaches Raft. Bounded by RAFT_TLS_HANDSHAKE_MS.
 *   OPEN       handed to Raft: TCP -> decrypt -> local, and local ->
 *              encrypt -> TCP. A side whose destination has more than
 *              PUMP__HIGH_WATER bytes queued stops being read until the
 *              queue drains, so memory stays bounded when Raft or the peer
 *              is slow.
 *   CLOSING    every handle closing; the pump is freed in the last close
 *              callback, which also answers a dialled connection Raft still
 *              waits for (RAFT_NOCONNECTION, or RAFT_CANCELED on close).
 * EOF or an error on either side closes the whole pump: Raft sees its end
 * of the socketpair end, the peer sees the TCP connection end.
 *
 * Raft's handshake is the one raft_uv_tcp writes (uv_tcp_connect.c), sent
 * inside TLS: 8-byte protocol (1), 8-byte server id, 8-byte length L of the
 * address field, then the NUL-terminated address padded to L (a multiple of
 * 8). Integers little-endian.
 *
 * Closing the transport (Raft does it after closing its own connections)
 * stops the listener and closes every pump; the close callback fires once
 * the listener and every pump are closed, never from inside close().
 */
#include "raft_tls.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/buf.h"
#include "log.h"
#include "metrics.h"

#define PUMP__PROTOCOL 1              /* Raft's handshake version. */
#define PUMP__PREAMBLE 24             /* Protocol, id, address length. */
#define PUMP__MAX_ADDRESS 1024        /* Announced address field cap. */
#define PUMP__HIGH_WATER (4u << 20)   /* Queued bytes that pause a side. */
#define PUMP__READ_BUF (64 * 1024)    /* Shared read buffer. */
#define PUMP__FLUSH_CHUNK (16 * 1024) /* Ciphertext moved per write. */
#define PUMP__LOG_PER_S 10            /* Refusal lines per second. */
#define PUMP__BACKLOG 128             /* listen() backlog. */

enum pump_state { PUMP_HANDSHAKE, PUMP_OPEN, PUMP_CLOSING };

struct pump {
    struct raft_tls *t;
    struct pump *prev;
    struct pump *next;
    uv_tcp_t tcp;
    uv_pipe_t local; /* Initialised at the hand-off (local_init). */
    uv_timer_t timer;
    uv_connect_t connect;
    http_tls_session *ssl;
    struct http_buf plain; /* Decrypted, not yet handed on. */
    enum pump_state state;
    bool outgoing;
    bool local_init;
    bool tcp_reading;
    bool local_reading;
    int handles; /* Initialised and not yet closed. */
    /* Dialled connections: Raft's request until it is answered. */
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    int status; /* For req if the pump closes before the hand-off. */
    raft_id id; /* The id dialled. */
    char host[64];
    char remote[80]; /* "ip:port" of the peer, for logs. */
};

struct raft_tls {
    struct raft_uv_transport base; /* First member: raft's view. */
    uv_loop_t *loop;
    http_tls *tls;
    raft_id id;
    char *address;
    raft_uv_accept_cb accept_cb;
    uv_tcp_t listener;
    bool listener_init;
    bool listener_closed;
    struct pump *pumps;
    size_t n_pending; /* Accepted pumps still in HANDSHAKE. */
    bool closing;
    raft_uv_transport_close_cb close_cb;
    uint64_t log_window; /* uv_now() second of the refusal log window. */
    unsigned log_lines;
    uint64_t log_quiet; /* Refusals not logged in past windows. */
    char rbuf[PUMP__READ_BUF];
};

struct pump_write {
    uv_write_t req;
    struct pump *p;
    char data[];
};

static void pumpClose(struct pump *p);
static void pumpUpdateReading(struct pump *p);

/* ---- Helpers ------------------------------------------------------------ */

static uint64_t getLe64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | u[i];
    }
    return v;
}

static void putLe64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (char)(v >> (8 * i));
    }
}

/* "HOST:PORT" -> host, sockaddr; 0 or -1. */
static int parseAddress(const char *address, char *host, size_t hostlen,
                        struct sockaddr_in *sa)
{
    const char *colon = strrchr(address, ':');
    size_t n = colon != NULL ? (size_t)(colon - address) : 0;
    char *end;
    long port;

    if (colon == NULL || n == 0 || n >= hostlen) {
        return -1;
    }
    memcpy(host, address, n);
    host[n] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        return -1;
    }
    return uv_ip4_addr(host, (int)port, sa) == 0 ? 0 : -1;
}

static void peerName(uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int namelen = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";

    snprintf(out, len, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &namelen) == 0 &&
        ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(out, len, "%s:%d", ip, ntohs(sin->sin_port));
    }
}

uint64_t raft_tls_cn_id(const char *cn)
{
    size_t plen = strlen(RAFT_TLS_CN_PREFIX);
    const char *d;
    uint64_t id = 0;

    if (cn == NULL || strncmp(cn, RAFT_TLS_CN_PREFIX, plen) != 0) {
        return 0;
    }
    d = cn + plen;
    if (*d < '1' || *d > '9') {
        return 0; /* Empty, or a leading zero: one spelling per id. */
    }
    for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9' || id > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        id = id * 10 + (uint64_t)(*d - '0');
    }
    return id;
}

/* A warning line, at most PUMP__LOG_PER_S per second: a flood of bad
 * peers must not flood the log (the metric still counts every refusal). */
static void logLimited(struct raft_tls *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logLimited(struct raft_tls *t, const char *fmt, ...)
{
    uint64_t now_s = uv_now(t->loop) / 1000;
    char line[512];
    va_list ap;

    if (now_s != t->log_window) {
        t->log_window = now_s;
        t->log_lines = 0;
    }
    if (t->log_lines >= PUMP__LOG_PER_S) {
        t->log_quiet++;
        return;
    }
    t->log_lines++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (t->log_quiet > 0) {
        ledger_log(LOG_WARN, NULL, "%s (and %llu lines like it not logged)",
                   line, (unsigned long long)t->log_quiet);
        t->log_quiet = 0;
    } else {
        ledger_log(LOG_WARN, NULL, "%s", line);
    }
}

/* Refuse the peer: count it, say who and why, drop the connection. */
static void pumpReject(struct pump *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void pumpReject(struct pump *p, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    metrics_peer_rejected();
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (p->outgoing) {
        logLimited(p->t, "raft: refused node %llu at %s: %s",
                   (unsigned long long)p->id, p->remote, why);
    } else {
        logLimited(p->t, "raft: refused connection from %s: %s", p->remote,
                   why);
    }
    pumpClose(p);
}

/* ---- Writing ------------------------------------------------------------ */

static void pumpWriteCb(uv_write_t *req, int status)
{
    struct pump_write *w = req->data;
    struct pump *p = w->p;

    free(w);
    if (p->state == PUMP_CLOSING) {
        return;
    }
    if (status < 0) {
        pumpClose(p);
        return;
    }
    pumpUpdateReading(p);
}

/* Write len bytes to dst: at once if its queue is empty and the socket
 * takes them, else (the rest) copied into a queued write. 0 or a libuv
 * error. */
static int pumpWrite(struct pump *p, uv_stream_t *dst, const char *data,
                     size_t len)
{
    struct pump_write *w;
    uv_buf_t buf;
    int rv;

    if (dst->write_queue_size == 0) {
        buf = uv_buf_init((char *)data, (unsigned)len);
        rv = uv_try_write(dst, &buf, 1);
        if (rv > 0) {
            data += rv;
            len -= (size_t)rv;
        } else if (rv != UV_EAGAIN) {
            return rv;
        }
    }
    if (len == 0) {
        return 0;
    }
    w = malloc(sizeof *w + len);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    memcpy(w->data, data, len);
    w->p = p;
    w->req.data = w;
    buf = uv_buf_init(w->data, (unsigned)len);
    rv = uv_write(&w->req, dst, &buf, 1, pumpWriteCb);
    if (rv != 0) {
        free(w);
    }
    return rv;
}

/* Write out the ciphertext the session has waiting. 0 or -1 (closed). */
static int pumpFlush(struct pump *p)
{
    char chunk[PUMP__FLUSH_CHUNK];
    size_t n;

    while ((n = http_tls_session_take(p->ssl, chunk, sizeof chunk)) > 0) {
        if (pumpWrite(p, (uv_stream_t *)&p->tcp, chunk, n) != 0) {
            pumpClose(p);
            return -1;
        }
    }
    return 0;
}

/* OPEN: hand the decrypted bytes to Raft. 0 or -1 (closed). */
static int pumpDeliver(struct pump *p)
{
    if (p->plain.len > 0) {
        int rv =
            pumpWrite(p, (uv_stream_t *)&p->local, p->plain.p, p->plain.len);
        p->plain.len = 0;
        if (rv != 0) {
            pumpClose(p);
            return -1;
        }
    }
    return 0;
}

/* ---- Reading and flow control ------------------------------------------- */

static void allocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pump *p = h->data;
    (void)suggested;
    /* Every read is consumed inside its callback: one buffer serves all. */
    *buf = uv_buf_init(p->t->rbuf, sizeof p->t->rbuf);
}

static void tcpReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void localReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void pumpUpdateReading(struct pump *p)
{
    bool want_tcp;
    bool want_local;

    if (p->state == PUMP_CLOSING) {
        return;
    }
    want_tcp =
        p->state != PUMP_OPEN || p->local.write_queue_size <= PUMP__HIGH_WATER;
    want_local =
        p->state == PUMP_OPEN && p->tcp.write_queue_size <= PUMP__HIGH_WATER;
    if (want_tcp != p->tcp_reading) {
        int rv = want_tcp
                     ? uv_read_start((uv_stream_t *)&p->tcp, allocCb, tcpReadCb)
                     : uv_read_stop((uv_stream_t *)&p->tcp);
        if (rv != 0) {
            pumpClose(p);
            return;
        }
        p->tcp_reading = want_tcp;
    }
    if (want_local != p->local_reading) {
        int rv = want_local ? uv_read_start((uv_stream_t *)&p->local, allocCb,
                                            localReadCb)
                            : uv_read_stop((uv_stream_t *)&p->local);
        if (rv != 0) {
            pumpClose(p);
            return;
        }
        p->local_reading = want_local;
    }
}

/* ---- Hand-off ----------------------------------------------------------- */

static void raftStreamFree(uv_handle_t *h)
{
    raft_free(h);
}

static void pumpLeaveHandshake(struct pump *p)
{
    if (!p->outgoing && p->state == PUMP_HANDSHAKE) {
        assert(p->t->n_pending > 0);
        p->t->n_pending--;
    }
}

/* Both handshakes passed: give Raft its end of a socketpair. */
static void pumpHandOff(struct pump *p, raft_id id, const char *address)
{
    struct raft_tls *t = p->t;
    uv_pipe_t *theirs;
    int fds[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        ledger_log(LOG_ERROR, NULL, "raft: socketpair for %s: %s", p->remote,
                   strerror(errno));
        pumpClose(p);
        return;
    }
    theirs = raft_malloc(sizeof *theirs);
    if (theirs == NULL) {
        close(fds[0]);
        close(fds[1]);
        pumpClose(p);
        return;
    }
    uv_pipe_init(t->loop, theirs, 0);
    uv_pipe_init(t->loop, &p->local, 0);
    p->local.data = p;
    p->local_init = true;
    p->handles++;
    if (uv_pipe_open(theirs, fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        uv_close((uv_handle_t *)theirs, raftStreamFree);
        pumpClose(p);
        return;
    }
    if (uv_pipe_open(&p->local, fds[0]) != 0) {
        close(fds[0]);
        uv_close((uv_handle_t *)theirs, raftStreamFree);
        pumpClose(p);
        return;
    }
    pumpLeaveHandshake(p);
    p->state = PUMP_OPEN;
    uv_timer_stop(&p->timer);
    if (pumpDeliver(p) != 0) {
        uv_close((uv_handle_t *)theirs, raftStreamFree);
        return;
    }
    pumpUpdateReading(p);
    if (p->state == PUMP_CLOSING) {
        uv_close((uv_handle_t *)theirs, raftStreamFree);
        return;
    }
    if (p->outgoing) {
        struct raft_uv_connect *req = p->req;
        p->req = NULL;
        p->cb(req, (uv_stream_t *)theirs, 0);
    } else {
        t->accept_cb(&t->base, id, address, (uv_stream_t *)theirs);
    }
}

/* Dialled: the server is who we dialled; send Raft's handshake. */
static void pumpDialledReady(struct pump *p)
{
    struct raft_tls *t = p->t;
    size_t alen = (strlen(t->address) + 1 + 7) / 8 * 8;
    char msg[PUMP__PREAMBLE + PUMP__MAX_ADDRESS];
    char cn[256];
    uint64_t cert_id;

    if (http_tls_session_peer_cn(p->ssl, cn, sizeof cn) != 0) {
        pumpReject(p, "its certificate has no usable subject CN");
        return;
    }
    cert_id = raft_tls_cn_id(cn);
    if (cert_id != p->id) {
        pumpReject(p, "its certificate (CN \"%s\") is not node %llu's", cn,
                   (unsigned long long)p->id);
        return;
    }
    if (alen > PUMP__MAX_ADDRESS) {
        pumpClose(p);
        return;
    }
    memset(msg, 0, PUMP__PREAMBLE + alen);
    putLe64(msg, PUMP__PROTOCOL);
    putLe64(msg + 8, t->id);
    putLe64(msg + 16, alen);
    memcpy(msg + PUMP__PREAMBLE, t->address, strlen(t->address));
    if (http_tls_session_send(p->ssl, msg, PUMP__PREAMBLE + alen) !=
            HTTP_TLS_OK ||
        pumpFlush(p) != 0) {
        pumpClose(p);
        return;
    }
    pumpHandOff(p, p->id, NULL);
}

/* Accepted: read Raft's handshake from the session and check it against
 * the certificate. Waits (returns) while it is incomplete. */
static void pumpAcceptedReady(struct pump *p)
{
    char cn[256];
    char host[64];
    char address[PUMP__MAX_ADDRESS];
    uint64_t id;
    uint64_t alen;
    uint64_t cert_id;
    struct sockaddr_in sa;

    if (p->plain.len < PUMP__PREAMBLE) {
        return;
    }
    if (getLe64(p->plain.p) != PUMP__PROTOCOL) {
        pumpReject(p, "not Raft's handshake (protocol %llu)",
                   (unsigned long long)getLe64(p->plain.p));
        return;
    }
    id = getLe64(p->plain.p + 8);
    alen = getLe64(p->plain.p + 16);
    if (alen == 0 || alen > PUMP__MAX_ADDRESS) {
        pumpReject(p, "Raft handshake with an address field of %llu bytes",
                   (unsigned long long)alen);
        return;
    }
    if (p->plain.len < PUMP__PREAMBLE + alen) {
        return;
    }
    if (memchr(p->plain.p + PUMP__PREAMBLE, '\0', alen) == NULL) {
        pumpReject(p, "Raft handshake with an unterminated address");
        return;
    }
    memcpy(address, p->plain.p + PUMP__PREAMBLE, alen);
    http_buf_consume(&p->plain, PUMP__PREAMBLE + alen);
    if (http_tls_session_peer_cn(p->ssl, cn, sizeof cn) != 0) {
        pumpReject(p, "its certificate has no usable subject CN");
        return;
    }
    cert_id = raft_tls_cn_id(cn);
    if (cert_id == 0) {
        pumpReject(p,
                   "its certificate (CN \"%s\") does not name a node "
                   "(" RAFT_TLS_CN_PREFIX "<ID>)",
                   cn);
        return;
    }
    if (id != cert_id) {
        pumpReject(p,
                   "its certificate is for node %llu but it announced id "
                   "%llu",
                   (unsigned long long)cert_id, (unsigned long long)id);
        return;
    }
    if (parseAddress(address, host, sizeof host, &sa) != 0) {
        pumpReject(p, "node %llu announced a bad address \"%.100s\"",
                   (unsigned long long)id, address);
        return;
    }
    if (!http_tls_session_peer_has_ip(p->ssl, host)) {
        pumpReject(p,
                   "node %llu announced Raft address %s, which its "
                   "certificate does not name",
                   (unsigned long long)id, address);
        return;
    }
    pumpHandOff(p, id, address);
}

/* ---- Callbacks ---------------------------------------------------------- */

static void tcpReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pump *p = s->data;
    int rv;

    if (nread == 0 || p->state == PUMP_CLOSING) {
        return;
    }
    if (nread < 0) {
        if (p->state == PUMP_HANDSHAKE && !p->outgoing) {
            pumpReject(p, "%s during the handshake",
                       nread == UV_EOF ? "closed the connection"
                                       : uv_strerror((int)nread));
            return;
        }
        pumpClose(p);
        return;
    }
    rv = http_tls_session_recv(p->ssl, buf->base, (size_t)nread, &p->plain);
    if (pumpFlush(p) != 0) {
        return;
    }
    if (rv == HTTP_TLS_ERROR) {
        const char *why = http_tls_session_error(p->ssl);
        bool ours = strncmp(why, "certificate verify failed", 25) == 0;
        if (p->state == PUMP_HANDSHAKE && (!p->outgoing || ours)) {
            pumpReject(p, "%s", why);
        } else {
            /* The peer refused us (e.g. our certificate), or a record went
             * bad on an open connection. */
            logLimited(p->t, "raft: TLS with %s %s ended: %s",
                       p->outgoing ? "node at" : "peer", p->remote, why);
            pumpClose(p);
        }
        return;
    }
    if (p->state == PUMP_HANDSHAKE && http_tls_session_established(p->ssl)) {
        if (p->outgoing) {
            pumpDialledReady(p);
        } else {
            pumpAcceptedReady(p);
        }
    } else if (p->state == PUMP_OPEN) {
        if (pumpDeliver(p) != 0) {
            return;
        }
        pumpUpdateReading(p);
    }
    if (rv == HTTP_TLS_CLOSED && p->state != PUMP_CLOSING) {
        pumpClose(p);
    }
}

static void localReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pump *p = s->data;

    if (nread == 0 || p->state == PUMP_CLOSING) {
        return;
    }
    if (nread < 0) {
        pumpClose(p); /* Raft closed its end. */
        return;
    }
    if (http_tls_session_send(p->ssl, buf->base, (size_t)nread) !=
        HTTP_TLS_OK) {
        pumpClose(p);
        return;
    }
    if (pumpFlush(p) != 0) {
        return;
    }
    pumpUpdateReading(p);
}

static void timerCb(uv_timer_t *timer)
{
    struct pump *p = timer->data;

    if (p->state != PUMP_HANDSHAKE) {
        return;
    }
    if (p->outgoing) {
        ledger_log(LOG_DEBUG, NULL,
                   "raft: no TLS connection to node %llu at %s within %d ms",
                   (unsigned long long)p->id, p->host, RAFT_TLS_HANDSHAKE_MS);
        pumpClose(p);
        return;
    }
    pumpReject(p, "no TLS and Raft handshake within %d ms",
               RAFT_TLS_HANDSHAKE_MS);
}

/* ---- Pump lifecycle ----------------------------------------------------- */

static void maybeFireClose(struct raft_tls *t)
{
    if (!t->closing || t->pumps != NULL ||
        (t->listener_init && !t->listener_closed) || t->close_cb == NULL) {
        return;
    }
    raft_uv_transport_close_cb cb = t->close_cb;
    t->close_cb = NULL;
    cb(&t->base);
}

static void pumpHandleClosed(uv_handle_t *h)
{
    struct pump *p = h->data;
    struct raft_tls *t = p->t;

    if (--p->handles > 0) {
        return;
    }
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        t->pumps = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    if (p->req != NULL) {
        struct raft_uv_connect *req = p->req;
        p->req = NULL;
        p->cb(req, NULL, p->status);
    }
    http_tls_session_free(p->ssl);
    http_buf_free(&p->plain);
    free(p);
    maybeFireClose(t);
}

static void pumpClose(struct pump *p)
{
    if (p->state == PUMP_CLOSING) {
        return;
    }
    pumpLeaveHandshake(p);
    p->state = PUMP_CLOSING;
    uv_close((uv_handle_t *)&p->tcp, pumpHandleClosed);
    uv_close((uv_handle_t *)&p->timer, pumpHandleClosed);
    if (p->local_init) {
        uv_close((uv_handle_t *)&p->local, pumpHandleClosed);
    }
}

static struct pump *pumpNew(struct raft_tls *t, bool outgoing)
{
    struct pump *p = calloc(1, sizeof *p);

    if (p == NULL) {
        return NULL;
    }
    p->t = t;
    p->outgoing = outgoing;
    p->state = PUMP_HANDSHAKE;
    p->status = RAFT_NOCONNECTION;
    uv_tcp_init(t->loop, &p->tcp);
    uv_timer_init(t->loop, &p->timer);
    p->tcp.data = p;
    p->timer.data = p;
    p->connect.data = p;
    p->handles = 2;
    p->next = t->pumps;
    if (t->pumps != NULL) {
        t->pumps->prev = p;
    }
    t->pumps = p;
    uv_timer_start(&p->timer, timerCb, RAFT_TLS_HANDSHAKE_MS, 0);
    return p;
}

/* ---- Transport interface ------------------------------------------------ */

static int transportInit(struct raft_uv_transport *base, raft_id id,
                         const char *address)
{
    struct raft_tls *t = (struct raft_tls *)base;

    t->id = id;
    free(t->address);
    t->address = strdup(address);
    if (t->address == NULL) {
        return RAFT_NOMEM;
    }
    if (strlen(address) + 1 > PUMP__MAX_ADDRESS) {
        snprintf(base->errmsg, sizeof base->errmsg, "address too long");
        return RAFT_INVALID;
    }
    if (!t->listener_init) {
        uv_tcp_init(t->loop, &t->listener);
        t->listener.data = t;
        t->listener_init = true;
    }
    return 0;
}

static void listenCb(uv_stream_t *server, int status)
{
    struct raft_tls *t = server->data;
    struct pump *p;

    if (status < 0 || t->closing) {
        return;
    }
    p = pumpNew(t, false);
    if (p == NULL) {
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&p->tcp) != 0) {
        pumpClose(p);
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    peerName(&p->tcp, p->remote, sizeof p->remote);
    t->n_pending++;
    if (t->n_pending > RAFT_TLS_MAX_PENDING) {
        pumpReject(p, "%d connections already in their handshake",
                   RAFT_TLS_MAX_PENDING);
        return;
    }
    p->ssl = http_tls_session_accept(t->tls, HTTP_TLS_PEER_REQUIRE);
    if (p->ssl == NULL) {
        pumpClose(p);
        return;
    }
    pumpUpdateReading(p);
}

static int transportListen(struct raft_uv_transport *base, raft_uv_accept_cb cb)
{
    struct raft_tls *t = (struct raft_tls *)base;
    struct sockaddr_in sa;
    char host[64];
    int rv;

    t->accept_cb = cb;
    if (t->address == NULL ||
        parseAddress(t->address, host, sizeof host, &sa) != 0) {
        snprintf(base->errmsg, sizeof base->errmsg, "bad address %s",
                 t->address != NULL ? t->address : "(none)");
        return RAFT_INVALID;
    }
    rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listener, PUMP__BACKLOG, listenCb);
    }
    if (rv != 0) {
        snprintf(base->errmsg, sizeof base->errmsg, "listen %s: %s", t->address,
                 uv_strerror(rv));
        return RAFT_IOERR;
    }
    return 0;
}

static void connectCb(uv_connect_t *req, int status)
{
    struct pump *p = req->data;

    if (p->state == PUMP_CLOSING) {
        return;
    }
    if (status < 0) {
        pumpClose(p); /* RAFT_NOCONNECTION: Raft retries later. */
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    peerName(&p->tcp, p->remote, sizeof p->remote);
    p->ssl = http_tls_session_connect(p->t->tls, p->host);
    if (p->ssl == NULL || http_tls_session_start(p->ssl) != HTTP_TLS_OK) {
        pumpClose(p);
        return;
    }
    if (pumpFlush(p) != 0) {
        return;
    }
    pumpUpdateReading(p);
}

static int transportConnect(struct raft_uv_transport *base,
                            struct raft_uv_connect *req, raft_id id,
                            const char *address, raft_uv_connect_cb cb)
{
    struct raft_tls *t = (struct raft_tls *)base;
    struct sockaddr_in sa;
    struct pump *p;
    char host[64];
    int rv;

    assert(!t->closing);
    if (parseAddress(address, host, sizeof host, &sa) != 0) {
        snprintf(base->errmsg, sizeof base->errmsg, "bad address %s", address);
        return RAFT_NOCONNECTION;
    }
    p = pumpNew(t, true);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->id = id;
    snprintf(p->host, sizeof p->host, "%s", host);
    snprintf(p->remote, sizeof p->remote, "%s", address);
    rv =
        uv_tcp_connect(&p->connect, &p->tcp, (struct sockaddr *)&sa, connectCb);
    if (rv != 0) {
        snprintf(base->errmsg, sizeof base->errmsg, "connect %s: %s", address,
                 uv_strerror(rv));
        pumpClose(p); /* p->req is not set: no callback. */
        return RAFT_NOCONNECTION;
    }
    p->req = req;
    p->cb = cb;
    return 0;
}

static void listenerClosed(uv_handle_t *h)
{
    struct raft_tls *t = h->data;
    t->listener_closed = true;
    maybeFireClose(t);
}

static void transportClose(struct raft_uv_transport *base,
                           raft_uv_transport_close_cb cb)
{
    struct raft_tls *t = (struct raft_tls *)base;
    struct pump *p;

    assert(!t->closing);
    t->closing = true;
    t->close_cb = cb;
    for (p = t->pumps; p != NULL; p = p->next) {
        p->status = RAFT_CANCELED;
        pumpClose(p);
    }
    if (t->listener_init) {
        uv_close((uv_handle_t *)&t->listener, listenerClosed);
    } else if (t->pumps == NULL) {
        /* Never initialised: nothing to wait for. Raft's callback must
         * not run inside close(): it does not in practice, since Raft
         * always initialises the transport first. */
        t->close_cb = NULL;
        cb(base);
    }
}

int raft_tls_create(uv_loop_t *loop, http_tls *tls, struct raft_tls **out)
{
    struct raft_tls *t = calloc(1, sizeof *t);

    *out = NULL;
    if (t == NULL) {
        return RAFT_NOMEM;
    }
    t->loop = loop;
    t->tls = tls;
    t->base.init = transportInit;
    t->base.listen = transportListen;
    t->base.connect = transportConnect;
    t->base.close = transportClose;
    *out = t;
    return 0;
}

struct raft_uv_transport *raft_tls_transport(struct raft_tls *t)
{
    return &t->base;
}

void raft_tls_free(struct raft_tls *t)
{
    if (t == NULL) {
        return;
    }
    free(t->address);
    free(t);
}
