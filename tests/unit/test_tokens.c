/* Unit tests for node/tokens.c: the token file format (docs/security.md,
 * "Tokens and roles"): what parses into what, what is refused and with
 * which line, and the node credential. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tokens.h"

static struct token_set *parseOk(const char *text)
{
    struct token_set *s = NULL;
    char err[600] = "";
    if (token_set_parse(text, strlen(text), &s, err, sizeof err) != 0) {
        fail_msg("refused: %s", err);
    }
    return s;
}

/* Refused, with a message containing `needle`. */
static void parseBad(const char *text, size_t len, const char *needle)
{
    struct token_set *s = NULL;
    char err[600] = "";
    if (token_set_parse(text, len, &s, err, sizeof err) == 0) {
        token_set_free(s);
        fail_msg("accepted: expected an error containing '%s'", needle);
    }
    if (strstr(err, needle) == NULL) {
        fail_msg("expected '%s' in '%s'", needle, err);
    }
    assert_null(s);
}
#define BAD(text, needle) parseBad((text), sizeof(text) - 1, (needle))

static struct token *find(struct token_set *s, const char *secret)
{
    return token_set_find(s, secret, strlen(secret));
}

/* Today's format: one bare token, with or without comments and CRLF, is
 * the admin token named "admin" and the node credential. */
static void test_bare_token(void **state)
{
    static const char *files[] = {"s3cret\n", "s3cret", "  s3cret \r\n\n",
                                  "# the token\n\ns3cret # inline\n"};
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct token_set *s = parseOk(files[i]);
        assert_int_equal(s->n, 1);
        assert_string_equal(s->tokens[0].name, "admin");
        assert_int_equal(s->tokens[0].role, TOKEN_ROLE_ADMIN);
        assert_ptr_equal(s->node, &s->tokens[0]);
        assert_ptr_equal(find(s, "s3cret"), &s->tokens[0]);
        assert_null(find(s, "s3cre"));
        assert_null(find(s, "s3cret "));
        token_set_free(s);
    }
}

/* Named lines: roles, rates, default bursts, and the node credential (the
 * first node line; else the first admin line). */
static void test_named_lines(void **state)
{
    struct token_set *s;

    (void)state;
    s = parseOk("r read rd rate=0.5\r\n"
                "w\twrite\twr\tburst=7 rate=2.5\n"
                "a admin ad\n"
                "n node nd\n"
                "n2 node nd2 # second node line\n");
    assert_int_equal(s->n, 5);
    assert_int_equal(find(s, "rd")->role, TOKEN_ROLE_READ);
    assert_true(find(s, "rd")->rate == 0.5);
    assert_true(find(s, "rd")->burst == 1);
    assert_true(find(s, "wr")->rate == 2.5 && find(s, "wr")->burst == 7);
    assert_true(find(s, "ad")->rate == 0);
    assert_ptr_equal(s->node, find(s, "nd"));
    assert_true(find(s, "nd")->peer_cred && find(s, "nd2")->peer_cred);
    assert_false(find(s, "ad")->peer_cred);
    token_set_free(s);

    s = parseOk("r read rd rate=3.2\na admin ad\nb admin bd rate=1\n");
    assert_ptr_equal(s->node, find(s, "ad"));
    assert_true(find(s, "ad")->peer_cred);
    assert_false(find(s, "bd")->peer_cred);
    assert_true(find(s, "rd")->burst == 4); /* the rate rounded up */
    token_set_free(s);
}

/* Every refusal names the line and never repeats a token. */
static void test_refusals(void **state)
{
    (void)state;
    BAD("", "no token");
    BAD("# nothing\n\n", "no token");
    BAD("a admin x\nb\n", "line 2: a bare token");
    BAD("bare\na admin x\n", "line 1: a bare token");
    BAD("a admin\n", "line 1: expected NAME ROLE TOKEN");
    BAD("a admin x rate=1 burst=2 extra\n", "line 1: too many fields");
    BAD("a/b admin x\n", "line 1: name 'a/b' is invalid");
    BAD("a boss x\n", "line 1: role 'boss' of 'a'");
    BAD("a admin x\nb read y rate=0\n", "line 2: rate= of 'b'");
    BAD("a admin x\nb read y rate=1e3\n", "line 2: rate= of 'b'");
    BAD("a admin x\nb read y rate=-1\n", "line 2: rate= of 'b'");
    BAD("a admin x\nb read y burst=0 rate=1\n", "line 2: burst= of 'b'");
    BAD("a admin x\nb read y burst=3\n", "line 2: burst= of 'b' needs rate=");
    BAD("a admin x\nb read y rate=1 rate=2\n", "line 2: 'rate=2' is not");
    BAD("a admin x\nb read y speed=2\n", "line 2: 'speed=2' is not");
    BAD("a admin x\na read y\n", "line 2: name 'a' is already used on line 1");
    BAD("a admin x\nb read x\n",
        "line 2: the token of 'b' is the token of 'a'");
    BAD("a read x\nb write y\n", "no admin or node token");
    BAD("a admin x rate=5\n", "line 1: 'a' is the credential");
    BAD("a admin x\nn node y rate=5\n", "line 2: 'n' is the credential");
    BAD("a admin x\nb read y\x7f\n", "line 2: byte 0x7f at column 9");
    BAD("a admin x\nb read \xc3\xa9\n", "line 2: byte 0xc3");
    BAD("a admin x\nb read y\0z\n", "line 2: byte 0x00");
}

/* Comments may hold any byte; a token may hold '#' after its first
 * character; long tokens are bounded. */
static void test_edges(void **state)
{
    char big[TOKEN_SECRET_MAX + 32];
    struct token_set *s;

    (void)state;
    s = parseOk("# caf\xc3\xa9 \x01\na admin x#y # \xff\n");
    assert_non_null(find(s, "x#y"));
    token_set_free(s);

    snprintf(big, sizeof big, "a admin %0*d\n", TOKEN_SECRET_MAX, 0);
    s = parseOk(big);
    token_set_free(s);
    snprintf(big, sizeof big, "a admin %0*d\n", TOKEN_SECRET_MAX + 1, 0);
    parseBad(big, strlen(big), "longer than 1024 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_token),
        cmocka_unit_test(test_named_lines),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
