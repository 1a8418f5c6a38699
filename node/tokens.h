/* The token file (--token-file): who may call the API, with which role and
 * at which rate. Parsing only: no I/O but token_set_load(), no node state,
 * so the parser can be fuzzed (tests/fuzz/fuzz_tokens.c).
 *
 * Format, one token per line (docs/security.md, "Tokens and roles"):
 *
 *   NAME ROLE TOKEN [rate=N] [burst=M]
 *
 * - NAME: 1-64 of A-Z a-z 0-9 . _ - ; unique; the only thing metrics and
 *   logs ever show of a token.
 * - ROLE: read, write, admin or node (node: admin, and the credential the
 *   nodes present to each other; see token_set.node).
 * - TOKEN: 1-1024 printable ASCII characters, no blank, not starting with
 *   '#'; unique in the file.
 * - rate=N: requests per second (0.001-1000000, decimals allowed); without
 *   it the token is not limited. burst=M: bucket size (1-1000000; default
 *   the rate rounded up, at least 1); needs rate=.
 * - Blank lines and everything from a field starting with '#' to the end
 *   of the line are ignored.
 * - A file whose only token line is one bare field is today's format: that
 *   field is the token, named "admin", role admin.
 *
 * A file that does not parse is refused as a whole, with the line number.
 */
#ifndef LEDGER_NODE_TOKENS_H
#define LEDGER_NODE_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_NAME_MAX 64 /* Longest NAME. */
#define TOKEN_SECRET_MAX                                                       \
    1024 /* Longest TOKEN (fits the peers' header buffers). */
#define TOKEN_FILE_MAX 1048576 /* Largest token file read (bytes). */
#define TOKEN_DIGEST_LEN 32    /* SHA-256 of the secret. */

/* Ordered: a role may do what every lower role may. */
enum token_role {
    TOKEN_ROLE_READ = 1,
    TOKEN_ROLE_WRITE,
    TOKEN_ROLE_ADMIN,
    TOKEN_ROLE_NODE, /* Admin + the nodes' own credential. */
};

struct token {
    char name[TOKEN_NAME_MAX + 1];
    char *secret; /* Owned by the set. */
    unsigned char digest[TOKEN_DIGEST_LEN];
    enum token_role role;
    unsigned line;  /* Line of the file it came from. */
    double rate;    /* Requests per second; 0: unlimited. */
    double burst;   /* Bucket size (rate > 0). */
    double level;   /* Requests left in the bucket (auth.c). */
    uint64_t last;  /* When `level` was last refilled, ms (auth.c). */
    bool peer_cred; /* May vouch for a forwarded request (see node). */
};

struct token_set {
    struct token *tokens;
    size_t n;
    /* The credential this node presents to its peers: the first `node`
     * line, else the first `admin` line. Never rate-limited (the parser
     * refuses rate= on it), so node-to-node calls are never refused for
     * rate. */
    const struct token *node;
};

/* Parse a token file's text (`len` bytes, need not be NUL-terminated).
 * Returns 0 and a new set in *out, or -1 with "line N: what is wrong" (or
 * a whole-file reason) in err and *out untouched. */
int token_set_parse(const char *text, size_t len, struct token_set **out,
                    char *err, size_t errlen);

/* Read and parse `path` (at most TOKEN_FILE_MAX bytes). As
 * token_set_parse; err names the file. */
int token_set_load(const char *path, struct token_set **out, char *err,
                   size_t errlen);

void token_set_free(struct token_set *s);

/* The token whose secret is `secret` (`len` bytes), or NULL. Constant time
 * in the secret: its SHA-256 is compared with every token's digest, all of
 * them, with CRYPTO_memcmp. */
struct token *token_set_find(struct token_set *s, const char *secret,
                             size_t len);

/* "read", "write", "admin", "node". */
const char *token_role_name(enum token_role role);

#endif /* LEDGER_NODE_TOKENS_H */
