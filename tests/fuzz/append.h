/* The body of an append, from wire bytes to the Raft entry the leader
 * proposes and back (fuzz_append_json.c, fuzz_append_msgpack.c):
 *
 *   bytes -codec_decode-> tree -append_body_encode-> op -entry_build->
 *   entry -entry_decode-> ops
 *
 * Properties: a refusal says why; a decoded tree encodes and decodes to an
 * equal tree (both formats); an accepted body's entry decodes to one
 * append of the same events (type, id, data text) in order. */
#ifndef LEDGER_FUZZ_APPEND_H
#define LEDGER_FUZZ_APPEND_H

#include <jansson.h>
#include <raft.h>
#include <string.h>

#include "append_body.h"
#include "codec.h"
#include "fuzz.h"
#include "replication/entry.h"

/* Arrays and objects nested in v, counting v. */
static int fuzzDepth(json_t *v)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *x;

    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            int xd = fuzzDepth(x);
            d = xd > d ? xd : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            int xd = fuzzDepth(x);
            d = xd > d ? xd : d;
        }
        return d + 1;
    }
    return 0;
}

/* msgpack-c parses at most 32 nested containers (MSGPACK_EMBED_STACK_SIZE;
 * docs/api.md says so); jansson 2048: a deeper JSON tree encodes to
 * MessagePack that our decoder refuses, with a message (found by the long
 * run of fuzz_append_json). */
#define FUZZ_MSGPACK_DEPTH 32

static void fuzzRoundTrip(enum codec_format f, json_t *v)
{
    char err[256];
    size_t len = 0;
    char *enc = codec_encode(f, v, &len);
    json_t *again;

    CHECK(enc != NULL);
    err[0] = '\0';
    again = codec_decode(f, enc, len, err, sizeof err);
    if (f == CODEC_MSGPACK && fuzzDepth(v) > FUZZ_MSGPACK_DEPTH) {
        CHECK(again == NULL && err[0] != '\0');
        free(enc);
        return;
    }
    CHECK(again != NULL);
    CHECK(json_equal(v, again));
    json_decref(again);
    free(enc);
}

static void fuzzCheckEntry(json_t *body, const struct op_buf *op, size_t n)
{
    json_t *events = json_object_get(body, "events");
    size_t len = 0;
    void *entry = entry_build(-5, op, 1, &len);
    entry_decoder *d = NULL;
    struct op *ops = NULL;
    size_t n_ops = 0;
    int64_t ts = 0;
    char err[256];

    CHECK(entry != NULL);
    CHECK(entry_decode(entry, len, &ts, &ops, &n_ops, &d, err, sizeof err) ==
          0);
    CHECK(ts == -5 && n_ops == 1 && ops[0].type == OP_APPEND);
    CHECK(strcmp(ops[0].stream, "fuzz") == 0 && ops[0].n_events == n);
    for (size_t i = 0; i < n; i++) {
        json_t *e = events != NULL ? json_array_get(events, i) : body;
        json_t *id = json_object_get(e, "id");
        json_t *data = json_object_get(e, "data");
        char *text = json_dumps(data != NULL ? data : json_null(),
                                JSON_COMPACT | JSON_ENCODE_ANY);
        const struct ledger_event_in *got = &ops[0].events[i];

        CHECK(text != NULL);
        CHECK(strcmp(got->type,
                     json_string_value(json_object_get(e, "type"))) == 0);
        CHECK(json_is_string(id)
                  ? got->id != NULL &&
                        strcmp(got->id, json_string_value(id)) == 0
                  : got->id == NULL);
        CHECK(got->data_len == strlen(text) &&
              memcmp(got->data, text, got->data_len) == 0);
        free(text);
    }
    entry_decoder_free(d);
    raft_free(entry);
}

static int fuzzAppend(enum codec_format f, const uint8_t *data, size_t size)
{
    char err[256];
    char msg[400];
    struct op_buf op;
    enum api_error e;
    size_t n = 0;
    json_t *v;

    err[0] = '\0';
    v = codec_decode(f, (const char *)data, size, err, sizeof err);
    if (v == NULL) {
        CHECK(err[0] != '\0');
        return 0;
    }
    fuzzRoundTrip(f, v);
    fuzzRoundTrip(f == CODEC_JSON ? CODEC_MSGPACK : CODEC_JSON, v);
    (void)append_body_retry_safe(v);
    msg[0] = '\0';
    if (append_body_encode(v, "fuzz", &op, &n, &e, msg, sizeof msg) != 0) {
        CHECK(msg[0] != '\0');
        CHECK(api_error_status(e) == 400 || e == API_E_OUT_OF_MEMORY);
    } else {
        CHECK(n >= 1 && n <= APPEND_MAX_EVENTS);
        fuzzCheckEntry(v, &op, n);
        op_buf_free(&op);
    }
    json_decref(v);
    return 0;
}

#endif /* LEDGER_FUZZ_APPEND_H */
