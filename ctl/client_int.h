/* Private to the client library (client.c, client_multi.c). */
#ifndef LEDGER_CLIENT_INT_H
#define LEDGER_CLIENT_INT_H

#include <stddef.h>

#include "ledger.h"

/* TLS files for https endpoints (NULL: libcurl's defaults). */
struct client_tls {
    char *ca;
    char *cert;
    char *key;
};

/* A libcurl easy handle (void * keeps curl.h out of this header). */
void *client__easy_new(void);
void client__easy_free(void *easy);

/* Parse "HOST:PORT", "http://HOST:PORT" or "https://HOST:PORT". */
int client__parse_endpoint(const char *addr, const char **hostport, int *https);

/* A streamed body (ledger_client_download): the pieces of a 2xx answer go
 * to fn as they arrive instead of into out->body. */
struct client_sink {
    ledger_sink_fn fn;
    void *arg;
    unsigned stall_ms; /* Fail when no byte arrives for this long; there
                          is no bound on the whole exchange. */
    int stopped;       /* OUT: fn asked to stop. */
};

/* One exchange on `easy` (its connection cache is reused between calls
 * unless one_shot). As ledger_http_request; with a sink (else NULL), as
 * ledger_client_download. */
int client__exchange(void *easy, const struct client_tls *tls, int one_shot,
                     const char *addr, const char *method, const char *path,
                     const char *headers, const char *body, size_t body_len,
                     unsigned timeout_ms, struct ledger_http_response *out,
                     char *err, size_t errlen, struct client_sink *sink);

#endif /* LEDGER_CLIENT_INT_H */
