/* Unit tests for store/: hash chain, append decisions, transactions, meta,
 * checkpoints, members, reads, migrations and verification. Every test runs
 * on a real SQLite file in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tmpdir.h"

/* ---- Fixture ----------------------------------------------------------- */

struct fixture {
    char dir[128];
    char path[256];
    ledger_store *s;
};

static int setUp(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    assert_int_equal(tmpdirCreate(f->dir, sizeof f->dir), 0);
    snprintf(f->path, sizeof f->path, "%s/ledger.db", f->dir);
    assert_int_equal(ledger_store_open(f->path, &f->s, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int tearDown(void **state)
{
    struct fixture *f = *state;
    ledger_store_close(f->s);
    assert_int_equal(tmpdirRemove(f->dir), 0);
    free(f);
    return 0;
}

#define ASSERT_OK(EXPR)                                                        \
    do {                                                                       \
        int rv_ = (EXPR);                                                      \
        if (rv_ != 0) {                                                        \
            fail_msg("%s -> %d: %s", #EXPR, rv_, ledger_store_errmsg(f->s));   \
        }                                                                      \
    } while (0)

/* Reopen the fixture's store (close, then open the same file). */
static void reopen(struct fixture *f)
{
    char err[256];
    ledger_store_close(f->s);
    f->s = NULL;
    if (ledger_store_open(f->path, &f->s, err, sizeof err) != 0) {
        fail_msg("reopen: %s", err);
    }
}

/* Run one SQL statement on the file through a separate raw connection. */
static void rawExec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("raw sql %s: %s", sql, msg);
    }
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static struct ledger_event_in mkEvent(const char *type, const char *id,
                                      const char *data)
{
    struct ledger_event_in e = {type, id, data, strlen(data)};
    return e;
}

/* Append one event in its own transaction. */
static struct ledger_append_result appendOne(struct fixture *f,
                                             const char *stream, const char *id,
                                             const char *data, uint64_t index)
{
    struct ledger_event_in e = mkEvent("t", id, data);
    struct ledger_append_result r;
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, stream, &e, 1, false, 0, 1000, &r));
    ASSERT_OK(ledger_store_commit(f->s, index));
    return r;
}

static uint64_t headPosition(struct fixture *f)
{
    struct ledger_store_state st;
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    return st.position;
}

/* Collected copies of events from a read. */
struct collected {
    size_t n;
    uint64_t position[64];
    uint64_t seq[64];
    char stream[64][32];
    char data[64][64];
    uint8_t hash[64][LEDGER_HASH_LEN];
    int stop_after; /* Return 42 after that many events (0: never). */
};

static int collectCb(void *arg, const struct ledger_event *ev)
{
    struct collected *c = arg;
    assert_true(c->n < 64);
    c->position[c->n] = ev->position;
    c->seq[c->n] = ev->seq;
    snprintf(c->stream[c->n], sizeof c->stream[0], "%s", ev->stream);
    snprintf(c->data[c->n], sizeof c->data[0], "%.*s", (int)ev->data_len,
             ev->data);
    memcpy(c->hash[c->n], ev->hash, LEDGER_HASH_LEN);
    c->n++;
    return c->stop_after != 0 && (int)c->n == c->stop_after ? 42 : 0;
}

/* ---- Independent hash --------------------------------------------------- */

/* The layout from store.h / docs/store.md, written out byte by byte with no
 * code shared with store/hash.c: prev | u64 position | str stream | u64 seq |
 * str type | str id | i64 ts | str data, each str a u32 length + bytes. */
static void refHash(const uint8_t prev[32], uint64_t position,
                    const char *stream, uint64_t seq, const char *type,
                    const char *id, int64_t ts, const char *data,
                    uint8_t out[32])
{
    uint8_t buf[4096];
    size_t n = 0;
    const char *strs[4] = {stream, type, id ? id : "", data};
    uint64_t u;

    memcpy(buf, prev, 32);
    n = 32;
    for (int i = 7; i >= 0; i--) {
        buf[n++] = (uint8_t)(position >> (8 * i));
    }
    for (int field = 0; field < 4; field++) {
        uint32_t len = (uint32_t)strlen(strs[field]);
        for (int i = 3; i >= 0; i--) {
            buf[n++] = (uint8_t)(len >> (8 * i));
        }
        memcpy(buf + n, strs[field], len);
        n += len;
        if (field == 0) {
            for (int i = 7; i >= 0; i--) {
                buf[n++] = (uint8_t)(seq >> (8 * i));
            }
        }
        if (field == 2) {
            u = (uint64_t)ts;
            for (int i = 7; i >= 0; i--) {
                buf[n++] = (uint8_t)(u >> (8 * i));
            }
        }
    }
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL), 1);
    assert_int_equal(len, 32);
}

/* Worked example of docs/store.md: first event of the chain. */
static const char *const DOC_EXAMPLE_HASH =
    "bfda257171676742f02fa9359318a6bff942f8f45075e97c15cebf0981199de8";

/* The documented example, recomputed three ways: from the raw layout here,
 * through ledger_hash_event, and through a real append. */
static void test_hash_worked_example(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zeros[32];
    const char *data = "{\"amount\":42}";
    uint8_t ref[32];
    uint8_t lib[32];
    char hex[LEDGER_HASH_HEX_LEN + 1];
    struct ledger_event_in e = {"deposited", "tx-1", data, strlen(data)};
    struct ledger_append_result r;

    refHash(zeros, 1, "account-7", 1, "deposited", "tx-1", 1700000000000, data,
            ref);
    ledger_hash_event(zeros, 1, "account-7", 1, "deposited", "tx-1",
                      1700000000000, data, strlen(data), lib);
    assert_memory_equal(ref, lib, 32);
    ledger_hash_hex(lib, hex);
    assert_string_equal(hex, DOC_EXAMPLE_HASH);

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "account-7", &e, 1, false, 0,
                                  1700000000000, &r));
    ASSERT_OK(ledger_store_commit(f->s, 1));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.position, 1);
    assert_memory_equal(r.hash, ref, 32);
}

/* A missing id and an empty id hash the same (length 0), a negative ts is
 * two's complement, and every field changes the digest. */
static void test_hash_fields(void **state)
{
    (void)state;
    static const uint8_t zeros[32];
    uint8_t a[32], b[32], ref[32];

    ledger_hash_event(zeros, 3, "s", 2, "t", NULL, -5, "{}", 2, a);
    ledger_hash_event(zeros, 3, "s", 2, "t", "", -5, "{}", 2, b);
    assert_memory_equal(a, b, 32);
    refHash(zeros, 3, "s", 2, "t", NULL, -5, "{}", ref);
    assert_memory_equal(a, ref, 32);

    ledger_hash_event(zeros, 4, "s", 2, "t", NULL, -5, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
    ledger_hash_event(zeros, 3, "s", 3, "t", NULL, -5, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
    ledger_hash_event(zeros, 3, "s", 2, "t", "x", -5, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
    ledger_hash_event(zeros, 3, "s", 2, "t", NULL, -4, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
    /* Length prefixes keep field boundaries: ("ab","c") != ("a","bc"). */
    ledger_hash_event(zeros, 1, "ab", 1, "c", NULL, 0, "{}", 2, a);
    ledger_hash_event(zeros, 1, "a", 1, "bc", NULL, 0, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
}

/* hashEvent packs the fields before the data into a 1 KiB stack buffer,
 * or a heap one when they do not fit: both give the layout's digest, on
 * either side of the limit. */
static void test_hash_long_fields(void **state)
{
    (void)state;
    static const uint8_t prev[32] = {1, 2, 3};
    char type[1200];
    char id[300];
    uint8_t a[32], ref[32];

    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    for (size_t len = 900; len < sizeof type; len += 50) {
        memset(type, 't', len);
        type[len] = '\0';
        ledger_hash_event(prev, 9, "s", 4, type, id, 77, "[1]", 3, a);
        refHash(prev, 9, "s", 4, type, id, 77, "[1]", ref);
        assert_memory_equal(a, ref, 32);
        ledger_hash_event(prev, 9, "s", 4, type, NULL, 77, "[1]", 3, a);
        refHash(prev, 9, "s", 4, type, NULL, 77, "[1]", ref);
        assert_memory_equal(a, ref, 32);
    }
}

static void test_hash_hex_parse(void **state)
{
    (void)state;
    uint8_t h[32], back[32];
    char hex[LEDGER_HASH_HEX_LEN + 1];
    for (int i = 0; i < 32; i++) {
        h[i] = (uint8_t)(i * 37 + 1);
    }
    ledger_hash_hex(h, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "0126", 4);   /* 1, 38 */
    assert_string_equal(hex + 60, "577c"); /* 1111 % 256, 1148 % 256 */
    assert_int_equal(ledger_hash_parse(hex, back), 0);
    assert_memory_equal(h, back, 32);
    hex[5] = 'G';
    assert_int_equal(ledger_hash_parse(hex, back), LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_hash_parse("abcd", back), LEDGER_STORE_EINVAL);
    ledger_hash_hex(h, hex);
    char longer[70];
    snprintf(longer, sizeof longer, "%s00", hex);
    assert_int_equal(ledger_hash_parse(longer, back), LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_hash_parse(NULL, back), LEDGER_STORE_EINVAL);
}

static void test_stream_name_valid(void **state)
{
    (void)state;
    char name[300];
    assert_true(ledger_stream_name_valid("orders-1.a_b:c", 14));
    assert_false(ledger_stream_name_valid("", 0));
    assert_false(ledger_stream_name_valid(NULL, 3));
    assert_false(ledger_stream_name_valid("a b", 3));
    assert_false(ledger_stream_name_valid("a/b", 3));
    assert_false(ledger_stream_name_valid("caf\xc3\xa9", 5));
    memset(name, 'x', sizeof name);
    assert_true(ledger_stream_name_valid(name, 255));
    assert_false(ledger_stream_name_valid(name, 256));
}

/* ---- Append ------------------------------------------------------------- */

/* Events of interleaved streams get global positions and per-stream seqs,
 * and every stored hash recomputes and links to the previous one. */
static void test_append_interleaved(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zeros[32];
    struct ledger_event_in two[2] = {mkEvent("t", NULL, "{\"n\":1}"),
                                     mkEvent("t", NULL, "{\"n\":2}")};
    struct ledger_append_result r;
    struct collected c = {0};
    uint8_t ref[32];

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "a", two, 2, false, 0, 10, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.first_seq, 1);
    assert_int_equal(r.last_seq, 2);
    assert_int_equal(r.position, 2);
    ASSERT_OK(ledger_store_append(f->s, "b", two, 1, false, 0, 11, &r));
    assert_int_equal(r.first_seq, 1);
    assert_int_equal(r.last_seq, 1);
    assert_int_equal(r.position, 3);
    ASSERT_OK(ledger_store_append(f->s, "a", two + 1, 1, false, 0, 12, &r));
    assert_int_equal(r.first_seq, 3);
    assert_int_equal(r.last_seq, 3);
    assert_int_equal(r.position, 4);
    ASSERT_OK(ledger_store_commit(f->s, 4));

    ASSERT_OK(ledger_store_read_positions(f->s, 1, 100, collectCb, &c));
    assert_int_equal(c.n, 4);
    const char *streams[4] = {"a", "a", "b", "a"};
    const uint64_t seqs[4] = {1, 2, 1, 3};
    const int64_t ts[4] = {10, 10, 11, 12};
    const uint8_t *prev = zeros;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(c.position[i], i + 1);
        assert_string_equal(c.stream[i], streams[i]);
        assert_int_equal(c.seq[i], seqs[i]);
        refHash(prev, i + 1, streams[i], seqs[i], "t", NULL, ts[i], c.data[i],
                ref);
        assert_memory_equal(c.hash[i], ref, 32);
        prev = c.hash[i];
    }
    assert_memory_equal(r.hash, c.hash[3], 32);
}

/* Retrying a batch whose ids are all stored returns the original result and
 * appends nothing. */
static void test_append_duplicate_retry(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in batch[3] = {mkEvent("t", "k1", "{}"),
                                       mkEvent("t", "k2", "{}"),
                                       mkEvent("t", "k3", "{}")};
    struct ledger_append_result first, again;

    appendOne(f, "s", NULL, "{}", 1);     /* position 1, seq 1 */
    appendOne(f, "other", "k1", "{}", 2); /* same id, other stream */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", batch, 3, false, 0, 5, &first));
    ASSERT_OK(ledger_store_commit(f->s, 3));
    assert_int_equal(first.outcome, LEDGER_APPEND_OK);
    assert_int_equal(first.first_seq, 2);
    assert_int_equal(first.last_seq, 4);
    assert_int_equal(first.position, 5);
    appendOne(f, "s", NULL, "{}", 4); /* position 6 */

    /* Same batch, even with a stale expected version: DUPLICATE wins. */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", batch, 3, true, 1, 99, &again));
    ASSERT_OK(ledger_store_commit(f->s, 5));
    assert_int_equal(again.outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(again.first_seq, first.first_seq);
    assert_int_equal(again.last_seq, first.last_seq);
    assert_int_equal(again.position, first.position);
    assert_memory_equal(again.hash, first.hash, 32);
    assert_int_equal(headPosition(f), 6);

    /* A subset, in another order, is the subset's original result. */
    struct ledger_event_in sub[2] = {batch[1], batch[0]};
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", sub, 2, false, 0, 99, &again));
    ASSERT_OK(ledger_store_rollback(f->s));
    assert_int_equal(again.outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(again.first_seq, 2);
    assert_int_equal(again.last_seq, 3);
    assert_int_equal(again.position, 4);
    uint8_t h4[32];
    ASSERT_OK(ledger_store_hash_at(f->s, 4, h4));
    assert_memory_equal(again.hash, h4, 32);
}

/* Mixed stored/new ids, stored ids plus an event without id, and an id
 * repeated inside one batch are PARTIAL_DUP and append nothing. */
static void test_append_partial_duplicate(void **state)
{
    struct fixture *f = *state;
    struct ledger_append_result r;
    uint64_t last_seq = 0;

    appendOne(f, "s", "k1", "{}", 1);

    struct ledger_event_in mixed[2] = {mkEvent("t", "k1", "{}"),
                                       mkEvent("t", "k2", "{}")};
    struct ledger_event_in no_id[2] = {mkEvent("t", "k1", "{}"),
                                       mkEvent("t", NULL, "{}")};
    struct ledger_event_in empty_id[2] = {mkEvent("t", "k1", "{}"),
                                          mkEvent("t", "", "{}")};
    struct ledger_event_in repeated[3] = {mkEvent("t", "n1", "{}"),
                                          mkEvent("t", NULL, "{}"),
                                          mkEvent("t", "n1", "{}")};
    struct ledger_event_in *batches[4] = {mixed, no_id, empty_id, repeated};
    size_t sizes[4] = {2, 2, 2, 3};

    ASSERT_OK(ledger_store_begin(f->s));
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(ledger_store_append(f->s, "s", batches[i], sizes[i], false, 0,
                                      5, &r));
        assert_int_equal(r.outcome, LEDGER_APPEND_PARTIAL_DUP);
    }
    ASSERT_OK(ledger_store_commit(f->s, 2));
    assert_int_equal(headPosition(f), 1);
    ASSERT_OK(ledger_store_stream_head(f->s, "s", &last_seq, NULL));
    assert_int_equal(last_seq, 1);

    /* The new ids were not stored either: they append normally now. */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", mixed + 1, 1, false, 0, 5, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    ASSERT_OK(ledger_store_append(f->s, "s", repeated, 1, false, 0, 5, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.last_seq, 3);
    ASSERT_OK(ledger_store_commit(f->s, 3));
}

static void test_append_expected_version(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in e = mkEvent("t", NULL, "{}");
    struct ledger_append_result r;

    ASSERT_OK(ledger_store_begin(f->s));
    /* Non-existent stream: last_seq is 0. */
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, true, 3, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_CONFLICT);
    assert_int_equal(r.last_seq, 0);
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, true, 0, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.last_seq, 1);
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, true, 0, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_CONFLICT);
    assert_int_equal(r.last_seq, 1);
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, true, 2, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_CONFLICT);
    assert_int_equal(r.last_seq, 1);
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, true, 1, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.first_seq, 2);
    assert_int_equal(r.position, 2);
    ASSERT_OK(ledger_store_commit(f->s, 1));
    assert_int_equal(headPosition(f), 2);
}

static void test_append_invalid(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in e = mkEvent("t", NULL, "{}");
    struct ledger_event_in bad = {NULL, NULL, "{}", 2};
    struct ledger_append_result r;
    char longname[300];

    /* No transaction. */
    assert_int_equal(ledger_store_append(f->s, "s", &e, 1, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "transaction"));

    ASSERT_OK(ledger_store_begin(f->s));
    assert_int_equal(ledger_store_append(f->s, "s", &e, 0, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "empty batch"));
    assert_int_equal(ledger_store_append(f->s, "a b", &e, 1, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "stream name"));
    assert_int_equal(ledger_store_append(f->s, "", &e, 1, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    memset(longname, 'x', 256);
    longname[256] = '\0';
    assert_int_equal(
        ledger_store_append(f->s, longname, &e, 1, false, 0, 1, &r),
        LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_append(f->s, "s", &bad, 1, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "no type or data"));
    bad.type = "t";
    bad.data = NULL;
    assert_int_equal(ledger_store_append(f->s, "s", &bad, 1, false, 0, 1, &r),
                     LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_commit(f->s, 1));
    assert_int_equal(headPosition(f), 0);
}

/* An I/O-level failure part way through a batch (here a UNIQUE(stream, seq)
 * clash planted with raw SQL) is an error, and the events of the batch
 * written before it are undone: the transaction is as before the call. */
static void test_append_failure_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in two[2] = {mkEvent("t", "k1", "{}"),
                                     mkEvent("t", "k2", "{}")};
    struct ledger_append_result r;
    struct collected c = {0};

    appendOne(f, "x", NULL, "{}", 1);
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "INSERT INTO events VALUES (2, 's', 2, 't', '{}', NULL,"
                     " 0, zeroblob(32), zeroblob(32))");
    reopen(f);
    ASSERT_OK(ledger_store_begin(f->s));
    assert_int_equal(ledger_store_append(f->s, "s", two, 2, false, 0, 1, &r),
                     LEDGER_STORE_EIO);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "insert event"));
    /* Still usable, and seq 1 / id k1 of the failed batch are gone. */
    ASSERT_OK(ledger_store_read_positions(f->s, 1, 10, collectCb, &c));
    assert_int_equal(c.n, 2);
    assert_int_equal(c.position[1], 2);
    ASSERT_OK(ledger_store_append(f->s, "y", two, 1, false, 0, 1, &r));
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.position, 3);
    ASSERT_OK(ledger_store_commit(f->s, 2));
}

/* 1000 small events with ids in one transaction take well under a second
 * (cached statements, indexed id lookups, no scans). */
static void test_append_batch_speed(void **state)
{
    struct fixture *f = *state;
    static struct ledger_event_in ev[1000];
    static char ids[1000][16];
    struct ledger_append_result r;
    struct timespec t0, t1;

    for (int i = 0; i < 1000; i++) {
        snprintf(ids[i], sizeof ids[i], "id-%d", i);
        ev[i] = mkEvent("t", ids[i], "{\"v\":1}");
    }
    appendOne(f, "s", "first", "{}", 1);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 5; round++) {
        ASSERT_OK(ledger_store_begin(f->s));
        for (int i = 0; i < 1000; i++) {
            snprintf(ids[i], sizeof ids[i], "id-%d-%d", round, i);
        }
        ASSERT_OK(ledger_store_append(f->s, "s", ev, 1000, false, 0, 1, &r));
        assert_int_equal(r.outcome, LEDGER_APPEND_OK);
        ASSERT_OK(ledger_store_commit(f->s, (uint64_t)round + 2));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("    5 x 1000-event batches: %.1f ms\n", ms);
    assert_true(ms < 2500.0);
    assert_int_equal(r.last_seq, 5001);
    assert_int_equal(headPosition(f), 5001);

    /* The retry of the last batch is recognised. */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", ev, 1000, false, 0, 1, &r));
    ASSERT_OK(ledger_store_rollback(f->s));
    assert_int_equal(r.outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(r.first_seq, 4002);
    assert_int_equal(r.position, 5001);
}

/* ---- Transactions and state --------------------------------------------- */

static void test_state_persisted_on_commit(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    struct ledger_append_result r;

    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 0);
    assert_int_equal(st.position, 0);
    assert_int_equal(st.schema_version, LEDGER_SCHEMA_VERSION);
    assert_string_equal(st.cluster_id, "");

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_init_cluster(f->s, "c-123"));
    ASSERT_OK(ledger_store_init_cluster(f->s, "c-456")); /* first wins */
    ASSERT_OK(ledger_store_commit(f->s, 3));
    r = appendOne(f, "s", NULL, "{}", 7);

    reopen(f);
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 7);
    assert_int_equal(st.position, 1);
    assert_memory_equal(st.head_hash, r.hash, 32);
    assert_string_equal(st.cluster_id, "c-123");
}

/* Rollback, and close with an open transaction, discard rows and the
 * applied index. */
static void test_state_rollback_discards(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in e = mkEvent("t", "k", "{}");
    struct ledger_store_state st;
    struct ledger_append_result r;
    struct collected c = {0};
    uint64_t last_seq = 99;

    appendOne(f, "s", NULL, "{}", 1);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, false, 0, 1, &r));
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "s", "c", "1", 1));
    ASSERT_OK(ledger_store_rollback(f->s));
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 1);
    assert_int_equal(st.position, 1);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 1, 10, &last_seq, collectCb, &c));
    assert_int_equal(c.n, 1);
    assert_int_equal(last_seq, 1);
    char *v = NULL;
    assert_int_equal(ledger_store_get_checkpoint(f->s, "s", "c", &v, NULL),
                     LEDGER_STORE_ENOTFOUND);

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, false, 0, 1, &r));
    reopen(f); /* close with the transaction open */
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 1);
    assert_int_equal(st.position, 1);

    /* The id was never stored: appending it now is OK, not DUPLICATE. */
    r = appendOne(f, "s", "k", "{}", 2);
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
}

static void test_transaction_misuse(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ledger_store_commit(f->s, 1), LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_rollback(f->s), LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_member(f->s, 1, "a", "b"),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_checkpoint(f->s, "s", "c", "1", 1),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_init_cluster(f->s, "x"), LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_begin(f->s));
    assert_int_equal(ledger_store_begin(f->s), LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "already open"));
    ASSERT_OK(ledger_store_commit(f->s, 1));
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_rollback(f->s));
}

/* A failed commit ends (rolls back) the transaction itself and keeps its
 * own error message: the state machine logs that message, and a rollback
 * after it used to replace the cause (e.g. "database or disk is full") with
 * "rollback: no write transaction is open" (found by the chaos suite's
 * disk-full fault). */
static void test_failed_commit_rolls_back(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in e = mkEvent("t", "k1", "{}");
    struct ledger_append_result r;
    struct ledger_store_state st;

    appendOne(f, "s", "k0", "{}", 1);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, false, 0, 1000, &r));
    assert_int_equal(ledger_store_commit(f->s, UINT64_MAX),
                     LEDGER_STORE_EINVAL);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "out of range"));
    /* The transaction is over: nothing of it survives, a new one begins. */
    assert_int_equal(ledger_store_rollback(f->s), LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 1);
    assert_int_equal(st.position, 1);
    r = appendOne(f, "s", "k1", "{}", 2);
    assert_int_equal(r.outcome, LEDGER_APPEND_OK);
    assert_int_equal(r.position, 2);
}

/* A meta value that is not what the store writes is reported, not trusted. */
static void test_state_corrupt_meta(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "UPDATE meta SET value = 'x' WHERE key = 'applied_index'");
    reopen(f);
    assert_int_equal(ledger_store_get_state(f->s, &st), LEDGER_STORE_ECORRUPT);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "applied_index"));
}

/* ---- Checkpoints and members ------------------------------------------- */

struct cpList {
    int n;
    char text[256];
};

static int cpCb(void *arg, const char *stream, const char *name,
                const char *value, size_t value_len)
{
    struct cpList *l = arg;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%s/%s=%.*s;", stream, name,
             (int)value_len, value);
    l->n++;
    return 0;
}

static void test_checkpoints(void **state)
{
    struct fixture *f = *state;
    struct cpList l = {0};
    char *value = NULL;
    size_t len = 0;

    assert_int_equal(ledger_store_get_checkpoint(f->s, "s", "c", &value, &len),
                     LEDGER_STORE_ENOTFOUND);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "s", "c", "{\"p\":1}", 7));
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "a", "z", "2", 1));
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "s", "b", "[]", 2));
    assert_int_equal(ledger_store_put_checkpoint(f->s, "bad name", "c", "1", 1),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_checkpoint(f->s, "s", "", "1", 1),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_checkpoint(f->s, "s", "c", NULL, 0),
                     LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_commit(f->s, 1));

    ASSERT_OK(ledger_store_get_checkpoint(f->s, "s", "c", &value, &len));
    assert_int_equal(len, 7);
    assert_string_equal(value, "{\"p\":1}");
    free(value);

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_put_checkpoint(f->s, "s", "c", "{\"p\":20}", 8));
    ASSERT_OK(ledger_store_commit(f->s, 2));
    reopen(f);
    ASSERT_OK(ledger_store_get_checkpoint(f->s, "s", "c", &value, &len));
    assert_int_equal(len, 8);
    assert_string_equal(value, "{\"p\":20}");
    free(value);

    ASSERT_OK(ledger_store_list_checkpoints(f->s, cpCb, &l));
    assert_int_equal(l.n, 3);
    assert_string_equal(l.text, "a/z=2;s/b=[];s/c={\"p\":20};");
}

struct memberList {
    int n;
    char text[256];
};

static int memberCb(void *arg, uint64_t id, const char *raft_addr,
                    const char *api_addr)
{
    struct memberList *l = arg;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%llu:%s@%s;",
             (unsigned long long)id, raft_addr, api_addr);
    l->n++;
    return 0;
}

static void test_members(void **state)
{
    struct fixture *f = *state;
    struct memberList l = {0};

    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_put_member(f->s, 3, "h:7003", "h:8003"));
    ASSERT_OK(ledger_store_put_member(f->s, 1, "h:7001", "h:8001"));
    ASSERT_OK(ledger_store_put_member(f->s, 2, "h:7002", "h:8002"));
    ASSERT_OK(ledger_store_put_member(f->s, 1, "h:9001", "h:9101"));
    ASSERT_OK(ledger_store_delete_member(f->s, 2));
    ASSERT_OK(ledger_store_delete_member(f->s, 42)); /* absent: no error */
    assert_int_equal(ledger_store_put_member(f->s, 0, "a", "b"),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_member(f->s, 4, NULL, "b"),
                     LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_commit(f->s, 1));
    reopen(f);
    ASSERT_OK(ledger_store_list_members(f->s, memberCb, &l));
    assert_int_equal(l.n, 2);
    assert_string_equal(l.text, "1:h:9001@h:9101;3:h:7003@h:8003;");
}

/* Free-text meta keys: written in a transaction, kept across a reopen,
 * absent ones ENOTFOUND; the keys the store maintains are refused. */
static void test_meta_text(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    char *v = NULL;

    assert_int_equal(ledger_store_get_meta(f->s, "recovered", &v),
                     LEDGER_STORE_ENOTFOUND);
    assert_null(v);
    assert_int_equal(ledger_store_put_meta(f->s, "recovered", "x"),
                     LEDGER_STORE_EINVAL); /* no transaction */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_put_meta(f->s, "recovered", "{\"index\":6}"));
    assert_int_equal(ledger_store_put_meta(f->s, "applied_index", "9"),
                     LEDGER_STORE_EINVAL);
    assert_int_equal(ledger_store_put_meta(f->s, "cluster_id", "c"),
                     LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_commit(f->s, 5));
    reopen(f);
    ASSERT_OK(ledger_store_get_meta(f->s, "recovered", &v));
    assert_string_equal(v, "{\"index\":6}");
    free(v);
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.applied_index, 5);
}

static sqlite3_int64 rawInt(const char *path, const char *sql);

/* Zone labels: set, kept when the addresses change, cleared, refused for
 * a non-member or an over-long label; durable. */
static void test_member_zones(void **state)
{
    struct fixture *f = *state;
    char z[LEDGER_ZONE_MAX];
    char big[LEDGER_ZONE_MAX + 1];

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_put_member(f->s, 1, "h:7001", "h:8001"));
    ASSERT_OK(ledger_store_put_member(f->s, 2, "h:7002", "h:8002"));
    ASSERT_OK(ledger_store_set_member_zone(f->s, 1, "rack-a"));
    ASSERT_OK(ledger_store_set_member_zone(f->s, 2, "rack-b"));
    ASSERT_OK(ledger_store_set_member_zone(f->s, 2, ""));
    /* New addresses keep the label. */
    ASSERT_OK(ledger_store_put_member(f->s, 1, "h:9001", "h:9101"));
    assert_int_equal(ledger_store_set_member_zone(f->s, 7, "rack-a"),
                     LEDGER_STORE_ENOTFOUND);
    assert_int_equal(ledger_store_set_member_zone(f->s, 1, big),
                     LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_commit(f->s, 1));
    reopen(f);
    ASSERT_OK(ledger_store_member_zone(f->s, 1, z, sizeof z));
    assert_string_equal(z, "rack-a");
    ASSERT_OK(ledger_store_member_zone(f->s, 2, z, sizeof z));
    assert_string_equal(z, "");
    assert_int_equal(ledger_store_member_zone(f->s, 7, z, sizeof z),
                     LEDGER_STORE_ENOTFOUND);
    assert_string_equal(z, "");
    /* Outside a transaction: refused. */
    assert_int_equal(ledger_store_set_member_zone(f->s, 1, "x"),
                     LEDGER_STORE_EINVAL);
}

/* Roles targets: all 0 until set, set inside a transaction only,
 * durable, and a malformed row is reported as corruption. */
static void test_roles_targets(void **state)
{
    struct fixture *f = *state;
    struct ledger_roles r = {9, 9, 9};
    struct ledger_roles want = {3, 1, 30};

    ASSERT_OK(ledger_store_get_roles(f->s, &r));
    assert_int_equal(r.voters + r.standbys + r.dead_after_s, 0);
    assert_int_equal(ledger_store_set_roles(f->s, &want), LEDGER_STORE_EINVAL);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_set_roles(f->s, &want));
    ASSERT_OK(ledger_store_commit(f->s, 1));
    reopen(f);
    ASSERT_OK(ledger_store_get_roles(f->s, &r));
    assert_memory_equal(&r, &want, sizeof r);
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "UPDATE meta SET value = 'x' WHERE key = 'roles'");
    reopen(f);
    assert_int_equal(ledger_store_get_roles(f->s, &r), LEDGER_STORE_ECORRUPT);
}

/* A store of schema version 1 (before zones) is upgraded in place: its
 * events, members and meta survive, every member gets the zone "". */
static void test_migrate_v1(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    struct memberList l = {0};
    char path[300];
    char err[256];
    char z[LEDGER_ZONE_MAX];
    ledger_store *s = NULL;

    snprintf(path, sizeof path, "%s/v1.db", f->dir);
    /* The version 1 schema, as released, with one member. */
    rawExec(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
                  "CREATE TABLE events (position INTEGER PRIMARY KEY,"
                  "  stream TEXT NOT NULL, seq INTEGER NOT NULL,"
                  "  type TEXT NOT NULL, data TEXT NOT NULL, id TEXT,"
                  "  ts INTEGER NOT NULL, prev_hash BLOB NOT NULL,"
                  "  hash BLOB NOT NULL, UNIQUE (stream, seq));"
                  "CREATE UNIQUE INDEX events_stream_id ON events (stream, id)"
                  "  WHERE id IS NOT NULL;"
                  "CREATE TABLE streams (name TEXT PRIMARY KEY,"
                  "  last_seq INTEGER NOT NULL, head_hash BLOB NOT NULL);"
                  "CREATE TABLE checkpoints (stream TEXT NOT NULL,"
                  "  name TEXT NOT NULL, value TEXT NOT NULL,"
                  "  PRIMARY KEY (stream, name));"
                  "CREATE TABLE members (id INTEGER PRIMARY KEY,"
                  "  raft_addr TEXT NOT NULL, api_addr TEXT NOT NULL);"
                  "INSERT INTO members VALUES (4, 'h:7004', 'h:8004');"
                  "INSERT INTO meta VALUES ('cluster_id', 'c1'),"
                  "  ('applied_index', 17), ('schema_version', 1);");
    ASSERT_OK(ledger_store_open(path, &s, err, sizeof err));
    ASSERT_OK(ledger_store_get_state(s, &st));
    assert_int_equal(st.schema_version, LEDGER_SCHEMA_VERSION);
    assert_int_equal(st.applied_index, 17);
    assert_string_equal(st.cluster_id, "c1");
    ASSERT_OK(ledger_store_list_members(s, memberCb, &l));
    assert_string_equal(l.text, "4:h:7004@h:8004;");
    ASSERT_OK(ledger_store_member_zone(s, 4, z, sizeof z));
    assert_string_equal(z, "");
    ASSERT_OK(ledger_store_begin(s));
    ASSERT_OK(ledger_store_set_member_zone(s, 4, "dc2"));
    ASSERT_OK(ledger_store_commit(s, 18));
    ledger_store_close(s);
    assert_int_equal(rawInt(path, "SELECT value FROM meta"
                                  " WHERE key = 'schema_version'"),
                     LEDGER_SCHEMA_VERSION);
    /* Opening it again runs nothing twice. */
    ASSERT_OK(ledger_store_open(path, &s, err, sizeof err));
    ASSERT_OK(ledger_store_member_zone(s, 4, z, sizeof z));
    assert_string_equal(z, "dc2");
    ledger_store_close(s);
}

/* ---- Reads -------------------------------------------------------------- */

static void test_read_stream_paging(void **state)
{
    struct fixture *f = *state;
    struct collected c;
    uint64_t last_seq;
    char data[32];

    ASSERT_OK(ledger_store_begin(f->s));
    for (int i = 1; i <= 10; i++) {
        struct ledger_event_in e, o = mkEvent("t", NULL, "{}");
        struct ledger_append_result r;
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        e = mkEvent("t", NULL, data);
        ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, false, 0, 1, &r));
        ASSERT_OK(ledger_store_append(f->s, "o", &o, 1, false, 0, 1, &r));
    }
    ASSERT_OK(ledger_store_commit(f->s, 1));

    memset(&c, 0, sizeof c);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 1, 3, &last_seq, collectCb, &c));
    assert_int_equal(last_seq, 10);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seq[0], 1);
    assert_int_equal(c.seq[2], 3);
    assert_int_equal(c.position[2], 5);
    assert_string_equal(c.data[2], "{\"i\":3}");

    memset(&c, 0, sizeof c);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 4, 3, &last_seq, collectCb, &c));
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seq[0], 4);
    assert_int_equal(c.seq[2], 6);

    memset(&c, 0, sizeof c);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 9, 100, &last_seq, collectCb, &c));
    assert_int_equal(c.n, 2);
    assert_int_equal(c.seq[1], 10);

    memset(&c, 0, sizeof c);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 11, 100, &last_seq, collectCb, &c));
    assert_int_equal(c.n, 0);
    assert_int_equal(last_seq, 10);

    memset(&c, 0, sizeof c);
    ASSERT_OK(ledger_store_read_stream(f->s, "s", 0, UINT64_MAX, &last_seq,
                                       collectCb, &c));
    assert_int_equal(c.n, 10);

    memset(&c, 0, sizeof c);
    ASSERT_OK(
        ledger_store_read_stream(f->s, "s", 1, 0, &last_seq, collectCb, &c));
    assert_int_equal(c.n, 0);

    memset(&c, 0, sizeof c);
    last_seq = 99;
    ASSERT_OK(ledger_store_read_stream(f->s, "nope", 1, 10, &last_seq,
                                       collectCb, &c));
    assert_int_equal(c.n, 0);
    assert_int_equal(last_seq, 0);

    /* The callback's non-zero value stops the read and is returned. */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(
        ledger_store_read_stream(f->s, "s", 1, 10, &last_seq, collectCb, &c),
        42);
    assert_int_equal(c.n, 2);

    assert_int_equal(ledger_store_read_stream(f->s, "bad/name", 1, 10,
                                              &last_seq, collectCb, &c),
                     LEDGER_STORE_EINVAL);
}

static void test_read_positions_paging(void **state)
{
    struct fixture *f = *state;
    struct collected c;

    appendOne(f, "a", NULL, "{\"x\":1}", 1);
    appendOne(f, "b", NULL, "{\"x\":2}", 2);
    appendOne(f, "a", NULL, "{\"x\":3}", 3);
    appendOne(f, "c", NULL, "{\"x\":4}", 4);

    memset(&c, 0, sizeof c);
    ASSERT_OK(ledger_store_read_positions(f->s, 2, 2, collectCb, &c));
    assert_int_equal(c.n, 2);
    assert_int_equal(c.position[0], 2);
    assert_string_equal(c.stream[0], "b");
    assert_int_equal(c.position[1], 3);
    assert_string_equal(c.stream[1], "a");
    assert_int_equal(c.seq[1], 2);

    memset(&c, 0, sizeof c);
    ASSERT_OK(ledger_store_read_positions(f->s, 4, 10, collectCb, &c));
    assert_int_equal(c.n, 1);
    assert_string_equal(c.data[0], "{\"x\":4}");

    memset(&c, 0, sizeof c);
    ASSERT_OK(ledger_store_read_positions(f->s, 5, 10, collectCb, &c));
    assert_int_equal(c.n, 0);

    assert_int_equal(ledger_store_read_positions(f->s, 1, 10, NULL, NULL),
                     LEDGER_STORE_EINVAL);

    uint8_t h[32];
    assert_int_equal(ledger_store_hash_at(f->s, 5, h), LEDGER_STORE_ENOTFOUND);
    ASSERT_OK(ledger_store_hash_at(f->s, 4, h));
    memset(&c, 0, sizeof c);
    ASSERT_OK(ledger_store_read_positions(f->s, 1, 10, collectCb, &c));
    assert_memory_equal(h, c.hash[3], 32);
}

struct streamList {
    int n;
    char names[320][16];
    uint64_t last_seq[320];
    uint8_t head[320][32];
};

static int streamCb(void *arg, const char *name, uint64_t last_seq,
                    const uint8_t head_hash[LEDGER_HASH_LEN])
{
    struct streamList *l = arg;
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->last_seq[l->n] = last_seq;
    memcpy(l->head[l->n], head_hash, 32);
    l->n++;
    return 0;
}

static void test_list_streams_and_heads(void **state)
{
    struct fixture *f = *state;
    struct streamList l = {0};
    struct ledger_append_result rb, ra;
    uint64_t last_seq;
    uint8_t head[32];

    appendOne(f, "zeta", NULL, "{}", 1);
    rb = appendOne(f, "beta", NULL, "{}", 2);
    appendOne(f, "alpha", NULL, "{}", 3);
    ra = appendOne(f, "alpha", NULL, "{}", 4);

    ASSERT_OK(ledger_store_list_streams(f->s, streamCb, &l));
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "alpha");
    assert_string_equal(l.names[1], "beta");
    assert_string_equal(l.names[2], "zeta");
    assert_int_equal(l.last_seq[0], 2);
    assert_int_equal(l.last_seq[1], 1);
    assert_memory_equal(l.head[0], ra.hash, 32);
    assert_memory_equal(l.head[1], rb.hash, 32);

    ASSERT_OK(ledger_store_stream_head(f->s, "alpha", &last_seq, head));
    assert_int_equal(last_seq, 2);
    assert_memory_equal(head, ra.hash, 32);
    assert_int_equal(ledger_store_stream_head(f->s, "gamma", &last_seq, head),
                     LEDGER_STORE_ENOTFOUND);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "gamma"));
}

/* Inside one write transaction, stream heads go through a cache of
 * STORE__HEADS (256) slots (store/heads.c): 300 streams overflow it (a
 * flush and a clear), reads in the transaction see every head, a refused
 * append changes nothing, the table has them all after commit (also after
 * reopening), and a rollback takes cached heads away with it. */
static void test_heads_in_one_transaction(void **state)
{
    struct fixture *f = *state;
    struct ledger_event_in e = mkEvent("t", NULL, "{}");
    struct ledger_append_result r[300][2];
    struct ledger_append_result c;
    struct streamList *l = calloc(1, sizeof *l);
    struct ledger_verify_result v;
    char name[32];
    uint64_t last_seq;
    uint8_t head[32];

    assert_non_null(l);
    ASSERT_OK(ledger_store_begin(f->s));
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(name, sizeof name, "h-%03d", i);
            ASSERT_OK(ledger_store_append(f->s, name, &e, 1, false, 0, 1000,
                                          &r[i][round]));
            assert_int_equal(r[i][round].last_seq, round + 1);
        }
    }
    /* Expected version 1 is stale now: refused, head unchanged. */
    ASSERT_OK(ledger_store_append(f->s, "h-007", &e, 1, true, 1, 1000, &c));
    assert_int_equal(c.outcome, LEDGER_APPEND_CONFLICT);
    assert_int_equal(c.last_seq, 2);
    for (int i = 0; i < 300; i += 37) {
        snprintf(name, sizeof name, "h-%03d", i);
        ASSERT_OK(ledger_store_stream_head(f->s, name, &last_seq, head));
        assert_int_equal(last_seq, 2);
        assert_memory_equal(head, r[i][1].hash, 32);
    }
    ASSERT_OK(ledger_store_commit(f->s, 1));

    reopen(f);
    ASSERT_OK(ledger_store_list_streams(f->s, streamCb, l));
    assert_int_equal(l->n, 300);
    for (int i = 0; i < l->n; i++) {
        assert_int_equal(l->last_seq[i], 2);
        assert_memory_equal(l->head[i], r[i][1].hash, 32);
    }
    ASSERT_OK(ledger_store_verify(f->s, &v));
    assert_true(v.ok);

    /* A rolled-back append leaves the committed head. */
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "h-001", &e, 1, false, 0, 1000, &c));
    assert_int_equal(c.last_seq, 3);
    ASSERT_OK(ledger_store_rollback(f->s));
    ASSERT_OK(ledger_store_stream_head(f->s, "h-001", &last_seq, head));
    assert_int_equal(last_seq, 2);
    assert_memory_equal(head, r[1][1].hash, 32);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "h-001", &e, 1, true, 2, 1000, &c));
    assert_int_equal(c.outcome, LEDGER_APPEND_OK);
    assert_int_equal(c.last_seq, 3);
    ASSERT_OK(ledger_store_commit(f->s, 2));
    free(l);
}

/* ---- Migrations --------------------------------------------------------- */

static sqlite3_int64 rawInt(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    sqlite3_int64 v;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

/* Opening an up-to-date store again changes nothing and keeps the data. */
static void test_migrations_idempotent(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state st;
    appendOne(f, "s", "k", "{}", 5);
    reopen(f);
    reopen(f);
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_int_equal(st.schema_version, LEDGER_SCHEMA_VERSION);
    assert_int_equal(st.applied_index, 5);
    assert_int_equal(st.position, 1);
    ledger_store_close(f->s);
    f->s = NULL;
    assert_int_equal(rawInt(f->path, "SELECT count(*) FROM meta"), 3);
    assert_int_equal(rawInt(f->path, "SELECT value FROM meta"
                                     " WHERE key = 'schema_version'"),
                     LEDGER_SCHEMA_VERSION);
    assert_int_equal(rawInt(f->path, "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'index'"
                                     " AND name = 'events_stream_id'"),
                     1);
    reopen(f);
}

/* File contents and mtime, to prove a refused open wrote nothing. */
struct fileSnap {
    char *bytes;
    size_t len;
    struct timespec mtime;
};

static void snapFile(const char *path, struct fileSnap *snap)
{
    struct stat st;
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(stat(path, &st), 0);
    snap->len = (size_t)st.st_size;
    snap->mtime = st.st_mtim;
    snap->bytes = malloc(snap->len);
    assert_non_null(snap->bytes);
    assert_int_equal(fread(snap->bytes, 1, snap->len, fp), snap->len);
    fclose(fp);
}

static void assertSameFile(const struct fileSnap *a, const struct fileSnap *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->bytes, b->bytes, a->len);
    assert_int_equal(a->mtime.tv_sec, b->mtime.tv_sec);
    assert_int_equal(a->mtime.tv_nsec, b->mtime.tv_nsec);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct fileSnap before, after;
    ledger_store *s = (ledger_store *)1;
    char err[256];
    char expect[400];

    appendOne(f, "s", NULL, "{}", 1);
    ledger_store_close(f->s);
    f->s = NULL;
    snprintf(expect, sizeof expect,
             "UPDATE meta SET value = %d WHERE key = 'schema_version'",
             LEDGER_SCHEMA_VERSION + 1);
    rawExec(f->path, expect);
    snapFile(f->path, &before);

    assert_int_equal(ledger_store_open(f->path, &s, err, sizeof err),
                     LEDGER_STORE_ESCHEMA);
    assert_null(s);
    snprintf(expect, sizeof expect,
             "store %s has schema version %d, this ledgerd supports up to %d: "
             "upgrade ledgerd",
             f->path, LEDGER_SCHEMA_VERSION + 1, LEDGER_SCHEMA_VERSION);
    assert_string_equal(err, expect);

    snapFile(f->path, &after);
    assertSameFile(&before, &after);
    free(before.bytes);
    free(after.bytes);
}

/* A newer store in rollback-journal mode stays in that mode: the journal
 * mode is not switched before the version check. */
static void test_newer_schema_journal_untouched(void **state)
{
    struct fixture *f = *state;
    struct fileSnap before, after;
    char path[300];
    char err[256];
    ledger_store *s = NULL;

    snprintf(path, sizeof path, "%s/future.db", f->dir);
    rawExec(path, "PRAGMA journal_mode=DELETE;"
                  "CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
                  "INSERT INTO meta VALUES ('schema_version', 9);");
    snapFile(path, &before);
    assert_int_equal(ledger_store_open(path, &s, err, sizeof err),
                     LEDGER_STORE_ESCHEMA);
    assert_non_null(strstr(err, "schema version 9"));
    {
        char upto[32];
        snprintf(upto, sizeof upto, "up to %d", LEDGER_SCHEMA_VERSION);
        assert_non_null(strstr(err, upto));
    }
    snapFile(path, &after);
    assertSameFile(&before, &after);
    free(before.bytes);
    free(after.bytes);

    struct stat st;
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &st), -1);
}

static void test_open_not_a_database(void **state)
{
    struct fixture *f = *state;
    char path[300];
    char err[256];
    ledger_store *s = NULL;
    FILE *fp;

    snprintf(path, sizeof path, "%s/junk.db", f->dir);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++) {
        fputs("this is not sqlite ", fp);
    }
    fclose(fp);
    assert_int_equal(ledger_store_open(path, &s, err, sizeof err),
                     LEDGER_STORE_ECORRUPT);
    assert_null(s);
    assert_true(strlen(err) > 0);
}

/* ---- Verify ------------------------------------------------------------- */

/* Five events over two streams, committed: a1 b1 a2 b2 a3. */
static void fiveEvents(struct fixture *f)
{
    appendOne(f, "a", "k1", "{\"x\":1}", 1);
    appendOne(f, "b", NULL, "{\"x\":2}", 2);
    appendOne(f, "a", NULL, "{\"x\":3}", 3);
    appendOne(f, "b", "k4", "{\"x\":4}", 4);
    appendOne(f, "a", NULL, "{\"x\":5}", 5);
}

static void test_verify_ok(void **state)
{
    struct fixture *f = *state;
    struct ledger_verify_result v;
    struct ledger_store_state st;

    ASSERT_OK(ledger_store_verify(f->s, &v));
    assert_true(v.ok);
    assert_int_equal(v.applied_position, 0);

    fiveEvents(f);
    ASSERT_OK(ledger_store_verify(f->s, &v));
    ASSERT_OK(ledger_store_get_state(f->s, &st));
    assert_true(v.ok);
    assert_int_equal(v.first_bad_position, 0);
    assert_int_equal(v.applied_position, 5);
    assert_memory_equal(v.hash, st.head_hash, 32);
}

/* Apply `sql` to a closed five-event store, reopen, verify; expect the
 * chain good up to bad - 1. */
static void tamperAndVerify(struct fixture *f, const char *sql, uint64_t bad,
                            const char *reason_part)
{
    struct ledger_verify_result v;
    uint8_t h[32];

    fiveEvents(f);
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, sql);
    reopen(f);
    ASSERT_OK(ledger_store_verify(f->s, &v));
    assert_false(v.ok);
    assert_int_equal(v.first_bad_position, bad);
    assert_int_equal(v.applied_position, bad - 1);
    if (bad > 1) {
        ASSERT_OK(ledger_store_hash_at(f->s, bad - 1, h));
        assert_memory_equal(v.hash, h, 32);
    }
    if (strstr(v.reason, reason_part) == NULL) {
        fail_msg("reason \"%s\" lacks \"%s\"", v.reason, reason_part);
    }
}

/* The start check: quick_check passes on a sound store; the chain of the
 * last events finds a tampered event inside its window and not one before
 * it; SQLite's corrupt reports are remembered. */
static void test_check_tail_and_quick_check(void **state)
{
    struct fixture *f = *state;
    struct ledger_verify_result v;

    fiveEvents(f);
    ASSERT_OK(ledger_store_quick_check(f->s));
    ASSERT_OK(ledger_store_check_tail(f->s, 3, &v));
    assert_true(v.ok);
    assert_int_equal(v.applied_position, 5);
    assert_false(ledger_store_corrupt_seen(f->s));
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "UPDATE events SET data = '{\"x\":40}' WHERE "
                     "position = 4");
    reopen(f);
    ASSERT_OK(ledger_store_quick_check(f->s)); /* the file is sound */
    ASSERT_OK(ledger_store_check_tail(f->s, 3, &v));
    assert_false(v.ok);
    assert_int_equal(v.first_bad_position, 4);
    assert_true(ledger_store_corrupt_seen(f->s));
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "UPDATE events SET data = '{\"x\":4}' WHERE "
                     "position = 4; UPDATE events SET data = '{\"x\":10}' "
                     "WHERE position = 1");
    reopen(f);
    ASSERT_OK(ledger_store_check_tail(f->s, 3, &v)); /* 1 is outside */
    assert_true(v.ok);
    ASSERT_OK(ledger_store_check_tail(f->s, 5, &v));
    assert_false(v.ok);
    assert_int_equal(v.first_bad_position, 1);
}

/* The last page of the file overwritten with garbage: SQLite finds it at
 * open (a page it reads there) or quick_check does. */
static void test_quick_check_finds_a_bad_page(void **state)
{
    struct fixture *f = *state;
    char err[256];
    FILE *fp;
    char junk[4096];
    long size;
    int rv;

    fiveEvents(f);
    ledger_store_close(f->s);
    f->s = NULL;
    memset(junk, 0x5a, sizeof junk);
    fp = fopen(f->path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    assert_true(size >= 3 * 4096);
    fseek(fp, size - 4096, SEEK_SET);
    assert_int_equal(fwrite(junk, 1, sizeof junk, fp), sizeof junk);
    fclose(fp);
    rv = ledger_store_open(f->path, &f->s, err, sizeof err);
    if (rv == LEDGER_STORE_OK) {
        assert_int_equal(ledger_store_quick_check(f->s), LEDGER_STORE_ECORRUPT);
        assert_true(ledger_store_corrupt_seen(f->s));
        assert_non_null(strstr(ledger_store_errmsg(f->s), "quick_check"));
    } else {
        assert_int_equal(rv, LEDGER_STORE_ECORRUPT);
    }
}

static void test_verify_tampered_data(void **state)
{
    tamperAndVerify(*state,
                    "UPDATE events SET data = '{\"x\":30}' WHERE position = 3",
                    3, "does not match its fields");
}

static void test_verify_tampered_hash(void **state)
{
    /* Position 4's stored hash changes: 4 no longer recomputes. */
    tamperAndVerify(*state,
                    "UPDATE events SET hash = zeroblob(32) WHERE position = 4",
                    4, "position 4");
}

static void test_verify_tampered_prev_hash(void **state)
{
    tamperAndVerify(
        *state, "UPDATE events SET prev_hash = zeroblob(32) WHERE position = 2",
        2, "prev_hash");
}

static void test_verify_tampered_type_and_ts(void **state)
{
    tamperAndVerify(*state, "UPDATE events SET ts = ts + 1 WHERE position = 1",
                    1, "position 1");
}

static void test_verify_deleted_row(void **state)
{
    tamperAndVerify(*state, "DELETE FROM events WHERE position = 3", 3,
                    "missing");
}

/* An event moved to position 0 (its seq now precedes the one before it in
 * position): the finding at position 0 must not read as "none" (it did:
 * verify said ok; found by tests/fuzz/fuzz_backup). */
static void test_verify_position_zero(void **state)
{
    tamperAndVerify(*state, "UPDATE events SET position = 0 WHERE position = 2",
                    1, "precedes");
}

static void test_verify_malformed_hash(void **state)
{
    tamperAndVerify(*state,
                    "UPDATE events SET hash = x'0102' WHERE position = 5", 5,
                    "32-byte");
}

static void test_verify_stream_head(void **state)
{
    /* Stream b's last event is at position 4. */
    tamperAndVerify(*state, "UPDATE streams SET last_seq = 7 WHERE name = 'b'",
                    4, "head does not match");
}

static void test_verify_missing_stream_head(void **state)
{
    tamperAndVerify(*state, "DELETE FROM streams WHERE name = 'a'", 5,
                    "no head");
}

static void test_verify_orphan_stream_head(void **state)
{
    tamperAndVerify(*state,
                    "INSERT INTO streams VALUES ('ghost', 1, zeroblob(32))", 6,
                    "no events");
}

/* A rewrite that recomputes every hash still shows as a seq gap. */
static void test_verify_rehashed_seq_gap(void **state)
{
    struct fixture *f = *state;
    static const uint8_t zeros[32];
    struct ledger_verify_result v;
    uint8_t h1[32], h[32];

    /* Raw SQL adds position 2 as seq 3 of stream "a" (skipping seq 2), with
     * a correctly recomputed hash and stream head: the chain itself is
     * intact, only the seq check can catch it. */
    appendOne(f, "a", NULL, "{}", 1);
    ledger_store_close(f->s);
    f->s = NULL;
    ledger_hash_event(zeros, 1, "a", 1, "t", NULL, 1000, "{}", 2, h1);
    ledger_hash_event(h1, 2, "a", 3, "t", NULL, 1000, "{}", 2, h);
    char sql[512], hex1[65], hex2[65];
    ledger_hash_hex(h1, hex1);
    ledger_hash_hex(h, hex2);
    snprintf(sql, sizeof sql,
             "INSERT INTO events VALUES (2, 'a', 3, 't', '{}', NULL, 1000,"
             " x'%s', x'%s');"
             "UPDATE streams SET last_seq = 3, head_hash = x'%s';",
             hex1, hex2, hex2);
    rawExec(f->path, sql);
    reopen(f);
    ASSERT_OK(ledger_store_verify(f->s, &v));
    assert_false(v.ok);
    assert_int_equal(v.first_bad_position, 2);
    assert_int_equal(v.applied_position, 1);
    assert_memory_equal(v.hash, h1, 32);
    assert_non_null(strstr(v.reason, "seq 3 where 2 expected"));
}

/* ---- insert_event ------------------------------------------------------- */

struct copyCtx {
    ledger_store *dst;
    int rv;
};

static int copyCb(void *arg, const struct ledger_event *ev)
{
    struct copyCtx *c = arg;
    c->rv = ledger_store_insert_event(c->dst, ev);
    return c->rv != 0 ? 1 : 0;
}

static void test_insert_event_copies_chain(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state src_st, dst_st;
    struct ledger_verify_result v;
    struct copyCtx c;
    struct streamList a = {0}, b = {0};
    char path[300], err[256];
    ledger_store *dst;

    fiveEvents(f);
    snprintf(path, sizeof path, "%s/copy.db", f->dir);
    assert_int_equal(ledger_store_open(path, &dst, err, sizeof err), 0);
    c.dst = dst;
    c.rv = 0;
    assert_int_equal(ledger_store_begin(dst), 0);
    ASSERT_OK(ledger_store_read_positions(f->s, 1, 100, copyCb, &c));
    assert_int_equal(c.rv, 0);
    assert_int_equal(ledger_store_commit(dst, 5), 0);

    ASSERT_OK(ledger_store_get_state(f->s, &src_st));
    assert_int_equal(ledger_store_get_state(dst, &dst_st), 0);
    assert_int_equal(dst_st.position, 5);
    assert_memory_equal(dst_st.head_hash, src_st.head_hash, 32);
    assert_int_equal(ledger_store_verify(dst, &v), 0);
    assert_true(v.ok);
    ASSERT_OK(ledger_store_list_streams(f->s, streamCb, &a));
    assert_int_equal(ledger_store_list_streams(dst, streamCb, &b), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(&a, &b, sizeof a);

    /* Ids came along: a retry on the copy is a DUPLICATE. */
    struct ledger_event_in e = mkEvent("t", "k4", "{}");
    struct ledger_append_result r;
    assert_int_equal(ledger_store_begin(dst), 0);
    assert_int_equal(ledger_store_append(dst, "b", &e, 1, false, 0, 1, &r), 0);
    assert_int_equal(r.outcome, LEDGER_APPEND_DUPLICATE);
    assert_int_equal(r.position, 4);
    assert_int_equal(ledger_store_rollback(dst), 0);
    ledger_store_close(dst);
}

/* Capture one event (deep copy) from a read. */
struct evCopy {
    struct ledger_event ev;
    char stream[32], type[32], id[32], data[64];
};

static int captureCb(void *arg, const struct ledger_event *ev)
{
    struct evCopy *c = arg;
    c->ev = *ev;
    snprintf(c->stream, sizeof c->stream, "%s", ev->stream);
    snprintf(c->type, sizeof c->type, "%s", ev->type);
    snprintf(c->id, sizeof c->id, "%s", ev->id ? ev->id : "");
    snprintf(c->data, sizeof c->data, "%.*s", (int)ev->data_len, ev->data);
    c->ev.stream = c->stream;
    c->ev.type = c->type;
    c->ev.id = ev->id ? c->id : NULL;
    c->ev.data = c->data;
    return 0;
}

static void test_insert_event_rejects_broken_chain(void **state)
{
    struct fixture *f = *state;
    struct evCopy e1, e2, e3, bad;
    struct ledger_store_state st;
    char path[300], err[256];
    ledger_store *dst;

    fiveEvents(f);
    ASSERT_OK(ledger_store_read_positions(f->s, 1, 1, captureCb, &e1));
    ASSERT_OK(ledger_store_read_positions(f->s, 2, 1, captureCb, &e2));
    ASSERT_OK(ledger_store_read_positions(f->s, 3, 1, captureCb, &e3));

    snprintf(path, sizeof path, "%s/copy.db", f->dir);
    assert_int_equal(ledger_store_open(path, &dst, err, sizeof err), 0);
    assert_int_equal(ledger_store_insert_event(dst, &e1.ev),
                     LEDGER_STORE_EINVAL); /* no transaction */
    assert_int_equal(ledger_store_begin(dst), 0);

    /* Position 2 on an empty store. */
    assert_int_equal(ledger_store_insert_event(dst, &e2.ev),
                     LEDGER_STORE_ECHAIN);
    assert_non_null(strstr(ledger_store_errmsg(dst), "position 2"));
    assert_int_equal(ledger_store_insert_event(dst, &e1.ev), 0);

    /* Tampered data: the hash does not recompute. */
    bad = e2;
    bad.ev.data = "{\"x\":99}";
    bad.ev.data_len = strlen(bad.ev.data);
    assert_int_equal(ledger_store_insert_event(dst, &bad.ev),
                     LEDGER_STORE_ECHAIN);
    assert_non_null(strstr(ledger_store_errmsg(dst), "hash"));

    /* Wrong prev_hash. */
    bad = e2;
    bad.ev.type = bad.type;
    bad.ev.stream = bad.stream;
    bad.ev.data = bad.data;
    bad.ev.prev_hash[0] ^= 1;
    assert_int_equal(ledger_store_insert_event(dst, &bad.ev),
                     LEDGER_STORE_ECHAIN);
    assert_non_null(strstr(ledger_store_errmsg(dst), "prev_hash"));

    /* Event 3 ("a" seq 2) skipping event 2, renumbered to position 2 with a
     * consistent hash: the position fits, the chain fits, the seq is what
     * the store expects... so give it a wrong seq instead. */
    bad = e3;
    bad.ev.stream = bad.stream;
    bad.ev.type = bad.type;
    bad.ev.data = bad.data;
    bad.ev.id = NULL;
    bad.ev.position = 2;
    memcpy(bad.ev.prev_hash, e1.ev.hash, 32);
    bad.ev.seq = 3;
    ledger_hash_event(bad.ev.prev_hash, 2, "a", 3, bad.type, NULL, bad.ev.ts_ms,
                      bad.data, strlen(bad.data), bad.ev.hash);
    assert_int_equal(ledger_store_insert_event(dst, &bad.ev),
                     LEDGER_STORE_ECHAIN);
    assert_non_null(strstr(ledger_store_errmsg(dst), "seq 3"));

    /* Same, with an id the stream already holds (k1, from event 1). */
    bad.ev.seq = 2;
    bad.ev.id = "k1";
    ledger_hash_event(bad.ev.prev_hash, 2, "a", 2, bad.type, "k1", bad.ev.ts_ms,
                      bad.data, strlen(bad.data), bad.ev.hash);
    assert_int_equal(ledger_store_insert_event(dst, &bad.ev),
                     LEDGER_STORE_ECHAIN);
    assert_non_null(strstr(ledger_store_errmsg(dst), "k1"));

    assert_int_equal(ledger_store_commit(dst, 1), 0);
    assert_int_equal(ledger_store_get_state(dst, &st), 0);
    assert_int_equal(st.position, 1);
    assert_memory_equal(st.head_hash, e1.ev.hash, 32);
    uint64_t last_seq = 0;
    assert_int_equal(ledger_store_stream_head(dst, "a", &last_seq, NULL), 0);
    assert_int_equal(last_seq, 1);
    assert_int_equal(ledger_store_stream_head(dst, "b", &last_seq, NULL),
                     LEDGER_STORE_ENOTFOUND);

    /* The genuine event 2 still fits. */
    assert_int_equal(ledger_store_begin(dst), 0);
    assert_int_equal(ledger_store_insert_event(dst, &e2.ev), 0);
    assert_int_equal(ledger_store_commit(dst, 2), 0);
    ledger_store_close(dst);
}

/* A reader handle on the same file sees committed appends (not those of
 * an open transaction), verifies the chain, and cannot write. */
static void test_reader_handle(void **state)
{
    struct fixture *f = *state;
    struct ledger_verify_result v;
    struct ledger_event_in e = mkEvent("t", NULL, "1");
    struct ledger_append_result r;
    struct ledger_store_state st;
    ledger_store *rd = NULL;
    char err[256];

    appendOne(f, "a", "x1", "{\"n\":1}", 2);
    appendOne(f, "b", NULL, "[2]", 3);
    assert_int_equal(ledger_store_open_reader(f->path, &rd, err, sizeof err),
                     0);
    ASSERT_OK(ledger_store_begin(f->s));
    ASSERT_OK(ledger_store_append(f->s, "a", &e, 1, false, 0, 1000, &r));
    assert_int_equal(ledger_store_get_state(rd, &st), 0);
    assert_int_equal(st.position, 2); /* not the uncommitted third */
    assert_int_equal(ledger_store_verify(rd, &v), 0);
    assert_true(v.ok);
    assert_int_equal(v.applied_position, 2);
    ASSERT_OK(ledger_store_commit(f->s, 4));
    assert_int_equal(ledger_store_verify(rd, &v), 0);
    assert_int_equal(v.applied_position, 3);
    assert_int_not_equal(
        ledger_store_begin(rd) == 0 &&
            ledger_store_append(rd, "a", &e, 1, false, 0, 1, &r) == 0 &&
            ledger_store_commit(rd, 5) == 0,
        1);
    ledger_store_rollback(rd);
    ledger_store_close(rd);
    assert_int_equal(headPosition(f), 3);
}

/* A reader is refused on a missing file and on another schema version. */
static void test_reader_refusals(void **state)
{
    struct fixture *f = *state;
    ledger_store *rd = NULL;
    char missing[300];
    char err[256];

    snprintf(missing, sizeof missing, "%s/none.db", f->dir);
    assert_int_not_equal(
        ledger_store_open_reader(missing, &rd, err, sizeof err), 0);
    assert_null(rd);
    ledger_store_close(f->s);
    f->s = NULL;
    rawExec(f->path, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    assert_int_equal(ledger_store_open_reader(f->path, &rd, err, sizeof err),
                     LEDGER_STORE_ESCHEMA);
    assert_non_null(strstr(err, "99"));
}

/* The durability barrier syncs a store with and without a WAL file, and
 * reports (with a message) a store whose files are gone. */
static void test_sync(void **state)
{
    struct fixture *f = *state;
    char wal[300];

    ASSERT_OK(ledger_store_sync(f->s));
    appendOne(f, "s", NULL, "{}", 1);
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0);
    ASSERT_OK(ledger_store_sync(f->s));
    assert_int_equal(unlink(f->path), 0);
    assert_int_not_equal(ledger_store_sync(f->s), 0);
    assert_non_null(strstr(ledger_store_errmsg(f->s), "sync"));
}

/* With manual checkpoints the writer reports the WAL's size and never
 * checkpoints; a second handle's checkpoint lets the writer restart the WAL
 * from its beginning, and nothing committed is lost. */
static void test_manual_checkpoints(void **state)
{
    struct fixture *f = *state;
    ledger_store *ck = NULL;
    char err[256];
    uint64_t before;

    ledger_store_manual_checkpoints(f->s);
    assert_string_equal(ledger_store_path(f->s), f->path);
    for (uint64_t i = 1; i <= 300; i++) {
        appendOne(f, "s", NULL, "{}", i);
    }
    before = ledger_store_wal_frames(f->s);
    assert_true(before > 300); /* No automatic checkpoint reset it. */
    assert_int_equal(ledger_store_open(f->path, &ck, err, sizeof err), 0);
    ASSERT_OK(ledger_store_checkpoint(ck));
    appendOne(f, "s", NULL, "{}", 301);
    assert_true(ledger_store_wal_frames(f->s) < before);
    ledger_store_close(ck);
    ASSERT_OK(ledger_store_checkpoint(f->s));
    reopen(f);
    assert_int_equal(headPosition(f), 301);
}

/* The state a writer handle keeps across write transactions (appends,
 * commits, a rollback, init_cluster) is always what SQLite holds. */
static void test_state_cache(void **state)
{
    struct fixture *f = *state;
    struct ledger_store_state a;
    struct ledger_store_state b;
    ledger_store *other = NULL;
    char err[256];

    assert_int_equal(ledger_store_open(f->path, &other, err, sizeof err), 0);
    for (uint64_t i = 1; i <= 6; i++) {
        ASSERT_OK(ledger_store_get_state(f->s, &a)); /* cache, then follow */
        if (i == 3) {
            ASSERT_OK(ledger_store_begin(f->s));
            ASSERT_OK(ledger_store_init_cluster(f->s, "c1"));
            ASSERT_OK(ledger_store_commit(f->s, i));
        } else if (i == 5) {
            struct ledger_event_in e = mkEvent("t", NULL, "{}");
            struct ledger_append_result r;
            ASSERT_OK(ledger_store_begin(f->s));
            ASSERT_OK(ledger_store_append(f->s, "s", &e, 1, false, 0, 1, &r));
            ASSERT_OK(ledger_store_rollback(f->s));
        } else {
            appendOne(f, i % 2 ? "s" : "t", NULL, "{}", i);
        }
        ASSERT_OK(ledger_store_get_state(f->s, &a));
        assert_int_equal(ledger_store_get_state(other, &b), 0);
        /* `other` caches too: drop its cache with an empty transaction. */
        assert_int_equal(ledger_store_begin(other), 0);
        assert_int_equal(ledger_store_rollback(other), 0);
        assert_int_equal(ledger_store_get_state(other, &b), 0);
        assert_int_equal(a.applied_index, b.applied_index);
        assert_int_equal(a.position, b.position);
        assert_memory_equal(a.head_hash, b.head_hash, LEDGER_HASH_LEN);
        assert_string_equal(a.cluster_id, b.cluster_id);
    }
    assert_int_equal(a.applied_index, 6);
    assert_int_equal(a.position, 4);
    assert_string_equal(a.cluster_id, "c1");
    ledger_store_close(other);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setUp, tearDown)
    const struct CMUnitTest tests[] = {
        T(test_sync),
        T(test_manual_checkpoints),
        T(test_state_cache),
        T(test_hash_worked_example),
        T(test_hash_fields),
        T(test_hash_long_fields),
        T(test_heads_in_one_transaction),
        T(test_hash_hex_parse),
        T(test_stream_name_valid),
        T(test_append_interleaved),
        T(test_append_duplicate_retry),
        T(test_append_partial_duplicate),
        T(test_append_expected_version),
        T(test_append_invalid),
        T(test_append_failure_leaves_nothing),
        T(test_append_batch_speed),
        T(test_state_persisted_on_commit),
        T(test_state_rollback_discards),
        T(test_transaction_misuse),
        T(test_failed_commit_rolls_back),
        T(test_state_corrupt_meta),
        T(test_checkpoints),
        T(test_members),
        T(test_meta_text),
        T(test_check_tail_and_quick_check),
        T(test_quick_check_finds_a_bad_page),
        T(test_member_zones),
        T(test_roles_targets),
        T(test_migrate_v1),
        T(test_read_stream_paging),
        T(test_read_positions_paging),
        T(test_list_streams_and_heads),
        T(test_migrations_idempotent),
        T(test_newer_schema_refused),
        T(test_newer_schema_journal_untouched),
        T(test_open_not_a_database),
        T(test_verify_ok),
        T(test_verify_tampered_data),
        T(test_verify_tampered_hash),
        T(test_verify_tampered_prev_hash),
        T(test_verify_tampered_type_and_ts),
        T(test_verify_deleted_row),
        T(test_verify_position_zero),
        T(test_verify_malformed_hash),
        T(test_verify_stream_head),
        T(test_verify_missing_stream_head),
        T(test_verify_orphan_stream_head),
        T(test_verify_rehashed_seq_gap),
        T(test_insert_event_copies_chain),
        T(test_insert_event_rejects_broken_chain),
        T(test_reader_handle),
        T(test_reader_refusals),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
