/* One blocking HTTP/1.1 exchange over a TCP socket, parsed by http-parser.
 *
 * A request opens one connection (non-blocking connect, then poll() for
 * every send and receive against a single monotonic deadline), sends the
 * whole request with "Connection: close", and feeds every byte it reads to
 * http_parser in HTTP_RESPONSE mode until on_message_complete fires. A
 * response without Content-Length or chunked framing ends at EOF, which is
 * reported to the parser as a zero-length read. Nothing survives the call.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <http_parser.h>

#include "ledger.h"

#define CLIENT__READ_CHUNK 16384      /* Bytes read from the socket per recv. */
#define CLIENT__MAX_BODY (256u << 20) /* Refuse responses above 256 MiB. */

/* Growable byte buffer, always NUL-terminated when non-empty. */
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

/* Parser state for one response. */
struct parse {
    struct buf field; /* Header name being read (may arrive split). */
    struct buf value; /* Header value being read. */
    int in_value;     /* Last callback was on_header_value. */
    struct buf body;
    char *content_type;
    char *retry_after;
    int duplicate; /* X-Ledger-Duplicate seen */
    int head;      /* Request was HEAD: no body follows. */
    int complete;  /* on_message_complete fired. */
    int nomem;     /* An allocation failed inside a callback. */
    int too_big;   /* Body over CLIENT__MAX_BODY. */
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

/* strerror() with a lower-case first letter, to read well after a colon. */
static const char *errnoText(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z')) {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
    return buf;
}

/* Store the finished header if it is one we keep. */
static int parseFlushHeader(struct parse *p)
{
    char **slot = NULL;
    if (p->field.len == 0) {
        return 0;
    }
    if (strcasecmp(p->field.data, "Content-Type") == 0) {
        slot = &p->content_type;
    } else if (strcasecmp(p->field.data, "Retry-After") == 0) {
        slot = &p->retry_after;
    } else if (strcasecmp(p->field.data, "X-Ledger-Duplicate") == 0) {
        p->duplicate = 1;
    }
    if (slot != NULL) {
        free(*slot);
        *slot = strdup(p->value.data != NULL ? p->value.data : "");
        if (*slot == NULL) {
            p->nomem = 1;
            return -1;
        }
    }
    p->field.len = 0;
    p->value.len = 0;
    if (p->field.data != NULL) {
        p->field.data[0] = '\0';
    }
    if (p->value.data != NULL) {
        p->value.data[0] = '\0';
    }
    return 0;
}

static int onHeaderField(http_parser *hp, const char *at, size_t len)
{
    struct parse *p = hp->data;
    if (p->in_value) {
        if (parseFlushHeader(p) != 0) {
            return -1;
        }
        p->in_value = 0;
    }
    if (bufAppend(&p->field, at, len) != 0) {
        p->nomem = 1;
        return -1;
    }
    return 0;
}

static int onHeaderValue(http_parser *hp, const char *at, size_t len)
{
    struct parse *p = hp->data;
    p->in_value = 1;
    if (bufAppend(&p->value, at, len) != 0) {
        p->nomem = 1;
        return -1;
    }
    return 0;
}

static int onHeadersComplete(http_parser *hp)
{
    struct parse *p = hp->data;
    if (p->in_value && parseFlushHeader(p) != 0) {
        return -1;
    }
    p->in_value = 0;
    /* 1: tell the parser no body follows (HEAD responses). */
    return p->head ? 1 : 0;
}

static int onBody(http_parser *hp, const char *at, size_t len)
{
    struct parse *p = hp->data;
    if (p->body.len + len > CLIENT__MAX_BODY) {
        p->too_big = 1;
        return -1;
    }
    if (bufAppend(&p->body, at, len) != 0) {
        p->nomem = 1;
        return -1;
    }
    return 0;
}

static int onMessageComplete(http_parser *hp)
{
    struct parse *p = hp->data;
    p->complete = 1;
    /* Stop here: anything after the first response is ignored. */
    http_parser_pause(hp, 1);
    return 0;
}

static void parseClose(struct parse *p)
{
    free(p->field.data);
    free(p->value.data);
    free(p->body.data);
    free(p->content_type);
    free(p->retry_after);
}

static int64_t nowMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events` or the deadline passes. Returns 0
 * when ready, ETIMEDOUT, or an errno. */
static int waitFd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int64_t left = deadline - nowMs();
        int rv;
        if (left <= 0) {
            return ETIMEDOUT;
        }
        rv = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (rv > 0) {
            return 0;
        }
        if (rv == 0) {
            return ETIMEDOUT;
        }
        if (errno != EINTR) {
            return errno;
        }
    }
}

/* Split "HOST:PORT" (or "[V6]:PORT") into host and port. */
static int splitAddr(const char *addr, char *host, size_t hostlen, char *port,
                     size_t portlen)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            return -1;
        }
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen || colon[1] == '\0' ||
        strlen(colon + 1) >= portlen) {
        return -1;
    }
    for (const char *q = colon + 1; *q != '\0'; q++) {
        if (*q < '0' || *q > '9') {
            return -1;
        }
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* Connect to addr before the deadline. Returns a connected non-blocking
 * socket, or -1 with *rv and err set. */
static int connectAddr(const char *addr, int64_t deadline, unsigned timeout_ms,
                       int *rv, char *err, size_t errlen)
{
    char host[256];
    char port[16];
    char ebuf[128];
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    int last_errno = 0;
    int gai;
    int fd = -1;

    if (splitAddr(addr, host, sizeof host, port, sizeof port) != 0) {
        *rv = LEDGER_CLIENT_EINVAL;
        errf(err, errlen, "bad address '%s': expected HOST:PORT", addr);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        *rv = LEDGER_CLIENT_ECONNECT;
        errf(err, errlen, "connect %s: resolve %s: %s", addr, host,
             gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        socklen_t sl = sizeof last_errno;
        int so_error = 0;
        int w;
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        if (errno != EINPROGRESS) {
            last_errno = errno;
            goto out_close;
        }
        w = waitFd(fd, POLLOUT, deadline);
        if (w != 0) {
            last_errno = w;
            goto out_close;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl) != 0) {
            so_error = errno;
        }
        if (so_error == 0) {
            break;
        }
        last_errno = so_error;
    out_close:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        *rv = LEDGER_CLIENT_ECONNECT;
        if (last_errno == ETIMEDOUT) {
            errf(err, errlen, "connect %s: timed out after %u ms", addr,
                 timeout_ms);
        } else {
            errf(err, errlen, "connect %s: %s", addr,
                 errnoText(last_errno, ebuf, sizeof ebuf));
        }
        return -1;
    }
    {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int sendAll(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rv = waitFd(fd, POLLOUT, deadline);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        return errno != 0 ? errno : EIO;
    }
    return 0;
}

static int buildRequest(struct buf *req, const char *addr, const char *method,
                        const char *path, const char *headers, const char *body,
                        size_t body_len)
{
    char line[128];
    int need_length = body != NULL || (strcmp(method, "GET") != 0 &&
                                       strcmp(method, "HEAD") != 0);
    if (bufAppend(req, method, strlen(method)) != 0 ||
        bufAppend(req, " ", 1) != 0 ||
        bufAppend(req, path, strlen(path)) != 0 ||
        bufAppend(req, " HTTP/1.1\r\nHost: ", 17) != 0 ||
        bufAppend(req, addr, strlen(addr)) != 0 ||
        bufAppend(req, "\r\nConnection: close\r\n", 21) != 0) {
        return -1;
    }
    if (need_length) {
        int n = snprintf(line, sizeof line, "Content-Length: %zu\r\n",
                         body != NULL ? body_len : 0);
        if (bufAppend(req, line, (size_t)n) != 0) {
            return -1;
        }
    }
    if (headers != NULL && bufAppend(req, headers, strlen(headers)) != 0) {
        return -1;
    }
    if (bufAppend(req, "\r\n", 2) != 0) {
        return -1;
    }
    if (body != NULL && body_len > 0 && bufAppend(req, body, body_len) != 0) {
        return -1;
    }
    return 0;
}

void ledger_http_response_free(struct ledger_http_response *r)
{
    if (r == NULL) {
        return;
    }
    free(r->content_type);
    free(r->retry_after);
    free(r->body);
    memset(r, 0, sizeof *r);
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

/* Read and parse until the response is complete. */
static int readResponse(int fd, http_parser *hp, struct parse *p,
                        int64_t deadline, const char *what, unsigned timeout_ms,
                        char *err, size_t errlen)
{
    static const http_parser_settings settings = {
        .on_header_field = onHeaderField,
        .on_header_value = onHeaderValue,
        .on_headers_complete = onHeadersComplete,
        .on_body = onBody,
        .on_message_complete = onMessageComplete,
    };
    char *chunk = malloc(CLIENT__READ_CHUNK);
    char ebuf[128];
    int rv = LEDGER_CLIENT_OK;
    size_t total = 0;

    if (chunk == NULL) {
        errf(err, errlen, "%s: out of memory", what);
        return LEDGER_CLIENT_ENOMEM;
    }
    while (!p->complete) {
        ssize_t n = recv(fd, chunk, CLIENT__READ_CHUNK, 0);
        size_t used;
        enum http_errno he;
        if (n < 0) {
            int w;
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                rv = LEDGER_CLIENT_EIO;
                errf(err, errlen, "%s: receive: %s", what,
                     errnoText(errno, ebuf, sizeof ebuf));
                break;
            }
            w = waitFd(fd, POLLIN, deadline);
            if (w == ETIMEDOUT) {
                rv = LEDGER_CLIENT_EIO;
                errf(err, errlen, "%s: no complete response after %u ms", what,
                     timeout_ms);
                break;
            }
            if (w != 0) {
                rv = LEDGER_CLIENT_EIO;
                errf(err, errlen, "%s: receive: %s", what,
                     errnoText(w, ebuf, sizeof ebuf));
                break;
            }
            continue;
        }
        total += (size_t)n;
        used = http_parser_execute(hp, &settings, chunk, (size_t)n);
        he = HTTP_PARSER_ERRNO(hp);
        if (p->complete) {
            break;
        }
        if (p->nomem) {
            rv = LEDGER_CLIENT_ENOMEM;
            errf(err, errlen, "%s: out of memory", what);
            break;
        }
        if (p->too_big) {
            rv = LEDGER_CLIENT_EPROTO;
            errf(err, errlen, "%s: response body over %u bytes", what,
                 CLIENT__MAX_BODY);
            break;
        }
        if (n == 0) {
            /* EOF reported to the parser did not complete the message. */
            rv = LEDGER_CLIENT_EPROTO;
            errf(err, errlen,
                 total == 0 ? "%s: connection closed without a response"
                            : "%s: connection closed in the middle of the "
                              "response",
                 what);
            break;
        }
        if (he != HPE_OK || used != (size_t)n) {
            rv = LEDGER_CLIENT_EPROTO;
            errf(err, errlen, "%s: malformed HTTP response: %s", what,
                 http_errno_description(he));
            break;
        }
    }
    free(chunk);
    return rv;
}

int ledger_http_request(const char *addr, const char *method, const char *path,
                        const char *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, struct ledger_http_response *out,
                        char *err, size_t errlen)
{
    int64_t deadline = nowMs() + (int64_t)timeout_ms;
    struct buf req = {0};
    struct parse p = {0};
    http_parser hp;
    char what[256];
    char ebuf[128];
    int rv = LEDGER_CLIENT_OK;
    int fd;
    int s;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (addr == NULL || method == NULL || path == NULL || out == NULL) {
        errf(err, errlen,
             "bad argument: addr, method, path and out are "
             "required");
        return LEDGER_CLIENT_EINVAL;
    }
    memset(out, 0, sizeof *out);
    snprintf(what, sizeof what, "%s %s on %s", method, path, addr);

    if (buildRequest(&req, addr, method, path, headers, body, body_len) != 0) {
        errf(err, errlen, "%s: out of memory", what);
        rv = LEDGER_CLIENT_ENOMEM;
        goto out_free_req;
    }
    fd = connectAddr(addr, deadline, timeout_ms, &rv, err, errlen);
    if (fd < 0) {
        goto out_free_req;
    }
    s = sendAll(fd, req.data, req.len, deadline);
    if (s != 0) {
        rv = LEDGER_CLIENT_EIO;
        if (s == ETIMEDOUT) {
            errf(err, errlen, "%s: send timed out after %u ms", what,
                 timeout_ms);
        } else {
            errf(err, errlen, "%s: send: %s", what,
                 errnoText(s, ebuf, sizeof ebuf));
        }
        goto out_close_fd;
    }

    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &p;
    p.head = strcmp(method, "HEAD") == 0;
    rv = readResponse(fd, &hp, &p, deadline, what, timeout_ms, err, errlen);
    if (rv != LEDGER_CLIENT_OK) {
        goto out_free_parse;
    }

    if (p.body.data == NULL && bufAppend(&p.body, "", 0) != 0) {
        errf(err, errlen, "%s: out of memory", what);
        rv = LEDGER_CLIENT_ENOMEM;
        goto out_free_parse;
    }
    out->status = (int)hp.status_code;
    out->content_type = p.content_type;
    out->retry_after = p.retry_after;
    out->duplicate = p.duplicate;
    out->body = p.body.data;
    out->body_len = p.body.len;
    p.content_type = NULL;
    p.retry_after = NULL;
    p.body.data = NULL;

out_free_parse:
    parseClose(&p);
out_close_fd:
    close(fd);
out_free_req:
    free(req.data);
    return rv;
}
