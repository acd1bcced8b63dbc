/* rbee-local-queen: the queen a worker author runs on a laptop instead of
 * the whole rbee system. See docs/local-queen.md. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rbee/log.h>
#include <rbee/version.h>

#include "queen.h"

static void usage(FILE *f) {
  fprintf(f,
          "Usage: rbee-local-queen [options]\n"
          "A local rbee queen: takes worker heartbeats, lists workers, routes jobs.\n\n"
          "  --port P             port to listen on (default 7833; 0 = a free one, printed)\n"
          "  --bind ADDR          address to listen on (default 127.0.0.1)\n"
          "  --dead-after-ms MS   drop a worker silent this long (default 90000)\n"
          "  --token-file F       require this bearer token from workers and clients\n"
          "  --worker-token-file F  bearer token to send to workers with jobs\n"
          "  --table / --no-table   redraw a table of workers on stdout (default: when a tty)\n"
          "  --log-format text|json\n"
          "  -h, --help, -V, --version\n\n"
          "Routes: POST /v1/worker-heartbeat, GET /v1/workers, POST /v1/jobs (needs \"model\"),\n"
          "GET /health.\n");
}

/* First line of @p path, without the newline; NULL with a message. */
static char *read_token(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "rbee-local-queen: cannot read token file %s: %s\n", path, strerror(errno));
    return NULL;
  }
  char buf[1024];
  char *ok = fgets(buf, sizeof buf, f);
  fclose(f);
  if (ok == NULL || (buf[strcspn(buf, "\r\n")] = '\0', buf[0] == '\0')) {
    fprintf(stderr, "rbee-local-queen: token file %s is empty\n", path);
    return NULL;
  }
  return strdup(buf);
}

static int parse_uint(const char *s, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > max)
    return -1;
  *out = v;
  return 0;
}

typedef struct stopper {
  struct event_base *base;
  queen *q;
} stopper;

/* End the streams in flight with a last line, give the loop a moment to
 * write it out, then stop. A second signal stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
  stopper *s = arg;
  if (s->q == NULL) {
    event_base_loopbreak(s->base);
    return;
  }
  rbee_log(RBEE_LOG_INFO, "queen", "stop", NULL, "signal %d: stopping", (int)sig);
  queen_relay_shutdown(s->q);
  s->q = NULL;
  struct timeval flush = {0, 300000};
  event_base_loopexit(s->base, &flush);
}

int main(int argc, char **argv) {
  queen_options o = QUEEN_OPTIONS_INIT;
  char *token = NULL, *wtoken = NULL;
  int table = isatty(STDOUT_FILENO);
  enum { O_PORT = 1, O_BIND, O_DEAD, O_TOKEN, O_WTOKEN, O_TABLE, O_NOTABLE, O_LOGFMT };
  static const struct option longopts[] = {
      {"port", required_argument, NULL, O_PORT},
      {"bind", required_argument, NULL, O_BIND},
      {"dead-after-ms", required_argument, NULL, O_DEAD},
      {"token-file", required_argument, NULL, O_TOKEN},
      {"worker-token-file", required_argument, NULL, O_WTOKEN},
      {"table", no_argument, NULL, O_TABLE},
      {"no-table", no_argument, NULL, O_NOTABLE},
      {"log-format", required_argument, NULL, O_LOGFMT},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c, rc = 64;
  long v;
  while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
    switch (c) {
    case O_PORT:
      if (parse_uint(optarg, 65535, &v) != 0) {
        fprintf(stderr, "rbee-local-queen: --port wants 0..65535, got '%s'\n", optarg);
        goto out;
      }
      o.port = (int)v;
      break;
    case O_BIND:
      o.bind = optarg;
      break;
    case O_DEAD:
      if (parse_uint(optarg, 86400000, &v) != 0 || v < 1) {
        fprintf(stderr, "rbee-local-queen: --dead-after-ms wants 1..86400000, got '%s'\n",
                optarg);
        goto out;
      }
      o.dead_after_ms = (unsigned)v;
      break;
    case O_TOKEN:
      free(token);
      if ((token = read_token(optarg)) == NULL)
        goto out;
      break;
    case O_WTOKEN:
      free(wtoken);
      if ((wtoken = read_token(optarg)) == NULL)
        goto out;
      break;
    case O_TABLE:
      table = 1;
      break;
    case O_NOTABLE:
      table = 0;
      break;
    case O_LOGFMT:
      if (strcmp(optarg, "json") == 0)
        rbee_log_set_format(RBEE_LOG_JSON);
      else if (strcmp(optarg, "text") == 0)
        rbee_log_set_format(RBEE_LOG_TEXT);
      else {
        fprintf(stderr, "rbee-local-queen: --log-format wants text or json, got '%s'\n", optarg);
        goto out;
      }
      break;
    case 'h':
      usage(stdout);
      rc = 0;
      goto out;
    case 'V':
      printf("rbee-local-queen %s\n", rbee_version());
      rc = 0;
      goto out;
    default:
      usage(stderr);
      goto out;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "rbee-local-queen: unexpected argument '%s'\n", argv[optind]);
    goto out;
  }
  o.token = token;
  o.worker_token = wtoken;
  o.table = table;
  signal(SIGPIPE, SIG_IGN);

  struct event_base *base = event_base_new();
  queen *q = NULL;
  char err[256];
  rc = 70;
  if (base == NULL) {
    fprintf(stderr, "rbee-local-queen: cannot create the event loop\n");
    goto out;
  }
  if (queen_new(&q, base, &o, err, sizeof err) != 0) {
    fprintf(stderr, "rbee-local-queen: %s\n", err);
    rc = 69;
    event_base_free(base);
    goto out;
  }
  stopper stop = {base, q};
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, &stop);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, &stop);
  if (sigint)
    event_add(sigint, NULL);
  if (sigterm)
    event_add(sigterm, NULL);
  /* Scripts read this line to learn the port (--port 0). */
  printf("rbee-local-queen listening on http://%s:%d\n", o.bind, queen_port(q));
  fflush(stdout);
  rbee_log(RBEE_LOG_INFO, "queen", "listen", NULL, "listening on http://%s:%d, dead after %u ms",
           o.bind, queen_port(q), o.dead_after_ms);
  event_base_dispatch(base);
  queen_free(q);
  if (sigint)
    event_free(sigint);
  if (sigterm)
    event_free(sigterm);
  event_base_free(base);
  rc = 0;
out:
  free(token);
  free(wtoken);
  return rc;
}
