/* ledger client library: blocking HTTP/1.1 calls to ledgerd nodes.
 *
 * Used by ledgerctl and by ledgerd itself (snapshot catch-up pulls events
 * from a peer). Responses are parsed with http-parser; no state is shared
 * between calls, so every function is safe to call from any one thread.
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
};

void ledger_http_response_free(struct ledger_http_response *r);

/* One request to `addr` ("HOST:PORT"). `headers` is NULL or
 * "Name: value\r\n" lines; Host, Content-Length and Connection: close are
 * added. timeout_ms bounds connect and the whole exchange. On error returns a
 * LEDGER_CLIENT_* code and writes a one-line reason into err. */
int ledger_http_request(const char *addr, const char *method, const char *path,
                        const char *headers, const char *body, size_t body_len,
                        unsigned timeout_ms, struct ledger_http_response *out,
                        char *err, size_t errlen);

/* Short name of a LEDGER_CLIENT_* code ("connect", "io", ...). */
const char *ledger_client_strerror(int code);

/* Multi-endpoint client: a list of node API addresses and an optional bearer
 * token. Calls go to the first endpoint that accepts a connection; a dead
 * endpoint (connect failure) is skipped, and the endpoint that answered last
 * is tried first next time. */
typedef struct ledger_client ledger_client;

#define LEDGER_CLIENT_TIMEOUT_MS 5000 /* Default per-request timeout. */

/* Create a client for `endpoints_csv` ("HOST:PORT,HOST:PORT,...") and
 * `token` (NULL or "": no Authorization header). Both strings are copied.
 * On success stores the handle in *out and returns 0; on error returns
 * LEDGER_CLIENT_EINVAL/ENOMEM and writes a one-line reason into err. */
int ledger_client_create(const char *endpoints_csv, const char *token,
                         ledger_client **out, char *err, size_t errlen);
void ledger_client_destroy(ledger_client *c);

/* Per-request timeout (connect plus the whole exchange); 0 restores the
 * default. */
void ledger_client_set_timeout(ledger_client *c, unsigned timeout_ms);

size_t ledger_client_endpoint_count(const ledger_client *c);
/* Endpoint i (borrowed, valid until destroy). */
const char *ledger_client_endpoint(const ledger_client *c, size_t i);

/* Send one request, adding "Authorization: Bearer TOKEN" (when a token is
 * set), "Accept: application/json" and, with a body, "Content-Type:
 * application/json". Endpoints are tried in order starting with the last
 * one that answered; an endpoint is skipped when the connection fails, and
 * for GET also when the exchange fails or times out (it is idempotent). Any
 * HTTP status counts as an answer: check out->status. Returns 0, or
 * LEDGER_CLIENT_ENOENDPOINT when no endpoint answered, or another code for a
 * failure that must not be retried blindly (EIO after a POST was sent: the
 * outcome is unknown). The reason is in ledger_client_errmsg(). */
int ledger_client_call(ledger_client *c, const char *method, const char *path,
                       const char *body, size_t body_len,
                       struct ledger_http_response *out);

/* Like ledger_client_call, but only to endpoint i (no fail-over). */
int ledger_client_call_one(ledger_client *c, size_t i, const char *method,
                           const char *path, const char *body, size_t body_len,
                           struct ledger_http_response *out);

/* Start the next call at the endpoint after the one that answered last
 * (e.g. it said 503: no leader in view). */
void ledger_client_rotate(ledger_client *c);

/* Endpoint that answered the last successful call (borrowed), or NULL. */
const char *ledger_client_last_endpoint(const ledger_client *c);

/* One-line reason for the last failed call (borrowed; "" if none). */
const char *ledger_client_errmsg(const ledger_client *c);

#endif /* LEDGER_CLIENT_H */
