/* The same tiny API as ours_server.c, on libh2o's libuv build: GET answers
 * a 120-byte JSON body, POST echoes its body as the answer. One loop, one
 * thread. For the server comparison in docs/architecture.md (README). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <uv.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static const char body[] =
    "{\"stream\":\"bench\",\"first_seq\":1,\"last_seq\":1,\"position\":1,"
    "\"hash\":\"00000000000000000000000000000000000000000000000\"}";

static int onReq(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_send_inline(req, req->entity.base, req->entity.len);
    } else {
        h2o_send_inline(req, body, sizeof body - 1);
    }
    return 0;
}

static void onAccept(uv_stream_t *listener, int status)
{
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status != 0) {
        return;
    }
    conn = h2o_mem_alloc(sizeof *conn);
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    static uv_loop_t loop;
    static uv_tcp_t listener;
    struct sockaddr_in addr;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;

    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&config);
    host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")),
                                    65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof *handler);
    handler->on_req = onReq;
    uv_loop_init(&loop);
    h2o_context_init(&ctx, &loop, &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 28080, &addr);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 1024, onAccept) != 0) {
        fprintf(stderr, "h2o_server: cannot listen\n");
        return 1;
    }
    return uv_run(&loop, UV_RUN_DEFAULT);
}
