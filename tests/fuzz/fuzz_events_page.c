/* Fuzz target: the internal events page decoder (node/events_page.c:
 * events_page_decode, what a catching-up node reads from a peer). The
 * first input byte picks the form (even: compact MessagePack, odd: the
 * generic JSON page); the rest is the body.
 *
 * Properties: a refusal says why and leaves nothing to free; an accepted
 * page's events have a stream and a type, and encoded again in the compact
 * form (events_page_enc_add) decode to the same events.
 *
 * fuzz-needs: node/events_page.h (built once the page codec is on the
 * branch; tests/fuzz/CMakeLists.txt skips it before) */
#include <string.h>

#include "events_page.h"
#include "fuzz.h"

static int sameStr(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct events_page page;
    struct events_page again;
    struct events_page_enc enc;
    const char *ctype;
    char err[256];

    if (size == 0) {
        return 0;
    }
    ctype = data[0] % 2 == 0 ? EVENTS_PAGE_COMPACT : "application/json";
    err[0] = '\0';
    if (events_page_decode(ctype, (const char *)data + 1, size - 1, &page, err,
                           sizeof err) != 0) {
        CHECK(err[0] != '\0');
        CHECK(page.events == NULL && page.arena == NULL && page.json == NULL);
        return 0;
    }
    events_page_enc_init(&enc);
    for (size_t i = 0; i < page.n; i++) {
        CHECK(page.events[i].stream != NULL && page.events[i].type != NULL);
        CHECK(page.events[i].data != NULL || page.events[i].data_len == 0);
        CHECK(events_page_enc_add(&enc, &page.events[i]) == 0);
    }
    CHECK(events_page_decode(EVENTS_PAGE_COMPACT, enc.sb.data, enc.sb.size,
                             &again, err, sizeof err) == 0);
    CHECK(again.n == page.n);
    for (size_t i = 0; i < page.n; i++) {
        const struct ledger_event *x = &page.events[i];
        const struct ledger_event *y = &again.events[i];
        CHECK(x->position == y->position && x->seq == y->seq &&
              x->ts_ms == y->ts_ms);
        CHECK(sameStr(x->stream, y->stream) && sameStr(x->type, y->type) &&
              sameStr(x->id, y->id));
        CHECK(x->data_len == y->data_len &&
              (x->data_len == 0 || memcmp(x->data, y->data, x->data_len) == 0));
        CHECK(memcmp(x->hash, y->hash, LEDGER_HASH_LEN) == 0 &&
              memcmp(x->prev_hash, y->prev_hash, LEDGER_HASH_LEN) == 0);
    }
    events_page_free(&again);
    events_page_enc_destroy(&enc);
    events_page_free(&page);
    return 0;
}
