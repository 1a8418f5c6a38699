/* Multi-endpoint client: fail-over across node API addresses, bearer token.
 *
 * Endpoint choice: a call starts at the endpoint that answered last (the
 * "sticky" one) and walks the list once. A connect failure always moves on
 * (nothing was sent); a failed or timed-out exchange moves on only for a
 * call that is safe to repeat (GET, HEAD, or LEDGER_CALL_RETRY_SAFE),
 * because an unsafe one that was sent may have been applied. Any HTTP
 * status is an answer. One libcurl easy handle per client keeps the
 * connections alive between calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define CLIENT__ERRMSG_SIZE 1024 /* Room for one reason per endpoint. */

struct ledger_client {
    char **endpoints;
    size_t n_endpoints;
    size_t sticky;      /* Where the next call starts. */
    size_t last;        /* Endpoint that answered last. */
    int answered;       /* last is meaningful. */
    char *headers;      /* Authorization and Accept lines. */
    char *headers_body; /* The same plus Content-Type. */
    unsigned timeout_ms;
    void *easy; /* libcurl easy handle, with its connection cache. */
    struct client_tls tls;
    char errmsg[CLIENT__ERRMSG_SIZE];
};

static char *trimDup(const char *s, size_t n)
{
    char *out;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        n--;
    }
    out = malloc(n + 1);
    if (out != NULL) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

int ledger_client_create(const char *endpoints_csv, const char *token,
                         ledger_client **out, char *err, size_t errlen)
{
    struct ledger_client *c;
    const char *p;
    const char *hostport;
    int https;
    size_t n = 1;
    size_t hlen;

    if (endpoints_csv == NULL || out == NULL) {
        snprintf(err, errlen, "no endpoints given");
        return LEDGER_CLIENT_EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        goto err_nomem;
    }
    for (p = endpoints_csv; *p != '\0'; p++) {
        n += *p == ',';
    }
    c->endpoints = calloc(n, sizeof *c->endpoints);
    if (c->endpoints == NULL) {
        goto err_after_alloc;
    }
    p = endpoints_csv;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char *ep = trimDup(p, len);
        if (ep == NULL) {
            goto err_after_alloc;
        }
        if (ep[0] == '\0') {
            free(ep);
        } else if (client__parse_endpoint(ep, &hostport, &https) != 0) {
            snprintf(err, errlen,
                     "bad endpoint '%s': expected HOST:PORT, e.g. "
                     "127.0.0.1:8001",
                     ep);
            free(ep);
            ledger_client_destroy(c);
            return LEDGER_CLIENT_EINVAL;
        } else {
            c->endpoints[c->n_endpoints++] = ep;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    if (c->n_endpoints == 0) {
        snprintf(err, errlen, "no endpoints given: expected HOST:PORT[,...]");
        ledger_client_destroy(c);
        return LEDGER_CLIENT_EINVAL;
    }
    hlen = (token != NULL ? strlen(token) : 0) + 128;
    c->headers = malloc(hlen);
    c->headers_body = malloc(hlen + 64);
    if (c->headers == NULL || c->headers_body == NULL) {
        goto err_after_alloc;
    }
    if (token != NULL && token[0] != '\0') {
        snprintf(c->headers, hlen,
                 "Authorization: Bearer %s\r\nAccept: application/json\r\n",
                 token);
    } else {
        snprintf(c->headers, hlen, "Accept: application/json\r\n");
    }
    snprintf(c->headers_body, hlen + 64, "%sContent-Type: application/json\r\n",
             c->headers);
    c->timeout_ms = LEDGER_CLIENT_TIMEOUT_MS;
    c->easy = client__easy_new();
    if (c->easy == NULL) {
        goto err_after_alloc;
    }
    *out = c;
    return LEDGER_CLIENT_OK;

err_after_alloc:
    ledger_client_destroy(c);
err_nomem:
    snprintf(err, errlen, "out of memory");
    return LEDGER_CLIENT_ENOMEM;
}

void ledger_client_destroy(ledger_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        free(c->endpoints[i]);
    }
    free(c->endpoints);
    free(c->headers);
    free(c->headers_body);
    free(c->tls.ca);
    free(c->tls.cert);
    free(c->tls.key);
    if (c->easy != NULL) {
        client__easy_free(c->easy);
    }
    free(c);
}

static int dupOpt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    *out = strdup(s);
    return *out == NULL ? -1 : 0;
}

int ledger_client_set_tls(ledger_client *c, const char *ca_file,
                          const char *cert_file, const char *key_file)
{
    struct client_tls t = {NULL, NULL, NULL};
    if (dupOpt(ca_file, &t.ca) != 0 || dupOpt(cert_file, &t.cert) != 0 ||
        dupOpt(key_file, &t.key) != 0) {
        free(t.ca);
        free(t.cert);
        return LEDGER_CLIENT_ENOMEM;
    }
    free(c->tls.ca);
    free(c->tls.cert);
    free(c->tls.key);
    c->tls = t;
    return 0;
}

void ledger_client_set_timeout(ledger_client *c, unsigned timeout_ms)
{
    c->timeout_ms = timeout_ms != 0 ? timeout_ms : LEDGER_CLIENT_TIMEOUT_MS;
}

size_t ledger_client_endpoint_count(const ledger_client *c)
{
    return c->n_endpoints;
}

const char *ledger_client_endpoint(const ledger_client *c, size_t i)
{
    return i < c->n_endpoints ? c->endpoints[i] : NULL;
}

const char *ledger_client_last_endpoint(const ledger_client *c)
{
    return c->answered ? c->endpoints[c->last] : NULL;
}

void ledger_client_rotate(ledger_client *c)
{
    c->sticky = (c->sticky + 1) % c->n_endpoints;
}

const char *ledger_client_errmsg(const ledger_client *c)
{
    return c->errmsg;
}

int ledger_client_call_one(ledger_client *c, size_t i, const char *method,
                           const char *path, const char *body, size_t body_len,
                           struct ledger_http_response *out)
{
    int rv;
    if (i >= c->n_endpoints) {
        snprintf(c->errmsg, sizeof c->errmsg, "no endpoint %zu", i);
        return LEDGER_CLIENT_EINVAL;
    }
    c->errmsg[0] = '\0';
    rv = client__exchange(c->easy, &c->tls, 0, c->endpoints[i], method, path,
                          body != NULL ? c->headers_body : c->headers, body,
                          body_len, c->timeout_ms, out, c->errmsg,
                          sizeof c->errmsg, NULL);
    if (rv == LEDGER_CLIENT_OK) {
        c->sticky = i;
        c->last = i;
        c->answered = 1;
    }
    return rv;
}

int ledger_client_call(ledger_client *c, const char *method, const char *path,
                       const char *body, size_t body_len,
                       struct ledger_http_response *out)
{
    return ledger_client_call_flags(c, method, path, body, body_len, 0, out);
}

int ledger_client_call_flags(ledger_client *c, const char *method,
                             const char *path, const char *body,
                             size_t body_len, unsigned flags,
                             struct ledger_http_response *out)
{
    char reasons[CLIENT__ERRMSG_SIZE - 32];
    size_t used = 0;
    size_t start = c->sticky;
    int idempotent = strcmp(method, "GET") == 0 ||
                     strcmp(method, "HEAD") == 0 ||
                     (flags & LEDGER_CALL_RETRY_SAFE) != 0;

    reasons[0] = '\0';
    for (size_t k = 0; k < c->n_endpoints; k++) {
        size_t i = (start + k) % c->n_endpoints;
        int rv =
            ledger_client_call_one(c, i, method, path, body, body_len, out);
        if (rv == LEDGER_CLIENT_OK) {
            return rv;
        }
        if (rv != LEDGER_CLIENT_ECONNECT &&
            !(idempotent &&
              (rv == LEDGER_CLIENT_EIO || rv == LEDGER_CLIENT_EPROTO))) {
            return rv;
        }
        if (used < sizeof reasons) {
            int n = snprintf(reasons + used, sizeof reasons - used, "%s%s",
                             used > 0 ? "; " : "", c->errmsg);
            if (n > 0) {
                used += (size_t)n;
            }
        }
    }
    snprintf(c->errmsg, sizeof c->errmsg, "no endpoint answered (%s)", reasons);
    return LEDGER_CLIENT_ENOENDPOINT;
}

int ledger_client_download(ledger_client *c, const char *addr, const char *path,
                           unsigned stall_ms, ledger_sink_fn sink, void *arg,
                           struct ledger_http_response *out)
{
    struct client_sink s = {sink, arg, stall_ms != 0 ? stall_ms : 300000, 0};
    c->errmsg[0] = '\0';
    /* The timeout bounds connecting only (see client__exchange). */
    return client__exchange(c->easy, &c->tls, 0, addr, "GET", path, c->headers,
                            NULL, 0, c->timeout_ms, out, c->errmsg,
                            sizeof c->errmsg, &s);
}
