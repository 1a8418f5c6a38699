/* A bound on MessagePack input before msgpack-c unpacks it.
 *
 * msgpack-c allocates a container's elements from the count in its header
 * before reading them: five bytes claiming a map of 2^32-1 pairs make it
 * ask for 96 GiB (found by tests/fuzz/fuzz_entry). mpscan_object() walks
 * the headers of one object without allocating and refuses any whose
 * containers claim more elements than there are bytes left, so that what
 * the unpacker allocates is at most a small multiple of the input's size.
 * Every decoder of untrusted MessagePack (entries, snapshots, API bodies,
 * event pages) calls it first.
 */
#ifndef LEDGER_REPL_MPSCAN_H
#define LEDGER_REPL_MPSCAN_H

#include <stddef.h>

/* Check that buf[0..len) starts with one complete, well-formed MessagePack
 * object whose every container count fits in the bytes left. 0 with the
 * object's length in *used (bytes after it are the caller's business), or
 * -1 with a one-line reason in err ("truncated ...", or "parse error ..."
 * for the reserved byte 0xc1); a count larger than the bytes left is
 * "truncated" too. */
int mpscan_object(const void *buf, size_t len, size_t *used, char *err,
                  size_t errlen);

#endif /* LEDGER_REPL_MPSCAN_H */
