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

/* One exchange on `easy` (its connection cache is reused between calls
 * unless one_shot). As ledger_http_request. */
int client__exchange(void *easy, const struct client_tls *tls, int one_shot,
                     const char *addr, const char *method, const char *path,
                     const char *headers, const char *body, size_t body_len,
                     unsigned timeout_ms, struct ledger_http_response *out,
                     char *err, size_t errlen);

#endif /* LEDGER_CLIENT_INT_H */
