/* Bearer tokens, roles and rate limits (see auth.h).
 *
 * The set lives in n->cfg->tokens (parsed at start by config.c, replaced by
 * auth_reload()); n->cfg->token is a copy of its node credential's secret,
 * the token this node sends to its peers. Lookups are constant-time in the
 * secret (tokens.c). The loop thread is the only user: no locking.
 */
#include "auth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "api.h"
#include "log.h"
#include "metrics.h"

static struct token *lookup(struct ledger_node *n, const char *header)
{
    if (header == NULL || strncmp(header, "Bearer ", 7) != 0) {
        return NULL;
    }
    return token_set_find(n->cfg->tokens, header + 7, strlen(header + 7));
}

static enum route_access roleAccess(enum token_role role)
{
    switch (role) {
    case TOKEN_ROLE_READ:
        return ACCESS_READ;
    case TOKEN_ROLE_WRITE:
        return ACCESS_WRITE;
    default:
        return ACCESS_ADMIN;
    }
}

/* Take one request from t's bucket; false when it is empty, with the
 * seconds until it holds one again. */
static bool take(struct token *t, uint64_t now, unsigned *retry_after_s)
{
    double wait;

    if (t->rate <= 0) {
        return true;
    }
    if (now > t->last) {
        t->level += (double)(now - t->last) / 1000.0 * t->rate;
        if (t->level > t->burst) {
            t->level = t->burst;
        }
    }
    t->last = now;
    if (t->level >= 1.0) {
        t->level -= 1.0;
        return true;
    }
    wait = ceil((1.0 - t->level) / t->rate);
    *retry_after_s = wait < 1 ? 1 : wait > 86400 ? 86400 : (unsigned)wait;
    return false;
}

enum auth_result auth_check(struct ledger_node *n, const char *authorization,
                            const char *peer_auth, enum route_access need,
                            struct auth_who *who)
{
    struct token *t;
    struct token *peer;

    memset(who, 0, sizeof *who);
    if (need == ACCESS_OPEN || n->cfg->tokens == NULL) {
        return AUTH_OK;
    }
    t = lookup(n, authorization);
    if (t == NULL) {
        return AUTH_UNAUTHORIZED;
    }
    snprintf(who->name, sizeof who->name, "%s", t->name);
    who->role = t->role;
    if (roleAccess(t->role) < need) {
        metrics_token_rejected(t->name, "forbidden");
        return AUTH_FORBIDDEN;
    }
    peer = peer_auth != NULL ? lookup(n, peer_auth) : NULL;
    if (peer != NULL && peer->peer_cred) {
        return AUTH_OK; /* Charged on the node the client called. */
    }
    if (!take(t, uv_now(n->loop), &who->retry_after_s)) {
        metrics_token_rejected(t->name, "rate_limited");
        return AUTH_RATE_LIMITED;
    }
    return AUTH_OK;
}

bool auth_is_node(struct ledger_node *n, const char *peer_auth)
{
    const struct token *t;

    if (n->cfg->tokens == NULL) {
        return true;
    }
    t = lookup(n, peer_auth);
    return t != NULL && t->peer_cred;
}

/* Group or other may read the file: anyone on the machine may hold every
 * role. Said at start and on each reload; not refused (a deployment may
 * rely on a group). */
static void warnMode(const char *path)
{
    struct stat st;

    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        ledger_log(LOG_WARN, NULL,
                   "token file %s has mode %03o: other local users may read "
                   "the tokens; chmod 600 it",
                   path, (unsigned)(st.st_mode & 0777));
    }
}

void auth_start(struct ledger_node *n)
{
    const struct token_set *s = n->cfg->tokens;
    size_t limited = 0;

    if (s == NULL) {
        ledger_log(LOG_INFO, NULL,
                   "no --token-file: every API request is allowed");
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        limited += s->tokens[i].rate > 0;
    }
    ledger_log(LOG_INFO, NULL,
               "token file %s: %zu tokens (%zu rate-limited); nodes "
               "authenticate as '%s'",
               n->cfg->token_file, s->n, limited, s->node->name);
    warnMode(n->cfg->token_file);
}

int auth_reload(struct ledger_node *n)
{
    struct ledger_config *cfg = n->cfg;
    struct token_set *s;
    char *node_secret;
    char err[600];
    size_t limited = 0;

    if (cfg->token_file == NULL) {
        ledger_log(LOG_INFO, NULL,
                   "SIGHUP: no --token-file: nothing to reload for tokens");
        return 0;
    }
    if (token_set_load(cfg->token_file, &s, err, sizeof err) != 0) {
        ledger_log(LOG_ERROR, NULL,
                   "SIGHUP: token file refused, keeping the %zu tokens "
                   "loaded before: --token-file %s",
                   cfg->tokens != NULL ? cfg->tokens->n : (size_t)0, err);
        return -1;
    }
    node_secret = strdup(s->node->secret);
    if (node_secret == NULL) {
        token_set_free(s);
        ledger_log(LOG_ERROR, NULL,
                   "SIGHUP: out of memory: keeping the old token file");
        return -1;
    }
    /* A token that keeps its NAME keeps what it has used of its bucket:
     * a reload is not a way to reset a limit. */
    for (size_t i = 0; i < s->n; i++) {
        struct token *t = &s->tokens[i];
        t->last = uv_now(n->loop);
        for (size_t j = 0; cfg->tokens != NULL && j < cfg->tokens->n; j++) {
            const struct token *o = &cfg->tokens->tokens[j];
            if (strcmp(o->name, t->name) == 0 && o->rate > 0 && t->rate > 0) {
                t->level = o->level < t->burst ? o->level : t->burst;
                t->last = o->last;
            }
        }
        limited += t->rate > 0;
    }
    token_set_free(cfg->tokens);
    cfg->tokens = s;
    if (cfg->token != NULL) {
        OPENSSL_cleanse(cfg->token, strlen(cfg->token));
    }
    free(cfg->token);
    cfg->token = node_secret;
    ledger_log(LOG_INFO, NULL,
               "SIGHUP: token file reloaded: %s: %zu tokens (%zu "
               "rate-limited); nodes authenticate as '%s'",
               cfg->token_file, s->n, limited, s->node->name);
    warnMode(cfg->token_file);
    return 0;
}
