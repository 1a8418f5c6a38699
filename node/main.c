/* ledgerd: one node of a ledger cluster, or (`ledgerd WORD ...`) one of the
 * offline commands of node/offline.h. Exit codes: 0 clean stop, 1 failed
 * start or run, 2 bad usage (one line on stderr). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "offline.h"
#include "repair.h"
#include "restart.h"
#include "restore.h"

int main(int argc, char **argv)
{
    struct ledger_config cfg;
    char err[512];
    const char *cfg_dir;
    int rv;

    if (offline_is_command(argc, argv)) {
        return offline_main(argc, argv);
    }
    rv = ledger_config_parse(argc, argv, &cfg, err, sizeof err);
    switch (rv) {
    case CONFIG_OK:
        break;
    case CONFIG_EXIT:
        return 0;
    case CONFIG_USAGE:
        fprintf(stderr, "ledgerd: %s (see ledgerd --help)\n", err);
        ledger_config_free(&cfg);
        return 2;
    default:
        fprintf(stderr, "ledgerd: %s\n", err);
        ledger_config_free(&cfg);
        return 1;
    }
    if (cfg.verify_backup != NULL) {
        rv = restore_verify_cli(cfg.verify_backup, cfg.expect_sha256,
                                cfg.chain_only);
        ledger_config_free(&cfg);
        return rv;
    }
    ledger_log_init(cfg.log_json, cfg.log_level, cfg.id);
    cfg_dir = cfg.data_dir; /* argv's: outlives cfg */
    rv = node_run(&cfg);
    ledger_config_free(&cfg);
    if (rv == NODE_EXIT_REPAIR) {
        /* The store was found corrupt (node/repair.h): move it aside, then
         * start over, which rebuilds it. */
        if (repair_quarantine_store(cfg_dir, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "ledgerd: %s: start it again by hand\n", err);
            return 1;
        }
        rv = NODE_EXIT_RESTART;
    }
    if (rv == NODE_EXIT_RESTART) {
        /* Raft stopped on a storage error and the disk has room again
         * (node/restart.h): start over as a fresh process, same flags.
         * Every descriptor of ours is closed or close-on-exec by now. */
        execv("/proc/self/exe", argv);
        fprintf(stderr,
                "ledgerd: restart in place failed: %s: start it "
                "again by hand\n",
                strerror(errno));
        return 1;
    }
    return rv;
}
