/* Uses the installed headers and library: prints the version and the
 * contract JSON of a worker info. */
#include <rbee/rbee.h>
#include <stdio.h>

int main(void) {
  rbee_worker_info info = RBEE_WORKER_INFO_INIT;
  char *json = NULL;
  if (rbee_worker_info_set(&info, "worker-x-1", "tiny", "cpu", 1, RBEE_STATUS_READY,
                           "consumer", rbee_version()) != 0 ||
      rbee_worker_info_to_json(&json, &info) != 0)
    return 1;
  printf("%s %s\n", rbee_version(), json);
  rbee_free(json);
  rbee_worker_info_clear(&info);
  return 0;
}
