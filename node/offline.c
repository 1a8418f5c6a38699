/* Dispatch of ledgerd's offline commands (see offline.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "offline.h"

const char *offline_prog = "ledgerd";

struct offline_cmd {
    const char *word;
    int (*run)(int argc, char **argv);
};

static const struct offline_cmd COMMANDS[] = {
    {"recover", recover_main},
};

bool offline_is_command(int argc, char **argv)
{
    return argc > 1 && argv[1][0] != '-' && argv[1][0] != '\0';
}

int offline_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", offline_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int offline_main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    offline_prog = slash != NULL ? slash + 1 : argv[0];
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].word) == 0) {
            return COMMANDS[i].run(argc - 1, argv + 1);
        }
    }
    return offline_fail(2, "unknown command '%s' (see ledgerd --help)",
                        argv[1]);
}
