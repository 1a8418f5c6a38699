/* Private: SHA-256 of the event hash chain, via OpenSSL EVP. */
#ifndef LEDGER_STORE_HASH_H
#define LEDGER_STORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A digest context reused across hashes (one allocation per store), and
 * SHA-256 fetched once: with OpenSSL 3, EVP_sha256() makes every
 * EVP_DigestInit_ex fetch the implementation again (measured: half the
 * cost of hashing a small event). */
struct hash_ctx {
    void *md_ctx; /* EVP_MD_CTX *, NULL until hashInit. */
    void *md;     /* EVP_MD * from EVP_MD_fetch, NULL until hashInit. */
};

int hashInit(struct hash_ctx *h);
void hashClose(struct hash_ctx *h);

/* Hash one event with the layout in store.h. Returns 0, or -1 when OpenSSL
 * fails (out of memory) or a length does not fit its u32 field. */
int hashEvent(struct hash_ctx *h, const uint8_t prev_hash[LEDGER_HASH_LEN],
              uint64_t position, const char *stream, uint64_t seq,
              const char *type, const char *id, int64_t ts_ms, const char *data,
              size_t data_len, uint8_t out[LEDGER_HASH_LEN]);

#endif /* LEDGER_STORE_HASH_H */
