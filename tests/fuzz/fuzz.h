/* Shared by the libFuzzer targets (tests/fuzz/README.md): CHECK() aborts,
 * so libFuzzer records the input as a crash, whatever NDEBUG says. */
#ifndef LEDGER_FUZZ_H
#define LEDGER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* LEDGER_FUZZ_H */
