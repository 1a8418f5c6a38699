/* ledgerctl bench: closed-loop append load from N client threads.
 *
 * Each client thread owns a ledger_client and appends batches of --batch
 * events (each with a --size byte string payload) to its own stream,
 * one request at a time, for --duration seconds. Reported: successful
 * requests and events, events per second, and latency percentiles of the
 * successful requests. 429/503 answers are counted as rejected and backed
 * off for 50 ms.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

struct bench_client {
    pthread_t thread;
    int started;
    struct ctl *ctl;
    const char *body;
    char path[128];
    long long deadline_us;
    double *lat_ms; /* Latencies of successful requests. */
    size_t n_lat;
    size_t cap_lat;
    unsigned long long rejected;
    unsigned long long failed;
    char last_error[256];
};

static long long nowUs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *benchMain(void *arg)
{
    struct bench_client *b = arg;
    ledger_client *c;
    char err[256];
    if (ledger_client_create(b->ctl->endpoints, b->ctl->token, &c, err,
                             sizeof err) != 0) {
        snprintf(b->last_error, sizeof b->last_error, "%s", err);
        b->failed++;
        return NULL;
    }
    ledger_client_set_timeout(c, b->ctl->timeout_ms);
    while (nowUs() < b->deadline_us) {
        struct ledger_http_response r;
        long long t0 = nowUs();
        int rv = ledger_client_call(c, "POST", b->path, b->body,
                                    strlen(b->body), &r);
        if (rv != 0) {
            b->failed++;
            snprintf(b->last_error, sizeof b->last_error, "%s",
                     ledger_client_errmsg(c));
            usleep(50000);
            continue;
        }
        if (r.status == 201 || r.status == 200) {
            if (b->n_lat == b->cap_lat) {
                size_t cap = b->cap_lat ? b->cap_lat * 2 : 1024;
                double *nl = realloc(b->lat_ms, cap * sizeof *nl);
                if (nl == NULL) {
                    ledger_http_response_free(&r);
                    break;
                }
                b->lat_ms = nl;
                b->cap_lat = cap;
            }
            b->lat_ms[b->n_lat++] = (double)(nowUs() - t0) / 1000.0;
        } else if (r.status == 503 || r.status == 429) {
            b->rejected++;
            usleep(50000);
        } else {
            b->failed++;
            ctlDescribeError(&r, b->last_error, sizeof b->last_error);
        }
        ledger_http_response_free(&r);
    }
    ledger_client_destroy(c);
    return NULL;
}

static int cmpDouble(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

int ctlCmdBench(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"clients", 1, NULL}, {"size", 1, NULL},
                               {"batch", 1, NULL},   {"duration", 1, NULL},
                               {"stream", 1, NULL},  {NULL, 0, NULL}};
    const char *pos[1];
    unsigned long long clients = 64, size = 100, batch = 1, duration = 10;
    const char *prefix;
    struct bench_client *bs = NULL;
    json_t *events;
    json_t *body;
    char *text = NULL;
    char *payload = NULL;
    double *all = NULL;
    size_t n_all = 0;
    unsigned long long rejected = 0, failed = 0;
    const char *last_error = "";
    long long t0;
    double secs;
    int n_pos;
    int rv = ctlParseArgs(ctl, "bench", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if ((ctlFlag(flags, "clients") != NULL &&
         ctlParseU64("--clients", ctlFlag(flags, "clients"), 1, 1024,
                     &clients) != 0) ||
        (ctlFlag(flags, "size") != NULL &&
         ctlParseU64("--size", ctlFlag(flags, "size"), 0, 1 << 20, &size) !=
             0) ||
        (ctlFlag(flags, "batch") != NULL &&
         ctlParseU64("--batch", ctlFlag(flags, "batch"), 1, 10000, &batch) !=
             0) ||
        (ctlFlag(flags, "duration") != NULL &&
         ctlParseU64("--duration", ctlFlag(flags, "duration"), 1, 86400,
                     &duration) != 0)) {
        return CTL_EXIT_USAGE;
    }
    prefix = ctlFlag(flags, "stream");
    if (prefix == NULL) {
        prefix = "bench";
    }
    if (ctlClient(ctl) == NULL) {
        return CTL_EXIT_USAGE;
    }
    payload = malloc(size + 1);
    bs = calloc(clients, sizeof *bs);
    events = json_array();
    if (payload == NULL || bs == NULL || events == NULL) {
        json_decref(events);
        rv = ctlFail("bench: out of memory");
        goto out;
    }
    memset(payload, 'x', size);
    payload[size] = '\0';
    for (unsigned long long i = 0; i < batch; i++) {
        json_array_append_new(
            events, json_pack("{ssss}", "type", "bench", "data", payload));
    }
    body = json_pack("{so}", "events", events);
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        rv = ctlFail("bench: out of memory");
        goto out;
    }
    t0 = nowUs();
    for (unsigned long long i = 0; i < clients; i++) {
        char enc[96];
        char name[96];
        bs[i].ctl = ctl;
        bs[i].body = text;
        bs[i].deadline_us = t0 + (long long)duration * 1000000;
        snprintf(name, sizeof name, "%.40s-%d-%llu", prefix, (int)getpid(), i);
        ctlUrlEncode(name, enc, sizeof enc);
        snprintf(bs[i].path, sizeof bs[i].path, "/v1/streams/%s/events", enc);
        if (pthread_create(&bs[i].thread, NULL, benchMain, &bs[i]) != 0) {
            bs[i].failed++;
            snprintf(bs[i].last_error, sizeof bs[i].last_error,
                     "cannot start thread");
        } else {
            bs[i].started = 1;
        }
    }
    for (unsigned long long i = 0; i < clients; i++) {
        if (bs[i].started) {
            pthread_join(bs[i].thread, NULL);
        }
        n_all += bs[i].n_lat;
        rejected += bs[i].rejected;
        failed += bs[i].failed;
        if (bs[i].last_error[0] != '\0') {
            last_error = bs[i].last_error;
        }
    }
    secs = (double)(nowUs() - t0) / 1e6;
    all = malloc((n_all ? n_all : 1) * sizeof *all);
    if (all == NULL) {
        rv = ctlFail("bench: out of memory");
        goto out;
    }
    n_all = 0;
    for (unsigned long long i = 0; i < clients; i++) {
        if (bs[i].n_lat > 0) {
            memcpy(all + n_all, bs[i].lat_ms, bs[i].n_lat * sizeof *all);
            n_all += bs[i].n_lat;
        }
    }
    qsort(all, n_all, sizeof *all, cmpDouble);
    {
        double p50 = n_all ? all[n_all / 2] : 0;
        double p99 = n_all ? all[(n_all * 99) / 100 < n_all ? (n_all * 99) / 100
                                                            : n_all - 1]
                           : 0;
        double max = n_all ? all[n_all - 1] : 0;
        unsigned long long n_events = (unsigned long long)n_all * batch;
        if (ctl->json) {
            json_t *o = json_pack(
                "{sIsIsIsfsIsIsIsIsfs{sfsfsf}}", "clients", (json_int_t)clients,
                "size", (json_int_t)size, "batch", (json_int_t)batch,
                "duration_s", secs, "requests", (json_int_t)n_all, "events",
                (json_int_t)n_events, "rejected", (json_int_t)rejected,
                "errors", (json_int_t)failed, "events_per_s",
                secs > 0 ? (double)n_events / secs : 0.0, "latency_ms", "p50",
                p50, "p99", p99, "max", max);
            ctlPrintJson(o);
            json_decref(o);
        } else {
            printf("clients %llu  size %llu  batch %llu  duration %.1f s\n",
                   clients, size, batch, secs);
            printf("requests %zu  events %llu  rejected %llu  errors %llu\n",
                   n_all, n_events, rejected, failed);
            printf("throughput %.0f events/s  %.0f requests/s\n",
                   secs > 0 ? (double)n_events / secs : 0.0,
                   secs > 0 ? (double)n_all / secs : 0.0);
            printf("latency ms  p50 %.2f  p99 %.2f  max %.2f\n", p50, p99, max);
        }
    }
    rv = CTL_EXIT_OK;
    if (n_all == 0) {
        rv = ctlFail("bench: no append succeeded (%s); is the cluster "
                     "running and writable?",
                     last_error[0] != '\0' ? last_error : "no answer");
    }

out:
    for (unsigned long long i = 0; bs != NULL && i < clients; i++) {
        free(bs[i].lat_ms);
    }
    free(all);
    free(bs);
    free(text);
    free(payload);
    return rv;
}
