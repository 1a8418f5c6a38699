/* Answers: every response of the API leaves through replyRaw(), which
 * records the request's metrics and access-log line, sends, and frees the
 * request context. Errors come from one table (errors.h).
 *
 * Invariants:
 * - Every 429 and 503 carries "Retry-After" (also 409
 *   change_in_progress: the change ends soon): 1 second, or
 *   api_req.retry_after_s when set (a rate-limited token: the seconds
 *   until its bucket holds a request again).
 * - A request that may already have been applied (api_write.maybe_applied)
 *   never answers a 503 or 429 that says "nothing happened": it answers
 *   outcome_unknown instead, whatever stopped the retry.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "metrics.h"

static const struct {
    int status;
    const char *code;
} errorTable[API_E__COUNT] = {
#define REPLY__ERROR_ROW(name, status, code) {status, code},
    API_ERRORS(REPLY__ERROR_ROW)
#undef REPLY__ERROR_ROW
};

const char *api_error_code(enum api_error e)
{
    return errorTable[e].code;
}

int api_error_status(enum api_error e)
{
    return errorTable[e].status;
}

/* ---- Replies ---------------------------------------------------------- */

/* Record metrics and the access log line, then send and free. The request
 * must not be touched after http_response_send (it frees it). */
static void replyRaw(struct api_req *a, int status, const char *ctype,
                     const char *body, size_t len, const char *extra)
{
    double secs = (double)(uv_hrtime() - a->start_ns) / 1e9;
    char headers[512];
    int level = status >= 500 ? LOG_WARN : LOG_DEBUG;

    metrics_request(a->route, a->method, status);
    if (strcmp(a->route, "append") == 0 && status == 201) {
        metrics_append_latency(secs, a->n_events);
    }
    if (ledger_log_enabled(level)) {
        ledger_log(level, a->rid, "%s %s -> %d (%.1f ms)", a->method,
                   http_request_path(a->http), status, secs * 1000);
    }
    snprintf(headers, sizeof headers, "X-Request-Id: %s\r\n%s", a->rid,
             extra != NULL ? extra : "");
    http_response_send(a->http, status, ctype, body, len, headers);
    free(a);
}

void api_reply_raw(struct api_req *a, int status, const char *ctype,
                   const char *body, size_t len, const char *extra_headers)
{
    replyRaw(a, status, ctype, body, len, extra_headers);
}

http_request *api_reply_stream(struct api_req *a, int status, const char *ctype,
                               uint64_t len, const char *extra_headers, int *rv)
{
    http_request *req = a->http;
    char headers[1024];

    metrics_request(a->route, a->method, status);
    ledger_log(LOG_INFO, a->rid, "%s %s -> %d, streaming %llu bytes", a->method,
               http_request_path(a->http), status, (unsigned long long)len);
    snprintf(headers, sizeof headers, "X-Request-Id: %s\r\n%s", a->rid,
             extra_headers != NULL ? extra_headers : "");
    *rv = http_response_start(req, status, ctype, len, headers);
    free(a);
    return req;
}

void api_reply_json(struct api_req *a, int status, json_t *body,
                    const char *extra_headers)
{
    size_t len = 0;
    char *out = codec_encode(a->out_fmt, body, &len);
    json_decref(body);
    if (out == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
            "memory encoding the response\"}}";
        replyRaw(a, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    replyRaw(a, status, codec_content_type(a->out_fmt), out, len,
             extra_headers);
    free(out);
}

static void replyErrorV(struct api_req *a, enum api_error e, json_t *extra,
                        const char *fmt, va_list ap)
{
    char msg[512];
    char retry[40] = "";
    json_t *err;
    size_t off = 0;
    int status = api_error_status(e);

    if (a->w.maybe_applied && (status == 503 || status == 429)) {
        /* An earlier attempt may have been applied: whatever stopped the
         * retry, "nothing was appended" would be false. */
        e = API_E_OUTCOME_UNKNOWN;
        status = api_error_status(e);
        off = (size_t)snprintf(msg, sizeof msg,
                               "an earlier attempt may have been applied "
                               "(retry with the same ids): ");
    }
    vsnprintf(msg + off, sizeof msg - off, fmt, ap);
    err = json_pack("{s:s, s:s}", "code", api_error_code(e), "message", msg);
    if (extra != NULL) {
        json_object_update(err, extra);
        json_decref(extra);
    }
    if (status == 503 || status == 429 || e == API_E_CHANGE_IN_PROGRESS) {
        snprintf(retry, sizeof retry, "Retry-After: %u\r\n",
                 a->retry_after_s > 0 ? a->retry_after_s : 1);
    }
    api_reply_json(a, status, json_pack("{s:o}", "error", err),
                   retry[0] != '\0' ? retry : NULL);
}

void api_reply_error(struct api_req *a, enum api_error e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    replyErrorV(a, e, NULL, fmt, ap);
    va_end(ap);
}

void api_reply_error_obj(struct api_req *a, enum api_error e, json_t *extra,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    replyErrorV(a, e, extra, fmt, ap);
    va_end(ap);
}

void api_reply_store_error(struct api_req *a)
{
    api_reply_error(a, API_E_STORE_ERROR, "%s",
                    ledger_store_errmsg(a->n->store));
}

void api_method_not_allowed(struct api_req *a, const char *allow)
{
    char extra[96];
    char msg[160];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    snprintf(msg, sizeof msg, "%s is not allowed here; allowed: %s", a->method,
             allow);
    api_reply_json(a, api_error_status(API_E_METHOD_NOT_ALLOWED),
                   json_pack("{s:{s:s, s:s}}", "error", "code",
                             api_error_code(API_E_METHOD_NOT_ALLOWED),
                             "message", msg),
                   extra);
}

/* ---- Input helpers ---------------------------------------------------- */

json_t *api_json_time(int64_t unix_ms)
{
    char buf[40];
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    size_t n;

    gmtime_r(&secs, &tm);
    n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(unix_ms % 1000));
    return json_string(buf);
}

json_t *api_body(struct api_req *a)
{
    size_t len = 0;
    const char *body = http_request_body(a->http, &len);
    const char *ctype = http_request_header(a->http, "Content-Type");
    char err[256];
    json_t *v;

    if (len == 0) {
        api_reply_error(a, API_E_EMPTY_BODY,
                        "request body is empty: send "
                        "a JSON or MessagePack object");
        return NULL;
    }
    /* Anything but MessagePack is read as JSON (curl -d sends a form
     * content type by default). */
    v = codec_decode(codec_format_from_header(ctype), body, len, err,
                     sizeof err);
    if (v == NULL) {
        api_reply_error(a, API_E_MALFORMED_BODY, "%s", err);
    }
    return v;
}

int api_query_u64(struct api_req *a, const char *name, uint64_t def,
                  uint64_t max, uint64_t *out)
{
    const char *v = http_request_query_param(a->http, name);
    char *end;
    unsigned long long x;

    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (*v < '0' || *v > '9' || strlen(v) > 19) {
        goto bad;
    }
    x = strtoull(v, &end, 10);
    if (*end != '\0') {
        goto bad;
    }
    *out = x > max ? max : x;
    return 0;
bad:
    api_reply_error(a, API_E_BAD_QUERY,
                    "query parameter %s='%s' must be a non-negative integer",
                    name, v);
    return -1;
}
