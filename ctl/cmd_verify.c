/* ledgerctl verify: not implemented yet. */
#include "ctl.h"

int ctlCmdVerify(struct ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    return ctlFail("verify: not implemented yet");
}
