/* ledgerctl internals: shared context, argument parsing and output helpers. */
#ifndef LEDGER_CTL_H
#define LEDGER_CTL_H

#include <stdarg.h>
#include <stddef.h>
#include <jansson.h>

#include "ledger.h"

#define CTL_EXIT_OK 0    /* Success. */
#define CTL_EXIT_FAIL 1  /* The operation failed. */
#define CTL_EXIT_USAGE 2 /* Bad usage: unknown command/flag, bad value. */
#define CTL_MEMBERSHIP_TIMEOUT_MS 120000 /* member add/role: catch-up. */

#define CTL_DEFAULT_ENDPOINTS "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003"

/* Global options and the client built from them. */
struct ctl {
    const char *endpoints; /* --endpoints, LEDGER_ENDPOINTS, or default. */
    char *token;           /* From --token-file or LEDGER_TOKEN; NULL. */
    char *token_file;      /* Absolute --token-file path, for cluster up. */
    int json;              /* --json */
    unsigned timeout_ms;   /* --timeout-ms, 0: client default. */
    /* --tls-ca/--tls-cert/--tls-key (env LEDGER_TLS_CA, LEDGER_TLS_CERT,
     * LEDGER_TLS_KEY): https to the nodes. Borrowed (argv or environ) or,
     * after `cluster up --tls`, that cluster's files (malloc'ed, tls_own). */
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    char *tls_own[3];
    ledger_client *client; /* Created on first use by ctlClient(). */
};

/* One flag a command accepts. */
struct ctl_flag {
    const char *name;  /* Without the leading "--". */
    int has_value;     /* Takes a value (--name V or --name=V). */
    const char *value; /* OUT: the value, or "" for a given boolean flag;
                        * NULL when absent. */
};

/* Parse argv (after the command words) into `flags` and positional
 * arguments; global flags are accepted anywhere and stored in ctl. Stores
 * at most max_pos positionals in pos and their number in *n_pos. Returns 0,
 * or CTL_EXIT_USAGE after printing the reason. `cmd` (or NULL) names the
 * command in messages. "--help" prints usage and returns -1 (caller exits 0).
 */
int ctlParseArgs(struct ctl *ctl, const char *cmd, int argc, char **argv,
                 struct ctl_flag *flags, const char **pos, int max_pos,
                 int *n_pos);

/* Exit status for a non-zero ctlParseArgs result (-1 after --help: 0). */
#define CTL_ARGS_EXIT(rv) ((rv) < 0 ? CTL_EXIT_OK : (rv))

/* Look up a parsed flag by name (NULL if absent). */
const char *ctlFlag(const struct ctl_flag *flags, const char *name);

/* Parse an unsigned decimal flag value; on error prints a usage error
 * naming `what` and returns CTL_EXIT_USAGE. */
int ctlParseU64(const char *what, const char *s, unsigned long long min,
                unsigned long long max, unsigned long long *out);
/* The flag --NAME, if given, parsed into *out (ctlParseU64's checks and
 * message); *out is left alone when it is absent. 0 or CTL_EXIT_USAGE. */
int ctlFlagUnsigned(const struct ctl_flag *flags, const char *name,
                    unsigned long long min, unsigned long long max,
                    unsigned *out);

/* The token in `path`, malloc'ed; NULL if the file cannot be read. A file
 * of ledgerd's format (NAME ROLE TOKEN [...] lines, docs/security.md)
 * gives its first admin token, else its first node token, else its first
 * token; any other file is one bare token (trailing blanks trimmed). */
char *ctlReadTokenFile(const char *path);

/* Print "ledgerctl: MESSAGE" to stderr and return CTL_EXIT_FAIL. */
int ctlFail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "ledgerctl: MESSAGE; see 'ledgerctl --help'" and return
 * CTL_EXIT_USAGE. */
int ctlUsage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void ctlPrintHelp(void);

/* The client for ctl->endpoints (created once); NULL after printing an
 * error. */
ledger_client *ctlClient(struct ctl *ctl);

/* Call the API with fail-over and decode the JSON answer. body may be NULL.
 * On success (any 2xx) stores the decoded body in *out (caller decrefs) and
 * returns 0. Otherwise prints "ledgerctl: WHAT: REASON" (the server's error
 * message, or the transport failure) and returns CTL_EXIT_FAIL. The HTTP
 * status (0 if none) goes to *status when not NULL. */
int ctlApi(struct ctl *ctl, const char *what, const char *method,
           const char *path, json_t *body, json_t **out, int *status);

/* Describe a non-2xx answer: "409 conflict: message". */
void ctlDescribeError(const struct ledger_http_response *r, char *buf,
                      size_t len);

/* Append `s` percent-encoded for a URL path segment or query value. */
void ctlUrlEncode(const char *s, char *out, size_t outlen);

/* Print a JSON value on one line to stdout. */
void ctlPrintJson(const json_t *v);

/* Member table shared by status, member list and cluster up. */
void ctlPrintClusterTable(const json_t *cluster, int members_only);

/* ledgerd.c: find the ledgerd binary ($LEDGERD, next to this executable,
 * then $PATH) into out; 0, or CTL_EXIT_FAIL after printing why (`what`
 * names the command in the message). */
int ctlFindLedgerd(char *out, size_t outlen, const char *what);
/* Run an offline command as `ledgerd WORD ARGV... [--json]` in place of
 * this process (argv[0] "ledgerctl"): returns only if the exec failed,
 * with CTL_EXIT_FAIL after printing why. */
int ctlExecLedgerd(struct ctl *ctl, const char *word, int argc, char **argv);

/* Commands: each gets the arguments after its command words. */
int ctlCmdClusterUp(struct ctl *ctl, int argc, char **argv);
int ctlCmdClusterDown(struct ctl *ctl, int argc, char **argv);
int ctlCmdBackup(struct ctl *ctl, int argc, char **argv);
int ctlCmdBackupVerify(struct ctl *ctl, int argc, char **argv);
int ctlCmdRestore(struct ctl *ctl, int argc, char **argv);
int ctlCmdExport(struct ctl *ctl, int argc, char **argv);
int ctlCmdImport(struct ctl *ctl, int argc, char **argv);
/* cmd_backup.c: run `ledgerd --verify-backup FILE [--sha256 HEX]` (sha256
 * NULL: against FILE.sha256; "": --chain-only, the caller checked the
 * bytes) and decode its JSON line into *out ({"ok":...}, node/restore.h).
 * 0 (the check ran; its verdict is out's "ok"), or CTL_EXIT_FAIL after
 * printing why it could not run (`what` names the command). */
int ctlVerifyBackupFile(const char *ledgerd, const char *file,
                        const char *sha256, const char *what, json_t **out);
int ctlCmdStatus(struct ctl *ctl, int argc, char **argv);
int ctlCmdMemberList(struct ctl *ctl, int argc, char **argv);
int ctlCmdMemberAdd(struct ctl *ctl, int argc, char **argv);
int ctlCmdMemberRemove(struct ctl *ctl, int argc, char **argv);
int ctlCmdMemberRole(struct ctl *ctl, int argc, char **argv);
int ctlCmdLeaderTransfer(struct ctl *ctl, int argc, char **argv);
int ctlCmdLag(struct ctl *ctl, int argc, char **argv);
int ctlCmdRoles(struct ctl *ctl, int argc, char **argv);
int ctlCmdAppend(struct ctl *ctl, int argc, char **argv);
int ctlCmdRead(struct ctl *ctl, int argc, char **argv);
int ctlCmdStreams(struct ctl *ctl, int argc, char **argv);
int ctlCmdVerify(struct ctl *ctl, int argc, char **argv);
int ctlCmdBench(struct ctl *ctl, int argc, char **argv);
int ctlCmdRecover(struct ctl *ctl, int argc, char **argv);
int ctlCmdTlsCert(struct ctl *ctl, int argc, char **argv);

/* Check the TLS flags (--tls-cert and --tls-key go together); 0 or
 * CTL_EXIT_USAGE after printing why. */
int ctlCheckTls(const struct ctl *ctl);

#endif /* LEDGER_CTL_H */
