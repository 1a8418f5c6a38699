/* Structured logging to stderr: text ("TS LEVEL msg key=value") or one JSON
 * object per line. The level is checked before anything is formatted. */
#ifndef LEDGER_LOG_H
#define LEDGER_LOG_H

#include <stdint.h>

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void ledger_log_init(int json, int level, uint64_t node_id);
int ledger_log_enabled(int level);

/* `rid` is the request id or NULL. */
void ledger_log(int level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* LEDGER_LOG_H */
