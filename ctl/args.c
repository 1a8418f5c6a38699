/* ledgerctl argument parsing, error reporting and shared API helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* One error line: "ledgerctl: MESSAGE" + tail. */
static void report(const char *tail, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("ledgerctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int ctlFail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("\n", fmt, ap);
    va_end(ap);
    return CTL_EXIT_FAIL;
}

int ctlUsage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("; see 'ledgerctl --help'\n", fmt, ap);
    va_end(ap);
    return CTL_EXIT_USAGE;
}

/* The TOKEN field of the first "NAME ROLE TOKEN ..." line whose role is
 * `role` (NULL: any), copied into out; 0 if there is none. */
static int pickToken(const char *text, const char *role, char *out, size_t len)
{
    const char *line = text;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t ll = end != NULL ? (size_t)(end - line) : strlen(line);
        char buf[4096];
        char *f[3];
        char *save = NULL;
        int nf = 0;

        snprintf(buf, sizeof buf, "%.*s", (int)ll, line);
        for (char *t = strtok_r(buf, " \t\r", &save); t != NULL && nf < 3;
             t = strtok_r(NULL, " \t\r", &save)) {
            if (t[0] == '#') {
                break;
            }
            f[nf++] = t;
        }
        if (nf == 3 && (role == NULL || strcmp(f[1], role) == 0)) {
            snprintf(out, len, "%s", f[2]);
            return 1;
        }
        line = end != NULL ? end + 1 : line + ll;
    }
    return 0;
}

char *ctlReadTokenFile(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[65536];
    char tok[1100];
    size_t n;
    if (f == NULL) {
        return NULL;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (pickToken(buf, "admin", tok, sizeof tok) ||
        pickToken(buf, "node", tok, sizeof tok) ||
        pickToken(buf, NULL, tok, sizeof tok)) {
        return strdup(tok);
    }
    /* One bare token: skip comment lines, trim blanks. */
    {
        char *p = buf;
        while (*p == '#') {
            char *nl = strchr(p, '\n');
            p = nl != NULL ? nl + 1 : p + strlen(p);
        }
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
        }
        n = strlen(p);
        while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' ||
                         p[n - 1] == ' ' || p[n - 1] == '\t')) {
            p[--n] = '\0';
        }
        return strdup(p);
    }
}

/* Handle a global flag; returns 1 if it was one, 0 if not, or
 * -CTL_EXIT_USAGE on error. *needs_value says it takes a value; with
 * value NULL the caller calls again with the next argument. */
static int parseGlobal(struct ctl *ctl, const char *name, const char *value,
                       int *needs_value)
{
    *needs_value = 0;
    if (strcmp(name, "json") == 0) {
        if (value != NULL) {
            return -ctlUsage("--json takes no value");
        }
        ctl->json = 1;
        return 1;
    }
    if (strcmp(name, "endpoints") == 0 || strcmp(name, "token-file") == 0 ||
        strcmp(name, "timeout-ms") == 0 || strcmp(name, "tls-ca") == 0 ||
        strcmp(name, "tls-cert") == 0 || strcmp(name, "tls-key") == 0) {
        *needs_value = 1;
        if (value == NULL) {
            return 1;
        }
        if (strncmp(name, "tls-", 4) == 0) {
            if (value[0] == '\0') {
                return -ctlUsage("--%s needs a file", name);
            }
            *(strcmp(name, "tls-ca") == 0     ? &ctl->tls_ca
              : strcmp(name, "tls-cert") == 0 ? &ctl->tls_cert
                                              : &ctl->tls_key) = value;
        } else if (strcmp(name, "endpoints") == 0) {
            if (value[0] == '\0') {
                return -ctlUsage("--endpoints needs HOST:PORT[,HOST:PORT...]");
            }
            ctl->endpoints = value;
        } else if (strcmp(name, "token-file") == 0) {
            char *tok = ctlReadTokenFile(value);
            if (tok == NULL) {
                return -ctlUsage("cannot read --token-file %s: %s", value,
                                 strerror(errno));
            }
            free(ctl->token);
            ctl->token = tok;
            free(ctl->token_file);
            ctl->token_file = realpath(value, NULL);
        } else {
            unsigned long long v;
            if (ctlParseU64("--timeout-ms", value, 1, 3600000, &v) != 0) {
                return -CTL_EXIT_USAGE;
            }
            ctl->timeout_ms = (unsigned)v;
        }
        return 1;
    }
    return 0;
}

int ctlParseArgs(struct ctl *ctl, const char *cmd, int argc, char **argv,
                 struct ctl_flag *flags, const char **pos, int max_pos,
                 int *n_pos)
{
    char pfx[80] = "";
    int only_pos = 0;
    if (cmd != NULL) {
        snprintf(pfx, sizeof pfx, "%s: ", cmd);
    }
    *n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            char name[64];
            const char *eq = strchr(a + 2, '=');
            const char *value = eq != NULL ? eq + 1 : NULL;
            size_t nlen = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
            struct ctl_flag *f = NULL;
            int needs_value = 0;
            int g;
            if (nlen == 0 || nlen >= sizeof name) {
                return ctlUsage("%sunknown flag '%s'", pfx, a);
            }
            memcpy(name, a + 2, nlen);
            name[nlen] = '\0';
            if (strcmp(name, "help") == 0) {
                ctlPrintHelp();
                return -1;
            }
            for (struct ctl_flag *q = flags; q != NULL && q->name != NULL;
                 q++) {
                if (strcmp(q->name, name) == 0) {
                    f = q;
                    break;
                }
            }
            if (f == NULL) {
                g = parseGlobal(ctl, name, value, &needs_value);
                if (g < 0) {
                    return -g;
                }
                if (g == 0) {
                    return ctlUsage("%sunknown flag '--%s'", pfx, name);
                }
                if (needs_value && value == NULL) {
                    if (i + 1 >= argc) {
                        return ctlUsage("%sflag --%s needs a value", pfx, name);
                    }
                    g = parseGlobal(ctl, name, argv[++i], &needs_value);
                    if (g < 0) {
                        return -g;
                    }
                }
                continue;
            }
            if (!f->has_value) {
                if (value != NULL) {
                    return ctlUsage("%sflag --%s takes no value", pfx, name);
                }
                f->value = "";
                continue;
            }
            if (value == NULL) {
                if (i + 1 >= argc) {
                    return ctlUsage("%sflag --%s needs a value", pfx, name);
                }
                value = argv[++i];
            }
            f->value = value;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            return ctlUsage("%sunknown flag '%s'", pfx, a);
        }
        if (*n_pos >= max_pos) {
            return ctlUsage("%sunexpected argument '%s'", pfx, a);
        }
        pos[(*n_pos)++] = a;
    }
    return 0;
}

const char *ctlFlag(const struct ctl_flag *flags, const char *name)
{
    for (; flags != NULL && flags->name != NULL; flags++) {
        if (strcmp(flags->name, name) == 0) {
            return flags->value;
        }
    }
    return NULL;
}

int ctlParseU64(const char *what, const char *s, unsigned long long min,
                unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return ctlUsage("%s must be a number, got '%s'", what,
                        s != NULL ? s : "");
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return ctlUsage("%s must be a number, got '%s'", what, s);
    }
    if (v < min || v > max) {
        return ctlUsage("%s must be between %llu and %llu, got %s", what, min,
                        max, s);
    }
    *out = v;
    return 0;
}

int ctlFlagUnsigned(const struct ctl_flag *flags, const char *name,
                    unsigned long long min, unsigned long long max,
                    unsigned *out)
{
    const char *v = ctlFlag(flags, name);
    unsigned long long x;
    char what[64];
    if (v == NULL) {
        return 0;
    }
    snprintf(what, sizeof what, "--%s", name);
    if (ctlParseU64(what, v, min, max, &x) != 0) {
        return CTL_EXIT_USAGE;
    }
    *out = (unsigned)x;
    return 0;
}

int ctlCheckTls(const struct ctl *ctl)
{
    if ((ctl->tls_cert == NULL) != (ctl->tls_key == NULL)) {
        return ctlUsage("--tls-cert and --tls-key go together");
    }
    return 0;
}

ledger_client *ctlClient(struct ctl *ctl)
{
    char err[256];
    if (ctl->client != NULL) {
        return ctl->client;
    }
    if (ctlCheckTls(ctl) != 0) {
        return NULL;
    }
    if (ledger_client_create(ctl->endpoints, ctl->token, &ctl->client, err,
                             sizeof err) != 0) {
        ctlUsage("%s", err);
        return NULL;
    }
    ledger_client_set_timeout(ctl->client, ctl->timeout_ms);
    if ((ctl->tls_ca != NULL || ctl->tls_cert != NULL) &&
        ledger_client_set_tls(ctl->client, ctl->tls_ca, ctl->tls_cert,
                              ctl->tls_key) != 0) {
        ctlFail("out of memory");
        ledger_client_destroy(ctl->client);
        ctl->client = NULL;
        return NULL;
    }
    return ctl->client;
}

void ctlDescribeError(const struct ledger_http_response *r, char *buf,
                      size_t len)
{
    json_t *v = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL);
    const char *code = NULL;
    const char *msg = NULL;
    json_t *e = v != NULL ? json_object_get(v, "error") : NULL;
    if (json_is_object(e)) {
        code = json_string_value(json_object_get(e, "code"));
        msg = json_string_value(json_object_get(e, "message"));
    }
    if (msg != NULL) {
        snprintf(buf, len, "HTTP %d %s: %s", r->status,
                 code != NULL ? code : "error", msg);
    } else {
        /* Not our error shape: show the start of the body on one line. */
        char body[160];
        size_t n = 0;
        for (size_t i = 0; i < r->body_len && n + 1 < sizeof body; i++) {
            char ch = r->body[i];
            body[n++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
        }
        body[n] = '\0';
        snprintf(buf, len, "HTTP %d%s%s", r->status, n > 0 ? ": " : "", body);
    }
    if (r->status == 401) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l,
                 " (pass --token-file FILE or set LEDGER_TOKEN)");
    }
    json_decref(v);
}

int ctlApi(struct ctl *ctl, const char *what, const char *method,
           const char *path, json_t *body, json_t **out, int *status)
{
    ledger_client *c = ctlClient(ctl);
    struct ledger_http_response r;
    char *text = NULL;
    json_error_t jerr;
    int rv;

    if (status != NULL) {
        *status = 0;
    }
    *out = NULL;
    if (c == NULL) {
        return CTL_EXIT_USAGE;
    }
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            return ctlFail("%s: out of memory", what);
        }
    }
    rv = ledger_client_call(c, method, path, text,
                            text != NULL ? strlen(text) : 0, &r);
    free(text);
    if (rv != 0) {
        if (rv == LEDGER_CLIENT_ENOENDPOINT) {
            return ctlFail("%s: %s; is the cluster running? (start it with "
                           "'ledgerctl cluster up' or point --endpoints at "
                           "it)",
                           what, ledger_client_errmsg(c));
        }
        return ctlFail("%s: %s", what, ledger_client_errmsg(c));
    }
    if (status != NULL) {
        *status = r.status;
    }
    if (r.status < 200 || r.status > 299) {
        char desc[512];
        ctlDescribeError(&r, desc, sizeof desc);
        ledger_http_response_free(&r);
        return ctlFail("%s: %s (from %s)", what, desc,
                       ledger_client_last_endpoint(c));
    }
    *out =
        json_loadb(r.body, r.body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (*out == NULL) {
        ctlFail("%s: %s answered with invalid JSON: %s", what,
                ledger_client_last_endpoint(c), jerr.text);
        ledger_http_response_free(&r);
        return CTL_EXIT_FAIL;
    }
    ledger_http_response_free(&r);
    return 0;
}

void ctlUrlEncode(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s != '\0' && n + 4 < outlen; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
            ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

void ctlPrintJson(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s != NULL) {
        puts(s);
        free(s);
    }
    fflush(stdout);
}
