/* ledgerd --config FILE: flags read from a file (node/config_file.c).
 *
 * The file holds the same flags as the command line, one a line:
 *
 *     # comment
 *     data-dir = /var/lib/ledger/1
 *     api-addr = 10.0.0.1:8001     # a comment after a blank
 *     insecure = true              # a flag without a value: true or false
 *     bootstrap = "1=a:7001@a:8001,2=b:7001@b:8001"   # quotes are optional
 *
 * A key is a long flag's name without the dashes, exactly (no
 * abbreviations); each key at most once. The file's flags are placed before
 * the command line's, as "--key=value", so the command line wins wherever
 * both give a flag (the parser keeps the last value).
 *
 * Invariant: nothing about the node's flags is known here but the getopt
 * table handed in, so a flag added to config.c is valid in a file too. */
#ifndef LEDGER_CONFIG_FILE_H
#define LEDGER_CONFIG_FILE_H

#include <getopt.h>
#include <stddef.h>

#define CONFIG_FILE_LINE_MAX 4096 /* Longest line, bytes. */

/* argv with the file's flags spliced in. */
struct config_argv {
    int argc;
    char **argv;  /* argv[0], the file's flags, then the command line's
                     arguments without --config FILE. Owned here. */
    int *line;    /* line[i]: the file's line that gave argv[i]; 0 for the
                     command line. */
    char **owned; /* Strings allocated here (freed by config_argv_free). */
    int n_owned;
    char *path; /* The --config file, or NULL when none was given. */
};

/* Find --config FILE / --config=FILE in argv and build out. Keys are
 * checked against opts (getopt_long's table): an unknown key, a key given
 * twice, a key in `refused` (NULL-terminated names that make no sense in a
 * file, e.g. "help", "config"), a no-value flag with a value other than
 * true/false, or a malformed line is an error naming the file and the line.
 * Returns 0, or -1 with a one-line reason in err. */
int config_argv_build(int argc, char **argv, const struct option *opts,
                      const char *const *refused, struct config_argv *out,
                      char *err, size_t errlen);
void config_argv_free(struct config_argv *a);

/* "FILE:LINE: " when argv[i] came from the file, else "". */
const char *config_argv_where(const struct config_argv *a, int i, char *buf,
                              size_t len);

/* The index in argv of the last argument that set the long flag `name`
 * ("data-dir"), or -1. */
int config_argv_find(const struct config_argv *a, const char *name);

#endif /* LEDGER_CONFIG_FILE_H */
