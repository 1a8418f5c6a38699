/* ledgerctl bench: closed-loop load on keep-alive connections (bench.h).
 *
 * Workloads (one per run):
 * - append (default): client i appends batches of --batch events, each
 *   with a --size byte string as data, to stream "PREFIX-(i % --streams)".
 *   Without --spread every client talks to the leader (found through
 *   GET /v1/cluster); with it clients are spread over all endpoints, and
 *   followers forward.
 * - --read: client i pages through stream "PREFIX-(i % --streams)" with
 *   GET ...?from=F&limit=--batch&consistency=any, from the start again
 *   after the end; events/s counts the events received. Clients are spread
 *   over the endpoints given (pass one endpoint to measure one node).
 * - --msgpack: append bodies in MessagePack instead of JSON (the API takes
 *   both; MessagePack spares the leader the JSON text parsing).
 * - --new-streams: every request appends its batch to a stream of its own,
 *   "PREFIX-1", "PREFIX-2", ... in the order requests are sent (a retried
 *   request takes the next name). With --events N it fills a store with N /
 *   --batch streams as fast as the cluster takes appends (how the tests
 *   build 300,000 streams).
 * - --target etcd: client i puts key "PREFIX-i" with a --size byte value
 *   through etcd's v3 JSON gateway (POST /v3/kv/put, base64 key/value), to
 *   the endpoints given. The same engine, so both systems are measured
 *   the same way.
 *
 * Reported: requests/s, events/s, latency p50/p99/p99.9/max of successful
 * requests, rejected (429/503) and errors. Exit 1 when nothing succeeded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/evp.h>

#include "ctl.h"
#include "bench.h"

enum { TARGET_LEDGER, TARGET_ETCD };

struct bench_ctx {
    int target;
    int read;
    int msgpack; /* Append bodies in MessagePack. */
    unsigned long long batch;
    char **reqs;      /* Fixed request of each client (append, etcd). */
    size_t *lens;     /* Their lengths. */
    char **streams;   /* URL-encoded stream of each client (read). */
    uint64_t *from;   /* Next seq each reader asks for. */
    char *readbuf;    /* Request being sent, per client, 1 KiB each. */
    const char *auth; /* "Authorization: Bearer T\r\n" or "". */
    uint64_t max_events;
    int new_streams;    /* --new-streams: a stream per request. */
    const char *prefix; /* Stream name prefix (URL-safe: checked). */
    char *body;         /* The append body of every request (new_streams). */
    size_t body_len;
    char *reqbuf;         /* Per client: the request being sent. */
    size_t reqbuf_size;   /* Bytes per client in reqbuf. */
    uint64_t next_stream; /* Number of the next new stream. */
};

#define BENCH__READ_REQ_MAX 1024 /* Bytes per read request. */
#define BENCH__HEAD_MAX 1600     /* Request line and headers, at most. */

static const char *requestCb(void *arg, size_t client, size_t *len)
{
    struct bench_ctx *x = arg;
    char *buf;
    int n;

    if (x->new_streams) {
        buf = x->reqbuf + client * x->reqbuf_size;
        n = snprintf(buf, BENCH__HEAD_MAX,
                     "POST /v1/streams/%s-%llu/events HTTP/1.1\r\nHost: "
                     "bench\r\nContent-Type: application/json\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     x->prefix, (unsigned long long)++x->next_stream, x->auth,
                     x->body_len);
        if (n <= 0 || n >= BENCH__HEAD_MAX) {
            *len = 0;
            return buf;
        }
        memcpy(buf + n, x->body, x->body_len);
        *len = (size_t)n + x->body_len;
        return buf;
    }
    if (!x->read) {
        *len = x->lens[client];
        return x->reqs[client];
    }
    buf = x->readbuf + client * BENCH__READ_REQ_MAX;
    n = snprintf(buf, BENCH__READ_REQ_MAX,
                 "GET /v1/streams/%s/events?from=%llu&limit=%llu"
                 "&consistency=any HTTP/1.1\r\nHost: ledger\r\nAccept: "
                 "application/msgpack\r\n%s\r\n",
                 x->streams[client], (unsigned long long)x->from[client],
                 x->batch, x->auth);
    *len = n > 0 && n < BENCH__READ_REQ_MAX ? (size_t)n : 0;
    return buf;
}

/* The value of `key` in a msgpack map, or NULL. */
static const msgpack_object *mapGet(const msgpack_object *o, const char *key)
{
    size_t kl = strlen(key);
    if (o->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

static long responseCb(void *arg, size_t client, int status, const char *body,
                       size_t len, char *err, size_t errlen)
{
    struct bench_ctx *x = arg;
    msgpack_unpacked up;
    const msgpack_object *events;
    const msgpack_object *last = NULL;
    size_t off = 0;
    long n = -1;

    (void)status;
    if (!x->read) {
        return x->target == TARGET_ETCD ? 1 : (long)x->batch;
    }
    /* Reads ask for MessagePack: much cheaper to decode than JSON, so the
     * load generator stays out of the way of the node it measures. */
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        (events = mapGet(&up.data, "events")) == NULL ||
        events->type != MSGPACK_OBJECT_ARRAY) {
        snprintf(err, errlen,
                 "read answer is not a MessagePack map with an "
                 "events array");
        goto out;
    }
    n = (long)events->via.array.size;
    if (n > 0) {
        last = mapGet(&events->via.array.ptr[n - 1], "seq");
    }
    if (last == NULL || last->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        x->from[client] = 1; /* The end: start over. */
    } else {
        x->from[client] = last->via.u64 + 1;
    }
out:
    msgpack_unpacked_destroy(&up);
    return n;
}

/* Base64 of len bytes of s, malloc'ed. */
static char *base64(const char *s, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL) {
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s,
                        (int)len);
    }
    return out;
}

/* One fixed POST request with a body of `ctype`, malloc'ed. */
static char *buildPostBody(const char *path, const char *ctype,
                           const char *body, size_t blen, const char *auth,
                           size_t *len)
{
    size_t cap = strlen(path) + blen + strlen(auth) + 256;
    char *out = malloc(cap);
    int n;

    if (out == NULL) {
        return NULL;
    }
    n = snprintf(out, cap,
                 "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                 "%s\r\n%sContent-Length: %zu\r\n\r\n",
                 path, ctype, auth, blen);
    memcpy(out + n, body, blen);
    *len = (size_t)n + blen;
    return out;
}

static char *buildPost(const char *path, const char *body, const char *auth,
                       size_t *len)
{
    return buildPostBody(path, "application/json", body, strlen(body), auth,
                         len);
}

/* {"events":[{"type":"bench","data":PAYLOAD} x batch]} as MessagePack (the
 * API takes it as it takes JSON), in a malloc'ed request. */
static char *buildMsgpackAppend(const char *path, const char *payload,
                                size_t size, unsigned long long batch,
                                const char *auth, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *out = NULL;
    int rv;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rv = msgpack_pack_map(&pk, 1);
    rv |= msgpack_pack_str_with_body(&pk, "events", 6);
    rv |= msgpack_pack_array(&pk, (size_t)batch);
    for (unsigned long long j = 0; j < batch && rv == 0; j++) {
        rv |= msgpack_pack_map(&pk, 2);
        rv |= msgpack_pack_str_with_body(&pk, "type", 4);
        rv |= msgpack_pack_str_with_body(&pk, "bench", 5);
        rv |= msgpack_pack_str_with_body(&pk, "data", 4);
        rv |= msgpack_pack_str_with_body(&pk, payload, size);
    }
    if (rv == 0) {
        out = buildPostBody(path, "application/msgpack", sb.data, sb.size, auth,
                            len);
    }
    msgpack_sbuffer_destroy(&sb);
    return out;
}

/* The leader's API address from GET /v1/cluster into buf; 0 or -1. */
static int findLeader(struct ctl *ctl, char *buf, size_t len)
{
    json_t *cl = NULL;
    json_t *m;
    size_t i;
    json_int_t leader;
    int rv = -1;

    if (ctlApi(ctl, "bench: find the leader", "GET", "/v1/cluster", NULL, &cl,
               NULL) != 0) {
        return -1;
    }
    leader = json_integer_value(json_object_get(cl, "leader_id"));
    json_array_foreach(json_object_get(cl, "members"), i, m)
    {
        const char *api = json_string_value(json_object_get(m, "api_addr"));
        if (json_integer_value(json_object_get(m, "id")) == leader &&
            leader > 0 && api != NULL) {
            snprintf(buf, len, "%s", api);
            rv = 0;
        }
    }
    json_decref(cl);
    return rv;
}

/* Split a comma list into trimmed, malloc'ed strings. */
static size_t splitEndpoints(const char *list, char **out, size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (*p != '\0' && n < max) {
        const char *e = strchr(p, ',');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        while (l > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            l--;
        }
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t')) {
            l--;
        }
        if (l > 0 && (out[n] = strndup(p, l)) != NULL) {
            n++;
        }
        if (e == NULL) {
            break;
        }
        p = e + 1;
    }
    return n;
}

static void printResult(struct ctl *ctl, const struct bench_ctx *x,
                        const struct bench_result *r,
                        unsigned long long clients, unsigned long long size,
                        const char *where)
{
    double rps = r->secs > 0 ? (double)r->requests / r->secs : 0;
    double eps = r->secs > 0 ? (double)r->events / r->secs : 0;
    const char *mode = x->target == TARGET_ETCD ? "etcd-gateway-put"
                       : x->read                ? "ledger-read"
                       : x->msgpack             ? "ledger-append-msgpack"
                       : x->new_streams         ? "ledger-append-new-streams"
                                                : "ledger-append";
    if (ctl->json) {
        json_t *o = json_pack(
            "{sssssIsIsIsfsIsIsIsIsfsfs{sfsfsfsf}}", "mode", mode, "endpoints",
            where, "clients", (json_int_t)clients, "size", (json_int_t)size,
            "batch", (json_int_t)x->batch, "duration_s", r->secs, "requests",
            (json_int_t)r->requests, "events", (json_int_t)r->events,
            "rejected", (json_int_t)r->rejected, "errors",
            (json_int_t)r->errors, "requests_per_s", rps, "events_per_s", eps,
            "latency_ms", "p50", bench_quantile_ms(r, 0.50), "p99",
            bench_quantile_ms(r, 0.99), "p999", bench_quantile_ms(r, 0.999),
            "max", bench_quantile_ms(r, 1.0));
        if (r->last_error[0] != '\0') {
            json_object_set_new(o, "last_error", json_string(r->last_error));
        }
        ctlPrintJson(o);
        json_decref(o);
        return;
    }
    printf("%s  endpoints %s\n", mode, where);
    printf("clients %llu  size %llu  batch %llu  duration %.1f s\n", clients,
           size, x->batch, r->secs);
    printf("requests %llu  events %llu  rejected %llu  errors %llu\n",
           (unsigned long long)r->requests, (unsigned long long)r->events,
           (unsigned long long)r->rejected, (unsigned long long)r->errors);
    printf("throughput %.0f requests/s  %.0f events/s\n", rps, eps);
    printf("latency ms  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
           bench_quantile_ms(r, 0.50), bench_quantile_ms(r, 0.99),
           bench_quantile_ms(r, 0.999), bench_quantile_ms(r, 1.0));
    if (r->last_error[0] != '\0') {
        printf("last error: %s\n", r->last_error);
    }
}

int ctlCmdBench(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {
        {"clients", 1, NULL},  {"size", 1, NULL},    {"batch", 1, NULL},
        {"duration", 1, NULL}, {"streams", 1, NULL}, {"stream", 1, NULL},
        {"read", 0, NULL},     {"target", 1, NULL},  {"spread", 0, NULL},
        {"events", 1, NULL},   {"msgpack", 0, NULL}, {"new-streams", 0, NULL},
        {NULL, 0, NULL}};
    const char *pos[1];
    unsigned long long clients = 64, size = 100, batch = 0, duration = 10;
    unsigned long long n_streams = 0, max_events = 0;
    struct bench_ctx x;
    struct bench_workload w;
    struct bench_result res;
    http_tls *tls = NULL;
    char *eps[64];
    size_t n_eps = 0;
    char prefix[64];
    char auth[1200] = "";
    char leader[256];
    char *payload = NULL;
    char where[1024] = "";
    const char *target;
    int msgpack_body;
    int n_pos;
    int rv = ctlParseArgs(ctl, "bench", argc, argv, flags, pos, 0, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    memset(&x, 0, sizeof x);
    memset(&res, 0, sizeof res);
    if ((ctlFlag(flags, "clients") != NULL &&
         ctlParseU64("--clients", ctlFlag(flags, "clients"), 1, 4096,
                     &clients) != 0) ||
        (ctlFlag(flags, "size") != NULL &&
         ctlParseU64("--size", ctlFlag(flags, "size"), 0, 1 << 20, &size) !=
             0) ||
        (ctlFlag(flags, "batch") != NULL &&
         ctlParseU64("--batch", ctlFlag(flags, "batch"), 1, 10000, &batch) !=
             0) ||
        (ctlFlag(flags, "duration") != NULL &&
         ctlParseU64("--duration", ctlFlag(flags, "duration"), 1, 86400,
                     &duration) != 0) ||
        (ctlFlag(flags, "streams") != NULL &&
         ctlParseU64("--streams", ctlFlag(flags, "streams"), 1, 1000000,
                     &n_streams) != 0) ||
        (ctlFlag(flags, "events") != NULL &&
         ctlParseU64("--events", ctlFlag(flags, "events"), 1, UINT64_MAX,
                     &max_events) != 0)) {
        return CTL_EXIT_USAGE;
    }
    target = ctlFlag(flags, "target");
    if (target == NULL || strcmp(target, "ledger") == 0) {
        x.target = TARGET_LEDGER;
    } else if (strcmp(target, "etcd") == 0) {
        x.target = TARGET_ETCD;
    } else {
        return ctlUsage("bench: --target must be ledger or etcd, not '%s'",
                        target);
    }
    x.read = ctlFlag(flags, "read") != NULL;
    msgpack_body = ctlFlag(flags, "msgpack") != NULL;
    x.msgpack = msgpack_body;
    if (msgpack_body && (x.read || x.target == TARGET_ETCD)) {
        return ctlUsage("bench: --msgpack is for ledger appends only");
    }
    if (x.read && x.target == TARGET_ETCD) {
        return ctlUsage("bench: --read is for --target ledger only");
    }
    x.new_streams = ctlFlag(flags, "new-streams") != NULL;
    if (x.new_streams && (x.read || msgpack_body || x.target == TARGET_ETCD ||
                          ctlFlag(flags, "streams") != NULL)) {
        return ctlUsage("bench: --new-streams is for JSON ledger appends, "
                        "without --read, --msgpack or --streams");
    }
    x.batch = batch ? batch : (x.read ? 1000 : 1);
    if (n_streams == 0) {
        n_streams = clients;
    }
    if (ctlFlag(flags, "stream") != NULL) {
        snprintf(prefix, sizeof prefix, "%.40s", ctlFlag(flags, "stream"));
    } else if (x.read) {
        return ctlUsage("bench: --read needs --stream PREFIX (it reads "
                        "PREFIX-0 .. PREFIX-(N-1))");
    } else {
        snprintf(prefix, sizeof prefix, "bench-%d", (int)getpid());
    }
    if (x.new_streams &&
        strspn(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl"
                       "mnopqrstuvwxyz0123456789._:-") != strlen(prefix)) {
        return ctlUsage("bench: --new-streams needs a --stream PREFIX of A-Z "
                        "a-z 0-9 . _ : - only");
    }
    x.prefix = prefix;
    if (ctl->token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", ctl->token);
    }
    x.auth = auth;
    x.max_events = max_events;

    /* Endpoints: the leader alone unless --spread, --read or etcd. */
    if (x.target == TARGET_LEDGER && !x.read &&
        ctlFlag(flags, "spread") == NULL) {
        if (ctlClient(ctl) == NULL) {
            return CTL_EXIT_USAGE;
        }
        if (findLeader(ctl, leader, sizeof leader) == 0) {
            eps[0] = strdup(leader);
            n_eps = eps[0] != NULL ? 1 : 0;
        }
    }
    if (n_eps == 0) {
        n_eps = splitEndpoints(ctl->endpoints, eps, 64);
    }
    if (n_eps == 0) {
        return ctlUsage("bench: no endpoint to drive");
    }
    for (size_t i = 0; i < n_eps; i++) {
        size_t l = strlen(where);
        snprintf(where + l, sizeof where - l, "%s%s", i ? "," : "", eps[i]);
    }

    x.reqs = calloc(clients, sizeof *x.reqs);
    x.lens = calloc(clients, sizeof *x.lens);
    x.streams = calloc(clients, sizeof *x.streams);
    x.from = calloc(clients, sizeof *x.from);
    x.readbuf = x.read ? malloc(clients * BENCH__READ_REQ_MAX) : NULL;
    payload = malloc(size + 1);
    if (x.reqs == NULL || x.lens == NULL || x.streams == NULL ||
        x.from == NULL || payload == NULL || (x.read && x.readbuf == NULL)) {
        rv = ctlFail("bench: out of memory");
        goto out;
    }
    memset(payload, 'x', size);
    payload[size] = '\0';
    if (x.new_streams) {
        json_t *evs = json_array();
        json_t *o;
        for (unsigned long long j = 0; j < x.batch; j++) {
            json_array_append_new(
                evs, json_pack("{ssss}", "type", "bench", "data", payload));
        }
        o = json_pack("{so}", "events", evs);
        x.body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        x.body_len = x.body != NULL ? strlen(x.body) : 0;
        x.reqbuf_size = BENCH__HEAD_MAX + x.body_len;
        x.reqbuf = x.body != NULL ? malloc(clients * x.reqbuf_size) : NULL;
        if (x.reqbuf == NULL) {
            rv = ctlFail("bench: out of memory");
            goto out;
        }
    }
    for (unsigned long long i = 0; i < clients; i++) {
        char name[96];
        char enc[300];
        snprintf(name, sizeof name, "%s-%llu", prefix,
                 x.target == TARGET_ETCD ? i : i % n_streams);
        ctlUrlEncode(name, enc, sizeof enc);
        x.streams[i] = strdup(enc);
        x.from[i] = 1;
        if (x.streams[i] == NULL) {
            rv = ctlFail("bench: out of memory");
            goto out;
        }
        if (x.read || x.new_streams) {
            continue;
        }
        if (x.target == TARGET_ETCD) {
            char *k = base64(name, strlen(name));
            char *v = base64(payload, size);
            json_t *o =
                k && v ? json_pack("{ssss}", "key", k, "value", v) : NULL;
            char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
            x.reqs[i] =
                body ? buildPost("/v3/kv/put", body, "", &x.lens[i]) : NULL;
            free(body);
            json_decref(o);
            free(k);
            free(v);
        } else if (msgpack_body) {
            char path[400];
            snprintf(path, sizeof path, "/v1/streams/%s/events", enc);
            x.reqs[i] = buildMsgpackAppend(path, payload, size, x.batch, auth,
                                           &x.lens[i]);
        } else {
            json_t *evs = json_array();
            json_t *o;
            char *body;
            char path[400];
            for (unsigned long long j = 0; j < x.batch; j++) {
                json_array_append_new(
                    evs, json_pack("{ssss}", "type", "bench", "data", payload));
            }
            o = json_pack("{so}", "events", evs);
            body = o ? json_dumps(o, JSON_COMPACT) : NULL;
            snprintf(path, sizeof path, "/v1/streams/%s/events", enc);
            x.reqs[i] = body ? buildPost(path, body, auth, &x.lens[i]) : NULL;
            free(body);
            json_decref(o);
        }
        if (x.reqs[i] == NULL) {
            rv = ctlFail("bench: out of memory");
            goto out;
        }
    }

    w.request = requestCb;
    w.response = responseCb;
    w.arg = &x;
    w.max_events = max_events;
    if (ctl->tls_ca != NULL || ctl->tls_cert != NULL ||
        strncmp(eps[0], "https://", 8) == 0) {
        struct http_tls_config tc = {ctl->tls_cert, ctl->tls_key, ctl->tls_ca};
        char err[512];
        if (ctlCheckTls(ctl) != 0) {
            rv = CTL_EXIT_USAGE;
            goto out;
        }
        if (http_tls_create(&tc, &tls, err, sizeof err) != 0) {
            rv = ctlFail("bench: %s", err);
            goto out;
        }
    }
    if (bench_run((const char *const *)eps, n_eps, clients, (unsigned)duration,
                  tls, &w, &res) != 0) {
        rv = ctlFail("bench: %s", res.last_error);
        goto out;
    }
    printResult(ctl, &x, &res, clients, size, where);
    rv = CTL_EXIT_OK;
    if (res.requests == 0) {
        rv = ctlFail("bench: no request succeeded (%s); is the cluster "
                     "running and writable?",
                     res.last_error[0] != '\0' ? res.last_error : "no answer");
    }

out:
    for (unsigned long long i = 0; i < clients; i++) {
        free(x.reqs != NULL ? x.reqs[i] : NULL);
        free(x.streams != NULL ? x.streams[i] : NULL);
    }
    for (size_t i = 0; i < n_eps; i++) {
        free(eps[i]);
    }
    free(x.reqs);
    free(x.lens);
    free(x.streams);
    free(x.from);
    free(x.readbuf);
    free(x.reqbuf);
    free(x.body);
    free(payload);
    free(res.lat_us);
    http_tls_free(tls);
    return rv;
}
