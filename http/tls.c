/* TLS contexts and memory-BIO sessions (see http/tls.h).
 *
 * A session is one SSL object between two memory BIOs: `in` holds
 * ciphertext read from the network that OpenSSL has not consumed yet,
 * `out` the ciphertext OpenSSL produced that the owner has not taken yet.
 * Nothing blocks and nothing touches a socket: an empty `in` reads as
 * "retry" (BIO_set_mem_eof_return -1), so SSL_do_handshake and SSL_read
 * stop with SSL_ERROR_WANT_READ when they need more bytes.
 *
 * Invariants:
 * - OpenSSL's per-thread error queue is empty before every SSL call we make
 *   (ERR_clear_error), so the reason we report is the one of this call and
 *   not a leftover of another library on the thread (libcurl).
 * - Plaintext given before the handshake completes waits in `held` and is
 *   encrypted, in order, right after it completes.
 * - The accepting side rejects a first byte that cannot open a TLS record
 *   (0x16, handshake) before OpenSSL parses anything: a plaintext peer gets
 *   a clear reason instead of "wrong version number".
 */
#include "http/tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS__RECORD_HANDSHAKE 0x16 /* First byte of a ClientHello record. */
#define TLS__READ_CHUNK 16384      /* Plaintext bytes per SSL_read. */

struct http_tls {
    SSL_CTX *accept;  /* Server side. */
    SSL_CTX *connect; /* Client side. */
    char *cert_file;
    char *key_file;
    char *ca_file;
};

struct http_tls_session {
    SSL *ssl;
    BIO *in;  /* Network -> OpenSSL (owned by ssl). */
    BIO *out; /* OpenSSL -> network (owned by ssl). */
    bool server;
    bool established;
    bool failed;
    bool saw_first_byte;
    struct http_buf held; /* Plaintext sent before the handshake ended. */
    char err[200];
};

/* The most telling reason on OpenSSL's error queue ("" if none), then an
 * empty queue: the first entry that says more than "PEM lib" or "system
 * lib" (a missing file reads "No such file or directory", junk in a PEM
 * file "no start line"). */
static void sslReason(char *buf, size_t len)
{
    unsigned long e;
    bool found = false;

    snprintf(buf, len, "unknown error");
    while ((e = ERR_get_error()) != 0) {
        const char *r;
        if (found) {
            continue;
        }
        if (ERR_GET_LIB(e) == ERR_LIB_SYS) {
            snprintf(buf, len, "%s", strerror(ERR_GET_REASON(e)));
            found = true;
            continue;
        }
        r = ERR_reason_error_string(e);
        if (r == NULL) {
            ERR_error_string_n(e, buf, len);
            continue;
        }
        snprintf(buf, len, "%s", r);
        found = strcmp(r, "PEM lib") != 0 && strcmp(r, "system lib") != 0;
    }
}

/* Empty OpenSSL's error queue of this thread. ERR_clear_error walks every
 * slot of the queue; checking first costs one read when (as nearly always)
 * it is empty already: measured 9% of the time of a small-record exchange
 * without the check. */
static void errClear(void)
{
    if (ERR_peek_error() != 0) {
        ERR_clear_error();
    }
}

static int noPassword(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0; /* Encrypted keys are not supported: never prompt. */
}

static SSL_CTX *ctxBuild(const struct http_tls *t, bool server, char *err,
                         size_t errlen)
{
    SSL_CTX *ctx;
    char why[160];

    errClear();
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_default_passwd_cb(ctx, noPassword);
    if (t->cert_file != NULL &&
        SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "certificate %s: %s", t->cert_file, why);
        goto err_after_ctx;
    }
    if (t->key_file != NULL &&
        SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1) {
        sslReason(why, sizeof why);
        if (strstr(why, "mismatch") != NULL) {
            snprintf(err, errlen,
                     "private key %s does not match certificate %s",
                     t->key_file, t->cert_file);
        } else {
            snprintf(err, errlen, "private key %s: %s", t->key_file, why);
        }
        goto err_after_ctx;
    }
    if (t->cert_file != NULL && SSL_CTX_check_private_key(ctx) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "private key %s does not match certificate %s",
                 t->key_file, t->cert_file);
        goto err_after_ctx;
    }
    if (t->ca_file == NULL) {
        SSL_CTX_set_default_verify_paths(ctx); /* the system's CAs */
    } else if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "CA file %s: %s", t->ca_file, why);
        goto err_after_ctx;
    }
    if (server) {
        /* The verify mode is set per session (http_tls_session_accept);
         * the CA names go with a certificate request. */
        STACK_OF(X509_NAME) *names =
            t->ca_file != NULL ? SSL_load_client_CA_file(t->ca_file) : NULL;
        if (names != NULL) {
            SSL_CTX_set_client_CA_list(ctx, names);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    errClear();
    return ctx;

err_after_ctx:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Build both contexts from t's files and install them. */
static int tlsLoad(struct http_tls *t, char *err, size_t errlen)
{
    SSL_CTX *accept = ctxBuild(t, true, err, errlen);
    SSL_CTX *connect;

    if (accept == NULL) {
        return -1;
    }
    connect = ctxBuild(t, false, err, errlen);
    if (connect == NULL) {
        SSL_CTX_free(accept);
        return -1;
    }
    t->accept = accept;
    t->connect = connect;
    return 0;
}

int http_tls_create(const struct http_tls_config *cfg, http_tls **out,
                    char *err, size_t errlen)
{
    struct http_tls *t;

    *out = NULL;
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        snprintf(err, errlen, "a certificate and its key go together");
        return -1;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->cert_file = cfg->cert_file != NULL ? strdup(cfg->cert_file) : NULL;
    t->key_file = cfg->key_file != NULL ? strdup(cfg->key_file) : NULL;
    t->ca_file = cfg->ca_file != NULL ? strdup(cfg->ca_file) : NULL;
    if ((cfg->cert_file != NULL && t->cert_file == NULL) ||
        (cfg->key_file != NULL && t->key_file == NULL) ||
        (cfg->ca_file != NULL && t->ca_file == NULL)) {
        snprintf(err, errlen, "out of memory");
        http_tls_free(t);
        return -1;
    }
    if (tlsLoad(t, err, errlen) != 0) {
        http_tls_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void http_tls_swap(http_tls *t, http_tls *fresh)
{
    struct http_tls old = *t;

    *t = *fresh;
    *fresh = old;
    http_tls_free(fresh);
}

void http_tls_free(http_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->accept);
    SSL_CTX_free(t->connect);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    free(t);
}

/* Subject CN of `cert` into buf (0), or -1 when it has none usable (absent,
 * too long, or with an embedded NUL). */
static int certCn(X509 *cert, char *buf, size_t len)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1)
                         : -1;
    ASN1_STRING *s;
    const unsigned char *p;
    int n;

    if (i < 0) {
        return -1;
    }
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    p = ASN1_STRING_get0_data(s);
    n = ASN1_STRING_length(s);
    if (p == NULL || n < 0 || (size_t)n >= len ||
        memchr(p, '\0', (size_t)n) != NULL) {
        return -1;
    }
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    return 0;
}

int http_tls_cert_cn(const http_tls *t, char *buf, size_t len)
{
    X509 *cert = SSL_CTX_get0_certificate(t->accept);
    return cert != NULL ? certCn(cert, buf, len) : -1;
}

bool http_tls_cert_has_ip(const http_tls *t, const char *ip)
{
    X509 *cert = SSL_CTX_get0_certificate(t->accept);
    bool ok = cert != NULL && X509_check_ip_asc(cert, ip, 0) == 1;
    errClear();
    return ok;
}

void http_tls_describe(const http_tls *t, char *buf, size_t len)
{
    X509 *cert = SSL_CTX_get0_certificate(t->accept);
    char cn[128] = "?";
    char until[64] = "?";
    BIO *b;

    if (cert != NULL) {
        certCn(cert, cn, sizeof cn);
        b = BIO_new(BIO_s_mem());
        if (b != NULL) {
            int n;
            ASN1_TIME_print(b, X509_get0_notAfter(cert));
            n = BIO_read(b, until, (int)sizeof until - 1);
            until[n > 0 ? n : 0] = '\0';
            BIO_free(b);
        }
    }
    snprintf(buf, len, "certificate CN %s, valid until %s", cn, until);
    errClear();
}

/* ---- Sessions ----------------------------------------------------------- */

static http_tls_session *sessionNew(http_tls *t, bool server,
                                    const char *expect_ip, int peer_auth)
{
    struct http_tls_session *s = calloc(1, sizeof *s);

    if (s == NULL) {
        return NULL;
    }
    errClear();
    s->server = server;
    s->ssl = SSL_new(server ? t->accept : t->connect);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->in == NULL || s->out == NULL) {
        goto err_after_alloc;
    }
    BIO_set_mem_eof_return(s->in, -1);
    BIO_set_mem_eof_return(s->out, -1);
    SSL_set_bio(s->ssl, s->in, s->out); /* ssl owns both now */
    if (server) {
        int mode = SSL_VERIFY_NONE;
        if (peer_auth == HTTP_TLS_PEER_OPTIONAL) {
            mode = SSL_VERIFY_PEER;
        } else if (peer_auth == HTTP_TLS_PEER_REQUIRE) {
            mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_set_verify(s->ssl, mode, NULL);
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (expect_ip != NULL && X509_VERIFY_PARAM_set1_ip_asc(
                                     SSL_get0_param(s->ssl), expect_ip) != 1) {
            SSL_free(s->ssl);
            free(s);
            errClear();
            return NULL;
        }
    }
    return s;

err_after_alloc:
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
    }
    BIO_free(s->in);
    BIO_free(s->out);
    free(s);
    errClear();
    return NULL;
}

http_tls_session *http_tls_session_accept(http_tls *t, int peer_auth)
{
    return sessionNew(t, true, NULL, peer_auth);
}

http_tls_session *http_tls_session_connect(http_tls *t, const char *expect_ip)
{
    return sessionNew(t, false, expect_ip, HTTP_TLS_PEER_NONE);
}

void http_tls_session_free(http_tls_session *s)
{
    if (s == NULL) {
        return;
    }
    SSL_free(s->ssl);
    http_buf_free(&s->held);
    free(s);
}

static int sessionFail(struct http_tls_session *s, const char *fmt,
                       const char *arg)
{
    s->failed = true;
    snprintf(s->err, sizeof s->err, fmt, arg);
    errClear();
    return HTTP_TLS_ERROR;
}

/* Describe why the last SSL call on s failed with SSL_ERROR_SSL. */
static int sessionFailSsl(struct http_tls_session *s)
{
    long v = SSL_get_verify_result(s->ssl);
    char why[160];

    if (v != X509_V_OK) {
        return sessionFail(s, "certificate verify failed: %s",
                           X509_verify_cert_error_string(v));
    }
    sslReason(why, sizeof why);
    return sessionFail(s, "%s", why);
}

static int sessionWrite(struct http_tls_session *s, const char *data,
                        size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n;

        errClear();
        n = SSL_write(s->ssl, data, chunk);
        if (n <= 0) {
            return sessionFailSsl(s);
        }
        data += n;
        len -= (size_t)n;
    }
    return HTTP_TLS_OK;
}

/* Drive the handshake; HTTP_TLS_OK (done or needs more) or an error. */
static int sessionHandshake(struct http_tls_session *s)
{
    int rv;

    errClear();
    rv = SSL_do_handshake(s->ssl);
    if (rv == 1) {
        s->established = true;
        if (s->held.len > 0) {
            rv = sessionWrite(s, s->held.p, s->held.len);
            http_buf_free(&s->held);
            return rv;
        }
        return HTTP_TLS_OK;
    }
    switch (SSL_get_error(s->ssl, rv)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errClear();
        return HTTP_TLS_OK;
    case SSL_ERROR_ZERO_RETURN:
        return sessionFail(s, "%s", "peer closed during the TLS handshake");
    default:
        return sessionFailSsl(s);
    }
}

int http_tls_session_start(http_tls_session *s)
{
    if (s->failed) {
        return HTTP_TLS_ERROR;
    }
    return s->established ? HTTP_TLS_OK : sessionHandshake(s);
}

int http_tls_session_recv(http_tls_session *s, const char *data, size_t len,
                          struct http_buf *plain)
{
    int rv;

    if (s->failed) {
        return HTTP_TLS_ERROR;
    }
    if (len == 0) {
        return HTTP_TLS_OK;
    }
    if (s->server && !s->saw_first_byte) {
        s->saw_first_byte = true;
        if ((unsigned char)data[0] != TLS__RECORD_HANDSHAKE) {
            return sessionFail(s, "%s",
                               "not a TLS handshake (a plaintext peer?)");
        }
    }
    if (BIO_write(s->in, data, (int)len) != (int)len) {
        return sessionFail(s, "%s", "out of memory");
    }
    if (!s->established) {
        rv = sessionHandshake(s);
        if (rv != HTTP_TLS_OK || !s->established) {
            return rv;
        }
    }
    for (;;) {
        int n;
        if (http_buf_reserve(plain, TLS__READ_CHUNK) != 0) {
            return sessionFail(s, "%s", "out of memory");
        }
        errClear();
        n = SSL_read(s->ssl, plain->p + plain->len, TLS__READ_CHUNK);
        if (n > 0) {
            plain->len += (size_t)n;
            plain->p[plain->len] = '\0';
            if (!SSL_has_pending(s->ssl) && BIO_ctrl_pending(s->in) == 0) {
                return HTTP_TLS_OK; /* Nothing more to read: spare the
                                       call that would say so. */
            }
            continue;
        }
        switch (SSL_get_error(s->ssl, n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            errClear();
            return HTTP_TLS_OK;
        case SSL_ERROR_ZERO_RETURN:
            errClear();
            return HTTP_TLS_CLOSED;
        default:
            return sessionFailSsl(s);
        }
    }
}

int http_tls_session_send(http_tls_session *s, const char *data, size_t len)
{
    if (s->failed) {
        return HTTP_TLS_ERROR;
    }
    if (!s->established) {
        if (http_buf_append(&s->held, data, len) != 0) {
            return sessionFail(s, "%s", "out of memory");
        }
        return HTTP_TLS_OK;
    }
    return sessionWrite(s, data, len);
}

void http_tls_session_shutdown(http_tls_session *s)
{
    if (s->established && !s->failed) {
        errClear();
        SSL_shutdown(s->ssl);
        errClear();
    }
}

size_t http_tls_session_pending(const http_tls_session *s)
{
    return BIO_ctrl_pending(s->out);
}

size_t http_tls_session_take(http_tls_session *s, char *buf, size_t len)
{
    int n = BIO_read(s->out, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? (size_t)n : 0;
}

bool http_tls_session_established(const http_tls_session *s)
{
    return s->established && !s->failed;
}

const char *http_tls_session_error(const http_tls_session *s)
{
    return s->err;
}

int http_tls_session_peer_cn(const http_tls_session *s, char *buf, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(s->ssl);
    if (cert == NULL || SSL_get_verify_result(s->ssl) != X509_V_OK) {
        return -1;
    }
    return certCn(cert, buf, len);
}

bool http_tls_session_peer_has_ip(const http_tls_session *s, const char *ip)
{
    X509 *cert = SSL_get0_peer_certificate(s->ssl);
    bool ok = cert != NULL && X509_check_ip_asc(cert, ip, 0) == 1;
    errClear();
    return ok;
}
