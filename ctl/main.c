/* ledgerctl: command-line control and client for a ledger cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct command {
    const char *word1;
    const char *word2; /* NULL: a one-word command. */
    int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
    {"cluster", "up", ctlCmdClusterUp},
    {"cluster", "down", ctlCmdClusterDown},
    {"status", NULL, ctlCmdStatus},
    {"backup", "verify", ctlCmdBackupVerify},
    {"backup", NULL, ctlCmdBackup},
    {"restore", NULL, ctlCmdRestore},
    {"export", NULL, ctlCmdExport},
    {"import", NULL, ctlCmdImport},
    {"member", "list", ctlCmdMemberList},
    {"member", "add", ctlCmdMemberAdd},
    {"member", "remove", ctlCmdMemberRemove},
    {"member", "role", ctlCmdMemberRole},
    {"leader", "transfer", ctlCmdLeaderTransfer},
    {"lag", NULL, ctlCmdLag},
    {"roles", NULL, ctlCmdRoles},
    {"append", NULL, ctlCmdAppend},
    {"read", NULL, ctlCmdRead},
    {"streams", NULL, ctlCmdStreams},
    {"verify", NULL, ctlCmdVerify},
    {"bench", NULL, ctlCmdBench},
    {"recover", NULL, ctlCmdRecover},
    {"tls", "cert", ctlCmdTlsCert},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    const char *env;
    const char *pos[1];
    int n_pos = 0;
    int i = 1;
    int rv;

    ctl.endpoints = CTL_DEFAULT_ENDPOINTS;
    env = getenv("LEDGER_ENDPOINTS");
    if (env != NULL && env[0] != '\0') {
        ctl.endpoints = env;
    }
    env = getenv("LEDGER_TOKEN");
    if (env != NULL && env[0] != '\0') {
        ctl.token = strdup(env);
    }
    env = getenv("LEDGER_TLS_CA");
    ctl.tls_ca = env != NULL && env[0] != '\0' ? env : NULL;
    env = getenv("LEDGER_TLS_CERT");
    ctl.tls_cert = env != NULL && env[0] != '\0' ? env : NULL;
    env = getenv("LEDGER_TLS_KEY");
    ctl.tls_key = env != NULL && env[0] != '\0' ? env : NULL;

    /* Global flags before the command word. */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        int start = i;
        if (strcmp(a, "--version") == 0) {
            printf("ledgerctl %s\n", LEDGER_VERSION);
            rv = CTL_EXIT_OK;
            goto out;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctlPrintHelp();
            rv = CTL_EXIT_OK;
            goto out;
        }
        /* One global flag with its value, if it takes one. */
        if (strchr(a, '=') == NULL && i + 1 < argc &&
            (strcmp(a, "--endpoints") == 0 || strcmp(a, "--token-file") == 0 ||
             strcmp(a, "--timeout-ms") == 0 || strcmp(a, "--tls-ca") == 0 ||
             strcmp(a, "--tls-cert") == 0 || strcmp(a, "--tls-key") == 0)) {
            i++;
        }
        i++;
        rv = ctlParseArgs(&ctl, NULL, i - start, argv + start, NULL, pos, 0,
                          &n_pos);
        if (rv != 0) {
            rv = rv < 0 ? CTL_EXIT_OK : rv;
            goto out;
        }
    }
    if (i >= argc) {
        rv = ctlUsage("missing command");
        goto out;
    }
    for (size_t k = 0; k < N_COMMANDS; k++) {
        const struct command *cmd = &commands[k];
        if (strcmp(argv[i], cmd->word1) != 0) {
            continue;
        }
        if (cmd->word2 == NULL) {
            rv = cmd->run(&ctl, argc - i - 1, argv + i + 1);
            goto out;
        }
        if (i + 1 < argc && strcmp(argv[i + 1], cmd->word2) == 0) {
            rv = cmd->run(&ctl, argc - i - 2, argv + i + 2);
            goto out;
        }
    }
    /* Known first word, bad or missing second one. */
    for (size_t k = 0; k < N_COMMANDS; k++) {
        if (strcmp(argv[i], commands[k].word1) == 0 &&
            commands[k].word2 != NULL) {
            if (i + 1 < argc && strcmp(argv[i + 1], "--help") == 0) {
                ctlPrintHelp();
                rv = CTL_EXIT_OK;
                goto out;
            }
            rv = i + 1 < argc
                     ? ctlUsage("unknown command '%s %s'", argv[i], argv[i + 1])
                     : ctlUsage("'%s' needs a subcommand", argv[i]);
            goto out;
        }
    }
    rv = ctlUsage("unknown command '%s'", argv[i]);

out:
    ledger_client_destroy(ctl.client);
    free(ctl.token);
    free(ctl.token_file);
    for (int k = 0; k < 3; k++) {
        free(ctl.tls_own[k]);
    }
    return rv;
}
