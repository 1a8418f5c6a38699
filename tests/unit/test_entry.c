/* Command entry codec: ops survive encode -> entry_build -> decode, entries
 * are padded to a multiple of 8 bytes (raft 0.15 needs it), and malformed
 * entries are refused with a message instead of crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <raft.h>
#include <string.h>

#include "replication/entry.h"

static void *build(const struct op_buf *ops, size_t n, size_t *len)
{
    void *buf = entry_build(1234567, ops, n, len);
    assert_non_null(buf);
    return buf;
}

/* An append and a checkpoint packed into one entry decode to the same ops,
 * in order, and the entry length is a multiple of 8. */
static void test_roundtrip(void **state)
{
    struct ledger_event_in ev[2] = {
        {"created", "id-1", "{\"a\":1}", 7},
        {"paid", NULL, "[1,2]", 5},
    };
    struct op_buf ops[2];
    entry_decoder *d = NULL;
    struct op *out;
    size_t n_out;
    int64_t ts;
    size_t len;
    char err[128];
    void *buf;
    (void)state;

    assert_int_equal(op_encode_append("orders", true, 7, ev, 2, &ops[0]), 0);
    assert_int_equal(
        op_encode_checkpoint("orders", "c1", "{\"p\":3}", 7, &ops[1]), 0);
    buf = build(ops, 2, &len);
    assert_int_equal(len % 8, 0);
    assert_int_equal(
        entry_decode(buf, len, &ts, &out, &n_out, &d, err, sizeof err), 0);
    assert_int_equal(ts, 1234567);
    assert_int_equal(n_out, 2);
    assert_int_equal(out[0].type, OP_APPEND);
    assert_string_equal(out[0].stream, "orders");
    assert_true(out[0].has_expected);
    assert_int_equal(out[0].expected, 7);
    assert_int_equal(out[0].n_events, 2);
    assert_string_equal(out[0].events[0].type, "created");
    assert_string_equal(out[0].events[0].id, "id-1");
    assert_int_equal(out[0].events[0].data_len, 7);
    assert_memory_equal(out[0].events[0].data, "{\"a\":1}", 7);
    assert_null(out[0].events[1].id);
    assert_int_equal(out[1].type, OP_CHECKPOINT);
    assert_string_equal(out[1].name, "c1");
    assert_int_equal(out[1].value_len, 7);
    entry_decoder_free(d);
    raft_free(buf);
    op_buf_free(&ops[0]);
    op_buf_free(&ops[1]);
}

/* Ops of every length modulo 8 give padded entries that decode. */
static void test_padding_all_lengths(void **state)
{
    char data[64];
    size_t k;
    (void)state;

    for (k = 1; k < sizeof data; k++) {
        struct ledger_event_in ev = {"t", NULL, data, k};
        struct op_buf op;
        entry_decoder *d = NULL;
        struct op *out;
        size_t n_out;
        int64_t ts;
        size_t len;
        char err[128];
        void *buf;

        memset(data, 'x', k);
        assert_int_equal(op_encode_append("s", false, 0, &ev, 1, &op), 0);
        buf = build(&op, 1, &len);
        assert_int_equal(len % 8, 0);
        assert_int_equal(
            entry_decode(buf, len, &ts, &out, &n_out, &d, err, sizeof err), 0);
        assert_int_equal(out[0].events[0].data_len, k);
        assert_false(out[0].has_expected);
        entry_decoder_free(d);
        raft_free(buf);
        op_buf_free(&op);
    }
}

/* INIT and member ops carry ids and addresses. */
static void test_members(void **state)
{
    struct op_member m[2] = {{1, "127.0.0.1:7001", "127.0.0.1:8001"},
                             {2, "127.0.0.1:7002", "127.0.0.1:8002"}};
    struct op_buf ops[6];
    struct ledger_roles roles = {3, 1, 30};
    entry_decoder *d = NULL;
    struct op *out;
    size_t n_out;
    int64_t ts;
    size_t len;
    char err[128];
    void *buf;
    (void)state;

    assert_int_equal(op_encode_init("cid", m, 2, &ops[0]), 0);
    assert_int_equal(op_encode_member_put(&m[1], &ops[1]), 0);
    assert_int_equal(op_encode_member_del(2, &ops[2]), 0);
    assert_int_equal(op_encode_member_zone(1, "rack-a", &ops[3]), 0);
    assert_int_equal(op_encode_member_zone(3, "", &ops[4]), 0);
    assert_int_equal(op_encode_roles(&roles, &ops[5]), 0);
    buf = build(ops, 6, &len);
    assert_int_equal(
        entry_decode(buf, len, &ts, &out, &n_out, &d, err, sizeof err), 0);
    assert_int_equal(n_out, 6);
    assert_int_equal(out[5].type, OP_ROLES);
    assert_int_equal(out[5].roles.voters, 3);
    assert_int_equal(out[5].roles.standbys, 1);
    assert_int_equal(out[5].roles.dead_after_s, 30);
    assert_int_equal(out[3].type, OP_MEMBER_ZONE);
    assert_int_equal(out[3].member_id, 1);
    assert_string_equal(out[3].zone, "rack-a");
    assert_int_equal(out[4].member_id, 3);
    assert_string_equal(out[4].zone, "");
    assert_string_equal(out[0].cluster_id, "cid");
    assert_int_equal(out[0].n_members, 2);
    assert_string_equal(out[0].members[1].api_addr, "127.0.0.1:8002");
    assert_int_equal(out[1].type, OP_MEMBER_PUT);
    assert_int_equal(out[1].members[0].id, 2);
    assert_int_equal(out[2].type, OP_MEMBER_DEL);
    assert_int_equal(out[2].member_id, 2);
    entry_decoder_free(d);
    raft_free(buf);
    for (int i = 0; i < 6; i++) {
        op_buf_free(&ops[i]);
    }
}

/* Garbage, truncation, non-zero padding and unknown op types are refused
 * with a message. */
static void test_malformed(void **state)
{
    struct ledger_event_in ev = {"t", "i", "1", 1};
    struct op_buf op;
    entry_decoder *d = NULL;
    struct op *out;
    size_t n_out;
    int64_t ts;
    size_t len;
    char err[128];
    unsigned char *buf;
    static const unsigned char garbage[] = {0xc1, 0x00, 0x01};
    static const unsigned char unknown[] = {0x93, 0x01, 0x00, 0x91,
                                            0x92, 0x09, 0x00};
    (void)state;

    err[0] = '\0';
    assert_int_not_equal(entry_decode(garbage, sizeof garbage, &ts, &out,
                                      &n_out, &d, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "malformed entry"));
    assert_null(d);
    assert_int_not_equal(entry_decode(unknown, sizeof unknown, &ts, &out,
                                      &n_out, &d, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "unknown op type"));

    assert_int_equal(op_encode_append("s", false, 0, &ev, 1, &op), 0);
    buf = build(&op, 1, &len);
    assert_int_not_equal(
        entry_decode(buf, len / 2, &ts, &out, &n_out, &d, err, sizeof err), 0);
    /* 8 header bytes + a 13-byte op: 3 bytes of padding. Make one
     * non-zero. */
    assert_int_equal(op.len, 13);
    assert_int_equal(len, 24);
    buf[len - 1] = 0x01;
    assert_int_not_equal(
        entry_decode(buf, len, &ts, &out, &n_out, &d, err, sizeof err), 0);
    raft_free(buf);
    op_buf_free(&op);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_padding_all_lengths),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("entry", tests, NULL, NULL);
}
