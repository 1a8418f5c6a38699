/* The replication layer's log line: formatted here, written by the sink
 * the caller gave (ledger_repl_start's `log`). Calls nothing else in
 * replication/, so every file may use it. */
#include <stdarg.h>
#include <stdio.h>

#include "repl_int.h"

void repl__log(ledger_repl *r, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->log != NULL) {
        r->log(r->log_arg, level, msg);
    }
}
