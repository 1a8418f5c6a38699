/* Append bodies: checked and encoded apart from any request (see
 * append_body.h). The first problem found is the one reported, in the
 * order a reader of the body meets them: the body's shape, the number of
 * events, expected_version, each event in order, then repeated ids. */
#include "append_body.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(enum api_error *e, char *msg, size_t msglen,
                  enum api_error what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(enum api_error *e, char *msg, size_t msglen,
                  enum api_error what, const char *fmt, ...)
{
    va_list ap;

    *e = what;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool hasId(json_t *e)
{
    json_t *id = json_object_get(e, "id");
    return json_is_string(id) && json_string_length(id) > 0;
}

int append_body_retry_safe(json_t *v)
{
    json_t *events = json_object_get(v, "events");
    bool safe = false;

    if (json_is_array(events) && json_array_size(events) > 0) {
        size_t i;
        json_t *e;
        safe = true;
        json_array_foreach(events, i, e)
        {
            safe = safe && hasId(e);
        }
    } else if (events == NULL && json_is_object(v)) {
        safe = hasId(v);
    }
    return safe;
}

/* A string field of at most APPEND_MAX_FIELD bytes without NUL. */
static bool goodField(json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0 &&
           json_string_length(v) <= APPEND_MAX_FIELD &&
           strlen(json_string_value(v)) == json_string_length(v);
}

/* Check one event into `in`; its data text is malloc'ed into *text. */
static int parseEvent(json_t *e, size_t i, struct ledger_event_in *in,
                      char **text, enum api_error *err, char *msg,
                      size_t msglen)
{
    json_t *type = json_object_get(e, "type");
    json_t *id = json_object_get(e, "id");
    json_t *data = json_object_get(e, "data");

    if (!json_is_object(e)) {
        return refuse(err, msg, msglen, API_E_BAD_EVENT,
                      "events[%zu] is not an object", i);
    }
    if (!goodField(type)) {
        return refuse(err, msg, msglen, API_E_BAD_EVENT,
                      "events[%zu].type must be a non-empty string of at "
                      "most %d bytes",
                      i, APPEND_MAX_FIELD);
    }
    if (id != NULL && !json_is_null(id) && !goodField(id)) {
        return refuse(err, msg, msglen, API_E_BAD_EVENT,
                      "events[%zu].id must be a non-empty string of at "
                      "most %d bytes",
                      i, APPEND_MAX_FIELD);
    }
    *text = json_dumps(data != NULL ? data : json_null(),
                       JSON_COMPACT | JSON_ENCODE_ANY);
    if (*text == NULL) {
        return refuse(err, msg, msglen, API_E_INTERNAL,
                      "cannot encode events[%zu].data", i);
    }
    in->type = json_string_value(type);
    in->id = json_is_string(id) ? json_string_value(id) : NULL;
    in->data = *text;
    in->data_len = strlen(*text);
    return 0;
}

struct idRef {
    const char *id;
    size_t i;
};

static int compareIdRefs(const void *pa, const void *pb)
{
    const struct idRef *x = pa;
    const struct idRef *y = pb;
    int c = strcmp(x->id, y->id);
    if (c != 0) {
        return c;
    }
    return x->i < y->i ? -1 : (x->i > y->i ? 1 : 0);
}

/* The first event (lowest index) whose id repeats an earlier event's id:
 * *dup and that earlier *orig. Sorting makes it O(n log n): 10,000 ids
 * compared pairwise took 0.3 s of the loop. Returns 1 if found, 0 if not,
 * -1 when out of memory. */
static int findRepeatedId(const struct ledger_event_in *in, size_t n,
                          size_t *dup, size_t *orig)
{
    struct idRef *refs = malloc(n * sizeof *refs);
    size_t m = 0;
    int found = 0;

    if (refs == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].id != NULL) {
            refs[m].id = in[i].id;
            refs[m].i = i;
            m++;
        }
    }
    qsort(refs, m, sizeof *refs, compareIdRefs);
    for (size_t k = 1; k < m; k++) {
        /* Equal ids sort by index: the lowest repeat of a group is its
         * second entry, right after the group's first (the original);
         * a later entry of the group has a higher index and never wins. */
        if (strcmp(refs[k].id, refs[k - 1].id) == 0 &&
            (!found || refs[k].i < *dup)) {
            *dup = refs[k].i;
            *orig = refs[k - 1].i;
            found = 1;
        }
    }
    free(refs);
    return found;
}

int append_body_encode(json_t *body, const char *stream, struct op_buf *op,
                       size_t *n_events, enum api_error *e, char *msg,
                       size_t msglen)
{
    json_t *events;
    json_t *expected;
    struct ledger_event_in *in = NULL;
    char **texts = NULL;
    uint64_t exp = 0;
    size_t n = 0;
    size_t i;
    size_t j = 0;
    int rv = -1;
    int found;

    if (!json_is_object(body)) {
        return refuse(e, msg, msglen, API_E_BAD_BODY,
                      "body must be an object: {\"events\":[...]} or one "
                      "event");
    }
    events = json_object_get(body, "events");
    if (events == NULL && json_object_get(body, "type") != NULL) {
        events = json_pack("[O]", body); /* a single event object */
        if (events == NULL) {
            return refuse(e, msg, msglen, API_E_OUT_OF_MEMORY, "out of memory");
        }
    } else if (!json_is_array(events)) {
        return refuse(e, msg, msglen, API_E_BAD_BODY,
                      "\"events\" must be an array of event objects");
    } else {
        json_incref(events);
    }
    n = json_array_size(events);
    if (n == 0 || n > APPEND_MAX_EVENTS) {
        refuse(e, msg, msglen, API_E_BAD_BODY,
               "\"events\" must hold 1 to %d events (got %zu)",
               APPEND_MAX_EVENTS, n);
        goto out_events;
    }
    expected = json_object_get(body, "expected_version");
    if (expected != NULL && !json_is_null(expected)) {
        if (!json_is_integer(expected) || json_integer_value(expected) < 0) {
            refuse(e, msg, msglen, API_E_BAD_BODY,
                   "\"expected_version\" must be a non-negative integer");
            goto out_events;
        }
        exp = (uint64_t)json_integer_value(expected);
    }
    in = calloc(n, sizeof *in);
    texts = calloc(n, sizeof *texts);
    if (in == NULL || texts == NULL) {
        refuse(e, msg, msglen, API_E_OUT_OF_MEMORY, "out of memory");
        goto out_arrays;
    }
    for (i = 0; i < n; i++) {
        if (parseEvent(json_array_get(events, i), i, &in[i], &texts[i], e, msg,
                       msglen) != 0) {
            goto out_arrays;
        }
    }
    found = findRepeatedId(in, n, &i, &j);
    if (found != 0) {
        if (found < 0) {
            refuse(e, msg, msglen, API_E_OUT_OF_MEMORY, "out of memory");
        } else {
            refuse(e, msg, msglen, API_E_BAD_EVENT,
                   "events[%zu].id '%s' repeats events[%zu].id", i, in[i].id,
                   j);
        }
        goto out_arrays;
    }
    if (op_encode_append(stream, expected != NULL && !json_is_null(expected),
                         exp, in, n, op) != 0) {
        refuse(e, msg, msglen, API_E_OUT_OF_MEMORY, "out of memory");
        goto out_arrays;
    }
    *n_events = n;
    rv = 0;

out_arrays:
    for (i = 0; texts != NULL && i < n; i++) {
        free(texts[i]);
    }
    free(texts);
    free(in);
out_events:
    json_decref(events);
    return rv;
}
