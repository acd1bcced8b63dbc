// The umbrella header must compile alone as C++ (extern "C", no C-only syntax).
#include <rbee/rbee.h>

int rbee_headertest_cxx();
int rbee_headertest_cxx() {
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  rbee_heartbeat_options h = RBEE_HEARTBEAT_OPTIONS_INIT;
  return static_cast<int>(o.version + h.version) + RBEE_OK;
}
