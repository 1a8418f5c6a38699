/* The same tiny API as h2o_server.c, on ledger's http/server.c (http-parser
 * on libuv): GET answers a 120-byte JSON body, POST echoes its body. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server.h"

static const char body[] =
    "{\"stream\":\"bench\",\"first_seq\":1,\"last_seq\":1,\"position\":1,"
    "\"hash\":\"00000000000000000000000000000000000000000000000\"}";

static void handler(void *arg, http_request *req)
{
    size_t len = 0;
    const char *in = http_request_body(req, &len);
    (void)arg;
    if (strcmp(http_request_method(req), "POST") == 0) {
        http_response_send(req, 200, "application/json", in, len, NULL);
    } else {
        http_response_send(req, 200, "application/json", body, sizeof body - 1,
                           NULL);
    }
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    http_server *srv;
    char addr[64];
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "28081");
    if (http_server_start(&loop, addr, 1 << 20, handler, NULL, &srv, err,
                          sizeof err) != 0) {
        fprintf(stderr, "ours_server: %s\n", err);
        return 1;
    }
    return uv_run(&loop, UV_RUN_DEFAULT);
}
