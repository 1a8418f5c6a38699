/* The leader's view of the members beyond Raft's: see members_poll.h. */
#include "members_poll.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "api.h"
#include "node.h"

#define MEMBERS_POLL__TIMEOUT_MS 2000 /* Per poll. */
#define MEMBERS_POLL__SPARE_MIN_MS                                             \
    1500 /* A spare is unreachable after                                       \
            max(this, --election-ms) without                                   \
            an answer: 3 polls. */

/* One member as this leader tracks it. */
struct tracked {
    uint64_t id;          /* 0: free slot. */
    uint64_t seen_at;     /* uv_now ms when this leader first saw it. */
    uint64_t answered_at; /* Last good status answer; 0: none yet. */
    uint64_t stable_at;   /* Start of its reachable stretch; 0: not
                             reachable at the last tick. */
    bool busy;            /* A poll is in flight. */
    bool present;         /* In the configuration at the last tick. */
    int64_t disk_free;
    int64_t disk_size;
    char version[MEMBERS_VERSION_MAX];
};

struct members_poll {
    struct ledger_node *n;
    uv_timer_t timer;
    struct tracked t[MEMBERS_POLL_MAX];
    bool leading;     /* This node led at the last tick. */
    uint64_t lead_at; /* uv_now ms of the first tick as leader. */
    unsigned inflight;
    bool closing;
    bool timer_closed;
};

struct poll {
    members_poll *p;
    uint64_t id;
};

static void maybeFree(members_poll *p)
{
    if (p->closing && p->timer_closed && p->inflight == 0) {
        free(p);
    }
}

static struct tracked *find(members_poll *p, uint64_t id)
{
    size_t i;
    for (i = 0; i < MEMBERS_POLL_MAX; i++) {
        if (p->t[i].id == id) {
            return &p->t[i];
        }
    }
    return NULL;
}

/* The entry of `id`, created (seen now) if there is room; NULL if not. */
static struct tracked *track(members_poll *p, uint64_t id, uint64_t now)
{
    struct tracked *t = find(p, id);
    if (t == NULL && (t = find(p, 0)) != NULL) {
        memset(t, 0, sizeof *t);
        t->id = id;
        t->seen_at = now;
        t->disk_free = -1;
        t->disk_size = -1;
    }
    return t;
}

int members_disk_space(const char *dir, int64_t *free_bytes,
                       int64_t *size_bytes)
{
    struct statvfs s;
    if (statvfs(dir, &s) != 0) {
        *free_bytes = -1;
        *size_bytes = -1;
        return -1;
    }
    *free_bytes = (int64_t)s.f_bavail * (int64_t)s.f_frsize;
    *size_bytes = (int64_t)s.f_blocks * (int64_t)s.f_frsize;
    return 0;
}

static int64_t jsonInt(json_t *v, const char *key, int64_t def)
{
    json_t *x = json_object_get(v, key);
    return json_is_integer(x) ? (int64_t)json_integer_value(x) : def;
}

static void pollCb(void *arg, int status,
                   const struct http_client_response *resp)
{
    struct poll *q = arg;
    members_poll *p = q->p;
    struct tracked *t = find(p, q->id);
    json_t *v;
    json_t *applied;

    p->inflight--;
    if (t != NULL) {
        t->busy = false;
    }
    if (!p->closing && status == 0 && resp->status == 200 &&
        (v = json_loadb(resp->body, resp->body_len, 0, NULL)) != NULL) {
        applied = json_object_get(v, "applied_index");
        if (json_is_integer(applied) &&
            json_integer_value(json_object_get(v, "id")) == (json_int_t)q->id) {
            ledger_repl_note_applied(p->n->repl, q->id,
                                     (uint64_t)json_integer_value(applied));
            if (t != NULL) {
                const char *ver =
                    json_string_value(json_object_get(v, "version"));
                t->answered_at = uv_now(p->n->loop);
                t->disk_free = jsonInt(v, "disk_free_bytes", -1);
                t->disk_size = jsonInt(v, "disk_size_bytes", -1);
                snprintf(t->version, sizeof t->version, "%s",
                         ver != NULL ? ver : "");
            }
        }
        json_decref(v);
    }
    free(q);
    maybeFree(p);
}

/* A spare hears nothing from the leader: it counts as reachable while it
 * answers the status poll (or, never asked yet, while it is new). */
static bool spareReachable(const members_poll *p, const struct tracked *t,
                           uint64_t now)
{
    uint64_t limit = p->n->cfg->election_ms;
    uint64_t since = t->answered_at != 0 ? t->answered_at : t->seen_at;
    if (limit < MEMBERS_POLL__SPARE_MIN_MS) {
        limit = MEMBERS_POLL__SPARE_MIN_MS;
    }
    return now - since <= limit;
}

static bool reachableNow(const members_poll *p, const struct tracked *t,
                         const struct ledger_repl_member_info *m, uint64_t now)
{
    if (m->id == p->n->cfg->id) {
        return true;
    }
    if (m->role == REPL_ROLE_SPARE) {
        return t == NULL || spareReachable(p, t, now);
    }
    return strcmp(m->state, "unreachable") != 0;
}

static void startPoll(members_poll *p, struct tracked *t, const char *addr,
                      const char *headers)
{
    struct poll *q = malloc(sizeof *q);
    if (q == NULL) {
        return;
    }
    q->p = p;
    q->id = t->id;
    if (api_peer_request(p->n, addr, "GET", "/v1/internal/status", headers,
                         NULL, 0, MEMBERS_POLL__TIMEOUT_MS, pollCb, q) != 0) {
        free(q);
        return;
    }
    p->inflight++;
    t->busy = true;
}

/* A new leader starts its own view: contact and stability are measured
 * afresh; what members last reported stays. */
static void startLeading(members_poll *p, uint64_t now)
{
    size_t i;
    p->leading = true;
    p->lead_at = now;
    for (i = 0; i < MEMBERS_POLL_MAX; i++) {
        p->t[i].seen_at = now;
        p->t[i].answered_at = 0;
        p->t[i].stable_at = 0;
    }
}

static void tickCb(uv_timer_t *timer)
{
    members_poll *p = timer->data;
    struct ledger_node *n = p->n;
    struct ledger_repl_status st;
    struct ledger_repl_member_info m[MEMBERS_POLL_MAX];
    uint64_t now = uv_now(n->loop);
    char headers[API_PEER_HEADERS_MAX];
    size_t off;
    size_t count;
    size_t i;

    ledger_repl_status(n->repl, &st);
    if (!st.is_leader || n->shutting_down) {
        p->leading = false;
        return;
    }
    if (!p->leading) {
        startLeading(p, now);
    }
    /* X-Ledger-Leader: spares learn who leads from this poll (peer.c). */
    off = (size_t)snprintf(
        headers, sizeof headers,
        "X-Ledger-Forwarded: 1\r\nX-Ledger-Leader: %llu %llu %s\r\n",
        (unsigned long long)n->cfg->id, (unsigned long long)st.term,
        n->cfg->api_addr);
    api_peer_auth_headers(n, true, true, headers, sizeof headers, &off);
    for (i = 0; i < MEMBERS_POLL_MAX; i++) {
        p->t[i].present = false;
    }
    count = ledger_repl_members(n->repl, m, MEMBERS_POLL_MAX);
    for (i = 0; i < count && i < MEMBERS_POLL_MAX; i++) {
        struct tracked *t = track(p, m[i].id, now);
        if (t == NULL) {
            continue;
        }
        t->present = true;
        if (!reachableNow(p, t, &m[i], now)) {
            t->stable_at = 0;
        } else if (t->stable_at == 0) {
            t->stable_at = m[i].id == n->cfg->id ? p->lead_at : now;
        }
        if (m[i].id != n->cfg->id && m[i].api_addr[0] != '\0' && !t->busy) {
            startPoll(p, t, m[i].api_addr, headers);
        }
    }
    /* Forget removed members (an answer still in flight finds nothing). */
    for (i = 0; i < MEMBERS_POLL_MAX; i++) {
        if (!p->t[i].present && !p->t[i].busy) {
            p->t[i].id = 0;
        }
    }
}

size_t members_poll_view(struct ledger_node *n, members_poll *p,
                         struct member_view *out, size_t max)
{
    struct ledger_repl_member_info m[MEMBERS_POLL_MAX];
    struct ledger_repl_status st;
    uint64_t now = uv_now(n->loop);
    size_t count;
    size_t i;

    ledger_repl_status(n->repl, &st);
    count = ledger_repl_members(n->repl, m, MEMBERS_POLL_MAX);
    for (i = 0; i < count && i < max && i < MEMBERS_POLL_MAX; i++) {
        struct member_view *v = &out[i];
        struct tracked *t = p != NULL ? find(p, m[i].id) : NULL;
        bool self = m[i].id == n->cfg->id;

        memset(v, 0, sizeof *v);
        v->r = m[i];
        v->view_known = st.is_leader && p != NULL && p->leading;
        v->stable_ms = -1;
        v->disk_free = -1;
        v->disk_size = -1;
        if (self) {
            members_disk_space(n->cfg->data_dir, &v->disk_free, &v->disk_size);
            snprintf(v->version, sizeof v->version, "%s", LEDGER_VERSION);
        }
        if (v->view_known) {
            if (!self && m[i].role == REPL_ROLE_SPARE && t != NULL) {
                if (!spareReachable(p, t, now)) {
                    v->r.state = "unreachable";
                }
                v->r.last_contact_ms =
                    t->answered_at != 0 ? (int64_t)(now - t->answered_at) : -1;
            }
            if (!self && t != NULL) {
                v->disk_free = t->disk_free;
                v->disk_size = t->disk_size;
                snprintf(v->version, sizeof v->version, "%s", t->version);
            }
        }
        v->reachable = strcmp(v->r.state, "unreachable") != 0;
        if (v->view_known && v->reachable) {
            /* Reachable now, not yet at a tick: stable for 0 ms. */
            uint64_t since = t != NULL && t->stable_at != 0 ? t->stable_at
                             : self                         ? p->lead_at
                                                            : now;
            v->stable_ms = (int64_t)(now - since);
        }
    }
    return count;
}

int members_fault_tolerance(const struct member_view *v, size_t n)
{
    size_t voters = 0;
    size_t live = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (v[i].r.role == REPL_ROLE_VOTER) {
            voters++;
            live += v[i].reachable;
        }
    }
    return live > voters / 2 + 1 ? (int)(live - (voters / 2 + 1)) : 0;
}

members_poll *members_poll_start(struct ledger_node *n)
{
    members_poll *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    uv_timer_init(n->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, tickCb, MEMBERS_POLL_MS, MEMBERS_POLL_MS);
    return p;
}

static void timerClosed(uv_handle_t *h)
{
    members_poll *p = h->data;
    p->timer_closed = true;
    maybeFree(p);
}

void members_poll_close(members_poll *p)
{
    if (p == NULL) {
        return;
    }
    p->closing = true;
    uv_close((uv_handle_t *)&p->timer, timerClosed);
}
