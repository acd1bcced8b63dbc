/* The umbrella header must compile alone as strict C11. */
#include <rbee/rbee.h>

int rbee_headertest_c(void);
int rbee_headertest_c(void) { return RBEE_VERSION_MAJOR + RBEE_OK; }
