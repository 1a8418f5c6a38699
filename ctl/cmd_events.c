/* ledgerctl append and read: POST/GET /v1/streams/{stream}/events.
 *
 * append retries only when the server cannot have applied the batch: every
 * endpoint refused the connection, or the answer was 503/429 (no leader yet,
 * queue full), waiting Retry-After (bounded) in between. A request that
 * timed out after it was sent is retried only when the event has an --id,
 * because the server deduplicates by id.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define EVENTS__RETRY_MS 10000 /* Time append retries 503/429 answers. */
#define EVENTS__DEAD_MS 2000   /* Time append retries when no node answers. */
#define EVENTS__FOLLOW_WAIT_MS 20000 /* wait_ms of one --follow long poll. */
#define EVENTS__PAGE 1000            /* Events asked for per read request. */

static void sleepMs(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static long long nowMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *readStdin(size_t *len)
{
    size_t cap = 4096;
    size_t n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    for (;;) {
        size_t r;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) {
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Retry-After in ms (seconds, as HTTP says), bounded; 200 ms if absent. */
static long retryAfterMs(const struct ledger_http_response *r)
{
    long ms = 200;
    if (r->retry_after != NULL) {
        char *end;
        double s = strtod(r->retry_after, &end);
        if (end != r->retry_after && s >= 0) {
            ms = s < 0.05 ? 50 : (long)(s * 1000);
        }
    }
    return ms > 2000 ? 2000 : ms;
}

int ctlCmdAppend(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"type", 1, NULL},
                               {"id", 1, NULL},
                               {"expect", 1, NULL},
                               {NULL, 0, NULL}};
    const char *pos[2];
    const char *type;
    const char *key;
    unsigned long long expect = 0;
    char *stdin_text = NULL;
    json_t *data;
    json_t *event;
    json_t *body;
    json_error_t jerr;
    char *text;
    char path[1200];
    char enc[1024];
    ledger_client *c;
    long long deadline;
    long long dead_deadline;
    int n_pos;
    int rv = ctlParseArgs(ctl, "append", argc, argv, flags, pos, 2, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 2) {
        return ctlUsage(n_pos == 0 ? "append needs STREAM and DATA"
                                   : "append needs DATA (JSON, or - to read "
                                     "stdin)");
    }
    if (pos[0][0] == '\0' || strlen(pos[0]) > 255) {
        return ctlUsage("append: STREAM must be 1 to 255 characters");
    }
    type = ctlFlag(flags, "type");
    if (type == NULL) {
        type = "event";
    }
    key = ctlFlag(flags, "id");
    if (ctlFlag(flags, "expect") != NULL &&
        ctlParseU64("--expect", ctlFlag(flags, "expect"), 0, INT64_MAX,
                    &expect) != 0) {
        return CTL_EXIT_USAGE;
    }
    if (strcmp(pos[1], "-") == 0) {
        size_t len;
        stdin_text = readStdin(&len);
        if (stdin_text == NULL) {
            return ctlFail("append: out of memory reading stdin");
        }
        data = json_loadb(stdin_text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                          &jerr);
    } else {
        data = json_loads(pos[1], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    }
    free(stdin_text);
    if (data == NULL) {
        return ctlUsage("DATA is not valid JSON: %s (line %d column %d); "
                        "quote strings, e.g. '\"text\"'",
                        jerr.text, jerr.line, jerr.column);
    }
    event = json_pack("{sssO}", "type", type, "data", data);
    json_decref(data);
    if (event == NULL) {
        return ctlFail("append: out of memory");
    }
    if (key != NULL) {
        json_object_set_new(event, "id", json_string(key));
    }
    body = json_pack("{s[o]}", "events", event);
    if (ctlFlag(flags, "expect") != NULL) {
        json_object_set_new(body, "expected_version",
                            json_integer((json_int_t)expect));
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        return ctlFail("append: out of memory");
    }
    ctlUrlEncode(pos[0], enc, sizeof enc);
    snprintf(path, sizeof path, "/v1/streams/%s/events", enc);

    c = ctlClient(ctl);
    if (c == NULL) {
        free(text);
        return CTL_EXIT_USAGE;
    }
    deadline = nowMs() + EVENTS__RETRY_MS;
    dead_deadline = nowMs() + EVENTS__DEAD_MS;
    for (;;) {
        struct ledger_http_response r;
        json_t *answer;
        int duplicate;
        char desc[512];
        /* With an id the append is safe to send twice: a node that does
         * not answer in time is left for the next one at once. */
        rv = ledger_client_call_flags(c, "POST", path, text, strlen(text),
                                      key != NULL ? LEDGER_CALL_RETRY_SAFE : 0,
                                      &r);
        if (rv == LEDGER_CLIENT_ENOENDPOINT ||
            (rv == LEDGER_CLIENT_EIO && key != NULL)) {
            if (nowMs() <
                (rv == LEDGER_CLIENT_EIO ? deadline : dead_deadline)) {
                sleepMs(300);
                continue;
            }
            rv = ctlFail("append to %s: %s%s", pos[0], ledger_client_errmsg(c),
                         rv == LEDGER_CLIENT_ENOENDPOINT
                             ? "; is the cluster running? (ledgerctl "
                               "cluster up, or set --endpoints)"
                             : "");
            break;
        }
        if (rv != 0) {
            rv = ctlFail("append to %s: %s; the outcome is unknown (pass --id "
                         "KEY so a retry cannot append twice)",
                         pos[0], ledger_client_errmsg(c));
            break;
        }
        if ((r.status == 503 || r.status == 429) && nowMs() < deadline) {
            long ms = retryAfterMs(&r);
            ledger_http_response_free(&r);
            /* Another node may have a leader in view: try it next. */
            ledger_client_rotate(c);
            sleepMs(ms);
            continue;
        }
        if (r.status < 200 || r.status > 299) {
            ctlDescribeError(&r, desc, sizeof desc);
            rv = ctlFail("append to %s: %s (from %s)", pos[0], desc,
                         ledger_client_last_endpoint(c));
            ledger_http_response_free(&r);
            break;
        }
        answer = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &jerr);
        duplicate = r.duplicate;
        ledger_http_response_free(&r);
        if (answer == NULL) {
            rv = ctlFail("append to %s: invalid JSON answer from %s: %s",
                         pos[0], ledger_client_last_endpoint(c), jerr.text);
            break;
        }
        if (ctl->json) {
            ctlPrintJson(answer);
        } else {
            const char *stream =
                json_string_value(json_object_get(answer, "stream"));
            const char *hash =
                json_string_value(json_object_get(answer, "hash"));
            printf("stream %s seq %lld..%lld position %lld hash %s\n",
                   stream != NULL ? stream : pos[0],
                   (long long)json_integer_value(
                       json_object_get(answer, "first_seq")),
                   (long long)json_integer_value(
                       json_object_get(answer, "last_seq")),
                   (long long)json_integer_value(
                       json_object_get(answer, "position")),
                   hash != NULL ? hash : "-");
            if (duplicate) {
                /* stdout stays the original result, byte for byte. */
                fprintf(stderr,
                        "ledgerctl: note: id already stored in %s: "
                        "this is the original result, nothing was "
                        "appended\n",
                        pos[0]);
            }
        }
        json_decref(answer);
        rv = CTL_EXIT_OK;
        break;
    }
    free(text);
    return rv;
}

static void readOnSignal(int sig)
{
    (void)sig;
    /* Every printed line was flushed: leave at once. */
    _exit(CTL_EXIT_OK);
}

/* Print the events of one page; returns the number printed and the highest
 * seq in *last. */
static size_t printEvents(struct ctl *ctl, const json_t *events,
                          unsigned long long max, long long *last)
{
    size_t i;
    size_t n = 0;
    const json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (n >= max) {
            break;
        }
        if (ctl->json) {
            ctlPrintJson(ev);
        } else {
            json_t *line = json_pack(
                "{sOsOsOsOsO}", "seq", json_object_get(ev, "seq"), "position",
                json_object_get(ev, "position"), "type",
                json_object_get(ev, "type"), "id",
                json_object_get(ev, "id") != NULL ? json_object_get(ev, "id")
                                                  : json_null(),
                "data",
                json_object_get(ev, "data") != NULL
                    ? json_object_get(ev, "data")
                    : json_null());
            if (line != NULL) {
                char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (s != NULL) {
                    puts(s);
                    free(s);
                }
                json_decref(line);
            }
        }
        *last = (long long)json_integer_value(json_object_get(ev, "seq"));
        n++;
    }
    fflush(stdout);
    return n;
}

int ctlCmdRead(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"from", 1, NULL},
                               {"limit", 1, NULL},
                               {"follow", 0, NULL},
                               {"consistency", 1, NULL},
                               {NULL, 0, NULL}};
    const char *pos[1];
    const char *consistency;
    unsigned long long from = 1;
    unsigned long long limit = UINT64_MAX;
    unsigned long long printed = 0;
    char enc[1024];
    int follow;
    int n_pos;
    ledger_client *c;
    int rv = ctlParseArgs(ctl, "read", argc, argv, flags, pos, 1, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 1) {
        return ctlUsage("read needs STREAM");
    }
    if ((ctlFlag(flags, "from") != NULL &&
         ctlParseU64("--from", ctlFlag(flags, "from"), 0, INT64_MAX, &from) !=
             0) ||
        (ctlFlag(flags, "limit") != NULL &&
         ctlParseU64("--limit", ctlFlag(flags, "limit"), 1, INT64_MAX,
                     &limit) != 0)) {
        return CTL_EXIT_USAGE;
    }
    if (from == 0) {
        from = 1;
    }
    consistency = ctlFlag(flags, "consistency");
    if (consistency != NULL && strcmp(consistency, "strong") != 0 &&
        strcmp(consistency, "leader") != 0 && strcmp(consistency, "any") != 0) {
        return ctlUsage("--consistency must be strong, leader or any, got "
                        "'%s'",
                        consistency);
    }
    follow = ctlFlag(flags, "follow") != NULL;
    ctlUrlEncode(pos[0], enc, sizeof enc);
    c = ctlClient(ctl);
    if (c == NULL) {
        return CTL_EXIT_USAGE;
    }
    if (follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = readOnSignal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
        ledger_client_set_timeout(c, EVENTS__FOLLOW_WAIT_MS + 10000);
    }
    for (;;) {
        char path[1400];
        json_t *page;
        json_t *events;
        long long last = 0;
        unsigned long long want = follow ? limit : limit - printed;
        size_t n;
        int status;
        int off = snprintf(path, sizeof path,
                           "/v1/streams/%s/events?from=%llu&limit=%llu", enc,
                           from, want < EVENTS__PAGE ? want : EVENTS__PAGE);
        if (consistency != NULL) {
            off += snprintf(path + off, sizeof path - (size_t)off,
                            "&consistency=%s", consistency);
        }
        if (follow) {
            snprintf(path + off, sizeof path - (size_t)off, "&wait_ms=%d",
                     EVENTS__FOLLOW_WAIT_MS);
        }
        if (follow) {
            struct ledger_http_response r;
            json_error_t jerr;
            rv = ledger_client_call(c, "GET", path, NULL, 0, &r);
            if (rv != 0) {
                /* Keep following through outages; say so once per try. */
                fprintf(stderr, "ledgerctl: read %s: %s; retrying\n", pos[0],
                        ledger_client_errmsg(c));
                sleepMs(1000);
                continue;
            }
            if (r.status == 503 || r.status == 429) {
                ledger_http_response_free(&r);
                sleepMs(500);
                continue;
            }
            if (r.status < 200 || r.status > 299) {
                char desc[512];
                ctlDescribeError(&r, desc, sizeof desc);
                ledger_http_response_free(&r);
                return ctlFail("read %s: %s (from %s)", pos[0], desc,
                               ledger_client_last_endpoint(c));
            }
            page = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &jerr);
            ledger_http_response_free(&r);
            if (page == NULL) {
                return ctlFail("read %s: invalid JSON answer from %s: %s",
                               pos[0], ledger_client_last_endpoint(c),
                               jerr.text);
            }
        } else {
            char what[300];
            snprintf(what, sizeof what, "read %s", pos[0]);
            rv = ctlApi(ctl, what, "GET", path, NULL, &page, &status);
            if (rv != 0) {
                return rv;
            }
        }
        events = json_object_get(page, "events");
        n = printEvents(ctl, events, follow ? UINT64_MAX : limit - printed,
                        &last);
        printed += n;
        if (n > 0) {
            from = (unsigned long long)last + 1;
        }
        if (!follow) {
            const json_t *ls = json_object_get(page, "last_seq");
            int at_end = json_is_integer(ls) && last >= json_integer_value(ls);
            json_decref(page);
            if (n == 0 || printed >= limit || at_end) {
                return CTL_EXIT_OK;
            }
            continue;
        }
        json_decref(page);
        if (n == 0) {
            /* The long poll ended empty; another node may serve better. */
            continue;
        }
    }
}
