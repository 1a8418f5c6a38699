/* Token file parsing (see tokens.h for the format).
 *
 * The parser reads bytes from an operator's file but, once the file is
 * shared between nodes and reloaded on SIGHUP, from anything that can
 * write it: it trusts nothing. Every byte outside a comment must be
 * printable ASCII or a blank; the text need not be NUL-terminated and may
 * hold NULs; lengths and counts are bounded (TOKEN_* in tokens.h); errors
 * name the line and never repeat a secret. Duplicates (names, secrets) are
 * found by sorting, so a large file costs O(n log n).
 */
#include "tokens.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define TOKENS__MAX 10000 /* Tokens in one file. */
#define TOKENS__FIELDS 6  /* Fields kept per line: 5 and "one too many". */
#define TOKENS__RATE_MAX 1e6
#define TOKENS__RATE_MIN 0.001

struct field {
    const char *p;
    size_t len;
};

struct parser {
    struct token *tokens;
    size_t n;
    size_t cap;
    unsigned bare_line; /* Line of a one-field token line; 0: none. */
    struct field bare;
    char *err;
    size_t errlen;
};

const char *token_role_name(enum token_role role)
{
    switch (role) {
    case TOKEN_ROLE_READ:
        return "read";
    case TOKEN_ROLE_WRITE:
        return "write";
    case TOKEN_ROLE_ADMIN:
        return "admin";
    case TOKEN_ROLE_NODE:
        return "node";
    }
    return "?";
}

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int off = 0;

    if (line > 0) {
        off = snprintf(p->err, p->errlen, "line %u: ", line);
        if (off < 0 || (size_t)off >= p->errlen) {
            return -1;
        }
    }
    va_start(ap, fmt);
    vsnprintf(p->err + off, p->errlen - (size_t)off, fmt, ap);
    va_end(ap);
    return -1;
}

static bool fieldIs(const struct field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

static bool validName(const struct field *f)
{
    if (f->len == 0 || f->len > TOKEN_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < f->len; i++) {
        char c = f->p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* "N" or "N.N": digits with at most one dot, nothing else. */
static int parseRate(const struct field *v, double *out)
{
    char buf[32];
    bool dot = false;
    bool digit = false;
    char *end;

    if (v->len == 0 || v->len >= sizeof buf) {
        return -1;
    }
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] == '.' && !dot) {
            dot = true;
        } else if (v->p[i] >= '0' && v->p[i] <= '9') {
            digit = true;
        } else {
            return -1;
        }
    }
    if (!digit) {
        return -1;
    }
    memcpy(buf, v->p, v->len);
    buf[v->len] = '\0';
    errno = 0;
    *out = strtod(buf, &end);
    if (errno != 0 || *end != '\0' || *out < TOKENS__RATE_MIN ||
        *out > TOKENS__RATE_MAX) {
        return -1;
    }
    return 0;
}

static int parseBurst(const struct field *v, double *out)
{
    unsigned long b = 0;

    if (v->len == 0 || v->len > 7) {
        return -1;
    }
    for (size_t i = 0; i < v->len; i++) {
        if (v->p[i] < '0' || v->p[i] > '9') {
            return -1;
        }
        b = b * 10 + (unsigned long)(v->p[i] - '0');
    }
    if (b < 1 || b > (unsigned long)TOKENS__RATE_MAX) {
        return -1;
    }
    *out = (double)b;
    return 0;
}

static int addToken(struct parser *p, unsigned line, const struct field *name,
                    enum token_role role, const struct field *secret,
                    double rate, double burst)
{
    struct token *t;

    if (p->n == TOKENS__MAX) {
        return fail(p, line, "more than %d tokens", TOKENS__MAX);
    }
    if (p->n == p->cap) {
        size_t ncap = p->cap != 0 ? p->cap * 2 : 8;
        struct token *nt = realloc(p->tokens, ncap * sizeof *nt);
        if (nt == NULL) {
            return fail(p, 0, "out of memory");
        }
        p->tokens = nt;
        p->cap = ncap;
    }
    t = &p->tokens[p->n];
    memset(t, 0, sizeof *t);
    t->secret = malloc(secret->len + 1);
    if (t->secret == NULL) {
        return fail(p, 0, "out of memory");
    }
    memcpy(t->secret, secret->p, secret->len);
    t->secret[secret->len] = '\0';
    if (!EVP_Digest(t->secret, secret->len, t->digest, NULL, EVP_sha256(),
                    NULL)) {
        free(t->secret);
        return fail(p, 0, "SHA-256 failed");
    }
    memcpy(t->name, name->p, name->len);
    t->name[name->len] = '\0';
    t->role = role;
    t->line = line;
    t->rate = rate;
    t->burst = burst;
    t->level = burst;
    p->n++;
    return 0;
}

/* One line of two or more fields: NAME ROLE TOKEN [rate=N] [burst=M]. */
static int parseTokenLine(struct parser *p, unsigned line,
                          const struct field *f, size_t nf)
{
    static const struct {
        const char *name;
        enum token_role role;
    } roles[] = {{"read", TOKEN_ROLE_READ},
                 {"write", TOKEN_ROLE_WRITE},
                 {"admin", TOKEN_ROLE_ADMIN},
                 {"node", TOKEN_ROLE_NODE}};
    enum token_role role = 0;
    double rate = 0;
    double burst = 0;
    bool have_burst = false;

    if (nf < 3) {
        return fail(p, line,
                    "expected NAME ROLE TOKEN [rate=N] [burst=M], got %zu "
                    "fields",
                    nf);
    }
    if (nf > 5) {
        return fail(p, line,
                    "too many fields: expected NAME ROLE TOKEN [rate=N] "
                    "[burst=M]");
    }
    if (!validName(&f[0])) {
        return fail(p, line,
                    "name '%.*s' is invalid: use 1-%d characters from A-Z "
                    "a-z 0-9 . _ -",
                    (int)(f[0].len > 64 ? 64 : f[0].len), f[0].p,
                    TOKEN_NAME_MAX);
    }
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (fieldIs(&f[1], roles[i].name)) {
            role = roles[i].role;
        }
    }
    if (role == 0) {
        return fail(p, line,
                    "role '%.*s' of '%.*s' is not read, write, admin or "
                    "node",
                    (int)(f[1].len > 32 ? 32 : f[1].len), f[1].p, (int)f[0].len,
                    f[0].p);
    }
    if (f[2].len > TOKEN_SECRET_MAX) {
        return fail(p, line, "the token of '%.*s' is longer than %d bytes",
                    (int)f[0].len, f[0].p, TOKEN_SECRET_MAX);
    }
    for (size_t i = 3; i < nf; i++) {
        struct field v;
        if (f[i].len > 5 && memcmp(f[i].p, "rate=", 5) == 0 && rate == 0) {
            v.p = f[i].p + 5;
            v.len = f[i].len - 5;
            if (parseRate(&v, &rate) != 0) {
                return fail(p, line,
                            "rate= of '%.*s' must be requests per second, "
                            "0.001 to 1000000",
                            (int)f[0].len, f[0].p);
            }
        } else if (f[i].len > 6 && memcmp(f[i].p, "burst=", 6) == 0 &&
                   !have_burst) {
            v.p = f[i].p + 6;
            v.len = f[i].len - 6;
            if (parseBurst(&v, &burst) != 0) {
                return fail(p, line,
                            "burst= of '%.*s' must be a whole number of "
                            "requests, 1 to 1000000",
                            (int)f[0].len, f[0].p);
            }
            have_burst = true;
        } else {
            return fail(p, line,
                        "'%.*s' is not rate=N or burst=M (or is repeated)",
                        (int)(f[i].len > 32 ? 32 : f[i].len), f[i].p);
        }
    }
    if (have_burst && rate == 0) {
        return fail(p, line, "burst= of '%.*s' needs rate=", (int)f[0].len,
                    f[0].p);
    }
    if (rate > 0 && !have_burst) {
        burst = rate < 1 ? 1 : (double)(unsigned long)(rate + 0.999999);
    }
    return addToken(p, line, &f[0], role, &f[2], rate, burst);
}

/* Split one line into fields; a field starting with '#' ends it. Returns
 * the number of fields (at most TOKENS__FIELDS kept, more counted), or -1
 * on a byte that may not appear. */
static int splitLine(struct parser *p, unsigned line, const char *s, size_t len,
                     struct field *f, size_t *nf)
{
    size_t i = 0;

    *nf = 0;
    while (i < len) {
        size_t start;
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t') {
            i++;
            continue;
        }
        if (c == '#') {
            return 0; /* A comment: the rest of the line, any bytes. */
        }
        start = i;
        while (i < len && s[i] != ' ' && s[i] != '\t') {
            c = (unsigned char)s[i];
            if (c < 0x21 || c > 0x7e) {
                return fail(p, line,
                            "byte 0x%02x at column %zu: only printable "
                            "ASCII and blanks may appear outside comments",
                            c, i + 1);
            }
            i++;
        }
        if (*nf < TOKENS__FIELDS) {
            f[*nf].p = s + start;
            f[*nf].len = i - start;
        }
        (*nf)++;
    }
    return 0;
}

static int parseLines(struct parser *p, const char *text, size_t len)
{
    const char *s = text;
    const char *end = text + len;
    unsigned line = 0;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t ll = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
        struct field f[TOKENS__FIELDS];
        size_t nf;

        line++;
        if (ll > 0 && s[ll - 1] == '\r') {
            ll--;
        }
        if (splitLine(p, line, s, ll, f, &nf) != 0) {
            return -1;
        }
        s = nl != NULL ? nl + 1 : end;
        if (nf == 0) {
            continue;
        }
        if (p->bare_line != 0) {
            return fail(p, p->bare_line,
                        "a bare token is allowed only as the file's only "
                        "token: write NAME ROLE TOKEN");
        }
        if (nf == 1) {
            if (p->n > 0) {
                return fail(p, line,
                            "a bare token is allowed only as the file's "
                            "only token: write NAME ROLE TOKEN");
            }
            if (f[0].len > TOKEN_SECRET_MAX) {
                return fail(p, line, "the token is longer than %d bytes",
                            TOKEN_SECRET_MAX);
            }
            p->bare_line = line;
            p->bare = f[0];
            continue;
        }
        if (parseTokenLine(p, line, f, nf) != 0) {
            return -1;
        }
    }
    if (p->bare_line != 0) {
        static const struct field admin = {"admin", 5};
        return addToken(p, p->bare_line, &admin, TOKEN_ROLE_ADMIN, &p->bare, 0,
                        0);
    }
    return 0;
}

/* Sort by name, then by digest; report the later line of a repeat. */
static int compareNames(const void *a, const void *b)
{
    const struct token *x = *(const struct token *const *)a;
    const struct token *y = *(const struct token *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->line < y->line ? -1 : x->line > y->line);
}

static int compareDigests(const void *a, const void *b)
{
    const struct token *x = *(const struct token *const *)a;
    const struct token *y = *(const struct token *const *)b;
    int c = memcmp(x->digest, y->digest, TOKEN_DIGEST_LEN);
    return c != 0 ? c : (x->line < y->line ? -1 : x->line > y->line);
}

static int checkRepeats(struct parser *p)
{
    struct token **v = malloc(p->n * sizeof *v);
    const struct token *dup = NULL;
    const struct token *orig = NULL;
    bool secret = false;

    if (v == NULL) {
        return fail(p, 0, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++) {
        v[i] = &p->tokens[i];
    }
    /* Report the repeat on the lowest line, whichever kind it is. */
    qsort(v, p->n, sizeof *v, compareNames);
    for (size_t i = 1; i < p->n; i++) {
        if (strcmp(v[i]->name, v[i - 1]->name) == 0 &&
            (dup == NULL || v[i]->line < dup->line)) {
            dup = v[i];
            orig = v[i - 1];
        }
    }
    qsort(v, p->n, sizeof *v, compareDigests);
    for (size_t i = 1; i < p->n; i++) {
        if (memcmp(v[i]->digest, v[i - 1]->digest, TOKEN_DIGEST_LEN) == 0 &&
            (dup == NULL || v[i]->line < dup->line)) {
            dup = v[i];
            orig = v[i - 1];
            secret = true;
        }
    }
    free(v);
    if (dup == NULL) {
        return 0;
    }
    if (secret) {
        return fail(p, dup->line,
                    "the token of '%s' is the token of '%s' "
                    "(line %u): each token must be unique",
                    dup->name, orig->name, orig->line);
    }
    return fail(p, dup->line, "name '%s' is already used on line %u", dup->name,
                orig->line);
}

/* Pick the node credential and mark who may vouch for forwarded
 * requests: every node line, or the first admin line without one. */
static int pickNode(struct parser *p, struct token_set *s)
{
    struct token *first_admin = NULL;

    s->node = NULL;
    for (size_t i = 0; i < p->n; i++) {
        struct token *t = &p->tokens[i];
        if (t->role == TOKEN_ROLE_NODE) {
            t->peer_cred = true;
            if (s->node == NULL) {
                s->node = t;
            }
        } else if (t->role == TOKEN_ROLE_ADMIN && first_admin == NULL) {
            first_admin = t;
        }
    }
    if (s->node == NULL && first_admin != NULL) {
        first_admin->peer_cred = true;
        s->node = first_admin;
    }
    if (s->node == NULL) {
        return fail(p, 0,
                    "no admin or node token: the nodes need one to call "
                    "each other (add 'NAME node TOKEN')");
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct token *t = &p->tokens[i];
        if (t->peer_cred && t->rate > 0) {
            return fail(p, t->line,
                        "'%s' is the credential the nodes present to each "
                        "other (the node lines, else the first admin line): "
                        "it may not have rate=; add a 'NAME node TOKEN' "
                        "line",
                        t->name);
        }
    }
    return 0;
}

static void freeTokens(struct token *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].secret != NULL) {
            OPENSSL_cleanse(t[i].secret, strlen(t[i].secret));
            free(t[i].secret);
        }
    }
    free(t);
}

int token_set_parse(const char *text, size_t len, struct token_set **out,
                    char *err, size_t errlen)
{
    struct parser p;
    struct token_set *s;

    memset(&p, 0, sizeof p);
    p.err = err;
    p.errlen = errlen;
    if (len > TOKEN_FILE_MAX) {
        fail(&p, 0, "larger than %d bytes", TOKEN_FILE_MAX);
        return -1;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        fail(&p, 0, "out of memory");
        return -1;
    }
    if (parseLines(&p, text, len) != 0) {
        goto out_free;
    }
    if (p.n == 0) {
        fail(&p, 0, "no token in the file");
        goto out_free;
    }
    if (checkRepeats(&p) != 0 || pickNode(&p, s) != 0) {
        goto out_free;
    }
    s->tokens = p.tokens;
    s->n = p.n;
    *out = s;
    return 0;

out_free:
    freeTokens(p.tokens, p.n);
    free(s);
    return -1;
}

int token_set_load(const char *path, struct token_set **out, char *err,
                   size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len;
    char why[400];
    int rv;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(TOKEN_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    len = fread(buf, 1, TOKEN_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read failed", path);
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    rv = token_set_parse(buf, len, out, why, sizeof why);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (rv != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
    }
    return rv;
}

void token_set_free(struct token_set *s)
{
    if (s == NULL) {
        return;
    }
    freeTokens(s->tokens, s->n);
    free(s);
}

struct token *token_set_find(struct token_set *s, const char *secret,
                             size_t len)
{
    unsigned char d[TOKEN_DIGEST_LEN];
    struct token *hit = NULL;

    if (s == NULL || !EVP_Digest(secret, len, d, NULL, EVP_sha256(), NULL)) {
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        /* No early exit: every digest is compared. */
        if (CRYPTO_memcmp(d, s->tokens[i].digest, TOKEN_DIGEST_LEN) == 0) {
            hit = &s->tokens[i];
        }
    }
    return hit;
}
