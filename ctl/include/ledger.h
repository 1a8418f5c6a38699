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
    LEDGER_CLIENT_EINVAL,   /* Bad argument (e.g. address not HOST:PORT). */
    LEDGER_CLIENT_ENOENDPOINT, /* Every endpoint failed to connect. */
};

struct ledger_http_response
{
    int status;          /* HTTP status. */
    char *content_type;  /* NULL if absent. */
    char *retry_after;   /* NULL if absent. */
    char *body;          /* NUL-terminated (body_len excludes the NUL). */
    size_t body_len;
};

void ledger_http_response_free(struct ledger_http_response *r);

/* One request to `addr` ("HOST:PORT"). `headers` is NULL or
 * "Name: value\r\n" lines; Host, Content-Length and Connection: close are
 * added. timeout_ms bounds connect and the whole exchange. On error returns a
 * LEDGER_CLIENT_* code and writes a one-line reason into err. */
int ledger_http_request(const char *addr, const char *method,
                        const char *path, const char *headers,
                        const char *body, size_t body_len,
                        unsigned timeout_ms, struct ledger_http_response *out,
                        char *err, size_t errlen);

#endif /* LEDGER_CLIENT_H */
