/* Placeholder so the module library has a source until its code lands. */
typedef int ledger_placeholder_placeholder_t;
