/* Request/response body codec: JSON text and MessagePack <-> jansson trees.
 *
 * Mapping (both directions):
 *   nil <-> null, bool <-> true/false, int (positive <= INT64_MAX or
 *   negative) <-> integer, float32/float64 -> real (finite only),
 *   real -> float64, str (valid UTF-8) <-> string, array <-> array,
 *   map with str keys <-> object (key order kept, duplicate keys refused).
 * Refused on decode: bin, ext, non-string or NUL-containing map keys,
 * unsigned integers above INT64_MAX, non-finite floats, trailing bytes after
 * the top-level value. JSON is parsed by jansson (any top-level value,
 * duplicate keys refused, \u0000 allowed in strings); errors carry
 * line/column.
 * Nesting depth is bounded by the libraries (jansson: 2048, msgpack-c's
 * unpacker stack), which also bounds the recursion below.
 */
#include "codec.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>

#include "replication/mpscan.h"

enum codec_format codec_format_from_header(const char *value)
{
    const char *p = value;

    if (value == NULL) {
        return CODEC_JSON;
    }
    /* Walk the comma-separated media ranges; the first one naming JSON or
     * MessagePack decides. Parameters (";charset=...", ";q=...") are
     * ignored. */
    while (*p != '\0') {
        const char *start;
        const char *end;
        size_t len;

        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        start = p;
        while (*p != '\0' && *p != ',' && *p != ';') {
            p++;
        }
        end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        len = (size_t)(end - start);
        if ((len == 19 && strncasecmp(start, "application/msgpack", 19) == 0) ||
            (len == 21 &&
             strncasecmp(start, "application/x-msgpack", 21) == 0)) {
            return CODEC_MSGPACK;
        }
        if (len == 16 && strncasecmp(start, "application/json", 16) == 0) {
            return CODEC_JSON;
        }
        while (*p != '\0' && *p != ',') {
            p++; /* Skip parameters. */
        }
    }
    return CODEC_JSON;
}

const char *codec_content_type(enum codec_format f)
{
    return f == CODEC_MSGPACK ? "application/msgpack" : "application/json";
}

/* -------------------------------------------------------------------------
 * MessagePack -> json_t
 * ---------------------------------------------------------------------- */

static json_t *fromMsgpack(const msgpack_object *o, char *err, size_t errlen)
{
    json_t *v;
    uint32_t i;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            snprintf(err, errlen,
                     "MessagePack integer %" PRIu64
                     " is out of range (max %" PRId64 ")",
                     o->via.u64, (int64_t)INT64_MAX);
            return NULL;
        }
        v = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) {
            snprintf(err, errlen,
                     "MessagePack float is not finite (no JSON equivalent)");
            return NULL;
        }
        v = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        /* msgpack-c gives "" a NULL pointer; jansson refuses that. */
        v = json_stringn(o->via.str.size > 0 ? o->via.str.ptr : "",
                         o->via.str.size);
        if (v == NULL) {
            snprintf(err, errlen, "MessagePack string is not valid UTF-8");
            return NULL;
        }
        return v;
    case MSGPACK_OBJECT_ARRAY:
        v = json_array();
        if (v == NULL) {
            break;
        }
        for (i = 0; i < o->via.array.size; i++) {
            json_t *item = fromMsgpack(&o->via.array.ptr[i], err, errlen);
            if (item == NULL || json_array_append_new(v, item) != 0) {
                json_decref(v);
                return NULL;
            }
        }
        return v;
    case MSGPACK_OBJECT_MAP:
        v = json_object();
        if (v == NULL) {
            break;
        }
        for (i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            const msgpack_object_str *k = &kv->key.via.str;
            const char *kp;
            json_t *item;

            if (kv->key.type != MSGPACK_OBJECT_STR) {
                snprintf(err, errlen, "MessagePack map key is not a string");
                json_decref(v);
                return NULL;
            }
            kp = k->size > 0 ? k->ptr : ""; /* "" may come as NULL */
            if (memchr(kp, '\0', k->size) != NULL) {
                snprintf(err, errlen, "MessagePack map key contains NUL");
                json_decref(v);
                return NULL;
            }
            if (json_object_getn(v, kp, k->size) != NULL) {
                snprintf(err, errlen,
                         "MessagePack map has duplicate key '%.*s'",
                         (int)(k->size > 64 ? 64 : k->size), kp);
                json_decref(v);
                return NULL;
            }
            item = fromMsgpack(&kv->val, err, errlen);
            if (item == NULL) {
                json_decref(v);
                return NULL;
            }
            /* Validates UTF-8; steals item even on failure. */
            if (json_object_setn_new(v, kp, k->size, item) != 0) {
                snprintf(err, errlen, "MessagePack map key is not valid UTF-8");
                json_decref(v);
                return NULL;
            }
        }
        return v;
    case MSGPACK_OBJECT_BIN:
        snprintf(err, errlen,
                 "MessagePack bin type is not supported (no JSON equivalent)");
        return NULL;
    case MSGPACK_OBJECT_EXT:
        snprintf(err, errlen,
                 "MessagePack ext type %d is not supported (no JSON "
                 "equivalent)",
                 (int)o->via.ext.type);
        return NULL;
    default:
        snprintf(err, errlen, "MessagePack type %d is not supported",
                 (int)o->type);
        return NULL;
    }
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return v;
}

static json_t *decodeMsgpack(const char *body, size_t len, char *err,
                             size_t errlen)
{
    msgpack_unpacked result;
    msgpack_unpack_return ret;
    size_t off = 0;
    json_t *v = NULL;
    char why[160];

    if (len == 0) {
        snprintf(err, errlen, "malformed MessagePack: empty body");
        return NULL;
    }
    if (mpscan_object(body, len, &off, why, sizeof why) != 0) {
        snprintf(err, errlen, "malformed MessagePack: %s", why);
        return NULL;
    }
    off = 0;
    msgpack_unpacked_init(&result);
    ret = msgpack_unpack_next(&result, body, len, &off);
    switch (ret) {
    case MSGPACK_UNPACK_SUCCESS:
        if (off != len) {
            snprintf(err, errlen,
                     "malformed MessagePack: %zu trailing bytes after the "
                     "value at offset %zu",
                     len - off, off);
            goto out_free_unpacked;
        }
        v = fromMsgpack(&result.data, err, errlen);
        break;
    case MSGPACK_UNPACK_CONTINUE:
        snprintf(err, errlen, "malformed MessagePack: truncated (%zu bytes)",
                 len);
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        snprintf(err, errlen,
                 "malformed MessagePack: out of memory (declared size too "
                 "large?)");
        break;
    default:
        snprintf(err, errlen, "malformed MessagePack: parse error");
        break;
    }
out_free_unpacked:
    msgpack_unpacked_destroy(&result);
    return v;
}

static json_t *decodeJson(const char *body, size_t len, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *v;

    v = json_loadb(body, len,
                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                   &jerr);
    if (v == NULL) {
        snprintf(err, errlen, "malformed JSON at line %d column %d: %s",
                 jerr.line, jerr.column, jerr.text);
    }
    return v;
}

json_t *codec_decode(enum codec_format f, const char *body, size_t len,
                     char *err, size_t errlen)
{
    if (body == NULL) {
        body = "";
        len = 0;
    }
    if (f == CODEC_MSGPACK) {
        return decodeMsgpack(body, len, err, errlen);
    }
    return decodeJson(body, len, err, errlen);
}

/* -------------------------------------------------------------------------
 * json_t -> bytes
 * ---------------------------------------------------------------------- */

static int toMsgpack(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_STRING: {
        size_t n = json_string_length(v);
        if (n > UINT32_MAX) {
            return -1;
        }
        if (msgpack_pack_str(pk, n) != 0) {
            return -1;
        }
        return msgpack_pack_str_body(pk, json_string_value(v), n);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        if (json_array_size(v) > UINT32_MAX ||
            msgpack_pack_array(pk, json_array_size(v)) != 0) {
            return -1;
        }
        json_array_foreach((json_t *)v, i, item)
        {
            if (toMsgpack(pk, item) != 0) {
                return -1;
            }
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *item;
        void *tmp;
        if (json_object_size(v) > UINT32_MAX ||
            msgpack_pack_map(pk, json_object_size(v)) != 0) {
            return -1;
        }
        json_object_keylen_foreach_safe((json_t *)v, tmp, key, key_len, item)
        {
            if (msgpack_pack_str(pk, key_len) != 0 ||
                msgpack_pack_str_body(pk, key, key_len) != 0 ||
                toMsgpack(pk, item) != 0) {
                return -1;
            }
        }
        return 0;
    }
    }
    return -1;
}

char *codec_encode(enum codec_format f, const json_t *v, size_t *len)
{
    assert(v != NULL && len != NULL);
    if (f == CODEC_MSGPACK) {
        msgpack_sbuffer sbuf;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        if (toMsgpack(&pk, v) != 0) {
            msgpack_sbuffer_destroy(&sbuf);
            return NULL;
        }
        *len = sbuf.size;
        return msgpack_sbuffer_release(&sbuf); /* malloc'ed by sbuffer. */
    } else {
        size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
        size_t n = json_dumpb(v, NULL, 0, flags);
        char *out;

        if (n == 0) {
            return NULL;
        }
        out = malloc(n + 1);
        if (out == NULL) {
            return NULL;
        }
        if (json_dumpb(v, out, n, flags) != n) {
            free(out);
            return NULL;
        }
        out[n] = '\0'; /* Convenience: also a C string. */
        *len = n;
        return out;
    }
}
