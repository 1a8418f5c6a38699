/* ledgerd flag parsing and validation.
 *
 * Every flag takes "--flag VALUE" or "--flag=VALUE". Every problem is
 * reported as one line naming the flag and what is expected; nothing is
 * started until the whole command line is valid.
 */
#include "config.h"
#include "tokens.h"

#include <ctype.h>
#include "http/tls.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_file.h"

static const char USAGE[] =
    "usage: ledgerd --id N --data-dir DIR --raft-addr HOST:PORT "
    "--api-addr HOST:PORT\n"
    "               [--bootstrap \"1=HOST:RPORT@HOST:APORT,2=...\"] "
    "[--join HOST:APORT]\n"
    "               [--heartbeat-ms 100] [--election-ms 1000]\n"
    "               [--token-file FILE] [--log-format text|json] "
    "[--log-level debug|info|warn|error]\n"
    "               [--max-body BYTES] [--snapshot-threshold N] "
    "[--snapshot-trailing N]\n"
    "               [--max-queue N] [--max-queue-bytes BYTES] [--restore "
    "FILE]\n"
    "               [--verify-interval-s 3600]\n"
    "               [--zone ZONE] [--config FILE]\n"
    "               [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
    "               [--tls-client-auth none|optional|require] [--insecure]\n"
    "       ledgerd --verify-backup FILE [--sha256 HEX | --chain-only]\n"
    "       ledgerd recover inspect DIR...\n"
    "       ledgerd recover DIR --members \"ID=RAFT@API,...\" [--force]\n"
    "               offline commands, also run as 'ledgerctl recover ...'\n"
    "\n"
    "One node of a ledger cluster: a replicated, tamper-evident event log.\n"
    "  --id N               node id, a positive integer unique in the "
    "cluster\n"
    "  --data-dir DIR       existing directory for this node's store and "
    "Raft log\n"
    "  --raft-addr H:P      address for Raft traffic between nodes\n"
    "  --api-addr H:P       address of the HTTP API\n"
    "  --bootstrap LIST     first start of a new cluster: every initial "
    "member as\n"
    "                       id=raft_addr@api_addr, comma separated; ignored "
    "once DIR\n"
    "                       holds state\n"
    "  --join H:P           join an existing cluster through a member's API\n"
    "  --heartbeat-ms MS    leader heartbeat interval (default 100)\n"
    "  --election-ms MS     election timeout (default 1000)\n"
    "  --token-file FILE    require 'Authorization: Bearer TOKEN': one token "
    "per line,\n"
    "                       NAME read|write|admin|node TOKEN [rate=N] "
    "[burst=M]\n"
    "                       (# comments; a lone bare token is admin); "
    "SIGHUP reloads\n"
    "                       it, keeping the old one if the new one does not "
    "parse\n"
    "  --log-format F       text (default) or json\n"
    "  --log-level L        debug, info (default), warn or error\n"
    "  --max-body BYTES     largest request body (default 1048576)\n"
    "  --snapshot-threshold N  entries between snapshots (default 16384)\n"
    "  --snapshot-trailing N   entries kept after a snapshot (default 2048)\n"
    "  --max-queue N        write queue bound in requests (default 10000)\n"
    "  --max-queue-bytes B  write queue bound in bytes (default 67108864)\n"
    "  --verify-interval-s S  check the store in the background every S "
    "seconds\n"
    "                       (SQLite quick_check and the whole hash chain; "
    "0: off;\n"
    "                       default 3600); a corrupt store is rebuilt\n"
    "  --zone ZONE          this node's failure zone (rack, room, site): "
    "shown in\n"
    "                       /v1/cluster; automatic roles spread voters over "
    "zones\n"
    "  --config FILE        read flags from FILE, one 'name = value' a line "
    "(names\n"
    "                       as above without the dashes, # comments); flags "
    "given\n"
    "                       on the command line win\n"
    "  --tls-cert FILE      this node's certificate (PEM; CN ledger-node-ID, "
    "SAN IPs of\n"
    "                       its raft and API hosts): mutual TLS on the raft "
    "port,\n"
    "                       HTTPS on the API port, https to peers\n"
    "  --tls-key FILE       its private key (PEM)\n"
    "  --tls-ca FILE        the cluster CA (PEM) that signs every node's "
    "certificate\n"
    "  --tls-client-auth M  API client certificates: none (default), "
    "optional, require\n"
    "  --insecure           allow a non-loopback address without TLS and "
    "--token-file\n"
    "  SIGHUP reloads the certificates (and the token file).\n"
    "  --restore FILE       seed the empty data dir from the backup FILE "
    "(verified\n"
    "                       first) and start a new cluster: needs "
    "--bootstrap naming\n"
    "                       only this node; the other nodes --join it\n"
    "  --verify-backup FILE check a backup offline (FILE.sha256, stamps, "
    "hash chain),\n"
    "                       print one JSON line and exit 0 (good) or 1\n"
    "  --sha256 HEX         with --verify-backup: expect this checksum "
    "instead of\n"
    "                       reading FILE.sha256\n"
    "  --chain-only         with --verify-backup: skip the checksum (the "
    "caller\n"
    "                       hashed the bytes as it wrote them)\n"
    "  --help, --version\n";

enum {
    OPT_ID = 1000,
    OPT_DATA_DIR,
    OPT_RAFT_ADDR,
    OPT_API_ADDR,
    OPT_BOOTSTRAP,
    OPT_JOIN,
    OPT_HEARTBEAT,
    OPT_ELECTION,
    OPT_TOKEN_FILE,
    OPT_LOG_FORMAT,
    OPT_LOG_LEVEL,
    OPT_MAX_BODY,
    OPT_SNAP_THRESHOLD,
    OPT_SNAP_TRAILING,
    OPT_MAX_QUEUE,
    OPT_MAX_QUEUE_BYTES,
    OPT_VERIFY_INTERVAL,
    OPT_ZONE,
    OPT_CONFIG,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_CLIENT_AUTH,
    OPT_INSECURE,
    OPT_RESTORE,
    OPT_VERIFY_BACKUP,
    OPT_SHA256,
    OPT_CHAIN_ONLY,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option OPTIONS[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"raft-addr", required_argument, NULL, OPT_RAFT_ADDR},
    {"api-addr", required_argument, NULL, OPT_API_ADDR},
    {"bootstrap", required_argument, NULL, OPT_BOOTSTRAP},
    {"join", required_argument, NULL, OPT_JOIN},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"election-ms", required_argument, NULL, OPT_ELECTION},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"snapshot-threshold", required_argument, NULL, OPT_SNAP_THRESHOLD},
    {"snapshot-trailing", required_argument, NULL, OPT_SNAP_TRAILING},
    {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
    {"max-queue-bytes", required_argument, NULL, OPT_MAX_QUEUE_BYTES},
    {"verify-interval-s", required_argument, NULL, OPT_VERIFY_INTERVAL},
    {"zone", required_argument, NULL, OPT_ZONE},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-client-auth", required_argument, NULL, OPT_TLS_CLIENT_AUTH},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"restore", required_argument, NULL, OPT_RESTORE},
    {"verify-backup", required_argument, NULL, OPT_VERIFY_BACKUP},
    {"sha256", required_argument, NULL, OPT_SHA256},
    {"chain-only", no_argument, NULL, OPT_CHAIN_ONLY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Strict unsigned parse: digits only, within [min, max]. */
static int parseU64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int ledger_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    uint64_t p;
    size_t hl;
    unsigned a, b, c, d;
    char tail;

    if (s == NULL || (colon = strrchr(s, ':')) == NULL || colon == s) {
        return -1;
    }
    hl = (size_t)(colon - s);
    if (hl >= hostlen || parseU64(colon + 1, 1, 65535, &p) != 0) {
        return -1;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0) {
        snprintf(host, hostlen, "127.0.0.1");
    } else if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 ||
               a > 255 || b > 255 || c > 255 || d > 255) {
        return -1;
    }
    *port = (int)p;
    return 0;
}

static bool isHex64(const char *s)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return i == 64;
}

/* Write the normalised form of a valid address into out. */
static void normAddr(const char *v, char *out, size_t len)
{
    char host[64];
    int port;
    if (ledger_parse_addr(v, host, sizeof host, &port) == 0) {
        snprintf(out, len, "%s:%d", host, port);
    } else {
        snprintf(out, len, "%s", v);
    }
}

static int checkAddr(const char *flag, const char *v, char *err, size_t n)
{
    char host[64];
    int port;
    if (ledger_parse_addr(v, host, sizeof host, &port) != 0) {
        snprintf(err, n,
                 "%s '%s' is not HOST:PORT (IPv4 address or localhost, port "
                 "1-65535)",
                 flag, v);
        return -1;
    }
    return 0;
}

/* "1=HOST:RPORT@HOST:APORT,2=..." */
int ledger_parse_members(const char *flag, const char *list,
                         struct ledger_repl_member *out, size_t max,
                         size_t *count, char *err, size_t n)
{
    char *copy = strdup(list);
    char *save = NULL;
    char *item;
    char what[64];
    int rv = -1;

    if (copy == NULL) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    *count = 0;
    for (item = strtok_r(copy, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        struct ledger_repl_member *m;
        char *eq = strchr(item, '=');
        char *at = eq ? strchr(eq, '@') : NULL;
        size_t i;
        if (*count == max) {
            snprintf(err, n, "%s lists more than %zu members", flag, max);
            goto out;
        }
        if (eq == NULL || at == NULL) {
            snprintf(err, n,
                     "%s item '%s' is not id=RAFT_HOST:PORT@API_HOST:PORT",
                     flag, item);
            goto out;
        }
        *eq = '\0';
        *at = '\0';
        m = &out[*count];
        memset(m, 0, sizeof *m);
        if (parseU64(item, 1, UINT64_MAX, &m->id) != 0) {
            snprintf(err, n, "%s id '%s' is not a positive integer", flag,
                     item);
            goto out;
        }
        snprintf(what, sizeof what, "%s raft address", flag);
        if (checkAddr(what, eq + 1, err, n) != 0) {
            goto out;
        }
        snprintf(what, sizeof what, "%s api address", flag);
        if (checkAddr(what, at + 1, err, n) != 0) {
            goto out;
        }
        if (strlen(eq + 1) >= REPL_ADDR_MAX ||
            strlen(at + 1) >= REPL_ADDR_MAX) {
            snprintf(err, n, "%s address too long", flag);
            goto out;
        }
        for (i = 0; i < *count; i++) {
            if (out[i].id == m->id) {
                snprintf(err, n, "%s lists id %llu twice", flag,
                         (unsigned long long)m->id);
                goto out;
            }
        }
        normAddr(eq + 1, m->raft_addr, sizeof m->raft_addr);
        normAddr(at + 1, m->api_addr, sizeof m->api_addr);
        (*count)++;
    }
    if (*count == 0) {
        snprintf(err, n, "%s is empty", flag);
        goto out;
    }
    rv = 0;
out:
    free(copy);
    return rv;
}

static int parseBootstrap(struct ledger_config *cfg, char *err, size_t n)
{
    if (ledger_parse_members("--bootstrap", cfg->bootstrap_str, cfg->bootstrap,
                             CONFIG_MAX_MEMBERS, &cfg->n_bootstrap, err,
                             n) != 0) {
        return -1;
    }
    for (size_t i = 0; i < cfg->n_bootstrap; i++) {
        if (cfg->bootstrap[i].id == cfg->id) {
            return 0;
        }
    }
    snprintf(err, n, "--bootstrap does not list this node's --id %llu",
             (unsigned long long)cfg->id);
    return -1;
}

/* 127.0.0.0/8. */
static int isLoopback(const char *addr)
{
    char host[64];
    int port;
    return ledger_parse_addr(addr, host, sizeof host, &port) == 0 &&
           strncmp(host, "127.", 4) == 0;
}

/* Safe by default: an address other hosts can reach needs TLS (nobody
 * else joins the cluster or reads the traffic) and a token file (nobody
 * else writes), unless --insecure. */
static int checkExposure(const struct ledger_config *cfg, char *err, size_t n)
{
    const char *open = !isLoopback(cfg->raft_addr)  ? cfg->raft_addr
                       : !isLoopback(cfg->api_addr) ? cfg->api_addr
                                                    : NULL;
    const char *missing = cfg->tls_cert == NULL && cfg->token_file == NULL
                              ? "TLS and a token file"
                          : cfg->tls_cert == NULL ? "TLS"
                                                  : "a token file";

    if (open == NULL || cfg->insecure ||
        (cfg->tls_cert != NULL && cfg->token_file != NULL)) {
        return 0;
    }
    snprintf(err, n,
             "refusing to listen on %s without %s: it is not a loopback "
             "address, so anyone who reaches it could %s; give "
             "--tls-cert/--tls-key/--tls-ca and --token-file, or --insecure "
             "to accept that",
             open, missing,
             cfg->tls_cert == NULL ? "join the cluster and write its log"
                                   : "read and write the log");
    return -1;
}

static int readToken(struct ledger_config *cfg, char *err, size_t n)
{
    char why[480];

    if (token_set_load(cfg->token_file, &cfg->tokens, why, sizeof why) != 0) {
        snprintf(err, n, "--token-file %s", why);
        return -1;
    }
    cfg->token = strdup(cfg->tokens->node->secret);
    if (cfg->token == NULL) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    return 0;
}

/* *at: index in argv of the option being parsed when an error is returned,
 * -1 once past the options (config_file.c names its file and line). */
static int parseArgs(int argc, char **argv, struct ledger_config *cfg,
                     char *err, size_t errlen, int *at)
{
    struct stat st;
    uint64_t v;
    int client_auth_given = 0;
    int c;

    memset(cfg, 0, sizeof *cfg);
    cfg->heartbeat_ms = 100;
    cfg->election_ms = 1000;
    cfg->log_level = 1;
    cfg->max_body = 1 << 20;
    cfg->snapshot_threshold = 16384;
    cfg->snapshot_trailing = 2048;
    cfg->max_queue_ops = 10000;
    cfg->max_queue_bytes = 64u << 20;
    cfg->verify_interval_s = 3600;

    opterr = 0;
    optind = 1;
    while ((*at = optind, c = getopt_long(argc, argv, ":", OPTIONS, NULL)) !=
           -1) {
        const char *a = optarg;
        switch (c) {
        case OPT_HELP:
            fputs(USAGE, stdout);
            return CONFIG_EXIT;
        case OPT_VERSION:
            printf("ledgerd %s\n", LEDGER_VERSION);
            return CONFIG_EXIT;
        case OPT_ID:
            if (parseU64(a, 1, UINT64_MAX, &cfg->id) != 0) {
                snprintf(err, errlen, "--id '%s' is not a positive integer", a);
                return CONFIG_USAGE;
            }
            break;
        case OPT_DATA_DIR:
            cfg->data_dir = a;
            break;
        case OPT_RAFT_ADDR:
            cfg->raft_addr = a;
            break;
        case OPT_API_ADDR:
            cfg->api_addr = a;
            break;
        case OPT_BOOTSTRAP:
            cfg->bootstrap_str = a;
            break;
        case OPT_JOIN:
            cfg->join = a;
            break;
        case OPT_HEARTBEAT:
        case OPT_ELECTION:
            if (parseU64(a, 1, 600000, &v) != 0) {
                snprintf(err, errlen,
                         "--%s '%s' is not a number of milliseconds "
                         "(1-600000)",
                         c == OPT_HEARTBEAT ? "heartbeat-ms" : "election-ms",
                         a);
                return CONFIG_USAGE;
            }
            *(c == OPT_HEARTBEAT ? &cfg->heartbeat_ms : &cfg->election_ms) =
                (unsigned)v;
            break;
        case OPT_TOKEN_FILE:
            cfg->token_file = a;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(a, "text") == 0) {
                cfg->log_json = 0;
            } else if (strcmp(a, "json") == 0) {
                cfg->log_json = 1;
            } else {
                snprintf(err, errlen, "--log-format '%s' must be text or json",
                         a);
                return CONFIG_USAGE;
            }
            break;
        case OPT_LOG_LEVEL: {
            static const char *levels[] = {"debug", "info", "warn", "error"};
            int i;
            for (i = 0; i < 4 && strcmp(a, levels[i]) != 0; i++) {
            }
            if (i == 4) {
                snprintf(err, errlen,
                         "--log-level '%s' must be debug, info, warn or "
                         "error",
                         a);
                return CONFIG_USAGE;
            }
            cfg->log_level = i;
            break;
        }
        case OPT_MAX_BODY:
        case OPT_MAX_QUEUE_BYTES:
            if (parseU64(a, 1024, 1ull << 34, &v) != 0) {
                snprintf(err, errlen,
                         "--%s '%s' is not a byte count (1024 or more)",
                         c == OPT_MAX_BODY ? "max-body" : "max-queue-bytes", a);
                return CONFIG_USAGE;
            }
            *(c == OPT_MAX_BODY ? &cfg->max_body : &cfg->max_queue_bytes) =
                (size_t)v;
            break;
        case OPT_VERIFY_INTERVAL:
            if (parseU64(a, 0, 10u * 365 * 86400, &v) != 0) {
                snprintf(err, errlen,
                         "--verify-interval-s '%s' is not a number of "
                         "seconds (0: off)",
                         a);
                return CONFIG_USAGE;
            }
            cfg->verify_interval_s = (unsigned)v;
            break;
        case OPT_SNAP_THRESHOLD:
        case OPT_SNAP_TRAILING:
        case OPT_MAX_QUEUE:
            if (parseU64(a, 1, 100000000, &v) != 0) {
                snprintf(err, errlen, "--%s '%s' is not a positive integer",
                         c == OPT_SNAP_THRESHOLD  ? "snapshot-threshold"
                         : c == OPT_SNAP_TRAILING ? "snapshot-trailing"
                                                  : "max-queue",
                         a);
                return CONFIG_USAGE;
            }
            if (c == OPT_SNAP_THRESHOLD) {
                cfg->snapshot_threshold = (unsigned)v;
            } else if (c == OPT_SNAP_TRAILING) {
                cfg->snapshot_trailing = (unsigned)v;
            } else {
                cfg->max_queue_ops = (size_t)v;
            }
            break;
        case OPT_ZONE:
            if (!ledger_zone_valid(a)) {
                snprintf(err, errlen,
                         "--zone '%.80s' is not a zone name: 1-%d characters "
                         "from A-Z a-z 0-9 . _ -",
                         a, REPL_ZONE_MAX - 1);
                return CONFIG_USAGE;
            }
            cfg->zone = a;
            break;
        case OPT_CONFIG:
            /* config_argv_build took --config FILE out of argv: this is an
             * abbreviation of it. */
            snprintf(err, errlen, "write --config in full");
            return CONFIG_USAGE;
        case OPT_TLS_CERT:
            cfg->tls_cert = a;
            break;
        case OPT_TLS_KEY:
            cfg->tls_key = a;
            break;
        case OPT_TLS_CA:
            cfg->tls_ca = a;
            break;
        case OPT_TLS_CLIENT_AUTH:
            if (strcmp(a, "none") == 0) {
                cfg->tls_client_auth = HTTP_TLS_PEER_NONE;
            } else if (strcmp(a, "optional") == 0) {
                cfg->tls_client_auth = HTTP_TLS_PEER_OPTIONAL;
            } else if (strcmp(a, "require") == 0) {
                cfg->tls_client_auth = HTTP_TLS_PEER_REQUIRE;
            } else {
                snprintf(err, errlen,
                         "--tls-client-auth '%s' must be none, optional or "
                         "require",
                         a);
                return CONFIG_USAGE;
            }
            client_auth_given = 1;
            break;
        case OPT_INSECURE:
            cfg->insecure = 1;
            break;
        case OPT_RESTORE:
            cfg->restore = a;
            break;
        case OPT_VERIFY_BACKUP:
            cfg->verify_backup = a;
            break;
        case OPT_SHA256:
            cfg->expect_sha256 = a;
            break;
        case OPT_CHAIN_ONLY:
            cfg->chain_only = 1;
            break;
        case ':':
            snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
            return CONFIG_USAGE;
        default:
            snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return CONFIG_USAGE;
        }
    }
    *at = -1;
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return CONFIG_USAGE;
    }
    if (cfg->expect_sha256 != NULL &&
        (cfg->verify_backup == NULL || !isHex64(cfg->expect_sha256))) {
        snprintf(err, errlen,
                 "--sha256 takes 64 hex digits and goes with "
                 "--verify-backup FILE");
        return CONFIG_USAGE;
    }
    if (cfg->chain_only &&
        (cfg->verify_backup == NULL || cfg->expect_sha256 != NULL)) {
        snprintf(err, errlen,
                 "--chain-only goes with --verify-backup FILE, "
                 "without --sha256");
        return CONFIG_USAGE;
    }
    if (cfg->verify_backup != NULL) {
        return CONFIG_OK; /* Offline: nothing else is needed. */
    }
    if (cfg->id == 0 || cfg->data_dir == NULL || cfg->raft_addr == NULL ||
        cfg->api_addr == NULL) {
        snprintf(err, errlen, "missing %s",
                 cfg->id == 0             ? "--id"
                 : cfg->data_dir == NULL  ? "--data-dir"
                 : cfg->raft_addr == NULL ? "--raft-addr"
                                          : "--api-addr");
        return CONFIG_USAGE;
    }
    if (checkAddr("--raft-addr", cfg->raft_addr, err, errlen) != 0 ||
        checkAddr("--api-addr", cfg->api_addr, err, errlen) != 0 ||
        (cfg->join != NULL &&
         checkAddr("--join", cfg->join, err, errlen) != 0)) {
        return CONFIG_USAGE;
    }
    if (strlen(cfg->raft_addr) >= REPL_ADDR_MAX ||
        strlen(cfg->api_addr) >= REPL_ADDR_MAX) {
        snprintf(err, errlen, "address too long");
        return CONFIG_USAGE;
    }
    normAddr(cfg->raft_addr, cfg->raft_addr_buf, sizeof cfg->raft_addr_buf);
    normAddr(cfg->api_addr, cfg->api_addr_buf, sizeof cfg->api_addr_buf);
    cfg->raft_addr = cfg->raft_addr_buf;
    cfg->api_addr = cfg->api_addr_buf;
    if (cfg->join != NULL) {
        normAddr(cfg->join, cfg->join_buf, sizeof cfg->join_buf);
        cfg->join = cfg->join_buf;
    }
    if (strcmp(cfg->raft_addr, cfg->api_addr) == 0) {
        snprintf(err, errlen,
                 "--raft-addr and --api-addr are both %s: give each its own "
                 "port",
                 cfg->raft_addr);
        return CONFIG_USAGE;
    }
    if (cfg->heartbeat_ms >= cfg->election_ms) {
        snprintf(err, errlen,
                 "--heartbeat-ms (%u) must be below --election-ms (%u)",
                 cfg->heartbeat_ms, cfg->election_ms);
        return CONFIG_USAGE;
    }
    if (stat(cfg->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "--data-dir %s does not exist or is not a directory: create "
                 "it first",
                 cfg->data_dir);
        return CONFIG_USAGE;
    }
    if (cfg->bootstrap_str != NULL && parseBootstrap(cfg, err, errlen) != 0) {
        return CONFIG_USAGE;
    }
    if (cfg->bootstrap_str != NULL && cfg->join != NULL) {
        snprintf(err, errlen, "--bootstrap and --join exclude each other");
        return CONFIG_USAGE;
    }
    /* A restored node starts the new cluster alone: members with an empty
     * store bootstrapped next to it would apply the new log to nothing and
     * diverge. They --join it and copy its events (docs/operations.md). */
    if (cfg->restore != NULL && (cfg->join != NULL || cfg->n_bootstrap != 1)) {
        snprintf(err, errlen,
                 "--restore needs --bootstrap naming only this node (it "
                 "starts the new cluster alone); start the other nodes with "
                 "--join");
        return CONFIG_USAGE;
    }
    if (cfg->token_file != NULL && readToken(cfg, err, errlen) != 0) {
        return CONFIG_USAGE;
    }
    if (((cfg->tls_cert != NULL) + (cfg->tls_key != NULL) +
         (cfg->tls_ca != NULL)) %
            3 !=
        0) {
        snprintf(err, errlen,
                 "--tls-cert, --tls-key and --tls-ca go together: give all "
                 "three or none");
        return CONFIG_USAGE;
    }
    if (client_auth_given && cfg->tls_cert == NULL) {
        snprintf(err, errlen,
                 "--tls-client-auth needs TLS: give --tls-cert, --tls-key "
                 "and --tls-ca");
        return CONFIG_USAGE;
    }
    if (checkExposure(cfg, err, errlen) != 0) {
        return CONFIG_USAGE;
    }
    return CONFIG_OK;
}

/* Prefix err with the config file's FILE:LINE when the error is about a
 * flag the file gave: the option being parsed (at), else the flag the
 * message starts with. */
static void locateError(const struct config_argv *args, int at, char *err,
                        size_t errlen)
{
    char where[512];
    char name[64];
    char *msg;
    size_t i = 0;

    if (args->path == NULL) {
        return;
    }
    if (at < 0 && strncmp(err, "missing --", 10) == 0) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len,
                 " (give it on the command line or in %s)", args->path);
        return;
    }
    if (at < 0 && strncmp(err, "--", 2) == 0) {
        while (i + 1 < sizeof name &&
               (islower((unsigned char)err[2 + i]) ||
                isdigit((unsigned char)err[2 + i]) || err[2 + i] == '-')) {
            name[i] = err[2 + i];
            i++;
        }
        name[i] = '\0';
        at = config_argv_find(args, name);
    }
    if (config_argv_where(args, at, where, sizeof where)[0] == '\0') {
        return;
    }
    msg = strdup(err);
    if (msg != NULL) {
        snprintf(err, errlen, "%s%s", where, msg);
        free(msg);
    }
}

int ledger_config_parse(int argc, char **argv, struct ledger_config *cfg,
                        char *err, size_t errlen)
{
    /* One-shot modes make no sense in a node's file (a restart would
     * repeat them): the command line only. */
    static const char *const refused[] = {
        "config",        "help",   "version",    "restore",
        "verify-backup", "sha256", "chain-only", NULL};
    struct config_argv *args = calloc(1, sizeof *args);
    int at = -1;
    int rv;

    memset(cfg, 0, sizeof *cfg);
    if (args == NULL) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_FAIL;
    }
    if (config_argv_build(argc, argv, OPTIONS, refused, args, err, errlen) !=
        0) {
        free(args);
        return CONFIG_USAGE;
    }
    rv = parseArgs(args->argc, args->argv, cfg, err, errlen, &at);
    if (rv == CONFIG_USAGE) {
        locateError(args, at, err, errlen);
    }
    if (rv != CONFIG_OK) {
        ledger_config_free(cfg);
        config_argv_free(args);
        free(args);
        return rv;
    }
    /* The flags point into args' strings: keep them with cfg. */
    cfg->args = args;
    cfg->config_file = args->path;
    return CONFIG_OK;
}

bool ledger_zone_valid(const char *z)
{
    size_t i;
    for (i = 0; z[i] != '\0'; i++) {
        if (!isalnum((unsigned char)z[i]) && z[i] != '.' && z[i] != '_' &&
            z[i] != '-') {
            return false;
        }
    }
    return i > 0 && i < REPL_ZONE_MAX;
}

void ledger_config_free(struct ledger_config *cfg)
{
    if (cfg->args != NULL) {
        config_argv_free(cfg->args);
        free(cfg->args);
        cfg->args = NULL;
    }
    free(cfg->token);
    cfg->token = NULL;
    token_set_free(cfg->tokens);
    cfg->tokens = NULL;
}
