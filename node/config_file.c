/* ledgerd --config FILE: the file's flags spliced into argv (see
 * config_file.h). Every malformed line is refused with FILE:LINE and what
 * is wrong; nothing is started on any error. */
#include "config_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct option *findOpt(const struct option *opts, const char *name)
{
    for (; opts->name != NULL; opts++) {
        if (strcmp(opts->name, name) == 0) {
            return opts;
        }
    }
    return NULL;
}

static bool isRefused(const char *const *refused, const char *name)
{
    for (; refused != NULL && *refused != NULL; refused++) {
        if (strcmp(*refused, name) == 0) {
            return true;
        }
    }
    return false;
}

static char *trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
                       end[-1] == '\n')) {
        *--end = '\0';
    }
    return s;
}

/* Cut a comment off an unquoted value: '#' at its start or after a blank. */
static void cutComment(char *v)
{
    for (char *p = v; *p != '\0'; p++) {
        if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
    }
}

static int keep(struct config_argv *a, char *s)
{
    char **o = realloc(a->owned, (size_t)(a->n_owned + 1) * sizeof *o);
    if (o == NULL) {
        free(s);
        return -1;
    }
    a->owned = o;
    a->owned[a->n_owned++] = s;
    return 0;
}

static int push(struct config_argv *a, char *arg, int line)
{
    char **v = realloc(a->argv, (size_t)(a->argc + 2) * sizeof *v);
    int *l;
    if (v == NULL) {
        return -1;
    }
    a->argv = v;
    l = realloc(a->line, (size_t)(a->argc + 1) * sizeof *l);
    if (l == NULL) {
        return -1;
    }
    a->line = l;
    a->argv[a->argc] = arg;
    a->line[a->argc] = line;
    a->argc++;
    a->argv[a->argc] = NULL;
    return 0;
}

struct seen {
    const char *name;
    int line;
};

/* One line "key = value" into out (nothing for blanks and comments). */
static int parseLine(struct config_argv *out, const struct option *opts,
                     const char *const *refused, struct seen *seen,
                     size_t *n_seen, char *text, int line, char *err,
                     size_t errlen)
{
    const char *path = out->path;
    const struct option *o;
    char *key = trim(text);
    char *eq;
    char *value = NULL;
    char *arg;

    if (key[0] == '\0' || key[0] == '#') {
        return 0;
    }
    eq = strchr(key, '=');
    if (eq != NULL) {
        *eq = '\0';
        value = trim(eq + 1);
        key = trim(key);
    } else {
        cutComment(key);
        key = trim(key);
    }
    if (key[0] == '\0') {
        snprintf(err, errlen, "%s:%d: no key before '=': write key = value",
                 path, line);
        return -1;
    }
    if (strncmp(key, "--", 2) == 0) {
        snprintf(err, errlen,
                 "%s:%d: write the key without dashes ('%.64s', not "
                 "'%.64s')",
                 path, line, key + 2, key);
        return -1;
    }
    o = findOpt(opts, key);
    if (o == NULL || isRefused(refused, key)) {
        char alt[128];
        size_t i;
        snprintf(alt, sizeof alt, "%s", key);
        for (i = 0; alt[i] != '\0'; i++) {
            alt[i] = alt[i] == '_' ? '-' : alt[i];
        }
        if (o == NULL && strcmp(alt, key) != 0 && findOpt(opts, alt) != NULL &&
            !isRefused(refused, alt)) {
            snprintf(err, errlen,
                     "%s:%d: unknown key '%.64s' (did you mean "
                     "'%.64s'?)",
                     path, line, key, alt);
        } else if (o != NULL) {
            snprintf(err, errlen,
                     "%s:%d: '%.64s' cannot be set in a config file", path,
                     line, key);
        } else {
            snprintf(err, errlen,
                     "%s:%d: unknown key '%.64s' (keys are ledgerd's flags "
                     "without the dashes)",
                     path, line, key);
        }
        return -1;
    }
    for (size_t i = 0; i < *n_seen; i++) {
        if (strcmp(seen[i].name, o->name) == 0) {
            snprintf(err, errlen, "%s:%d: '%s' is already set on line %d", path,
                     line, key, seen[i].line);
            return -1;
        }
    }
    seen[*n_seen].name = o->name;
    seen[*n_seen].line = line;
    (*n_seen)++;

    if (value != NULL && value[0] == '"') {
        char *close = strchr(value + 1, '"');
        char *rest;
        if (close == NULL) {
            snprintf(err, errlen,
                     "%s:%d: the value of '%s' has no closing "
                     "'\"'",
                     path, line, key);
            return -1;
        }
        *close = '\0';
        rest = trim(close + 1);
        if (rest[0] != '\0' && rest[0] != '#') {
            snprintf(err, errlen,
                     "%s:%d: text after the quoted value of '%s': '%.32s'",
                     path, line, key, rest);
            return -1;
        }
        value++;
    } else if (value != NULL) {
        cutComment(value);
        value = trim(value);
    }

    if (o->has_arg == no_argument) {
        if (value == NULL || strcmp(value, "true") == 0 ||
            strcmp(value, "yes") == 0 || strcmp(value, "1") == 0) {
            if (asprintf(&arg, "--%s", o->name) < 0) {
                goto oom;
            }
        } else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                   strcmp(value, "0") == 0) {
            return 0;
        } else {
            snprintf(err, errlen,
                     "%s:%d: '%s' is a switch: its value must be true or "
                     "false, not '%.64s'",
                     path, line, key, value);
            return -1;
        }
    } else {
        if (value == NULL || value[0] == '\0') {
            snprintf(err, errlen, "%s:%d: '%s' needs a value: %s = VALUE", path,
                     line, key, key);
            return -1;
        }
        if (asprintf(&arg, "--%s=%s", o->name, value) < 0) {
            goto oom;
        }
    }
    if (keep(out, arg) != 0 || push(out, arg, line) != 0) {
        goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "%s:%d: out of memory", path, line);
    return -1;
}

static int readFile(struct config_argv *out, const struct option *opts,
                    const char *const *refused, char *err, size_t errlen)
{
    FILE *f = fopen(out->path, "r");
    struct seen seen[128];
    size_t n_seen = 0;
    char buf[CONFIG_FILE_LINE_MAX + 2];
    int line = 0;
    int rv = 0;

    if (f == NULL) {
        snprintf(err, errlen, "--config %s: %s", out->path, strerror(errno));
        return -1;
    }
    while (rv == 0 && fgets(buf, sizeof buf, f) != NULL) {
        size_t len = strlen(buf);
        line++;
        if (len == sizeof buf - 1 && buf[len - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", out->path,
                     line, CONFIG_FILE_LINE_MAX);
            rv = -1;
            break;
        }
        if (n_seen == sizeof seen / sizeof seen[0]) {
            snprintf(err, errlen, "%s:%d: too many keys", out->path, line);
            rv = -1;
            break;
        }
        rv = parseLine(out, opts, refused, seen, &n_seen, buf, line, err,
                       errlen);
    }
    if (rv == 0 && ferror(f)) {
        snprintf(err, errlen, "--config %s: read error", out->path);
        rv = -1;
    }
    fclose(f);
    return rv;
}

int config_argv_build(int argc, char **argv, const struct option *opts,
                      const char *const *refused, struct config_argv *out,
                      char *err, size_t errlen)
{
    int at = -1; /* Index of --config in argv. */
    int skip = 0;
    int i;

    memset(out, 0, sizeof *out);
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *p = NULL;
        int used = 1;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a value");
                goto fail;
            }
            p = argv[i + 1];
            used = 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            p = argv[i] + 9;
        } else {
            continue;
        }
        if (at >= 0) {
            snprintf(err, errlen, "--config is given twice");
            goto fail;
        }
        if (p[0] == '\0') {
            snprintf(err, errlen, "--config needs a file name");
            goto fail;
        }
        at = i;
        skip = used;
        out->path = strdup(p);
        if (out->path == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        i += used - 1;
    }
    if (push(out, argv[0], 0) != 0) {
        goto oom;
    }
    if (out->path != NULL && readFile(out, opts, refused, err, errlen) != 0) {
        config_argv_free(out);
        return -1;
    }
    for (i = 1; i < argc; i++) {
        if (i >= at && i < at + skip) {
            continue;
        }
        if (push(out, argv[i], 0) != 0) {
            goto oom;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    config_argv_free(out);
    return -1;
}

void config_argv_free(struct config_argv *a)
{
    for (int i = 0; i < a->n_owned; i++) {
        free(a->owned[i]);
    }
    free(a->owned);
    free(a->argv);
    free(a->line);
    free(a->path);
    memset(a, 0, sizeof *a);
}

const char *config_argv_where(const struct config_argv *a, int i, char *buf,
                              size_t len)
{
    if (a->path == NULL || i < 0 || i >= a->argc || a->line[i] == 0) {
        return "";
    }
    snprintf(buf, len, "%s:%d: ", a->path, a->line[i]);
    return buf;
}

int config_argv_find(const struct config_argv *a, const char *name)
{
    size_t len = strlen(name);
    int found = -1;
    for (int i = 1; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (strcmp(s, "--") == 0) {
            break;
        }
        if (strncmp(s, "--", 2) == 0 && strncmp(s + 2, name, len) == 0 &&
            (s[2 + len] == '\0' || s[2 + len] == '=')) {
            found = i;
        }
    }
    return found;
}
