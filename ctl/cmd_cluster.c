/* ledgerctl cluster up/down: local nodes as background processes. */
#include "ctl.h"

int ctlCmdClusterUp(struct ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    return ctlFail("cluster up: not implemented yet");
}

int ctlCmdClusterDown(struct ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    return ctlFail("cluster down: not implemented yet");
}
