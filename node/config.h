/* ledgerd command-line configuration (flags of ../shared/CONTRACT.md plus
 * tuning flags). Parsing validates everything before the node starts. */
#ifndef LEDGER_CONFIG_H
#define LEDGER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replication/repl.h"

#define CONFIG_MAX_MEMBERS 64

struct config_argv;
struct token_set;

struct ledger_config {
    uint64_t id;
    const char *data_dir;
    const char *raft_addr;
    const char *api_addr;
    const char *bootstrap_str;
    struct ledger_repl_member bootstrap[CONFIG_MAX_MEMBERS];
    size_t n_bootstrap;
    const char *join;
    unsigned heartbeat_ms;
    unsigned election_ms;
    const char *token_file;
    struct token_set *tokens; /* Parsed token_file (node/tokens.h); NULL
                                 without. Replaced on SIGHUP (auth.c). */
    char *token; /* The token this node presents to its peers: a copy of
                    tokens->node->secret (malloc'ed), NULL without. */
    /* TLS (docs/security.md): all three files or none. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    int tls_client_auth; /* enum http_tls_peer_auth (API clients). */
    int insecure;        /* --insecure: allow a non-loopback address
                            without TLS and a token file. */
    int log_json;
    int log_level; /* 0 debug, 1 info, 2 warn, 3 error */
    size_t max_body;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    size_t max_queue_ops;
    size_t max_queue_bytes;
    unsigned verify_interval_s; /* Background store check; 0: off. */
    const char *zone;          /* --zone, or NULL: no zone label. */
    const char *config_file;   /* --config FILE, or NULL. */
    struct config_argv *args;  /* argv with the file's flags (owned): the
                                  string flags above point into it. */
    const char *restore;       /* --restore FILE: seed the empty data dir
                                  from a backup, then start (node/restore.c). */
    const char *verify_backup; /* --verify-backup FILE: check a backup
                                  offline and exit; no other flag needed. */
    const char *expect_sha256; /* --sha256 HEX (with --verify-backup): the
                                  checksum to expect instead of FILE.sha256. */
    int chain_only;            /* --chain-only (with --verify-backup): the
                                  caller checked the file's bytes itself. */
    /* Normalised addresses ("localhost" becomes 127.0.0.1: the Raft
     * transport does not resolve names); the pointers above point here. */
    char raft_addr_buf[REPL_ADDR_MAX];
    char api_addr_buf[REPL_ADDR_MAX];
    char join_buf[REPL_ADDR_MAX];
};

enum { CONFIG_OK = 0, CONFIG_EXIT = 1, CONFIG_USAGE = 2, CONFIG_FAIL = 3 };

/* Parse argv, with the flags of --config FILE (config_file.h) before the
 * command line's. CONFIG_OK: run. CONFIG_EXIT: --help/--version printed, exit
 * 0. CONFIG_USAGE: bad usage, err holds a one-line reason (exit 2).
 * CONFIG_FAIL: e.g. unreadable token file (exit 1). */
int ledger_config_parse(int argc, char **argv, struct ledger_config *cfg,
                        char *err, size_t errlen);
void ledger_config_free(struct ledger_config *cfg);

/* Parse a member list "ID=RAFT_HOST:PORT@API_HOST:PORT,..." (the form of
 * --bootstrap; `flag` names it in messages): ids positive and distinct,
 * addresses normalised. 0, or -1 with a one-line reason in err. */
int ledger_parse_members(const char *flag, const char *list,
                         struct ledger_repl_member *out, size_t max,
                         size_t *count, char *err, size_t errlen);
/* A zone label: 1..REPL_ZONE_MAX-1 characters of [A-Za-z0-9._-]. */
bool ledger_zone_valid(const char *zone);

/* Parse "HOST:PORT" (IPv4 dotted or "localhost"); 0 or -1. */
int ledger_parse_addr(const char *s, char *host, size_t hostlen, int *port);

#endif /* LEDGER_CONFIG_H */
