/* Version of librbee: compile-time macros and the runtime answer, which
 * differ when a program runs against another build of the shared library. */
#ifndef RBEE_VERSION_H
#define RBEE_VERSION_H

#include "export.h"

#define RBEE_VERSION_MAJOR 0
#define RBEE_VERSION_MINOR 1
#define RBEE_VERSION_PATCH 0
#define RBEE_VERSION_STRING "0.1.0"
/** (major << 16) | (minor << 8) | patch, for #if comparisons. */
#define RBEE_VERSION_HEX                                                       \
  ((RBEE_VERSION_MAJOR << 16) | (RBEE_VERSION_MINOR << 8) | RBEE_VERSION_PATCH)

RBEE_BEGIN_DECLS

/** The version string of the library that is running, e.g. "0.1.0". */
RBEE_EXTERN const char *rbee_version(void);
/** RBEE_VERSION_HEX of the library that is running. */
RBEE_EXTERN unsigned rbee_version_hex(void);

RBEE_END_DECLS

#endif
