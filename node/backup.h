/* Backups of this node's store (node/backup.c): GET /v1/backup is
 * api_backup() in api.h; this is what the node's start needs. */
#ifndef LEDGER_NODE_BACKUP_H
#define LEDGER_NODE_BACKUP_H

/* Remove DATA_DIR/backup-*.tmp: temporary copies of backups a crash
 * interrupted before they were unlinked. Call before serving. */
void backup_remove_stale(const char *data_dir);

#endif /* LEDGER_NODE_BACKUP_H */
