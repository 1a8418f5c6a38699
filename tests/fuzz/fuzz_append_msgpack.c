/* Fuzz target: MessagePack append bodies (node/codec.c,
 * node/append_body.c, replication/entry.c); the properties are in
 * append.h. */
#include "append.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzzAppend(CODEC_MSGPACK, data, size);
}
