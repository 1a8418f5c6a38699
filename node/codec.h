/* Request/response body codec: JSON text and MessagePack <-> jansson trees.
 *
 * Both wire formats map to one in-memory form (json_t), so handlers are
 * written once. MessagePack maps must have string keys; bin/ext types are
 * refused (no JSON equivalent). Integers keep their full range (jansson's
 * json_int_t is 64-bit); unsigned values above INT64_MAX are refused.
 */
#ifndef LEDGER_CODEC_H
#define LEDGER_CODEC_H

#include <stddef.h>
#include <jansson.h>

enum codec_format { CODEC_JSON = 0, CODEC_MSGPACK = 1 };

/* Pick the format from a Content-Type or Accept header value (NULL: JSON).
 * "application/msgpack" and "application/x-msgpack" mean MessagePack. */
enum codec_format codec_format_from_header(const char *value);
const char *codec_content_type(enum codec_format f);

/* Decode a body. On error returns NULL and writes a one-line reason into
 * err (e.g. "malformed JSON at line 1 column 5: ..."). */
json_t *codec_decode(enum codec_format f, const char *body, size_t len,
                     char *err, size_t errlen);

/* Encode a tree; returns a malloc'ed buffer (caller frees) and its length,
 * or NULL on out of memory. JSON output is compact. */
char *codec_encode(enum codec_format f, const json_t *v, size_t *len);

#endif /* LEDGER_CODEC_H */
