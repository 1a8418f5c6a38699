/* The body of an append (POST /v1/streams/{stream}/events), checked and
 * encoded into its Raft op apart from any request or node, so that the
 * whole path from wire bytes to op can be fuzzed (tests/fuzz).
 *
 * Rules (docs/api.md, "Append"): the body is one event object or
 * {"events":[...], "expected_version":N}; 1 to APPEND_MAX_EVENTS events;
 * each needs a non-empty string "type" of at most APPEND_MAX_FIELD bytes
 * without NUL, may have "data" (any JSON value, stored as compact JSON
 * text; null when absent) and an "id" (null, or a non-empty string of at
 * most APPEND_MAX_FIELD bytes without NUL). Ids repeated within the batch
 * are refused. What depends on stored state (duplicates, the expected
 * version) is decided when the entry is applied.
 */
#ifndef LEDGER_NODE_APPEND_BODY_H
#define LEDGER_NODE_APPEND_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"
#include "replication/entry.h"

#define APPEND_MAX_EVENTS 10000 /* Events in one append. */
#define APPEND_MAX_FIELD 255    /* Longest type or id, bytes. */

/* Check a decoded body and encode the append op for `stream` (a valid
 * stream name). 0: *op holds it (op_buf_free it) and *n_events its size.
 * -1: nothing allocated; *e is the error to answer and msg says why. */
int append_body_encode(json_t *body, const char *stream, struct op_buf *op,
                       size_t *n_events, enum api_error *e, char *msg,
                       size_t msglen);

/* Whether a second delivery of this body is harmless: it decodes and every
 * event has a non-empty string id (the store answers the first result). */
int append_body_retry_safe(json_t *body);

#endif /* LEDGER_NODE_APPEND_BODY_H */
