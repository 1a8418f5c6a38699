/* ledgerctl verify: every node's hash chain, then agreement across nodes.
 *
 * Step 1 asks EVERY endpoint (not just the first live one) for GET
 * /v1/verify: {"ok","applied_position","hash","first_bad_position"}.
 * Step 2 takes P, the lowest applied_position among the nodes that answered,
 * and asks each for GET /v1/internal/hash?position=P ({"position","hash"}).
 * Two replicas agree up to P exactly when their hashes at P agree (the hash
 * chains every event to the one before it, CONTRACT.md "Events").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct verify_node {
    const char *endpoint;
    char error[512];   /* Non-empty: unreachable or bad answer. */
    int answered;      /* /v1/verify answered. */
    int ok;            /* Chain intact. */
    long long applied; /* applied_position. */
    char hash[160];
    long long first_bad; /* -1: null. */
    char hash_at_p[160];
};

/* GET path from endpoint i and decode a JSON object. */
static json_t *getJson(ledger_client *c, size_t i, const char *path, char *err,
                       size_t errlen)
{
    struct ledger_http_response r;
    json_t *v;
    json_error_t jerr;
    if (ledger_client_call_one(c, i, "GET", path, NULL, 0, &r) != 0) {
        snprintf(err, errlen, "unreachable (%s)", ledger_client_errmsg(c));
        return NULL;
    }
    if (r.status != 200) {
        char desc[400];
        ctlDescribeError(&r, desc, sizeof desc);
        snprintf(err, errlen, "GET %s failed: %s", path, desc);
        ledger_http_response_free(&r);
        return NULL;
    }
    v = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &jerr);
    ledger_http_response_free(&r);
    if (!json_is_object(v)) {
        snprintf(err, errlen, "GET %s: invalid JSON answer", path);
        json_decref(v);
        return NULL;
    }
    return v;
}

static void copyStr(char *dst, size_t len, const json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, len, "%s", s != NULL ? s : "");
}

int ctlCmdVerify(struct ctl *ctl, int argc, char **argv)
{
    const char *pos[1];
    struct verify_node *nodes;
    ledger_client *c;
    size_t n;
    long long p = -1;
    char problems[1024] = "";
    size_t used = 0;
    int agree = 1;
    int n_pos;
    int rv = ctlParseArgs(ctl, "verify", argc, argv, NULL, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    c = ctlClient(ctl);
    if (c == NULL) {
        return CTL_EXIT_USAGE;
    }
    n = ledger_client_endpoint_count(c);
    nodes = calloc(n, sizeof *nodes);
    if (nodes == NULL) {
        return ctlFail("verify: out of memory");
    }

#define PROBLEM(...)                                                           \
    do {                                                                       \
        if (used < sizeof problems) {                                          \
            int k_ = snprintf(problems + used, sizeof problems - used, "%s",   \
                              used > 0 ? "; " : "");                           \
            used += (size_t)k_;                                                \
        }                                                                      \
        if (used < sizeof problems) {                                          \
            int k_ = snprintf(problems + used, sizeof problems - used,         \
                              __VA_ARGS__);                                    \
            used += (size_t)k_;                                                \
        }                                                                      \
    } while (0)

    for (size_t i = 0; i < n; i++) {
        struct verify_node *vn = &nodes[i];
        json_t *v;
        const json_t *fb;
        vn->endpoint = ledger_client_endpoint(c, i);
        vn->first_bad = -1;
        v = getJson(c, i, "/v1/verify", vn->error, sizeof vn->error);
        if (v == NULL) {
            PROBLEM("%s %s", vn->endpoint, vn->error);
            continue;
        }
        vn->answered = 1;
        vn->ok = json_is_true(json_object_get(v, "ok"));
        vn->applied = (long long)json_integer_value(
            json_object_get(v, "applied_position"));
        copyStr(vn->hash, sizeof vn->hash, json_object_get(v, "hash"));
        fb = json_object_get(v, "first_bad_position");
        if (json_is_integer(fb)) {
            vn->first_bad = (long long)json_integer_value(fb);
        }
        json_decref(v);
        if (!vn->ok) {
            PROBLEM("%s: hash chain broken at position %lld", vn->endpoint,
                    vn->first_bad);
        }
        if (p < 0 || vn->applied < p) {
            p = vn->applied;
        }
    }

    /* Agreement at the lowest common position. */
    if (p > 0) {
        char path[64];
        const char *ref = NULL;
        snprintf(path, sizeof path, "/v1/internal/hash?position=%lld", p);
        for (size_t i = 0; i < n; i++) {
            struct verify_node *vn = &nodes[i];
            char err[512];
            json_t *v;
            if (vn->error[0] != '\0') {
                continue;
            }
            if (vn->applied == p) {
                snprintf(vn->hash_at_p, sizeof vn->hash_at_p, "%s", vn->hash);
            } else {
                v = getJson(c, i, path, err, sizeof err);
                if (v == NULL) {
                    snprintf(vn->error, sizeof vn->error, "%s", err);
                    PROBLEM("%s %s", vn->endpoint, err);
                    continue;
                }
                copyStr(vn->hash_at_p, sizeof vn->hash_at_p,
                        json_object_get(v, "hash"));
                json_decref(v);
            }
            if (ref == NULL) {
                ref = vn->hash_at_p;
            } else if (strcmp(ref, vn->hash_at_p) != 0) {
                agree = 0;
            }
        }
        if (!agree) {
            PROBLEM("nodes disagree on the hash at position %lld", p);
        }
    }

    if (ctl->json) {
        json_t *out = json_pack("{sbsIs[]}", "ok", used == 0, "position",
                                (json_int_t)(p < 0 ? 0 : p), "nodes");
        json_t *arr = json_object_get(out, "nodes");
        for (size_t i = 0; i < n; i++) {
            struct verify_node *vn = &nodes[i];
            json_t *o = json_pack("{ssso}", "endpoint", vn->endpoint,
                                  "reachable", json_boolean(vn->answered));
            if (vn->error[0] != '\0') {
                json_object_set_new(o, "error", json_string(vn->error));
            }
            if (vn->answered) {
                json_object_set_new(o, "ok", json_boolean(vn->ok));
                json_object_set_new(o, "applied_position",
                                    json_integer(vn->applied));
                json_object_set_new(o, "hash", json_string(vn->hash));
                json_object_set_new(o, "first_bad_position",
                                    vn->first_bad < 0
                                        ? json_null()
                                        : json_integer(vn->first_bad));
                json_object_set_new(o, "hash_at_position",
                                    vn->hash_at_p[0] != '\0'
                                        ? json_string(vn->hash_at_p)
                                        : json_null());
            }
            json_array_append_new(arr, o);
        }
        ctlPrintJson(out);
        json_decref(out);
    } else {
        printf("%-21s %-5s %16s %-18s %s\n", "ENDPOINT", "OK",
               "APPLIED_POSITION", "FIRST_BAD", "HASH");
        for (size_t i = 0; i < n; i++) {
            struct verify_node *vn = &nodes[i];
            char fb[32] = "-";
            if (!vn->answered) {
                printf("%-21s %-5s %16s %-18s %s\n", vn->endpoint, "-", "-",
                       "-", vn->error);
                continue;
            }
            if (vn->first_bad >= 0) {
                snprintf(fb, sizeof fb, "%lld", vn->first_bad);
            }
            printf("%-21s %-5s %16lld %-18s %s\n", vn->endpoint,
                   vn->ok ? "yes" : "NO", vn->applied, fb,
                   vn->hash[0] != '\0' ? vn->hash : "-");
        }
        if (p > 0) {
            printf("hash at position %lld: %s\n", p,
                   agree ? "all nodes agree" : "NODES DISAGREE");
        } else if (p == 0) {
            printf("no events yet: nothing to compare\n");
        }
    }
    free(nodes);
#undef PROBLEM
    if (used > 0) {
        return ctlFail("verify failed: %s", problems);
    }
    return CTL_EXIT_OK;
}
