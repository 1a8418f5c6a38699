/* API addresses of members, for the leader callback, /v1/cluster and the
 * catch-up: the replicated members table in the store first (every node
 * learns it from INIT and MEMBER_PUT ops, and from snapshots), else the
 * --bootstrap list given on the command line. Calls nothing else in
 * replication/. */
#include <stdio.h>

#include "repl_int.h"

struct apiLookup {
    uint64_t id;
    char *buf;
    size_t len;
    bool found;
};

static int apiLookupCb(void *arg, uint64_t id, const char *ra, const char *aa)
{
    struct apiLookup *l = arg;
    (void)ra;
    if (id == l->id) {
        snprintf(l->buf, l->len, "%s", aa);
        l->found = true;
        return 1;
    }
    return 0;
}

/* API address of member `id`: from the store (replicated), else from the
 * bootstrap list given on the command line. */
bool repl__member_api(ledger_repl *r, uint64_t id, char *buf, size_t len)
{
    struct apiLookup l = {id, buf, len, false};
    size_t i;
    if (id == r->cfg.id) {
        snprintf(buf, len, "%s", r->api_addr);
        return true;
    }
    ledger_store_list_members(r->store, apiLookupCb, &l);
    if (l.found) {
        return true;
    }
    for (i = 0; i < r->n_bootstrap; i++) {
        if (r->bootstrap[i].id == id) {
            snprintf(buf, len, "%s", r->bootstrap[i].api_addr);
            return true;
        }
    }
    return false;
}
