/* Unit tests for node/codec.c: JSON and MessagePack bodies to and from
 * jansson trees, format negotiation, and the error messages for bad
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

/* Decode must fail with a message containing `needle`. */
#define ASSERT_DECODE_ERR(...) ASSERT_DECODE_ERR_(__VA_ARGS__)
#define ASSERT_DECODE_ERR_(fmt, bytes, len, needle)                            \
    do {                                                                       \
        char err_[256] = "";                                                   \
        json_t *v_ = codec_decode((fmt), (bytes), (len), err_, sizeof err_);   \
        if (v_ != NULL || strstr(err_, (needle)) == NULL) {                    \
            fail_msg("expected error containing '%s', got '%s'", (needle),     \
                     err_);                                                    \
        }                                                                      \
    } while (0)

/* Bytes literal with its length (no terminator). */
#define BYTES(s) (s), (sizeof(s) - 1)

static json_t *decodeOk(enum codec_format f, const char *b, size_t len)
{
    char err[256] = "";
    json_t *v = codec_decode(f, b, len, err, sizeof err);
    if (v == NULL) {
        fail_msg("decode failed: %s", err);
    }
    return v;
}

/* Encode v as compact JSON into a NUL-terminated malloc'ed string. */
static char *toJson(const json_t *v)
{
    size_t len;
    char *out = codec_encode(CODEC_JSON, v, &len);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* Content-Type / Accept values pick the format; anything else is JSON. */
static void test_format_from_header(void **state)
{
    (void)state;
    assert_int_equal(codec_format_from_header(NULL), CODEC_JSON);
    assert_int_equal(codec_format_from_header(""), CODEC_JSON);
    assert_int_equal(codec_format_from_header("application/json"), CODEC_JSON);
    assert_int_equal(codec_format_from_header("application/msgpack"),
                     CODEC_MSGPACK);
    assert_int_equal(codec_format_from_header("Application/X-MsgPack"),
                     CODEC_MSGPACK);
    assert_int_equal(
        codec_format_from_header("application/msgpack; charset=binary"),
        CODEC_MSGPACK);
    assert_int_equal(
        codec_format_from_header("text/html, application/x-msgpack;q=0.9"),
        CODEC_MSGPACK);
    assert_int_equal(
        codec_format_from_header("application/json, application/msgpack"),
        CODEC_JSON);
    assert_int_equal(codec_format_from_header("*/*"), CODEC_JSON);
    assert_int_equal(codec_format_from_header("application/msgpackx"),
                     CODEC_JSON);
    assert_string_equal(codec_content_type(CODEC_JSON), "application/json");
    assert_string_equal(codec_content_type(CODEC_MSGPACK),
                        "application/msgpack");
}

/* JSON decodes any value and re-encodes compactly with key order kept. */
static void test_json_roundtrip(void **state)
{
    static const char in[] =
        "{ \"z\": 1, \"a\": [true, false, null, 1.5, \"x\\u00e9\"],\n"
        "  \"m\": {\"k\": -3} }";
    json_t *v;
    char *out;

    (void)state;
    v = decodeOk(CODEC_JSON, BYTES(in));
    out = toJson(v);
    assert_string_equal(
        out,
        "{\"z\":1,\"a\":[true,false,null,1.5,\"x\xc3\xa9\"],\"m\":{\"k\":-3}}");
    free(out);
    json_decref(v);

    v = decodeOk(CODEC_JSON, BYTES("42"));
    assert_true(json_is_integer(v));
    out = toJson(v);
    assert_string_equal(out, "42");
    free(out);
    json_decref(v);

    v = decodeOk(CODEC_JSON, BYTES("\"s\""));
    assert_true(json_is_string(v));
    json_decref(v);
}

/* Malformed JSON reports line and column. */
static void test_json_errors(void **state)
{
    (void)state;
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("{\"a\":}"),
                      "malformed JSON at line 1 column 6: ");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("{\n\"a\": 1,\n  x}"),
                      "malformed JSON at line 3 column ");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("{} trailing"), "malformed JSON");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES(""), "malformed JSON at line");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("{\"a\":1,\"a\":2}"), "duplicate");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("9223372036854775808"), "too big");
    ASSERT_DECODE_ERR(CODEC_JSON, BYTES("\"\xff\""), "malformed JSON");
    ASSERT_DECODE_ERR(CODEC_JSON, NULL, 0, "malformed JSON");
}

/* 64-bit integer limits survive JSON -> MessagePack -> JSON. */
static void test_big_ints(void **state)
{
    static const char in[] =
        "[9223372036854775807,-9223372036854775808,4294967296,-1,0,255,"
        "-129,65536]";
    json_t *v;
    json_t *back;
    char *mp;
    size_t mp_len;
    char *out;

    (void)state;
    v = decodeOk(CODEC_JSON, BYTES(in));
    mp = codec_encode(CODEC_MSGPACK, v, &mp_len);
    assert_non_null(mp);
    back = decodeOk(CODEC_MSGPACK, mp, mp_len);
    out = toJson(back);
    assert_string_equal(out, in);
    assert_true(json_equal(v, back));
    free(out);
    free(mp);
    json_decref(back);
    json_decref(v);
}

/* Every JSON type round-trips through MessagePack, keeping key order. */
static void test_msgpack_roundtrip(void **state)
{
    static const char in[] =
        "{\"b\":null,\"a\":true,\"c\":false,\"d\":-0.25,\"e\":\"\xe2\x82\xac\","
        "\"f\":[[],{},\"\",1e20],\"g\":{\"nested\":{\"deep\":[1,2,3]}}}";
    json_t *v;
    json_t *back;
    char *mp;
    size_t mp_len;
    char *out;

    (void)state;
    v = decodeOk(CODEC_JSON, BYTES(in));
    mp = codec_encode(CODEC_MSGPACK, v, &mp_len);
    assert_non_null(mp);
    back = decodeOk(CODEC_MSGPACK, mp, mp_len);
    assert_true(json_equal(v, back));
    out = toJson(back);
    assert_string_equal(out, in);
    free(out);
    free(mp);
    json_decref(back);
    json_decref(v);
}

/* Exact bytes for a small object, both ways. */
static void test_msgpack_bytes(void **state)
{
    json_t *v;
    char *mp;
    size_t len;

    (void)state;
    v = json_pack("{s:i,s:[b,n]}", "a", 1, "bc", 1);
    mp = codec_encode(CODEC_MSGPACK, v, &len);
    assert_non_null(mp);
    assert_int_equal(len, 10);
    assert_memory_equal(mp,
                        "\x82\xa1"
                        "a\x01\xa2"
                        "bc\x92\xc3\xc0",
                        10);
    free(mp);
    json_decref(v);

    /* float32 1.5, str8, map16 decode. */
    v = decodeOk(CODEC_MSGPACK, BYTES("\x93\xca\x3f\xc0\x00\x00\xd9\x01z"
                                      "\xde\x00\x01\xa1k\xcd\x01\x00"));
    assert_true(json_is_real(json_array_get(v, 0)));
    assert_true(json_real_value(json_array_get(v, 0)) == 1.5);
    assert_string_equal(json_string_value(json_array_get(v, 1)), "z");
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(v, 2), "k")), 256);
    json_decref(v);

    /* Unsigned exactly INT64_MAX is fine. */
    v = decodeOk(CODEC_MSGPACK, BYTES("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"));
    assert_int_equal(json_integer_value(v), INT64_MAX);
    json_decref(v);

    /* Empty strings, as values and as keys (msgpack-c gives them a NULL
     * pointer; they were refused as "not valid UTF-8": found by
     * tests/fuzz/fuzz_append_msgpack). */
    v = decodeOk(CODEC_MSGPACK, BYTES("\x82\xa4"
                                      "data\xa0\xa0\x01"));
    assert_string_equal(json_string_value(json_object_get(v, "data")), "");
    assert_int_equal(json_integer_value(json_object_get(v, "")), 1);
    json_decref(v);
}

/* A container claiming more elements than bytes follow is refused before
 * anything is allocated for it (replication/mpscan.h). */
static void test_msgpack_huge_counts(void **state)
{
    (void)state;
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xdf\xff\xff\xff\xff"),
                      "truncated");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x91\xdd\x7f\xff\xff\xff\x01"),
                      "truncated");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xc6\xff\xff\xff\xff"),
                      "truncated");
}

/* Types with no JSON equivalent and malformed input are refused with a
 * clear message. */
static void test_msgpack_errors(void **state)
{
    (void)state;
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xc4\x01\x00"),
                      "MessagePack bin type is not supported");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x91\xc4\x00"),
                      "bin type is not supported");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xd4\x05\x00"),
                      "MessagePack ext type 5 is not supported");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x81\x01\x02"),
                      "map key is not a string");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x82\xa1k\x01\xa1k\x02"),
                      "duplicate key 'k'");
    ASSERT_DECODE_ERR(CODEC_MSGPACK,
                      BYTES("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"),
                      "integer 9223372036854775808 is out of range");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xc0\xc0"),
                      "1 trailing bytes after the value at offset 1");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x92\x01"), "truncated");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xdc\xff\xff"), "truncated");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xc1"),
                      "malformed MessagePack: parse error");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES(""), "empty body");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\xa1\xff"), "not valid UTF-8");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x81\xa1\xff\x01"),
                      "map key is not valid UTF-8");
    ASSERT_DECODE_ERR(CODEC_MSGPACK, BYTES("\x81\xa1\x00\x01"),
                      "map key contains NUL");
    ASSERT_DECODE_ERR(CODEC_MSGPACK,
                      BYTES("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"),
                      "not finite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_from_header),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_big_ints),
        cmocka_unit_test(test_msgpack_roundtrip),
        cmocka_unit_test(test_msgpack_bytes),
        cmocka_unit_test(test_msgpack_errors),
        cmocka_unit_test(test_msgpack_huge_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
