#include "rbee/version.h"
#include "util.h"

const char *rbee_version(void) { return RBEE_VERSION_STRING; }

unsigned rbee_version_hex(void) { return RBEE_VERSION_HEX; }

int rbee__version_check(const char *what, unsigned version, unsigned current) {
  if (version == 0 || version > current)
    return rbee__error_set(RBEE_EINVAL,
                           "%s: version %u, this librbee takes 1 to %u (start from the INIT "
                           "macro or the _init function)",
                           what, version, current);
  return 0;
}
