/* The internal events page (GET /v1/internal/events): encoded for peers
 * and decoded from them, in this one file pair.
 *
 * Two forms of the same page, events in position order:
 * - compact (Accept: application/x-ledger-events, EVENTS_PAGE_COMPACT):
 *   MessagePack arrays back to back, one per event,
 *     [position, stream, seq, type, id|nil, ts, data_text,
 *      prev_hash(bin 32), hash(bin 32)]
 *   what the catch-up asks for (node/catchup.c): building and parsing JSON
 *   was most of a catch-up's CPU on both sides;
 * - generic: {"events": [{"position", "stream", "seq", "type", "id",
 *   "ts", "data_text", "prev_hash", "hash"}...]}, JSON (or MessagePack by
 *   the Accept header, node/codec.c), hashes as lowercase hex; what older
 *   peers answer and what a human reads.
 * data_text is the stored compact JSON text, byte for byte (the hash covers
 * it).
 */
#ifndef LEDGER_NODE_EVENTS_PAGE_H
#define LEDGER_NODE_EVENTS_PAGE_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>

#include "store/store.h"

#define EVENTS_PAGE_COMPACT "application/x-ledger-events"

/* ---- Encode ----------------------------------------------------------- */

/* Compact page builder: init, add each event (add is a ledger_event_cb,
 * for ledger_store_read_positions), then take sb.data/sb.size, destroy. */
struct events_page_enc {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};
void events_page_enc_init(struct events_page_enc *e);
int events_page_enc_add(void *e, const struct ledger_event *ev);
void events_page_enc_destroy(struct events_page_enc *e);

/* One event of the generic page (new reference, NULL when out of memory). */
json_t *events_page_json_event(const struct ledger_event *ev);

/* ---- Decode ----------------------------------------------------------- */

/* A decoded page. events[i]'s strings point into memory the page owns
 * (valid until events_page_free). */
struct events_page {
    struct ledger_event *events;
    size_t n;
    char *arena;  /* NUL-terminated copies of stream, type, id. */
    json_t *json; /* Generic form: the tree data_text points into. */
};

/* Decode a page by its Content-Type (compact if it starts with
 * EVENTS_PAGE_COMPACT, else generic JSON). 0, or -1 with a one-line
 * reason in err; on error nothing needs freeing. */
int events_page_decode(const char *content_type, const char *body, size_t len,
                       struct events_page *out, char *err, size_t errlen);
void events_page_free(struct events_page *p);

#endif /* LEDGER_NODE_EVENTS_PAGE_H */
