/* Event and checkpoint endpoints (docs/api.md).
 *
 * Append validation happens here, before anything is proposed: the body is
 * one event object or {"events":[...], "expected_version":N}; each event
 * needs a non-empty string "type" (at most 255 bytes), may have "data" (any
 * JSON, stored as compact JSON text; null when absent) and an "id" (a
 * non-empty string of at most 255 bytes). Ids repeated within one batch are
 * refused. The decisions that depend on stored state (duplicates, expected
 * version) are made by the state machine in apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "metrics.h"

#define MAX_BATCH_EVENTS 10000
#define DEFAULT_READ_LIMIT 100
#define MAX_READ_LIMIT 10000
#define MAX_WAIT_MS 60000
#define MAX_FIELD 255

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
static bool hasId(json_t *e)
{
    json_t *id = json_object_get(e, "id");
    return json_is_string(id) && json_string_length(id) > 0;
}

bool api_append_retry_safe(struct api_req *a)
{
    size_t len = 0;
    const char *body = http_request_body(a->http, &len);
    const char *ctype = http_request_header(a->http, "Content-Type");
    char err[64];
    json_t *v;
    json_t *events;
    bool safe = false;

    if (len == 0) {
        return false;
    }
    v = codec_decode(codec_format_from_header(ctype), body, len, err,
                     sizeof err);
    events = json_object_get(v, "events");
    if (json_is_array(events) && json_array_size(events) > 0) {
        size_t i;
        json_t *e;
        safe = true;
        json_array_foreach(events, i, e)
        {
            safe = safe && hasId(e);
        }
    } else if (events == NULL && json_is_object(v)) {
        safe = hasId(v);
    }
    json_decref(v);
    return safe;
}

/* Validate one event object into `in`; the data text is malloc'ed into
 * *text. Replies 400 and returns -1 on a bad event. */
static int parseEvent(struct api_req *a, json_t *e, size_t i,
                      struct ledger_event_in *in, char **text)
{
    json_t *type = json_object_get(e, "type");
    json_t *id = json_object_get(e, "id");
    json_t *data = json_object_get(e, "data");

    if (!json_is_object(e)) {
        api_reply_error(a, API_E_BAD_EVENT, "events[%zu] is not an object", i);
        return -1;
    }
    if (!json_is_string(type) || json_string_length(type) == 0 ||
        json_string_length(type) > MAX_FIELD ||
        strlen(json_string_value(type)) != json_string_length(type)) {
        api_reply_error(a, API_E_BAD_EVENT,
                        "events[%zu].type must be a non-empty string of at "
                        "most %d bytes",
                        i, MAX_FIELD);
        return -1;
    }
    if (id != NULL && !json_is_null(id) &&
        (!json_is_string(id) || json_string_length(id) == 0 ||
         json_string_length(id) > MAX_FIELD ||
         strlen(json_string_value(id)) != json_string_length(id))) {
        api_reply_error(a, API_E_BAD_EVENT,
                        "events[%zu].id must be a non-empty string of at "
                        "most %d bytes",
                        i, MAX_FIELD);
        return -1;
    }
    *text = json_dumps(data != NULL ? data : json_null(),
                       JSON_COMPACT | JSON_ENCODE_ANY);
    if (*text == NULL) {
        api_reply_error(a, API_E_INTERNAL, "cannot encode events[%zu].data", i);
        return -1;
    }
    in->type = json_string_value(type);
    in->id = json_is_string(id) ? json_string_value(id) : NULL;
    in->data = *text;
    in->data_len = strlen(*text);
    return 0;
}

struct idRef {
    const char *id;
    size_t i;
};

static int compareIdRefs(const void *pa, const void *pb)
{
    const struct idRef *x = pa;
    const struct idRef *y = pb;
    int c = strcmp(x->id, y->id);
    if (c != 0) {
        return c;
    }
    return x->i < y->i ? -1 : (x->i > y->i ? 1 : 0);
}

/* The first event (lowest index) whose id repeats an earlier event's id:
 * *dup and that earlier *orig. Sorting makes it O(n log n): 10,000 ids
 * compared pairwise took 0.3 s of the loop. Returns 1 if found, 0 if not,
 * -1 when out of memory. */
static int findRepeatedId(const struct ledger_event_in *in, size_t n,
                          size_t *dup, size_t *orig)
{
    struct idRef *refs = malloc(n * sizeof *refs);
    size_t m = 0;
    int found = 0;

    if (refs == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].id != NULL) {
            refs[m].id = in[i].id;
            refs[m].i = i;
            m++;
        }
    }
    qsort(refs, m, sizeof *refs, compareIdRefs);
    for (size_t k = 1; k < m; k++) {
        /* Equal ids sort by index: the lowest repeat of a group is its
         * second entry, right after the group's first (the original);
         * a later entry of the group has a higher index and never wins. */
        if (strcmp(refs[k].id, refs[k - 1].id) == 0 &&
            (!found || refs[k].i < *dup)) {
            *dup = refs[k].i;
            *orig = refs[k - 1].i;
            found = 1;
        }
    }
    free(refs);
    return found;
}

void api_append(struct api_req *a)
{
    json_t *body = api_body(a);
    json_t *events;
    json_t *expected;
    struct ledger_event_in *in = NULL;
    char **texts = NULL;
    struct op_buf op;
    uint64_t exp = 0;
    size_t n;
    size_t i;
    size_t j = 0;
    int rv;

    if (body == NULL) {
        return;
    }
    if (!json_is_object(body)) {
        api_reply_error(a, API_E_BAD_BODY,
                        "body must be an object: {\"events\":[...]} or one "
                        "event");
        goto out;
    }
    events = json_object_get(body, "events");
    if (events == NULL && json_object_get(body, "type") != NULL) {
        events = json_pack("[O]", body); /* a single event object */
    } else if (!json_is_array(events)) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"events\" must be an array of event objects");
        goto out;
    } else {
        json_incref(events);
    }
    n = json_array_size(events);
    if (n == 0 || n > MAX_BATCH_EVENTS) {
        api_reply_error(a, API_E_BAD_BODY,
                        "\"events\" must hold 1 to %d events (got %zu)",
                        MAX_BATCH_EVENTS, n);
        goto out_events;
    }
    expected = json_object_get(body, "expected_version");
    if (expected != NULL && !json_is_null(expected)) {
        if (!json_is_integer(expected) || json_integer_value(expected) < 0) {
            api_reply_error(a, API_E_BAD_BODY,
                            "\"expected_version\" must be a non-negative "
                            "integer");
            goto out_events;
        }
        exp = (uint64_t)json_integer_value(expected);
    }
    in = calloc(n, sizeof *in);
    texts = calloc(n, sizeof *texts);
    if (in == NULL || texts == NULL) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        goto out_arrays;
    }
    for (i = 0; i < n; i++) {
        if (parseEvent(a, json_array_get(events, i), i, &in[i], &texts[i]) !=
            0) {
            goto out_arrays;
        }
    }
    rv = findRepeatedId(in, n, &i, &j);
    if (rv != 0) {
        if (rv < 0) {
            api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        } else {
            api_reply_error(a, API_E_BAD_EVENT,
                            "events[%zu].id '%s' repeats events[%zu].id", i,
                            in[i].id, j);
        }
        goto out_arrays;
    }
    if (op_encode_append(a->stream, expected != NULL && !json_is_null(expected),
                         exp, in, n, &op) != 0) {
        api_reply_error(a, API_E_OUT_OF_MEMORY, "out of memory");
        goto out_arrays;
    }
    a->n_events = n;
    /* Every event has an id: the store deduplicates a second delivery. */
    a->w.safety_known = true;
    a->w.retry_safe = true;
    for (i = 0; i < n; i++) {
        a->w.retry_safe = a->w.retry_safe && in[i].id != NULL;
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

out_arrays:
    for (i = 0; texts != NULL && i < n; i++) {
        free(texts[i]);
    }
    free(texts);
    free(in);
out_events:
    json_decref(events);
out:
    json_decref(body);
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
