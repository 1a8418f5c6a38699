/* Offline tools: `ledgerd WORD ...` runs a command on data dirs or files
 * instead of a node (ledgerctl execs it for its offline commands, see
 * ctl/ledgerd.c). Each command gets argv starting at its word and returns
 * the process exit code: 0 done, 1 failed (one line on stderr), 2 bad
 * usage. Messages start with offline_prog ("ledgerctl" or "ledgerd", the
 * base name of argv[0]). */
#ifndef LEDGER_OFFLINE_H
#define LEDGER_OFFLINE_H

#include <stdbool.h>

extern const char *offline_prog;

/* True when argv[1] is a command word rather than a flag. */
bool offline_is_command(int argc, char **argv);
/* Run the command named by argv[1]; the exit code. */
int offline_main(int argc, char **argv);

/* Print "PROG: MESSAGE\n" on stderr; return `code`. */
int offline_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The commands (one file each). */
int recover_main(int argc, char **argv); /* recover.c */

#endif /* LEDGER_OFFLINE_H */
