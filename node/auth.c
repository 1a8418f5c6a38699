/* Bearer tokens (see auth.h). The comparison is constant-time: both sides
 * are hashed with SHA-256 and the digests compared with CRYPTO_memcmp, so
 * neither the length nor the content of the token leaks through timing.
 * A node with one token treats it as admin. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

static bool sameSecret(const char *want, const char *got)
{
    unsigned char a[EVP_MAX_MD_SIZE];
    unsigned char b[EVP_MAX_MD_SIZE];
    unsigned int al = 0;
    unsigned int bl = 0;

    if (!EVP_Digest(want, strlen(want), a, &al, EVP_sha256(), NULL) ||
        !EVP_Digest(got, strlen(got), b, &bl, EVP_sha256(), NULL) || al != bl) {
        return false;
    }
    return CRYPTO_memcmp(a, b, al) == 0;
}

enum auth_result auth_check(struct ledger_node *n, const char *authorization,
                            enum route_access need)
{
    const char *token = n->cfg->token;

    if (need == ACCESS_OPEN || token == NULL) {
        return AUTH_OK;
    }
    if (authorization == NULL || strncmp(authorization, "Bearer ", 7) != 0) {
        return AUTH_UNAUTHORIZED;
    }
    return sameSecret(token, authorization + 7) ? AUTH_OK : AUTH_UNAUTHORIZED;
}
