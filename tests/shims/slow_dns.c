/* LD_PRELOAD shim for tests/test_heartbeat_dns.sh: getaddrinfo() of the
 * name slow.rbee.test sleeps RBEE_SLOW_DNS_S seconds (default 2), then
 * answers 127.0.0.1 (or RBEE_SLOW_DNS_ADDR); every other name goes to libc. Each slow lookup is
 * counted into the file RBEE_SLOW_DNS_LOG (one line per lookup started). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
  if (node != NULL && strcmp(node, "slow.rbee.test") == 0) {
    const char *log = getenv("RBEE_SLOW_DNS_LOG");
    if (log != NULL) {
      FILE *f = fopen(log, "a");
      if (f != NULL) {
        fputs("lookup\n", f);
        fclose(f);
      }
    }
    const char *s = getenv("RBEE_SLOW_DNS_S");
    double secs = s ? atof(s) : 2.0;
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    const char *to = getenv("RBEE_SLOW_DNS_ADDR");
    node = to && *to ? to : "127.0.0.1";
  }
  return real(node, service, hints, res);
}
