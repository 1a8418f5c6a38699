/* ledger client library: blocking HTTP calls to ledgerd nodes, made with
 * libcurl's easy interface (keep-alive, timeouts, TLS).
 *
 * Used by ledgerctl. A ledger_client is used by one thread at a time;
 * ledger_http_request shares nothing and may be called from any thread.
 *
 * Ownership: every string argument is borrowed for the duration of the
 * call; every buffer returned through an out-parameter is malloc'ed and
 * owned by the caller (free with ledger_http_response_free or free()).
 */
#ifndef LEDGER_CLIENT_H
#define LEDGER_CLIENT_H

#include <stddef.h>

/* Error codes (0 is success). */
enum {
    LEDGER_CLIENT_OK = 0,
    LEDGER_CLIENT_ECONNECT, /* Could not connect (dead endpoint). */
    LEDGER_CLIENT_EIO,      /* Send/receive failed or timed out. */
    LEDGER_CLIENT_EPROTO,   /* Malformed HTTP response. */
    LEDGER_CLIENT_ENOMEM,
    LEDGER_CLIENT_EINVAL,      /* Bad argument (e.g. address not HOST:PORT). */
    LEDGER_CLIENT_ENOENDPOINT, /* Every endpoint failed to connect. */
};

struct ledger_http_response {
    int status;         /* HTTP status. */
    char *content_type; /* NULL if absent. */
    char *retry_after;  /* NULL if absent. */
    int duplicate;      /* The X-Ledger-Duplicate header was present. */
    char *body;         /* NUL-terminated (body_len excludes the NUL). */
    size_t body_len;
    char *headers; /* Every header line of the answer, "Name: value\r\n". */
};

void ledger_http_response_free(struct ledger_http_response *r);

/* Value of header `name` of the answer (case-insensitive), malloc'ed
 * (free it); NULL when absent or out of memory. */
char *ledger_http_response_header(const struct ledger_http_response *r,
                                  const char *name);

/* One request to `addr` ("HOST:PORT", "http://HOST:PORT" or
 * "https://HOST:PORT"). `headers` is NULL or "Name: value\r\n" lines; Host,
 * Content-Length and Connection: close are added. timeout_ms bounds the
 * whole exchange, connecting at most min(timeout_ms,
 * LEDGER_CLIENT_CONNECT_MS). On error returns a LEDGER_CLIENT_* code and
 * writes a one-line reason into err: ECONNECT when nothing was sent (the
 * request reached no server), EIO when it failed or timed out after sending
 * (the outcome is unknown), EPROTO for a malformed or cut response. */
#define LEDGER_CLIENT_CONNECT_MS 1000 /* Bound on connecting. */
int ledger_http_request(const char *addr, const char *method, const char *path,
                        const char *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, struct ledger_http_response *out,
                        char *err, size_t errlen);

/* The same with TLS files (each may be NULL): the CA that signs the
 * server's certificate, and a client certificate and key. With any of
 * them, an `addr` without a scheme is https://addr. */
int ledger_http_request_tls(const char *addr, const char *method,
                            const char *path, const char *headers,
                            const char *body, size_t body_len,
                            unsigned timeout_ms, const char *ca_file,
                            const char *cert_file, const char *key_file,
                            struct ledger_http_response *out, char *err,
                            size_t errlen);

/* Short name of a LEDGER_CLIENT_* code ("connect", "io", ...). */
const char *ledger_client_strerror(int code);

/* Multi-endpoint client: a list of node API addresses and an optional bearer
 * token. Calls go to the first endpoint that answers; a dead endpoint
 * (connect failure) is skipped, and so is one that does not answer in time
 * when the call is safe to repeat (LEDGER_CALL_RETRY_SAFE); the endpoint
 * that answered last is tried first next time. Connections are kept alive
 * between calls. */
typedef struct ledger_client ledger_client;

#define LEDGER_CLIENT_TIMEOUT_MS 5000 /* Default per-request timeout. */

/* Create a client for `endpoints_csv` ("HOST:PORT,HOST:PORT,...") and
 * `token` (NULL or "": no Authorization header). Both strings are copied.
 * On success stores the handle in *out and returns 0; on error returns
 * LEDGER_CLIENT_EINVAL/ENOMEM and writes a one-line reason into err. */
int ledger_client_create(const char *endpoints_csv, const char *token,
                         ledger_client **out, char *err, size_t errlen);
void ledger_client_destroy(ledger_client *c);

/* Per-request timeout (connect plus the whole exchange, per endpoint
 * tried); 0 restores the default. */
void ledger_client_set_timeout(ledger_client *c, unsigned timeout_ms);

/* TLS files for https endpoints: the CA bundle that signs the nodes'
 * certificates, and a client certificate and key (each may be NULL).
 * Copied. Once any is set, an endpoint written HOST:PORT (no scheme) is
 * https://HOST:PORT; "http://HOST:PORT" stays plain. The node's
 * certificate must name HOST (an IP address: in its subjectAltName).
 * 0 or LEDGER_CLIENT_ENOMEM. */
int ledger_client_set_tls(ledger_client *c, const char *ca_file,
                          const char *cert_file, const char *key_file);

size_t ledger_client_endpoint_count(const ledger_client *c);
/* Endpoint i (borrowed, valid until destroy). */
const char *ledger_client_endpoint(const ledger_client *c, size_t i);

/* Send one request, adding "Authorization: Bearer TOKEN" (when a token is
 * set), "Accept: application/json" and, with a body, "Content-Type:
 * application/json". Endpoints are tried in order starting with the last
 * one that answered; an endpoint is skipped when the connection fails, and,
 * for a call that is safe to repeat, also when the exchange fails or gets
 * no answer within the timeout. GET and HEAD are safe; other calls are safe
 * with LEDGER_CALL_RETRY_SAFE (an append whose events all carry ids: the
 * node returns the first result to a repeat; a checkpoint PUT). Any HTTP
 * status counts as an answer: check out->status. Returns 0, or
 * LEDGER_CLIENT_ENOENDPOINT when no endpoint answered, or another code for
 * a failure that must not be retried blindly (EIO after an unsafe call was
 * sent: the outcome is unknown). The reason is in ledger_client_errmsg(). */
#define LEDGER_CALL_RETRY_SAFE 0x1 /* Delivering it twice is harmless. */
int ledger_client_call(ledger_client *c, const char *method, const char *path,
                       const char *body, size_t body_len,
                       struct ledger_http_response *out);
int ledger_client_call_flags(ledger_client *c, const char *method,
                             const char *path, const char *body,
                             size_t body_len, unsigned flags,
                             struct ledger_http_response *out);

/* Like ledger_client_call, but only to endpoint i (no fail-over). */
int ledger_client_call_one(ledger_client *c, size_t i, const char *method,
                           const char *path, const char *body, size_t body_len,
                           struct ledger_http_response *out);

/* Start the next call at the endpoint after the one that answered last
 * (e.g. it said 503: no leader in view). */
void ledger_client_rotate(ledger_client *c);

/* A streamed download: GET `path` from `addr` (any node, with this
 * client's token and TLS files; no fail-over), the body of a 2xx answer
 * handed to sink piece by piece as it arrives, never held whole (an
 * answer of another status is kept in out->body, as for a call: an error
 * is small). sink returns 0 to go on, anything else to stop (the call then
 * fails with LEDGER_CLIENT_EIO). There is no bound on the whole transfer;
 * it fails when no byte arrives for stall_ms (0: 300000), e.g. while the
 * node prepares a large body before its first byte. A body cut short
 * fails with LEDGER_CLIENT_EPROTO. out gets the status and the headers
 * (ledger_http_response_header). Reason in ledger_client_errmsg(). */
typedef int (*ledger_sink_fn)(void *arg, const char *data, size_t len);
int ledger_client_download(ledger_client *c, const char *addr, const char *path,
                           unsigned stall_ms, ledger_sink_fn sink, void *arg,
                           struct ledger_http_response *out);

/* Endpoint that answered the last successful call (borrowed), or NULL. */
const char *ledger_client_last_endpoint(const ledger_client *c);

/* One-line reason for the last failed call (borrowed; "" if none). */
const char *ledger_client_errmsg(const ledger_client *c);

#endif /* LEDGER_CLIENT_H */
