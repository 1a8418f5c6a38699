/* Closed-loop HTTP load engine for ledgerctl bench (private to ctl/).
 *
 * One libuv loop drives n_clients keep-alive TCP connections. Each client
 * has at most one request in flight (closed loop): it sends the request the
 * workload builds for it, waits for the whole response, records the latency
 * of a successful one, and sends the next at once.
 *
 * Invariants:
 * - Memory is bounded by the clients (one connection, one request, one
 *   response each) plus one latency sample per successful request.
 * - A connection error or a response the engine cannot parse is counted as
 *   an error; the client reconnects after BENCH_RETRY_MS. A 429 or 503 is
 *   counted as rejected and retried after BENCH_RETRY_MS as well.
 * - After the deadline no request is started; bench_run returns once every
 *   in-flight request has finished or BENCH_DRAIN_MS passed, and every
 *   handle is closed (the loop is closed cleanly).
 */
#ifndef LEDGER_CTL_BENCH_H
#define LEDGER_CTL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "http/tls.h"

#define BENCH_RETRY_MS 20    /* Pause after a rejection or an error. */
#define BENCH_DRAIN_MS 15000 /* Longest wait for in-flight requests. */

struct bench_workload {
    /* The next request of `client` ("METHOD PATH HTTP/1.1 ... body"), as
     * bytes that stay valid until the response arrives. */
    const char *(*request)(void *arg, size_t client, size_t *len);
    /* A 2xx response of `client` arrived: return the number of events it
     * carried (0 or more), or -1 if its body is wrong (counted an error;
     * describe it in err). */
    long (*response)(void *arg, size_t client, int status, const char *body,
                     size_t len, char *err, size_t errlen);
    void *arg;
    uint64_t max_events; /* Stop once this many events succeeded (0: run
                            for the whole duration). */
};

struct bench_result {
    double secs;          /* From the first request to the deadline. */
    uint64_t requests;    /* Successful (2xx) requests. */
    uint64_t events;      /* Events they carried. */
    uint64_t rejected;    /* 429 and 503 answers. */
    uint64_t errors;      /* Transport errors, other statuses, bad
                             bodies. */
    uint32_t *lat_us;     /* Sorted latencies of successful requests. */
    size_t n_lat;         /* == requests unless memory ran out. */
    char last_error[256]; /* "" if none. */
};

/* Run the load: client i connects to addrs[i % n_addrs] ("HOST:PORT",
 * numeric IPv4, optionally after "http://" or "https://"), over HTTPS when
 * `tls` is not NULL (the server's certificate must name HOST). Returns 0
 * with *out filled (free out->lat_us), or -1 with a reason in
 * out->last_error (bad address, out of memory). */
int bench_run(const char *const *addrs, size_t n_addrs, size_t n_clients,
              unsigned duration_s, http_tls *tls,
              const struct bench_workload *w, struct bench_result *out);

/* Latency at quantile q (0..1) of a sorted sample, in milliseconds. */
double bench_quantile_ms(const struct bench_result *r, double q);

#endif /* LEDGER_CTL_BENCH_H */
