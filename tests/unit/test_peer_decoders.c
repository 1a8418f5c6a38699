/* Unit tests for the decoders of bytes another node sends: the internal
 * events page (node/events_page.c) and the snapshot reader
 * (replication/snap.c repl__snap_decode). The cases are the ones
 * tests/fuzz found (empty strings, NUL inside names, header counts
 * claiming more elements than there are bytes); under the ASan+UBSan
 * build of `make test` a memcpy from msgpack-c's NULL pointer for "" is
 * a failure too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "events_page.h"
#include "replication/repl_int.h"

/* ---- events page -------------------------------------------------------- */

/* One compact event [position, stream, seq, type, id, ts, data, prev, hash]
 * with the given stream (len bytes) and data. */
static void packEvent(msgpack_sbuffer *sb, const char *stream, size_t len,
                      const char *data)
{
    msgpack_packer pk;
    uint8_t h[LEDGER_HASH_LEN];

    memset(h, 7, sizeof h);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, stream, len);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "t", 1);
    msgpack_pack_str(&pk, 0); /* id "" */
    msgpack_pack_int64(&pk, -5);
    msgpack_pack_str(&pk, strlen(data));
    msgpack_pack_str_body(&pk, data, strlen(data));
    msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    msgpack_pack_bin_body(&pk, h, LEDGER_HASH_LEN);
    msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    msgpack_pack_bin_body(&pk, h, LEDGER_HASH_LEN);
}

static void test_page_empty_strings(void **state)
{
    struct events_page page;
    msgpack_sbuffer sb;
    char err[256] = "";

    (void)state;
    msgpack_sbuffer_init(&sb);
    packEvent(&sb, "", 0, "");
    assert_int_equal(events_page_decode(EVENTS_PAGE_COMPACT, sb.data, sb.size,
                                        &page, err, sizeof err),
                     0);
    assert_int_equal(page.n, 1);
    assert_string_equal(page.events[0].stream, "");
    assert_string_equal(page.events[0].id, "");
    assert_non_null(page.events[0].data);
    assert_int_equal(page.events[0].data_len, 0);
    assert_int_equal(page.events[0].ts_ms, -5);
    events_page_free(&page);
    msgpack_sbuffer_destroy(&sb);
}

static void test_page_nul_in_stream_refused(void **state)
{
    struct events_page page;
    msgpack_sbuffer sb;
    char err[256] = "";

    (void)state;
    msgpack_sbuffer_init(&sb);
    packEvent(&sb, "ok", 2, "1");
    packEvent(&sb, "ab\0cd", 5, "1");
    assert_int_equal(events_page_decode(EVENTS_PAGE_COMPACT, sb.data, sb.size,
                                        &page, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "malformed event 1"));
    assert_null(page.events);
    msgpack_sbuffer_destroy(&sb);
}

static void test_page_huge_count_refused(void **state)
{
    /* A map32 claiming 2^32-1 pairs in 5 bytes: msgpack-c would allocate
     * for all of them before reading one. */
    static const char body[] = "\xdf\xff\xff\xff\xff";
    struct events_page page;
    char err[256] = "";

    (void)state;
    assert_int_equal(events_page_decode(EVENTS_PAGE_COMPACT, body,
                                        sizeof body - 1, &page, err,
                                        sizeof err),
                     -1);
    assert_non_null(strstr(err, "malformed event 0"));
}

static void test_page_truncated_refused(void **state)
{
    struct events_page page;
    msgpack_sbuffer sb;
    char err[256] = "";

    (void)state;
    msgpack_sbuffer_init(&sb);
    packEvent(&sb, "s", 1, "{}");
    assert_int_equal(events_page_decode(EVENTS_PAGE_COMPACT, sb.data,
                                        sb.size - 1, &page, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
    msgpack_sbuffer_destroy(&sb);
}

/* ---- snapshot ------------------------------------------------------------ */

/* A snapshot as snapshot.c writes it; cluster/restored (len bytes each,
 * restored NULL: 7 elements) and one member whose raft address is raft. */
static void packSnap(msgpack_sbuffer *sb, const char *cluster, size_t clen,
                     const char *restored, size_t rlen, const char *raft,
                     size_t alen)
{
    msgpack_packer pk;
    uint8_t h[LEDGER_HASH_LEN];

    memset(h, 3, sizeof h);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, restored != NULL ? 8 : 7);
    msgpack_pack_uint64(&pk, REPL__SNAPSHOT_FORMAT);
    msgpack_pack_uint64(&pk, 10);
    msgpack_pack_uint64(&pk, 4);
    msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    msgpack_pack_bin_body(&pk, h, LEDGER_HASH_LEN);
    msgpack_pack_str(&pk, clen);
    msgpack_pack_str_body(&pk, cluster, clen);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str(&pk, alen);
    msgpack_pack_str_body(&pk, raft, alen);
    msgpack_pack_str(&pk, 14);
    msgpack_pack_str_body(&pk, "127.0.0.1:8001", 14);
    msgpack_pack_array(&pk, 0);
    if (restored != NULL) {
        msgpack_pack_str(&pk, rlen);
        msgpack_pack_str_body(&pk, restored, rlen);
    }
}

static int decodeSnap(msgpack_sbuffer *sb, struct repl__snap *s)
{
    msgpack_unpacked up;
    size_t off = 0;
    int rv = -1;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, sb->data, sb->size, &off) ==
        MSGPACK_UNPACK_SUCCESS) {
        rv = repl__snap_decode(&up.data, s);
    }
    msgpack_unpacked_destroy(&up);
    return rv;
}

static void test_snap_empty_strings(void **state)
{
    struct repl__snap s;
    msgpack_sbuffer sb;

    (void)state;
    msgpack_sbuffer_init(&sb);
    packSnap(&sb, "", 0, "", 0, "127.0.0.1:7001", 14);
    assert_int_equal(decodeSnap(&sb, &s), 0);
    assert_string_equal(s.cluster_id, "");
    /* "" is "none" (what a 9-element snapshot with roles targets and no
     * restored_from carries; snapshot.c). */
    assert_false(s.has_restored_from);
    assert_string_equal(s.restored_from, "");
    assert_int_equal(s.index, 10);
    assert_int_equal(s.position, 4);
    assert_int_equal(s.n_members, 1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_snap_nul_refused(void **state)
{
    struct repl__snap s;
    msgpack_sbuffer sb;

    (void)state;
    msgpack_sbuffer_init(&sb);
    packSnap(&sb, "ab\0cd", 5, NULL, 0, "127.0.0.1:7001", 14);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    packSnap(&sb, "abcd", 4, "x\0y", 3, "127.0.0.1:7001", 14);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);

    /* A member's address too (checked by the decoder now, not only when
     * installed). */
    msgpack_sbuffer_init(&sb);
    packSnap(&sb, "abcd", 4, NULL, 0, "127.0.0.1\0:7001", 15);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    packSnap(&sb, "abcd", 4, NULL, 0, "127.0.0.1:7001", 14);
    assert_int_equal(decodeSnap(&sb, &s), 0);
    assert_string_equal(s.cluster_id, "abcd");
    assert_false(s.has_restored_from);
    msgpack_sbuffer_destroy(&sb);
}

/* A snapshot with a zone on its member (4th element) and, after a
 * restored_from "", the roles targets (9th); zone: zlen bytes; roles: the
 * 9th element's 3 numbers, n_roles of them. */
static void packZoned(msgpack_sbuffer *sb, const char *zone, size_t zlen,
                      const uint64_t *roles, size_t n_roles)
{
    msgpack_packer pk;
    uint8_t h[LEDGER_HASH_LEN];

    memset(h, 3, sizeof h);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, REPL__SNAPSHOT_FORMAT);
    msgpack_pack_uint64(&pk, 10);
    msgpack_pack_uint64(&pk, 4);
    msgpack_pack_bin(&pk, LEDGER_HASH_LEN);
    msgpack_pack_bin_body(&pk, h, LEDGER_HASH_LEN);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "c", 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str(&pk, 14);
    msgpack_pack_str_body(&pk, "127.0.0.1:7001", 14);
    msgpack_pack_str(&pk, 14);
    msgpack_pack_str_body(&pk, "127.0.0.1:8001", 14);
    msgpack_pack_str(&pk, zlen);
    msgpack_pack_str_body(&pk, zone, zlen);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_str(&pk, 0);
    msgpack_pack_str_body(&pk, "", 0);
    msgpack_pack_array(&pk, n_roles);
    for (size_t i = 0; i < n_roles; i++) {
        msgpack_pack_uint64(&pk, roles[i]);
    }
}

static void test_snap_zone_and_roles(void **state)
{
    static const uint64_t ok[3] = {3, 1, 30};
    static const uint64_t huge[3] = {3, 1, 1ull << 40};
    char long_zone[LEDGER_ZONE_MAX];
    struct repl__snap s;
    msgpack_sbuffer sb;

    (void)state;
    msgpack_sbuffer_init(&sb);
    packZoned(&sb, "rack-a", 6, ok, 3);
    assert_int_equal(decodeSnap(&sb, &s), 0);
    assert_false(s.has_restored_from);
    assert_int_equal(s.roles.voters, 3);
    assert_int_equal(s.roles.standbys, 1);
    assert_int_equal(s.roles.dead_after_s, 30);
    assert_int_equal(s.n_members, 1);
    msgpack_sbuffer_destroy(&sb);
    /* Refused: a NUL in the zone, a zone too long, 2 targets, a target
     * over 32 bits. */
    msgpack_sbuffer_init(&sb);
    packZoned(&sb, "a\0b", 3, ok, 3);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);
    memset(long_zone, 'z', sizeof long_zone);
    msgpack_sbuffer_init(&sb);
    packZoned(&sb, long_zone, sizeof long_zone, ok, 3);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_init(&sb);
    packZoned(&sb, "rack-a", 6, ok, 2);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_init(&sb);
    packZoned(&sb, "rack-a", 6, huge, 3);
    assert_int_equal(decodeSnap(&sb, &s), -1);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_empty_strings),
        cmocka_unit_test(test_page_nul_in_stream_refused),
        cmocka_unit_test(test_page_huge_count_refused),
        cmocka_unit_test(test_page_truncated_refused),
        cmocka_unit_test(test_snap_empty_strings),
        cmocka_unit_test(test_snap_nul_refused),
        cmocka_unit_test(test_snap_zone_and_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
