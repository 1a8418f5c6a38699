/* Automatic roles: the leader's once-a-second check, its bookkeeping of
 * health, and its metrics. See roles.h. */
#include "roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "api.h"
#include "log.h"
#include "members_poll.h"

#define ROLES__MAX MEMBERS_POLL_MAX
_Static_assert(ROLES__MAX <= ROLES_TRACK_MAX, "every member tracked");

struct roles_manager {
    struct ledger_node *n;
    uv_timer_t timer;
    struct roles_tracker tracker; /* Health since this node leads. */
    bool leading;
    uint64_t not_until; /* uv_now ms before which no change starts. */
    bool inflight;
    bool closing;
    bool timer_closed;
    bool has_last;
    struct roles_record last;
    uint64_t changes[ROLES_REASON__COUNT][3]; /* [reason][new role] */
    uint64_t failures;
};

static uint64_t wallMs(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int roles_targets(struct ledger_node *n, struct roles_targets *out)
{
    struct ledger_roles r;
    memset(out, 0, sizeof *out);
    if (ledger_store_get_roles(n->store, &r) != 0) {
        return -1;
    }
    out->voters = r.voters;
    out->standbys = r.standbys;
    out->dead_after_s =
        r.dead_after_s != 0 ? r.dead_after_s : ROLES_DEAD_AFTER_S_DEFAULT;
    return 0;
}

static void maybeFree(roles_manager *m)
{
    if (m->closing && m->timer_closed && !m->inflight) {
        free(m);
    }
}

static void changeDone(void *arg, int status, const char *msg)
{
    roles_manager *m = arg;
    struct ledger_node *n = m->n;
    struct roles_change *c = &m->last.c;

    m->inflight = false;
    m->last.running = false;
    if (status == 0) {
        m->changes[c->reason][c->to]++;
        if (!m->closing) {
            ledger_log(LOG_INFO, NULL, "roles: member %llu is now %s (%s: %s)",
                       (unsigned long long)c->id, ledger_repl_role_name(c->to),
                       roles_reason_name(c->reason), c->why);
        }
    } else {
        m->failures++;
        m->last.failed = true;
        snprintf(m->last.error, sizeof m->last.error, "%s",
                 msg != NULL ? msg : "failed");
        if (!m->closing) {
            ledger_log(LOG_WARN, NULL,
                       "roles: member %llu %s -> %s failed: %s; next "
                       "change in %d s",
                       (unsigned long long)c->id,
                       ledger_repl_role_name(c->from),
                       ledger_repl_role_name(c->to), m->last.error,
                       ROLES_RETRY_MS / 1000);
            m->not_until = uv_now(n->loop) + ROLES_RETRY_MS;
        }
    }
    maybeFree(m);
}

static void tickCb(uv_timer_t *t)
{
    static struct member_view v[ROLES__MAX]; /* Loop thread only. */
    roles_manager *m = t->data;
    struct ledger_node *n = m->n;
    struct ledger_repl_status st;
    struct roles_member rm[ROLES__MAX];
    struct roles_seen seen[ROLES__MAX];
    struct roles_targets tg;
    struct roles_change c;
    uint64_t now = uv_now(n->loop);
    size_t count;
    size_t i;
    int rv;

    ledger_repl_status(n->repl, &st);
    if (!st.is_leader || n->shutting_down) {
        m->leading = false;
        return;
    }
    if (!m->leading) {
        m->leading = true;
        roles_tracker_reset(&m->tracker, now);
    }
    count = members_poll_view(n, n->applied_poll, v, ROLES__MAX);
    count = count < ROLES__MAX ? count : ROLES__MAX;
    for (i = 0; i < count; i++) {
        const struct ledger_repl_member_info *r = &v[i].r;
        seen[i].id = r->id;
        seen[i].role = r->role;
        seen[i].zone = r->zone;
        seen[i].self = r->id == n->cfg->id;
        seen[i].reachable = v[i].reachable;
        seen[i].last_contact_ms = r->last_contact_ms;
        seen[i].lag_entries = r->lag_entries;
    }
    roles_observe(&m->tracker, now, seen, count, rm);
    /* A new leader first watches for two election timeouts: until it has
     * heard from every live member, Raft shows them unreachable. */
    if (m->inflight || now < m->not_until ||
        now - m->tracker.lead_at < 2ull * n->cfg->election_ms ||
        ledger_repl_change_busy(n->repl) || roles_targets(n, &tg) != 0 ||
        tg.voters == 0 || !roles_next(&tg, rm, count, &c)) {
        return;
    }
    ledger_log(LOG_INFO, NULL, "roles: member %llu %s -> %s (%s: %s)",
               (unsigned long long)c.id, ledger_repl_role_name(c.from),
               ledger_repl_role_name(c.to), roles_reason_name(c.reason), c.why);
    memset(&m->last, 0, sizeof m->last);
    m->last.c = c;
    m->last.started_ms = wallMs();
    m->last.running = true;
    m->has_last = true;
    m->inflight = true;
    rv = ledger_repl_assign(n->repl, c.id, c.to, 0, changeDone, m);
    if (rv != 0) {
        changeDone(m, rv, ledger_repl_errmsg(n->repl));
    }
}

roles_manager *roles_start(struct ledger_node *n)
{
    roles_manager *m = calloc(1, sizeof *m);
    if (m == NULL) {
        ledger_log(LOG_ERROR, NULL,
                   "roles: out of memory: automatic roles are off");
        return NULL;
    }
    m->n = n;
    uv_timer_init(n->loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, tickCb, ROLES_TICK_MS, ROLES_TICK_MS);
    return m;
}

static void timerClosed(uv_handle_t *h)
{
    roles_manager *m = h->data;
    m->timer_closed = true;
    maybeFree(m);
}

void roles_close(roles_manager *m)
{
    if (m == NULL) {
        return;
    }
    m->closing = true;
    uv_close((uv_handle_t *)&m->timer, timerClosed);
}

bool roles_last(const roles_manager *m, struct roles_record *out)
{
    if (m == NULL || !m->has_last) {
        return false;
    }
    *out = m->last;
    return true;
}

char *roles_metrics_render(struct ledger_node *n, size_t *len)
{
    roles_manager *m = n->roles;
    struct roles_targets t;
    static const int roles[3] = {REPL_ROLE_VOTER, REPL_ROLE_STANDBY,
                                 REPL_ROLE_SPARE};
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL) {
        return NULL;
    }
    if (roles_targets(n, &t) == 0) {
        fprintf(f,
                "# HELP ledger_roles_target_voters Automatic roles: voters "
                "wanted (0: manual roles).\n"
                "# TYPE ledger_roles_target_voters gauge\n"
                "ledger_roles_target_voters %u\n"
                "# HELP ledger_roles_target_standbys Automatic roles: "
                "standbys wanted.\n"
                "# TYPE ledger_roles_target_standbys gauge\n"
                "ledger_roles_target_standbys %u\n"
                "# HELP ledger_roles_dead_after_seconds Automatic roles: a "
                "voter unreachable this long is replaced.\n"
                "# TYPE ledger_roles_dead_after_seconds gauge\n"
                "ledger_roles_dead_after_seconds %u\n",
                t.voters, t.standbys, t.dead_after_s);
    }
    fprintf(f, "# HELP ledger_roles_changes_total Role changes made by "
               "automatic roles while this node led, by reason and new "
               "role.\n"
               "# TYPE ledger_roles_changes_total counter\n");
    for (int r = 0; r < ROLES_REASON__COUNT; r++) {
        for (int k = 0; k < 3; k++) {
            fprintf(
                f,
                "ledger_roles_changes_total{reason=\"%s\",role=\"%s\"} "
                "%llu\n",
                roles_reason_name((enum roles_reason)r),
                ledger_repl_role_name(roles[k]),
                (unsigned long long)(m != NULL ? m->changes[r][roles[k]] : 0));
        }
    }
    fprintf(f,
            "# HELP ledger_roles_change_failures_total Role changes by "
            "automatic roles that failed.\n"
            "# TYPE ledger_roles_change_failures_total counter\n"
            "ledger_roles_change_failures_total %llu\n",
            (unsigned long long)(m != NULL ? m->failures : 0));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}
