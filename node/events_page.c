/* The internal events page: both forms, both directions (events_page.h).
 *
 * Decoding never trusts the peer: every field is type-checked, hashes must
 * be exactly 32 bytes (or 64 hex digits), the compact page must end on an
 * event boundary; the store then checks that each event extends the chain
 * (replication/catchup.c), so a decoded page is only ever "well-formed",
 * never "true". Before msgpack-c unpacks an event, mpscan_object() bounds
 * what it allocates (a header may claim 2^32 elements); stream, type and
 * id must not hold a NUL (their C strings would say less than the bytes).
 * msgpack-c gives an empty string a NULL pointer: copies check the length.
 */
#include "events_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication/mpscan.h"

/* ---- Encode ----------------------------------------------------------- */

void events_page_enc_init(struct events_page_enc *e)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
}

void events_page_enc_destroy(struct events_page_enc *e)
{
    msgpack_sbuffer_destroy(&e->sb);
}

static int packText(msgpack_packer *pk, const char *s, size_t len)
{
    return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

int events_page_enc_add(void *arg, const struct ledger_event *ev)
{
    msgpack_packer *pk = &((struct events_page_enc *)arg)->pk;
    int rv = msgpack_pack_array(pk, 9);
    rv |= msgpack_pack_uint64(pk, ev->position);
    rv |= packText(pk, ev->stream, strlen(ev->stream));
    rv |= msgpack_pack_uint64(pk, ev->seq);
    rv |= packText(pk, ev->type, strlen(ev->type));
    rv |= ev->id != NULL ? packText(pk, ev->id, strlen(ev->id))
                         : msgpack_pack_nil(pk);
    rv |= msgpack_pack_int64(pk, ev->ts_ms);
    rv |= packText(pk, ev->data, ev->data_len);
    rv |= msgpack_pack_bin(pk, LEDGER_HASH_LEN);
    rv |= msgpack_pack_bin_body(pk, ev->prev_hash, LEDGER_HASH_LEN);
    rv |= msgpack_pack_bin(pk, LEDGER_HASH_LEN);
    rv |= msgpack_pack_bin_body(pk, ev->hash, LEDGER_HASH_LEN);
    return rv != 0 ? -1 : 0;
}

static json_t *hexJson(const uint8_t h[LEDGER_HASH_LEN])
{
    char hex[LEDGER_HASH_HEX_LEN + 1];
    ledger_hash_hex(h, hex);
    return json_string(hex);
}

json_t *events_page_json_event(const struct ledger_event *ev)
{
    return json_pack("{s:I, s:s, s:I, s:s, s:o, s:I, s:s%, s:o, s:o}",
                     "position", (json_int_t)ev->position, "stream", ev->stream,
                     "seq", (json_int_t)ev->seq, "type", ev->type, "id",
                     ev->id ? json_string(ev->id) : json_null(), "ts",
                     (json_int_t)ev->ts_ms, "data_text", ev->data, ev->data_len,
                     "prev_hash", hexJson(ev->prev_hash), "hash",
                     hexJson(ev->hash));
}

/* ---- Decode ----------------------------------------------------------- */

void events_page_free(struct events_page *p)
{
    free(p->events);
    free(p->arena);
    json_decref(p->json);
    memset(p, 0, sizeof *p);
}

static bool isUint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

/* A string that is the same as a C string (no NUL inside). */
static bool isText(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR &&
           (o->via.str.size == 0 ||
            memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL);
}

/* Check one compact event; *need grows by the arena bytes it takes. */
static int checkPacked(const msgpack_object *o, size_t *need)
{
    const msgpack_object *f;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 9) {
        return -1;
    }
    f = o->via.array.ptr;
    if (!isUint(&f[0]) || !isText(&f[1]) || !isUint(&f[2]) || !isText(&f[3]) ||
        (!isText(&f[4]) && f[4].type != MSGPACK_OBJECT_NIL) ||
        (!isUint(&f[5]) && f[5].type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
        f[6].type != MSGPACK_OBJECT_STR || f[7].type != MSGPACK_OBJECT_BIN ||
        f[7].via.bin.size != LEDGER_HASH_LEN ||
        f[8].type != MSGPACK_OBJECT_BIN ||
        f[8].via.bin.size != LEDGER_HASH_LEN) {
        return -1;
    }
    *need += f[1].via.str.size + f[3].via.str.size + 3 +
             (f[4].type == MSGPACK_OBJECT_STR ? f[4].via.str.size : 0);
    return 0;
}

static char *copyStr(char **p, const char *s, size_t len)
{
    char *out = *p;
    if (len > 0) {
        memcpy(out, s, len); /* s is NULL for "" */
    }
    out[len] = '\0';
    *p += len + 1;
    return out;
}

/* Two passes over the compact page: check and size, then fill. data_text
 * points into `body` (the caller keeps it alive while using the page). */
static int decodePacked(const char *body, size_t len, struct events_page *out,
                        char *err, size_t errlen)
{
    msgpack_unpacked u;
    size_t off = 0;
    size_t n = 0;
    size_t need = 0;
    size_t i = 0;
    size_t used;
    char why[160];
    char *p;
    int rc = 0;

    msgpack_unpacked_init(&u);
    while (off < len) {
        if (mpscan_object(body + off, len - off, &used, why, sizeof why) != 0) {
            snprintf(err, errlen, "malformed event %zu in the page: %s", n,
                     why);
            goto err_after_init;
        }
        rc = msgpack_unpack_next(&u, body, len, &off);
        if (rc != MSGPACK_UNPACK_SUCCESS) {
            break;
        }
        if (checkPacked(&u.data, &need) != 0) {
            snprintf(err, errlen, "malformed event %zu in the page", n);
            goto err_after_init;
        }
        n++;
    }
    if (off != len) {
        snprintf(err, errlen, "malformed page (%zu of %zu bytes read)", off,
                 len);
        goto err_after_init;
    }
    out->events = calloc(n > 0 ? n : 1, sizeof *out->events);
    out->arena = malloc(need > 0 ? need : 1);
    if (out->events == NULL || out->arena == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err_after_alloc;
    }
    p = out->arena;
    off = 0;
    while (i < n &&
           msgpack_unpack_next(&u, body, len, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *f = u.data.via.array.ptr;
        struct ledger_event *ev = &out->events[i++];
        ev->position = f[0].via.u64;
        ev->stream = copyStr(&p, f[1].via.str.ptr, f[1].via.str.size);
        ev->seq = f[2].via.u64;
        ev->type = copyStr(&p, f[3].via.str.ptr, f[3].via.str.size);
        ev->id = f[4].type == MSGPACK_OBJECT_STR
                     ? copyStr(&p, f[4].via.str.ptr, f[4].via.str.size)
                     : NULL;
        ev->ts_ms = isUint(&f[5]) ? (int64_t)f[5].via.u64 : f[5].via.i64;
        ev->data = f[6].via.str.size > 0 ? f[6].via.str.ptr : ""; /* body */
        ev->data_len = f[6].via.str.size;
        memcpy(ev->prev_hash, f[7].via.bin.ptr, LEDGER_HASH_LEN);
        memcpy(ev->hash, f[8].via.bin.ptr, LEDGER_HASH_LEN);
    }
    out->n = n;
    msgpack_unpacked_destroy(&u);
    return 0;

err_after_alloc:
    free(out->events);
    free(out->arena);
    out->events = NULL;
    out->arena = NULL;
err_after_init:
    msgpack_unpacked_destroy(&u);
    (void)rc;
    return -1;
}

static int decodeJson(const char *body, size_t len, struct events_page *out,
                      char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *events;
    size_t i;

    out->json = json_loadb(body, len, 0, &jerr);
    events = json_object_get(out->json, "events");
    if (!json_is_array(events)) {
        snprintf(err, errlen, "page without an events array");
        goto err_after_load;
    }
    out->n = json_array_size(events);
    out->events = calloc(out->n > 0 ? out->n : 1, sizeof *out->events);
    if (out->events == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err_after_load;
    }
    for (i = 0; i < out->n; i++) {
        json_t *e = json_array_get(events, i);
        struct ledger_event *ev = &out->events[i];
        json_t *id = json_object_get(e, "id");
        json_t *data = json_object_get(e, "data_text");
        const char *ph = json_string_value(json_object_get(e, "prev_hash"));
        const char *h = json_string_value(json_object_get(e, "hash"));
        json_t *pos = json_object_get(e, "position");
        json_t *seq = json_object_get(e, "seq");
        json_t *ts = json_object_get(e, "ts");

        ev->stream = json_string_value(json_object_get(e, "stream"));
        ev->type = json_string_value(json_object_get(e, "type"));
        ev->id = json_is_string(id) ? json_string_value(id) : NULL;
        ev->data = json_string_value(data);
        ev->data_len = json_string_length(data);
        if (!json_is_integer(pos) || json_integer_value(pos) < 1 ||
            !json_is_integer(seq) || json_integer_value(seq) < 1 ||
            !json_is_integer(ts) || ev->stream == NULL || ev->type == NULL ||
            ev->data == NULL || (!json_is_null(id) && !json_is_string(id)) ||
            ph == NULL || h == NULL ||
            ledger_hash_parse(ph, ev->prev_hash) != 0 ||
            ledger_hash_parse(h, ev->hash) != 0) {
            snprintf(err, errlen, "malformed event %zu in the page", i);
            goto err_after_events;
        }
        ev->position = (uint64_t)json_integer_value(pos);
        ev->seq = (uint64_t)json_integer_value(seq);
        ev->ts_ms = json_integer_value(ts);
    }
    return 0;

err_after_events:
    free(out->events);
    out->events = NULL;
err_after_load:
    json_decref(out->json);
    out->json = NULL;
    out->n = 0;
    return -1;
}

int events_page_decode(const char *content_type, const char *body, size_t len,
                       struct events_page *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (content_type != NULL && strncmp(content_type, EVENTS_PAGE_COMPACT,
                                        strlen(EVENTS_PAGE_COMPACT)) == 0) {
        return decodePacked(body, len, out, err, errlen);
    }
    return decodeJson(body, len, out, err, errlen);
}
