/* ledgerctl streams: every stream, in name order, through GET /v1/streams
 * one page at a time (?after=NAME&limit=N, at most 1000 per answer),
 * following the "next" cursor until the list ends or --limit streams were
 * printed.
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
    for (;;) {
        char path[1400];
        char what[1200];
        unsigned long long want = limit - printed;
        json_t *page;
        json_t *streams;
        json_t *s;
        const char *next;
        size_t i;
        int status;
        int off = snprintf(path, sizeof path, "/v1/streams?limit=%llu",
                           want < STREAMS__PAGE ? want : STREAMS__PAGE);

        if (after[0] != '\0') {
            off += snprintf(path + off, sizeof path - (size_t)off, "&after=%s",
                            after);
        }
        if (consistency != NULL) {
            snprintf(path + off, sizeof path - (size_t)off, "&consistency=%s",
                     consistency);
        }
        snprintf(what, sizeof what, "streams%s%s%s",
                 after[0] != '\0' ? " (resume with --after " : "", after,
                 after[0] != '\0' ? ")" : "");
        rv = ctlApi(ctl, what, "GET", path, NULL, &page, &status);
        if (rv != 0) {
            return rv;
        }
        streams = json_object_get(page, "streams");
        if (!json_is_array(streams)) {
            json_decref(page);
            return ctlFail("streams: the answer has no \"streams\" array");
        }
        json_array_foreach(streams, i, s)
        {
            if (printed >= limit) {
                break;
            }
            if (ctl->json) {
                ctlPrintJson(s);
            } else {
                const char *name =
                    json_string_value(json_object_get(s, "stream"));
                const char *head =
                    json_string_value(json_object_get(s, "head_hash"));
                printf("%s %lld %s\n", name != NULL ? name : "?",
                       (long long)json_integer_value(
                           json_object_get(s, "last_seq")),
                       head != NULL ? head : "?");
            }
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
