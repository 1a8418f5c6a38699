/* MessagePack header walk (see mpscan.h). No stack: a single count of
 * objects still expected is enough, because each needs at least one byte;
 * keeping that count at most the bytes left is the whole bound. */
#include "replication/mpscan.h"

#include <stdint.h>
#include <stdio.h>

static uint64_t beUint(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int mpscan_object(const void *buf, size_t len, size_t *used, char *err,
                  size_t errlen)
{
    const unsigned char *p = buf;
    size_t pos = 0;
    uint64_t pending = 1; /* Objects still to read. */

    while (pending > 0) {
        unsigned char b;
        uint64_t skip = 0;  /* Payload bytes after the header. */
        uint64_t items = 0; /* Objects the container holds. */
        size_t lenBytes = 0;
        size_t start = pos;

        if (pos >= len) {
            snprintf(err, errlen, "truncated at byte %zu", pos);
            return -1;
        }
        b = p[pos++];
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            items = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            items = b & 0x0fu;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else if (b == 0xc1) {
            snprintf(err, errlen, "parse error: reserved byte 0xc1 at byte %zu",
                     pos - 1);
            return -1;
        } else if (b <= 0xc6) { /* bin 8/16/32 */
            lenBytes = (size_t)1 << (b - 0xc4);
        } else if (b <= 0xc9) { /* ext 8/16/32: length, type, data */
            lenBytes = (size_t)1 << (b - 0xc7);
            skip = 1;
        } else if (b <= 0xd3) { /* float32/64, uint8..64, int8..64 */
            static const unsigned char sizes[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
            skip = sizes[b - 0xca];
        } else if (b <= 0xd8) { /* fixext 1/2/4/8/16: type, data */
            skip = 1 + ((uint64_t)1 << (b - 0xd4));
        } else if (b <= 0xdb) { /* str 8/16/32 */
            lenBytes = (size_t)1 << (b - 0xd9);
        } else { /* array 16/32, map 16/32 */
            lenBytes = (b == 0xdc || b == 0xde) ? 2 : 4;
        }
        if (lenBytes > 0) {
            uint64_t n;
            if (len - pos < lenBytes) {
                snprintf(err, errlen, "truncated at byte %zu", pos);
                return -1;
            }
            n = beUint(p + pos, lenBytes);
            pos += lenBytes;
            if (b >= 0xdc) {
                items = b >= 0xde ? 2 * n : n;
            } else {
                skip += n;
            }
        }
        if (skip > len - pos) {
            snprintf(err, errlen, "truncated at byte %zu", pos);
            return -1;
        }
        pos += (size_t)skip;
        pending += items;
        if (pending > len - pos) {
            snprintf(err, errlen,
                     "truncated: %llu more values announced by byte %zu, "
                     "%zu bytes follow",
                     (unsigned long long)pending, start, len - pos);
            return -1;
        }
    }
    *used = pos;
    return 0;
}
