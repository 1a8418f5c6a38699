/* Event and checkpoint endpoints (docs/api.md).
 *
 * Append bodies are checked, before anything is proposed, by
 * append_body.c (its header has the rules). The decisions that depend on
 * stored state (duplicates, expected version) are made by the state
 * machine in apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "append_body.h"
#include "log.h"
#include "metrics.h"

#define DEFAULT_READ_LIMIT 100
#define MAX_READ_LIMIT 10000
#define MAX_WAIT_MS 60000

static json_t *hashJson(const uint8_t h[LEDGER_HASH_LEN])
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    ledger_hash_hex(h, hex);
    return json_string(hex);
}

/* ---- Append ----------------------------------------------------------- */

static json_t *appendResultJson(struct api_req *a,
                                const struct ledger_append_result *r)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:o}", "stream", a->stream,
                     "first_seq", (json_int_t)r->first_seq, "last_seq",
                     (json_int_t)r->last_seq, "position",
                     (json_int_t)r->position, "hash", hashJson(r->hash));
}

static void appendCb(void *arg, int status, const struct ledger_op_result *res)
{
    struct api_req *a = arg;

    if (status == LEDGER_REPL_ENOTLEADER || status == LEDGER_REPL_EUNKNOWN) {
        /* Leadership moved. With an id on every event, a retry through
         * the new leader is safe: it finds what did commit (the original
         * result) or appends it now (write.c decides). */
        api_write_lost(a, status == LEDGER_REPL_EUNKNOWN);
        return;
    }
    if (status != 0) {
        api_reply_error(a, API_E_UNAVAILABLE, "append not confirmed: %s",
                        ledger_repl_strerror(status));
        return;
    }
    if (res->error != 0) {
        api_reply_error(a, API_E_REJECTED, "the store refused the append");
        return;
    }
    switch (res->append.outcome) {
    case LEDGER_APPEND_OK:
        api_reply_json(a, 201, appendResultJson(a, &res->append), NULL);
        return;
    case LEDGER_APPEND_DUPLICATE:
        /* Exactly the original result (a retry cannot tell it from the
         * first answer); the header says it was a duplicate. */
        a->n_events = 0;
        api_reply_json(a, 201, appendResultJson(a, &res->append),
                       "X-Ledger-Duplicate: true\r\n");
        return;
    case LEDGER_APPEND_CONFLICT:
        api_reply_error_obj(
            a, API_E_VERSION_CONFLICT,
            json_pack("{s:I, s:s}", "last_seq",
                      (json_int_t)res->append.last_seq, "stream", a->stream),
            "expected_version does not match: stream %s is at last_seq "
            "%llu",
            a->stream, (unsigned long long)res->append.last_seq);
        return;
    default:
        api_reply_error(a, API_E_DUPLICATE_ID_CONFLICT,
                        "some event ids of this batch are already in "
                        "stream %s and some are not: nothing appended",
                        a->stream);
        return;
    }
}

/* Whether a second delivery of this append is harmless: every event has
 * an id, so the store returns the original result instead of appending
 * again. Decided from the body alone, on whichever node holds the request;
 * a body that does not decode is not safe (the leader will refuse it). */
bool api_append_retry_safe(struct api_req *a)
{
    size_t len = 0;
    const char *body = http_request_body(a->http, &len);
    const char *ctype = http_request_header(a->http, "Content-Type");
    char err[64];
    json_t *v;
    bool safe;

    if (len == 0) {
        return false;
    }
    v = codec_decode(codec_format_from_header(ctype), body, len, err,
                     sizeof err);
    safe = append_body_retry_safe(v) != 0;
    json_decref(v);
    return safe;
}

/* Checked and encoded by append_body.c; proposed here. */
void api_append(struct api_req *a)
{
    json_t *body = api_body(a);
    struct op_buf op;
    enum api_error e;
    char msg[400];
    int rv;

    if (body == NULL) {
        return;
    }
    rv = append_body_encode(body, a->stream, &op, &a->n_events, &e, msg,
                            sizeof msg);
    /* Every event has an id: the store deduplicates a second delivery. */
    a->w.safety_known = true;
    a->w.retry_safe = rv == 0 && append_body_retry_safe(body) != 0;
    json_decref(body);
    if (rv != 0) {
        api_reply_error(a, e, "%s", msg);
        return;
    }
    rv = ledger_repl_submit(a->n->repl, &op, appendCb, a);
    if (rv == LEDGER_REPL_EFULL) {
        metrics_rejected("queue_full");
        api_reply_error(a, API_E_QUEUE_FULL,
                        "the write queue is full: retry after a moment");
    } else if (rv == LEDGER_REPL_ENOTLEADER) {
        api_write_lost(a, false);
    } else if (rv != 0) {
        api_reply_error(a, API_E_UNAVAILABLE, "append refused: %s",
                        ledger_repl_strerror(rv));
    }
}

/* ---- Reads ------------------------------------------------------------ */

static json_t *eventJson(const struct ledger_event *ev, bool with_stream)
{
    json_t *data = json_loadb(ev->data, ev->data_len,
                              JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *o =
        json_pack("{s:I, s:I, s:s, s:o, s:o, s:I, s:o, s:o}", "seq",
                  (json_int_t)ev->seq, "position", (json_int_t)ev->position,
                  "type", ev->type, "data", data != NULL ? data : json_null(),
                  "id", ev->id != NULL ? json_string(ev->id) : json_null(),
                  "ts", (json_int_t)ev->ts_ms, "prev_hash",
                  hashJson(ev->prev_hash), "hash", hashJson(ev->hash));
    if (o != NULL && with_stream) {
        json_object_set_new(o, "stream", json_string(ev->stream));
    }
    return o;
}

int api_page_add(struct api_page *p, const struct ledger_event *ev)
{
    p->cost += API_PAGE_EVENT_COST + ev->data_len + strlen(ev->type) +
               (ev->id != NULL ? strlen(ev->id) : 0);
    return p->cost >= API_PAGE_BUDGET ? API_PAGE_FULL : 0;
}

struct eventPage {
    json_t *arr;
    struct api_page budget;
};

static int collectEvent(void *arg, const struct ledger_event *ev)
{
    struct eventPage *p = arg;
    json_array_append_new(p->arr, eventJson(ev, false));
    return api_page_add(&p->budget, ev);
}

static bool streamHasFrom(struct api_req *a)
{
    uint64_t last = 0;
    uint8_t h[LEDGER_HASH_LEN];
    if (ledger_store_stream_head(a->n->store, a->stream, &last, h) != 0) {
        return false;
    }
    return last >= a->from;
}

static void readNow(struct api_req *a)
{
    struct eventPage p = {json_array(), {0}};
    uint64_t last = 0;
    uint64_t from = a->from == 0 ? 1 : a->from;
    int rv = ledger_store_read_stream(a->n->store, a->stream, from, a->limit,
                                      &last, collectEvent, &p);

    if (rv != 0 && rv != API_PAGE_FULL) {
        json_decref(p.arr);
        api_reply_store_error(a);
        return;
    }
    api_reply_json(a, 200,
                   json_pack("{s:s, s:o, s:I}", "stream", a->stream, "events",
                             p.arr, "last_seq", (json_int_t)last),
                   NULL);
}

static void readAfterConsistency(struct api_req *a)
{
    if (a->wait_ms > 0) {
        api_wait(a, a->wait_ms, streamHasFrom, readNow);
    } else {
        readNow(a);
    }
}

void api_read_events(struct api_req *a)
{
    if (api_query_u64(a, "from", 1, UINT64_MAX, &a->from) != 0 ||
        api_query_u64(a, "limit", DEFAULT_READ_LIMIT, MAX_READ_LIMIT,
                      &a->limit) != 0 ||
        api_query_u64(a, "wait_ms", 0, MAX_WAIT_MS, &a->wait_ms) != 0) {
        return;
    }
    if (a->limit == 0) {
        a->limit = DEFAULT_READ_LIMIT;
    }
    if (a->from == 0) {
        a->from = 1;
    }
    api_read(a, readAfterConsistency);
}

static void headNow(struct api_req *a)
{
    uint64_t last = 0;
    uint8_t h[LEDGER_HASH_LEN];
    int rv = ledger_store_stream_head(a->n->store, a->stream, &last, h);
    if (rv == LEDGER_STORE_ENOTFOUND) {
        api_reply_error(a, API_E_STREAM_NOT_FOUND, "stream %s has no events",
                        a->stream);
        return;
    }
    if (rv != 0) {
        api_reply_store_error(a);
        return;
    }
    api_reply_json(a, 200,
                   json_pack("{s:s, s:I, s:o}", "stream", a->stream, "last_seq",
                             (json_int_t)last, "head_hash", hashJson(h)),
                   NULL);
}

void api_stream_head(struct api_req *a)
{
    api_read(a, headNow);
}

/* Stream listing, one page at a time: ?after=NAME&limit=N (default and
 * maximum LIST_STREAMS_MAX). A page reads limit + 1 rows by the primary key
 * (the extra row only says whether more remain), so its cost on the loop
 * does not grow with the number of streams: at 1000 rows about 2 ms, where
 * the whole list of 262,000 streams held the loop 0.6 s (issue 11). */
#define LIST_STREAMS_MAX 1000

struct streamPage {
    json_t *arr;
    uint64_t limit;
    uint64_t seen;
};

static int collectStream(void *arg, const char *name, uint64_t last_seq,
                         const uint8_t head[LEDGER_HASH_LEN])
{
    struct streamPage *p = arg;
    if (++p->seen > p->limit) {
        return 0; /* the look-ahead row: more remain */
    }
    json_array_append_new(p->arr, json_pack("{s:s, s:I, s:o}", "stream", name,
                                            "last_seq", (json_int_t)last_seq,
                                            "head_hash", hashJson(head)));
    return 0;
}

static void listNow(struct api_req *a)
{
    struct streamPage p = {json_array(), a->limit, 0};
    json_t *body;
    json_t *last;

    if (ledger_store_list_streams_page(a->n->store, a->name, a->limit + 1,
                                       collectStream, &p) != 0) {
        json_decref(p.arr);
        api_reply_store_error(a);
        return;
    }
    body = json_pack("{s:o}", "streams", p.arr);
    last = json_array_get(p.arr, json_array_size(p.arr) - 1);
    if (p.seen > p.limit && last != NULL) {
        json_object_set(body, "next", json_object_get(last, "stream"));
    }
    api_reply_json(a, 200, body, NULL);
}

void api_list_streams(struct api_req *a)
{
    const char *after = http_request_query_param(a->http, "after");

    if (api_query_u64(a, "limit", LIST_STREAMS_MAX, LIST_STREAMS_MAX,
                      &a->limit) != 0) {
        return;
    }
    if (a->limit == 0) {
        a->limit = LIST_STREAMS_MAX;
    }
    if (after != NULL && strlen(after) > LEDGER_STREAM_MAX) {
        api_reply_error(a, API_E_BAD_QUERY,
                        "query parameter after must be a stream name (at most "
                        "%d bytes)",
                        LEDGER_STREAM_MAX);
        return;
    }
    /* a->name: the cursor (the checkpoint name is not used here). */
    snprintf(a->name, sizeof a->name, "%s", after != NULL ? after : "");
    api_read(a, listNow);
}

/* ---- Checkpoints ------------------------------------------------------ */

static void checkpointCb(void *arg, int status,
                         const struct ledger_op_result *res)
{
    struct api_req *a = arg;
    json_t *kept = http_request_get_data(a->http); /* {"value": V} */

    http_request_set_data(a->http, NULL);
    if (status == LEDGER_REPL_ENOTLEADER || status == LEDGER_REPL_EUNKNOWN) {
        /* A checkpoint PUT is safe to send again (write.c). */
        api_write_lost(a, status == LEDGER_REPL_EUNKNOWN);
    } else if (status != 0 || res->error != 0) {
        api_reply_error(a, API_E_UNAVAILABLE, "checkpoint not confirmed: %s",
                        status ? ledger_repl_strerror(status)
                               : "store refused");
    } else {
        api_reply_json(a, 200,
                       json_pack("{s:s, s:s, s:O}", "stream", a->stream, "name",
                                 a->name, "value",
                                 json_object_get(kept, "value")),
                       NULL);
    }
    json_decref(kept);
}

/* The checkpoint value: body.value when the body is an object with a
 * "value" member, else the whole body. */
void api_put_checkpoint(struct api_req *a)
{
    json_t *body = api_body(a);
    json_t *value;
    struct op_buf op;
    char *text;
    int rv;

    if (body == NULL) {
        return;
    }
    value = json_is_object(body) && json_object_get(body, "value") != NULL
                ? json_object_get(body, "value")
                : body;
    text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL || op_encode_checkpoint(a->stream, a->name, text,
                                             strlen(text), &op) != 0) {
        free(text);
        json_decref(body);
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    free(text);
    /* Keep {"value": V} for the reply. */
    http_request_set_data(a->http, json_pack("{s:O}", "value", value));
    json_decref(body);
    rv = ledger_repl_submit(a->n->repl, &op, checkpointCb, a);
    if (rv != 0) {
        json_decref(http_request_get_data(a->http));
        http_request_set_data(a->http, NULL);
        if (rv == LEDGER_REPL_ENOTLEADER) {
            api_write_lost(a, false);
        } else {
            api_reply_error(a,
                            rv == LEDGER_REPL_EFULL ? API_E_QUEUE_FULL
                                                    : API_E_UNAVAILABLE,
                            "checkpoint refused: %s", ledger_repl_strerror(rv));
        }
    }
}

static void checkpointNow(struct api_req *a)
{
    char *value = NULL;
    size_t len = 0;
    json_t *v;
    int rv = ledger_store_get_checkpoint(a->n->store, a->stream, a->name,
                                         &value, &len);
    if (rv == LEDGER_STORE_ENOTFOUND) {
        api_reply_error(a, API_E_CHECKPOINT_NOT_FOUND,
                        "stream %s has no checkpoint named %s", a->stream,
                        a->name);
        return;
    }
    if (rv != 0) {
        api_reply_store_error(a);
        return;
    }
    v = json_loadb(value, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(value);
    api_reply_json(a, 200,
                   json_pack("{s:s, s:s, s:o}", "stream", a->stream, "name",
                             a->name, "value", v ? v : json_null()),
                   NULL);
}

void api_get_checkpoint(struct api_req *a)
{
    api_read(a, checkpointNow);
}
