/* The console's static files (node/ui/), compiled in: ui_assets.c is
 * generated at build time by cmake/embed.cmake from every file in node/ui/
 * (see api_console.c). */
#ifndef LEDGER_UI_ASSETS_H
#define LEDGER_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
    const char *name;          /* File name in node/ui/ ("index.html"). */
    const unsigned char *data; /* Its bytes (not NUL-terminated). */
    size_t len;
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_n;

#endif /* LEDGER_UI_ASSETS_H */
