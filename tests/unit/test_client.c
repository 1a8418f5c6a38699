/* Unit tests for the client library (libcurl easy): ledger_http_request against
 * a tiny real HTTP server (a thread on 127.0.0.1, port 0) that plays canned
 * responses, plus the multi-endpoint ledger_client. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "ledger.h"

#define MAX_REPLIES 4

/* One canned answer: raw bytes, written in pieces of `split` bytes (0: all
 * at once); `hang` keeps the connection open without answering until the
 * test stops the server. */
struct reply {
    const char *raw;
    size_t split;
    int hang;
};

struct fixture {
    int listen_fd;
    int stop_pipe[2]; /* Written by tearDown to release a hanging reply. */
    char addr[64];
    pthread_t thread;
    int running;
    struct reply replies[MAX_REPLIES];
    int n_replies;
    char request[8192]; /* The last request received (after join). */
};

static int readRequest(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    size_t want = 0;
    for (;;) {
        ssize_t n;
        char *end;
        if (len + 1 >= cap) {
            return -1;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        if (want == 0) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
            want = (size_t)(end + 4 - buf) + body;
        }
        if (len >= want) {
            return 0;
        }
    }
}

static void *serverMain(void *arg)
{
    struct fixture *f = arg;
    for (int i = 0; i < f->n_replies; i++) {
        const struct reply *r = &f->replies[i];
        struct pollfd pfd[2] = {{f->listen_fd, POLLIN, 0},
                                {f->stop_pipe[0], POLLIN, 0}};
        size_t len;
        size_t off = 0;
        int fd;
        if (poll(pfd, 2, -1) <= 0 || (pfd[1].revents & POLLIN)) {
            break;
        }
        fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0) {
            break;
        }
        if (readRequest(fd, f->request, sizeof f->request) != 0) {
            close(fd);
            continue;
        }
        if (r->hang) {
            struct pollfd stop = {f->stop_pipe[0], POLLIN, 0};
            (void)poll(&stop, 1, -1);
            close(fd);
            break;
        }
        len = strlen(r->raw);
        while (off < len) {
            size_t n =
                r->split != 0 && r->split < len - off ? r->split : len - off;
            ssize_t w = send(fd, r->raw + off, n, MSG_NOSIGNAL);
            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
        close(fd);
    }
    return NULL;
}

static int setUp(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct sockaddr_in sin = {0};
    socklen_t sl = sizeof sin;
    assert_non_null(f);
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->listen_fd >= 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sin, sizeof sin),
                     0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&sin, &sl),
                     0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%u", ntohs(sin.sin_port));
    assert_int_equal(pipe(f->stop_pipe), 0);
    *state = f;
    return 0;
}

/* Start serving the queued replies. */
static void serverStart(struct fixture *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, serverMain, f), 0);
    f->running = 1;
}

static void serverJoin(struct fixture *f)
{
    if (f->running) {
        (void)write(f->stop_pipe[1], "x", 1);
        pthread_join(f->thread, NULL);
        f->running = 0;
    }
}

static void queue(struct fixture *f, const char *raw, size_t split, int hang)
{
    assert_true(f->n_replies < MAX_REPLIES);
    f->replies[f->n_replies].raw = raw;
    f->replies[f->n_replies].split = split;
    f->replies[f->n_replies].hang = hang;
    f->n_replies++;
}

static int tearDown(void **state)
{
    struct fixture *f = *state;
    serverJoin(f);
    close(f->listen_fd);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    free(f);
    return 0;
}

/* An address on which nothing listens: bind port 0, note it, close. */
static void closedPort(char *addr, size_t len)
{
    struct sockaddr_in sin = {0};
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
    close(fd);
}

#define ASSERT_CONTAINS(hay, needle)                                           \
    do {                                                                       \
        if (strstr((hay), (needle)) == NULL) {                                 \
            fail_msg("'%s' not found in '%s'", (needle), (hay));               \
        }                                                                      \
    } while (0)

/* A Content-Length response: status, headers and body come back; the
 * request carries Host, Content-Length, Connection and the caller's
 * headers and body. */
static void test_content_length(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f,
          "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
          "Retry-After: 2\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
          0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "POST", "/v1/x",
                                         "X-Test: 1\r\n", "{\"a\":1}", 7, 2000,
                                         &r, err, sizeof err),
                     LEDGER_CLIENT_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.retry_after, "2");
    assert_string_equal(r.body, "{\"ok\":true}");
    assert_int_equal(r.body_len, 11);
    ledger_http_response_free(&r);
    serverJoin(f);
    ASSERT_CONTAINS(f->request, "POST /v1/x HTTP/1.1\r\n");
    ASSERT_CONTAINS(f->request, "Host: 127.0.0.1:");
    ASSERT_CONTAINS(f->request, "Content-Length: 7\r\n");
    ASSERT_CONTAINS(f->request, "Connection: close\r\n");
    ASSERT_CONTAINS(f->request, "X-Test: 1\r\n");
    ASSERT_CONTAINS(f->request, "\r\n\r\n{\"a\":1}");
    assert_null(strstr(f->request, "Content-Type"));
}

/* A chunked response written a few bytes at a time is reassembled. */
static void test_chunked_split(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f,
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
          "content-type: text/plain\r\n\r\n"
          "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
          3, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello, world");
    assert_string_equal(r.content_type, "text/plain");
    assert_null(r.retry_after);
    ledger_http_response_free(&r);
}

/* A response without framing ends at EOF. */
static void test_body_until_eof(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, "HTTP/1.0 503 Service Unavailable\r\n\r\nno leader", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_OK);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "no leader");
    ledger_http_response_free(&r);
}

/* An empty body still yields a NUL-terminated string. */
static void test_empty_body(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, "HTTP/1.1 204 No Content\r\n\r\n", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "DELETE", "/x", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_OK);
    assert_int_equal(r.status, 204);
    assert_non_null(r.body);
    assert_int_equal(r.body_len, 0);
    ledger_http_response_free(&r);
    serverJoin(f);
    ASSERT_CONTAINS(f->request, "Content-Length: 0\r\n");
}

/* Garbage instead of a status line is a protocol error. */
static void test_malformed(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, "HELLO THERE\r\n\r\n", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_EPROTO);
    ASSERT_CONTAINS(err, "malformed HTTP response");
    assert_null(r.body);
}

/* A response cut short (Content-Length not reached) is a protocol error. */
static void test_truncated(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_EPROTO);
    ASSERT_CONTAINS(err, "closed in the middle");
}

/* The server closes without a byte. */
static void test_closed_without_response(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, "", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/", NULL, NULL, 0,
                                         2000, &r, err, sizeof err),
                     LEDGER_CLIENT_EPROTO);
    ASSERT_CONTAINS(err, "closed without a response");
}

/* A server that accepts but never answers times out with EIO. */
static void test_timeout(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    char err[256];
    queue(f, NULL, 0, 1);
    serverStart(f);
    assert_int_equal(ledger_http_request(f->addr, "GET", "/slow", NULL, NULL, 0,
                                         150, &r, err, sizeof err),
                     LEDGER_CLIENT_EIO);
    ASSERT_CONTAINS(err, "GET /slow on 127.0.0.1:");
    ASSERT_CONTAINS(err, "after 150 ms");
}

/* Nothing listening: ECONNECT and a "connect ADDR: connection refused"
 * line. */
static void test_connect_refused(void **state)
{
    struct ledger_http_response r;
    char addr[64];
    char err[256];
    char want[128];
    (void)state;
    closedPort(addr, sizeof addr);
    assert_int_equal(ledger_http_request(addr, "GET", "/", NULL, NULL, 0, 1000,
                                         &r, err, sizeof err),
                     LEDGER_CLIENT_ECONNECT);
    snprintf(want, sizeof want, "connect %s: connection refused", addr);
    assert_string_equal(err, want);
}

/* Addresses that are not HOST:PORT are refused before any I/O. */
static void test_bad_address(void **state)
{
    struct ledger_http_response r;
    char err[256];
    (void)state;
    assert_int_equal(ledger_http_request("localhost", "GET", "/", NULL, NULL, 0,
                                         1000, &r, err, sizeof err),
                     LEDGER_CLIENT_EINVAL);
    assert_int_equal(ledger_http_request("1.2.3.4:http", "GET", "/", NULL, NULL,
                                         0, 1000, &r, err, sizeof err),
                     LEDGER_CLIENT_EINVAL);
    ASSERT_CONTAINS(err, "expected HOST:PORT");
}

/* The multi-endpoint client skips a dead endpoint, sends the token and the
 * JSON content type, and remembers who answered. */
static void test_client_failover(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    ledger_client *c;
    char dead[64];
    char csv[160];
    char err[256];
    closedPort(dead, sizeof dead);
    snprintf(csv, sizeof csv, "%s, %s", dead, f->addr);
    queue(f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 0, 0);
    serverStart(f);
    assert_int_equal(ledger_client_create(csv, "s3cret", &c, err, sizeof err),
                     0);
    assert_int_equal(ledger_client_endpoint_count(c), 2);
    assert_int_equal(
        ledger_client_call(c, "POST", "/v1/streams/a/events", "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(ledger_client_last_endpoint(c), f->addr);
    ledger_http_response_free(&r);
    serverJoin(f);
    ASSERT_CONTAINS(f->request, "Authorization: Bearer s3cret\r\n");
    ASSERT_CONTAINS(f->request, "Content-Type: application/json\r\n");
    ledger_client_destroy(c);
}

/* Every endpoint dead: ENOENDPOINT naming each one. */
static void test_client_all_dead(void **state)
{
    struct ledger_http_response r;
    ledger_client *c;
    char a[64];
    char b[64];
    char csv[160];
    char err[256];
    (void)state;
    closedPort(a, sizeof a);
    closedPort(b, sizeof b);
    snprintf(csv, sizeof csv, "%s,%s", a, b);
    assert_int_equal(ledger_client_create(csv, NULL, &c, err, sizeof err), 0);
    assert_int_equal(ledger_client_call(c, "GET", "/v1/cluster", NULL, 0, &r),
                     LEDGER_CLIENT_ENOENDPOINT);
    ASSERT_CONTAINS(ledger_client_errmsg(c), a);
    ASSERT_CONTAINS(ledger_client_errmsg(c), b);
    assert_null(ledger_client_last_endpoint(c));
    ledger_client_destroy(c);
}

/* A POST that timed out is not retried elsewhere (outcome unknown); a GET
 * moves on to the next endpoint. */
static void test_client_post_timeout_not_retried(void **state)
{
    struct fixture *f = *state;
    struct ledger_http_response r;
    ledger_client *c;
    char dead[64];
    char csv[160];
    char err[256];
    closedPort(dead, sizeof dead);
    snprintf(csv, sizeof csv, "%s,%s", f->addr, dead);
    queue(f, NULL, 0, 1);
    serverStart(f);
    assert_int_equal(ledger_client_create(csv, NULL, &c, err, sizeof err), 0);
    ledger_client_set_timeout(c, 100);
    assert_int_equal(ledger_client_call(c, "POST", "/p", "{}", 2, &r),
                     LEDGER_CLIENT_EIO);
    ledger_client_destroy(c);
}

/* A call marked safe to repeat moves on when an endpoint accepts the
 * connection but never answers (a frozen node): the next one answers. */
static void test_client_retry_safe_moves_on(void **state)
{
    struct fixture *f = *state; /* hangs */
    void *gs = NULL;
    struct fixture *g;
    struct ledger_http_response r;
    ledger_client *c;
    char csv[160];
    char err[256];

    assert_int_equal(setUp(&gs), 0);
    g = gs;
    queue(f, NULL, 0, 1);
    serverStart(f);
    queue(g, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 0, 0);
    serverStart(g);
    snprintf(csv, sizeof csv, "%s,%s", f->addr, g->addr);
    assert_int_equal(ledger_client_create(csv, NULL, &c, err, sizeof err), 0);
    ledger_client_set_timeout(c, 200);
    assert_int_equal(ledger_client_call_flags(c, "POST", "/v1/streams/a/events",
                                              "{}", 2, LEDGER_CALL_RETRY_SAFE,
                                              &r),
                     0);
    assert_int_equal(r.status, 201);
    assert_string_equal(ledger_client_last_endpoint(c), g->addr);
    ledger_http_response_free(&r);
    ledger_client_destroy(c);
    tearDown(&gs);
}

/* Bad endpoint lists are refused with a reason. */
static void test_client_bad_endpoints(void **state)
{
    ledger_client *c = NULL;
    char err[256];
    (void)state;
    assert_int_equal(ledger_client_create("", NULL, &c, err, sizeof err),
                     LEDGER_CLIENT_EINVAL);
    assert_int_equal(
        ledger_client_create("127.0.0.1:1,nope", NULL, &c, err, sizeof err),
        LEDGER_CLIENT_EINVAL);
    ASSERT_CONTAINS(err, "bad endpoint 'nope'");
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_content_length, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_chunked_split, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_body_until_eof, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_empty_body, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_malformed, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_truncated, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_closed_without_response, setUp,
                                        tearDown),
        cmocka_unit_test_setup_teardown(test_timeout, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_bad_address, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_client_failover, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_client_all_dead, setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_client_post_timeout_not_retried,
                                        setUp, tearDown),
        cmocka_unit_test_setup_teardown(test_client_retry_safe_moves_on, setUp,
                                        tearDown),
        cmocka_unit_test_setup_teardown(test_client_bad_endpoints, setUp,
                                        tearDown),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
