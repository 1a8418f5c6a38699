/* Fuzz target: the token file parser (node/tokens.c).
 *
 * Properties: a refusal always says why; an accepted set has at least one
 * token and a node credential without a rate limit; every token is found
 * by its own secret and by nothing else's; names and roles are valid; a
 * limited token has a burst of at least 1. */
#include <string.h>

#include "fuzz.h"
#include "tokens.h"

static int validName(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TOKEN_NAME_MAX) {
        return 0;
    }
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._-") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct token_set *s = NULL;
    char err[600];

    err[0] = '\0';
    if (token_set_parse((const char *)data, size, &s, err, sizeof err) != 0) {
        CHECK(err[0] != '\0');
        CHECK(s == NULL);
        return 0;
    }
    CHECK(s != NULL && s->n > 0 && s->node != NULL);
    CHECK(s->node->rate == 0 && s->node->peer_cred);
    CHECK(s->node->role == TOKEN_ROLE_NODE ||
          s->node->role == TOKEN_ROLE_ADMIN);
    for (size_t i = 0; i < s->n; i++) {
        struct token *t = &s->tokens[i];
        size_t len = strlen(t->secret);
        CHECK(validName(t->name));
        CHECK(t->role >= TOKEN_ROLE_READ && t->role <= TOKEN_ROLE_NODE);
        CHECK(len > 0 && len <= TOKEN_SECRET_MAX && t->secret[0] != '#');
        CHECK(strpbrk(t->secret, " \t\r\n") == NULL);
        CHECK(t->rate == 0 || (t->rate > 0 && t->burst >= 1));
        CHECK(token_set_find(s, t->secret, len) == t);
        /* A prefix of a secret is not that token. */
        CHECK(token_set_find(s, t->secret, len - 1) != t);
    }
    token_set_free(s);
    return 0;
}
