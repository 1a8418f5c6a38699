/* Fuzz target: the HTTP/1.1 request parser (http/server.c, through the
 * socket-less seam http_server_parse: the same parser code a connection
 * runs). Input: the bytes a client sends on one connection, any number of
 * pipelined requests.
 *
 * Properties: the parse ends with 0 or a status the server answers before
 * closing (400, 413, 431, 500); each complete request has a method, a
 * NUL-free path, a query, and a body no larger than the limit; every
 * accessor can be called on it. */
#include <string.h>

#include "fuzz.h"
#include "http/server.h"

#define FUZZ_MAX_BODY 4096 /* Small, so that 413 is reachable. */

static void onRequest(void *arg, http_request *req)
{
    static const char *params[] = {"from", "limit", "consistency", "wait_ms",
                                   ""};
    static const char *headers[] = {"Authorization", "Content-Type", "Accept",
                                    "X-Request-Id",  "Expect",       ""};
    size_t *count = arg;
    size_t len = 1;
    const char *body;
    const char *path = http_request_path(req);

    (*count)++;
    CHECK(http_request_method(req) != NULL);
    CHECK(path != NULL && http_request_query(req) != NULL);
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        const char *v = http_request_query_param(req, params[i]);
        CHECK(v == NULL || strlen(v) < 1u << 30);
    }
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        const char *v = http_request_header(req, headers[i]);
        CHECK(v == NULL || strlen(v) < 1u << 30);
    }
    body = http_request_body(req, &len);
    CHECK(body != NULL && len <= FUZZ_MAX_BODY);
    CHECK(!http_request_connected(req));
    CHECK(http_request_peer(req) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t count = 0;
    int rv = http_server_parse((const char *)data, size, FUZZ_MAX_BODY,
                               onRequest, &count);

    CHECK(rv == 0 || rv == 400 || rv == 413 || rv == 431 || rv == 500);
    return 0;
}
