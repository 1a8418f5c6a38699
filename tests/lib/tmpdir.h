/* Test helper: a fresh temporary directory per test, removed afterwards. */
#ifndef LEDGER_TEST_TMPDIR_H
#define LEDGER_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Create a directory like /tmp/ledger-test-XXXXXX into `dir` (size >= 64).
 * Returns 0 or -1. Honours TMPDIR. */
static inline int tmpdirCreate(char *dir, size_t size)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    if ((size_t)snprintf(dir, size, "%s/ledger-test-XXXXXX", base) >= size) {
        return -1;
    }
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int tmpdirRemoveOne(const char *path, const struct stat *st,
                                  int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove `dir` and everything below it. Returns 0 or -1. */
static inline int tmpdirRemove(const char *dir)
{
    return nftw(dir, tmpdirRemoveOne, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* LEDGER_TEST_TMPDIR_H */
