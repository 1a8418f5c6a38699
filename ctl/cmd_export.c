/* ledgerctl export [--stream S] [--from-position P] [--limit N] and
 * ledgerctl import FILE|- (docs/operations.md, "Export and import").
 *
 * Export writes one JSON object per line on stdout, in position order:
 *   {"stream","seq","position","type","id","data","ts","hash"}
 * `data` is the stored JSON text byte for byte (the hash covers it), so an
 * export from position 1 lets an auditor recompute every hash without the
 * cluster (docs/store.md, "Hash chain"; prev_hash is the previous line's
 * hash). It pages through the API and holds one page at a time:
 *   - every stream: GET /v1/internal/events?from_position=P (the exact
 *     data_text) from ONE node, up to the head that node had when the
 *     export began (its /v1/internal/status), so the export is a prefix of
 *     the log as of its start even while appends go on;
 *   - one stream: GET /v1/streams/S/events?from=SEQ (strong reads, any
 *     node), up to the last_seq of the first page; events below
 *     --from-position are skipped. data is re-encoded compactly, which
 *     gives back the stored text (the node stored jansson's compact form).
 *
 * Import reads such lines (any length, from a file or stdin) and appends
 * them to the cluster of --endpoints, consecutive events of one stream in
 * batches of up to IMPORT__BATCH events. Every event carries an id: its
 * own, or "src:" + its source hash for an event that had none (the hash is
 * unique to that event in its source cluster). So every batch is safe to
 * send again, and importing the same file twice appends nothing the second
 * time: a batch whose ids are all stored answers the first result
 * (X-Ledger-Duplicate); a batch mixing stored and new ids (409
 * duplicate_id_conflict, an earlier import stopped half-way) is sent again
 * one event at a time. Stream, type, id and data are kept; seq, position,
 * ts and hash are the target's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define EXPORT__PAGE 1000         /* Events per page read. */
#define IMPORT__BATCH 500         /* Events per append, at most. */
#define IMPORT__BYTES (512 << 10) /* Body bytes per append, about. */
#define IMPORT__RETRY_S 60        /* Retries of 503/429 within this. */

/* ---- Export ------------------------------------------------------------ */

/* A JSON string (quoted, escaped) on out. */
static int putStr(FILE *out, const char *s)
{
    json_t *j = json_string(s);
    char *t = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    int rv = t != NULL && fputs(t, out) >= 0 ? 0 : -1;
    free(t);
    json_decref(j);
    return rv;
}

/* One line. data: JSON text (data_len bytes). */
static int putLine(FILE *out, const char *stream, long long seq,
                   long long position, const char *type, const char *id,
                   const char *data, size_t data_len, long long ts,
                   const char *hash)
{
    int rv = fputs("{\"stream\":", out) < 0;
    rv |= putStr(out, stream);
    rv |= fprintf(out, ",\"seq\":%lld,\"position\":%lld,\"type\":", seq,
                  position) < 0;
    rv |= putStr(out, type);
    rv |= fputs(",\"id\":", out) < 0;
    rv |= id != NULL ? putStr(out, id) : (fputs("null", out) < 0);
    rv |= fputs(",\"data\":", out) < 0;
    rv |= fwrite(data, 1, data_len, out) != data_len;
    rv |= fprintf(out, ",\"ts\":%lld,\"hash\":", ts) < 0;
    rv |= putStr(out, hash);
    rv |= fputs("}\n", out) < 0;
    return rv != 0 ? -1 : 0;
}

/* GET path from endpoint i (or any endpoint when i < 0): the JSON object,
 * or NULL after printing why. */
static json_t *getPage(struct ctl *ctl, long i, const char *path)
{
    ledger_client *c = ctlClient(ctl);
    struct ledger_http_response r;
    json_t *v;
    int rv =
        i < 0 ? ledger_client_call(c, "GET", path, NULL, 0, &r)
              : ledger_client_call_one(c, (size_t)i, "GET", path, NULL, 0, &r);
    if (rv != 0) {
        ctlFail("export: %s", ledger_client_errmsg(c));
        return NULL;
    }
    if (r.status != 200) {
        char desc[512];
        ctlDescribeError(&r, desc, sizeof desc);
        ledger_http_response_free(&r);
        ctlFail("export: GET %s: %s", path, desc);
        return NULL;
    }
    v = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, NULL);
    ledger_http_response_free(&r);
    if (!json_is_object(v)) {
        json_decref(v);
        ctlFail("export: GET %s: not a JSON object", path);
        return NULL;
    }
    return v;
}

struct exportCount {
    unsigned long long n;
    long long first;
    long long last;
    unsigned long long limit; /* 0: none. */
};

static void counted(struct exportCount *k, long long position)
{
    if (k->n++ == 0) {
        k->first = position;
    }
    k->last = position;
}

static int exportAll(struct ctl *ctl, unsigned long long from,
                     struct exportCount *k)
{
    ledger_client *c = ctlClient(ctl);
    json_t *st = getPage(ctl, -1, "/v1/internal/status");
    const char *ep;
    long idx = -1;
    long long head;

    if (st == NULL) {
        return CTL_EXIT_FAIL;
    }
    head = (long long)json_integer_value(json_object_get(st, "position"));
    json_decref(st);
    /* The rest from the node that answered: its log is one prefix. */
    ep = ledger_client_last_endpoint(c);
    for (size_t i = 0; ep != NULL && i < ledger_client_endpoint_count(c); i++) {
        if (strcmp(ledger_client_endpoint(c, i), ep) == 0) {
            idx = (long)i;
        }
    }
    while ((long long)from <= head && (k->limit == 0 || k->n < k->limit)) {
        char path[128];
        json_t *page;
        json_t *events;
        json_t *e;
        size_t i;
        snprintf(path, sizeof path,
                 "/v1/internal/events?from_position=%llu&limit=%d", from,
                 EXPORT__PAGE);
        page = getPage(ctl, idx, path);
        if (page == NULL) {
            goto out_resume;
        }
        events = json_object_get(page, "events");
        if (!json_is_array(events) || json_array_size(events) == 0) {
            json_decref(page);
            ctlFail("export: %s has no event at position %llu although its "
                    "head was %lld",
                    ep != NULL ? ep : "the node", from, head);
            goto out_resume;
        }
        json_array_foreach(events, i, e)
        {
            long long pos =
                (long long)json_integer_value(json_object_get(e, "position"));
            json_t *id = json_object_get(e, "id");
            json_t *data = json_object_get(e, "data_text");
            if (pos > head || (k->limit != 0 && k->n >= k->limit)) {
                break;
            }
            if (putLine(
                    stdout, json_string_value(json_object_get(e, "stream")),
                    (long long)json_integer_value(json_object_get(e, "seq")),
                    pos, json_string_value(json_object_get(e, "type")),
                    json_is_string(id) ? json_string_value(id) : NULL,
                    json_string_value(data), json_string_length(data),
                    (long long)json_integer_value(json_object_get(e, "ts")),
                    json_string_value(json_object_get(e, "hash"))) != 0) {
                json_decref(page);
                ctlFail("export: write: %s", strerror(errno));
                goto out_resume;
            }
            counted(k, pos);
            from = (unsigned long long)pos + 1;
        }
        json_decref(page);
    }
    return CTL_EXIT_OK;

out_resume:
    if (k->n > 0) {
        fprintf(stderr,
                "ledgerctl: export stopped after position %lld: resume with "
                "--from-position %lld\n",
                k->last, k->last + 1);
    }
    return CTL_EXIT_FAIL;
}

static int exportStream(struct ctl *ctl, const char *stream,
                        unsigned long long from_pos, struct exportCount *k)
{
    char enc[1024];
    unsigned long long seq = 1;
    long long last_seq = -1;

    ctlUrlEncode(stream, enc, sizeof enc);
    while (k->limit == 0 || k->n < k->limit) {
        char path[1200];
        json_t *page;
        json_t *events;
        json_t *e;
        size_t i;
        snprintf(path, sizeof path, "/v1/streams/%s/events?from=%llu&limit=%d",
                 enc, seq, EXPORT__PAGE);
        page = getPage(ctl, -1, path);
        if (page == NULL) {
            return CTL_EXIT_FAIL;
        }
        if (last_seq < 0) {
            /* The stream's end when the export began. */
            last_seq = (long long)json_integer_value(
                json_object_get(page, "last_seq"));
        }
        events = json_object_get(page, "events");
        if (!json_is_array(events) || json_array_size(events) == 0) {
            json_decref(page);
            break;
        }
        json_array_foreach(events, i, e)
        {
            long long s =
                (long long)json_integer_value(json_object_get(e, "seq"));
            long long pos =
                (long long)json_integer_value(json_object_get(e, "position"));
            json_t *id = json_object_get(e, "id");
            char *data;
            int rv;
            if (s > last_seq || (k->limit != 0 && k->n >= k->limit)) {
                json_decref(page);
                return CTL_EXIT_OK;
            }
            seq = (unsigned long long)s + 1;
            if ((unsigned long long)pos < from_pos) {
                continue;
            }
            data = json_dumps(json_object_get(e, "data"),
                              JSON_COMPACT | JSON_ENCODE_ANY);
            rv =
                data == NULL
                    ? -1
                    : putLine(stdout, stream, s, pos,
                              json_string_value(json_object_get(e, "type")),
                              json_is_string(id) ? json_string_value(id) : NULL,
                              data, strlen(data),
                              (long long)json_integer_value(
                                  json_object_get(e, "ts")),
                              json_string_value(json_object_get(e, "hash")));
            free(data);
            if (rv != 0) {
                json_decref(page);
                return ctlFail("export: write: %s", strerror(errno));
            }
            counted(k, pos);
        }
        json_decref(page);
        if ((long long)seq > last_seq) {
            break;
        }
    }
    return CTL_EXIT_OK;
}

int ctlCmdExport(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"stream", 1, NULL},
                               {"from-position", 1, NULL},
                               {"limit", 1, NULL},
                               {NULL, 0, NULL}};
    struct exportCount k = {0, 0, 0, 0};
    const char *pos[1];
    const char *stream;
    const char *v;
    unsigned long long from = 1;
    int n_pos;
    int rv = ctlParseArgs(ctl, "export", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    stream = ctlFlag(flags, "stream");
    v = ctlFlag(flags, "from-position");
    if (v != NULL &&
        ctlParseU64("--from-position", v, 1, INT64_MAX, &from) != 0) {
        return CTL_EXIT_USAGE;
    }
    v = ctlFlag(flags, "limit");
    if (v != NULL && ctlParseU64("--limit", v, 1, INT64_MAX, &k.limit) != 0) {
        return CTL_EXIT_USAGE;
    }
    if (stream != NULL && (stream[0] == '\0' || strlen(stream) > 255)) {
        return ctlUsage("export: --stream needs a stream name");
    }
    if (ctlClient(ctl) == NULL) {
        return CTL_EXIT_USAGE;
    }
    rv = stream != NULL ? exportStream(ctl, stream, from, &k)
                        : exportAll(ctl, from, &k);
    if (fflush(stdout) != 0 && rv == CTL_EXIT_OK) {
        rv = ctlFail("export: write: %s", strerror(errno));
    }
    if (rv == CTL_EXIT_OK) {
        if (k.n > 0) {
            fprintf(stderr, "export: %llu events, positions %lld..%lld\n", k.n,
                    k.first, k.last);
        } else {
            fprintf(stderr, "export: 0 events\n");
        }
    }
    return rv;
}

/* ---- Import ------------------------------------------------------------ */

struct importer {
    struct ctl *ctl;
    const char *file;
    char stream[256];
    json_t *batch; /* Events of `stream` not yet sent. */
    size_t batch_bytes;
    unsigned long long read;
    unsigned long long appended;
    unsigned long long present;
    unsigned long long line;
};

static void sleepMs(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* POST one batch (every event has an id): 0 with *dup set, 1 for a 409
 * duplicate_id_conflict (some ids stored, some not), or CTL_EXIT_FAIL
 * after printing why. 503 and 429 are retried (safe: ids). */
static int postBatch(struct importer *im, json_t *events, int *dup)
{
    ledger_client *c = ctlClient(im->ctl);
    char enc[1024];
    char path[1200];
    json_t *body = json_pack("{s:O}", "events", events);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    long waited = 0;
    int rv;

    json_decref(body);
    if (text == NULL) {
        return ctlFail("import: out of memory");
    }
    ctlUrlEncode(im->stream, enc, sizeof enc);
    snprintf(path, sizeof path, "/v1/streams/%s/events", enc);
    for (;;) {
        struct ledger_http_response r;
        rv = ledger_client_call_flags(c, "POST", path, text, strlen(text),
                                      LEDGER_CALL_RETRY_SAFE, &r);
        if (rv != 0) {
            rv = ctlFail("import: stream %s, events before line %llu: %s; "
                         "import the same file again to go on",
                         im->stream, im->line, ledger_client_errmsg(c));
            break;
        }
        if (r.status == 201) {
            *dup = r.duplicate;
            ledger_http_response_free(&r);
            rv = 0;
            break;
        }
        if (r.status == 409 && strstr(r.body, "duplicate_id_conflict")) {
            ledger_http_response_free(&r);
            rv = 1;
            break;
        }
        if ((r.status == 503 || r.status == 429) &&
            waited < IMPORT__RETRY_S * 1000L) {
            ledger_http_response_free(&r);
            ledger_client_rotate(c);
            sleepMs(200);
            waited += 200;
            continue;
        }
        {
            char desc[512];
            ctlDescribeError(&r, desc, sizeof desc);
            ledger_http_response_free(&r);
            rv = ctlFail("import: stream %s, events before line %llu: %s",
                         im->stream, im->line, desc);
        }
        break;
    }
    free(text);
    return rv;
}

static int flushBatch(struct importer *im)
{
    size_t n = json_array_size(im->batch);
    int dup = 0;
    int rv;

    if (n == 0) {
        return 0;
    }
    rv = postBatch(im, im->batch, &dup);
    if (rv == 1) {
        /* Stored in part (an earlier import stopped half-way): one by
         * one, each either stored already or appended now. */
        size_t i;
        json_t *e;
        rv = 0;
        json_array_foreach(im->batch, i, e)
        {
            json_t *one = json_pack("[O]", e);
            int d = 0;
            rv = one != NULL ? postBatch(im, one, &d) : -1;
            json_decref(one);
            if (rv != 0) {
                rv = rv == 1 ? ctlFail("import: stream %s: an event refused "
                                       "as a partial duplicate alone",
                                       im->stream)
                             : CTL_EXIT_FAIL;
                break;
            }
            *(d ? &im->present : &im->appended) += 1;
        }
    } else if (rv == 0) {
        *(dup ? &im->present : &im->appended) += n;
    }
    json_array_clear(im->batch);
    im->batch_bytes = 0;
    return rv;
}

static int importLine(struct importer *im, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    json_t *ev;
    const char *stream;
    const char *type;
    json_t *id;
    json_t *data;
    char derived[80];
    int rv = 0;

    if (!json_is_object(v)) {
        json_decref(v);
        return ctlFail("import: %s line %llu: not a JSON object (%s)", im->file,
                       im->line, jerr.text);
    }
    stream = json_string_value(json_object_get(v, "stream"));
    type = json_string_value(json_object_get(v, "type"));
    id = json_object_get(v, "id");
    data = json_object_get(v, "data");
    if (stream == NULL || stream[0] == '\0' || strlen(stream) > 255 ||
        type == NULL ||
        (id != NULL && !json_is_null(id) && !json_is_string(id))) {
        json_decref(v);
        return ctlFail("import: %s line %llu: needs \"stream\" and \"type\" "
                       "strings (and \"id\" a string or null)",
                       im->file, im->line);
    }
    if (!json_is_string(id)) {
        const char *hash = json_string_value(json_object_get(v, "hash"));
        if (hash == NULL || strlen(hash) != 64) {
            json_decref(v);
            return ctlFail("import: %s line %llu: an event without id needs "
                           "its source \"hash\" (its id will be src:HASH)",
                           im->file, im->line);
        }
        snprintf(derived, sizeof derived, "src:%s", hash);
    }
    if (strcmp(stream, im->stream) != 0 ||
        json_array_size(im->batch) >= IMPORT__BATCH ||
        im->batch_bytes + len > IMPORT__BYTES) {
        rv = flushBatch(im);
        snprintf(im->stream, sizeof im->stream, "%s", stream);
    }
    if (rv == 0) {
        ev = json_pack("{s:s, s:s, s:O}", "type", type, "id",
                       json_is_string(id) ? json_string_value(id) : derived,
                       "data", data != NULL ? data : json_null());
        if (ev == NULL || json_array_append_new(im->batch, ev) != 0) {
            rv = ctlFail("import: out of memory");
        }
        im->batch_bytes += len;
        im->read++;
    }
    json_decref(v);
    return rv;
}

int ctlCmdImport(struct ctl *ctl, int argc, char **argv)
{
    struct importer im;
    const char *pos[2];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *in;
    int n_pos;
    int rv = ctlParseArgs(ctl, "import", argc, argv, NULL, pos, 2, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    if (n_pos != 1) {
        return ctlUsage("import needs one FILE ('-': stdin) of export lines");
    }
    memset(&im, 0, sizeof im);
    im.ctl = ctl;
    im.file = pos[0];
    if (ctlClient(ctl) == NULL) {
        return CTL_EXIT_USAGE;
    }
    in = strcmp(im.file, "-") == 0 ? stdin : fopen(im.file, "r");
    if (in == NULL) {
        return ctlFail("import: cannot read %s: %s", im.file, strerror(errno));
    }
    im.batch = json_array();
    while (rv == 0 && (len = getline(&line, &cap, in)) >= 0) {
        im.line++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        rv = importLine(&im, line, (size_t)len);
    }
    if (rv == 0 && ferror(in)) {
        rv = ctlFail("import: read %s: %s", im.file, strerror(errno));
    }
    if (rv == 0) {
        rv = flushBatch(&im);
    }
    free(line);
    json_decref(im.batch);
    if (in != stdin) {
        fclose(in);
    }
    if (rv != 0) {
        if (im.appended + im.present > 0) {
            fprintf(stderr,
                    "ledgerctl: import: %llu events were in before the "
                    "failure (%llu appended now); importing the file again "
                    "appends only the rest\n",
                    im.appended + im.present, im.appended);
        }
        return rv;
    }
    if (ctl->json) {
        json_t *o = json_pack("{s:I, s:I, s:I}", "read", (json_int_t)im.read,
                              "appended", (json_int_t)im.appended, "present",
                              (json_int_t)im.present);
        ctlPrintJson(o);
        json_decref(o);
    } else {
        printf("import: %llu events read, %llu appended, %llu already "
               "present\n",
               im.read, im.appended, im.present);
    }
    return CTL_EXIT_OK;
}
