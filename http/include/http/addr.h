/* "HOST:PORT" parsing for IPv4 listeners and peers (private to http_*.c). */
#ifndef LEDGER_HTTP_ADDR_H
#define LEDGER_HTTP_ADDR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Parse `addr` ("1.2.3.4:80", "localhost:80", ":80" meaning 0.0.0.0) into
 * `out`. Returns 0 or UV_EINVAL. No DNS lookups are made. */
static inline int http_addr_parse(const char *addr, struct sockaddr_in *out)
{
    const char *colon;
    char host[64];
    size_t host_len;
    unsigned long port = 0;
    const char *p;

    if (addr == NULL) {
        return UV_EINVAL;
    }
    colon = strrchr(addr, ':');
    if (colon == NULL) {
        return UV_EINVAL;
    }
    host_len = (size_t)(colon - addr);
    if (host_len >= sizeof host) {
        return UV_EINVAL;
    }
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
    p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) {
        return UV_EINVAL;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return UV_EINVAL;
        }
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535) {
        return UV_EINVAL;
    }
    if (host_len == 0) {
        strcpy(host, "0.0.0.0");
    } else if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    return uv_ip4_addr(host, (int)port, out) == 0 ? 0 : UV_EINVAL;
}

#endif /* LEDGER_HTTP_ADDR_H */
