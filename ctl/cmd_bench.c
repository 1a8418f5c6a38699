/* ledgerctl bench: append load generator (not implemented yet). */
#include "ctl.h"

int ctlCmdBench(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"clients", 1, NULL},
                               {"size", 1, NULL},
                               {"batch", 1, NULL},
                               {"duration", 1, NULL},
                               {NULL, 0, NULL}};
    const char *pos[1];
    int n_pos;
    int rv = ctlParseArgs(ctl, "bench", argc, argv, flags, pos, 0, &n_pos);
    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    return ctlFail("bench: not implemented yet");
}
