/* Helpers of the suites that parse a worker's command line in-process. */
#include "worker_args.h"

#include <check.h>

int wa_parse(rbee__worker_args *a, const rbee_worker_callbacks *cb, const char *const *args) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"worker";
  for (; *args; args++) {
    ck_assert_msg(argc < (int)(sizeof argv / sizeof argv[0]) - 1, "wa_parse: too many arguments");
    argv[argc++] = (char *)*args;
  }
  argv[argc] = NULL;
  return rbee__worker_parse(a, argc, argv, cb, NULL);
}
