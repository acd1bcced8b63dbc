/* Send one heartbeat with rbee_heartbeat_send_once() and say how it went:
 * "ok <ack status>" (exit 0) or "error <RBEE_E...>: <message>" (exit 1).
 * Usage: heartbeat_send QUEEN_URL [CA_FILE] */
#include <stdio.h>

#include "rbee/rbee.h"
#include "util/util.h"

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: heartbeat_send QUEEN_URL [CA_FILE]\n");
    return 64;
  }
  rbee_worker_info info = RBEE_WORKER_INFO_INIT;
  char *body = NULL;
  rbee_queen_ack ack;
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = argv[1];
  o.ca_file = argc > 2 ? argv[2] : NULL;
  int rc = rbee_worker_info_set(&info, "worker-test-9000", "tiny", "cpu", 9000,
                                RBEE_STATUS_READY, "test-worker", "0.1.0");
  if (rc == 0)
    rc = rbee_heartbeat_to_json(&body, &info, NULL, rbee__now_us());
  if (rc == 0)
    rc = rbee_heartbeat_send_once(&o, body, &ack);
  if (rc == 0)
    printf("ok %s\n", ack.status);
  else
    printf("error %s: %s\n", rbee_err_name(rc), rbee_error_message());
  rbee_queen_ack_clear(rc == 0 ? &ack : NULL);
  rbee_free(body);
  rbee_worker_info_clear(&info);
  return rc == 0 ? 0 : 1;
}
