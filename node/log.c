/* Structured logging (see log.h). JSON lines are built with jansson, so
 * every message is correctly escaped. One write(2) per line keeps lines
 * whole when several processes share a file. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int logJson;
static int logLevel = LOG_INFO;
static uint64_t logNode;

static const char *LEVELS[] = {"debug", "info", "warn", "error"};

void ledger_log_init(int json, int level, uint64_t node_id)
{
    logJson = json;
    logLevel = level;
    logNode = node_id;
}

int ledger_log_enabled(int level)
{
    return level >= logLevel;
}

void ledger_log(int level, const char *rid, const char *fmt, ...)
{
    char msg[2048];
    char ts[40];
    char line[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    if (level < logLevel || level < 0 || level > 3) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - (size_t)n, ".%03ldZ",
             (long)(tv.tv_usec / 1000));

    if (logJson) {
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:s}", "ts", ts, "level", LEVELS[level],
                      "node", (json_int_t)logNode, "msg", msg);
        char *s;
        if (o == NULL) {
            return;
        }
        if (rid != NULL) {
            json_object_set_new(o, "request_id", json_string(rid));
        }
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s == NULL) {
            return;
        }
        n = snprintf(line, sizeof line, "%s\n", s);
        free(s);
    } else if (rid != NULL) {
        n = snprintf(line, sizeof line, "%s %-5s node=%llu req=%s %s\n", ts,
                     LEVELS[level], (unsigned long long)logNode, rid, msg);
    } else {
        n = snprintf(line, sizeof line, "%s %-5s node=%llu %s\n", ts,
                     LEVELS[level], (unsigned long long)logNode, msg);
    }
    if (n > (int)sizeof line - 1) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report it. */
    }
}
