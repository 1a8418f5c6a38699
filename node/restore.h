/* Backups offline (node/restore.c): `ledgerd --verify-backup FILE` and
 * `ledgerd --restore FILE`.
 *
 * ledgerctl (which must not know the store's format, see
 * docs/architecture.md, "Backups and restore") runs `ledgerd
 * --verify-backup` found next to it, and reads its one JSON line. */
#ifndef LEDGER_NODE_RESTORE_H
#define LEDGER_NODE_RESTORE_H

#include <stddef.h>

#include "config.h"

/* Check a backup file: its SHA-256 against expect_hex (NULL: the first
 * word of FILE.sha256, which must exist; skipped with chain_only, for a
 * caller that hashed the bytes as it wrote them), then
 * ledger_backup_verify (stamps against contents, the whole chain). Prints one
 * JSON line on stdout:
 *   {"ok":true,"file":F,"events":N,"position":P,"hash":H,"cluster_id":C,
 *    "raft_index":I,"raft_term":T,"schema_version":S,"created_at":D,
 *    "sha256":X}
 * or {"ok":false,"file":F,"first_bad_position":P|null,"reason":"..."}.
 * Returns the exit code: 0 good, 1 anything else. */
int restore_verify_cli(const char *file, const char *expect_hex,
                       int chain_only);

/* --restore: refuse a data dir that holds a store or Raft state; check
 * cfg->restore like restore_verify_cli; then seed DATA_DIR/ledger.db from
 * it (ledger_backup_seed). Logs what it did. 0, or -1 with a one-line
 * reason in err (nothing changed). */
int restore_seed(const struct ledger_config *cfg, char *err, size_t errlen);

#endif /* LEDGER_NODE_RESTORE_H */
