/* Finding and running ledgerd from ledgerctl.
 *
 * `cluster up` starts ledgerd as nodes. Offline commands (`recover`, and
 * any other that reads a data dir or a file in the store's format) run as
 * `ledgerd WORD ...`: they need the store and Raft's on-disk format, which
 * ctl/ must not link (docs/architecture.md, "Offline tools"). ledgerctl
 * execs ledgerd in place, so the command's output and exit code are
 * ledgerd's, and its messages are prefixed "ledgerctl:" (argv[0]).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

static int isExecutable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

int ctlFindLedgerd(char *out, size_t outlen, const char *what)
{
    const char *env = getenv("LEDGERD");
    char self[PATH_MAX];
    const char *path;
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        if (!isExecutable(env)) {
            return ctlFail("%s: LEDGERD=%s is not an executable file; point "
                           "LEDGERD at the ledgerd binary",
                           what, env);
        }
        snprintf(out, outlen, "%s", env);
        return 0;
    }
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, outlen, "%s/ledgerd", self);
            if (isExecutable(out)) {
                return 0;
            }
        }
    }
    path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t len = colon != NULL ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < outlen - 16) {
            snprintf(out, outlen, "%.*s/ledgerd", (int)len, path);
            if (isExecutable(out)) {
                return 0;
            }
        }
        path = colon != NULL ? colon + 1 : NULL;
    }
    return ctlFail("%s: cannot find the ledgerd binary (not next to "
                   "ledgerctl, not in PATH); set LEDGERD=/path/to/ledgerd",
                   what);
}

int ctlExecLedgerd(struct ctl *ctl, const char *word, int argc, char **argv)
{
    char ledgerd[PATH_MAX];
    char **args;
    int n = 0;

    if (ctlFindLedgerd(ledgerd, sizeof ledgerd, word) != 0) {
        return CTL_EXIT_FAIL;
    }
    args = calloc((size_t)argc + 4, sizeof *args);
    if (args == NULL) {
        return ctlFail("%s: out of memory", word);
    }
    args[n++] = "ledgerctl";
    args[n++] = (char *)word;
    for (int i = 0; i < argc; i++) {
        args[n++] = argv[i];
    }
    if (ctl->json) {
        args[n++] = "--json";
    }
    args[n] = NULL;
    fflush(stdout);
    execv(ledgerd, args);
    free(args);
    return ctlFail("%s: exec %s: %s", word, ledgerd, strerror(errno));
}
