/* A test queen as a process, for shell tests: `queen_stub ok|slow MS`
 * prints its URL on stdout, answers heartbeats (slow: each after MS ms),
 * and on SIGTERM writes every heartbeat body it got,
 * one a line, to stdout and exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queen_server.h"

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig, stop = 1; }

int main(int argc, char **argv) {
  int slow = argc > 2 && strcmp(argv[1], "slow") == 0;
  queen_server *q = queen_server_start(slow ? QUEEN_SLOW : QUEEN_OK);
  if (q == NULL)
    return 1;
  if (slow)
    queen_server_set_slow_ms(q, (unsigned)atoi(argv[2]));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  printf("%s\n", queen_server_url(q));
  fflush(stdout);
  while (!stop)
    pause();
  for (size_t i = 0, n = queen_server_count(q); i < n; i++) {
    queen_request *r = queen_server_get(q, i);
    if (r)
      printf("%s\n", r->body);
    queen_request_free(r);
  }
  queen_server_stop(q);
  return 0;
}
