/* ledgerctl recover: quorum-loss recovery, run offline by ledgerd
 * (node/recover.c; ctl/ledgerd.c says why). */
#include "ctl.h"

int ctlCmdRecover(struct ctl *ctl, int argc, char **argv)
{
    return ctlExecLedgerd(ctl, "recover", argc, argv);
}
