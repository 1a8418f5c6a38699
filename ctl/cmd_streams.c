/* ledgerctl streams: every stream, in name order, through GET /v1/streams
 * one page at a time (?after=NAME&limit=N, at most 1000 per answer),
 * following the "next" cursor until the list ends or --limit streams were
 * printed.
 *
 * Consistency. With --consistency C every page is read at level C (through
 * the usual endpoint fail-over). Without it the first page is a strong read
 * (it reflects every append acknowledged before the command began) and the
 * following pages are read with consistency=any from the node that answered
 * it: that node has applied at least as much, so the guarantee holds for
 * every page, without a read-index round trip per page (a strong read on an
 * idle follower waits for the leader's next heartbeat: about 0.2 s, so
 * 300,000 streams took a minute instead of 2 s). When that node fails, the
 * next page is a strong read again through any endpoint, and the command
 * carries on from the cursor. Pages are not one snapshot: a stream created
 * while the list runs may or may not appear.
 *
 * Output: one line per stream as soon as its page arrives, "NAME LAST_SEQ
 * HEAD_HASH" (with --json the stream's JSON object), so that a list of
 * millions never sits in memory. A page that fails ends the command (exit 1)
 * after the lines already printed; the message names the cursor to resume
 * from (--after).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define STREAMS__PAGE 1000 /* The server's maximum page. */

/* Index of the endpoint that answered last, or -1. */
static long answeredIndex(ledger_client *c)
{
    const char *last = ledger_client_last_endpoint(c);
    for (size_t i = 0; last != NULL && i < ledger_client_endpoint_count(c);
         i++) {
        if (strcmp(ledger_client_endpoint(c, i), last) == 0) {
            return (long)i;
        }
    }
    return -1;
}

#define STREAMS__UNPIN (-1) /* getPage: the pinned endpoint did not answer. */

/* One page: GET path on endpoint `pin` (or with fail-over when pin < 0).
 * Returns 0 with *page set, STREAMS__UNPIN when the pinned endpoint did not
 * answer (nothing printed: retry unpinned), or an exit status after printing
 * why. */
static int getPage(struct ctl *ctl, ledger_client *c, long pin,
                   const char *path, const char *after, json_t **page)
{
    struct ledger_http_response r;
    json_error_t jerr;
    char desc[512];
    int rv;

    *page = NULL;
    rv = pin >= 0
             ? ledger_client_call_one(c, (size_t)pin, "GET", path, NULL, 0, &r)
             : ledger_client_call(c, "GET", path, NULL, 0, &r);
    if (rv != 0) {
        if (pin >= 0) {
            return STREAMS__UNPIN;
        }
        return ctlFail("streams%s%s%s: %s",
                       after[0] ? " (resume with --after " : "", after,
                       after[0] ? ")" : "", ledger_client_errmsg(c));
    }
    if (r.status != 200) {
        ctlDescribeError(&r, desc, sizeof desc);
        ledger_http_response_free(&r);
        return ctlFail("streams%s%s%s: %s (from %s)",
                       after[0] ? " (resume with --after " : "", after,
                       after[0] ? ")" : "", desc,
                       pin >= 0 ? ledger_client_endpoint(c, (size_t)pin)
                                : ledger_client_last_endpoint(c));
    }
    *page = json_loadb(r.body, r.body_len, 0, &jerr);
    ledger_http_response_free(&r);
    if (*page == NULL || !json_is_array(json_object_get(*page, "streams"))) {
        json_decref(*page);
        *page = NULL;
        return ctlFail("streams: the answer is not {\"streams\":[...]}: %s",
                       jerr.text);
    }
    (void)ctl;
    return 0;
}

static void printStream(struct ctl *ctl, const json_t *s)
{
    const char *name = json_string_value(json_object_get(s, "stream"));
    const char *head = json_string_value(json_object_get(s, "head_hash"));

    if (ctl->json) {
        ctlPrintJson(s);
        return;
    }
    printf("%s %lld %s\n", name != NULL ? name : "?",
           (long long)json_integer_value(json_object_get(s, "last_seq")),
           head != NULL ? head : "?");
}

int ctlCmdStreams(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"after", 1, NULL},
                               {"limit", 1, NULL},
                               {"consistency", 1, NULL},
                               {NULL, 0, NULL}};
    const char *pos[1];
    const char *consistency;
    char after[1024] = "";
    unsigned long long limit = UINT64_MAX;
    unsigned long long printed = 0;
    long pin = -1; /* Endpoint the pages are read from, -1: any. */
    ledger_client *c;
    int n_pos;
    int rv = ctlParseArgs(ctl, "streams", argc, argv, flags, pos, 0, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 0) {
        return ctlUsage("streams takes no arguments, got '%s'", pos[0]);
    }
    if (ctlFlag(flags, "limit") != NULL &&
        ctlParseU64("--limit", ctlFlag(flags, "limit"), 1, INT64_MAX, &limit) !=
            0) {
        return CTL_EXIT_USAGE;
    }
    if (ctlFlag(flags, "after") != NULL) {
        if (strlen(ctlFlag(flags, "after")) > 255) {
            return ctlUsage("--after must be a stream name (at most 255 "
                            "bytes)");
        }
        ctlUrlEncode(ctlFlag(flags, "after"), after, sizeof after);
    }
    consistency = ctlFlag(flags, "consistency");
    if (consistency != NULL && strcmp(consistency, "strong") != 0 &&
        strcmp(consistency, "leader") != 0 && strcmp(consistency, "any") != 0) {
        return ctlUsage("--consistency must be strong, leader or any, got "
                        "'%s'",
                        consistency);
    }
    c = ctlClient(ctl);
    if (c == NULL) {
        return CTL_EXIT_USAGE;
    }
    for (;;) {
        char path[1400];
        unsigned long long want = limit - printed;
        const char *level = consistency != NULL ? consistency
                            : pin >= 0          ? "any"
                                                : "strong";
        json_t *page;
        json_t *streams;
        json_t *s;
        const char *next;
        size_t i;
        int off =
            snprintf(path, sizeof path, "/v1/streams?limit=%llu&consistency=%s",
                     want < STREAMS__PAGE ? want : STREAMS__PAGE, level);

        if (after[0] != '\0') {
            snprintf(path + off, sizeof path - (size_t)off, "&after=%s", after);
        }
        rv = getPage(ctl, c, pin, path, after, &page);
        if (rv == STREAMS__UNPIN) {
            pin = -1; /* That node is gone: strong again, any node. */
            continue;
        }
        if (rv != 0) {
            return rv;
        }
        if (consistency == NULL && pin < 0) {
            pin = answeredIndex(c);
        }
        streams = json_object_get(page, "streams");
        json_array_foreach(streams, i, s)
        {
            if (printed >= limit) {
                break;
            }
            printStream(ctl, s);
            printed++;
        }
        fflush(stdout);
        next = json_string_value(json_object_get(page, "next"));
        if (next == NULL || printed >= limit || json_array_size(streams) == 0) {
            json_decref(page);
            return CTL_EXIT_OK;
        }
        ctlUrlEncode(next, after, sizeof after);
        json_decref(page);
    }
}
