#include "rbee/version.h"

const char *rbee_version(void) { return RBEE_VERSION_STRING; }

unsigned rbee_version_hex(void) { return RBEE_VERSION_HEX; }
