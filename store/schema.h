/* Private: schema creation and migrations, run when a store is opened. */
#ifndef LEDGER_STORE_SCHEMA_H
#define LEDGER_STORE_SCHEMA_H

#include "internal.h"

/* Read the stored schema_version without writing anything (0 for a new,
 * empty file). Fails with LEDGER_STORE_ESCHEMA when it is newer than
 * LEDGER_SCHEMA_VERSION and LEDGER_STORE_ECORRUPT when meta is malformed. */
int schemaCheck(ledger_store *s, int *version);

/* Run every pending migration step, and record the new schema_version, in
 * one write transaction. A no-op on an up-to-date store. */
int schemaMigrate(ledger_store *s);

#endif /* LEDGER_STORE_SCHEMA_H */
