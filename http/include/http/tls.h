/* TLS for libuv streams: OpenSSL contexts built from PEM files, and a
 * session that encrypts and decrypts through memory BIOs, so the owner of
 * the socket keeps its own reads, writes and buffers.
 *
 * - Only TLS 1.3 is offered or accepted.
 * - An http_tls holds two OpenSSL contexts over one set of files: one to
 *   accept (server side; whether client certificates are asked for is
 *   chosen per session) and one to connect (client side; the server's
 *   certificate is always verified against the CA file, and our
 *   certificate is presented).
 * - Reloading: build a fresh http_tls from the files, check it, and move
 *   its contexts into the one in use (http_tls_swap). A session keeps the
 *   context it was created with (OpenSSL reference-counts it), so
 *   connections open during a reload carry on; new sessions use the new
 *   files.
 * - A session never touches a socket: the owner feeds it the bytes read
 *   from the network (http_tls_session_recv), gets plaintext back, hands it
 *   plaintext to send (http_tls_session_send), and after each call writes
 *   out whatever ciphertext is waiting (http_tls_session_pending/take).
 * - Not thread-safe: one loop, one thread (the contexts may be shared by
 *   any number of sessions on that thread).
 */
#ifndef LEDGER_HTTP_TLS_H
#define LEDGER_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "http/buf.h"

typedef struct http_tls http_tls;
typedef struct http_tls_session http_tls_session;

/* Client certificates asked of peers that connect to us. */
enum http_tls_peer_auth {
    HTTP_TLS_PEER_NONE = 0, /* Not asked for. */
    HTTP_TLS_PEER_OPTIONAL, /* Asked for; one that is sent must verify. */
    HTTP_TLS_PEER_REQUIRE,  /* A verified certificate or no connection. */
};

struct http_tls_config {
    const char *cert_file; /* PEM: our certificate (and chain); NULL: none
                              (a client that is not asked for one). */
    const char *key_file;  /* PEM: its private key (with cert_file). */
    const char *ca_file;   /* PEM: the CA(s) that sign peers' certificates;
                              NULL: the system's CAs. */
};

/* Build the contexts; the paths are copied. A server (accepting) needs a
 * certificate and a CA file. On failure returns -1 and writes a one-line
 * reason naming the file into err. */
int http_tls_create(const struct http_tls_config *cfg, http_tls **out,
                    char *err, size_t errlen);

/* Move the contexts (and file names) of `fresh` into `t`, then free
 * `fresh`. New sessions of t use them; open sessions keep the old ones. */
void http_tls_swap(http_tls *t, http_tls *fresh);

/* Our certificate's subject CN into buf (0), or -1 if it has none. */
int http_tls_cert_cn(const http_tls *t, char *buf, size_t len);

/* Our certificate names IP address `ip` in its subjectAltName. */
bool http_tls_cert_has_ip(const http_tls *t, const char *ip);

/* Release the contexts; sessions still open keep theirs until freed. */
void http_tls_free(http_tls *t);

/* "subject CN, not after DATE" of our certificate, for logs. */
void http_tls_describe(const http_tls *t, char *buf, size_t len);

/* ---- Sessions ----------------------------------------------------------- */

/* A session for a connection we accepted, asking for a client
 * certificate per `peer_auth` (enum http_tls_peer_auth). NULL on OOM. */
http_tls_session *http_tls_session_accept(http_tls *t, int peer_auth);

/* A session for a connection we opened. expect_ip (may be NULL): the
 * server's certificate must name this IP address in its subjectAltName.
 * NULL on OOM or a malformed expect_ip. */
http_tls_session *http_tls_session_connect(http_tls *t, const char *expect_ip);

void http_tls_session_free(http_tls_session *s);

enum {
    HTTP_TLS_OK = 0,
    HTTP_TLS_CLOSED = 1, /* The peer sent close_notify: no more data. */
    HTTP_TLS_ERROR = -1, /* Handshake or record failure: drop the
                            connection (reason: http_tls_session_error). */
};

/* Feed `len` bytes read from the network; every byte of plaintext they
 * complete is appended to `plain`. Returns HTTP_TLS_OK, HTTP_TLS_CLOSED or
 * HTTP_TLS_ERROR.
 * Take the waiting ciphertext afterwards in every case (an alert may be
 * waiting after an error). */
int http_tls_session_recv(http_tls_session *s, const char *data, size_t len,
                          struct http_buf *plain);

/* Encrypt `len` bytes of plaintext. Before the handshake completes they
 * are held and sent once it does. HTTP_TLS_OK or HTTP_TLS_ERROR. */
int http_tls_session_send(http_tls_session *s, const char *data, size_t len);

/* Start the handshake (client side: produces the ClientHello). */
int http_tls_session_start(http_tls_session *s);

/* Queue a close_notify alert. */
void http_tls_session_shutdown(http_tls_session *s);

/* Bytes of ciphertext waiting to be written to the network. */
size_t http_tls_session_pending(const http_tls_session *s);

/* Move up to `len` waiting bytes of ciphertext into buf; how many. */
size_t http_tls_session_take(http_tls_session *s, char *buf, size_t len);

/* The handshake has completed (and, on the server, any client certificate
 * was verified). */
bool http_tls_session_established(const http_tls_session *s);

/* Why the session failed: "certificate verify failed: self-signed
 * certificate", "not TLS (plaintext?)", "peer closed during the handshake",
 * ... ("" while it has not failed). */
const char *http_tls_session_error(const http_tls_session *s);

/* The peer's verified certificate, once established: its subject common
 * name into buf (0), or -1 if the peer sent none. */
int http_tls_session_peer_cn(const http_tls_session *s, char *buf, size_t len);

/* The peer's certificate names IP address `ip` in its subjectAltName. */
bool http_tls_session_peer_has_ip(const http_tls_session *s, const char *ip);

#endif /* LEDGER_HTTP_TLS_H */
