/* Hash chain: SHA-256 over each event's canonical fields, and hex helpers.
 *
 * Layout (normative text: docs/architecture.md "Hash chain"; worked example
 * in docs/store.md). All integers are big-endian, strings are raw bytes
 * prefixed by their u32 length:
 *
 *   hash(P) = SHA-256( prev_hash (32 bytes; all zero for P = 1)
 *                    | u64 position
 *                    | u32 len(stream) | stream
 *                    | u64 seq
 *                    | u32 len(type)   | type
 *                    | u32 len(id)     | id      (len 0: no id)
 *                    | i64 ts_ms               (two's complement)
 *                    | u32 len(data)   | data )
 *
 * Invariant: the digest depends on nothing but these arguments, so every
 * replica computes the same bytes. A field longer than UINT32_MAX cannot be
 * encoded and is refused (store.c never stores one). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

int hashInit(struct hash_ctx *h)
{
    h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    h->md_ctx = h->md != NULL ? EVP_MD_CTX_new() : NULL;
    if (h->md_ctx == NULL) {
        EVP_MD_free(h->md);
        h->md = NULL;
        return -1;
    }
    return 0;
}

void hashClose(struct hash_ctx *h)
{
    EVP_MD_CTX_free(h->md_ctx);
    EVP_MD_free(h->md);
    h->md_ctx = NULL;
    h->md = NULL;
}

static void putU32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void putU64(uint8_t *p, uint64_t v)
{
    putU32(p, (uint32_t)(v >> 32));
    putU32(p + 4, (uint32_t)v);
}

/* Lay out everything before the data in `buf`, which holds `n` bytes (the
 * sum the caller computed from the same lengths), so that SHA-256 is fed in
 * two calls, this head and the data, instead of thirteen (each
 * EVP_DigestUpdate costs a provider dispatch: 12% of a follower's CPU at
 * `bench --batch 100` when fed field by field). */
static void packHead(uint8_t *buf, const uint8_t prev_hash[LEDGER_HASH_LEN],
                     uint64_t position, const char *stream, size_t stream_len,
                     uint64_t seq, const char *type, size_t type_len,
                     const char *id, size_t id_len, int64_t ts_ms,
                     size_t data_len)
{
    uint8_t *p = buf;

    memcpy(p, prev_hash, LEDGER_HASH_LEN);
    p += LEDGER_HASH_LEN;
    putU64(p, position);
    p += 8;
    putU32(p, (uint32_t)stream_len);
    memcpy(p + 4, stream, stream_len);
    p += 4 + stream_len;
    putU64(p, seq);
    p += 8;
    putU32(p, (uint32_t)type_len);
    memcpy(p + 4, type, type_len);
    p += 4 + type_len;
    putU32(p, (uint32_t)id_len);
    if (id_len > 0) {
        memcpy(p + 4, id, id_len);
    }
    p += 4 + id_len;
    putU64(p, (uint64_t)ts_ms);
    p += 8;
    putU32(p, (uint32_t)data_len);
}

int hashEvent(struct hash_ctx *h, const uint8_t prev_hash[LEDGER_HASH_LEN],
              uint64_t position, const char *stream, uint64_t seq,
              const char *type, const char *id, int64_t ts_ms, const char *data,
              size_t data_len, uint8_t out[LEDGER_HASH_LEN])
{
    EVP_MD_CTX *ctx = h->md_ctx;
    unsigned int out_len = 0;
    size_t stream_len = strlen(stream);
    size_t type_len = strlen(type);
    size_t id_len = id != NULL ? strlen(id) : 0;
    uint8_t stack[1024]; /* Fits every head of validated names. */
    uint8_t *head = stack;
    size_t n;
    int rv = -1;

    if (stream_len > UINT32_MAX || type_len > UINT32_MAX ||
        id_len > UINT32_MAX || data_len > UINT32_MAX) {
        return -1;
    }
    n = LEDGER_HASH_LEN + 8 + 4 + stream_len + 8 + 4 + type_len + 4 + id_len +
        8 + 4;
    if (n > sizeof stack && (head = malloc(n)) == NULL) {
        return -1;
    }
    packHead(head, prev_hash, position, stream, stream_len, seq, type, type_len,
             id, id_len, ts_ms, data_len);
    if (ctx != NULL && EVP_DigestInit_ex(ctx, h->md, NULL) == 1 &&
        EVP_DigestUpdate(ctx, head, n) == 1 &&
        (data_len == 0 || EVP_DigestUpdate(ctx, data, data_len) == 1) &&
        EVP_DigestFinal_ex(ctx, out, &out_len) == 1 &&
        out_len == LEDGER_HASH_LEN) {
        rv = 0;
    }
    if (head != stack) {
        free(head);
    }
    return rv;
}

/* Public wrapper: a one-off context. store.h gives it no error return; on
 * the only possible failure (OpenSSL out of memory, or a field over 4 GiB)
 * `out` is all zeros, which no real event hashes to in practice. */
void ledger_hash_event(const uint8_t prev_hash[LEDGER_HASH_LEN],
                       uint64_t position, const char *stream, uint64_t seq,
                       const char *type, const char *id, int64_t ts_ms,
                       const char *data, size_t data_len,
                       uint8_t out[LEDGER_HASH_LEN])
{
    struct hash_ctx h;
    if (hashInit(&h) != 0 ||
        hashEvent(&h, prev_hash, position, stream, seq, type, id, ts_ms, data,
                  data_len, out) != 0) {
        memset(out, 0, LEDGER_HASH_LEN);
    }
    hashClose(&h);
}

void ledger_hash_hex(const uint8_t hash[LEDGER_HASH_LEN], char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < LEDGER_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 0x0f];
    }
    out[LEDGER_HASH_HEX_LEN] = '\0';
}

static int hexValue(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Exactly 64 hex digits (either case) then NUL; `out` untouched on error. */
int ledger_hash_parse(const char *hex, uint8_t out[LEDGER_HASH_LEN])
{
    uint8_t buf[LEDGER_HASH_LEN];
    if (hex == NULL) {
        return LEDGER_STORE_EINVAL;
    }
    for (size_t i = 0; i < LEDGER_HASH_LEN; i++) {
        int hi = hexValue(hex[2 * i]);
        int lo = hi >= 0 ? hexValue(hex[2 * i + 1]) : -1;
        if (lo < 0) {
            return LEDGER_STORE_EINVAL;
        }
        buf[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[LEDGER_HASH_HEX_LEN] != '\0') {
        return LEDGER_STORE_EINVAL;
    }
    memcpy(out, buf, sizeof buf);
    return LEDGER_STORE_OK;
}
