/* ledgerd recover: quorum-loss recovery (offline). */
#include "offline.h"

int recover_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    return offline_fail(1, "recover: not implemented yet");
}
