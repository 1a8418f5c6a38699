/* Growable byte buffer shared by the HTTP server and client (private).
 *
 * Invariant: when p != NULL, p[len] == '\0' (there is always room for the
 * terminator), so the contents can be handed out as C strings.
 */
#ifndef LEDGER_HTTP_BUF_H
#define LEDGER_HTTP_BUF_H

#include <stdlib.h>
#include <string.h>

struct http_buf {
    char *p;
    size_t len;
    size_t cap; /* Allocated bytes, terminator included. */
};

/* Make room for `extra` more bytes plus the terminator. 0 or -1 (OOM). */
static inline int http_buf_reserve(struct http_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;
    char *p;

    if (need < b->len) {
        return -1; /* Overflow. */
    }
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Append `n` bytes; 0 or -1 (OOM). */
static inline int http_buf_append(struct http_buf *b, const char *data,
                                  size_t n)
{
    if (http_buf_reserve(b, n) != 0) {
        return -1;
    }
    if (n > 0) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Contents as a C string ("" when empty and never allocated). */
static inline const char *http_buf_str(const struct http_buf *b)
{
    return b->p != NULL ? b->p : "";
}

/* Drop the first `n` bytes, keeping the rest. */
static inline void http_buf_consume(struct http_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p != NULL) {
        b->p[b->len] = '\0';
    }
}

static inline void http_buf_free(struct http_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

#endif /* LEDGER_HTTP_BUF_H */
